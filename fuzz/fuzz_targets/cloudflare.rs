//! An arbitrary answer through Cloudflare's error mapping and response decoding (see
//! `status_body.rs`).
#![no_main]

mod status_body;

use damm_adapter_cloudflare::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    status_body::check(data, fuzzing::parse_error, fuzzing::decode);
});
