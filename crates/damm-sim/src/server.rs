//! The listener, the per-provider middleware (auth, rate limits, faults, schema checks)
//! and the admin API under `/_sim/`.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::faults::{Dark, Faults, Rng};
use crate::validation::Specs;
use crate::world::{AddressPool, Bucket, NumberedPage, last_page, page_of, unix_after};
use crate::{Provider, SimConfig, cloudflare, digitalocean, gce, gcore, hetzner, tailscale, vultr};

/// Everything the handlers share.
pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    faults: Mutex<BTreeMap<Provider, Faults>>,
    rng: Mutex<Rng>,
    buckets: Mutex<BTreeMap<Provider, Vec<Bucket>>>,
    pub(crate) addresses: Mutex<AddressPool>,
    pub(crate) hetzner: Mutex<hetzner::World>,
    pub(crate) digitalocean: Mutex<digitalocean::World>,
    pub(crate) vultr: Mutex<vultr::World>,
    pub(crate) cloudflare: Mutex<cloudflare::World>,
    pub(crate) tailscale: Mutex<tailscale::World>,
    pub(crate) gce: Mutex<gce::World>,
    pub(crate) gcore: Mutex<gcore::World>,
    drifts: Mutex<Vec<String>>,
    specs: Specs,
    requests: AtomicU64,
}

/// Locks a mutex, shrugging off poisoning (a panicking handler must not wedge the sim).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn new(config: SimConfig) -> Self {
        Shared {
            rng: Mutex::new(Rng::new(config.seed)),
            faults: Mutex::default(),
            buckets: Mutex::new(
                Provider::ALL
                    .iter()
                    .map(|p| (*p, rate_limits(*p)))
                    .collect(),
            ),
            addresses: Mutex::default(),
            hetzner: Mutex::default(),
            digitalocean: Mutex::default(),
            vultr: Mutex::default(),
            cloudflare: Mutex::default(),
            tailscale: Mutex::default(),
            gce: Mutex::default(),
            gcore: Mutex::default(),
            drifts: Mutex::default(),
            specs: Specs::load(),
            requests: AtomicU64::new(0),
            config,
        }
    }

    pub(crate) fn faults(&self, provider: Provider) -> Faults {
        lock(&self.faults)
            .get(&provider)
            .cloned()
            .unwrap_or_default()
    }

    /// The page size a list call gets: what it asked for, capped by
    /// [`SimConfig::max_page_size`].
    pub(crate) fn page_size(&self, asked: usize) -> usize {
        self.config
            .max_page_size
            .map_or(asked, |max| asked.min(max.max(1)))
    }

    /// Whether a list call for a page after the first loses its items
    /// ([`Faults::missing_page`]).
    pub(crate) fn page_missing(&self, provider: Provider, later_page: bool) -> bool {
        later_page && self.faults(provider).missing_page
    }

    /// Page `page` (default 1) of `items` listed at `provider`, `per_page` a page: by default
    /// and at most `sizes` (then capped by [`SimConfig::max_page_size`]). A later page loses
    /// its items when [`Faults::missing_page`] strikes.
    pub(crate) fn numbered_page<T>(
        &self,
        provider: Provider,
        items: Vec<T>,
        (page, per_page): (Option<usize>, Option<usize>),
        (default, most): (usize, usize),
    ) -> NumberedPage<T> {
        let per_page = self.page_size(per_page.unwrap_or(default).clamp(1, most));
        let page = page.unwrap_or(1).max(1);
        let total = items.len();
        let items = if self.page_missing(provider, page > 1) {
            Vec::new()
        } else {
            page_of(items, page, per_page).collect()
        };
        NumberedPage {
            page,
            per_page,
            total,
            last: last_page(total, per_page),
            items,
        }
    }

    /// The boot delay for a machine created now at `provider`.
    pub(crate) fn boot_delay(&self, provider: Provider) -> std::time::Duration {
        let factor = self.faults(provider).boot_factor.unwrap_or(1.0).max(0.0);
        self.config.boot_delay.mul_f64(factor)
    }
}

/// What the middleware needs from each provider module.
pub(crate) struct Api {
    /// The provider's routes, relative to its base path.
    pub(crate) routes: fn() -> Router<Arc<Shared>>,
    /// Its error body for an HTTP status, an error code and a message.
    pub(crate) error_body: fn(u16, &str, &str) -> serde_json::Value,
    /// Its documented rate limits, one bucket each.
    pub(crate) rate_limits: fn() -> Vec<Bucket>,
    /// Names of its limit, remaining and reset headers (the first bucket's), if it sends them.
    pub(crate) rate_headers: Option<[&'static str; 3]>,
    /// Simulator-only routes under `/_sim/{provider}/` (e.g. a gateway redeeming an auth key).
    pub(crate) admin: Option<fn() -> Router<Arc<Shared>>>,
    /// Its answer to a request body that does not parse as what a [`ProviderJson`] handler
    /// takes; `None` answers axum's own refusal.
    pub(crate) reject_body: Option<fn(JsonRejection) -> Response>,
}

/// The one place that dispatches on the provider.
pub(crate) fn api(provider: Provider) -> Api {
    match provider {
        Provider::Hetzner => crate::hetzner::API,
        Provider::DigitalOcean => crate::digitalocean::API,
        Provider::Vultr => crate::vultr::API,
        Provider::Cloudflare => crate::cloudflare::API,
        Provider::Tailscale => crate::tailscale::API,
        Provider::Gce => crate::gce::API,
        Provider::Gcore => crate::gcore::API,
    }
}

fn rate_limits(provider: Provider) -> Vec<Bucket> {
    (api(provider).rate_limits)()
}

/// A running simulator.
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl SimHandle {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of `provider`'s API, e.g. `http://127.0.0.1:4321/hetzner/v1`.
    pub fn url(&self, provider: Provider) -> String {
        format!("http://{}{}", self.addr, provider.base_path())
    }

    /// The token the simulator accepts (see [`Provider::auth_scheme`]).
    pub fn token(&self) -> &str {
        &self.shared.config.token
    }

    /// Replaces `provider`'s faults.
    pub fn set_faults(&self, provider: Provider, faults: Faults) {
        lock(&self.shared.faults).insert(provider, faults);
    }

    /// Clears `provider`'s faults.
    pub fn clear_faults(&self, provider: Provider) {
        lock(&self.shared.faults).remove(&provider);
    }

    /// Responses that did not match the published schema (each also answered 500).
    pub fn drifts(&self) -> Vec<String> {
        lock(&self.shared.drifts).clone()
    }

    /// Whether `provider`'s traffic is checked against its published schema (Vultr's
    /// document is not vendored; see [`shared_specs_dir`](crate::shared_specs_dir)).
    pub fn schema_checked(&self, provider: Provider) -> bool {
        self.shared.config.validate && self.shared.specs.covers(provider)
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::Relaxed)
    }

    /// Stops listening and waits for the accept loop to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the simulator on `listen` (port 0 picks a free one).
pub async fn start(config: SimConfig, listen: SocketAddr) -> std::io::Result<SimHandle> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::new(config));
    let app = router(shared.clone());
    let (stop, mut stopped) = watch::channel(false);
    let accept_shared = shared.clone();
    let task = tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(_) => continue,
                },
                _ = stopped.changed() => return,
            };
            let app = app.clone();
            let shared = accept_shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let app = app.clone();
                        let shared = shared.clone();
                        async move {
                            // A provider dark in `Refuse` mode drops the connection unanswered.
                            if let Some(provider) = provider_of(req.uri().path())
                                && shared.faults(provider).dark == Some(Dark::Refuse)
                            {
                                return Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionRefused,
                                    "provider is dark",
                                ));
                            }
                            app.oneshot(req.map(Body::new))
                                .await
                                .map_err(|e: Infallible| match e {})
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(io, service)
                .await;
            });
        }
    });
    Ok(SimHandle {
        addr,
        shared,
        stop,
        task,
    })
}

fn provider_of(path: &str) -> Option<Provider> {
    let first = path.trim_start_matches('/').split('/').next()?;
    first.parse().ok()
}

fn router(shared: Arc<Shared>) -> Router {
    let mut app = Router::new()
        .route(
            "/_sim/faults/{provider}",
            put(put_faults).delete(delete_faults).get(get_faults),
        )
        .route("/_sim/drifts", get(get_drifts));
    for provider in Provider::ALL {
        if let Some(admin) = api(*provider).admin {
            app = app.nest(&format!("/_sim/{provider}"), admin());
        }
        let routes = (api(*provider).routes)();
        let layer =
            axum::middleware::from_fn_with_state((shared.clone(), *provider), provider_layer);
        app = app.nest(provider.base_path(), routes.layer(layer));
    }
    app.with_state(shared)
}

/// An error in `provider`'s own JSON shape.
pub(crate) fn provider_error(
    provider: Provider,
    status: StatusCode,
    code: &str,
    message: &str,
) -> Response {
    (
        status,
        axum::Json((api(provider).error_body)(status.as_u16(), code, message)),
    )
        .into_response()
}

/// A JSON request body, like axum's [`axum::Json`], except that a body that does not parse
/// is refused in the provider's own shape ([`Api::reject_body`]): a handler taking one
/// gets the parsed body or never runs.
pub(crate) struct ProviderJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for ProviderJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Response> {
        // `provider_layer` marks every request with the provider it is for.
        let provider = request.extensions().get::<Provider>().copied();
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(body)) => Ok(ProviderJson(body)),
            Err(rejection) => Err(match provider.and_then(|p| api(p).reject_body) {
                Some(reject) => reject(rejection),
                None => rejection.into_response(),
            }),
        }
    }
}

/// Auth, rate limits, faults and schema checks around every provider call.
async fn provider_layer(
    State((shared, provider)): State<(Arc<Shared>, Provider)>,
    request: Request,
    next: Next,
) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let faults = shared.faults(provider);
    if faults.latency_ms > 0 {
        tokio::time::sleep(faults.latency()).await;
    }
    if faults.dark == Some(Dark::Unavailable) {
        return provider_error(
            provider,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "service unavailable",
        );
    }
    let authorised = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix(provider.auth_scheme()))
        .and_then(|v| v.strip_prefix(' '))
        .is_some_and(|token| token == shared.config.token);
    if !authorised || faults.unauthorized {
        return provider_error(
            provider,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unable to authenticate",
        );
    }
    let (limited, limit_headers) = rate_limit(&shared, provider, faults.rate_limit_storm > 0);
    if faults.rate_limit_storm > 0 {
        let mut all = lock(&shared.faults);
        if let Some(f) = all.get_mut(&provider) {
            f.rate_limit_storm = f.rate_limit_storm.saturating_sub(1);
        }
    }
    if limited {
        let mut response = provider_error(
            provider,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "limit of requests per hour reached",
        );
        response.headers_mut().extend(limit_headers);
        return response;
    }
    if lock(&shared.rng).chance(faults.error_rate) {
        return provider_error(
            provider,
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "injected server error",
        );
    }

    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(provider);
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return provider_error(
            provider,
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_input",
            "body too large",
        );
    };
    if shared.config.validate && !body.is_empty() {
        let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
            return provider_error(
                provider,
                StatusCode::BAD_REQUEST,
                "json_error",
                "request body is not JSON",
            );
        };
        if let Err(why) = shared.specs.check_request(provider, &method, &path, &json) {
            return provider_error(provider, StatusCode::BAD_REQUEST, "invalid_input", &why);
        }
    }
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;

    let (mut parts, body) = response.into_parts();
    let mut bytes = axum::body::to_bytes(body, 16 << 20)
        .await
        .unwrap_or_default();
    if faults.drift
        && let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&bytes)
        && let Some(first) = object.keys().next().cloned()
    {
        object.remove(&first);
        bytes = Bytes::from(serde_json::to_vec(&object).unwrap_or_default());
    }
    if shared.config.validate
        && !bytes.is_empty()
        && let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes)
        && let Err(why) =
            shared
                .specs
                .check_response(provider, &method, &path, parts.status.as_u16(), &json)
    {
        let drift = format!(
            "{provider} {method} {path} → {}: {why}",
            parts.status.as_u16()
        );
        tracing::error!("{drift}");
        lock(&shared.drifts).push(drift.clone());
        return provider_error(
            provider,
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            &format!("damm-sim response drifted from the schema: {drift}"),
        );
    }
    if !bytes.is_empty() && lock(&shared.rng).chance(faults.malformed_rate) {
        bytes = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
        parts.headers.remove("content-length");
    }
    parts.headers.extend(limit_headers);
    Response::from_parts(parts, Body::from(bytes))
}

/// Takes a token from every bucket; returns whether the call is refused and the
/// provider's rate-limit headers.
fn rate_limit(shared: &Shared, provider: Provider, storm: bool) -> (bool, HeaderMap) {
    let now = Instant::now();
    let mut buckets = lock(&shared.buckets);
    let buckets = buckets.entry(provider).or_default();
    let mut limited = storm;
    if shared.config.rate_limits && !storm {
        for bucket in buckets.iter_mut() {
            if !bucket.take(now) {
                limited = true;
            }
        }
    }
    let mut headers = HeaderMap::new();
    let Some(first) = buckets.first_mut() else {
        return (limited, headers);
    };
    let remaining = if storm { 0 } else { first.remaining(now) };
    let reset = if storm {
        first.until_next().max(std::time::Duration::from_secs(1))
    } else {
        first.until_full()
    };
    if let Some(names) = api(provider).rate_headers {
        for (name, value) in
            names
                .into_iter()
                .zip([first.capacity as u64, remaining, unix_after(reset)])
        {
            headers.insert(name, HeaderValue::from(value));
        }
    }
    if limited {
        let wait = buckets
            .iter()
            .map(Bucket::until_next)
            .max()
            .unwrap_or_default();
        headers.insert(
            "retry-after",
            HeaderValue::from(wait.as_secs_f64().ceil().max(1.0) as u64),
        );
    }
    (limited, headers)
}

async fn put_faults(
    State(shared): State<Arc<Shared>>,
    Path(provider): Path<String>,
    axum::Json(faults): axum::Json<Faults>,
) -> Response {
    match provider.parse::<Provider>() {
        Ok(p) => {
            lock(&shared.faults).insert(p, faults);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
}

async fn delete_faults(
    State(shared): State<Arc<Shared>>,
    Path(provider): Path<String>,
) -> Response {
    match provider.parse::<Provider>() {
        Ok(p) => {
            lock(&shared.faults).remove(&p);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
}

async fn get_faults(State(shared): State<Arc<Shared>>, Path(provider): Path<String>) -> Response {
    match provider.parse::<Provider>() {
        Ok(p) => axum::Json(shared.faults(p)).into_response(),
        Err(e) => (StatusCode::NOT_FOUND, e).into_response(),
    }
}

async fn get_drifts(State(shared): State<Arc<Shared>>) -> Response {
    axum::Json(lock(&shared.drifts).clone()).into_response()
}
