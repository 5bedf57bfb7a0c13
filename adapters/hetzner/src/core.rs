//! The `hcloud` client set-up and the one place API failures become [`Error`]s.

use std::time::Duration;

use damm_provider::{Error, ErrorKind, Operation};
use serde::Deserialize;

/// Hetzner refills its bucket at one request per second (3600 per hour) and `hcloud`
/// does not surface the `RateLimit-Reset` header, so a 429 waits for the next token.
const REFILL: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
struct Body {
    error: Detail,
}

#[derive(Deserialize)]
struct Detail {
    code: String,
    message: String,
}

/// Maps an `hcloud` failure to the shared error: transport problems are temporary
/// `unavailable`, Hetzner's error codes refine the HTTP status, and a body that is not
/// the documented JSON is a temporary `unexpected`.
pub(crate) fn parse_error<T>(
    provider: &str,
    operation: Operation,
    err: hcloud::apis::Error<T>,
) -> Error {
    match err {
        hcloud::apis::Error::Reqwest(e) => {
            let kind = if e.is_decode() {
                ErrorKind::Unexpected
            } else {
                ErrorKind::Unavailable
            };
            let what = if e.is_timeout() {
                "request timed out"
            } else if e.is_connect() {
                "cannot connect"
            } else if e.is_decode() {
                "response is not the documented JSON"
            } else {
                "request failed"
            };
            // reqwest's Display carries the URL, never the token; keep the kind only.
            Error::new(kind, provider, operation)
                .with_message(what)
                .set_temporary(true)
                .with_source(e)
        }
        hcloud::apis::Error::Serde(e) => Error::new(ErrorKind::Unexpected, provider, operation)
            .with_message(format!("response is not the documented JSON: {e}"))
            .set_temporary(true),
        hcloud::apis::Error::Io(e) => {
            Error::new(ErrorKind::Unavailable, provider, operation).with_source(e)
        }
        hcloud::apis::Error::ResponseError(response) => {
            let status = response.status.as_u16();
            let detail = serde_json::from_str::<Body>(&response.content)
                .ok()
                .map(|b| b.error);
            let code = detail.as_ref().map(|d| d.code.as_str()).unwrap_or("");
            let kind = match code {
                "rate_limit_exceeded" => ErrorKind::RateLimited {
                    retry_after: Some(REFILL),
                },
                "uniqueness_error"
                | "conflict"
                | "locked"
                | "primary_ip_already_assigned"
                | "must_be_unassigned" => ErrorKind::Conflict,
                "resource_limit_exceeded" | "resource_unavailable" => ErrorKind::QuotaExceeded,
                "not_found" => ErrorKind::NotFound,
                "unauthorized" | "forbidden" | "token_readonly" => ErrorKind::Unauthenticated,
                "invalid_input" | "json_error" => ErrorKind::InvalidInput,
                _ => ErrorKind::from_http_status(status, (status == 429).then_some(REFILL)),
            };
            let message = match detail {
                Some(d) => format!("HTTP {status} {}: {}", d.code, d.message),
                None => format!(
                    "HTTP {status}: {}",
                    response.content.chars().take(200).collect::<String>()
                ),
            };
            let error = Error::new(kind, provider, operation).with_message(message);
            // A 5xx without a code is Hetzner having a bad moment.
            if status >= 500 {
                error.set_temporary(true)
            } else {
                error
            }
        }
    }
}

/// Entry points for the fuzz targets in `fuzz/` (cargo fuzz); not an API.
#[doc(hidden)]
pub mod fuzzing {
    use super::*;

    /// [`parse_error`](super::parse_error) on an error answer of `status` and `body`.
    pub fn parse_error(status: u16, body: &[u8]) -> Option<Error> {
        let response = hcloud::apis::ResponseContent::<()> {
            status: reqwest::StatusCode::from_u16(status).ok()?,
            content: String::from_utf8_lossy(body).into_owned(),
            entity: None,
        };
        Some(super::parse_error(
            "fuzz",
            Operation::ListNodes,
            hcloud::apis::Error::ResponseError(response),
        ))
    }

    /// Decodes `body` as the listings the adapter reads (through `hcloud`'s models).
    pub fn decode(body: &[u8]) {
        if let Ok(r) = serde_json::from_slice::<hcloud::models::ListServersResponse>(body) {
            let _ = (r.meta.pagination.next_page, r.meta.pagination.total_entries);
        }
        let _ = serde_json::from_slice::<hcloud::models::ListPrimaryIpsResponse>(body);
        let _ = serde_json::from_slice::<hcloud::models::ListFloatingIpsResponse>(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error answer of `status` with `body`, through [`parse_error`].
    fn parse(status: u16, body: &str) -> Error {
        fuzzing::parse_error(status, body.as_bytes()).expect("a valid status")
    }

    #[test]
    fn hetzner_codes_refine_the_status() {
        let e = parse(
            429,
            r#"{"error":{"code":"rate_limit_exceeded","message":"slow down"}}"#,
        );
        assert_eq!(e.retry_after(), Some(REFILL));
        assert!(e.is_temporary());
        let e = parse(
            409,
            r#"{"error":{"code":"uniqueness_error","message":"name used"}}"#,
        );
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("uniqueness_error: name used"), "{e}");
        let e = parse(401, r#"{"error":{"code":"unauthorized","message":"no"}}"#);
        assert_eq!(e.kind(), ErrorKind::Unauthenticated);
        assert!(!e.is_temporary());
        let e = parse(502, "<html>bad gateway</html>");
        assert_eq!(e.kind(), ErrorKind::Unavailable);
        assert!(e.is_temporary());
    }
}
