//! PostgreSQL frames (frontend and backend) through the codec, and their SQL through the
//! analyser: see `sluice::fuzzing::postgres`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::postgres(data));
