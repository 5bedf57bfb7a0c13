//! The cloud half of `damm demo`: the built-in provider simulator on 127.0.0.1, driven
//! through the same registry and adapters a real fleet uses. One ingress node per
//! compute provider in one region, a CDN front on the first, probes, then one provider
//! goes dark and the probes show who still serves.

use std::time::Duration;

use anyhow::Context as _;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    FleetId, FrontSpec, HealthStatus, IdempotencyKey, Labels, Node, NodeFilter, NodeRole, NodeSpec,
    NodeState, Provider, Target,
};
use damm_sim::{Dark, Faults, SimConfig};
use serde::Serialize;

/// Compute providers the demo uses, when compiled in, with their simulator API.
const COMPUTE: &[(&str, damm_sim::Provider)] = &[
    ("digitalocean", damm_sim::Provider::DigitalOcean),
    ("hetzner", damm_sim::Provider::Hetzner),
    ("vultr", damm_sim::Provider::Vultr),
];

/// One probe of one node.
#[derive(Debug, Serialize)]
pub(crate) struct CloudRow {
    provider: String,
    node: String,
    region: String,
    address: String,
    front: Option<String>,
    status: HealthStatus,
    detail: String,
}

/// What the cloud half found, before and after the outage.
#[derive(Debug, Serialize)]
pub(crate) struct CloudReport {
    region: String,
    before: Vec<CloudRow>,
    dark: Option<String>,
    after: Vec<CloudRow>,
}

/// The zone the simulator's Cloudflare account holds.
const SIM_ZONE: &str = "damm.example";

async fn adapter(
    name: &str,
    fleet: &FleetId,
    base: String,
    token: &str,
) -> anyhow::Result<std::sync::Arc<dyn Provider>> {
    let env = damm_provider::config::env_name(name);
    let mut vars = vec![
        (format!("DAMM_{env}_API_URL"), base),
        (format!("DAMM_{env}_TOKEN"), token.to_owned()),
    ];
    if name == "cloudflare" {
        vars.push(("DAMM_CLOUDFLARE_ZONE".to_owned(), SIM_ZONE.to_owned()));
    }
    let config = AdapterConfig::new(fleet.clone(), name).with_env(vars);
    Ok(damm_registry::get_adapter(name, &config).await?)
}

async fn running(provider: &dyn Provider, node: &Node) -> anyhow::Result<Node> {
    for _ in 0..100 {
        let nodes = provider.list_nodes(&NodeFilter::all()).await?;
        if let Some(n) = nodes
            .into_iter()
            .find(|n| n.reference == node.reference && n.state == NodeState::Running)
        {
            return Ok(n);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("{} did not boot", node.reference)
}

async fn probe(provider: &dyn Provider, node: &Node, front: Option<String>) -> CloudRow {
    let (status, detail) = match provider
        .probe_health(&Target::Node(node.reference.clone()))
        .await
    {
        Ok(signal) => (signal.status, signal.detail),
        Err(e) => (HealthStatus::Down, e.to_string()),
    };
    CloudRow {
        provider: provider.id().to_owned(),
        node: node.reference.id.clone(),
        region: node.region.to_string(),
        address: node
            .addresses
            .first()
            .map(ToString::to_string)
            .unwrap_or_default(),
        front,
        status,
        detail,
    }
}

/// Runs the cloud half; `None` when no compute adapter is compiled in.
pub(crate) async fn run(fleet: &FleetId) -> anyhow::Result<Option<CloudReport>> {
    let compiled: Vec<_> = COMPUTE
        .iter()
        .filter(|(name, _)| damm_registry::compiled().iter().any(|d| d.name == *name))
        .collect();
    if compiled.is_empty() {
        return Ok(None);
    }
    let config = SimConfig {
        boot_delay: Duration::from_millis(200),
        ..SimConfig::default()
    };
    let sim = damm_sim::start(config, "127.0.0.1:0".parse()?)
        .await
        .context("starting the simulator")?;
    let region: damm_provider::Region = "eu-central".parse()?;
    let mut fleet_nodes = Vec::new();
    for (name, api) in &compiled {
        let provider = adapter(name, fleet, sim.url(*api), sim.token()).await?;
        let compute = provider
            .compute()
            .context("a compute adapter without compute")?;
        let key = IdempotencyKey::new(format!("demo-{name}-1"))?;
        let spec = NodeSpec::new(fleet, key, region.clone(), NodeRole::Ingress, "small");
        let created = compute.create_ingress_node(&spec).await?;
        let node = running(provider.as_ref(), &created).await?;
        fleet_nodes.push((provider, node, *api));
    }
    // A CDN front for the first node, when Cloudflare is compiled in.
    let mut front = None;
    if damm_registry::compiled()
        .iter()
        .any(|d| d.name == "cloudflare")
    {
        let base = format!("{}/", sim.url(damm_sim::Provider::Cloudflare));
        let cloudflare = adapter("cloudflare", fleet, base, sim.token()).await?;
        let key = IdempotencyKey::new("demo-front-1")?;
        let origin = *fleet_nodes[0]
            .1
            .addresses
            .first()
            .context("the node has no address")?;
        let spec = FrontSpec {
            name: "gw1".into(),
            origin,
            labels: Labels::owned(fleet, &key),
            key,
        };
        front = Some(
            cloudflare
                .cdn_front()
                .context("cloudflare without cdn_front")?
                .publish_front(&spec)
                .await?
                .hostname,
        );
    }
    let mut before = Vec::new();
    for (i, (provider, node, _)) in fleet_nodes.iter().enumerate() {
        before.push(
            probe(
                provider.as_ref(),
                node,
                if i == 0 { front.clone() } else { None },
            )
            .await,
        );
    }
    // The first provider goes dark: its probes fail, the others carry on.
    let (dark_provider, _, dark_api) = &fleet_nodes[0];
    sim.set_faults(*dark_api, Faults::dark(Dark::Unavailable));
    let mut after = Vec::new();
    for (provider, node, _) in &fleet_nodes {
        after.push(probe(provider.as_ref(), node, None).await);
    }
    let dark = Some(dark_provider.id().to_owned());
    sim.shutdown().await;
    Ok(Some(CloudReport {
        region: region.to_string(),
        before,
        dark,
        after,
    }))
}

/// Prints the report as tables.
pub(crate) fn print(report: &CloudReport) {
    let table = |title: &str, rows: &[CloudRow]| {
        println!("{title}");
        println!(
            "{:13} {:6} {:11} {:15} {:9} FRONT",
            "PROVIDER", "NODE", "REGION", "ADDRESS", "STATUS"
        );
        for r in rows {
            println!(
                "{:13} {:6} {:11} {:15} {:9} {}",
                r.provider,
                r.node.chars().take(6).collect::<String>(),
                r.region,
                r.address,
                format!("{:?}", r.status).to_lowercase(),
                r.front.as_deref().unwrap_or("-")
            );
        }
        println!();
    };
    println!(
        "Cloud providers on the built-in simulator (one ingress node each in {}):\n",
        report.region
    );
    table("Before:", &report.before);
    if let Some(dark) = &report.dark {
        table(&format!("After {dark} goes dark:"), &report.after);
        let serving = report
            .after
            .iter()
            .filter(|r| r.status == HealthStatus::Healthy)
            .count();
        println!(
            "{serving} of {} providers still serve {} while {dark} is dark",
            report.after.len(),
            report.region
        );
    }
}
