//! An arbitrary answer through Vultr's error mapping and response decoding (see
//! `answer.rs`).
#![no_main]

mod answer;

use damm_adapter_vultr::fuzzing;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let headers = ["retry-after"];
    answer::check(data, &headers, fuzzing::parse_error, fuzzing::decode);
});
