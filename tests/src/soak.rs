//! The crash soak: `kill -9` of `damm serve` at random instants while it applies, restart,
//! repeat. The simulator lives in this process and outlives every kill; the `damm` binary
//! is the child. A churning policy (1 s ticks, ingress rotating every 8 s, egress every
//! 20 s, 2 s drains, a 300 ms boot delay and 20 ms of API latency) keeps it creating,
//! draining and retiring. Every live ingress is fronted through Cloudflare and joins
//! Tailscale, so rotation moves fronts (hostname kept) and every drain leaves the overlay;
//! every third kill a front is removed at the simulator behind DAMM's back, so the restart
//! publishes one again. Every other kill waits until an apply is under way (its intents
//! durable in the state file) and strikes within 60 ms; the others strike at a random
//! instant of the run.
//!
//! After every kill the state file must open (taking the lock) and load, and the simulator
//! must hold no key twice (no node, address, front or membership), no provider beyond its
//! `max_nodes` (or, for fronts and memberships, its `max`) and no spend beyond the cap.
//! Every `check_every` kills the child is restarted, allowed two ticks, stopped with
//! SIGTERM, and every labelled resource at the simulator must be in state, a known orphan,
//! or the subject of a journaled create that the next start adopts (nothing leaked). At
//! the end a last run outlives the orphan grace and the simulator and the state must agree
//! exactly, fronts and memberships included.
//!
//! Overlay auth keys live only in the memory of the process that minted them, and a
//! gateway of the simulator never redeems one: every restart finds the fleet's memberships
//! pending with keys it cannot hand out, drops them from state and joins the gateways
//! again (the adapter revokes the old key before minting, so a key still names one
//! membership). A membership whose gateway drains across a restart is not joined again: it
//! stays at the simulator, out of state, until its gateway is retired and it is adopted
//! and left. The graceful checks therefore accept a pending membership whose join the
//! journal holds for a gateway that drains; the end check does not.
//!
//! `cargo xtask soak` runs it in release mode; `tests/tests/crash_soak.rs` in the suite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use damm_fleet::{Action, AddressKind, Policy, Status};
use damm_orchestrator::state::Phase;
use damm_orchestrator::{FileStore, State, StateStore as _};
use damm_provider::{NodeFilter, Provider};
use damm_sim::{Faults, SimConfig, SimHandle};

/// The soak's policy: three providers, two regions, fast rotation, tight caps, fronts and
/// overlay memberships for every ingress.
pub const POLICY: &str = include_str!("../policies/soak.toml");

/// What to run.
#[derive(Debug, Clone)]
pub struct SoakArgs {
    /// `kill -9`s in all.
    pub kills: u32,
    /// The `damm` binary.
    pub damm: PathBuf,
    /// Seed of the kill instants.
    pub seed: u64,
    /// A graceful stop and leak check after this many kills.
    pub check_every: u32,
    /// The longest a child runs before its kill.
    pub max_run: Duration,
}

/// The counts.
#[derive(Debug, Default, Clone)]
pub struct SoakReport {
    /// `kill -9`s.
    pub kills: u32,
    /// Kills that left intents open in the state (the kill landed inside an apply, after
    /// its intents were durable and before its answers were recorded).
    pub kills_mid_apply: u32,
    /// Starts of `damm serve`.
    pub restarts: u32,
    /// Distinct resources (node, address, front and membership keys) the simulator held at
    /// some observation.
    pub created: usize,
    /// Distinct front keys among them.
    pub fronts: usize,
    /// Distinct membership keys among them.
    pub memberships: usize,
    /// Fronts moved to another ingress, hostname kept (journaled moves done).
    pub front_moves: usize,
    /// Fronts removed at the simulator behind DAMM's back, between a kill and the restart.
    pub fronts_removed: u32,
    /// Memberships minted again under a key seen before (a restart lost their auth keys).
    pub memberships_reminted: usize,
    /// Pending memberships found out of state at a graceful check, their join journaled and
    /// their gateway draining (see the module doc).
    pub memberships_out_of_state: usize,
    /// Observations of the simulator.
    pub observations: u32,
    /// Labelled resources neither in state, nor a known orphan, nor journaled.
    pub leaked: usize,
    /// Keys held twice at one observation.
    pub duplicates: usize,
    /// The most any provider was ever over its `max_nodes` (nodes) or its `max` (fronts,
    /// memberships), or the fleet over its spend cap (in whole nodes' worth, rounded up).
    pub max_over_cap: u32,
    /// State loads after a kill, every one of which succeeded.
    pub state_reads: u32,
    /// Wall time.
    pub elapsed: Duration,
}

impl std::fmt::Display for SoakReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "crash soak: {} kills ({} inside an apply), {} restarts, {} resources created \
             ({} fronts, {} memberships), {} front moves, {} fronts removed behind its back, \
             {} memberships minted again, {} pending out of state at a check, {} leaked, \
             {} duplicates, max over caps {}, {} state reads ok, {} observations, {:.1}s",
            self.kills,
            self.kills_mid_apply,
            self.restarts,
            self.created,
            self.fronts,
            self.memberships,
            self.front_moves,
            self.fronts_removed,
            self.memberships_reminted,
            self.memberships_out_of_state,
            self.leaked,
            self.duplicates,
            self.max_over_cap,
            self.state_reads,
            self.observations,
            self.elapsed.as_secs_f64()
        )
    }
}

/// The `damm` binary of `profile` ("debug" or "release") in the target directory this
/// executable runs from (`target/<profile>/deps/x` or `target/<profile>/x`), built with
/// cargo when it is not there.
pub fn damm_binary(release: bool) -> anyhow::Result<PathBuf> {
    let profile = if release { "release" } else { "debug" };
    let exe = std::env::current_exe().context("locating this executable")?;
    let target = exe
        .ancestors()
        .find(|a| {
            a.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "--quiet",
        "-p",
        "damm-orchestrator",
        "--bin",
        "damm",
    ]);
    if release {
        build.arg("--release");
    }
    if let Some(target) = &target {
        build.env("CARGO_TARGET_DIR", target);
    }
    let status = build.status().context("running cargo build for `damm`")?;
    ensure!(status.success(), "cargo build -p damm-orchestrator failed");
    let dir = target.unwrap_or_else(|| PathBuf::from("target"));
    let bin = dir.join(profile).join("damm");
    ensure!(bin.exists(), "{} is missing after the build", bin.display());
    Ok(bin)
}

/// A small xorshift generator: the kill instants repeat for a seed.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Soak<'a> {
    args: &'a SoakArgs,
    sim: SimHandle,
    policy: Policy,
    observer: BTreeMap<String, Arc<dyn Provider>>,
    dir: tempfile::TempDir,
    report: SoakReport,
    seen: BTreeSet<String>,
    /// Journal sequence numbers of the front moves seen done.
    moves: BTreeSet<u64>,
    /// Every membership seen, as `key id`: a key seen with a second id was minted again.
    minted: BTreeSet<String>,
}

/// One look at the simulator: the fleet's labelled resources by key.
#[derive(Debug, Default)]
struct Look {
    /// Node key → provider.
    nodes: BTreeMap<String, String>,
    /// Address key → provider.
    addresses: BTreeMap<String, String>,
    /// Front key → provider.
    fronts: BTreeMap<String, String>,
    /// Membership key → provider and whether it is pending (its auth key unredeemed).
    memberships: BTreeMap<String, (String, bool)>,
}

/// The environment that points every adapter of `policy` at `sim`, as
/// `damm_orchestrator::sim::providers` configures its own: API URL and token, the zone for
/// Cloudflare, the project for GCE.
fn child_env(sim: &SimHandle, policy: &Policy) -> anyhow::Result<Vec<(String, String)>> {
    let mut env = Vec::new();
    for (name, adapter) in policy.adapters() {
        let api = damm_orchestrator::sim::api(adapter)
            .with_context(|| format!("provider `{name}`: the simulator has no `{adapter}` API"))?;
        let gce_url = format!("http://{}/gce", sim.addr());
        let extra: Vec<(&str, &str)> = match api {
            damm_sim::Provider::Cloudflare => {
                vec![("DAMM_CLOUDFLARE_ZONE", damm_orchestrator::sim::SIM_ZONE)]
            }
            // Google's client takes the service root and adds `compute/v1` itself.
            damm_sim::Provider::Gce => vec![
                ("DAMM_GCE_API_URL", gce_url.as_str()),
                ("DAMM_GCE_PROJECT", damm_orchestrator::sim::SIM_GCE_PROJECT),
            ],
            _ => Vec::new(),
        };
        env.extend(damm_sim::testing::adapter_env(sim, api, &extra));
    }
    Ok(env)
}

impl Soak<'_> {
    fn state_path(&self) -> PathBuf {
        self.dir.path().join("state.json")
    }

    fn spawn(&mut self) -> anyhow::Result<Child> {
        let d = self.dir.path();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("damm.log"))?;
        let mut cmd = Command::new(&self.args.damm);
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(d)
            .env("DAMM_LOG", "warn")
            .env("DAMM_POLICY", d.join("policy.toml"))
            .env("DAMM_STATE", self.state_path())
            .env("DAMM_CATALOG", d.join("catalog.json"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .envs(child_env(&self.sim, &self.policy)?);
        self.report.restarts += 1;
        cmd.spawn()
            .with_context(|| format!("starting {}", self.args.damm.display()))
    }

    /// Opens the state as the next orchestrator would (taking the lock) and loads it.
    fn load_state(&mut self) -> anyhow::Result<Option<State>> {
        let mut store =
            FileStore::open(&self.state_path()).context("the state must open after a kill")?;
        let state = store.load().context("the state must load after a kill")?;
        self.report.state_reads += 1;
        if let Some(state) = &state {
            let moved = state.journal.iter().filter(|e| {
                e.phase == Phase::Done
                    && matches!(&e.action, Action::Repoint { kind, .. } if *kind == AddressKind::Front)
            });
            self.moves.extend(moved.map(|e| e.seq));
            self.report.front_moves = self.moves.len();
        }
        Ok(state)
    }

    /// Lists the simulator and checks keys and caps.
    async fn look(&mut self) -> anyhow::Result<Look> {
        let mut look = Look::default();
        let mut duplicates = 0;
        let mut spend_cents = 0u64;
        for (name, p) in &self.observer {
            // Fronts and memberships are at the entry providers, looked at below.
            let Some(compute) = self.policy.providers.get(name.as_str()) else {
                continue;
            };
            let nodes = p.list_nodes(&NodeFilter::all()).await?;
            let held = nodes.len() as u32;
            self.report.max_over_cap = self
                .report
                .max_over_cap
                .max(held.saturating_sub(compute.max_nodes));
            spend_cents += u64::from(held) * compute.node_cents();
            for n in nodes {
                let key = n.key().context("an observed node has no key label")?;
                if look.nodes.insert(key.to_string(), name.clone()).is_some() {
                    duplicates += 1;
                }
            }
            let mut addresses: Vec<Option<damm_provider::IdempotencyKey>> = Vec::new();
            if let Some(i) = p.ingress() {
                addresses.extend(i.list_frontdoors().await?.iter().map(|f| f.labels.key()));
            }
            if let Some(e) = p.egress() {
                addresses.extend(e.list_egress_ips().await?.iter().map(|f| f.labels.key()));
            }
            for key in addresses.into_iter().flatten() {
                if look
                    .addresses
                    .insert(key.to_string(), name.clone())
                    .is_some()
                {
                    duplicates += 1;
                }
            }
        }
        // Fronts and memberships: one per key, and no provider beyond its `max`.
        for (name, p) in &self.observer {
            if let Some(cdn) = p.cdn_front() {
                let fronts = cdn.list_fronts().await?;
                let max = self.policy.fronts.providers[name.as_str()].max;
                let held = fronts.len() as u32;
                self.report.max_over_cap = self.report.max_over_cap.max(held.saturating_sub(max));
                for f in fronts {
                    let key = f.labels.key().context("an observed front has no key")?;
                    if look.fronts.insert(key.to_string(), name.clone()).is_some() {
                        duplicates += 1;
                    }
                }
            }
            if let Some(overlay) = p.overlay() {
                let members = overlay.list_memberships().await?;
                let max = self.policy.overlay.providers[name.as_str()].max;
                let held = members.len() as u32;
                self.report.max_over_cap = self.report.max_over_cap.max(held.saturating_sub(max));
                for m in members {
                    let key = m
                        .labels
                        .key()
                        .context("an observed membership has no key")?;
                    let pending = m.state == damm_provider::MembershipState::Pending;
                    self.minted.insert(format!("{key} {}", m.reference.id));
                    if look
                        .memberships
                        .insert(key.to_string(), (name.clone(), pending))
                        .is_some()
                    {
                        duplicates += 1;
                    }
                }
            }
        }
        let cap_cents = (self.policy.limits.monthly_spend_cap * 100.0).round() as u64;
        if spend_cents > cap_cents {
            let cheapest = self
                .policy
                .providers
                .values()
                .map(|p| p.node_cents())
                .min()
                .unwrap_or(1)
                .max(1);
            let over = (spend_cents - cap_cents).div_ceil(cheapest) as u32;
            self.report.max_over_cap = self.report.max_over_cap.max(over);
        }
        self.report.duplicates += duplicates;
        self.report.observations += 1;
        self.seen
            .extend(look.nodes.keys().map(|k| format!("n/{k}")));
        self.seen
            .extend(look.addresses.keys().map(|k| format!("a/{k}")));
        self.seen
            .extend(look.fronts.keys().map(|k| format!("f/{k}")));
        self.seen
            .extend(look.memberships.keys().map(|k| format!("m/{k}")));
        self.report.created = self.seen.len();
        self.report.fronts = self.seen.iter().filter(|k| k.starts_with("f/")).count();
        self.report.memberships = self.seen.iter().filter(|k| k.starts_with("m/")).count();
        self.report.memberships_reminted = self.minted.len() - self.report.memberships;
        Ok(look)
    }

    /// Resources at the simulator the state neither holds, lists as an orphan, nor
    /// journaled a create for (which the next start adopts by its key).
    fn leaks(&mut self, look: &Look, state: &State) -> Vec<String> {
        let journaled: BTreeSet<String> = state
            .journal
            .iter()
            .filter(|e| e.phase == Phase::Intent)
            .filter_map(|e| match &e.action {
                Action::Create { key, .. } | Action::Allocate { key, .. } => Some(key.to_string()),
                _ => None,
            })
            .collect();
        let mut leaks = Vec::new();
        for (key, provider) in &look.nodes {
            let known = state.nodes.keys().any(|k| k.as_str() == key)
                || state.orphans.contains_key(&format!("{provider}/{key}"))
                || journaled.contains(key);
            if !known {
                leaks.push(format!("node {provider}/{key}"));
            }
        }
        for (key, provider) in &look.addresses {
            let known =
                state.addresses.keys().any(|k| k.as_str() == key) || journaled.contains(key);
            if !known {
                leaks.push(format!("address {provider}/{key}"));
            }
        }
        let in_state = |key: &str, kind: AddressKind| {
            state
                .addresses
                .iter()
                .any(|(k, a)| k.as_str() == key && a.kind == kind)
        };
        for (key, provider) in &look.fronts {
            if !in_state(key, AddressKind::Front) && !journaled.contains(key) {
                leaks.push(format!("front {provider}/{key}"));
            }
        }
        // A pending membership of an earlier process is out of state while its gateway
        // drains (see the module doc): known when the journal holds its join, settled or
        // not, for a gateway that drains or went in the tick that left it out.
        let joined: BTreeMap<String, &damm_provider::IdempotencyKey> = state
            .journal
            .iter()
            .filter_map(|e| match &e.action {
                Action::Allocate {
                    key,
                    kind: AddressKind::Overlay,
                    node,
                    ..
                } => Some((key.to_string(), node)),
                _ => None,
            })
            .collect();
        // Neither live nor a spare: draining, or retired in the tick that dropped it.
        let gateway_status = |key: &str| {
            let gateway = joined.get(key)?;
            Some(state.nodes.get(*gateway).map(|n| n.status))
        };
        for (key, (provider, pending)) in &look.memberships {
            if in_state(key, AddressKind::Overlay) || journaled.contains(key) {
                continue;
            }
            let gateway = gateway_status(key);
            let drains = matches!(gateway, Some(None | Some(Status::Draining)));
            if *pending && drains {
                self.report.memberships_out_of_state += 1;
            } else {
                let gateway = match gateway {
                    None => "no join journaled".to_owned(),
                    Some(None) => "its gateway gone".to_owned(),
                    Some(Some(status)) => format!("its gateway {}", status.as_str()),
                };
                let pending = if *pending { "pending" } else { "joined" };
                leaks.push(format!(
                    "membership {provider}/{key} ({pending}, {gateway})"
                ));
            }
        }
        leaks
    }

    fn sigterm(child: &mut Child) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                ensure!(
                    status.success(),
                    "damm serve exited with {status} on SIGTERM"
                );
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                bail!("damm serve did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The serial of the state file (0 before the first save).
    fn serial(&self) -> u64 {
        FileStore::read_only(&self.state_path())
            .load()
            .ok()
            .flatten()
            .map_or(0, |s| s.serial)
    }

    /// Whether a save newer than `serial` holds open intents: an apply is under way.
    fn applying(&self, serial: u64) -> bool {
        FileStore::read_only(&self.state_path())
            .load()
            .ok()
            .flatten()
            .is_some_and(|s| {
                s.serial > serial && s.journal.iter().any(|e| e.phase == Phase::Intent)
            })
    }

    /// The last tick number the state file holds.
    fn tick_number(&self) -> u64 {
        FileStore::read_only(&self.state_path())
            .load()
            .ok()
            .flatten()
            .map_or(0, |s| s.orchestrator.last_tick.number)
    }

    /// Removes one of the fleet's fronts at the simulator, as an operator cleaning DNS by
    /// hand would, while no `damm` runs: moves alone keep a front's key for good, and the
    /// next start has to publish a front again (and may be killed doing it).
    async fn remove_a_front(&mut self) -> anyhow::Result<()> {
        for p in self.observer.values() {
            let Some(cdn) = p.cdn_front() else { continue };
            let fronts = cdn.list_fronts().await?;
            if let Some(front) = fronts.get(self.report.kills as usize % fronts.len().max(1)) {
                cdn.retire_front(&front.reference).await?;
                self.report.fronts_removed += 1;
                return Ok(());
            }
        }
        Ok(())
    }

    /// Starts `damm serve`, lets it run `ticks` ticks (or until `until` holds), stops it
    /// with SIGTERM and checks for leaks; returns the state.
    async fn graceful(
        &mut self,
        ticks: u64,
        until: impl Fn(&State) -> bool,
    ) -> anyhow::Result<(Look, State)> {
        let start = self.tick_number();
        let mut child = self.spawn()?;
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Some(status) = child.try_wait()? {
                bail!("damm serve exited early with {status}; see its log");
            }
            let state = FileStore::read_only(&self.state_path())
                .load()
                .ok()
                .flatten();
            let done = state
                .as_ref()
                .is_some_and(|s| s.orchestrator.last_tick.number >= start + ticks && until(s));
            if done {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("damm serve made no progress within 90 s");
            }
        }
        Self::sigterm(&mut child)?;
        let state = self
            .load_state()?
            .context("no state after a graceful stop")?;
        let look = self.look().await?;
        let leaks = self.leaks(&look, &state);
        self.report.leaked += leaks.len();
        ensure!(leaks.is_empty(), "leaked: {leaks:?}");
        Ok((look, state))
    }
}

/// Runs the soak against a simulator it starts on 127.0.0.1.
pub async fn run(args: &SoakArgs) -> anyhow::Result<SoakReport> {
    let started = Instant::now();
    let config = SimConfig {
        boot_delay: Duration::from_millis(300),
        rate_limits: false,
        ..SimConfig::default()
    };
    let sim = damm_sim::start(config, "127.0.0.1:0".parse()?).await?;
    let policy = Policy::parse(POLICY, "soak policy")?;
    for (_, adapter) in policy.adapters() {
        let api = damm_orchestrator::sim::api(adapter)
            .with_context(|| format!("the simulator has no `{adapter}` API"))?;
        sim.set_faults(
            api,
            Faults {
                latency_ms: 20,
                ..Faults::default()
            },
        );
    }
    let observer = damm_orchestrator::sim::providers(&sim, &policy).await?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("policy.toml"), POLICY)?;
    let mut soak = Soak {
        args,
        sim,
        policy,
        observer,
        dir,
        report: SoakReport::default(),
        seen: BTreeSet::new(),
        moves: BTreeSet::new(),
        minted: BTreeSet::new(),
    };
    let result = soak_loop(&mut soak, args).await;
    soak.report.elapsed = started.elapsed();
    if let Err(e) = result {
        let log = std::fs::read_to_string(soak.dir.path().join("damm.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        bail!(
            "{e:#}\n{}\nlast lines of damm's log (newest first):\n{}",
            soak.report,
            tail.join("\n")
        );
    }
    Ok(soak.report)
}

async fn soak_loop(soak: &mut Soak<'_>, args: &SoakArgs) -> anyhow::Result<()> {
    let mut rng = Rng(args.seed.max(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let max_run = args.max_run.as_secs_f64();
    while soak.report.kills < args.kills {
        let serial = soak.serial();
        let mut child = soak.spawn()?;
        if soak.report.kills.is_multiple_of(2) {
            // Every other kill waits for an apply to start (its intents durable in the
            // state file), then strikes within the next 60 ms: inside the adapter calls.
            let deadline = Instant::now() + Duration::from_secs_f64(max_run * 3.0);
            while Instant::now() < deadline && !soak.applying(serial) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_secs_f64(rng.unit() * 0.06)).await;
        } else {
            let wait = 0.05 + rng.unit() * (max_run - 0.05).max(0.0);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
        if let Some(status) = child.try_wait()? {
            bail!("damm serve exited on its own with {status}; see its log");
        }
        child.kill().context("kill -9")?;
        child.wait()?;
        soak.report.kills += 1;
        if let Some(state) = soak.load_state()?
            && state.journal.iter().any(|e| e.phase == Phase::Intent)
        {
            soak.report.kills_mid_apply += 1;
        }
        soak.look().await?;
        ensure!(soak.report.duplicates == 0, "a key is held twice");
        ensure!(soak.report.max_over_cap == 0, "a cap was exceeded");
        if soak.report.kills % 3 == 1 {
            soak.remove_a_front().await?;
        }
        if args.check_every > 0 && soak.report.kills.is_multiple_of(args.check_every) {
            soak.graceful(2, |_| true).await?;
        }
    }
    // The end: outlive the orphan grace, until no orphan is pending and no intent open.
    let grace = soak.policy.lifecycle.orphan_grace.0.as_secs() + 2;
    let (look, state) = soak
        .graceful(grace, |s| {
            s.orphans.is_empty() && s.journal.iter().all(|e| e.phase != Phase::Intent)
        })
        .await?;
    let in_state: BTreeSet<&str> = state.nodes.keys().map(|k| k.as_str()).collect();
    let at_sim: BTreeSet<&str> = look.nodes.keys().map(String::as_str).collect();
    ensure!(
        in_state == at_sim,
        "the state and the simulator disagree at the end: state {in_state:?}, simulator {at_sim:?}"
    );
    let in_state: BTreeSet<&str> = state
        .addresses
        .iter()
        .filter(|(_, a)| !a.kind.is_entry())
        .map(|(k, _)| k.as_str())
        .collect();
    let at_sim: BTreeSet<&str> = look.addresses.keys().map(String::as_str).collect();
    ensure!(
        in_state == at_sim,
        "addresses disagree at the end: state {in_state:?}, simulator {at_sim:?}"
    );
    for (what, kind, at_sim) in [
        (
            "fronts",
            AddressKind::Front,
            look.fronts
                .keys()
                .map(String::as_str)
                .collect::<BTreeSet<_>>(),
        ),
        (
            "memberships",
            AddressKind::Overlay,
            look.memberships.keys().map(String::as_str).collect(),
        ),
    ] {
        let in_state: BTreeSet<&str> = state
            .addresses
            .iter()
            .filter(|(_, a)| a.kind == kind)
            .map(|(k, _)| k.as_str())
            .collect();
        ensure!(
            in_state == at_sim,
            "{what} disagree at the end: state {in_state:?}, simulator {at_sim:?}"
        );
    }
    ensure!(soak.report.duplicates == 0 && soak.report.max_over_cap == 0);
    Ok(())
}
