//! Times `plan` on the benchmark's synthetic fleets and prints the fastest of several runs
//! (robust on a busy machine): `cargo run --release -p damm-fleet --example plan_time`.
//! With fleet sizes as arguments (`... -- 10000`), times only `plan` on those: handy under
//! a profiler.

use std::time::Instant;

use chrono::{DateTime, TimeDelta};

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

fn main() {
    let now = DateTime::UNIX_EPOCH + TimeDelta::days(20_000);
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("fleet sizes are numbers"))
        .collect();
    let only_plan = !sizes.is_empty();
    let sizes = if only_plan {
        sizes
    } else {
        vec![1_000, 10_000, 100_000]
    };
    for nodes in sizes {
        let policy = synthetic::policy(nodes);
        let (fleet, book) = synthetic::fleet(nodes, now);
        let scores = book.snapshot(now, &policy.scoring);
        let runs = if nodes >= 100_000 { 5 } else { 20 };
        let mut best = f64::MAX;
        let mut actions = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let plan = damm_fleet::plan(&fleet, &policy, &scores, now);
            best = best.min(started.elapsed().as_secs_f64() * 1000.0);
            actions = plan.actions.len();
        }
        println!("plan over {nodes:>6} nodes: best of {runs}: {best:>8.2} ms ({actions} actions)");
    }
    if only_plan {
        return;
    }
    // compose over one region of ~10k components (of a 200k-node fleet over 20 regions).
    let policy = synthetic::policy(200_000);
    let (mut fleet, book) = synthetic::fleet(200_000, now);
    let region = fleet.nodes[0].region.clone();
    fleet.nodes.retain(|n| n.region == region);
    let entries: Vec<damm_fleet::Entry> = fleet
        .nodes
        .iter()
        .filter(|n| n.role == damm_provider::NodeRole::Ingress)
        .take(1000)
        .map(|n| damm_fleet::Entry {
            key: damm_provider::IdempotencyKey::new(format!("{}-cdn", n.key)).unwrap(),
            provider: "cdn".into(),
            ingress: n.key.clone(),
            transport: damm_fleet::Transport::CdnFronted,
        })
        .collect();
    let scores = book.snapshot(now, &policy.scoring);
    let mut best = f64::MAX;
    for _ in 0..20 {
        let started = Instant::now();
        let paths = damm_fleet::compose(&fleet, &policy, &scores, &entries, 8);
        best = best.min(started.elapsed().as_secs_f64() * 1000.0);
        assert!(!paths.is_empty());
    }
    println!(
        "compose over {} components ({} nodes + {} fronts) in one region, top 8: best of 20: {best:.2} ms",
        fleet.nodes.len() + entries.len(),
        fleet.nodes.len(),
        entries.len()
    );
}
