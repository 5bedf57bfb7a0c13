//! The API client and the one place API failures become [`Error`]s.

use std::time::Duration;

use damm_provider::{Error, ErrorKind, Operation};

/// Maps a failed API answer to the shared error type.
pub(crate) fn parse_error(
    provider: &str,
    operation: Operation,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> Error {
    let kind = ErrorKind::from_http_status(status, retry_after);
    // Provider error bodies are short JSON documents; keep the start for the log.
    let excerpt: String = body.chars().take(200).collect();
    Error::new(kind, provider, operation).with_message(format!("HTTP {status}: {excerpt}"))
}

/// Reads `Retry-After` (seconds) from a response.
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        let err = parse_error("aws", Operation::ListNodes, 404, None, "{}");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let err = parse_error(
            "aws",
            Operation::ListNodes,
            429,
            Some(Duration::from_secs(2)),
            "",
        );
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert!(err.is_temporary());
    }
}
