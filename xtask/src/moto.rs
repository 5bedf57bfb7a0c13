//! `cargo xtask moto`: installs moto's server (an independent AWS emulator, from PyPI)
//! into a virtual environment under `target/`, where the AWS adapter's tests look for
//! it. Does nothing when it is already there.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The moto releases the AWS adapter's tests are written against.
const MOTO: &str = "moto[server]>=5.1,<6";

/// The virtual environment, relative to the workspace root (the tests use the same path).
pub(crate) const VENV: &str = "target/moto-venv";

/// The `moto_server` executable inside the virtual environment.
pub(crate) fn server(root: &Path) -> PathBuf {
    root.join(VENV).join("bin").join("moto_server")
}

/// Makes sure `target/moto-venv/bin/moto_server` exists and starts.
pub(crate) fn ensure(root: &Path) -> anyhow::Result<()> {
    let server = server(root);
    if answers_help(&server) {
        println!("    moto is installed: {}", server.display());
        return Ok(());
    }
    let venv = root.join(VENV);
    let python = std::env::var("DAMM_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    if !venv.join("bin").join("pip").exists() {
        println!("==> moto: {python} -m venv {}", venv.display());
        run(Command::new(&python).args(["-m", "venv"]).arg(&venv)).with_context(|| {
            format!(
                "creating {} (is python3 with venv installed?)",
                venv.display()
            )
        })?;
    }
    println!("==> moto: pip install '{MOTO}'");
    run(Command::new(venv.join("bin").join("pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        MOTO,
    ]))
    .context("installing moto from PyPI")?;
    if !answers_help(&server) {
        bail!("{} does not start after installing moto", server.display());
    }
    println!("<== moto: installed {}", server.display());
    Ok(())
}

fn answers_help(server: &Path) -> bool {
    server.exists()
        && Command::new(server)
            .arg("--help")
            .output()
            .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}
