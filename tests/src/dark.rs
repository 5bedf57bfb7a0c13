//! `provider-dark`: the fleet converged on the simulator, then one provider goes dark (every
//! call answers 503). The timeline: ticks until the catalog excludes the provider, capacity
//! (live healthy ingress over the regions' minimums) at every tick, and the time to ≥ 70 %
//! and to 100 %, in orchestrator time.
//!
//! The outage starts at the worst phase: just after a tick, so the first tick that can see
//! it comes one full tick later. Capacity is counted as clients see it: from the moment of
//! the outage, nothing at the dark provider serves, whatever the scores still believe.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use damm_fleet::Policy;
use damm_orchestrator::validated::{self, Proof};
use damm_orchestrator::whatif::{self, CatalogPaths, Users};
use damm_sim::{Dark, Faults};
use serde::Serialize;

use crate::harness::{Harness, Setup, cap_violations, ingress_capacity};

/// The scenario's targets.
pub mod targets {
    /// Capacity at or above this share counts as "≥ 70 %".
    pub const PARTIAL_PERCENT: f64 = 70.0;
    /// ≥ 70 % within this many seconds, with warm spares.
    pub const PARTIAL_WITHIN_S: f64 = 60.0;
    /// 100 % within this many seconds.
    pub const FULL_WITHIN_S: f64 = 300.0;
}

/// Settings of one run.
#[derive(Debug, Clone)]
pub struct DarkRun {
    /// The policy (default: the embedded `policy/default.toml`).
    pub policy: Policy,
    /// The provider that goes dark.
    pub provider: String,
    /// Compression and boot time.
    pub setup: Setup,
    /// Ticks to watch after the outage.
    pub ticks_after: u32,
    /// Where to record a proven failover (`None`: do not record).
    pub validated: Option<PathBuf>,
    /// The command line that reproduces the run, for the record.
    pub command: String,
}

impl DarkRun {
    /// The defaults for `provider`: the default policy, 120× compression (one 60 s tick ≈
    /// 0.5 s), a 45 s boot, the simulator's rate limits on, 12 ticks after the outage.
    pub fn new(provider: &str) -> DarkRun {
        DarkRun {
            policy: Policy::default_policy(),
            provider: provider.to_owned(),
            setup: Setup {
                compression: 120.0,
                boot: Duration::from_secs(45),
                sim_rate_limits: true,
            },
            ticks_after: 12,
            validated: None,
            command: format!("cargo xtask scenario provider-dark --provider {provider}"),
        }
    }
}

/// `policy` without the providers the simulator has no API for (an AWS compute provider, a
/// CloudFront front: moto serves those in the adapter's own tests), and their names.
fn simulated_only(mut policy: Policy) -> (Policy, Vec<String>) {
    let mut left_out = Vec::new();
    policy.providers.retain(|name, p| {
        let adapter = p.adapter.as_deref().unwrap_or(name);
        let keep = damm_orchestrator::sim::api(adapter).is_some();
        if !keep {
            left_out.push(name.clone());
        }
        keep
    });
    for entries in [&mut policy.fronts.providers, &mut policy.overlay.providers] {
        entries.retain(|name, e| {
            let adapter = e.adapter.as_deref().unwrap_or(name);
            let keep = damm_orchestrator::sim::api(adapter).is_some();
            if !keep {
                left_out.push(name.clone());
            }
            keep
        });
    }
    (policy, left_out)
}

/// Capacity after one tick.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// Ticks since the outage (0: the instant it began).
    pub tick: u32,
    /// Seconds of orchestrator time since the outage.
    pub seconds: f64,
    /// Live healthy ingress off the dark provider over the minimums, percent.
    pub capacity_percent: f64,
    /// Whether the catalog published by this tick lists no path through the provider.
    pub excluded: bool,
    /// Whether the provider's breaker is open.
    pub dark_in_scores: bool,
    /// Actions applied in the tick.
    pub applied: u64,
    /// Spares promoted in the tick.
    pub promoted: usize,
    /// Nodes created in the tick.
    pub created: usize,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct DarkResult {
    /// The provider.
    pub provider: String,
    /// Live ingress at the provider when it went dark.
    pub ingress_lost: u32,
    /// Ticks to converge before the outage.
    pub converge_ticks: u32,
    /// Ticks after the outage until the catalog excluded the provider.
    pub ticks_to_exclude: Option<u32>,
    /// Seconds until capacity was ≥ 70 %.
    pub seconds_to_70: Option<f64>,
    /// Seconds until capacity was 100 %.
    pub seconds_to_100: Option<f64>,
    /// The timeline.
    pub timeline: Vec<Point>,
    /// Policy caps broken by any tick (must stay empty).
    pub cap_violations: Vec<String>,
    /// Actions the planner aimed at the dark provider once its breaker was open.
    pub actions_at_dark: usize,
    /// What `damm whatif` predicted just before the outage.
    pub predicted: whatif::WhatIf,
    /// Providers of the policy the simulator has no API for, left out of the run.
    pub left_out: Vec<String>,
    /// Orchestrator seconds per tick.
    pub tick_seconds: f64,
    /// Compression achieved (orchestrator time over real time).
    pub compression: f64,
    /// Real seconds the run took.
    pub wall_seconds: f64,
}

impl DarkResult {
    /// Whether the run proves the integrity claim for this provider: excluded from the
    /// catalog, ≥ 70 % within 5 minutes and back to 100 %, with no cap broken.
    pub fn proves_failover(&self) -> bool {
        self.ticks_to_exclude.is_some()
            && self.seconds_to_70.is_some_and(|s| s <= 300.0)
            && self.seconds_to_100.is_some()
            && self.cap_violations.is_empty()
            && self.actions_at_dark == 0
    }
}

fn percent((have, want): (u32, u32)) -> f64 {
    if want == 0 {
        100.0
    } else {
        100.0 * f64::from(have) / f64::from(want)
    }
}

/// Runs the scenario.
pub async fn run(args: &DarkRun) -> anyhow::Result<DarkResult> {
    let (policy, left_out) = simulated_only(args.policy.clone());
    // A compute provider, or a front or overlay provider (its paths leave, T0 stays).
    let Some((_, adapter)) = policy.adapters().find(|(name, _)| *name == args.provider) else {
        bail!(
            "provider `{}` is not in the policy's providers ({})",
            args.provider,
            policy
                .adapters()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let api = damm_orchestrator::sim::api(adapter)
        .with_context(|| format!("the simulator has no API for `{adapter}`"))?;
    let mut h = Harness::start(policy.clone(), args.setup.clone()).await?;
    let mut violations = Vec::new();

    // Converge: every region at its minimums and a quiet plan.
    let mut converge_ticks = 0;
    let mut last = None;
    for _ in 0..30 {
        let r = h.tick().await?;
        converge_ticks += 1;
        violations.extend(cap_violations(&policy, &r, h.engine.state()));
        let full = {
            let (have, want) = ingress_capacity(h.engine.state(), &r.scores, &policy, None);
            have == want
        };
        let quiet = r.plan.actions.is_empty();
        last = Some(r);
        if full && quiet {
            break;
        }
    }
    let last = last.context("no tick ran")?;
    if !last.plan.actions.is_empty() {
        bail!("the fleet did not converge in {converge_ticks} ticks");
    }

    // What the what-if predicts, from the state and catalog at the outage.
    let state = h.engine.state().clone();
    let paths = match &last.catalog {
        Some(c) => CatalogPaths::from_catalog(c, "the scenario's last catalog"),
        None => CatalogPaths::compose(&state, &policy, &last.scores),
    };
    let at = state
        .orchestrator
        .last_tick
        .at
        .unwrap_or_else(chrono::Utc::now);
    let predicted = whatif::whatif(
        &state,
        &policy,
        &paths,
        &last.scores,
        &Users::RegionsEqual,
        &args.provider,
        at,
    );
    let before = ingress_capacity(&state, &last.scores, &policy, None);
    let after = ingress_capacity(&state, &last.scores, &policy, Some(&args.provider));

    // The outage, just after a tick.
    h.sim.set_faults(api, Faults::dark(Dark::Unavailable));
    let tick_seconds = policy.fleet.tick.0.as_secs_f64();
    let mut timeline = vec![Point {
        tick: 0,
        seconds: 0.0,
        capacity_percent: percent(after),
        excluded: false,
        dark_in_scores: false,
        applied: 0,
        promoted: 0,
        created: 0,
    }];
    let mut actions_at_dark = 0;
    for k in 1..=args.ticks_after {
        let r = h.tick().await?;
        violations.extend(cap_violations(&policy, &r, h.engine.state()));
        let dark = r.scores.dark.contains(&args.provider);
        if dark {
            actions_at_dark += r
                .plan
                .actions
                .iter()
                .filter(|a| a.provider() == args.provider)
                .count();
        }
        let excluded = r.catalog.as_ref().is_some_and(|c| {
            c.regions
                .values()
                .flat_map(|p| p.paths.iter())
                .all(|p| !p.providers().contains(&args.provider.as_str()))
        });
        let cap = ingress_capacity(h.engine.state(), &r.scores, &policy, Some(&args.provider));
        timeline.push(Point {
            tick: k,
            seconds: f64::from(k) * tick_seconds,
            capacity_percent: percent(cap),
            excluded,
            dark_in_scores: dark,
            applied: r.summary.applied,
            promoted: r
                .plan
                .actions
                .iter()
                .filter(|a| matches!(a, damm_fleet::Action::Promote { .. }))
                .count(),
            created: r
                .plan
                .actions
                .iter()
                .filter(|a| matches!(a, damm_fleet::Action::Create { .. }))
                .count(),
        });
    }
    let first = |f: &dyn Fn(&Point) -> bool| timeline.iter().find(|p| f(p));
    let result = DarkResult {
        provider: args.provider.clone(),
        ingress_lost: before.0 - after.0,
        converge_ticks,
        ticks_to_exclude: first(&|p| p.excluded).map(|p| p.tick),
        seconds_to_70: first(&|p| p.capacity_percent >= targets::PARTIAL_PERCENT)
            .map(|p| p.seconds),
        seconds_to_100: first(&|p| p.capacity_percent >= 100.0).map(|p| p.seconds),
        timeline,
        cap_violations: violations,
        actions_at_dark,
        predicted,
        left_out,
        tick_seconds,
        compression: h.achieved_compression(),
        wall_seconds: h.elapsed_real().as_secs_f64(),
    };
    h.shutdown().await;
    if let (Some(path), true) = (&args.validated, result.proves_failover()) {
        validated::record(
            path,
            &args.provider,
            Proof {
                date: chrono::Utc::now().date_naive(),
                ticks_to_exclude: u64::from(result.ticks_to_exclude.unwrap_or(0)),
                minutes_to_70: result.seconds_to_70.unwrap_or(0.0) / 60.0,
                minutes_to_100: result.seconds_to_100.unwrap_or(0.0) / 60.0,
                command: args.command.clone(),
            },
        )?;
    }
    Ok(result)
}

fn mark(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

/// Prints a run's timeline and figures.
pub fn print(r: &DarkResult, setup: &Setup, probe_timeout_s: f64) {
    println!(
        "provider-dark {}: {} live ingress lost at the outage (converged in {} ticks)",
        r.provider, r.ingress_lost, r.converge_ticks
    );
    println!(
        "  time compressed {:.0}× (asked {:.0}×): one {:.0} s tick ≈ {:.2} s real; boot {:.0} s (simulator: {:.0} ms real); \
         client rate limits refill {:.0}× faster; simulator rate limits in real time",
        r.compression,
        setup.compression,
        r.tick_seconds,
        r.tick_seconds / r.compression.max(1e-9),
        setup.boot.as_secs_f64(),
        setup.boot.as_secs_f64() * 1000.0 / setup.compression,
        setup.compression
    );
    println!("  tick  time    capacity  catalog          breaker  promoted created");
    for p in &r.timeline {
        println!(
            "  {:>4}  {:>4.0} s  {:>6.0} %  {:<15}  {:<7}  {:>8} {:>7}",
            p.tick,
            p.seconds,
            p.capacity_percent,
            if p.tick == 0 {
                "-"
            } else if p.excluded {
                "excluded"
            } else {
                "still listed"
            },
            if p.dark_in_scores { "open" } else { "closed" },
            p.promoted,
            p.created
        );
    }
    let secs = |s: Option<f64>| s.map_or("never".to_owned(), |s| format!("{s:.0} s"));
    println!(
        "  catalog excludes {} after {} tick(s) (target: one tick + probe timeout {:.0} s: {})",
        r.provider,
        r.ticks_to_exclude
            .map_or("no".to_owned(), |t| t.to_string()),
        probe_timeout_s,
        mark(r.ticks_to_exclude.is_some_and(|t| t <= 1))
    );
    println!(
        "  ≥ 70 % capacity after {} (target ≤ 60 s with warm spares: {}); 100 % after {} (target ≤ 300 s: {})",
        secs(r.seconds_to_70),
        mark(
            r.seconds_to_70
                .is_some_and(|s| s <= targets::PARTIAL_WITHIN_S)
        ),
        secs(r.seconds_to_100),
        mark(
            r.seconds_to_100
                .is_some_and(|s| s <= targets::FULL_WITHIN_S)
        ),
    );
    if !r.left_out.is_empty() {
        println!(
            "  left out (the simulator has no API for them): {}",
            r.left_out.join(", ")
        );
    }
    let w = &r.predicted;
    for (name, region) in w.regions.iter().filter(|(_, a)| a.fronted_paths > 0) {
        println!(
            "  whatif: {name} keeps {} of its {} paths through a CDN front (T3)",
            region.alternate_fronted_paths, region.fronted_paths
        );
    }
    println!(
        "  whatif predicted: {} alternate paths ({} in the poorest region), {:.0} % of users fail over, \
         capacity {:.0} % → {:.0} % at 5 min, refill {}",
        w.alternate_paths,
        w.alternate_paths_min_region,
        w.users.percent,
        w.capacity_after_loss_percent,
        w.capacity_at_5_min_percent,
        w.refill
            .minutes
            .map_or("unreachable".to_owned(), |m| format!("{:.0} s", m * 60.0))
    );
    println!(
        "  invariants: {} cap violations, {} actions at the dark provider; real time {:.1} s",
        r.cap_violations.len(),
        r.actions_at_dark,
        r.wall_seconds
    );
    for v in &r.cap_violations {
        println!("    cap broken: {v}");
    }
}
