//! `probe`: a fleet of N nodes on the simulator, then the inventory-and-probe phase of one
//! tick with added API latency, then the resident memory of `damm serve` holding that state.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use damm_fleet::{Mode, Policy};
use damm_orchestrator::engine::ManualClock;
use damm_orchestrator::{Engine, FileStore, Options};
use damm_sim::{Faults, SimConfig};

/// Settings of the run.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    /// Fleet size.
    pub nodes: usize,
    /// Added latency on every simulator call, milliseconds.
    pub latency_ms: u64,
    /// Probes in flight at once.
    pub concurrency: usize,
    /// The `damm` binary for the memory measurement (skipped when `None`).
    pub damm: Option<PathBuf>,
}

const PROVIDERS: [(&str, damm_sim::Provider); 3] = [
    ("digitalocean", damm_sim::Provider::DigitalOcean),
    ("hetzner", damm_sim::Provider::Hetzner),
    ("vultr", damm_sim::Provider::Vultr),
];
const REGIONS: [&str; 4] = ["ap-southeast", "eu-central", "us-east", "us-west"];

/// A policy for `nodes` ingress nodes over three providers and four regions.
pub fn policy(nodes: usize, mode: &str, tick: &str) -> String {
    let per_region = nodes / REGIONS.len();
    let regions = REGIONS.map(|r| format!("\"{r}\"")).join(", ");
    let mut text = format!(
        "[fleet]\nid = \"scale\"\ntick = \"{tick}\"\nmode = \"{mode}\"\n[limits]\ncreates_per_tick = {nodes}\nretires_per_tick = 0\nmonthly_spend_cap = 1000000.0\n[lifecycle]\nboot_timeout = \"1d\"\n"
    );
    for (name, _) in PROVIDERS {
        text += &format!(
            "[providers.{name}]\nmax_nodes = {nodes}\ncreates_per_tick = {nodes}\nregions = [{regions}]\nprices = {{ small = 5.0 }}\n"
        );
    }
    for r in REGIONS {
        text += &format!(
            "[regions.{r}]\ningress = {{ min = {per_region}, max = {per_region} }}\negress = {{ min = 0, max = 0 }}\nmin_providers = 3\nrotate_ingress_after = \"30d\"\nrotate_egress_after = \"60d\"\n"
        );
    }
    text
}

fn rss_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("VmHWM:")))
}

fn get(addr: &str, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.starts_with("HTTP/1.1 200")
        .then(|| text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))
        .flatten()
}

/// Runs the scenario and prints its figures.
pub async fn run(args: &ProbeRun) -> anyhow::Result<()> {
    // Building 10k nodes within the providers' documented client-side limits takes hours
    // (Hetzner: 3600 calls an hour): this run measures the orchestrator, so the limits are
    // lifted by compressing their clock a millionfold.
    damm_provider::retry::set_time_compression(1e6);
    let sim = damm_sim::start(
        SimConfig {
            boot_delay: Duration::from_millis(0),
            // Figures for the orchestrator, not for the schema validator or the limits.
            validate: false,
            rate_limits: false,
            ..SimConfig::default()
        },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let dir = tempfile::tempdir()?;
    let state_path = dir.path().join("state.json");
    let policy = Policy::parse(&policy(args.nodes, "apply", "60s"), "scenario")?;
    let providers = damm_orchestrator::sim::providers(&sim, &policy).await?;
    let clock = ManualClock::new(chrono::Utc::now());
    let options = Options {
        probe_concurrency: args.concurrency,
        apply_concurrency: 64,
        probe_timeout: Duration::from_secs(10),
        call_timeout: Duration::from_secs(120),
    };
    let mut engine = Engine::new(
        policy.clone(),
        providers,
        Box::new(FileStore::open(&state_path)?),
        clock.clock(),
        options,
    )?;
    println!(
        "probe scenario: {} nodes over {} providers and {} regions on the simulator ({})",
        args.nodes,
        PROVIDERS.len(),
        REGIONS.len(),
        sim.addr()
    );
    let started = Instant::now();
    let mut ticks = 0;
    while engine.state().nodes.len() < args.nodes && ticks < 10 {
        let r = engine.tick(Mode::Apply, true).await?;
        ticks += 1;
        println!(
            "  build tick {ticks}: {} applied, {} failed, {} nodes",
            r.summary.applied,
            r.summary.failed,
            engine.state().nodes.len()
        );
        if r.summary.failed > 0 {
            let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &engine.state().journal {
                if let damm_orchestrator::state::Phase::Failed { error } = &e.phase {
                    *errors.entry(error.as_str()).or_default() += 1;
                }
            }
            for (error, n) in errors.iter().take(3) {
                println!("    {n} × {error}");
            }
        }
        clock.advance(Duration::from_secs(60));
    }
    println!(
        "  fleet built in {:.1} s ({} ticks); state file {:.1} MB",
        started.elapsed().as_secs_f64(),
        ticks,
        std::fs::metadata(&state_path)?.len() as f64 / 1e6
    );
    if engine.state().nodes.len() < args.nodes {
        bail!("the fleet did not reach {} nodes", args.nodes);
    }
    // One warm tick (probes every node once), then latency on, then the measured ticks.
    engine.tick(Mode::Apply, true).await?;
    for (_, api) in PROVIDERS {
        sim.set_faults(
            api,
            Faults {
                latency_ms: args.latency_ms,
                ..Faults::default()
            },
        );
    }
    let mut figures = Vec::new();
    for i in 1..=3 {
        clock.advance(Duration::from_secs(60));
        let r = engine.tick(Mode::Plan, false).await?;
        println!(
            "  probe phase {i}: {} ms (inventory {} ms) for {} probes ({} failed) + inventory of {} nodes, {} ms added latency per call",
            r.summary.probe_ms,
            r.summary.inventory_ms,
            r.summary.probes,
            r.summary.probe_failures,
            engine.state().nodes.len(),
            args.latency_ms
        );
        figures.push(r.summary.probe_ms);
    }
    figures.sort_unstable();
    println!(
        "  probe phase, median of 3: {} ms (target ≤ 2000 ms)",
        figures[1]
    );
    drop(engine);
    if let Some(damm) = &args.damm {
        serve_memory(damm, dir.path(), &state_path, &sim, args).await?;
    }
    sim.shutdown().await;
    Ok(())
}

async fn serve_memory(
    damm: &Path,
    dir: &Path,
    state: &Path,
    sim: &damm_sim::SimHandle,
    args: &ProbeRun,
) -> anyhow::Result<()> {
    let policy_path = dir.join("policy.toml");
    std::fs::write(&policy_path, policy(args.nodes, "plan", "2s"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    for (name, api) in PROVIDERS {
        let upper = name.to_uppercase();
        env.insert(format!("DAMM_{upper}_API_URL"), sim.url(api));
        env.insert(format!("DAMM_{upper}_TOKEN"), sim.token().to_owned());
    }
    let mut child = Command::new(damm)
        .args(["serve", "--listen", &addr])
        .env("DAMM_POLICY", &policy_path)
        .env("DAMM_STATE", state)
        .env("DAMM_LOG", "warn")
        .envs(&env)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", damm.display()))?;
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut ticks_seen = 0;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(body) = get(&addr, "/metrics")
            && let Some(line) = body.lines().find(|l| l.starts_with("damm_tick_number "))
        {
            ticks_seen = line[18..].trim().parse::<f64>().unwrap_or(0.0) as u64;
            if ticks_seen >= 2 {
                break;
            }
        }
    }
    let (rss, hwm) = rss_kib(child.id())?;
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let status = child.wait()?;
    println!(
        "  damm serve holding {} nodes, after {ticks_seen} ticks: resident {:.1} MB, peak {:.1} MB (target ≤ 150 MB); exit on SIGTERM: {status}",
        args.nodes,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    Ok(())
}
