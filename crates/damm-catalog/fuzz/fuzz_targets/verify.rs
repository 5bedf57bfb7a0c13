//! Arbitrary bytes, split into catalog and signature, through every parser and `verify`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    damm_catalog::fuzz::verify_bytes(data);
});
