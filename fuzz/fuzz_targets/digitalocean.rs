//! An arbitrary answer through DigitalOcean's error mapping and response decoding (see
//! `answer.rs`). DigitalOcean also says when the limit resets, in unix seconds.
#![no_main]

mod answer;

use damm_adapter_digitalocean::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let headers = ["retry-after", "ratelimit-reset"];
    answer::check(data, &headers, fuzzing::parse_error, fuzzing::decode);
});
