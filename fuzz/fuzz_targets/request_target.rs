//! The forwarded request's headers, read and decided (src/fuzzing.rs).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gatehouse::fuzzing::request_target(data));
