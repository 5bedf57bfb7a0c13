//! Arbitrary text through the policy parser and validator: errors, never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = damm_fleet::Policy::parse(text, "fuzz.toml");
    }
});
