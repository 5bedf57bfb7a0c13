//! Times `plan` on the benchmark's synthetic fleets and prints the fastest of several runs
//! (robust on a busy machine): `cargo run --release -p damm-fleet --example plan_time`.

use std::time::Instant;

use chrono::{DateTime, TimeDelta};

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

fn main() {
    let now = DateTime::UNIX_EPOCH + TimeDelta::days(20_000);
    for nodes in [1_000, 10_000, 100_000] {
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
}
