//! What the targets of adapters with a `fuzzing::parse_error(status, headers, body)` share:
//! the input read as an HTTP answer (status: 2 bytes, header length: 1 byte, header value,
//! body), sent through the adapter's error mapping and response decoding, and the wait
//! the error asks for through the shared rate limiter, as `RetryPolicy::run` does. Errors,
//! never panics.

use damm_provider::Error;

/// An adapter's `fuzzing::parse_error`.
pub type ParseError = fn(u16, &[(&str, &[u8])], &[u8]) -> Error;

/// Runs `data` through `parse_error` and `decode`. The header is one of `headers`, picked
/// by the first byte (a rate-limit header: `retry-after`, `ratelimit-reset`, ...).
pub fn check(data: &[u8], headers: &[&str], parse_error: ParseError, decode: fn(&[u8])) {
    if data.len() < 3 {
        return;
    }
    let split = &data[..3];
    let status = 100 + u16::from_le_bytes([split[0], split[1]]) % 500;
    let header_len = usize::from(split[2]).min(data.len() - 3);
    let (value, body) = data[3..].split_at(header_len);
    let name = headers[usize::from(split[0]) % headers.len()];
    let error = parse_error(status, &[(name, value)], body);
    let _ = error.to_string();
    if let Some(wait) = error.retry_after() {
        damm_provider::retry::RateLimit::per_second(1).block_for(wait);
    }
    decode(body);
}
