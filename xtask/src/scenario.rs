//! `cargo xtask scenario NAME [ARGS]`: builds `damm` and `damm-scenario` in release mode
//! and runs the scenario, which prints its figures.

use std::path::Path;
use std::process::Command;

use anyhow::{Context as _, bail};

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    if args.is_empty() {
        bail!(
            "usage: cargo xtask scenario probe [--nodes N] [--latency-ms MS] [--concurrency N]\n\
             \x20      cargo xtask scenario provider-dark [--provider NAME] [--policy FILE] [--breaker-failures N] [--compression C] [--boot-s S] [--ticks N] [--validated FILE] [--json]\n\
             \x20      cargo xtask scenario converge [--nodes N] [--tick-s S] [--compression C] [--boot-s S] [--json]"
        );
    }
    release_run(root, args)
}

/// Builds `damm` and `damm-scenario` in release mode and runs `damm-scenario ARGS` (the
/// scenarios and the soak).
pub(crate) fn release_run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    crate::ci::step(
        root,
        "build (release)",
        &[
            "build",
            "--release",
            "-p",
            "damm-orchestrator",
            "-p",
            "damm-tests",
            "--bin",
            "damm",
            "--bin",
            "damm-scenario",
        ],
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    let exe = target.join("release").join("damm-scenario");
    let status = Command::new(&exe)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("running {}", exe.display()))?;
    if !status.success() {
        bail!(
            "`damm-scenario {}` failed ({status})",
            args.first().map_or("", String::as_str)
        );
    }
    Ok(())
}
