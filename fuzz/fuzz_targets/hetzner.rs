//! An arbitrary answer through Hetzner's error mapping and response decoding (see
//! `status_body.rs`).
#![no_main]

mod status_body;

use damm_adapter_hetzner::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    status_body::check(data, fuzzing::parse_error, fuzzing::decode);
});
