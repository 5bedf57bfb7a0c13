//! `damm demo`: a small fleet on 127.0.0.1, run through the same adapter path a real
//! fleet takes (registry → adapter → inventory, include, probe), with no credentials.
//!
//! The "gateways" are loopback listeners this process starts: HTTP heartbeats and a
//! UDP responder, plus one host whose port is closed, so the probes have something to
//! tell apart. With the `sim` feature (on by default) it then runs the cloud half on the
//! built-in provider simulator (`demo_sim`).

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use damm_provider::config::AdapterConfig;
use damm_provider::{
    AddressSpec, FleetId, HealthStatus, IdempotencyKey, Labels, NodeFilter, NodeRole, Target,
};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// An HTTP heartbeat on 127.0.0.1 answering 200 with a small status document.
async fn heartbeat(active_peers: u32) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let mut read = 0;
                while !buf[..read].windows(4).any(|w| w == b"\r\n\r\n") && read < buf.len() {
                    match stream.read(&mut buf[read..]).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => read += n,
                    }
                }
                let body = format!(r#"{{"active_peers":{active_peers}}}"#);
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(addr)
}

/// A UDP port that acknowledges every datagram.
async fn udp_responder() -> anyhow::Result<SocketAddr> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    let addr = socket.local_addr()?;
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..n], from).await;
        }
    });
    Ok(addr)
}

#[derive(Debug, Serialize)]
struct Row {
    host: String,
    region: String,
    roles: Vec<NodeRole>,
    endpoint: String,
    frontdoor: bool,
    status: HealthStatus,
    rtt_ms: Option<f64>,
    detail: String,
}

pub(crate) async fn run(json: bool) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating the demo directory")?;
    let hb_eu = heartbeat(3).await?;
    let hb_us = heartbeat(1).await?;
    let udp_eu = udp_responder().await?;
    let closed = std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let hosts = [
        (
            "pi-berlin",
            "eu-central",
            51820,
            r#"["ingress", "egress"]"#,
            Some(hb_eu),
        ),
        (
            "vps-frankfurt",
            "eu-central",
            udp_eu.port(),
            r#"["ingress"]"#,
            None,
        ),
        (
            "nuc-newyork",
            "us-east",
            51820,
            r#"["ingress", "egress"]"#,
            Some(hb_us),
        ),
        ("pi-offline", "us-east", closed, r#"["ingress"]"#, None),
    ];
    let mut inventory = String::new();
    for (id, region, port, roles, heartbeat) in hosts {
        inventory.push_str(&format!(
            "[[host]]\nid = \"{id}\"\nregion = \"{region}\"\naddress = \"127.0.0.1\"\nwireguard_port = {port}\nroles = {roles}\n"
        ));
        if let Some(hb) = heartbeat {
            inventory.push_str(&format!("heartbeat_url = \"http://{hb}/healthz\"\n"));
        }
        inventory.push('\n');
    }
    std::fs::write(dir.path().join("hosts.toml"), &inventory)?;
    let config_text =
        "[providers.static-host]\ninventory = \"hosts.toml\"\nprobe_timeout_ms = 500\n";
    let config_path = dir.path().join("fleet.toml");
    std::fs::write(&config_path, config_text)?;

    let fleet = FleetId::new("demo")?;
    let config = AdapterConfig::from_toml(
        fleet.clone(),
        "static-host",
        &config_path,
        config_text,
        &["providers", "static-host"],
    )
    .without_env();
    let provider = damm_registry::get_adapter("static-host", &config).await?;
    let ingress = provider
        .ingress()
        .context("static-host hands out no ingress")?;

    // Include one front door per region, as the planner would ask.
    for (i, region) in ["eu-central", "us-east"].into_iter().enumerate() {
        let key = IdempotencyKey::new(format!("demo-fd-{i}"))?;
        let spec = AddressSpec {
            labels: Labels::owned(&fleet, &key),
            key,
            region: region.parse()?,
            node: None,
        };
        ingress.allocate_ingress_frontdoor(&spec).await?;
    }
    let doors = ingress.list_frontdoors().await?;

    let nodes = provider.list_nodes(&NodeFilter::all()).await?;
    let targets: Vec<Target> = nodes
        .iter()
        .map(|n| Target::Node(n.reference.clone()))
        .collect();
    let probes = futures::future::join_all(targets.iter().map(|t| provider.probe_health(t))).await;
    let mut rows = Vec::new();
    for (node, probe) in nodes.iter().zip(probes) {
        let probe = probe?;
        rows.push(Row {
            host: node.reference.id.clone(),
            region: node.region.to_string(),
            roles: node.roles.clone(),
            endpoint: format!(
                "{}:{}",
                node.addresses
                    .first()
                    .map(|a| a.to_string())
                    .unwrap_or_default(),
                node.wireguard_port.unwrap_or_default()
            ),
            frontdoor: doors
                .iter()
                .any(|d| d.node.as_ref() == Some(&node.reference)),
            status: probe.status,
            rtt_ms: probe.rtt.map(|d| (d.as_secs_f64() * 1e5).round() / 100.0),
            detail: probe.detail,
        });
    }
    let healthy = rows
        .iter()
        .filter(|r| r.status == HealthStatus::Healthy)
        .count();
    #[cfg(feature = "sim")]
    let cloud = crate::demo_sim::run(&fleet).await?;
    #[cfg(not(feature = "sim"))]
    let cloud: Option<()> = None;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "fleet": fleet,
                "provider": provider.id(),
                "hosts": rows,
                "healthy": healthy,
                "cloud": cloud,
            }))?
        );
    } else {
        println!(
            "DAMM demo: fleet `{fleet}` on 127.0.0.1 via the `{}` adapter\n",
            provider.id()
        );
        println!(
            "{:14} {:11} {:15} {:21} {:9} {:8} {:>8}  DETAIL",
            "HOST", "REGION", "ROLES", "ENDPOINT", "FRONTDOOR", "STATUS", "RTT"
        );
        for r in &rows {
            let roles: Vec<_> = r.roles.iter().map(|r| r.as_str()).collect();
            println!(
                "{:14} {:11} {:15} {:21} {:9} {:8} {:>8}  {}",
                r.host,
                r.region,
                roles.join(","),
                r.endpoint,
                if r.frontdoor { "yes" } else { "-" },
                format!("{:?}", r.status).to_lowercase(),
                r.rtt_ms
                    .map(|ms| format!("{ms:.2}ms"))
                    .unwrap_or_else(|| "-".into()),
                r.detail
            );
        }
        println!("\n{healthy} of {} hosts healthy\n", rows.len());
        #[cfg(feature = "sim")]
        if let Some(cloud) = &cloud {
            crate::demo_sim::print(cloud);
        }
        #[cfg(not(feature = "sim"))]
        let _ = cloud;
    }
    // Let in-flight listener tasks finish before the runtime drops them.
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
