//! The orchestrator in apply mode against the in-process simulator, on a compressed clock:
//! what the provider-dark and converge scenarios drive.
//!
//! Time compression `c`: every tick moves the orchestrator's [`ManualClock`] by the policy's
//! tick, and about `tick / c` of real time passes between ticks; the adapters' client-side
//! rate limits refill `c` times faster ([`damm_provider::retry::set_time_compression`]), so
//! they hold the providers' documented limits in orchestrator time; the simulator boots a
//! machine in `boot / c` of real time. The simulator's own rate limits (on unless asked
//! otherwise) count real time, so under compression they are `c` times stricter than
//! documented, never looser.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use damm_fleet::{Action, Mode, Policy, Scores, Status};
use damm_orchestrator::engine::{ManualClock, TickReport};
use damm_orchestrator::publish::{Keys, Sink};
use damm_orchestrator::{Engine, FileStore, Options, State};
use damm_provider::{NodeRole, NodeState};
use damm_sim::{SimConfig, SimHandle};

/// Each health probe's timeout (real time).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Orchestrator time per real time.
    pub compression: f64,
    /// A machine's boot time in orchestrator time (the simulator's boot delay × compression).
    pub boot: Duration,
    /// Whether the simulator enforces the providers' rate limits (in real time).
    pub sim_rate_limits: bool,
}

/// A running simulator and an engine on it.
pub struct Harness {
    /// The simulator.
    pub sim: SimHandle,
    /// The engine.
    pub engine: Engine,
    /// Its clock.
    pub clock: Arc<ManualClock>,
    /// The state, catalog and record directory.
    pub dir: tempfile::TempDir,
    setup: Setup,
    tick: Duration,
    started: Instant,
    virtual_start: chrono::DateTime<chrono::Utc>,
    last_tick_started: Option<Instant>,
}

impl Harness {
    /// Starts the simulator and an engine on `policy`, publishing a signed catalog every tick.
    pub async fn start(policy: Policy, setup: Setup) -> anyhow::Result<Harness> {
        damm_provider::retry::set_time_compression(setup.compression);
        let boot_real = setup.boot.div_f64(setup.compression.max(1.0));
        let sim = damm_sim::start(
            SimConfig {
                boot_delay: boot_real,
                rate_limits: setup.sim_rate_limits,
                ..SimConfig::default()
            },
            "127.0.0.1:0".parse()?,
        )
        .await
        .context("starting the provider simulator")?;
        let providers = damm_orchestrator::sim::providers(&sim, &policy).await?;
        let dir = tempfile::tempdir().context("creating a state directory")?;
        let store = FileStore::open(&dir.path().join("state.json"))?;
        let clock = ManualClock::new(chrono::Utc::now());
        let options = Options {
            probe_timeout: PROBE_TIMEOUT,
            call_timeout: Duration::from_secs(30),
            apply_concurrency: 32,
            ..Options::default()
        };
        let tick = policy.fleet.tick.0;
        let mut engine = Engine::new(policy, providers, Box::new(store), clock.clock(), options)?;
        engine.set_publisher(
            Arc::new(Keys::generate()),
            Sink {
                path: dir.path().join("catalog.json"),
            },
        );
        Ok(Harness {
            virtual_start: clock.now(),
            sim,
            engine,
            clock,
            dir,
            setup,
            tick,
            started: Instant::now(),
            last_tick_started: None,
        })
    }

    /// One tick in apply mode at the current orchestrator time; then the real time of one
    /// compressed tick passes (at least the boot), and the clock moves one tick on.
    pub async fn tick(&mut self) -> anyhow::Result<TickReport> {
        let began = Instant::now();
        self.last_tick_started = Some(began);
        let report = self.engine.tick(Mode::Apply, true).await?;
        let compressed = self.tick.div_f64(self.setup.compression.max(1.0));
        let boot_real = self.setup.boot.div_f64(self.setup.compression.max(1.0));
        // What was created this tick has booted before the next one, as in orchestrator
        // time (the boot is shorter than a tick).
        let until =
            (began + compressed).max(Instant::now() + boot_real + Duration::from_millis(30));
        tokio::time::sleep_until(until.into()).await;
        self.clock.advance(self.tick);
        Ok(report)
    }

    /// Orchestrator time since the start, in seconds.
    pub fn elapsed_virtual(&self) -> f64 {
        (self.clock.now() - self.virtual_start).num_milliseconds() as f64 / 1000.0
    }

    /// Real time since the start.
    pub fn elapsed_real(&self) -> Duration {
        self.started.elapsed()
    }

    /// The compression the run achieved: orchestrator time over real time.
    pub fn achieved_compression(&self) -> f64 {
        self.elapsed_virtual() / self.elapsed_real().as_secs_f64().max(1e-9)
    }

    /// The setup.
    pub fn setup(&self) -> &Setup {
        &self.setup
    }

    /// Stops the simulator.
    pub async fn shutdown(self) {
        self.sim.shutdown().await;
    }
}

/// Live healthy ingress (published, running, probed healthy, at a provider that is neither
/// dark in the scores nor `lost`), each region capped at its `ingress.min`: (have, want).
/// A region that needs an egress (`egress.min` > 0) and has no live one counts nothing: its
/// paths lead nowhere.
pub fn ingress_capacity(
    state: &State,
    scores: &Scores,
    policy: &Policy,
    lost: Option<&str>,
) -> (u32, u32) {
    let mut live: BTreeMap<&damm_provider::Region, u32> = BTreeMap::new();
    let mut egress: BTreeMap<&damm_provider::Region, u32> = BTreeMap::new();
    for (key, n) in &state.nodes {
        if n.role == NodeRole::Egress
            && n.status == Status::Active
            && n.state == NodeState::Running
            && Some(n.provider.as_str()) != lost
            && !scores.dark.contains(&n.provider)
            && scores.get(key.as_str()).is_some_and(|s| s.healthy)
        {
            *egress.entry(&n.region).or_default() += 1;
        }
        if n.role == NodeRole::Ingress
            && n.status == Status::Active
            && n.state == NodeState::Running
            && Some(n.provider.as_str()) != lost
            && !scores.dark.contains(&n.provider)
            && scores.get(key.as_str()).is_some_and(|s| s.healthy)
        {
            *live.entry(&n.region).or_default() += 1;
        }
    }
    policy.regions.iter().fold((0, 0), |(have, want), (r, p)| {
        let routed = p.egress.min == 0 || egress.get(r).is_some_and(|&e| e > 0);
        let got = if routed {
            live.get(r).copied().unwrap_or(0).min(p.ingress.min)
        } else {
            0
        };
        (have + got, want + p.ingress.min)
    })
}

/// Every policy cap the tick's plan or the resulting state broke, described.
pub fn cap_violations(policy: &Policy, report: &TickReport, state: &State) -> Vec<String> {
    let mut out = Vec::new();
    let mut creates: BTreeMap<&str, u32> = BTreeMap::new();
    let mut retires = 0;
    for a in &report.plan.actions {
        match a {
            Action::Create { provider, .. } => *creates.entry(provider).or_default() += 1,
            Action::Retire { .. } => retires += 1,
            _ => {}
        }
    }
    let total: u32 = creates.values().sum();
    if total > policy.limits.creates_per_tick {
        out.push(format!(
            "{total} creates > limits.creates_per_tick {}",
            policy.limits.creates_per_tick
        ));
    }
    if retires > policy.limits.retires_per_tick {
        out.push(format!(
            "{retires} retires > limits.retires_per_tick {}",
            policy.limits.retires_per_tick
        ));
    }
    let mut nodes: BTreeMap<&str, u32> = BTreeMap::new();
    for n in state.nodes.values() {
        *nodes.entry(&n.provider).or_default() += 1;
    }
    for (name, p) in &policy.providers {
        let c = creates.get(name.as_str()).copied().unwrap_or(0);
        if c > p.creates_per_tick {
            out.push(format!(
                "{c} creates at {name} > providers.{name}.creates_per_tick {}",
                p.creates_per_tick
            ));
        }
        let n = nodes.get(name.as_str()).copied().unwrap_or(0);
        if n > p.max_nodes {
            out.push(format!(
                "{n} nodes at {name} > providers.{name}.max_nodes {}",
                p.max_nodes
            ));
        }
    }
    for name in creates.keys() {
        if !policy.providers.contains_key(*name) {
            out.push(format!("a create at {name}, which is not allowlisted"));
        }
    }
    out
}
