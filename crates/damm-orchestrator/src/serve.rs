//! `damm serve`: the tick loop as a service, with a small HTTP API on 127.0.0.1 by default:
//! `/healthz`, `/metrics` (Prometheus text format), `/v1/state`, `/v1/plan`,
//! `/v1/whatif?provider=NAME`; for the data plane `/v1/catalog.json` (and `.minisig`),
//! `/v1/gateways/{id}/config` (signed, see [`crate::enroll`]) and `POST /v1/reports`.
//!
//! A stop request (SIGTERM, SIGINT) lets the running tick finish its current step and
//! persist, then the loop exits cleanly.

use std::collections::BTreeMap;
use std::fmt::Write as _;
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
use tokio::sync::{Notify, RwLock};
use tracing::{error, info};

use crate::engine::Engine;
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
}

/// Accepted client reports waiting for the next tick, and what was accepted and refused.
#[derive(Debug, Default)]
pub struct ReportQueue {
    /// Accepted, not yet scored.
    pub pending: Vec<crate::enroll::AcceptedReport>,
    /// Accepted since start.
    pub accepted: u64,
    /// Refused since start, by reason.
    pub refused: BTreeMap<&'static str, u64>,
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
            snap.reports.accepted += 1;
            snap.reports.pending.push(report);
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
    let snap = shared.read().await;
    let body = render_metrics(&snap);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The Prometheus exposition of a snapshot.
pub fn render_metrics(snap: &Snapshot) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP damm_reports_total Client path reports since start, by outcome and reason."
    );
    let _ = writeln!(out, "# TYPE damm_reports_total counter");
    let _ = writeln!(
        out,
        "damm_reports_total{{outcome=\"accepted\",reason=\"ok\"}} {}",
        snap.reports.accepted
    );
    for reason in [
        "unauthenticated",
        "malformed",
        "unknown_path",
        "unavailable",
    ] {
        let _ = writeln!(
            out,
            "damm_reports_total{{outcome=\"refused\",reason=\"{reason}\"}} {}",
            snap.reports.refused.get(reason).copied().unwrap_or(0)
        );
    }
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let Some(state) = &snap.state else {
        gauge(
            "damm_up",
            "1 once the first tick has completed.",
            vec![(String::new(), 0.0)],
        );
        return out;
    };
    gauge(
        "damm_clients",
        "Enrolled clients.",
        vec![(String::new(), state.clients.len() as f64)],
    );
    gauge(
        "damm_up",
        "1 once the first tick has completed.",
        vec![(String::new(), 1.0)],
    );
    let mut nodes: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    for n in state.nodes.values() {
        *nodes
            .entry((
                n.provider.clone(),
                n.region.to_string(),
                n.role.to_string(),
                n.status.as_str().to_owned(),
            ))
            .or_default() += 1;
    }
    gauge(
        "damm_nodes",
        "Nodes DAMM owns, by provider, region, role and status.",
        nodes
            .into_iter()
            .map(|((p, r, role, s), n)| {
                (
                    format!("{{provider=\"{p}\",region=\"{r}\",role=\"{role}\",status=\"{s}\"}}"),
                    n as f64,
                )
            })
            .collect(),
    );
    gauge(
        "damm_provider_dark",
        "1 while the provider's circuit breaker is open.",
        state
            .scores
            .breakers
            .iter()
            .map(|(p, b)| {
                (
                    format!("{{provider=\"{p}\"}}"),
                    f64::from(u8::from(b.is_open())),
                )
            })
            .collect(),
    );
    let t = &state.orchestrator.last_tick;
    gauge(
        "damm_tick_number",
        "Ticks run.",
        vec![(String::new(), t.number as f64)],
    );
    gauge(
        "damm_tick_probe_seconds",
        "Wall time of the last tick's inventory and probe phase.",
        vec![(String::new(), t.probe_ms as f64 / 1000.0)],
    );
    gauge(
        "damm_tick_actions",
        "Actions of the last tick, by outcome.",
        vec![
            ("{outcome=\"planned\"}".into(), t.planned as f64),
            ("{outcome=\"applied\"}".into(), t.applied as f64),
            ("{outcome=\"failed\"}".into(), t.failed as f64),
        ],
    );
    gauge(
        "damm_tick_errors",
        "Ticks that failed since start.",
        vec![(String::new(), snap.tick_errors as f64)],
    );
    gauge(
        "damm_state_serial",
        "Serial of the persisted state.",
        vec![(String::new(), state.serial as f64)],
    );
    gauge(
        "damm_orphans",
        "Labelled resources no journal entry explains.",
        vec![(String::new(), state.orphans.len() as f64)],
    );
    out
}

/// Whether the mode lets the loop mutate anything (for the startup log line).
pub fn describe_mode(mode: Mode) -> &'static str {
    match mode {
        Mode::Plan => "plan (no changes are made)",
        Mode::Apply => "apply",
    }
}
