//! `cargo xtask fuzz [TARGET] [--seconds N]`: runs the cargo-fuzz targets for N seconds
//! each (default 60) on the nightly toolchain, installing cargo-fuzz first when it is
//! missing (`cargo install cargo-fuzz --locked`, idempotent). Targets: `fuzz/` (policy
//! parsing, each adapter's error mapping and response decoding, the static-host
//! inventory) and `crates/damm-catalog/fuzz` (catalog verification). Prints each
//! target's executions and findings (libFuzzer's reproducer path); fails if any crashed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context as _, bail};

/// Every target, with the cargo-fuzz project (relative to the root) that holds it.
const TARGETS: &[(&str, &str)] = &[
    ("policy", "fuzz"),
    ("verify", "crates/damm-catalog/fuzz"),
    ("cloudflare", "fuzz"),
    ("digitalocean", "fuzz"),
    ("hetzner", "fuzz"),
    ("static_host", "fuzz"),
    ("tailscale", "fuzz"),
    ("vultr", "fuzz"),
    ("t1_open", "fuzz"),
    ("t3_gateway", "fuzz"),
];

const USAGE: &str = "usage: cargo xtask fuzz [TARGET] [--seconds N]\n  targets: policy, verify, cloudflare, digitalocean, hetzner, static_host, tailscale, vultr, t1_open, t3_gateway";

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut seconds = 60u64;
    let mut only = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--seconds" => {
                seconds = it
                    .next()
                    .context("--seconds needs a value")?
                    .parse()
                    .context("--seconds: not a number")?;
            }
            s if s.starts_with('-') => bail!("unknown option `{s}`\n{USAGE}"),
            s if only.is_none() => only = Some(s.to_owned()),
            s => bail!("unexpected argument `{s}`\n{USAGE}"),
        }
    }
    let targets: Vec<&(&str, &str)> = TARGETS
        .iter()
        .filter(|(t, _)| only.as_deref().is_none_or(|o| o == *t))
        .collect();
    if targets.is_empty() {
        bail!("no fuzz target `{}`\n{USAGE}", only.unwrap_or_default());
    }
    ensure_cargo_fuzz()?;
    let mut results = Vec::new();
    for (target, project) in targets {
        let dir = root.join(project);
        let corpus = fuzz_target_dir(root).join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("creating {}", corpus.display()))?;
        println!("==> fuzz {target} ({project}) for {seconds}s");
        let started = Instant::now();
        let output = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", target])
            .arg(&corpus)
            .args([
                "--",
                &format!("-max_total_time={seconds}"),
                "-print_final_stats=1",
            ])
            .current_dir(&dir)
            // Its own target directory: a nightly, instrumented build.
            .env("CARGO_TARGET_DIR", fuzz_target_dir(root))
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .output()
            .with_context(|| format!("running cargo fuzz in {}", dir.display()))?;
        let log = String::from_utf8_lossy(&output.stderr);
        let runs = log
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| "?".to_owned());
        let finding = (!output.status.success()).then(|| {
            // libFuzzer's report: the panic and the reproducer's path.
            let lines: Vec<&str> = log
                .lines()
                .filter(|l| {
                    l.contains("panicked") || l.contains("Test unit written") || l.contains("ERROR")
                })
                .collect();
            eprintln!("{}", lines.join("\n"));
            lines
                .first()
                .map_or("crash".to_owned(), |l| (*l).to_owned())
        });
        println!(
            "<== fuzz {target}: {runs} executions in {:.0}s, {}",
            started.elapsed().as_secs_f64(),
            if finding.is_some() {
                "a finding"
            } else {
                "no findings"
            }
        );
        results.push((target.to_string(), runs, finding));
    }
    println!("\nfuzzing: {seconds}s per target");
    for (target, runs, finding) in &results {
        match finding {
            None => println!("  {target:<14} {runs:>12} executions, 0 findings"),
            Some(f) => println!("  {target:<14} {runs:>12} executions, FINDING: {f}"),
        }
    }
    let found = results.iter().filter(|r| r.2.is_some()).count();
    if found > 0 {
        bail!("{found} target(s) crashed: reproducers under fuzz*/artifacts/");
    }
    Ok(())
}

/// The fuzz builds' target directory: `<target>/fuzz`.
fn fuzz_target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from)
        .join("fuzz")
}

/// Installs cargo-fuzz when `cargo fuzz` is not there; checks the nightly toolchain.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    let nightly = Command::new("cargo")
        .args(["+nightly", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !nightly.is_ok_and(|s| s.success()) {
        bail!("fuzzing needs the nightly toolchain: rustup toolchain install nightly");
    }
    let present = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    println!("==> installing cargo-fuzz: cargo install cargo-fuzz --locked");
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .context("running cargo install")?;
    if !status.success() {
        bail!("cargo install cargo-fuzz failed ({status})");
    }
    Ok(())
}
