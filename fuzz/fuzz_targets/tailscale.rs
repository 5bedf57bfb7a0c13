//! An arbitrary answer (status, a rate-limit header, body) through the adapter's error
//! mapping and response decoding, and the wait it asks for through the shared rate
//! limiter, as `RetryPolicy::run` does: errors, never panics.
//! Input: status (2 bytes), header length (1 byte), header value, body.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let split = &data[..3];
    let status = 100 + u16::from_le_bytes([split[0], split[1]]) % 500;
    let header_len = usize::from(split[2]).min(data.len() - 3);
    let (header, body) = data[3..].split_at(header_len);
    let name = "retry-after";
    let error = damm_adapter_tailscale::fuzzing::parse_error(status, &[(name, header)], body);
    let _ = error.to_string();
    if let Some(wait) = error.retry_after() {
        damm_provider::retry::RateLimit::per_second(1).block_for(wait);
    }
    damm_adapter_tailscale::fuzzing::decode(body);
});
