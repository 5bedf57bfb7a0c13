//! `converge`: from an empty fleet to N ingress nodes over three simulated providers
//! (Hetzner, DigitalOcean, Vultr, a third each) under their documented rate limits, with a
//! boot delay; the converge time against the lower bound.
//!
//! The lower bound: the slowest provider's creates at its documented sustained rate (Hetzner
//! 3600/hour = 1/s; DigitalOcean 5000/hour ≈ 1.39/s, tighter than its 250/minute; Vultr
//! 30/s), plus one boot. The policy paces creates at those rates: each provider's
//! `creates_per_tick` is its sustained rate times the tick.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::bail;
use damm_fleet::Policy;
use damm_orchestrator::whatif::documented_rate;
use serde::Serialize;

use crate::harness::{Harness, Setup, cap_violations, ingress_capacity};

/// The providers and regions of the run.
pub const PROVIDERS: [&str; 3] = ["digitalocean", "hetzner", "vultr"];
const REGIONS: [&str; 3] = ["eu-central", "us-east", "us-west"];

/// Target: converge within this factor of the lower bound.
pub const TARGET_FACTOR: f64 = 1.15;

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct ConvergeRun {
    /// Ingress nodes in all (a multiple of 3 is spread evenly).
    pub nodes: u32,
    /// The tick.
    pub tick: Duration,
    /// Compression and boot.
    pub setup: Setup,
}

impl ConvergeRun {
    /// The defaults: a 60 s tick, 2× compression (the simulator's real-time rate limits are
    /// then twice as strict as documented, which 100 probes a tick at DigitalOcean's
    /// 250/minute still fit), a 45 s boot.
    pub fn new(nodes: u32) -> ConvergeRun {
        ConvergeRun {
            nodes,
            tick: Duration::from_secs(60),
            setup: Setup {
                compression: 2.0,
                boot: Duration::from_secs(45),
                sim_rate_limits: true,
            },
        }
    }

    /// Creates per tick at `provider`: its documented sustained rate times the tick.
    pub fn creates_per_tick(&self, provider: &str) -> u32 {
        let rate = documented_rate(provider).unwrap_or(1.0);
        ((rate * self.tick.as_secs_f64()).floor() as u32).clamp(1, self.per_provider())
    }

    fn per_provider(&self) -> u32 {
        self.nodes.div_ceil(PROVIDERS.len() as u32)
    }

    /// The policy: N ingress nodes over three regions, each provider capped at a third.
    pub fn policy(&self) -> anyhow::Result<Policy> {
        let per_region = self.nodes / REGIONS.len() as u32;
        if per_region * REGIONS.len() as u32 != self.nodes {
            bail!("--nodes must be a multiple of {}", REGIONS.len());
        }
        let regions = REGIONS.map(|r| format!("\"{r}\"")).join(", ");
        let total: u32 = PROVIDERS.iter().map(|p| self.creates_per_tick(p)).sum();
        let mut text = format!(
            "[fleet]\nid = \"converge\"\ntick = \"{}s\"\nmode = \"apply\"\n[limits]\ncreates_per_tick = {total}\nretires_per_tick = 3\nmonthly_spend_cap = 1000000.0\n[lifecycle]\nboot_timeout = \"10m\"\n",
            self.tick.as_secs()
        );
        for name in PROVIDERS {
            text += &format!(
                "[providers.{name}]\nmax_nodes = {}\ncreates_per_tick = {}\nregions = [{regions}]\nprices = {{ small = 5.0 }}\n",
                self.per_provider(),
                self.creates_per_tick(name)
            );
        }
        for r in REGIONS {
            text += &format!(
                "[regions.{r}]\ningress = {{ min = {per_region}, max = {per_region} }}\negress = {{ min = 0, max = 0 }}\nmin_providers = 3\nrotate_ingress_after = \"30d\"\nrotate_egress_after = \"60d\"\n"
            );
        }
        Ok(Policy::parse(&text, "converge scenario")?)
    }

    /// The lower bound, seconds: the slowest provider's creates over its sustained rate,
    /// plus one boot; with the provider it comes from.
    pub fn lower_bound(&self) -> (f64, &'static str) {
        PROVIDERS
            .iter()
            .map(|p| {
                let rate = documented_rate(p).unwrap_or(1.0);
                (f64::from(self.per_provider()) / rate, *p)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(s, p)| (s + self.setup.boot.as_secs_f64(), p))
            .unwrap_or((0.0, "-"))
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ConvergeResult {
    /// Ingress nodes asked for.
    pub nodes: u32,
    /// Live healthy ingress at the end.
    pub live: u32,
    /// Ticks until every node was live (the tick that saw it).
    pub ticks: u32,
    /// Orchestrator seconds from the first tick to the tick that saw every node live.
    pub seconds: Option<f64>,
    /// The lower bound, seconds.
    pub bound_seconds: f64,
    /// The provider behind the bound.
    pub bound_provider: String,
    /// Creates per tick per provider.
    pub creates_per_tick: BTreeMap<String, u32>,
    /// Live ingress after each tick.
    pub live_per_tick: Vec<u32>,
    /// Failed actions in all (rate-limited or refused calls).
    pub failed: u64,
    /// Policy caps broken (must stay empty).
    pub cap_violations: Vec<String>,
    /// Compression achieved.
    pub compression: f64,
    /// Real seconds.
    pub wall_seconds: f64,
}

/// Runs the scenario.
pub async fn run(args: &ConvergeRun) -> anyhow::Result<ConvergeResult> {
    let policy = args.policy()?;
    let mut h = Harness::start(policy.clone(), args.setup.clone()).await?;
    let (bound_seconds, bound_provider) = args.lower_bound();
    let mut violations = Vec::new();
    let mut live_per_tick = Vec::new();
    let mut failed = 0;
    let mut seconds = None;
    let mut ticks = 0;
    // Generous: the bound in ticks, three times over, and at least ten.
    let limit = ((bound_seconds / args.tick.as_secs_f64()).ceil() as u32 * 3).max(10);
    while ticks < limit {
        let t = h.elapsed_virtual();
        let r = h.tick().await?;
        ticks += 1;
        failed += r.summary.failed;
        violations.extend(cap_violations(&policy, &r, h.engine.state()));
        let (have, want) = ingress_capacity(h.engine.state(), &r.scores, &policy, None);
        live_per_tick.push(have);
        if have == want {
            seconds = Some(t);
            break;
        }
    }
    let live = live_per_tick.last().copied().unwrap_or(0);
    let result = ConvergeResult {
        nodes: args.nodes,
        live,
        ticks,
        seconds,
        bound_seconds,
        bound_provider: bound_provider.to_owned(),
        creates_per_tick: PROVIDERS
            .iter()
            .map(|p| ((*p).to_owned(), args.creates_per_tick(p)))
            .collect(),
        live_per_tick,
        failed,
        cap_violations: violations,
        compression: h.achieved_compression(),
        wall_seconds: h.elapsed_real().as_secs_f64(),
    };
    h.shutdown().await;
    Ok(result)
}

/// Prints a run's figures.
pub fn print(r: &ConvergeResult, args: &ConvergeRun) {
    println!(
        "converge: 0 → {} ingress nodes over {} (a third each), {} regions, {} s tick",
        r.nodes,
        PROVIDERS.join(", "),
        REGIONS.len(),
        args.tick.as_secs()
    );
    println!(
        "  time compressed {:.1}× (asked {:.0}×); boot {:.0} s (simulator: {:.2} s real); client rate limits refill {:.0}× faster; \
         simulator rate limits on, in real time ({:.0}× stricter than documented in orchestrator time)",
        r.compression,
        args.setup.compression,
        args.setup.boot.as_secs_f64(),
        args.setup.boot.as_secs_f64() / args.setup.compression,
        args.setup.compression,
        args.setup.compression
    );
    let caps: Vec<String> = r
        .creates_per_tick
        .iter()
        .map(|(p, n)| format!("{p} {n}"))
        .collect();
    println!(
        "  creates per tick (documented sustained rate × tick): {}",
        caps.join(", ")
    );
    let live: Vec<String> = r.live_per_tick.iter().map(ToString::to_string).collect();
    println!("  live ingress after each tick: {}", live.join(" → "));
    match r.seconds {
        Some(s) => {
            let factor = s / r.bound_seconds;
            println!(
                "  converged in {s:.0} s ({} ticks) vs lower bound {:.0} s ({} creates at {} ÷ its rate + {:.0} s boot): {factor:.2}× (target ≤ {TARGET_FACTOR}×: {})",
                r.ticks,
                r.bound_seconds,
                args.nodes.div_ceil(3),
                r.bound_provider,
                args.setup.boot.as_secs_f64(),
                if factor <= TARGET_FACTOR {
                    "ok"
                } else {
                    "MISSED"
                }
            );
        }
        None => println!(
            "  did NOT converge: {} of {} live after {} ticks",
            r.live, r.nodes, r.ticks
        ),
    }
    println!(
        "  {} failed actions, {} cap violations; real time {:.1} s",
        r.failed,
        r.cap_violations.len(),
        r.wall_seconds
    );
    for v in r.cap_violations.iter().take(5) {
        println!("    cap broken: {v}");
    }
}
