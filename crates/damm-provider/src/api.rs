//! What every adapter's API client shares, whether it speaks HTTP itself ([`crate::http`])
//! or through a provider's SDK (hcloud, aws-sdk-ec2, google-cloud-compute-v1, cloudflare):
//!
//! - [`Calls`]: one provider instance's rate limits and retry policies, and the one rule
//!   of which operations make a single attempt (probes and metrics: the orchestrator
//!   probes again next tick, and a probe measures one answer);
//! - [`collect_pages`]: the one pagination driver. Page numbers, opaque cursors and
//!   "next" links all become a [`Page`] with a [`NextPage`]; the driver follows them,
//!   refuses a listing that ends short of its announced total (a truncated inventory
//!   would make the missing resources look deleted), stops a cursor that repeats itself,
//!   and bounds the number of pages. With a total on the first page of a numbered
//!   listing, it fetches the remaining pages side by side;
//! - what every adapter does around those calls: [`create_or_adopt`] (a create made safe
//!   by its key, not by a blind retry), [`require_owned`] (a spec must carry the fleet's
//!   labels), [`AddressParts`] (one provider address as a front door or an egress IP),
//!   [`create_operation`], [`node_verdict`], [`probe_signal`] and [`probe_metrics`] (a
//!   probe's verdict, timed).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use damm_provider::api::{collect_pages, NextPage, Page, Paging};
//! use damm_provider::Operation;
//!
//! // Three pages of two, numbered from 1, with the total on each page.
//! let items: Vec<u32> = collect_pages("demo", Operation::ListNodes, "GET /things",
//!     Paging::default(), |at: NextPage| async move {
//!         let page = match at { NextPage::Number(n) => n, _ => 1 };
//!         let items = vec![page as u32 * 10, page as u32 * 10 + 1];
//!         let next = (page < 3).then_some(NextPage::Number(page + 1));
//!         Ok(Page { items, next, total: Some(6) })
//!     })
//!     .await
//!     .unwrap();
//! assert_eq!(items, [10, 11, 20, 21, 30, 31]);
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use futures::StreamExt as _;

use crate::retry::{RateLimit, RetryPolicy};
use crate::{
    Error, ErrorKind, FleetId, HealthSignal, HealthStatus, IdempotencyKey, Labels, Metrics,
    NodeRole, NodeState, Operation, Result, Target,
};

/// A provider instance's rate limits and retry policies. Clones share the buckets.
#[derive(Debug, Clone)]
pub struct Calls {
    provider: Arc<str>,
    limits: Arc<[RateLimit]>,
    retry: RetryPolicy,
}

impl Calls {
    /// Calls of `provider` under `limits` (every bucket of its documented limits), with
    /// the default [`RetryPolicy`].
    pub fn new(provider: &str, limits: Vec<RateLimit>) -> Calls {
        Calls {
            provider: provider.into(),
            limits: limits.into(),
            retry: RetryPolicy::default(),
        }
    }

    /// The same buckets under another retry policy.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Calls {
        self.retry = retry;
        self
    }

    /// The provider instance's id.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// The rate limits (for metrics and tests).
    pub fn limits(&self) -> &[RateLimit] {
        &self.limits
    }

    /// The retry policy for `operation`: one attempt for probes and metrics, the
    /// configured policy for everything else.
    pub fn policy(&self, operation: Operation) -> RetryPolicy {
        match operation {
            Operation::ProbeHealth | Operation::GetMetrics => RetryPolicy::none(),
            _ => self.retry.clone(),
        }
    }

    /// Runs `call` under the rate limits, retrying temporary failures when `idempotent`
    /// (see [`RetryPolicy::run`]). A create passes `false`: it is made safe by its
    /// idempotency key, never by a blind retry.
    pub async fn run<T, F, Fut>(&self, operation: Operation, idempotent: bool, call: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        self.policy(operation)
            .run(&self.limits, idempotent, call)
            .await
    }

    /// [`Calls::run`] for a call of a provider's SDK, whose failures the adapter's one
    /// `parse_error(provider, operation, failure)` maps to an [`Error`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use damm_provider::api::Calls;
    /// use damm_provider::retry::RateLimit;
    /// use damm_provider::{Error, ErrorKind, Operation};
    ///
    /// fn parse_error(provider: &str, operation: Operation, status: u16) -> Error {
    ///     Error::new(ErrorKind::from_http_status(status, None), provider, operation)
    /// }
    /// let calls = Calls::new("demo", vec![RateLimit::per_second(10)]);
    /// let err = calls
    ///     .run_mapped(Operation::ListNodes, true, parse_error, || async { Err::<(), u16>(404) })
    ///     .await
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::NotFound);
    /// assert_eq!(err.provider(), "demo");
    /// # }
    /// ```
    pub async fn run_mapped<T, E, F, Fut, P>(
        &self,
        operation: Operation,
        idempotent: bool,
        parse_error: P,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
        P: Fn(&str, Operation, E) -> Error,
    {
        let parse_error = &parse_error;
        self.run(operation, idempotent, || {
            let answer = call();
            async move {
                answer
                    .await
                    .map_err(|failure| parse_error(&self.provider, operation, failure))
            }
        })
        .await
    }

    /// An [`ErrorKind::Unexpected`] error of this provider (a broken answer).
    pub fn unexpected(&self, operation: Operation, message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unexpected, &*self.provider, operation).with_message(message)
    }
}

/// A create's outcome, made safe by its idempotency key rather than by a blind retry: what
/// the create made; or, when it failed in a way that may hide an earlier success (a
/// temporary failure may have lost the answer; a conflict is a replay meeting what the
/// first attempt made), what `adopt` finds under the key. When `adopt` finds nothing,
/// the create's own error stands.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use damm_provider::api::create_or_adopt;
/// use damm_provider::{Error, ErrorKind, Operation};
///
/// let lost = Error::new(ErrorKind::Unavailable, "demo", Operation::CreateIngressNode)
///     .set_temporary(true);
/// let node = create_or_adopt(Err(lost), || async { Ok(Some("node-1")) }).await;
/// assert_eq!(node.unwrap(), "node-1");
/// # }
/// ```
pub async fn create_or_adopt<T, Fut>(created: Result<T>, adopt: impl FnOnce() -> Fut) -> Result<T>
where
    Fut: Future<Output = Result<Option<T>>>,
{
    match created {
        Err(e) if e.kind() == ErrorKind::Conflict || e.is_temporary() => adopt().await?.ok_or(e),
        other => other,
    }
}

/// Checks that a spec carries the fleet's label and its own key (as the planner makes
/// them): whatever an adapter creates must be found again by both.
///
/// ```
/// use damm_provider::api::require_owned;
/// use damm_provider::{FleetId, IdempotencyKey, Labels, Operation};
///
/// let fleet = FleetId::new("prod").unwrap();
/// let key = IdempotencyKey::new("node-1").unwrap();
/// let op = Operation::CreateIngressNode;
/// assert!(require_owned("demo", &fleet, &Labels::owned(&fleet, &key), &key, op).is_ok());
/// assert!(require_owned("demo", &fleet, &Labels::new(), &key, op).is_err());
/// ```
pub fn require_owned(
    provider: &str,
    fleet: &FleetId,
    labels: &Labels,
    key: &IdempotencyKey,
    operation: Operation,
) -> Result<()> {
    if labels.is_owned_by(fleet) && labels.key().as_ref() == Some(key) {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidInput, provider, operation)
            .with_message(format!("spec {key} must carry the fleet label and its key")))
    }
}

pub use crate::addresses::{AddressParts, AddressRole};

/// A lookup's answer: `None` when the resource is not there (any more).
pub fn found<T>(answer: Result<T>) -> Result<Option<T>> {
    match answer {
        Ok(value) => Ok(Some(value)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A removal's answer: `true` when done now, `false` when it was already gone.
pub fn gone_is_fine<T>(answer: Result<T>) -> Result<bool> {
    found(answer).map(|done| done.is_some())
}

/// The operation that creates a node of `role`.
pub fn create_operation(role: NodeRole) -> Operation {
    match role {
        NodeRole::Ingress => Operation::CreateIngressNode,
        NodeRole::Egress => Operation::CreateEgressNode,
    }
}

/// A node probe's verdict from the state its provider reports (`what` names the
/// provider's machine: `server`, `instance`): running or draining is healthy, booting
/// is unknown yet, anything else is down.
///
/// ```
/// use damm_provider::api::node_verdict;
/// use damm_provider::{HealthStatus, NodeState};
///
/// assert_eq!(node_verdict(NodeState::Draining, "server").0, HealthStatus::Healthy);
/// assert_eq!(node_verdict(NodeState::Stopped, "server").1, "server stopped");
/// ```
pub fn node_verdict(state: NodeState, what: &str) -> (HealthStatus, String) {
    match state {
        NodeState::Running | NodeState::Draining => {
            (HealthStatus::Healthy, format!("{what} running"))
        }
        NodeState::Provisioning => (HealthStatus::Unknown, format!("{what} starting")),
        other => (
            HealthStatus::Down,
            format!("{what} {other:?}").to_lowercase(),
        ),
    }
}

/// A probe's verdict as the [`HealthSignal`] of `target`, observed now, with the time
/// since `started` as its round-trip time.
pub fn probe_signal(
    target: &Target,
    started: std::time::Instant,
    (status, detail): (HealthStatus, String),
) -> HealthSignal {
    HealthSignal {
        target: target.clone(),
        status,
        rtt: Some(started.elapsed()),
        observed_at: chrono::Utc::now(),
        detail,
    }
}

/// The metrics a probe measures: its round-trip time, nothing else (for providers whose
/// API reports no usage).
pub fn probe_metrics(signal: HealthSignal) -> Metrics {
    let mut metrics = Metrics::empty(signal.target, signal.observed_at);
    metrics.rtt = signal.rtt;
    metrics
}

/// Where the next page of a listing is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextPage {
    /// The first page (no page parameter sent).
    First,
    /// A page number.
    Number(u64),
    /// An opaque cursor or token from the previous page (a `links.next`, a `nextToken`).
    Token(String),
}

/// One page of a listing, as an adapter reads it from its API's answer.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The page's items.
    pub items: Vec<T>,
    /// Where the next page is; `None` on the last page.
    pub next: Option<NextPage>,
    /// How many items the whole listing holds, when the API says.
    pub total: Option<u64>,
}

impl<T> Page<T> {
    /// The last (or only) page.
    pub fn last(items: Vec<T>) -> Page<T> {
        Page {
            items,
            next: None,
            total: None,
        }
    }
}

/// How [`collect_pages`] walks a listing.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    /// Pages followed at most (a guard against a server that never ends).
    pub max_pages: u64,
    /// Pages fetched side by side once the first page of a numbered listing has told the
    /// total; 1 fetches one after the other.
    pub concurrency: usize,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            max_pages: 10_000,
            concurrency: 1,
        }
    }
}

impl Paging {
    /// Fetches up to `n` pages at once when the total is known from the first page.
    #[must_use]
    pub fn concurrent(mut self, n: usize) -> Paging {
        self.concurrency = n.max(1);
        self
    }
}

/// Every item of a listing: `fetch` answers the page at a [`NextPage`] (starting at
/// [`NextPage::First`]). `what` names the listing in errors (`GET /servers`).
///
/// Errors, all temporary [`ErrorKind::Unexpected`] (the next tick lists again):
/// - the listing ended (no next page, or an empty page) short of a total it announced;
/// - a cursor repeated itself, or a page number did not move forward;
/// - more than [`Paging::max_pages`] pages.
pub async fn collect_pages<T, F, Fut>(
    provider: &str,
    operation: Operation,
    what: &str,
    paging: Paging,
    mut fetch: F,
) -> Result<Vec<T>>
where
    F: FnMut(NextPage) -> Fut,
    Fut: Future<Output = Result<Page<T>>>,
{
    let broken = |message: String| {
        Error::new(ErrorKind::Unexpected, provider, operation)
            .with_message(format!("{what}: {message}"))
            .set_temporary(true)
    };
    let first = fetch(NextPage::First).await?;
    let mut all = first.items;
    let mut least_total = first.total;
    let mut next = if all.is_empty() { None } else { first.next };

    // A numbered listing that told its total up front: the other pages side by side.
    if paging.concurrency > 1
        && let (Some(NextPage::Number(2)), Some(total)) = (&next, first.total)
        && !all.is_empty()
    {
        let per_page = all.len() as u64;
        let last = total.div_ceil(per_page).min(paging.max_pages);
        let rest: Vec<Fut> = (2..=last).map(|n| fetch(NextPage::Number(n))).collect();
        let mut pages = futures::stream::iter(rest).buffered(paging.concurrency);
        while let Some(page) = pages.next().await {
            let page = page?;
            all.extend(page.items);
            least_total = min_total(least_total, page.total);
        }
        return complete(all, least_total, last, &broken);
    }

    let mut fetched: u64 = 1;
    let mut at = NextPage::First;
    loop {
        let Some(step) = next.take() else {
            return complete(all, least_total, fetched, &broken);
        };
        let moved = match (&at, &step) {
            (_, NextPage::First) => false,
            (NextPage::Number(a), NextPage::Number(b)) => b > a,
            (NextPage::Token(a), NextPage::Token(b)) => a != b && !b.is_empty(),
            (NextPage::Token(_), NextPage::Number(_)) => true,
            (NextPage::First, NextPage::Number(b)) => *b > 1,
            (_, NextPage::Token(b)) => !b.is_empty(),
        };
        if !moved {
            // A cursor pointing at itself ends here; the total (if any) decides below.
            return complete(all, least_total, fetched, &broken);
        }
        if fetched >= paging.max_pages {
            return Err(broken(format!("did not end after {fetched} pages")));
        }
        let page = fetch(step.clone()).await?;
        fetched += 1;
        at = step;
        let empty = page.items.is_empty();
        all.extend(page.items);
        least_total = min_total(least_total, page.total);
        next = if empty { None } else { page.next };
    }
}

/// The smaller of two totals: resources deleted between pages lower it, and the listing
/// is complete when it holds the smaller one.
fn min_total(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn complete<T>(
    all: Vec<T>,
    total: Option<u64>,
    pages: u64,
    broken: &impl Fn(String) -> Error,
) -> Result<Vec<T>> {
    match total {
        Some(total) if (all.len() as u64) < total => Err(broken(format!(
            "the listing ended after {pages} pages with {} of its {total} items",
            all.len()
        ))),
        _ => Ok(all),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A listing of `n` items served `per_page` at a time, by number, with the total.
    fn numbered(
        n: u64,
        per_page: u64,
        total: Option<u64>,
        seen: &Mutex<Vec<NextPage>>,
    ) -> impl FnMut(NextPage) -> std::future::Ready<Result<Page<u64>>> + '_ {
        move |at| {
            seen.lock().unwrap().push(at.clone());
            let page = match at {
                NextPage::First => 1,
                NextPage::Number(p) => p,
                NextPage::Token(_) => unreachable!(),
            };
            let start = (page - 1) * per_page;
            let items: Vec<u64> = (start..(start + per_page).min(n)).collect();
            let next = (start + per_page < n).then_some(NextPage::Number(page + 1));
            std::future::ready(Ok(Page { items, next, total }))
        }
    }

    #[tokio::test]
    async fn numbered_pages_are_followed_in_order() {
        let seen = Mutex::new(Vec::new());
        let all = collect_pages(
            "p",
            Operation::ListNodes,
            "GET /x",
            Paging::default(),
            numbered(25, 10, Some(25), &seen),
        )
        .await
        .unwrap();
        assert_eq!(all, (0..25).collect::<Vec<_>>());
        assert_eq!(
            *seen.lock().unwrap(),
            [NextPage::First, NextPage::Number(2), NextPage::Number(3)]
        );
    }

    #[tokio::test]
    async fn a_known_total_fetches_the_rest_side_by_side_and_in_order() {
        let seen = Mutex::new(Vec::new());
        let all = collect_pages(
            "p",
            Operation::ListNodes,
            "GET /x",
            Paging::default().concurrent(4),
            numbered(95, 10, Some(95), &seen),
        )
        .await
        .unwrap();
        assert_eq!(all, (0..95).collect::<Vec<_>>());
        assert_eq!(seen.lock().unwrap().len(), 10);
    }

    #[tokio::test]
    async fn a_listing_short_of_its_total_is_an_error_never_a_truncated_inventory() {
        for paging in [Paging::default(), Paging::default().concurrent(3)] {
            let seen = Mutex::new(Vec::new());
            // 30 items served, 40 announced.
            let err = collect_pages(
                "p",
                Operation::ListNodes,
                "GET /x",
                paging,
                numbered(30, 10, Some(40), &seen),
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Unexpected);
            assert!(err.is_temporary());
            assert!(err.message().contains("30 of its 40"), "{}", err.message());
        }
    }

    #[tokio::test]
    async fn cursors_that_repeat_or_never_end_are_stopped() {
        // A cursor pointing at itself ends the listing (and the total decides).
        let mut calls = 0;
        let all = collect_pages(
            "p",
            Operation::ListNodes,
            "GET /x",
            Paging::default(),
            |_at| {
                calls += 1;
                std::future::ready(Ok(Page {
                    items: vec![calls],
                    next: Some(NextPage::Token("same".into())),
                    total: None,
                }))
            },
        )
        .await
        .unwrap();
        assert_eq!(all, [1, 2]);
        // A server that always has another page.
        let mut n = 0u64;
        let err = collect_pages(
            "p",
            Operation::ListNodes,
            "GET /x",
            Paging {
                max_pages: 5,
                concurrency: 1,
            },
            |_at| {
                n += 1;
                std::future::ready(Ok(Page {
                    items: vec![n],
                    next: Some(NextPage::Token(format!("c{n}"))),
                    total: None,
                }))
            },
        )
        .await
        .unwrap_err();
        assert!(err.message().contains("did not end after 5 pages"), "{err}");
    }

    #[tokio::test]
    async fn an_empty_page_ends_the_listing_and_errors_propagate() {
        let all: Vec<u32> = collect_pages(
            "p",
            Operation::ListNodes,
            "GET /x",
            Paging::default(),
            |at| {
                let items = if at == NextPage::First {
                    vec![1]
                } else {
                    vec![]
                };
                std::future::ready(Ok(Page {
                    items,
                    next: Some(NextPage::Number(2)),
                    total: None,
                }))
            },
        )
        .await
        .unwrap();
        assert_eq!(all, [1]);
        let err = collect_pages::<u32, _, _>(
            "p",
            Operation::ListNodes,
            "GET /x",
            Paging::default(),
            |_| {
                std::future::ready(Err(Error::new(
                    ErrorKind::Unauthenticated,
                    "p",
                    Operation::ListNodes,
                )))
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[tokio::test(start_paused = true)]
    async fn probes_make_one_attempt_and_reads_retry() {
        let calls = Calls::new("p", vec![RateLimit::per_second(100)]);
        for (operation, expected) in [
            (Operation::ProbeHealth, 1),
            (Operation::GetMetrics, 1),
            (Operation::ListNodes, RetryPolicy::default().max_attempts),
        ] {
            let mut n = 0;
            let _ = calls
                .run(operation, true, || {
                    n += 1;
                    std::future::ready(Err::<(), _>(Error::new(
                        ErrorKind::Unavailable,
                        "p",
                        operation,
                    )))
                })
                .await;
            assert_eq!(n, expected, "{operation}");
        }
    }

    #[test]
    fn specs_must_carry_the_fleet_and_their_key() {
        let fleet = FleetId::new("f").unwrap();
        let key = IdempotencyKey::new("k").unwrap();
        let op = Operation::AllocateEgressIp;
        assert!(require_owned("p", &fleet, &Labels::owned(&fleet, &key), &key, op).is_ok());
        let other_key = IdempotencyKey::new("other").unwrap();
        let other_fleet = FleetId::new("g").unwrap();
        for labels in [
            Labels::owned(&fleet, &other_key),
            Labels::owned(&other_fleet, &key),
        ] {
            let err = require_owned("p", &fleet, &labels, &key, op).unwrap_err();
            assert_eq!((err.kind(), err.operation()), (ErrorKind::InvalidInput, op));
        }
    }

    #[test]
    fn node_states_read_as_verdicts() {
        assert_eq!(
            create_operation(NodeRole::Egress),
            Operation::CreateEgressNode
        );
        for (state, status, detail) in [
            (
                NodeState::Running,
                HealthStatus::Healthy,
                "instance running",
            ),
            (
                NodeState::Draining,
                HealthStatus::Healthy,
                "instance running",
            ),
            (
                NodeState::Provisioning,
                HealthStatus::Unknown,
                "instance starting",
            ),
            (NodeState::Stopped, HealthStatus::Down, "instance stopped"),
            (NodeState::Deleting, HealthStatus::Down, "instance deleting"),
        ] {
            assert_eq!(node_verdict(state, "instance"), (status, detail.to_owned()));
        }
    }

    #[test]
    fn a_probe_verdict_becomes_a_timed_signal_and_its_metrics() {
        let started = std::time::Instant::now();
        let signal = probe_signal(
            &Target::Api,
            started,
            (HealthStatus::Degraded, "slow".to_owned()),
        );
        assert_eq!(
            (&signal.target, signal.status, signal.detail.as_str()),
            (&Target::Api, HealthStatus::Degraded, "slow")
        );
        assert!(signal.rtt.is_some_and(|rtt| rtt <= started.elapsed()));
        let metrics = probe_metrics(signal.clone());
        assert_eq!(
            (metrics.target, metrics.rtt, metrics.observed_at),
            (Target::Api, signal.rtt, signal.observed_at)
        );
        assert_eq!(metrics.rx_bytes, None);
    }

    #[tokio::test]
    async fn a_create_adopts_only_after_a_failure_that_may_hide_a_success() {
        let failed = |kind: ErrorKind, temporary: bool| {
            Err::<u32, _>(
                Error::new(kind, "p", Operation::CreateIngressNode).set_temporary(temporary),
            )
        };
        let adopt = || std::future::ready(Ok(Some(7)));
        let nothing = || std::future::ready(Ok(None));
        assert_eq!(create_or_adopt(Ok(1), adopt).await.unwrap(), 1);
        assert_eq!(
            create_or_adopt(failed(ErrorKind::Unavailable, true), adopt)
                .await
                .unwrap(),
            7
        );
        assert_eq!(
            create_or_adopt(failed(ErrorKind::Conflict, false), adopt)
                .await
                .unwrap(),
            7
        );
        // Nothing under the key: the create's own error.
        let err = create_or_adopt(failed(ErrorKind::Unavailable, true), nothing)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        // A failure that cannot hide a success is never looked behind.
        let err = create_or_adopt(
            failed(ErrorKind::InvalidInput, false),
            || -> std::future::Ready<Result<Option<u32>>> {
                unreachable!("no lookup after a permanent failure")
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // The lookup's own failure is reported.
        let err = create_or_adopt(failed(ErrorKind::Conflict, false), || {
            std::future::ready(Err(Error::new(
                ErrorKind::Unauthenticated,
                "p",
                Operation::CreateIngressNode,
            )))
        })
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthenticated);
    }

    #[tokio::test(start_paused = true)]
    async fn sdk_failures_go_through_parse_error_and_the_same_retry_rules() {
        let calls = Calls::new("p", vec![RateLimit::per_second(100)]);
        // The SDK's failure type: here a status code.
        let parse_error = |provider: &str, operation: Operation, status: u16| {
            Error::new(
                ErrorKind::from_http_status(status, None),
                provider,
                operation,
            )
        };
        for (operation, idempotent, expected) in [
            (
                Operation::ListNodes,
                true,
                RetryPolicy::default().max_attempts,
            ),
            (Operation::CreateIngressNode, false, 1),
            (Operation::ProbeHealth, true, 1),
        ] {
            let mut n = 0;
            let err = calls
                .run_mapped(operation, idempotent, parse_error, || {
                    n += 1;
                    std::future::ready(Err::<(), u16>(503))
                })
                .await
                .unwrap_err();
            assert_eq!(n, expected, "{operation}");
            assert_eq!(err.kind(), ErrorKind::Unavailable);
            assert_eq!((err.provider(), err.operation()), ("p", operation));
        }
        let answer = calls
            .run_mapped(Operation::ListNodes, true, parse_error, || {
                std::future::ready(Ok::<_, u16>(7))
            })
            .await;
        assert_eq!(answer.unwrap(), 7);
    }
}
