//! Gateway bootstrap: the cloud-init user-data that turns a stock cloud image into a
//! working DAMM gateway with nobody logging in.
//!
//! The user-data installs the `damm` binary from the operator's artifact URL, pinned by its
//! SHA-256 (a tampered or truncated download never runs), writes the gateway's WireGuard
//! key, the trusted catalog key, the gateway's own config credential and the
//! `damm-agent.service` unit (`packaging/damm-agent.service`), then starts the agent. The
//! agent pulls its signed config from the orchestrator's public URL with that credential
//! and configures WireGuard.
//!
//! What a censor or a provider's metadata service sees: user-data is readable by the
//! cloud account and from inside the VM, never by the network. It holds two secrets (the
//! WireGuard key and the config credential), both specific to this one gateway.

use std::fmt;

use damm_provider::{IdempotencyKey, UserData};

/// Where the bootstrap installs the binary on a gateway.
pub const GATEWAY_BINARY: &str = "/usr/local/bin/damm";
/// The gateway's WireGuard private key (mode 0600).
pub const WG_KEY_PATH: &str = "/etc/damm/wg.key";
/// The trusted catalog key (minisign public key).
pub const TRUSTED_KEY_PATH: &str = "/etc/damm/catalog.pub";
/// The gateway's config credential (mode 0600).
pub const TOKEN_PATH: &str = "/etc/damm/gateway.token";
/// The agent's environment (no secrets: the credential is read from [`TOKEN_PATH`]).
pub const AGENT_ENV_PATH: &str = "/etc/damm/agent.env";
/// Where the agent unit is installed.
pub const AGENT_UNIT_PATH: &str = "/etc/systemd/system/damm-agent.service";

/// The agent unit as packaged (binary at `/usr/bin/damm`).
const PACKAGED_AGENT_UNIT: &str = include_str!("../../../packaging/damm-agent.service");
/// The packaged unit's binary path, replaced by [`GATEWAY_BINARY`] on bootstrapped gateways.
const PACKAGED_BINARY: &str = "/usr/bin/damm";

/// A bootstrap setting that cannot work, with the setting's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootstrapError {
    /// The setting (`--public-url`, `--agent-url`, `--agent-sha256`).
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for BootstrapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.problem)
    }
}

impl std::error::Error for BootstrapError {}

/// How gateways get the agent and reach the orchestrator: one per fleet, from
/// `damm serve --public-url URL --agent-url URL --agent-sha256 HEX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bootstrap {
    orchestrator_url: String,
    artifact_url: String,
    artifact_sha256: String,
    trusted_key: String,
}

/// What one gateway's user-data carries of its own: its id and its two secrets.
pub struct GatewaySecrets<'a> {
    /// The gateway's id (its idempotency key).
    pub key: &'a IdempotencyKey,
    /// Its WireGuard private key, base64.
    pub wg_private_key: &'a str,
    /// Its config credential.
    pub token: &'a str,
}

impl fmt::Debug for GatewaySecrets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewaySecrets")
            .field("key", &self.key.as_str())
            .finish_non_exhaustive()
    }
}

impl Bootstrap {
    /// Checks the settings: http(s) URLs with a host and no whitespace or quotes, a SHA-256
    /// of 64 hex digits, and a minisign public key (`trusted_key`, the text of
    /// `catalog.pub`).
    pub fn new(
        orchestrator_url: &str,
        artifact_url: &str,
        artifact_sha256: &str,
        trusted_key: &str,
    ) -> Result<Bootstrap, BootstrapError> {
        let orchestrator_url = check_url("--public-url", orchestrator_url)?;
        let artifact_url = check_url("--agent-url", artifact_url)?;
        let sha = artifact_sha256.trim().to_ascii_lowercase();
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BootstrapError {
                setting: "--agent-sha256",
                problem: format!("`{artifact_sha256}` is not a SHA-256 (64 hex digits)"),
            });
        }
        if damm_catalog::PublicKey::from_minisign(trusted_key).is_err() {
            return Err(BootstrapError {
                setting: "trusted key",
                problem: "the catalog public key is not in minisign format".to_owned(),
            });
        }
        Ok(Bootstrap {
            orchestrator_url: orchestrator_url.trim_end_matches('/').to_owned(),
            artifact_url,
            artifact_sha256: sha,
            trusted_key: trusted_key.to_owned(),
        })
    }

    /// The agent unit a bootstrapped gateway runs: the packaged unit, with the binary
    /// where the bootstrap installs it.
    pub fn agent_unit() -> String {
        PACKAGED_AGENT_UNIT.replace(PACKAGED_BINARY, GATEWAY_BINARY)
    }

    /// The environment file the agent unit reads.
    fn agent_env(&self, key: &IdempotencyKey) -> String {
        format!(
            "# Written by the DAMM bootstrap (cloud-init).\n\
             DAMM_GATEWAY={key}\n\
             DAMM_ORCHESTRATOR={}\n\
             DAMM_TRUSTED_KEY={TRUSTED_KEY_PATH}\n\
             DAMM_GATEWAY_TOKEN_FILE={TOKEN_PATH}\n",
            self.orchestrator_url
        )
    }

    /// The `#cloud-config` user-data of one gateway.
    pub fn user_data(&self, gateway: &GatewaySecrets<'_>) -> UserData {
        let mut yaml = String::from("#cloud-config\n");
        // The agent drives WireGuard with `wg` and forwards with nftables; curl fetches the
        // binary. cloud-init refreshes the package lists before installing.
        yaml.push_str("packages:\n  - curl\n  - wireguard-tools\n  - nftables\n");
        yaml.push_str("write_files:\n");
        let files: [(&str, &str, String); 5] = [
            (WG_KEY_PATH, "0600", format!("{}\n", gateway.wg_private_key)),
            (TOKEN_PATH, "0600", format!("{}\n", gateway.token)),
            (TRUSTED_KEY_PATH, "0644", self.trusted_key.clone()),
            (AGENT_ENV_PATH, "0644", self.agent_env(gateway.key)),
            (AGENT_UNIT_PATH, "0644", Bootstrap::agent_unit()),
        ];
        for (path, mode, content) in &files {
            yaml.push_str(&format!("  - path: {path}\n    permissions: '{mode}'\n"));
            yaml.push_str(&format!("    content: {}\n", literal_block(content, 6)));
        }
        // The download is verified before it is made executable: `sh -c SCRIPT URL SHA PATH`
        // passes the values as arguments, never through the shell's parser.
        let install = "set -eu; curl -fsS --retry 10 --retry-connrefused -o \"$2.part\" \"$0\"; \
                       echo \"$1  $2.part\" | sha256sum -c -; chmod 0755 \"$2.part\"; \
                       mv \"$2.part\" \"$2\"";
        yaml.push_str("runcmd:\n");
        yaml.push_str(&format!(
            "  - [sh, -c, {}, {}, {}, {}]\n",
            quoted(install),
            quoted(&self.artifact_url),
            quoted(&self.artifact_sha256),
            quoted(GATEWAY_BINARY)
        ));
        yaml.push_str("  - [systemctl, daemon-reload]\n");
        yaml.push_str("  - [systemctl, enable, --now, damm-agent.service]\n");
        UserData::new(yaml)
    }
}

/// Checks a URL setting: http(s), a host, nothing YAML or a shell would read specially.
fn check_url(setting: &'static str, url: &str) -> Result<String, BootstrapError> {
    let problem = |problem: &str| BootstrapError {
        setting,
        problem: format!("`{url}` {problem}"),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| problem("is not an http(s) URL"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(problem("has no host"));
    }
    if url
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '\'' | '"' | '\\' | '`'))
    {
        return Err(problem("holds whitespace, quotes or control characters"));
    }
    Ok(url.to_owned())
}

/// A YAML single-quoted scalar.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A YAML literal block scalar (`|`; `|-` without a final newline, `|+` with several) whose lines are
/// indented by `indent` spaces; kept byte for byte by every YAML parser.
fn literal_block(text: &str, indent: usize) -> String {
    let chomp = if text.ends_with("\n\n") {
        "+"
    } else if text.ends_with('\n') {
        ""
    } else {
        "-"
    };
    let pad = " ".repeat(indent);
    let mut block = format!("|{indent}{chomp}\n", indent = indent - 4);
    for line in text.strip_suffix('\n').unwrap_or(text).split('\n') {
        if line.is_empty() {
            block.push('\n');
        } else {
            block.push_str(&pad);
            block.push_str(line);
            block.push('\n');
        }
    }
    block.pop();
    block
}

#[cfg(test)]
mod tests;
