//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: exactly what CI runs (fmt check, clippy `-D warnings` on all targets and
//!   features, the tests, one check per adapter, the new-adapter smoke run).
//! - `scenario NAME`: scenario runs against the simulator, in release mode, with figures.
//! - `new-adapter NAME --capabilities a,b`: a compiling adapter crate with the standard
//!   file set, its registry line and features, and a conformance test.
//! - `moto`: installs moto's AWS emulator (PyPI) into `target/moto-venv` for the aws tests.
//! - `soak`: the crash soak (`kill -9` of `damm serve` while it applies), in release mode.
//! - `fuzz`: the cargo-fuzz targets on nightly (installs cargo-fuzz when missing).
//! - `deb`: a Debian package of `damm` (release build, units, default config) with dpkg-deb.

mod ci;
mod deb;
mod fuzz;
mod moto;
mod scaffold;
mod scenario;
mod soak;
mod tools;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

const USAGE: &str = "usage:
  cargo xtask ci [--skip-smoke]
  cargo xtask smoke            (the new-adapter smoke run alone, in a copy of the workspace)
  cargo xtask moto             (install moto's AWS emulator into target/moto-venv for the aws tests)
  cargo xtask scenario probe [--nodes N] [--latency-ms MS] [--concurrency N]
  cargo xtask scenario provider-dark [--provider NAME] [--validated FILE] [--json]
  cargo xtask scenario converge [--nodes N] [--json]
                               (release build; prints figures)
  cargo xtask soak [--kills N] [--seed S]
                               (crash soak: kill -9 of `damm serve` while it applies; release)
  cargo xtask fuzz [TARGET] [--seconds N]
                               (cargo fuzz on nightly, N s per target; installs cargo-fuzz)
  cargo xtask deb [--features LIST]
                               (release build; target/debian/damm_VERSION_amd64.deb via dpkg-deb)
  cargo xtask new-adapter NAME --capabilities CAP[,CAP...]
      CAP: compute, ingress, egress, overlay, cdn_front, tunnel_term";

fn main() {
    if let Err(err) = run(std::env::args().skip(1).collect()) {
        eprintln!("xtask: {err:#}");
        std::process::exit(1);
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("ci") => ci::run(&root, &args[1..]),
        Some("smoke") => scaffold::smoke(&root),
        Some("scenario") => scenario::run(&root, &args[1..]),
        Some("moto") => moto::ensure(&root),
        Some("soak") => soak::run(&root, &args[1..]),
        Some("fuzz") => fuzz::run(&root, &args[1..]),
        Some("deb") => deb::run(&root, &args[1..]),
        Some("new-adapter") => {
            let (name, caps) = parse_new_adapter(&args[1..])?;
            scaffold::new_adapter(&root, &name, &caps)?;
            println!(
                "created adapters/{name}; build it with `cargo build --features {name}` and list it with `cargo run --features {name} -- adapters`"
            );
            Ok(())
        }
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown command `{other}`\n{USAGE}"),
    }
}

fn parse_new_adapter(args: &[String]) -> anyhow::Result<(String, Vec<String>)> {
    let mut name = None;
    let mut caps = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--capabilities" => {
                caps = Some(it.next().context("--capabilities needs a value")?.clone())
            }
            s if s.starts_with("--capabilities=") => {
                caps = Some(s["--capabilities=".len()..].to_owned())
            }
            s if s.starts_with('-') => bail!("unknown option `{s}`\n{USAGE}"),
            s if name.is_none() => name = Some(s.to_owned()),
            s => bail!("unexpected argument `{s}`\n{USAGE}"),
        }
    }
    let name = name.with_context(|| format!("missing NAME\n{USAGE}"))?;
    let caps = caps.with_context(|| format!("missing --capabilities\n{USAGE}"))?;
    let caps: Vec<String> = caps
        .split(',')
        .map(|c| c.trim().replace('-', "_"))
        .filter(|c| !c.is_empty())
        .collect();
    Ok((name, caps))
}

/// The workspace root: xtask lives one level below it.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask sits in the workspace")
        .to_owned()
}
