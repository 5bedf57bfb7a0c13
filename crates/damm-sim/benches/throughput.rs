//! How many requests per second damm-sim serves on this machine: batches of concurrent
//! `GET /hetzner/v1/servers` (a page of 25 servers, schema-checked as in tests) and
//! `GET /hetzner/v1/servers/{id}`, over keep-alive connections on 127.0.0.1.
//! Criterion reports the rate as elements per second (one element = one request), with
//! the schema checks on (as in tests) and off.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use damm_sim::{Provider, SimConfig};
use serde_json::json;

const CONCURRENCY: usize = 16;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for validate in [true, false] {
        bench_with(c, &rt, validate);
    }
}

fn bench_with(c: &mut Criterion, rt: &tokio::runtime::Runtime, validate: bool) {
    let checked = if validate { "checked" } else { "unchecked" };
    let (sim, http, base, token, one) = rt.block_on(async {
        let config = SimConfig { rate_limits: false, boot_delay: Duration::ZERO, validate, ..SimConfig::default() };
        let sim = damm_sim::start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let http = reqwest::Client::new();
        let base = sim.url(Provider::Hetzner);
        let token = sim.token().to_owned();
        let mut one = 0;
        for i in 0..25 {
            let body = json!({ "name": format!("bench-{i}"), "server_type": "cx22", "image": "debian-12", "labels": { "damm-fleet": "bench" } });
            let created: serde_json::Value =
                http.post(format!("{base}/servers")).bearer_auth(&token).json(&body).send().await.unwrap().json().await.unwrap();
            one = created["server"]["id"].as_i64().unwrap();
        }
        (sim, http, base, token, one)
    });

    for (name, path) in [
        (
            "list_25_servers",
            "/servers?label_selector=damm-fleet%3Dbench".to_owned(),
        ),
        ("get_server", format!("/servers/{one}")),
    ] {
        let mut group = c.benchmark_group(format!("damm_sim_{checked}"));
        group.throughput(Throughput::Elements(CONCURRENCY as u64));
        group.bench_function(name, |b| {
            b.to_async(rt).iter(|| {
                let http = http.clone();
                let url = format!("{base}{path}");
                let token = token.clone();
                async move {
                    let requests = (0..CONCURRENCY).map(|_| {
                        let http = http.clone();
                        let url = url.clone();
                        let token = token.clone();
                        async move {
                            let resp = http.get(url).bearer_auth(token).send().await.unwrap();
                            assert!(resp.status().is_success());
                            resp.bytes().await.unwrap().len()
                        }
                    });
                    futures::future::join_all(requests).await
                }
            });
        });
        group.finish();
    }
    rt.block_on(sim.shutdown());
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
