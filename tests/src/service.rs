//! `damm serve` inside a test: the engine over a state file, publishing the signed catalog;
//! the HTTP API on 127.0.0.1; the loop on a thread of its own, stopped and started again
//! around an offline step (enrolment, today); and an enrolled client ticking on a thread,
//! posting its reports. What the netns tests share.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use damm_agent::Host;
use damm_agent::client::{ClientAgent, ClientSettings, Report};
use damm_agent::wg::WgTool;
use damm_catalog::Catalog;
use damm_fleet::Policy;
use damm_orchestrator::dataplane::Orchestrator;
use damm_orchestrator::engine::{Engine, Options, wall_clock};
use damm_orchestrator::enroll::EnrollmentFile;
use damm_orchestrator::providers::Providers;
use damm_orchestrator::publish::{Keys, Sink};
use damm_orchestrator::serve::{self, Shared, Stop};
use damm_orchestrator::state::FileStore;

/// An engine over `dir/state.json` (its lock taken), publishing to `dir/catalog.json`.
pub fn engine(policy: &Policy, providers: Providers, dir: &Path, keys: &Arc<Keys>) -> Engine {
    let store = FileStore::open(&dir.join("state.json")).expect("the state file opens");
    let mut engine = Engine::new(
        policy.clone(),
        providers,
        Box::new(store),
        wall_clock(),
        Options::default(),
    )
    .expect("the engine starts");
    engine.set_publisher(
        Arc::clone(keys),
        Sink {
            path: dir.join("catalog.json"),
        },
    );
    engine
}

/// The HTTP API on a port of 127.0.0.1, serving what the loop publishes.
pub struct Service {
    /// The runtime everything runs on.
    pub rt: Arc<tokio::runtime::Runtime>,
    /// What the API serves.
    pub shared: Shared,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Service {
    /// Starts the API (2 worker threads) with nothing published yet.
    pub fn start() -> Service {
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime"),
        );
        let shared: Shared = Shared::default();
        let (addr, server) = rt
            .block_on(serve::http(
                "127.0.0.1:0".parse().expect("an address"),
                Arc::clone(&shared),
            ))
            .expect("the API listens");
        rt.spawn(server);
        Service { rt, shared, addr }
    }

    /// `http://ADDR`.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The API's client.
    pub fn orchestrator(&self) -> Orchestrator {
        Orchestrator::new(&self.base()).expect("a base URL")
    }

    /// The catalog published last.
    pub fn catalog(&self) -> Option<Catalog> {
        self.rt.block_on(self.shared.read()).catalog.clone()
    }

    /// Runs `engine`'s loop on a thread (its future is not Send: the store is not Sync).
    pub fn run(&self, engine: Engine) -> Running {
        let stop = Arc::new(Stop::default());
        let (rt, shared, stopping) = (
            Arc::clone(&self.rt),
            Arc::clone(&self.shared),
            Arc::clone(&stop),
        );
        let thread =
            std::thread::spawn(move || rt.block_on(serve::run_loop(engine, shared, stopping)));
        Running { stop, thread }
    }
}

/// A running loop.
pub struct Running {
    stop: Arc<Stop>,
    thread: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops the loop after its current step and waits for it (the state persisted, its
    /// lock released).
    pub fn stop(self) {
        self.stop.request();
        self.thread
            .join()
            .expect("the loop does not panic")
            .expect("the loop stops cleanly");
    }
}

/// An enrolled client in namespace `ns` on WireGuard interface `iface` (driven with the `wg`
/// tool), routing `routes` into the tunnel and reporting every second, with the catalog it
/// was served.
pub fn client_in(
    ns: &str,
    iface: &str,
    bundle: &EnrollmentFile,
    routes: Vec<String>,
    served: Catalog,
) -> ClientAgent {
    let mut settings = ClientSettings::new(iface, bundle.keepalive_s);
    settings.routes = routes;
    settings.report_every = Duration::from_secs(1);
    ClientAgent::new(
        Host::netns(ns),
        Box::new(WgTool::new(Host::netns(ns))),
        bundle.enrollment().expect("the bundle holds an enrollment"),
        settings,
        served,
    )
}

/// A client ticking every 100 ms on a thread, posting each report to the orchestrator with
/// its token; `observe` sees the client and each tick's reports with whether each was
/// accepted.
pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl ClientLoop {
    /// Starts ticking `client`.
    pub fn start(
        service: &Service,
        mut client: ClientAgent,
        token: String,
        mut observe: impl FnMut(&ClientAgent, &[(Report, bool)]) + Send + 'static,
    ) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let (stopping, handle, orchestrator) = (
            Arc::clone(&stop),
            service.rt.handle().clone(),
            service.orchestrator(),
        );
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                match client.tick(Instant::now()) {
                    Ok(reports) => {
                        let posted: Vec<(Report, bool)> = reports
                            .into_iter()
                            .map(|r| {
                                let sent = handle.block_on(orchestrator.post_report(&token, &r));
                                if let Err(e) = &sent {
                                    eprintln!("report: {e:#}");
                                }
                                (r, sent.is_ok())
                            })
                            .collect();
                        observe(&client, &posted);
                    }
                    Err(e) => eprintln!("client tick: {e}"),
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        ClientLoop { stop, thread }
    }

    /// Stops ticking and waits for the thread.
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the client loop does not panic");
    }
}
