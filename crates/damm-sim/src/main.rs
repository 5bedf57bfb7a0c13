//! `damm-sim`: serve the simulated provider APIs on one port.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use damm_sim::{Provider, SimConfig};

/// Local, stateful simulator of the providers' HTTP APIs, with fault injection.
#[derive(Debug, Parser)]
#[command(name = "damm-sim", version, about)]
struct Args {
    /// Address to listen on (loopback only unless you know why).
    #[arg(long, default_value = "127.0.0.1:8780")]
    listen: SocketAddr,
    /// Bearer token every API accepts.
    #[arg(long, default_value = "damm-sim-token")]
    token: String,
    /// Seed for fault draws.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How long new machines take to boot, e.g. `500ms`, `2s`.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    boot_delay: Duration,
    /// Do not check traffic against the published schemas.
    #[arg(long)]
    no_validate: bool,
    /// Do not enforce the providers' rate limits.
    #[arg(long)]
    no_rate_limits: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .unwrap_or((s, "s"));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 500ms or 2s"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("`{s}`: unit must be ms, s or m")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAMM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let config = SimConfig {
        token: args.token,
        seed: args.seed,
        boot_delay: args.boot_delay,
        validate: !args.no_validate,
        rate_limits: !args.no_rate_limits,
        max_page_size: None,
    };
    let sim = damm_sim::start(config, args.listen).await?;
    for provider in Provider::ALL {
        println!("{provider:12} {}", sim.url(*provider));
    }
    println!(
        "faults       http://{}/_sim/faults/{{provider}}",
        sim.addr()
    );
    tokio::signal::ctrl_c().await?;
    sim.shutdown().await;
    Ok(())
}
