//! What the targets of adapters with a `fuzzing::parse_error(status, body)` (no header)
//! share: the input read as an HTTP answer (status: 2 bytes, body), sent through the
//! adapter's error mapping and response decoding, and the wait the error asks for through
//! the shared rate limiter, as `RetryPolicy::run` does. Errors, never panics.

use damm_provider::Error;

/// An adapter's `fuzzing::parse_error`: `None` when the answer is not one it maps.
pub type ParseError = fn(u16, &[u8]) -> Option<Error>;

/// Runs `data` through `parse_error` and `decode`.
pub fn check(data: &[u8], parse_error: ParseError, decode: fn(&[u8])) {
    if data.len() < 2 {
        return;
    }
    let status = 100 + u16::from_le_bytes([data[0], data[1]]) % 500;
    let body = &data[2..];
    if let Some(error) = parse_error(status, body) {
        let _ = error.to_string();
        if let Some(wait) = error.retry_after() {
            damm_provider::retry::RateLimit::per_second(1).block_for(wait);
        }
    }
    decode(body);
}
