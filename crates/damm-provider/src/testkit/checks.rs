//! What an adapter's own tests share beyond the conformance suite: the specs they create
//! in the test region, the listings they read back, and the checks of the errors a
//! simulator's injected failures must turn into.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use damm_provider::testkit::{checks, memory::MemoryProvider};
//! use damm_provider::{ErrorKind, NodeRef, NodeRole, Provider};
//!
//! let provider = MemoryProvider::full("memory");
//! let fleet = provider.fleet().as_str().to_owned();
//! let compute = provider.compute().unwrap();
//! let spec = checks::node_spec(&fleet, "k1", NodeRole::Ingress);
//! compute.create_node(&spec).await.unwrap();
//! assert_eq!(checks::nodes(&provider).await.len(), 1);
//! let err = compute.drain_node(&NodeRef::new("memory", "nobody")).await;
//! checks::expect_err(err, ErrorKind::NotFound);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::config::AdapterConfig;
use crate::{
    AddressSpec, Compute, EgressIp, Error, ErrorKind, FleetId, Frontdoor, IdempotencyKey, Labels,
    Node, NodeFilter, NodeRef, NodeRole, NodeSpec, NodeState, Provider, Region, Result,
};

/// The DAMM region the adapters' tests create their resources in.
pub const TEST_REGION: &str = "eu-central";

/// The size profile the adapters' tests create their nodes with.
pub const TEST_PROFILE: &str = "small";

/// How many times [`wait_running`] looks before it gives up.
const RUNNING_LOOKS: u32 = 200;

/// `T`'s defaults with `change` made to them: an injected fault, or a setting, written on
/// one line (`sim.set_faults(provider, changed(|f| f.error_rate = 1.0))`).
pub fn changed<T: Default>(change: impl FnOnce(&mut T)) -> T {
    let mut value = T::default();
    change(&mut value);
    value
}

/// Fleet `name`.
///
/// # Panics
///
/// When `name` is not a valid fleet id.
pub fn fleet(name: &str) -> FleetId {
    FleetId::new(name).expect("a valid fleet id")
}

/// A node spec of fleet `fleet` with key `key`, in [`TEST_REGION`] with [`TEST_PROFILE`].
///
/// # Panics
///
/// When `fleet` or `key` is not valid.
pub fn node_spec(fleet: &str, key: &str, role: NodeRole) -> NodeSpec {
    NodeSpec::new(
        &self::fleet(fleet),
        IdempotencyKey::new(key).expect("a valid idempotency key"),
        Region::new(TEST_REGION).expect("a valid region"),
        role,
        TEST_PROFILE,
    )
}

/// An address spec of fleet `fleet` with key `key` in [`TEST_REGION`], for `node` if given.
///
/// # Panics
///
/// When `fleet` or `key` is not valid.
pub fn address_spec(fleet: &str, key: &str, node: Option<NodeRef>) -> AddressSpec {
    let key = IdempotencyKey::new(key).expect("a valid idempotency key");
    AddressSpec {
        labels: Labels::owned(&self::fleet(fleet), &key),
        key,
        region: Region::new(TEST_REGION).expect("a valid region"),
        node,
    }
}

/// Creates `count` nodes of fleet `fleet` in role `role`, keyed `page-0`, `page-1`, ...
/// (more than a listing page holds, when a test sets a small page size).
///
/// # Panics
///
/// When a create fails.
pub async fn create_nodes(
    compute: &dyn Compute,
    fleet: &str,
    role: NodeRole,
    count: usize,
) -> Vec<Node> {
    let mut nodes = Vec::with_capacity(count);
    for i in 0..count {
        let spec = node_spec(fleet, &format!("page-{i}"), role);
        nodes.push(
            compute
                .create_node(&spec)
                .await
                .expect("the node is created"),
        );
    }
    nodes
}

/// Every node the provider lists for its fleet.
///
/// # Panics
///
/// When the listing fails.
pub async fn nodes(provider: &dyn Provider) -> Vec<Node> {
    provider
        .list_nodes(&NodeFilter::all())
        .await
        .expect("the nodes are listed")
}

/// Every front door the provider lists for its fleet.
///
/// # Panics
///
/// When the provider has no ingress or the listing fails.
pub async fn frontdoors(provider: &dyn Provider) -> Vec<Frontdoor> {
    let ingress = provider.ingress().expect("the provider has ingress");
    ingress
        .list_frontdoors()
        .await
        .expect("the front doors are listed")
}

/// Every egress IP the provider lists for its fleet.
///
/// # Panics
///
/// When the provider has no egress or the listing fails.
pub async fn egress_ips(provider: &dyn Provider) -> Vec<EgressIp> {
    let egress = provider.egress().expect("the provider has egress");
    egress
        .list_egress_ips()
        .await
        .expect("the egress IPs are listed")
}

/// Waits, looking every `poll` (a bounded number of times), until `node` is listed as
/// running.
///
/// # Panics
///
/// When the node never runs or a listing fails.
pub async fn wait_running(provider: &dyn Provider, node: &NodeRef, poll: Duration) {
    for _ in 0..RUNNING_LOOKS {
        let running = nodes(provider)
            .await
            .iter()
            .any(|n| n.reference == *node && n.state == NodeState::Running);
        if running {
            return;
        }
        tokio::time::sleep(poll).await;
    }
    panic!("{node} never ran");
}

/// Checks that creates of fleet `fleet` where the adapter cannot place them are refused
/// as invalid input: in a region its table does not map (`mars`), and with a profile it
/// does not know (`huge`, named in the message).
///
/// # Panics
///
/// When either create is not refused so.
pub async fn check_unplaceable_creates(compute: &dyn Compute, fleet: &str) {
    let mut far = node_spec(fleet, "bad-region", NodeRole::Ingress);
    far.region = Region::new("mars").expect("a valid region");
    expect_err(compute.create_node(&far).await, ErrorKind::InvalidInput);
    let mut huge = node_spec(fleet, "bad-profile", NodeRole::Ingress);
    huge.profile = "huge".into();
    let err = expect_err(compute.create_node(&huge).await, ErrorKind::InvalidInput);
    assert!(err.to_string().contains("huge"), "{err}");
}

/// The error of `result`, which must have failed with `kind`.
///
/// # Panics
///
/// When `result` succeeded or failed with another kind.
#[track_caller]
pub fn expect_err<T: fmt::Debug>(result: Result<T>, kind: ErrorKind) -> Error {
    let err = result.expect_err("the call fails");
    assert_eq!(err.kind(), kind, "{err}");
    err
}

/// Checks the error of `result` as [`expect_err`] does, and that it is (or is not)
/// `temporary`.
///
/// # Panics
///
/// When any of that does not hold.
#[track_caller]
pub fn expect_failure<T: fmt::Debug>(result: Result<T>, kind: ErrorKind, temporary: bool) -> Error {
    let err = expect_err(result, kind);
    assert_eq!(err.is_temporary(), temporary, "temporary: {err}");
    err
}

/// Checks that `err` reports a rate limit: kind `RateLimited` with the wait the provider
/// asked for, and temporary.
///
/// # Panics
///
/// When it does not.
#[track_caller]
pub fn assert_rate_limited(err: &Error) {
    assert!(
        matches!(
            err.kind(),
            ErrorKind::RateLimited {
                retry_after: Some(_)
            }
        ),
        "{err}"
    );
    assert!(err.retry_after().is_some() && err.is_temporary(), "{err}");
}

/// A read every provider answers, through which a test sees an injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `list_nodes` of the whole fleet (retried on temporary failures).
    Nodes,
    /// `probe_health` of the API (one attempt).
    ApiHealth,
}

impl Read {
    /// Makes the read, keeping only whether it failed.
    pub async fn on(self, provider: &dyn Provider) -> Result<()> {
        match self {
            Read::Nodes => provider.list_nodes(&NodeFilter::all()).await.map(drop),
            Read::ApiHealth => provider.probe_health(&crate::Target::Api).await.map(drop),
        }
    }
}

/// Faults for a simulator, in the form its `PUT /_sim/faults/{provider}` takes (the
/// simulator's `Faults` deserializes from it), so that the checks here can name them
/// without knowing the simulator's types.
///
/// # Panics
///
/// When `F` does not read `json`: the simulator changed its fault names.
fn faults<F: DeserializeOwned>(json: &str) -> F {
    serde_json::from_str(json).expect("the simulator reads its fault names")
}

/// The rate-limit contract, with `inject` setting a simulator's faults: a short storm of
/// 429s (2) is waited out by `waited_out`, a long one (50) makes `reported` fail as
/// [`assert_rate_limited`] checks. Returns that error.
///
/// # Panics
///
/// When either half of the contract does not hold.
pub async fn check_rate_limits<F: DeserializeOwned, A: fmt::Debug, B: fmt::Debug>(
    inject: impl Fn(F),
    waited_out: impl Future<Output = Result<A>>,
    reported: impl Future<Output = Result<B>>,
) -> Error {
    inject(faults(r#"{"rate_limit_storm": 2}"#));
    waited_out
        .await
        .expect("a short storm of 429s is waited out");
    inject(faults(r#"{"rate_limit_storm": 50}"#));
    let err = reported
        .await
        .expect_err("a long storm of 429s is reported");
    assert_rate_limited(&err);
    err
}

/// One failure a simulator injects and what every read must then fail with.
struct Failure {
    what: &'static str,
    faults: &'static str,
    kind: ErrorKind,
    temporary: Option<bool>,
}

/// The failures every simulator can inject, and the error each must become.
const FAILURES: &[Failure] = &[
    Failure {
        what: "server errors",
        faults: r#"{"error_rate": 1.0}"#,
        kind: ErrorKind::Unavailable,
        temporary: Some(true),
    },
    Failure {
        what: "malformed answers",
        faults: r#"{"malformed_rate": 1.0}"#,
        kind: ErrorKind::Unexpected,
        temporary: None,
    },
    Failure {
        what: "an unavailable API",
        faults: r#"{"dark": "unavailable"}"#,
        kind: ErrorKind::Unavailable,
        temporary: Some(true),
    },
    Failure {
        what: "refused connections",
        faults: r#"{"dark": "refuse"}"#,
        kind: ErrorKind::Unavailable,
        temporary: Some(true),
    },
    Failure {
        what: "a request past its timeout",
        faults: r#"{"latency_ms": 2000}"#,
        kind: ErrorKind::Unavailable,
        temporary: Some(true),
    },
];

/// The failure contract, with `inject` setting a simulator's faults: server errors,
/// malformed answers, an unavailable or refusing API and answers slower than the
/// request timeout (which must be below 2 s) each make both [`Read`]s fail with the
/// kind the shared error model gives them, temporary where a retry may help. Clears the
/// faults afterwards (`inject` of no faults) and checks that the provider recovers.
///
/// # Panics
///
/// When any of that does not hold.
pub async fn check_failures<F: DeserializeOwned>(provider: &dyn Provider, inject: impl Fn(F)) {
    for failure in FAILURES {
        inject(faults(failure.faults));
        for read in [Read::Nodes, Read::ApiHealth] {
            let err = read
                .on(provider)
                .await
                .expect_err(&format!("{}: {read:?} fails", failure.what));
            assert_eq!(err.kind(), failure.kind, "{}: {err}", failure.what);
            if let Some(temporary) = failure.temporary {
                assert_eq!(err.is_temporary(), temporary, "{}: {err}", failure.what);
            }
        }
    }
    inject(faults("{}"));
    for read in [Read::Nodes, Read::ApiHealth] {
        read.on(provider)
            .await
            .expect("recovers when the fault clears");
    }
}

/// Checks that neither `err` nor the provider's Debug form shows `secret`.
///
/// # Panics
///
/// When one of them does.
#[track_caller]
pub fn assert_hidden(secret: &str, err: &Error, provider: &dyn Provider) {
    for shown in [err.to_string(), format!("{err:?}"), format!("{provider:?}")] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

/// The settings of adapter `adapter` read from `env` alone (neither a file nor the
/// process environment), as a config module's tests read them; the error as its text.
pub fn settings<T: DeserializeOwned>(
    adapter: &str,
    env: &[(&str, &str)],
) -> std::result::Result<T, String> {
    AdapterConfig::new(fleet("f"), adapter)
        .with_env(env.iter().copied())
        .load(adapter)
        .map_err(|e| e.to_string())
}

/// Checks that the Debug form `shown` of some settings shows none of `secrets`, and shows
/// `[redacted]` in their place.
///
/// # Panics
///
/// When it does not.
#[track_caller]
pub fn assert_redacted(shown: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains("[redacted]"), "{shown}");
}

/// An HTTP API called directly with a bearer token, as other tooling on the same account
/// calls it: to plant resources the adapter must leave alone, or to look behind its back.
#[cfg(feature = "http")]
#[derive(Debug, Clone)]
pub struct RawApi {
    client: crate::http::reqwest::Client,
    base: String,
    token: String,
}

#[cfg(feature = "http")]
impl RawApi {
    /// The API at `base` (paths are appended to it), called with bearer `token`.
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        RawApi {
            client: crate::http::reqwest::Client::new(),
            base: base.into(),
            token: token.into(),
        }
    }

    /// Calls `method` on `path` with the JSON `body`, if any: the status and the JSON
    /// answer (`null` when the answer is not JSON).
    ///
    /// # Panics
    ///
    /// When the request cannot be sent or its answer cannot be read.
    pub async fn call(
        &self,
        method: crate::http::reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the request is sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("the answer is read");
        (status, serde_json::from_str(&text).unwrap_or_default())
    }

    /// `GET path`, as [`RawApi::call`].
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call(crate::http::reqwest::Method::GET, path, None)
            .await
    }

    /// `POST path` with `body`, as [`RawApi::call`].
    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call(crate::http::reqwest::Method::POST, path, Some(body))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::memory::MemoryProvider;

    #[tokio::test]
    async fn specs_and_listings_come_from_the_test_region() {
        let provider = MemoryProvider::full("memory");
        let fleet = provider.fleet().as_str().to_owned();
        let spec = node_spec(&fleet, "k1", NodeRole::Egress);
        assert_eq!(spec.region.as_str(), TEST_REGION);
        assert_eq!(spec.profile, TEST_PROFILE);
        assert!(spec.labels.is_owned_by(provider.fleet()));
        let node = provider
            .compute()
            .unwrap()
            .create_node(&spec)
            .await
            .unwrap();
        wait_running(&provider, &node.reference, Duration::from_millis(1)).await;
        assert_eq!(nodes(&provider).await.len(), 1);
        let address = address_spec(&fleet, "a1", Some(node.reference.clone()));
        assert_eq!(address.node, Some(node.reference));
        assert!(frontdoors(&provider).await.is_empty());
        assert!(egress_ips(&provider).await.is_empty());
    }

    #[test]
    fn errors_are_checked_by_kind_and_temporariness() {
        let unavailable: Result<()> = Err(Error::new(
            ErrorKind::Unavailable,
            "memory",
            crate::Operation::ListNodes,
        )
        .with_message("down")
        .set_temporary(true));
        let err = expect_failure(unavailable, ErrorKind::Unavailable, true);
        assert_eq!(err.message(), "down");
        let wrong = std::panic::catch_unwind(|| {
            expect_err::<()>(Ok(()), ErrorKind::NotFound);
        });
        assert!(wrong.is_err(), "a success is not the expected failure");
    }
}
