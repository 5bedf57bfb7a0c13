//! `plan` on synthetic fleets of 1k, 10k and 100k nodes over 8 providers and 20 regions.
//! Targets on a 2-core machine: 10k nodes ≤ 10 ms, 100k ≤ 150 ms per plan.

use std::hint::black_box;

use chrono::{DateTime, TimeDelta};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use damm_fleet::plan;

#[path = "support/synthetic.rs"]
mod synthetic;
use synthetic::{fleet, policy};

fn bench(c: &mut Criterion) {
    let now = DateTime::UNIX_EPOCH + TimeDelta::days(20_000);
    let mut group = c.benchmark_group("plan");
    group.sample_size(10);
    for nodes in [1_000, 10_000, 100_000] {
        let policy = policy(nodes);
        let (fleet, book) = fleet(nodes, now);
        let scores = book.snapshot(now, &policy.scoring);
        let p = plan(&fleet, &policy, &scores, now);
        println!(
            "plan over {nodes} nodes: {} actions, {} refused, {} desired",
            p.actions.len(),
            p.refused.len(),
            p.desired.len()
        );
        group.bench_with_input(BenchmarkId::from_parameter(nodes), &nodes, |b, _| {
            b.iter(|| {
                plan(
                    black_box(&fleet),
                    black_box(&policy),
                    black_box(&scores),
                    now,
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
