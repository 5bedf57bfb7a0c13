//! `damm serve`: the tick loop as a service, with a small HTTP API on 127.0.0.1 by default:
//! `/healthz`, `/metrics` (Prometheus text format), `/v1/state`, `/v1/plan`,
//! `/v1/whatif?provider=NAME`; for the data plane `/v1/catalog.json` (and `.minisig`),
//! `/v1/gateways/{id}/config` (signed, see [`crate::enroll`]) and `POST /v1/reports`.
//!
//! A stop request (SIGTERM, SIGINT) lets the running tick finish its current step and
//! persist, then the loop exits cleanly.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State as AxState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use damm_fleet::{Mode, Plan, Scores};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use tokio::sync::{Notify, RwLock};
use tracing::{error, info};

use crate::engine::Engine;
use crate::engine::metrics::{Metrics, OutcomeLabel, ProviderLabel};
use crate::state::State;

/// What the HTTP side reads: refreshed after every tick.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// The state after the last tick.
    pub state: Option<State>,
    /// The last plan.
    pub plan: Option<Plan>,
    /// The scores it planned with.
    pub scores: Scores,
    /// Wall time of the last completed tick.
    pub last_tick: Option<DateTime<Utc>>,
    /// Ticks that failed (state not persisted, adapter bookkeeping broken, ...).
    pub tick_errors: u64,
    /// The tick interval.
    pub interval: Duration,
    /// The policy the loop runs (for `/v1/whatif`).
    pub policy: Option<damm_fleet::Policy>,
    /// The catalog the last tick published, if it publishes.
    pub catalog: Option<damm_catalog::Catalog>,
    /// The catalog signing keys (gateway configs are signed with them).
    pub keys: Option<Arc<crate::publish::Keys>>,
    /// Client reports: waiting for the next tick, and the counts.
    pub reports: ReportQueue,
    /// The engine's counters and histograms.
    pub metrics: Metrics,
}

/// Accepted client reports waiting for the next tick, and what was accepted and refused.
#[derive(Debug, Default)]
pub struct ReportQueue {
    /// Accepted, not yet scored.
    pub pending: Vec<crate::enroll::AcceptedReport>,
    /// Accepted since start.
    pub accepted: u64,
    /// Accepted since start, by transport and outcome (`ok`, `failed`: see
    /// [`crate::enroll::AcceptedReport::outcome`]).
    pub by_transport: BTreeMap<(&'static str, &'static str), u64>,
    /// Refused since start, by reason.
    pub refused: BTreeMap<&'static str, u64>,
}

impl ReportQueue {
    /// Counts `report` and queues it for the next tick.
    pub fn accept(&mut self, report: crate::enroll::AcceptedReport) {
        self.accepted += 1;
        *self
            .by_transport
            .entry((report.transport, report.outcome()))
            .or_default() += 1;
        self.pending.push(report);
    }
}

/// Shared between the loop and the HTTP handlers.
pub type Shared = Arc<RwLock<Snapshot>>;

/// A stop switch: set once, seen by the loop between steps.
#[derive(Debug, Default)]
pub struct Stop {
    requested: std::sync::atomic::AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Asks the loop to stop after the current step.
    pub fn request(&self) {
        self.requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.requested.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Binds the HTTP API; returns the bound address and the server future.
pub async fn http(
    listen: SocketAddr,
    shared: Shared,
) -> anyhow::Result<(
    SocketAddr,
    impl std::future::Future<Output = std::io::Result<()>>,
)> {
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/v1/state", get(state))
        .route("/v1/plan", get(plan))
        .route("/v1/whatif", get(whatif))
        .route("/v1/catalog.json", get(catalog_json))
        .route("/v1/catalog.json.minisig", get(catalog_signature))
        .route("/v1/gateways/{id}/config", get(gateway_config))
        .route(
            "/v1/reports",
            axum::routing::post(reports).layer(axum::extract::DefaultBodyLimit::max(
                crate::enroll::MAX_REPORT_BYTES,
            )),
        )
        .with_state(shared);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let addr = listener.local_addr()?;
    Ok((addr, async move { axum::serve(listener, app).await }))
}

/// Runs the loop until `stop` is requested. Each tick's state is persisted by the engine.
pub async fn run_loop(mut engine: Engine, shared: Shared, stop: Arc<Stop>) -> anyhow::Result<()> {
    let interval = engine.policy().fleet.tick.0;
    let mode = engine.policy().fleet.mode;
    {
        let mut snap = shared.write().await;
        snap.interval = interval;
        snap.policy = Some(engine.policy().clone());
        snap.keys = engine.keys().cloned();
        snap.metrics = engine.metrics().clone();
    }
    loop {
        // Reports accepted since the last tick feed this tick's scores.
        let pending = std::mem::take(&mut shared.write().await.reports.pending);
        if !pending.is_empty() {
            let now = engine.now();
            let policy = engine.policy().clone();
            crate::enroll::apply_reports(&mut engine.state_mut().scores, &policy, &pending, now);
        }
        match engine.tick(mode, true).await {
            Ok(report) => {
                let s = &report.summary;
                info!(
                    tick = s.number,
                    planned = s.planned,
                    applied = s.applied,
                    failed = s.failed,
                    probe_ms = s.probe_ms,
                    "tick done"
                );
                let mut snap = shared.write().await;
                snap.state = Some(engine.state().clone());
                snap.plan = Some(report.plan);
                snap.scores = report.scores;
                snap.catalog = report.catalog;
                snap.last_tick = Some(Utc::now());
            }
            Err(e) => {
                error!("tick failed: {e:#}");
                shared.write().await.tick_errors += 1;
            }
        }
        if stop.requested() {
            break;
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.notify.notified() => {}
        }
        if stop.requested() {
            break;
        }
    }
    info!("stopping: state persisted");
    Ok(())
}

async fn healthz(AxState(shared): AxState<Shared>) -> Response {
    let snap = shared.read().await;
    let stale = snap.last_tick.is_none_or(|t| {
        let allowed = chrono::TimeDelta::from_std(snap.interval * 3 + Duration::from_secs(30))
            .unwrap_or(chrono::TimeDelta::MAX);
        Utc::now() - t > allowed
    });
    match snap.last_tick {
        Some(t) if !stale => (StatusCode::OK, format!("ok: last tick {t}\n")).into_response(),
        Some(t) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stale: last tick {t}\n"),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "starting: no tick yet\n").into_response(),
    }
}

async fn state(AxState(shared): AxState<Shared>) -> Response {
    let snap = shared.read().await;
    match &snap.state {
        Some(state) => axum::Json(state).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no tick yet\n").into_response(),
    }
}

async fn plan(AxState(shared): AxState<Shared>) -> Response {
    let snap = shared.read().await;
    match &snap.plan {
        Some(plan) => axum::Json(plan).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "no tick yet\n").into_response(),
    }
}

/// `?provider=NAME`.
#[derive(Debug, serde::Deserialize)]
struct WhatifQuery {
    provider: String,
}

/// What if `provider` went dark, answered from the loop's latest snapshot.
async fn whatif(
    AxState(shared): AxState<Shared>,
    axum::extract::Query(q): axum::extract::Query<WhatifQuery>,
) -> Response {
    use crate::whatif::{CatalogPaths, Users};
    let snap = shared.read().await;
    let (Some(state), Some(policy)) = (&snap.state, &snap.policy) else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no tick yet\n").into_response();
    };
    let paths = match &snap.catalog {
        Some(c) => CatalogPaths::from_catalog(c, "the last published catalog"),
        None => CatalogPaths::compose(state, policy, &snap.scores),
    };
    if let Err(e) = crate::whatif::check_provider(state, policy, &paths, &q.provider) {
        return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response();
    }
    let at = state.orchestrator.last_tick.at.unwrap_or_else(Utc::now);
    axum::Json(crate::whatif::whatif(
        state,
        policy,
        &paths,
        &snap.scores,
        &Users::from_state(state),
        &q.provider,
        at,
    ))
    .into_response()
}

/// The last published catalog, signed again (Ed25519 is deterministic: the same bytes and
/// signature as the catalog sink holds).
fn signed_catalog(
    snap: &Snapshot,
) -> Result<damm_catalog::SignedCatalog, (StatusCode, &'static str)> {
    let (Some(catalog), Some(keys)) = (&snap.catalog, &snap.keys) else {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "no catalog published yet\n",
        ));
    };
    damm_catalog::sign_catalog(catalog, &keys.signing).map_err(|e| {
        error!("signing the catalog: {e}");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot sign the catalog\n",
        )
    })
}

async fn catalog_json(AxState(shared): AxState<Shared>) -> Response {
    match signed_catalog(&*shared.read().await) {
        Ok(signed) => ([(header::CONTENT_TYPE, "application/json")], signed.json).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

async fn catalog_signature(AxState(shared): AxState<Shared>) -> Response {
    match signed_catalog(&*shared.read().await) {
        Ok(signed) => signed.signature.into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// `{"json": "<damm-gateway/1 config>", "signature": "<minisign signature of json>"}`.
async fn gateway_config(
    AxState(shared): AxState<Shared>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
) -> Response {
    use crate::enroll::ConfigRefusal;
    let snap = shared.read().await;
    let (Some(state), Some(policy), Some(keys)) = (&snap.state, &snap.policy, &snap.keys) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no tick yet, or the orchestrator has no signing keys (--keys)\n",
        )
            .into_response();
    };
    // The gateway's own credential comes first: without it, a known and an unknown
    // gateway id get the same answer, so the ids cannot be enumerated.
    let presented = bearer(&headers).unwrap_or_default();
    if !keys.is_gateway_token(&id, presented) {
        return (
            StatusCode::UNAUTHORIZED,
            [(axum::http::header::WWW_AUTHENTICATE, "Bearer")],
            "a gateway config needs the gateway's credential (Authorization: Bearer)\n",
        )
            .into_response();
    }
    match crate::enroll::signed_gateway_config(
        state,
        policy,
        keys,
        snap.catalog.as_ref(),
        &id,
        Utc::now(),
    ) {
        Ok(signed) => axum::Json(serde_json::json!({
            "json": signed.json,
            "signature": signed.signature,
        }))
        .into_response(),
        Err(e @ ConfigRefusal::UnknownGateway(_)) => {
            (StatusCode::NOT_FOUND, format!("{e}\n")).into_response()
        }
        Err(e @ ConfigRefusal::NotReady(_)) => {
            (StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")).into_response()
        }
    }
}

/// The token of an `Authorization: Bearer TOKEN` header.
fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// `POST /v1/reports`: a client's path report, `Authorization: Bearer <report token>`.
async fn reports(
    AxState(shared): AxState<Shared>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    use crate::enroll::{MAX_PENDING_REPORTS, ReportRefusal};
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let mut snap = shared.write().await;
    let rtt_reference = snap
        .policy
        .as_ref()
        .map_or(80.0, |p| p.scoring.rtt_reference_ms);
    let checked = match &snap.state {
        None => Err(ReportRefusal::Unavailable("no tick yet")),
        Some(state) => crate::enroll::check_report(
            state,
            snap.catalog.as_ref(),
            rtt_reference,
            authorization,
            &body,
        ),
    };
    let checked = checked.and_then(|r| {
        if snap.reports.pending.len() >= MAX_PENDING_REPORTS {
            Err(ReportRefusal::Unavailable("too many reports waiting"))
        } else {
            Ok(r)
        }
    });
    match checked {
        Ok(report) => {
            snap.reports.accept(report);
            StatusCode::ACCEPTED.into_response()
        }
        Err(refusal) => {
            *snap.reports.refused.entry(refusal.reason()).or_default() += 1;
            // The reason only: never the header or the body.
            info!(reason = refusal.reason(), "report refused");
            let status = StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST);
            let mut response = (status, format!("{refusal}\n")).into_response();
            if status == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    axum::http::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

async fn metrics(AxState(shared): AxState<Shared>) -> Response {
    let body = render_metrics(&*shared.read().await);
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        body,
    )
        .into_response()
}

/// `{provider, region, role, status}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NodeLabels {
    provider: String,
    region: String,
    role: String,
    status: &'static str,
}

/// `{outcome, reason}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReportLabels {
    outcome: &'static str,
    reason: &'static str,
}

/// `{transport, outcome}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ClientReportLabels {
    transport: &'static str,
    outcome: &'static str,
}

/// `{provider, kind}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct AlertLabels {
    provider: String,
    kind: String,
}

/// A gauge of a value read at scrape time.
fn gauge(value: u64) -> ConstGauge {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

/// The Prometheus exposition (text format 0.0.4) of a snapshot: the engine's counters and
/// histograms, and gauges read from the state. `docs/metrics.md` lists the series.
pub fn render_metrics(snap: &Snapshot) -> String {
    let mut registry = Registry::default();
    snap.metrics.register(&mut registry);
    let reports = Family::<ReportLabels, Counter>::default();
    reports
        .get_or_create(&ReportLabels {
            outcome: "accepted",
            reason: "ok",
        })
        .inc_by(snap.reports.accepted);
    for reason in [
        "unauthenticated",
        "malformed",
        "unknown_path",
        "unavailable",
    ] {
        reports
            .get_or_create(&ReportLabels {
                outcome: "refused",
                reason,
            })
            .inc_by(snap.reports.refused.get(reason).copied().unwrap_or(0));
    }
    registry.register(
        "damm_reports",
        "Client path reports since start, by outcome and reason",
        reports,
    );
    let client_reports = Family::<ClientReportLabels, Counter>::default();
    // Every known pair shows, at 0 until counted.
    let known = crate::enroll::ACCEPTED_TRANSPORTS
        .into_iter()
        .flat_map(|t| [(t, "ok"), (t, "failed")]);
    for (transport, outcome) in known {
        let n = snap.reports.by_transport.get(&(transport, outcome));
        client_reports
            .get_or_create(&ClientReportLabels { transport, outcome })
            .inc_by(n.copied().unwrap_or(0));
    }
    registry.register(
        "damm_client_reports",
        "Accepted client path reports since start, by the transport the client carried the \
         path on and outcome (ok: no failure; failed)",
        client_reports,
    );
    registry.register(
        "damm_tick_errors",
        "Ticks that failed since start (state not persisted, adapter bookkeeping broken, ...)",
        ConstCounter::new(snap.tick_errors),
    );
    registry.register(
        "damm_up",
        "1 once the first tick has completed",
        gauge(u64::from(snap.state.is_some())),
    );
    if let Some(state) = &snap.state {
        register_state(&mut registry, state);
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// The gauges read from the state after the last tick.
fn register_state(registry: &mut Registry, state: &State) {
    registry.register(
        "damm_clients",
        "Enrolled clients",
        gauge(state.clients.len() as u64),
    );
    let nodes = Family::<NodeLabels, Gauge>::default();
    for n in state.nodes.values() {
        nodes
            .get_or_create(&NodeLabels {
                provider: n.provider.clone(),
                region: n.region.to_string(),
                role: n.role.to_string(),
                status: n.status.as_str(),
            })
            .inc();
    }
    registry.register(
        "damm_nodes",
        "Nodes DAMM owns, by provider, region, role and status",
        nodes,
    );
    let dark = Family::<ProviderLabel, Gauge>::default();
    let alerts = Family::<AlertLabels, Gauge>::default();
    for (provider, breaker) in &state.scores.breakers {
        dark.get_or_create(&ProviderLabel::new(provider))
            .set(i64::from(breaker.is_open()));
        if let Some(alert) = &breaker.alert {
            alerts
                .get_or_create(&AlertLabels {
                    provider: provider.clone(),
                    kind: alert.kind.clone(),
                })
                .set(1);
        }
    }
    registry.register(
        "damm_provider_dark",
        "1 while the provider's circuit breaker is open",
        dark,
    );
    registry.register(
        "damm_provider_alert",
        "1 while the provider refuses DAMM's credentials or quota (an operator must act; not \
         counted as the provider going dark), by kind",
        alerts,
    );
    let t = &state.orchestrator.last_tick;
    registry.register(
        "damm_tick_number",
        "Number of the last tick (persisted: it goes on across restarts)",
        gauge(t.number),
    );
    registry.register(
        "damm_tick_probe_seconds",
        "Wall time of the last tick's inventory and probe phase",
        ConstGauge::new(t.probe_ms as f64 / 1000.0),
    );
    let actions = Family::<OutcomeLabel, Gauge>::default();
    for (outcome, n) in [
        ("planned", t.planned),
        ("applied", t.applied),
        ("failed", t.failed),
    ] {
        actions
            .get_or_create(&OutcomeLabel { outcome })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    registry.register(
        "damm_tick_actions",
        "Actions of the last tick, by outcome",
        actions,
    );
    registry.register(
        "damm_state_serial",
        "Serial of the persisted state",
        gauge(state.serial),
    );
    registry.register(
        "damm_orphans",
        "Labelled resources no journal entry explains",
        gauge(state.orphans.len() as u64),
    );
}

/// Whether the mode lets the loop mutate anything (for the startup log line).
pub fn describe_mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Plan => "plan (no changes are made)",
        Mode::Apply => "apply",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use damm_fleet::score::ProviderAlert;

    use super::*;

    /// A label value of the text format: `"` … `"` with `\\`, `\"` and `\n` escapes.
    fn label_value(rest: &str) -> Option<(String, &str)> {
        let mut chars = rest.strip_prefix('"')?.char_indices();
        let mut value = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Some((value, &rest[i + 2..])),
                '\\' => value.push(match chars.next()?.1 {
                    '\\' => '\\',
                    '"' => '"',
                    'n' => '\n',
                    _ => return None,
                }),
                c => value.push(c),
            }
        }
        None
    }

    /// Parses one sample line into its name, labels and value, or fails the test.
    fn sample(line: &str) -> (String, Vec<(String, String)>, f64) {
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or_else(|| panic!("no value: {line:?}"));
        let (name, mut rest) = line.split_at(name_end);
        let mut labels = Vec::new();
        if let Some(mut inner) = rest.strip_prefix('{') {
            loop {
                if let Some(after) = inner.strip_prefix('}') {
                    rest = after;
                    break;
                }
                let (key, after) = inner.split_once('=').expect("label=value");
                let (value, after) = label_value(after).unwrap_or_else(|| panic!("{line:?}"));
                labels.push((key.to_owned(), value));
                inner = after.strip_prefix(',').unwrap_or(after);
            }
        }
        let value = rest.strip_prefix(' ').expect("one space before the value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value of {line:?}")),
        };
        (name.to_owned(), labels, value)
    }

    #[test]
    fn the_exposition_is_typed_and_escapes_every_label() {
        let weird = "we\"ird\\provider\nid";
        let mut state = State::new("f".parse().unwrap());
        let breaker = state.scores.breakers.entry(weird.to_owned()).or_default();
        breaker.alert = Some(ProviderAlert {
            kind: "unauthenticated".into(),
            since: Utc::now(),
            error: "401".into(),
        });
        let mut snap = Snapshot {
            state: Some(state),
            tick_errors: 2,
            ..Snapshot::default()
        };
        for (transport, failures) in [("T1", 2), ("T1", 1), ("T0", 0)] {
            snap.reports.accept(crate::enroll::AcceptedReport {
                client: "c".into(),
                path_id: "t0:in1>eg1".into(),
                transport,
                components: vec![],
                ingress: None,
                failures,
                quality: 0.0,
            });
        }
        snap.reports.refused.insert("malformed", 1);
        snap.metrics.probe(weird, false);
        snap.metrics.probe_call(weird, Duration::from_millis(30));
        snap.metrics.tick(
            &crate::state::TickSummary::default(),
            Duration::from_secs(2),
        );
        let text = render_metrics(&snap);

        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix("# ") {
                assert!(
                    comment.starts_with("HELP damm_") || comment.starts_with("TYPE damm_"),
                    "{line:?}"
                );
            } else {
                samples.push(sample(line));
            }
        }
        let find = |name: &str| {
            samples
                .iter()
                .find(|(n, _, _)| n == name)
                .unwrap_or_else(|| panic!("{name} in {text}"))
        };
        for name in [
            "damm_provider_dark",
            "damm_provider_alert",
            "damm_probes_total",
            "damm_probe_failures_total",
            "damm_probe_duration_seconds_count",
        ] {
            let (_, labels, value) = find(name);
            assert_eq!(
                labels[0],
                ("provider".to_owned(), weird.to_owned()),
                "{name}"
            );
            let expected = if name == "damm_provider_dark" {
                0.0
            } else {
                1.0
            };
            assert_eq!(*value, expected, "{name}");
        }
        assert_eq!(find("damm_provider_alert").1[1].1, "unauthenticated");
        assert!(
            text.contains("provider=\"we\\\"ird\\\\provider\\nid\""),
            "{text}"
        );
        for (series, kind) in [
            ("damm_ticks_total", "counter"),
            ("damm_tick_errors_total", "counter"),
            ("damm_reports_total", "counter"),
            ("damm_client_reports_total", "counter"),
            ("damm_actions_total", "counter"),
            ("damm_tick_duration_seconds", "histogram"),
            ("damm_probe_duration_seconds", "histogram"),
            ("damm_apply_duration_seconds", "histogram"),
            ("damm_provider_alert", "gauge"),
            ("damm_tick_number", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {series} {kind}\n")),
                "{series}: {text}"
            );
        }
        assert_eq!(find("damm_ticks_total").2, 1.0);
        assert_eq!(find("damm_tick_errors_total").2, 2.0);
        assert_eq!(find("damm_tick_duration_seconds_sum").2, 2.0);
        assert!(text.contains("damm_reports_total{outcome=\"accepted\",reason=\"ok\"} 3\n"));
        assert!(text.contains("damm_reports_total{outcome=\"refused\",reason=\"malformed\"} 1\n"));
        for (series, n) in [
            ("transport=\"T1\",outcome=\"failed\"", 2),
            ("transport=\"T0\",outcome=\"ok\"", 1),
            ("transport=\"T1\",outcome=\"ok\"", 0),
            ("transport=\"T3\",outcome=\"failed\"", 0),
            ("transport=\"overlay\",outcome=\"ok\"", 0),
        ] {
            assert!(
                text.contains(&format!("damm_client_reports_total{{{series}}} {n}\n")),
                "{series}: {text}"
            );
        }
        assert!(text.contains("damm_up 1\n"), "{text}");
    }

    #[test]
    fn before_the_first_tick_only_the_process_series_show() {
        let text = render_metrics(&Snapshot::default());
        assert!(text.contains("damm_up 0\n"), "{text}");
        assert!(text.contains("damm_ticks_total 0\n"), "{text}");
        assert!(!text.contains("damm_nodes"), "{text}");
    }
}
