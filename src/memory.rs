//! Handing freed memory back to the operating system after the few large,
//! short-lived allocations a node makes (loading a store, serving or
//! applying a snapshot). glibc keeps freed heap memory in its arenas for
//! reuse, so a node's resident size would otherwise stay at the peak of its
//! largest snapshot for good.

/// Returns the allocator's free memory to the system. Costs a few
/// milliseconds on a large heap: called after bulk work, never per request.
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it has
    // no preconditions and touches no memory that is in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
