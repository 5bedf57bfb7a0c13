//! The Compute Engine clients (`google-cloud-compute-v1`), their credentials, and the one
//! place where Google's failures become [`Error`]s.
//!
//! The clients' own retry loop is switched off (`NeverRetry`): every call goes through
//! [`damm_provider::retry`], like every other adapter's, so backoff, rate limits and the
//! "never blindly retry a create" rule are the same everywhere.

use std::fmt;
use std::time::Duration;

use damm_provider::{Error, ErrorKind, ExposeSecret, Operation, SecretString};
use google_cloud_auth::credentials::{
    CacheableResource, Credentials, CredentialsProvider, EntityTag,
};
use google_cloud_auth::errors::CredentialsError;
use google_cloud_compute_v1::client::{Addresses, Instances, RegionOperations, ZoneOperations};
use google_cloud_gax::error::rpc::{Code, StatusDetails};
use google_cloud_gax::retry_policy::NeverRetry;

use crate::config::GceConfig;

/// The four clients, built once.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    pub(crate) instances: Instances,
    pub(crate) addresses: Addresses,
    pub(crate) zone_operations: ZoneOperations,
    pub(crate) region_operations: RegionOperations,
}

/// A request of the project: `request!(gce, instances.get().set_zone(z).set_instance(n))`
/// is `gce.clients.instances.get().set_project(&gce.project).set_zone(z).set_instance(n)`.
/// (Every request builder is its own type, with no trait in common to write a function
/// over.)
macro_rules! request {
    ($gce:expr, $client:ident . $method:ident () $(. $setter:ident ($value:expr))*) => {
        $gce.clients
            .$client
            .$method()
            .set_project(&$gce.project)
            $(.$setter($value))*
    };
}
pub(crate) use request;

/// Builds the clients for `settings` (endpoint, credentials, timeout, no retries).
pub(crate) async fn clients(settings: &GceConfig, provider: &str) -> Result<Clients, Error> {
    install_crypto_provider();
    let credentials = credentials(settings).map_err(|e| {
        Error::new(ErrorKind::Unauthenticated, provider, Operation::Configure)
            .with_message(format!("no Google credentials: {e}"))
    })?;
    let endpoint = settings.api_url.trim_end_matches('/').to_owned();
    let timeout = settings.request_timeout();
    let failed = |e: google_cloud_gax::client_builder::Error| {
        Error::new(ErrorKind::InvalidInput, provider, Operation::Configure)
            .with_message(format!("building the Compute Engine client: {e}"))
    };
    // One macro instead of four copies: each client has its own builder type.
    macro_rules! build {
        ($client:ty) => {
            <$client>::builder()
                .with_endpoint(endpoint.clone())
                .with_credentials(credentials.clone())
                .with_retry_policy(NeverRetry)
                .with_attempt_timeout(timeout)
                .build()
                .await
                .map_err(failed)?
        };
    }
    Ok(Clients {
        instances: build!(Instances),
        addresses: build!(Addresses),
        zone_operations: build!(ZoneOperations),
        region_operations: build!(RegionOperations),
    })
}

/// The Google clients are built without their default crypto provider (`aws-lc-rs`, a
/// C build): the process uses *ring*, which the workspace already carries. Installing
/// it twice is harmless; a provider installed first by the embedding program wins.
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn credentials(settings: &GceConfig) -> Result<Credentials, String> {
    if let Some(token) = &settings.token {
        return Ok(Credentials::from(StaticToken::new(token.clone())));
    }
    if settings.anonymous {
        return Ok(google_cloud_auth::credentials::anonymous::Builder::new().build());
    }
    google_cloud_auth::credentials::Builder::default()
        .build()
        .map_err(|e| e.to_string())
}

/// A ready access token, sent as `Authorization: Bearer` on every request.
struct StaticToken {
    token: SecretString,
    tag: EntityTag,
}

impl StaticToken {
    fn new(token: SecretString) -> Self {
        StaticToken {
            token,
            tag: EntityTag::new(),
        }
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticToken([redacted])")
    }
}

impl CredentialsProvider for StaticToken {
    async fn headers(
        &self,
        extensions: http::Extensions,
    ) -> Result<CacheableResource<http::HeaderMap>, CredentialsError> {
        if extensions.get::<EntityTag>() == Some(&self.tag) {
            return Ok(CacheableResource::NotModified);
        }
        let mut value =
            http::HeaderValue::from_str(&format!("Bearer {}", self.token.expose_secret()))
                .map_err(|e| CredentialsError::from_source(false, e))?;
        value.set_sensitive(true);
        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value);
        Ok(CacheableResource::New {
            entity_tag: self.tag.clone(),
            data: headers,
        })
    }

    async fn universe_domain(&self) -> Option<String> {
        None
    }
}

/// Maps a failed call to the shared error type: HTTP status first, refined by Google's
/// `reason` (`notFound`, `alreadyExists`, `rateLimitExceeded`, `quotaExceeded`, ...);
/// transport failures and timeouts are temporary `Unavailable`, an answer that does not
/// parse is `Unexpected`.
pub(crate) fn parse_error(
    provider: &str,
    operation: Operation,
    err: google_cloud_gax::error::Error,
) -> Error {
    let status = err.http_status_code();
    let reason = err
        .status()
        .and_then(|s| {
            s.details.iter().find_map(|d| match d {
                StatusDetails::ErrorInfo(info) if !info.reason.is_empty() => {
                    Some(info.reason.clone())
                }
                _ => None,
            })
        })
        .unwrap_or_default();
    let retry_after = err
        .http_headers()
        .and_then(|h| h.get(http::header::RETRY_AFTER))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let message = err
        .status()
        .map(|s| s.message.clone())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| err.to_string());
    let kind = match (status, reason.as_str()) {
        (_, "rateLimitExceeded" | "userRateLimitExceeded") | (Some(429), _) => {
            ErrorKind::RateLimited { retry_after }
        }
        (_, "quotaExceeded") => ErrorKind::QuotaExceeded,
        (_, "notFound") => ErrorKind::NotFound,
        (_, "alreadyExists") => ErrorKind::Conflict,
        (_, "resourceInUseByAnotherResource" | "conditionNotMet") => ErrorKind::Conflict,
        (Some(401), _) => ErrorKind::Unauthenticated,
        // Google answers 403 both for missing permissions and for exhausted quotas.
        (Some(403), _) => ErrorKind::Unauthenticated,
        (Some(code), _) => ErrorKind::from_http_status(code, retry_after),
        (None, _) if err.is_timeout() || err.is_connect() || err.is_io() => ErrorKind::Unavailable,
        (None, _) if err.is_transport() || err.is_transient_and_before_rpc() => {
            ErrorKind::Unavailable
        }
        (None, _) if err.is_authentication() => ErrorKind::Unauthenticated,
        (None, _) if err.is_deserialization() => ErrorKind::Unexpected,
        (None, _) => match err.status().map(|s| s.code) {
            Some(Code::NotFound) => ErrorKind::NotFound,
            Some(Code::AlreadyExists) => ErrorKind::Conflict,
            Some(Code::ResourceExhausted) => ErrorKind::RateLimited { retry_after },
            Some(Code::Unavailable | Code::DeadlineExceeded) => ErrorKind::Unavailable,
            Some(Code::Unauthenticated) => ErrorKind::Unauthenticated,
            Some(Code::PermissionDenied) => ErrorKind::Unauthenticated,
            _ => ErrorKind::Unexpected,
        },
    };
    let mut excerpt: String = message.chars().take(300).collect();
    if let Some(code) = status {
        excerpt = format!("HTTP {code}: {excerpt}");
    }
    Error::new(kind, provider, operation)
        .with_message(excerpt)
        .with_source(err)
}

#[cfg(test)]
mod tests {
    use google_cloud_gax::error::Error as GaxError;
    use google_cloud_gax::error::rpc::Status;

    use super::*;

    /// A Google error body as the HTTP transport turns it into an error.
    fn google(status: u16, reason: &str) -> GaxError {
        let body = format!(
            r#"{{"error":{{"code":{status},"message":"m","errors":[{{"message":"m","domain":"global","reason":"{reason}"}}]}}}}"#
        );
        let raw = GaxError::http(status, http::HeaderMap::new(), body.into_bytes().into());
        let parsed = Status::try_from(raw.http_payload().expect("a payload")).expect("parses");
        GaxError::service_with_http_metadata(parsed, Some(status), None)
    }

    fn kind(status: u16, reason: &str) -> ErrorKind {
        parse_error("gce", Operation::ListNodes, google(status, reason)).kind()
    }

    #[test]
    fn google_errors_map_to_kinds() {
        assert_eq!(kind(404, "notFound"), ErrorKind::NotFound);
        assert_eq!(kind(409, "alreadyExists"), ErrorKind::Conflict);
        assert_eq!(kind(401, "authError"), ErrorKind::Unauthenticated);
        assert_eq!(kind(403, "forbidden"), ErrorKind::Unauthenticated);
        assert_eq!(kind(403, "quotaExceeded"), ErrorKind::QuotaExceeded);
        assert_eq!(kind(400, "invalid"), ErrorKind::InvalidInput);
        assert_eq!(kind(412, "conditionNotMet"), ErrorKind::Conflict);
        let limited = parse_error(
            "gce",
            Operation::ListNodes,
            google(429, "rateLimitExceeded"),
        );
        assert!(matches!(limited.kind(), ErrorKind::RateLimited { .. }));
        assert!(limited.is_temporary());
        let down = parse_error("gce", Operation::ListNodes, google(503, "backendError"));
        assert_eq!(down.kind(), ErrorKind::Unavailable);
        assert!(down.is_temporary());
        let timeout = parse_error("gce", Operation::ListNodes, GaxError::timeout("slow"));
        assert_eq!(timeout.kind(), ErrorKind::Unavailable);
        assert!(timeout.is_temporary());
    }
}
