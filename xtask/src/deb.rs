//! `cargo xtask deb`: a Debian package of `damm`, assembled with `dpkg-deb --build` (no
//! cargo-deb): the release binary as /usr/bin/damm, the three systemd units, the policy as
//! the conffile /etc/damm/policy.toml (the embedded default, switched to plan mode), the
//! adapters' settings template, the env-file examples, and a postinst that creates the
//! `damm` user and the catalog keys.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

/// The units, from packaging/, installed under /lib/systemd/system/.
const UNITS: &[&str] = &[
    "damm-agent.service",
    "damm-client.service",
    "damm-orchestrator.service",
];

/// The conffiles: (path in the package, source in the workspace).
const CONFFILES: &[(&str, &str)] = &[
    ("etc/damm/policy.toml", "policy/default.toml"),
    ("etc/damm/adapters.toml", "packaging/adapters.toml"),
];

const POSTINST: &str = "#!/bin/sh
set -e
if [ \"$1\" = configure ]; then
    if ! getent passwd damm >/dev/null; then
        adduser --system --group --home /var/lib/damm --no-create-home damm
    fi
    install -d -o root -g damm -m 0750 /etc/damm/secrets
    install -d -o damm -g damm -m 0750 /var/lib/damm
    if [ ! -e /var/lib/damm/keys/catalog.key ]; then
        runuser -u damm -- /usr/bin/damm keygen --dir /var/lib/damm/keys
    fi
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
";

/// `cargo xtask deb [--features LIST]`: builds damm in release and writes target/debian/*.deb.
pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut build = Command::new(env!("CARGO"));
    build.args([
        "build",
        "--release",
        "-p",
        "damm-orchestrator",
        "--bin",
        "damm",
    ]);
    match args {
        [] => {}
        [flag, features] if flag == "--features" => {
            build.args(["--features", features]);
        }
        other => bail!("unexpected arguments {other:?}; usage: cargo xtask deb [--features LIST]"),
    }
    let status = build.current_dir(root).status()?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let binary = root.join("target/release/damm");
    let deb = assemble(root, &binary, &root.join("target/debian"))?;
    println!("wrote {}", deb.display());
    Ok(())
}

/// The workspace version, from `[workspace.package]` of the root Cargo.toml.
fn workspace_version(root: &Path) -> anyhow::Result<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let package = manifest
        .split("[workspace.package]")
        .nth(1)
        .context("no [workspace.package] in Cargo.toml")?;
    package
        .lines()
        .take_while(|l| !l.starts_with('['))
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .context("no version in [workspace.package]")
}

/// The control file.
fn control(version: &str, installed_kib: u64) -> String {
    format!(
        "Package: damm\nVersion: {version}\nArchitecture: amd64\nMaintainer: DAMM maintainers <damm@localhost>\n\
         Installed-Size: {installed_kib}\nDepends: adduser, util-linux, wireguard-tools, iproute2, nftables\n\
         Section: net\nPriority: optional\n\
         Description: DAMM control plane for a multi-provider WireGuard VPN fleet\n \
         The damm binary (orchestrator, gateway agent, client) and its systemd units.\n"
    )
}

/// The policy shipped in /etc: the embedded default, in plan mode until the operator says apply.
fn packaged_policy(default: &str) -> anyhow::Result<String> {
    let apply = "mode = \"apply\"";
    if !default.contains(apply) {
        bail!("policy/default.toml has no `{apply}` line to switch to plan mode");
    }
    Ok(format!(
        "# Installed by the damm package in plan mode: `damm serve` shows what it would do.\n\
         # Set `mode = \"apply\"` under [fleet] once the plan looks right.\n{}",
        default.replacen(apply, "mode = \"plan\"", 1)
    ))
}

/// Lays the package tree out in `out/damm_VERSION` and builds `out/damm_VERSION_amd64.deb`.
fn assemble(root: &Path, binary: &Path, out: &Path) -> anyhow::Result<PathBuf> {
    let version = workspace_version(root)?;
    let tree = out.join(format!("damm_{version}"));
    if tree.exists() {
        std::fs::remove_dir_all(&tree)?;
    }
    let put = |path: &str, bytes: &[u8], mode: u32| -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let target = tree.join(path);
        std::fs::create_dir_all(target.parent().expect("a file in a folder"))?;
        std::fs::write(&target, bytes).with_context(|| format!("writing {}", target.display()))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    let read =
        |path: &str| std::fs::read(root.join(path)).with_context(|| format!("reading {path}"));
    put("usr/bin/damm", &std::fs::read(binary)?, 0o755)?;
    for unit in UNITS {
        put(
            &format!("lib/systemd/system/{unit}"),
            &read(&format!("packaging/{unit}"))?,
            0o644,
        )?;
    }
    for example in ["agent.env", "client.env"] {
        put(
            &format!("usr/share/doc/damm/examples/{example}"),
            &read(&format!("packaging/{example}"))?,
            0o644,
        )?;
    }
    for (target, source) in CONFFILES {
        let mut bytes = read(source)?;
        if *source == "policy/default.toml" {
            bytes = packaged_policy(std::str::from_utf8(&bytes)?)?.into_bytes();
        }
        put(target, &bytes, 0o644)?;
    }
    let conffiles: String = CONFFILES.iter().map(|(p, _)| format!("/{p}\n")).collect();
    put("DEBIAN/conffiles", conffiles.as_bytes(), 0o644)?;
    put("DEBIAN/postinst", POSTINST.as_bytes(), 0o755)?;
    let installed_kib = std::fs::metadata(binary)?.len().div_ceil(1024) + 16;
    put(
        "DEBIAN/control",
        control(&version, installed_kib).as_bytes(),
        0o644,
    )?;
    let deb = out.join(format!("damm_{version}_amd64.deb"));
    let status = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&tree)
        .arg(&deb)
        .status()
        .context("running dpkg-deb (Debian package dpkg)")?;
    if !status.success() {
        bail!("dpkg-deb --build failed");
    }
    Ok(deb)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        crate::workspace_root()
    }

    #[test]
    fn control_names_the_workspace_version_and_the_runtime_tools() {
        let version = workspace_version(&root()).unwrap();
        assert!(
            version.chars().next().unwrap().is_ascii_digit(),
            "{version}"
        );
        let control = control(&version, 100);
        assert!(
            control.contains(&format!("Version: {version}\n")),
            "{control}"
        );
        assert!(control.contains("wireguard-tools"), "{control}");
        assert!(control.ends_with('\n'));
    }

    #[test]
    fn the_packaged_policy_is_the_default_in_plan_mode() {
        let default = std::fs::read_to_string(root().join("policy/default.toml")).unwrap();
        let packaged = packaged_policy(&default).unwrap();
        assert!(packaged.contains("mode = \"plan\""));
        assert!(!packaged.contains("mode = \"apply\" "));
        assert!(packaged_policy("[fleet]\n").is_err());
    }

    #[test]
    fn a_fake_binary_makes_a_package_with_units_conffiles_and_postinst() {
        let dir = std::env::temp_dir().join(format!("damm-xtask-deb-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let binary = dir.join("damm");
        std::fs::write(&binary, "#!/bin/sh\n").unwrap();
        let deb = assemble(&root(), &binary, &dir).unwrap();
        let listing = Command::new("dpkg-deb")
            .arg("-c")
            .arg(&deb)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        for path in [
            "./usr/bin/damm",
            "./lib/systemd/system/damm-agent.service",
            "./lib/systemd/system/damm-client.service",
            "./lib/systemd/system/damm-orchestrator.service",
            "./etc/damm/policy.toml",
            "./etc/damm/adapters.toml",
        ] {
            assert!(listing.contains(path), "{path} missing:\n{listing}");
        }
        let conffiles = Command::new("dpkg-deb")
            .args(["-I"])
            .arg(&deb)
            .arg("conffiles")
            .output()
            .unwrap();
        let conffiles = String::from_utf8_lossy(&conffiles.stdout);
        assert!(conffiles.contains("/etc/damm/policy.toml"), "{conffiles}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
