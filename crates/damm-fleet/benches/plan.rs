//! `plan` on synthetic fleets of 1k, 10k and 100k nodes over 8 providers and 20 regions.
//! Targets on a 2-core machine: 10k nodes ≤ 10 ms, 100k ≤ 150 ms per plan.

use std::hint::black_box;

use chrono::{DateTime, TimeDelta};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use damm_fleet::{Entry, Transport, compose, plan};
use damm_provider::{IdempotencyKey, NodeRole};

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

/// `compose` over one region of about 10k components (of a 200k-node synthetic fleet over
/// 20 regions) plus 1k CDN fronts, top 8 paths.
fn bench_compose(c: &mut Criterion) {
    let now = DateTime::UNIX_EPOCH + TimeDelta::days(20_000);
    let policy = policy(200_000);
    let (mut fleet, book) = fleet(200_000, now);
    let region = fleet.nodes[0].region.clone();
    fleet.nodes.retain(|n| n.region == region);
    let mut entries = Vec::new();
    for n in fleet
        .nodes
        .iter()
        .filter(|n| n.role == NodeRole::Ingress)
        .take(1000)
    {
        entries.push(Entry {
            key: IdempotencyKey::new(format!("{}-cdn", n.key)).unwrap(),
            provider: "cdn".into(),
            ingress: n.key.clone(),
            transport: Transport::CdnFronted,
        });
    }
    let scores = book.snapshot(now, &policy.scoring);
    let paths = compose(&fleet, &policy, &scores, &entries, 8);
    println!(
        "compose over {} nodes and {} fronts in one region: {} paths",
        fleet.nodes.len(),
        entries.len(),
        paths.values().map(Vec::len).sum::<usize>()
    );
    c.bench_function("compose/10k-components", |b| {
        b.iter(|| {
            compose(
                black_box(&fleet),
                black_box(&policy),
                black_box(&scores),
                black_box(&entries),
                8,
            )
        })
    });
}

criterion_group!(benches, bench, bench_compose);
criterion_main!(benches);
