//! `damm demo`: the orchestrator in apply mode on the built-in provider simulator.
//!
//! From an empty fleet to the fleet of `policy/default.toml`, tick by tick, then one provider
//! goes dark and the fleet recovers on the others. Loopback only, no credentials. Time is
//! compressed: each tick advances the orchestrator's clock by the policy's tick (60 s) and
//! takes a fraction of a second of real time.

use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use damm_fleet::{Mode, Policy, Scores, Status};
use damm_provider::NodeRole;
use damm_sim::{Dark, Faults, SimConfig};
use serde::Serialize;

use crate::engine::{Engine, ManualClock, Options, TickReport};
use crate::report::{FleetRow, capacity_line, fleet_rows, fleet_table, live_healthy};
use crate::state::{FileStore, State};

/// One tick of the demo.
#[derive(Debug, Serialize)]
pub struct DemoTick {
    /// Tick number.
    pub tick: u64,
    /// Virtual minutes since the start.
    pub minute: f64,
    /// Actions applied.
    pub applied: u64,
    /// Actions that failed.
    pub failed: u64,
    /// Providers whose breaker is open.
    pub dark: Vec<String>,
    /// Live healthy ingress over the policy's minimum, all regions, percent.
    pub capacity_percent: f64,
    /// The capacity line.
    pub capacity: String,
    /// Version of the catalog published after the tick.
    pub catalog_version: u64,
    /// Paths per region in that catalog.
    pub catalog_paths: std::collections::BTreeMap<String, usize>,
    /// Providers any published path depends on.
    pub catalog_providers: Vec<String>,
}

/// What the demo showed.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    /// Ticks from empty to the policy's fleet.
    pub converged_after: u64,
    /// The fleet then.
    pub fleet: Vec<FleetRow>,
    /// The provider switched dark.
    pub dark_provider: String,
    /// Ticks after the outage until every region was back at its minimums.
    pub recovered_after: u64,
    /// The fleet at the end.
    pub fleet_after: Vec<FleetRow>,
    /// Every tick.
    pub timeline: Vec<DemoTick>,
    /// Virtual seconds per tick.
    pub tick_seconds: u64,
    /// Real seconds the run took.
    pub wall_seconds: f64,
}

/// Live healthy ingress and egress, against the minimums: (have, want), capped per region.
fn capacity(state: &State, scores: &Scores, policy: &Policy) -> (usize, usize) {
    let mut have = 0;
    let mut want = 0;
    for (region, r) in &policy.regions {
        for (role, min) in [
            (NodeRole::Ingress, r.ingress.min),
            (NodeRole::Egress, r.egress.min),
        ] {
            let live = live_healthy(state, scores, region, role);
            have += live.min(min as usize);
            want += min as usize;
        }
    }
    (have, want)
}

struct Run {
    engine: Engine,
    clock: std::sync::Arc<ManualClock>,
    json: bool,
    timeline: Vec<DemoTick>,
    started: Instant,
    boot: Duration,
}

impl Run {
    async fn tick(&mut self) -> anyhow::Result<(TickReport, bool)> {
        let report = self.engine.tick(Mode::Apply, true).await?;
        // Score the state the tick left behind: what a client would see now.
        let state = self.engine.state();
        let policy = self.engine.policy();
        let (have, want) = capacity(state, &report.scores, policy);
        let line = capacity_line(state, &report.scores, policy);
        let minute = (self.clock.now() - self.timeline_start()).num_seconds() as f64 / 60.0;
        let dark: Vec<String> = report.scores.dark.iter().cloned().collect();
        let s = &report.summary;
        let (catalog_version, catalog_paths, catalog_providers) = match &report.catalog {
            Some(c) => (
                c.version,
                c.regions
                    .iter()
                    .map(|(r, p)| (r.clone(), p.paths.len()))
                    .collect::<std::collections::BTreeMap<_, _>>(),
                c.regions
                    .values()
                    .flat_map(|r| r.paths.iter())
                    .flat_map(|p| p.providers())
                    .map(str::to_owned)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect::<Vec<_>>(),
            ),
            None => (0, Default::default(), Vec::new()),
        };
        if !self.json {
            let dark_note = if dark.is_empty() {
                String::new()
            } else {
                format!(" · dark: {}", dark.join(","))
            };
            let paths: Vec<String> = catalog_paths.values().map(ToString::to_string).collect();
            println!(
                "  [{minute:>4.0} min] tick {:>2}: {:>2} applied, {} failed · {line} · catalog v{catalog_version}: {} paths via {}{dark_note}",
                s.number,
                s.applied,
                s.failed,
                paths.join("+"),
                if catalog_providers.is_empty() {
                    "-".to_owned()
                } else {
                    catalog_providers.join(",")
                }
            );
        }
        let full = want > 0 && have == want;
        self.timeline.push(DemoTick {
            tick: s.number,
            minute,
            applied: s.applied,
            failed: s.failed,
            dark,
            capacity_percent: if want == 0 {
                100.0
            } else {
                100.0 * have as f64 / want as f64
            },
            capacity: line,
            catalog_version,
            catalog_paths,
            catalog_providers,
        });
        // Let the simulator boot what was just created, then move the clock one tick.
        tokio::time::sleep(self.boot).await;
        self.clock.advance(self.engine.policy().fleet.tick.0);
        Ok((report, full))
    }

    fn timeline_start(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
            - chrono::TimeDelta::from_std(
                self.engine.policy().fleet.tick.0 * self.timeline.len() as u32,
            )
            .unwrap_or_default()
    }

    fn rows(&self) -> Vec<FleetRow> {
        let state = self.engine.state();
        let scores = state
            .scores
            .snapshot(self.clock.now(), &self.engine.policy().scoring);
        fleet_rows(state, &scores)
    }
}

/// Runs the demo; prints as it goes (or one JSON document with `json`).
pub async fn run(json: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let boot = Duration::from_millis(250);
    let config = SimConfig {
        boot_delay: boot,
        ..SimConfig::default()
    };
    let sim = damm_sim::start(config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the provider simulator")?;
    let policy = Policy::default_policy();
    let providers = crate::sim::providers(&sim, &policy).await?;
    let dir = tempfile::tempdir().context("creating a state directory")?;
    let store = FileStore::open(&dir.path().join("state.json"))?;
    let clock = ManualClock::new(chrono::Utc::now());
    let options = Options {
        probe_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(20),
        ..Options::default()
    };
    let mut engine = Engine::new(
        policy.clone(),
        providers,
        Box::new(store),
        clock.clock(),
        options,
    )?;
    // Fresh keys for this run: every tick publishes a signed catalog into the temp dir.
    engine.set_publisher(
        std::sync::Arc::new(crate::publish::Keys::generate()),
        crate::publish::Sink {
            path: dir.path().join("catalog.json"),
        },
    );
    let mut run = Run {
        engine,
        clock,
        json,
        timeline: Vec::new(),
        started,
        boot: boot + Duration::from_millis(100),
    };
    if !json {
        println!(
            "damm demo: the orchestrator in apply mode on the built-in simulator ({}), policy/default.toml",
            sim.addr()
        );
        println!(
            "  providers: {}; regions: {}",
            policy
                .providers
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            policy
                .regions
                .keys()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  time is compressed: one tick = {} of orchestrator time, about {:.1} s real\n",
            policy.fleet.tick,
            run.boot.as_secs_f64()
        );
        println!("From an empty fleet to the policy:");
    }
    let mut converged_after = None;
    let mut quiet = 0;
    for _ in 0..30 {
        let (report, full) = run.tick().await?;
        quiet = if full && report.plan.actions.is_empty() {
            quiet + 1
        } else {
            0
        };
        if quiet == 1 {
            converged_after = Some(report.summary.number);
            break;
        }
    }
    let converged_after = converged_after.context("the fleet did not converge in 30 ticks")?;
    let fleet = run.rows();
    // The provider with the most live nodes goes dark.
    let mut per_provider = std::collections::BTreeMap::<&str, usize>::new();
    for row in &fleet {
        if row.status == Status::Active {
            *per_provider.entry(row.provider.as_str()).or_default() += 1;
        }
    }
    let victim = per_provider
        .iter()
        .max_by_key(|(p, n)| (**n, std::cmp::Reverse(**p)))
        .map(|(p, _)| (*p).to_owned())
        .context("no live nodes")?;
    if !json {
        println!("\nConverged after {converged_after} ticks:\n");
        print!("{}", fleet_table(&fleet));
        println!("\n{victim} goes dark (every call answers 503); the others carry on:");
    }
    let api = crate::sim::api(victim.as_str()).context("victim has a simulator API")?;
    sim.set_faults(api, Faults::dark(Dark::Unavailable));
    let outage_tick = run.timeline.last().map_or(0, |t| t.tick);
    let mut recovered_after = None;
    for _ in 0..30 {
        let (report, full) = run.tick().await?;
        let excluded = report.scores.dark.contains(&victim)
            && report.catalog.as_ref().is_some_and(|c| {
                c.regions
                    .values()
                    .flat_map(|r| r.paths.iter())
                    .all(|p| !p.providers().contains(&victim.as_str()))
            });
        if full && excluded {
            recovered_after = Some(report.summary.number - outage_tick);
            break;
        }
    }
    let recovered_after =
        recovered_after.context("the fleet did not recover from the outage in 30 ticks")?;
    let fleet_after = run.rows();
    let tick_seconds = policy.fleet.tick.0.as_secs();
    let wall_seconds = run.started.elapsed().as_secs_f64();
    sim.shutdown().await;
    if json {
        let report = DemoReport {
            converged_after,
            fleet,
            dark_provider: victim,
            recovered_after,
            fleet_after,
            timeline: run.timeline,
            tick_seconds,
            wall_seconds,
        };
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    println!("\nAfter the outage:\n");
    print!("{}", fleet_table(&fleet_after));
    println!(
        "\n{victim} is dark; every region is back at its minimums after {recovered_after} ticks \
         ({} min of orchestrator time), on the other providers. Real time: {wall_seconds:.1} s.",
        recovered_after * tick_seconds / 60
    );
    Ok(())
}
