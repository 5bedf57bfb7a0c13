//! The one error type every adapter returns.
//!
//! An [`Error`] says *what kind* of failure happened (so the orchestrator can decide
//! whether to retry, back off, trip a breaker or give up), whether it is temporary,
//! which provider and which operation failed, and keeps the underlying cause as its
//! source. Adapters map their API's failures to it in one `parse_error` function.

use std::fmt;
use std::time::Duration;

/// Shorthand for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, independent of the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The provider does not offer this operation (or this variant of it).
    Unsupported,
    /// The resource does not exist (any more).
    NotFound,
    /// The request conflicts with the resource's current state (already exists, busy).
    Conflict,
    /// The provider's rate limit was hit; `retry_after` is its own hint when it gave one.
    RateLimited {
        /// How long the provider asked us to wait, from `Retry-After` or reset headers.
        retry_after: Option<Duration>,
    },
    /// The provider (or its API) is not reachable or answered with a server error.
    Unavailable,
    /// The credentials are missing, wrong or expired.
    Unauthenticated,
    /// The request was malformed or named something invalid (region, size, config).
    InvalidInput,
    /// An account quota or limit prevents the operation.
    QuotaExceeded,
    /// Anything else: an answer DAMM did not expect (malformed JSON, a broken invariant).
    Unexpected,
}

impl ErrorKind {
    /// Whether failures of this kind are usually temporary.
    pub const fn is_temporary_by_default(self) -> bool {
        matches!(self, ErrorKind::RateLimited { .. } | ErrorKind::Unavailable)
    }

    /// The usual meaning of an HTTP status in a provider API; adapters refine it from the
    /// error body in their `parse_error`.
    ///
    /// ```
    /// use damm_provider::ErrorKind;
    /// assert_eq!(ErrorKind::from_http_status(404, None), ErrorKind::NotFound);
    /// assert!(ErrorKind::from_http_status(503, None).is_temporary_by_default());
    /// ```
    pub fn from_http_status(status: u16, retry_after: Option<Duration>) -> ErrorKind {
        match status {
            400 | 405 | 413 | 414 | 415 | 422 => ErrorKind::InvalidInput,
            401 | 403 => ErrorKind::Unauthenticated,
            404 | 410 => ErrorKind::NotFound,
            409 | 412 | 423 => ErrorKind::Conflict,
            429 => ErrorKind::RateLimited { retry_after },
            408 | 500 | 502 | 503 | 504 => ErrorKind::Unavailable,
            _ => ErrorKind::Unexpected,
        }
    }

    /// A short snake_case name, stable for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::RateLimited { .. } => "rate_limited",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Unauthenticated => "unauthenticated",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::Unexpected => "unexpected",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::RateLimited {
                retry_after: Some(d),
            } => write!(f, "rate limited (retry after {:.1}s)", d.as_secs_f64()),
            other => f.write_str(&other.as_str().replace('_', " ")),
        }
    }
}

/// The provider operation an error came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(missing_docs)] // each variant is the trait method of the same name
pub enum Operation {
    Configure,
    ListNodes,
    ProbeHealth,
    GetMetrics,
    CreateIngressNode,
    CreateEgressNode,
    DrainNode,
    RetireNode,
    AllocateIngressFrontdoor,
    ReleaseIngressFrontdoor,
    ListFrontdoors,
    AllocateEgressIp,
    ReleaseEgressIp,
    ListEgressIps,
    JoinOverlay,
    LeaveOverlay,
    ListMemberships,
    PublishFront,
    RepointFront,
    RetireFront,
    ListFronts,
    RegisterTunnel,
    RetireTunnel,
    ListTunnels,
}

impl Operation {
    /// The operation's snake_case name (the trait method's name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Configure => "configure",
            Operation::ListNodes => "list_nodes",
            Operation::ProbeHealth => "probe_health",
            Operation::GetMetrics => "get_metrics",
            Operation::CreateIngressNode => "create_ingress_node",
            Operation::CreateEgressNode => "create_egress_node",
            Operation::DrainNode => "drain_node",
            Operation::RetireNode => "retire_node",
            Operation::AllocateIngressFrontdoor => "allocate_ingress_frontdoor",
            Operation::ReleaseIngressFrontdoor => "release_ingress_frontdoor",
            Operation::ListFrontdoors => "list_frontdoors",
            Operation::AllocateEgressIp => "allocate_egress_ip",
            Operation::ReleaseEgressIp => "release_egress_ip",
            Operation::ListEgressIps => "list_egress_ips",
            Operation::JoinOverlay => "join_overlay",
            Operation::LeaveOverlay => "leave_overlay",
            Operation::ListMemberships => "list_memberships",
            Operation::PublishFront => "publish_front",
            Operation::RepointFront => "repoint_front",
            Operation::RetireFront => "retire_front",
            Operation::ListFronts => "list_fronts",
            Operation::RegisterTunnel => "register_tunnel",
            Operation::RetireTunnel => "retire_tunnel",
            Operation::ListTunnels => "list_tunnels",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A provider operation failed.
///
/// ```
/// use damm_provider::{Error, ErrorKind, Operation};
///
/// let err = Error::new(ErrorKind::Unavailable, "hetzner", Operation::ListNodes)
///     .with_message("HTTP 503 from /servers");
/// assert!(err.is_temporary());
/// assert_eq!(
///     err.to_string(),
///     "hetzner: list_nodes failed: unavailable: HTTP 503 from /servers (temporary)"
/// );
/// ```
pub struct Error {
    kind: ErrorKind,
    temporary: bool,
    provider: String,
    operation: Operation,
    message: String,
    request_id: Option<String>,
    source: Option<Source>,
}

impl Error {
    /// A new error; whether it is temporary defaults from the kind.
    pub fn new(kind: ErrorKind, provider: impl Into<String>, operation: Operation) -> Self {
        Error {
            kind,
            temporary: kind.is_temporary_by_default(),
            provider: provider.into(),
            operation,
            message: String::new(),
            request_id: None,
            source: None,
        }
    }

    /// Keeps the provider's id of the failed request (`x-request-id`, `cf-ray`, ...), which
    /// its support desk asks for. It is shown in the error's text.
    #[must_use]
    pub fn with_request_id(mut self, id: impl Into<String>) -> Self {
        let id: String = id.into();
        self.request_id = (!id.is_empty()).then_some(id);
        self
    }

    /// The provider's id of the failed request, when it sent one.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }

    /// Adds a human message (never a secret: it is logged).
    #[must_use]
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    /// Keeps the underlying cause.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<Source>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Overrides whether the failure may be retried.
    #[must_use]
    pub fn set_temporary(mut self, temporary: bool) -> Self {
        self.temporary = temporary;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether retrying later may succeed.
    pub fn is_temporary(&self) -> bool {
        self.temporary
    }

    /// The provider id (`hetzner`, `static-host`, ...).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The operation that failed.
    pub fn operation(&self) -> Operation {
        self.operation
    }

    /// The human message, possibly empty.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The provider's wait hint, for rate-limit errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            ErrorKind::RateLimited { retry_after } => retry_after,
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} failed: {}",
            self.provider, self.operation, self.kind
        )?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request {id}]")?;
        }
        if self.temporary {
            f.write_str(" (temporary)")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("temporary", &self.temporary)
            .field("provider", &self.provider)
            .field("operation", &self.operation)
            .field("message", &self.message)
            .field("request_id", &self.request_id)
            .field("source", &self.source.as_ref().map(|s| s.to_string()))
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_defaults_follow_the_kind() {
        let limited = Error::new(
            ErrorKind::RateLimited {
                retry_after: Some(Duration::from_secs(3)),
            },
            "vultr",
            Operation::CreateIngressNode,
        );
        assert!(limited.is_temporary());
        assert_eq!(limited.retry_after(), Some(Duration::from_secs(3)));
        let missing = Error::new(ErrorKind::NotFound, "vultr", Operation::RetireNode);
        assert!(!missing.is_temporary());
        assert!(missing.set_temporary(true).is_temporary());
    }

    #[test]
    fn the_request_id_is_shown() {
        let err = Error::new(ErrorKind::Unavailable, "vultr", Operation::ListNodes)
            .with_message("HTTP 503")
            .with_request_id("abc-123");
        assert_eq!(err.request_id(), Some("abc-123"));
        assert_eq!(
            err.to_string(),
            "vultr: list_nodes failed: unavailable: HTTP 503 [request abc-123] (temporary)"
        );
        let none =
            Error::new(ErrorKind::NotFound, "vultr", Operation::ListNodes).with_request_id("");
        assert_eq!(none.request_id(), None);
    }

    #[test]
    fn source_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let err =
            Error::new(ErrorKind::Unavailable, "hetzner", Operation::ProbeHealth).with_source(io);
        let source = std::error::Error::source(&err).expect("source kept");
        assert_eq!(source.to_string(), "refused");
    }
}
