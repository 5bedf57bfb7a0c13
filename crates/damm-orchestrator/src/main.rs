//! `damm`: the DAMM command-line tool.

mod demo;
#[cfg(feature = "sim")]
mod demo_sim;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use serde::Serialize;

/// DAMM: a censorship-resistant WireGuard fleet stitched from many providers.
#[derive(Debug, Parser)]
#[command(name = "damm", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the adapters this build knows and their capabilities.
    Adapters {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run a local demonstration fleet on 127.0.0.1: no credentials, no network.
    Demo {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DAMM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Adapters { json } => adapters(json),
        Command::Demo { json } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(demo::run(json))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("damm: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Serialize)]
struct AdapterRow {
    name: &'static str,
    compiled: bool,
    capabilities: Option<damm_provider::Capabilities>,
    summary: Option<&'static str>,
}

fn adapters(json: bool) -> anyhow::Result<()> {
    let compiled = damm_registry::compiled();
    let rows: Vec<AdapterRow> = damm_registry::known()
        .iter()
        .map(|name| {
            let found = compiled.iter().find(|d| d.name == *name);
            AdapterRow {
                name,
                compiled: found.is_some(),
                capabilities: found.map(|d| d.capabilities),
                summary: found.map(|d| d.summary),
            }
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "adapters": rows }))?;
        writeln!(out)?;
        return Ok(());
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(7);
    writeln!(out, "{:width$}  {:32}  SUMMARY", "ADAPTER", "CAPABILITIES")?;
    for row in rows.iter().filter(|r| r.compiled) {
        let caps = row.capabilities.map(|c| c.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{:width$}  {caps:32}  {}",
            row.name,
            row.summary.unwrap_or("")
        )?;
    }
    let missing: Vec<_> = rows
        .iter()
        .filter(|r| !r.compiled)
        .map(|r| r.name)
        .collect();
    if !missing.is_empty() {
        writeln!(
            out,
            "\nnot compiled in: {} (rebuild with --features NAME)",
            missing.join(", ")
        )?;
    }
    Ok(())
}
