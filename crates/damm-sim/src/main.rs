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

/// `--boot-delay`: any duration `humantime` reads (`500ms`, `2s`, `1.5s`, `1m 30s`); a bare
/// number is seconds, as this flag has always read it.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let bare = s.trim();
    if !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return bare
            .parse()
            .ok()
            .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
            .ok_or_else(|| format!("`{s}` is not a duration like 500ms or 2s"));
    }
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 500ms or 2s: {e}"))
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
        boot: None,
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

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn boot_delay_reads_what_it_always_read() {
        for (text, ms) in [
            ("500ms", 500),
            ("2s", 2000),
            ("0.5s", 500),
            ("1.5m", 90_000),
            ("2", 2000),
            ("0.25", 250),
            ("0s", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        for bad in [
            "",
            "s",
            "2x",
            "-1s",
            "-1",
            "1e3",
            "1.2.3",
            "inf",
            "99999999999999999999999m",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
