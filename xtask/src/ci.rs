//! `cargo xtask ci`: the whole CI run, step by step, stopping at the first failure.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};

/// Crates that must never be compiled into a build that did not ask for their adapter.
const PROVIDER_SDKS: &[&str] = &[
    "aws-sdk-cloudfront",
    "aws-sdk-ec2",
    "aws-config",
    "google-cloud-compute-v1",
    "google-cloud-auth",
    "hcloud",
    "cloudflare",
];

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let skip_smoke = args.iter().any(|a| a == "--skip-smoke");
    if let Some(bad) = args.iter().find(|a| *a != "--skip-smoke") {
        bail!("unknown option `{bad}` for `ci`");
    }
    let started = Instant::now();
    step(root, "format", &["fmt", "--all", "--", "--check"])?;
    step(
        root,
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The aws adapter's tests run against moto's EC2 emulator.
    crate::moto::ensure(root)?;
    // damm-catalog's interop test checks its signatures with the stock minisign; damm-tests'
    // netns_failover runs real tunnels (userspace WireGuard in network namespaces, as root);
    // damm-orchestrator's bootstrap tests validate user-data with cloud-init; the censor
    // tests put nginx between client and gateway.
    crate::tools::ensure_debian_packages(&[
        "minisign",
        "wireguard-go",
        "wireguard-tools",
        "iproute2",
        "nftables",
        // The gateway bootstrap's user-data is checked with cloud-init's own schema.
        "cloud-init",
        "curl",
        // The censor tests' CDN edge: a TLS-terminating reverse proxy forwarding WebSocket
        // upgrades, with a test CA made by openssl.
        "nginx-light",
        "openssl",
    ])?;
    if has_nextest() {
        step(
            root,
            "tests",
            &[
                "nextest",
                "run",
                "--workspace",
                "--all-features",
                "--no-fail-fast",
            ],
        )?;
        step(
            root,
            "doctests",
            &["test", "--workspace", "--all-features", "--doc"],
        )?;
    } else {
        step(
            root,
            "tests",
            &["test", "--workspace", "--all-features", "--no-fail-fast"],
        )?;
    }
    for adapter in adapters(root)? {
        // `check`, not `build`: the point is that the binary compiles with this adapter
        // alone and pulls in no other adapter or SDK (the tree check below). Its dependencies'
        // metadata is shared with the clippy step, so the heavy SDKs (aws, gce) are not
        // compiled to machine code a second time.
        step(
            root,
            &format!("check with only `{adapter}`"),
            &["check", "--no-default-features", "--features", &adapter],
        )?;
        only_its_own_crates(root, &adapter)?;
    }
    if !skip_smoke {
        crate::scaffold::smoke(root)?;
    }
    println!(
        "xtask ci: all steps passed in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs `cargo ARGS` in `root`, failing with the step's name.
pub(crate) fn step(root: &Path, name: &str, args: &[&str]) -> anyhow::Result<()> {
    cargo_in(root, name, args, &[])
}

pub(crate) fn cargo_in(
    root: &Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &Path)],
) -> anyhow::Result<()> {
    println!("==> {name}: cargo {}", args.join(" "));
    let started = Instant::now();
    let mut cmd = Command::new(cargo());
    cmd.args(args).current_dir(root);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .with_context(|| format!("{name}: cannot run cargo"))?;
    if !status.success() {
        bail!("step `{name}` failed ({status})");
    }
    println!("<== {name}: ok in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn has_nextest() -> bool {
    Command::new(cargo())
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The adapters, from the adapters/ folders.
pub(crate) fn adapters(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("adapters"))
        .context("reading adapters/")?
        .filter_map(Result::ok)
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// A build with one adapter compiles no other adapter and no other provider's SDK.
fn only_its_own_crates(root: &Path, adapter: &str) -> anyhow::Result<()> {
    let output = Command::new(cargo())
        .args([
            "tree",
            "-p",
            "damm-orchestrator",
            "--no-default-features",
            "--features",
            adapter,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(root)
        .output()
        .context("cargo tree")?;
    if !output.status.success() {
        bail!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let tree = String::from_utf8_lossy(&output.stdout);
    let own = format!("damm-adapter-{adapter}");
    let mut intruders: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| (c.starts_with("damm-adapter-") && *c != own) || PROVIDER_SDKS.contains(c))
        .filter(|c| !own_sdk(adapter, c))
        .collect();
    intruders.sort_unstable();
    intruders.dedup();
    if !intruders.is_empty() {
        bail!(
            "`--features {adapter}` also compiles: {}",
            intruders.join(", ")
        );
    }
    println!("    `--features {adapter}` compiles no other adapter or provider SDK");
    Ok(())
}

/// Whether `krate` is the SDK adapter `adapter` is built on.
fn own_sdk(adapter: &str, krate: &str) -> bool {
    match adapter {
        "aws" => krate.starts_with("aws-"),
        "gce" => krate.starts_with("google-cloud-"),
        "hetzner" => krate == "hcloud",
        other => krate == other,
    }
}
