//! Bearer values, raw or signed by the harness (src/fuzzing.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    gatehouse::fuzzing::bearer(data);
});
