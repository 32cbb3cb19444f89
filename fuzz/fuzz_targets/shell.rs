//! The shell analyser (brush-parser, the walk, the read-only list, the session state) and the
//! terminal line tracker: see `sluice::fuzzing::shell`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sluice::fuzzing::shell(data));
