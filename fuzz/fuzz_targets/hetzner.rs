//! An arbitrary answer (status, body) through the adapter's error mapping and response
//! decoding, and the wait it asks for through the shared rate limiter, as
//! `RetryPolicy::run` does: errors, never panics. Input: status (2 bytes), body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let body = &data[2..];
    if let Some(error) = damm_adapter_hetzner::fuzzing::parse_error(status, body) {
        let _ = error.to_string();
        if let Some(wait) = error.retry_after() {
            damm_provider::retry::RateLimit::per_second(1).block_for(wait);
        }
    }
    damm_adapter_hetzner::fuzzing::decode(body);
});
