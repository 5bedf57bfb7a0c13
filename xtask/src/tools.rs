//! System tools the tests need, installed from Debian's packages (CI runs on Debian).

use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};

/// Makes sure the Debian packages `pkgs` are installed: checks each with `dpkg -s`, installs
/// the missing ones with `apt-get install -y --no-install-recommends` and, only if that fails
/// (stale or empty package lists), runs `apt-get update` and tries once more. Idempotent: with
/// everything installed it only runs `dpkg -s`. Uses `sudo -n` when not root.
///
/// Without `dpkg` (not a Debian system), or as a user who is neither root nor allowed
/// passwordless sudo, it warns and returns: the tests that need the tools then skip loudly
/// outside CI and fail in CI, naming what is missing.
pub(crate) fn ensure_debian_packages(pkgs: &[&str]) -> anyhow::Result<()> {
    if Command::new("dpkg")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        println!(
            "==> tools: no dpkg here (not Debian); install {} yourself",
            pkgs.join(" ")
        );
        return Ok(());
    }
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        println!("==> tools: {} already installed", pkgs.join(", "));
        return Ok(());
    }
    if !is_root() && !can_sudo() {
        println!(
            "==> tools: missing {}; not root and no passwordless sudo, so not installing them \
             (install them yourself: apt-get install {})",
            missing.join(", "),
            missing.join(" ")
        );
        return Ok(());
    }
    println!(
        "==> tools: installing {} from Debian's packages",
        missing.join(", ")
    );
    let mut install = vec!["install", "-y", "--no-install-recommends"];
    install.extend(&missing);
    if apt_get(&install)? {
        println!("<== tools: installed {}", missing.join(", "));
        return Ok(());
    }
    println!("==> tools: install failed; refreshing the package lists with `apt-get update`");
    if !apt_get(&["update"])? {
        bail!(
            "`apt-get update` failed; cannot install {}",
            missing.join(", ")
        );
    }
    if !apt_get(&install)? {
        bail!(
            "`apt-get install {}` failed even after `apt-get update`",
            missing.join(" ")
        );
    }
    println!("<== tools: installed {}", missing.join(", "));
    Ok(())
}

/// Whether `dpkg -s` reports `pkg` as installed (`Status: install ok installed`; a removed
/// package whose config files remain also exits 0, hence the status check).
fn installed(pkg: &str) -> bool {
    Command::new("dpkg")
        .args(["-s", pkg])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|l| l.trim_end() == "Status: install ok installed")
        })
}

/// Runs `apt-get ARGS` non-interactively (through `sudo -n` unless root); `Ok(false)` when it
/// ran and failed.
fn apt_get(args: &[&str]) -> anyhow::Result<bool> {
    let mut cmd = if is_root() {
        Command::new("apt-get")
    } else {
        let mut sudo = Command::new("sudo");
        sudo.args(["-n", "apt-get"]);
        sudo
    };
    cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    println!("    apt-get {}", args.join(" "));
    let status = cmd
        .status()
        .with_context(|| format!("cannot run apt-get {}", args.join(" ")))?;
    Ok(status.success())
}

fn can_sudo() -> bool {
    Command::new("sudo")
        .args(["-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

#[cfg(test)]
mod tests {
    /// Installs minisign for real: `cargo test -p xtask -- --ignored tools` (needs root or
    /// passwordless sudo, and network access to the Debian mirror).
    #[test]
    #[ignore = "installs system packages"]
    fn installs_minisign_idempotently() {
        super::ensure_debian_packages(&["minisign"]).unwrap();
        assert!(super::installed("minisign"));
        // Second run: nothing to do.
        super::ensure_debian_packages(&["minisign"]).unwrap();
    }
}
