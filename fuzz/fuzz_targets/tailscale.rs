//! An arbitrary answer through Tailscale's error mapping and response decoding (see
//! `answer.rs`). Tailscale's `Retry-After` may be seconds or an HTTP date.
#![no_main]

mod answer;

use damm_adapter_tailscale::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let headers = ["retry-after"];
    answer::check(data, &headers, fuzzing::parse_error, fuzzing::decode);
});
