//! `damm demo`: the orchestrator in apply mode on the built-in provider simulator.
//!
//! From an empty fleet to the fleet of `policy/default.toml` (plus Cloudflare fronts and a
//! Tailscale overlay for eu-central, see [`policy`]), tick by tick; then one compute provider
//! goes dark and the fleet recovers on the others; then the CDN goes dark and the fronted (T3)
//! paths leave the catalog while the bare WireGuard (T0) paths stay. Loopback only, no
//! credentials. Time is compressed: each tick advances the orchestrator's clock by the policy's
//! tick (60 s) and takes a fraction of a second of real time.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use damm_catalog::{Catalog, Transport};
use damm_fleet::{AddressKind, Mode, Policy, Scores, Status};
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
    pub catalog_paths: BTreeMap<String, usize>,
    /// Providers any published path depends on.
    pub catalog_providers: Vec<String>,
    /// Paths per transport (`T0`, `T3`) in that catalog, all regions.
    pub catalog_transports: BTreeMap<String, usize>,
    /// CDN fronts in state, all regions.
    pub fronts: usize,
    /// Overlay memberships in state (joined or waiting for their gateway).
    pub overlay_memberships: usize,
    /// Of those, joined: their device is in the overlay with an address.
    pub overlay_joined: usize,
}

/// One published path, as the demo shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PathRow {
    /// Region.
    pub region: String,
    /// Path id: `t0:` bare WireGuard, `t3:` through a CDN front.
    pub path_id: String,
    /// Transports, comma-separated.
    pub transport: String,
    /// The ways in a client can race, by kind (`T0`, `T1`, `T3`).
    pub offers: Vec<String>,
    /// The gateway (ingress) the path enters by.
    pub gateway: String,
    /// Where the client connects: `address:port`, or `hostname:443` for a front.
    pub endpoint: String,
    /// Providers the path crosses, client side first.
    pub providers: Vec<String>,
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
    /// The fleet after the recovery.
    pub fleet_after: Vec<FleetRow>,
    /// The CDN switched dark after the recovery.
    pub cdn_provider: String,
    /// The region whose ingress it fronts.
    pub fronted_region: String,
    /// That region's catalog paths before the CDN went dark.
    pub catalog_before_cdn_outage: Vec<PathRow>,
    /// Ticks after the CDN went dark until its breaker was open and no T3 path was left.
    pub cdn_dark_after: u64,
    /// That region's catalog paths then.
    pub catalog_after_cdn_outage: Vec<PathRow>,
    /// Every tick.
    pub timeline: Vec<DemoTick>,
    /// Virtual seconds per tick.
    pub tick_seconds: u64,
    /// Real seconds the run took.
    pub wall_seconds: f64,
}

/// The CDN the demo fronts ingress through (a `[fronts]` provider).
pub const CDN: &str = "cloudflare";

/// The overlay the demo's gateways join (an `[overlay]` provider).
pub const OVERLAY: &str = "tailscale";

/// The region the demo fronts and joins to the overlay.
pub const FRONTED_REGION: &str = "eu-central";

/// What the demo adds to the default policy. It lives here, not in policy/default.toml:
/// there, every operator's default would need a Cloudflare and a Tailscale token before
/// `damm serve` could start.
const ENTRY_PROVIDERS: &str = "
[fronts.providers.cloudflare]
max = 8
per_tick = 4

[overlay.providers.tailscale]
max = 8
per_tick = 4
";

/// The demo's policy as TOML: the embedded default, with [`FRONTED_REGION`] fronted through
/// [`CDN`] and joined to [`OVERLAY`].
pub fn policy_text() -> anyhow::Result<String> {
    let default = damm_fleet::policy::DEFAULT_POLICY;
    let header = format!("[regions.{FRONTED_REGION}]\n");
    anyhow::ensure!(
        default.contains(&header),
        "policy/default.toml has no `{}` for the demo to front",
        header.trim_end()
    );
    // A TOML table cannot be opened twice: the region's opt-in goes right under its header.
    Ok(default.replacen(
        &header,
        &format!("{header}fronts = true\noverlay = true\nt1 = true\n"),
        1,
    ) + ENTRY_PROVIDERS)
}

/// The demo's policy, parsed and validated (see [`policy_text`]).
pub fn policy() -> anyhow::Result<Policy> {
    Ok(Policy::parse(
        &policy_text()?,
        "policy/default.toml with the demo's [fronts] and [overlay]",
    )?)
}

/// The paths of `region` in `catalog`.
fn excerpt(catalog: Option<&Catalog>, region: &str) -> Vec<PathRow> {
    let Some(paths) = catalog.and_then(|c| c.regions.get(region)) else {
        return Vec::new();
    };
    paths
        .paths
        .iter()
        .map(|p| PathRow {
            region: region.to_owned(),
            path_id: p.path_id.clone(),
            transport: p
                .transports
                .iter()
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(","),
            offers: p.offers.iter().map(|o| o.kind().to_owned()).collect(),
            gateway: p
                .composition
                .iter()
                .find(|c| c.role == damm_catalog::Role::Ingress)
                .map(|c| c.component.clone())
                .unwrap_or_default(),
            endpoint: p.endpoint.clone(),
            providers: p.providers().into_iter().map(str::to_owned).collect(),
        })
        .collect()
}

/// The first gateway of `rows` that a client can reach by more than one transport, with
/// them: `(gateway, ["T0", "T1", "T3"])`.
fn ways_in(rows: &[PathRow]) -> Option<(String, Vec<String>)> {
    let mut by_gateway: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in rows {
        by_gateway
            .entry(&r.gateway)
            .or_default()
            .extend(r.offers.iter().cloned());
    }
    by_gateway
        .into_iter()
        .map(|(g, mut kinds)| {
            kinds.sort();
            kinds.dedup();
            (g.to_owned(), kinds)
        })
        .max_by_key(|(_, kinds)| kinds.len())
        .filter(|(_, kinds)| kinds.len() > 1)
}

/// The paths as a table.
fn excerpt_table(rows: &[PathRow]) -> String {
    use std::fmt::Write as _;
    let width = |field: fn(&PathRow) -> &str, title: &str| {
        rows.iter()
            .map(|r| field(r).chars().count())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let id_width = width(|r| &r.path_id, "PATH");
    let endpoint_width = width(|r| &r.endpoint, "ENDPOINT");
    let mut out = format!(
        "  {:<id_width$}  {:<9}  {:<7}  {:<endpoint_width$}  VIA\n",
        "PATH", "TRANSPORT", "OFFERS", "ENDPOINT"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "  {:<id_width$}  {:<9}  {:<7}  {:<endpoint_width$}  {}",
            r.path_id,
            r.transport,
            r.offers.join("+"),
            r.endpoint,
            r.providers.join(" → ")
        );
    }
    out
}

/// Paths per transport in `catalog`, all regions.
fn transports(catalog: &Catalog) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for path in catalog.regions.values().flat_map(|r| r.paths.iter()) {
        for t in &path.transports {
            *out.entry(t.as_str().to_owned()).or_default() += 1;
        }
    }
    out
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
    /// The catalog the last tick published.
    catalog: Option<Catalog>,
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
        let (catalog_version, catalog_paths, catalog_providers, catalog_transports) =
            match &report.catalog {
                Some(c) => (
                    c.version,
                    c.regions
                        .iter()
                        .map(|(r, p)| (r.clone(), p.paths.len()))
                        .collect::<BTreeMap<_, _>>(),
                    c.regions
                        .values()
                        .flat_map(|r| r.paths.iter())
                        .flat_map(|p| p.providers())
                        .map(str::to_owned)
                        .collect::<std::collections::BTreeSet<_>>()
                        .into_iter()
                        .collect::<Vec<_>>(),
                    transports(c),
                ),
                None => (0, Default::default(), Vec::new(), Default::default()),
            };
        let entries = |kind: AddressKind| state.addresses.values().filter(move |a| a.kind == kind);
        let fronts = entries(AddressKind::Front).count();
        let overlay_memberships = entries(AddressKind::Overlay).count();
        let overlay_joined = entries(AddressKind::Overlay)
            .filter(|a| a.address.is_some())
            .count();
        if !self.json {
            let dark_note = if dark.is_empty() {
                String::new()
            } else {
                format!(" · dark: {}", dark.join(","))
            };
            let mut paths: Vec<String> = catalog_paths.values().map(ToString::to_string).collect();
            if paths.is_empty() {
                paths.push("0".to_owned());
            }
            let fronted = catalog_transports
                .get(Transport::CdnFronted.as_str())
                .copied()
                .unwrap_or(0);
            println!(
                "  [{minute:>4.0} min] tick {:>2}: {:>2} applied, {} failed · {line} · catalog v{catalog_version}: {} paths ({fronted} T3) via {}{dark_note}",
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
            catalog_transports,
            fronts,
            overlay_memberships,
            overlay_joined,
        });
        self.catalog.clone_from(&report.catalog);
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
    let policy = policy()?;
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
        catalog: None,
    };
    if !json {
        println!(
            "damm demo: the orchestrator in apply mode on the built-in simulator ({}), policy/default.toml",
            sim.addr()
        );
        println!(
            "  providers: {}; fronts: {CDN} for {FRONTED_REGION}; overlay: {OVERLAY}; regions: {}",
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
        // Converged once the CDN's fronts are published too, not only the nodes.
        let fronted = !fronted_paths(&report, FRONTED_REGION).is_empty();
        quiet = if full && fronted && report.plan.actions.is_empty() {
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
    // The compute provider with the most live nodes goes dark.
    let mut per_provider = BTreeMap::<&str, usize>::new();
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
        if let Some(t) = run.timeline.last() {
            // No simulated gateway redeems its auth key: memberships stay pending.
            println!(
                "  entries: {} fronts on {CDN}; {} overlay memberships on {OVERLAY}, {} joined \
                 (a member joins when its gateway redeems its key)",
                t.fronts, t.overlay_memberships, t.overlay_joined
            );
        }
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
    if !json {
        println!("\nAfter the outage:\n");
        print!("{}", fleet_table(&fleet_after));
        println!(
            "\n{victim} is dark; every region is back at its minimums after {recovered_after} ticks \
             ({} min of orchestrator time), on the other providers.",
            recovered_after * tick_seconds / 60
        );
    }

    // Then the CDN: its fronted paths leave the catalog, the bare WireGuard paths stay.
    let catalog_before_cdn_outage = excerpt(run.catalog.as_ref(), FRONTED_REGION);
    if !json {
        println!(
            "\n{FRONTED_REGION} in catalog v{}, as clients hold it (T3: through a {CDN} front):\n",
            run.catalog.as_ref().map_or(0, |c| c.version)
        );
        print!("{}", excerpt_table(&catalog_before_cdn_outage));
        if let Some((gateway, kinds)) = ways_in(&catalog_before_cdn_outage) {
            println!(
                "\nA client reaches gateway {gateway} by {}: it races them 250 ms apart at \
                 connect and keeps the first that answers (docs/transports.md).",
                kinds.join(", ")
            );
        }
        println!("\n{CDN} goes dark (every call answers 503); the fronted paths leave, T0 stays:");
    }
    sim.set_faults(
        damm_sim::Provider::Cloudflare,
        Faults::dark(Dark::Unavailable),
    );
    let cdn_outage_tick = run.timeline.last().map_or(0, |t| t.tick);
    let mut cdn_dark_after = None;
    // The breaker opens after `failures` ticks; a few more are slack, not a wait.
    for _ in 0..policy.scoring.breaker.failures + 3 {
        let (report, _) = run.tick().await?;
        let fronted_left = report.catalog.as_ref().is_some_and(|c| {
            let t = transports(c);
            !t.contains_key(Transport::CdnFronted.as_str())
                && policy.regions.keys().all(|r| {
                    c.regions.get(r.as_str()).is_some_and(|paths| {
                        paths
                            .paths
                            .iter()
                            .any(|p| p.transports.contains(&Transport::WireguardUdp))
                    })
                })
        });
        if report.scores.dark.contains(CDN) && fronted_left {
            cdn_dark_after = Some(report.summary.number - cdn_outage_tick);
            break;
        }
    }
    let cdn_dark_after = cdn_dark_after.with_context(|| {
        format!("{CDN}'s breaker did not open, or its fronted paths stayed in the catalog")
    })?;
    let catalog_after_cdn_outage = excerpt(run.catalog.as_ref(), FRONTED_REGION);
    let wall_seconds = run.started.elapsed().as_secs_f64();
    sim.shutdown().await;
    if json {
        let report = DemoReport {
            converged_after,
            fleet,
            dark_provider: victim,
            recovered_after,
            fleet_after,
            cdn_provider: CDN.to_owned(),
            fronted_region: FRONTED_REGION.to_owned(),
            catalog_before_cdn_outage,
            cdn_dark_after,
            catalog_after_cdn_outage,
            timeline: run.timeline,
            tick_seconds,
            wall_seconds,
        };
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    println!(
        "\n{FRONTED_REGION} in catalog v{} with {CDN} dark:\n",
        run.catalog.as_ref().map_or(0, |c| c.version)
    );
    print!("{}", excerpt_table(&catalog_after_cdn_outage));
    let count = |rows: &[PathRow], t: Transport| {
        rows.iter()
            .filter(|r| r.transport.split(',').any(|x| x == t.as_str()))
            .count()
    };
    println!(
        "\n{CDN} is dark after {cdn_dark_after} ticks; {FRONTED_REGION} went from {} T0 + {} T3 \
         paths to {} T0 + {} T3. Real time: {wall_seconds:.1} s.",
        count(&catalog_before_cdn_outage, Transport::WireguardUdp),
        count(&catalog_before_cdn_outage, Transport::CdnFronted),
        count(&catalog_after_cdn_outage, Transport::WireguardUdp),
        count(&catalog_after_cdn_outage, Transport::CdnFronted),
    );
    Ok(())
}

/// The T3 paths of `region` in the catalog `report` published.
fn fronted_paths<'a>(report: &'a TickReport, region: &str) -> Vec<&'a damm_catalog::Path> {
    report
        .catalog
        .as_ref()
        .and_then(|c| c.regions.get(region))
        .map(|r| {
            r.paths
                .iter()
                .filter(|p| p.transports.contains(&Transport::CdnFronted))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use damm_provider::Region;

    #[test]
    fn the_demo_fronts_one_region_and_the_default_policy_needs_no_cdn() {
        let policy = policy().unwrap();
        let adapters: Vec<_> = policy.adapters().collect();
        assert!(adapters.contains(&(CDN, "cloudflare")), "{adapters:?}");
        assert!(adapters.contains(&(OVERLAY, "tailscale")), "{adapters:?}");
        let fronted = Region::new(FRONTED_REGION).unwrap();
        assert!(policy.fronts_in(&fronted) && policy.overlay_in(&fronted));
        assert!(!policy.fronts_in(&Region::new("us-east").unwrap()));
        // Everything else is the default's, which itself names no entry provider: `damm
        // serve` on the default needs no Cloudflare or Tailscale token.
        let default = Policy::default_policy();
        assert_eq!(policy.providers, default.providers);
        assert_eq!(policy.regions.len(), default.regions.len());
        assert_eq!(default.adapters().count(), default.providers.len());
    }
}
