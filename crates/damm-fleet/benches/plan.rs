//! `plan` on synthetic fleets of 1k, 10k and 100k nodes over 8 providers and 20 regions.
//! Targets on a 2-core machine: 10k nodes ≤ 10 ms, 100k ≤ 150 ms per plan.

use std::hint::black_box;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use damm_fleet::{Fleet, FleetNode, Policy, ScoreBook, Status, plan};
use damm_provider::{IdempotencyKey, NodeRole, NodeState, Region};

const PROVIDERS: usize = 8;
const REGIONS: usize = 20;

fn policy(nodes: usize) -> Policy {
    let regions: Vec<String> = (0..REGIONS).map(|r| format!("region-{r:02}")).collect();
    let list = regions
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let per_region = nodes / REGIONS;
    let mut text = String::from(
        "[fleet]\nid = \"bench\"\nmode = \"apply\"\n[limits]\ncreates_per_tick = 50\nretires_per_tick = 50\nmonthly_spend_cap = 10000000.0\n",
    );
    for p in 0..PROVIDERS {
        text += &format!(
            "[providers.p{p}]\nmax_nodes = {}\ncreates_per_tick = 10\nregions = [{list}]\nprices = {{ small = {}.5 }}\nfrontdoors = true\negress_ips = true\n",
            nodes,
            4 + p
        );
    }
    for r in &regions {
        text += &format!(
            "[regions.{r}]\ningress = {{ min = {}, max = {} }}\negress = {{ min = {}, max = {} }}\nwarm_spares = 3\nmin_providers = 4\nrotate_ingress_after = \"6h\"\nrotate_egress_after = \"7d\"\nfrontdoors = true\negress_ips = true\n",
            per_region * 7 / 10,
            per_region,
            per_region / 5,
            per_region / 4,
        );
    }
    Policy::parse(&text, "bench").unwrap()
}

fn fleet(nodes: usize, now: DateTime<Utc>) -> (Fleet, ScoreBook) {
    let scoring = damm_fleet::policy::Scoring::default();
    let mut book = ScoreBook::default();
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut fleet = Fleet::default();
    for i in 0..nodes {
        let role = if i % 5 == 0 {
            NodeRole::Egress
        } else {
            NodeRole::Ingress
        };
        let key = IdempotencyKey::new(format!("n{i}")).unwrap();
        let age = TimeDelta::seconds((next() % 30_000) as i64);
        let status = match next() % 20 {
            0 => Status::Spare,
            1 => Status::Draining,
            _ => Status::Active,
        };
        fleet.nodes.push(FleetNode {
            key: key.clone(),
            provider: format!("p{}", next() as usize % PROVIDERS),
            id: Some(i.to_string()),
            region: Region::new(format!("region-{:02}", next() as usize % REGIONS)).unwrap(),
            role,
            owned: next() % 50 != 0,
            status,
            status_since: now - age / 2,
            state: NodeState::Running,
            created_at: now - age,
        });
        let ok = next() % 10 != 0;
        book.probe(
            key.as_str(),
            now,
            ok,
            Some(Duration::from_millis(10 + next() % 200)),
            &scoring,
        );
    }
    fleet.next_serial = nodes as u64;
    (fleet, book)
}

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
