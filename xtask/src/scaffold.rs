//! `cargo xtask new-adapter`: writes a compiling adapter crate with the standard file
//! set and wires it into the workspace, the registry and the `damm` binary.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

/// Capability name → (trait, accessor, methods as `(name, params, return type)`).
type Method = (&'static str, &'static str, &'static str, &'static str);
const CAPABILITIES: &[(&str, &str, &[Method])] = &[
    (
        "compute",
        "Compute",
        &[
            (
                "create_node",
                "spec: &NodeSpec",
                "Node",
                "CreateIngressNode",
            ),
            ("drain_node", "node: &NodeRef", "()", "DrainNode"),
            ("retire_node", "node: &NodeRef", "()", "RetireNode"),
        ],
    ),
    (
        "ingress",
        "Ingress",
        &[
            (
                "allocate_ingress_frontdoor",
                "spec: &AddressSpec",
                "Frontdoor",
                "AllocateIngressFrontdoor",
            ),
            (
                "release_ingress_frontdoor",
                "frontdoor: &FrontdoorRef",
                "()",
                "ReleaseIngressFrontdoor",
            ),
            ("list_frontdoors", "", "Vec<Frontdoor>", "ListFrontdoors"),
        ],
    ),
    (
        "egress",
        "Egress",
        &[
            (
                "allocate_egress_ip",
                "spec: &AddressSpec",
                "EgressIp",
                "AllocateEgressIp",
            ),
            (
                "release_egress_ip",
                "ip: &EgressIpRef",
                "()",
                "ReleaseEgressIp",
            ),
            ("list_egress_ips", "", "Vec<EgressIp>", "ListEgressIps"),
        ],
    ),
    (
        "overlay",
        "Overlay",
        &[
            (
                "join_overlay",
                "spec: &OverlaySpec",
                "OverlayMembership",
                "JoinOverlay",
            ),
            (
                "leave_overlay",
                "membership: &MembershipRef",
                "()",
                "LeaveOverlay",
            ),
            (
                "list_memberships",
                "",
                "Vec<OverlayMembership>",
                "ListMemberships",
            ),
        ],
    ),
    (
        "cdn_front",
        "CdnFront",
        &[
            ("publish_front", "spec: &FrontSpec", "Front", "PublishFront"),
            ("retire_front", "front: &FrontRef", "()", "RetireFront"),
            ("list_fronts", "", "Vec<Front>", "ListFronts"),
        ],
    ),
    (
        "tunnel_term",
        "TunnelTerm",
        &[
            (
                "register_tunnel",
                "spec: &TunnelSpec",
                "Tunnel",
                "RegisterTunnel",
            ),
            ("retire_tunnel", "tunnel: &TunnelRef", "()", "RetireTunnel"),
            ("list_tunnels", "", "Vec<Tunnel>", "ListTunnels"),
        ],
    ),
];

/// Type names a capability's trait and methods mention, for the `use` line.
fn types_of(cap: &str) -> Vec<&'static str> {
    let Some((_, trait_name, methods)) = CAPABILITIES.iter().find(|(k, _, _)| *k == cap) else {
        return Vec::new();
    };
    let mut types = vec![*trait_name];
    for (_, param, ret, _) in methods.iter() {
        let param = param.rsplit('&').next().unwrap_or("");
        let ret = ret.trim_start_matches("Vec<").trim_end_matches('>');
        types.extend(
            [param, ret]
                .into_iter()
                .filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase())),
        );
    }
    types
}

struct Names {
    name: String,
    krate: String,
    snake: String,
    camel: String,
    env: String,
    caps: Vec<String>,
}

impl Names {
    fn new(name: &str, caps: &[String]) -> anyhow::Result<Names> {
        ensure!(
            !name.is_empty()
                && name.len() <= 40
                && name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !name.ends_with('-')
                && !name.contains("--"),
            "adapter name `{name}` must be lowercase letters, digits and single dashes, starting with a letter"
        );
        ensure!(!caps.is_empty(), "give at least one capability");
        let mut ordered = Vec::new();
        for (cap, _, _) in CAPABILITIES {
            if caps.iter().any(|c| c == cap) {
                ordered.push((*cap).to_owned());
            }
        }
        if let Some(bad) = caps
            .iter()
            .find(|c| !CAPABILITIES.iter().any(|(k, _, _)| k == c))
        {
            bail!(
                "unknown capability `{bad}` (expected compute, ingress, egress, overlay, cdn_front, tunnel_term)"
            );
        }
        let camel = name
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|f| f.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        Ok(Names {
            name: name.to_owned(),
            krate: format!("damm-adapter-{name}"),
            snake: format!("damm_adapter_{}", name.replace('-', "_")),
            camel,
            env: name.to_ascii_uppercase().replace('-', "_"),
            caps: ordered,
        })
    }
}

pub(crate) fn new_adapter(root: &Path, name: &str, caps: &[String]) -> anyhow::Result<()> {
    let n = Names::new(name, caps)?;
    let dir = root.join("adapters").join(&n.name);
    ensure!(!dir.exists(), "adapters/{} already exists", n.name);

    // Edit the shared files first (in memory), so a failure leaves nothing half-made.
    let edits = [
        (
            root.join("Cargo.toml"),
            insert_sorted(
                &read(&root.join("Cargo.toml"))?,
                |l| l.starts_with("damm-adapter-"),
                &format!("{} = {{ path = \"adapters/{}\" }}", n.krate, n.name),
            )?,
        ),
        (root.join("crates/damm-registry/Cargo.toml"), {
            let text = read(&root.join("crates/damm-registry/Cargo.toml"))?;
            let text = insert_sorted(
                &text,
                |l| l.contains("= [\"dep:damm-adapter-"),
                &format!("{} = [\"dep:{}\"]", n.name, n.krate),
            )?;
            insert_sorted(
                &text,
                |l| l.starts_with("damm-adapter-"),
                &format!("{} = {{ workspace = true, optional = true }}", n.krate),
            )?
        }),
        (
            root.join("crates/damm-registry/src/lib.rs"),
            insert_sorted(
                &read(&root.join("crates/damm-registry/src/lib.rs"))?,
                |l| l.trim_start().starts_with('"') && l.contains("=> damm_adapter_"),
                &format!("    \"{}\" => {},", n.name, n.snake),
            )?,
        ),
        (
            root.join("crates/damm-orchestrator/Cargo.toml"),
            insert_sorted(
                &read(&root.join("crates/damm-orchestrator/Cargo.toml"))?,
                |l| l.contains("= [\"damm-registry/"),
                &format!("{} = [\"damm-registry/{}\"]", n.name, n.name),
            )?,
        ),
    ];

    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::create_dir_all(dir.join("tests"))?;
    write(&dir.join("Cargo.toml"), &cargo_toml(&n))?;
    write(&dir.join("src/lib.rs"), &lib_rs(&n))?;
    write(&dir.join("src/config.rs"), &config_rs(&n))?;
    write(&dir.join("src/core.rs"), &core_rs(&n))?;
    write(&dir.join("src/backend.rs"), &backend_rs(&n))?;
    write(&dir.join("README.md"), &readme(&n))?;
    write(&dir.join("tests/conformance.rs"), &conformance_rs(&n))?;
    for (path, text) in edits {
        write(&path, &text)?;
    }
    // Generated text is laid out by rustfmt, so `cargo xtask ci`'s format check passes.
    let status = Command::new(crate::ci::cargo())
        .args(["fmt", "-p", &n.krate])
        .current_dir(root)
        .status()
        .context("running cargo fmt on the new crate")?;
    ensure!(status.success(), "cargo fmt -p {} failed", n.krate);
    Ok(())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Adds `line` to the one contiguous run of lines matching `member`, keeping it sorted.
fn insert_sorted(text: &str, member: impl Fn(&str) -> bool, line: &str) -> anyhow::Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(start) = lines.iter().position(|l| member(l)) else {
        bail!("no line like `{line}` to insert next to");
    };
    let end = start + lines[start..].iter().take_while(|l| member(l)).count();
    ensure!(
        !lines[end..].iter().any(|l| member(l)),
        "lines like `{line}` must form one block"
    );
    ensure!(
        !lines[start..end].contains(&line),
        "`{line}` is already there"
    );
    let mut block: Vec<&str> = lines[start..end].to_vec();
    block.push(line);
    block.sort_unstable();
    let mut out: Vec<&str> = lines[..start].to_vec();
    out.extend(block);
    out.extend(&lines[end..]);
    Ok(out.join("\n") + "\n")
}

fn cargo_toml(n: &Names) -> String {
    format!(
        r#"[package]
name = "{krate}"
description = "DAMM adapter for {name} ({caps})."
version.workspace = true
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish.workspace = true

[dependencies]
chrono.workspace = true
damm-provider = {{ workspace = true, features = ["http"] }}
serde.workspace = true

[dev-dependencies]
damm-provider = {{ workspace = true, features = ["http", "testkit"] }}
tokio.workspace = true

[lints]
workspace = true
"#,
        krate = n.krate,
        name = n.name,
        caps = n.caps.join(", "),
    )
}

fn lib_rs(n: &Names) -> String {
    format!(
        r#"//! DAMM adapter for {name}: {caps}.
//!
//! Generated by `cargo xtask new-adapter`; see README.md for what is left to implement.

mod backend;
mod config;
mod core;

pub use backend::{{{camel}, CAPABILITIES}};
pub use config::{camel}Config;

damm_provider::adapter!("{name}", "{name} ({caps})", CAPABILITIES, {camel}::from_config);
"#,
        name = n.name,
        caps = n.caps.join(", "),
        camel = n.camel,
    )
}

fn config_rs(n: &Names) -> String {
    format!(
        r#"//! Settings: section `[providers.{name}]`, or `DAMM_{env}_<FIELD>` in the environment
//! (`DAMM_{env}_<FIELD>_FILE` reads the value from a file).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use damm_provider::SecretString;
use damm_provider::tables::{{region_table, string_table}};
use serde::Deserialize;

/// The built-in region table: DAMM region → the provider's region (fill in).
pub(crate) const DEFAULT_REGIONS: &[(&str, &str)] = &[];

/// The adapter's settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct {camel}Config {{
    /// Base URL of the provider's API (point it at the simulator in tests).
    pub api_url: String,
    /// API token (`DAMM_{env}_TOKEN` or `DAMM_{env}_TOKEN_FILE`).
    #[serde(default)]
    pub token: Option<SecretString>,
    /// DAMM region → the provider's region, over [`DEFAULT_REGIONS`]; in the environment
    /// `eu-central=fra1,uk=lon1`.
    #[serde(default, deserialize_with = "string_table")]
    pub regions: BTreeMap<String, String>,
    /// Timeout of each HTTP request, in milliseconds.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
}}

fn default_request_timeout_ms() -> u64 {{
    10_000
}}

impl {camel}Config {{
    /// The region table in force.
    pub fn region_table(&self) -> BTreeMap<String, String> {{
        region_table(DEFAULT_REGIONS, &self.regions)
    }}

    /// The per-request timeout.
    pub fn request_timeout(&self) -> Duration {{
        Duration::from_millis(self.request_timeout_ms.max(1))
    }}
}}

impl fmt::Debug for {camel}Config {{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {{
        f.debug_struct("{camel}Config")
            .field("api_url", &self.api_url)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("regions", &self.regions)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }}
}}
"#,
        name = n.name,
        env = n.env,
        camel = n.camel,
    )
}

fn core_rs(n: &Names) -> String {
    format!(
        r#"//! The API client (the shared [`HttpClient`]: auth, rate limits, retries, pagination,
//! request ids) and the one place API failures become [`Error`]s: [`parse_error`].

use damm_provider::http::{{Failure, HttpClient}};
use damm_provider::retry::RateLimit;
use damm_provider::{{Error, ErrorKind, Result}};

use crate::config::{camel}Config;

/// The client of the API at `settings.api_url`, acting as `provider`.
pub(crate) fn client(provider: &str, settings: &{camel}Config) -> Result<HttpClient> {{
    let mut builder = HttpClient::builder(provider, &settings.api_url, parse_error)
        .user_agent(concat!("{krate}/", env!("CARGO_PKG_VERSION")))
        .timeout(settings.request_timeout())
        // The provider's documented rate limit: one bucket per documented limit.
        .limits(vec![RateLimit::per_second(10)]);
    if let Some(token) = &settings.token {{
        builder = builder.bearer(token.clone());
    }}
    builder.build()
}}

/// Maps a failed API answer to the shared error type: the kind from the HTTP status,
/// refined from the provider's error body once its shape is known.
pub(crate) fn parse_error(failure: &Failure<'_>) -> Error {{
    let kind = ErrorKind::from_http_status(failure.status, failure.retry_after_seconds());
    failure.error(kind).with_message(failure.status_text())
}}

#[cfg(test)]
mod tests {{
    use std::time::Duration;

    use damm_provider::Operation;
    use damm_provider::http::{{header_map, parse_answer}};

    use super::*;

    #[test]
    fn statuses_map_to_kinds() {{
        let none = header_map(&[]);
        let err = parse_answer(parse_error, "{name}", Operation::ListNodes, 404, &none, b"{{}}");
        assert_eq!(err.kind(), ErrorKind::NotFound);
        let wait = header_map(&[("retry-after", b"2")]);
        let err = parse_answer(parse_error, "{name}", Operation::ListNodes, 429, &wait, b"");
        assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
        assert!(err.is_temporary());
    }}
}}
"#,
        name = n.name,
        krate = n.krate,
        camel = n.camel,
    )
}

fn backend_rs(n: &Names) -> String {
    let mut uses: Vec<&str> = vec![
        "Capabilities",
        "Capability",
        "Error",
        "ErrorKind",
        "FleetId",
        "HealthSignal",
        "HealthStatus",
        "Node",
        "NodeFilter",
        "Operation",
        "Provider",
        "Result",
        "Target",
        "async_trait",
    ];
    for cap in &n.caps {
        uses.extend(types_of(cap));
    }
    uses.sort_unstable();
    uses.dedup();
    let caps_const: Vec<String> = n
        .caps
        .iter()
        .map(|c| {
            let (_, t, _) = CAPABILITIES.iter().find(|(k, _, _)| k == c).expect("known");
            format!("Capability::{t}")
        })
        .collect();
    // `id`, `region` and one accessor per capability come from `provider_methods!`.
    let mut accessors = String::from("id, region");
    let mut impls = String::new();
    for cap in &n.caps {
        let (_, trait_name, methods) = CAPABILITIES
            .iter()
            .find(|(k, _, _)| k == cap)
            .expect("known");
        let _ = write!(accessors, ", {cap}");
        let _ = write!(
            impls,
            "\n#[async_trait]\nimpl {trait_name} for {} {{",
            n.camel
        );
        for (method, params, ret, op) in methods.iter() {
            let params = if params.is_empty() {
                String::new()
            } else {
                format!(", _{params}")
            };
            let _ = write!(
                impls,
                "\n    async fn {method}(&self{params}) -> Result<{ret}> {{\n        Err(self.not_yet(Operation::{op}))\n    }}\n"
            );
        }
        impls.push_str("}\n");
    }
    format!(
        r#"//! The [`Provider`] implementation and the capability declaration.
//!
//! Each method below still answers `unsupported`: implement it against the provider's
//! API (see README.md) with `self.api` (`json`, `empty`, `pages`), then run the
//! conformance test against the simulator.

use std::collections::BTreeMap;

use chrono::Utc;
use damm_provider::config::AdapterConfig;
use damm_provider::http::{{HttpClient, Request}};
use damm_provider::{{{uses}}};

use crate::config::{camel}Config;

/// What this adapter hands out; the conformance suite checks the accessors agree.
pub const CAPABILITIES: Capabilities = Capabilities::of(&[{caps_const}]);

/// The {name} provider.
#[derive(Debug)]
pub struct {camel} {{
    id: String,
    fleet: FleetId,
    regions: BTreeMap<String, String>,
    api: HttpClient,
}}

impl {camel} {{
    /// Builds the adapter from its settings.
    pub fn from_config(config: &AdapterConfig) -> Result<Self> {{
        let id = config.instance().to_owned();
        let settings: {camel}Config = config.load("{name}").map_err(|e| e.into_provider_error(&id))?;
        Ok({camel} {{
            fleet: config.fleet().clone(),
            regions: settings.region_table(),
            api: crate::core::client(&id, &settings)?,
            id,
        }})
    }}

    /// The fleet whose resources this instance manages.
    pub fn fleet(&self) -> &FleetId {{
        &self.fleet
    }}

    fn not_yet(&self, operation: Operation) -> Error {{
        Error::new(ErrorKind::Unsupported, &self.id, operation)
            .with_message("not implemented yet in adapters/{name}/src/backend.rs")
    }}
}}

#[async_trait]
impl Provider for {camel} {{
    damm_provider::provider_methods!({accessors});

    async fn list_nodes(&self, _filter: &NodeFilter) -> Result<Vec<Node>> {{
        Err(self.not_yet(Operation::ListNodes))
    }}

    async fn probe_health(&self, target: &Target) -> Result<HealthSignal> {{
        if *target != Target::Api {{
            return Err(self.not_yet(Operation::ProbeHealth));
        }}
        let started = std::time::Instant::now();
        match self.api.empty(Operation::ProbeHealth, &Request::get("/")).await {{
            Ok(()) => {{}}
            // The API answered: a 404 or 400 at its root still shows that it is up.
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput) => {{}}
            Err(e) => return Err(e),
        }}
        Ok(HealthSignal {{
            target: Target::Api,
            status: HealthStatus::Healthy,
            rtt: Some(started.elapsed()),
            observed_at: Utc::now(),
            detail: "API answered".to_owned(),
        }})
    }}

    // `get_metrics` defaults to a probe's round trip; override it if the API has metrics.
}}
{impls}"#,
        uses = uses.join(", "),
        camel = n.camel,
        name = n.name,
        caps_const = caps_const.join(", "),
    )
}

fn readme(n: &Names) -> String {
    let mut checklist = String::new();
    for cap in &n.caps {
        let (_, _, methods) = CAPABILITIES
            .iter()
            .find(|(k, _, _)| k == cap)
            .expect("known");
        for (method, _, _, _) in methods.iter() {
            let _ = writeln!(checklist, "- [ ] `{cap}`: `{method}`");
        }
    }
    format!(
        r#"# damm-adapter-{name}

DAMM adapter for {name}. Capabilities: {caps}.

## Capability checklist

- [ ] inventory: `list_nodes` (fleet-labelled resources only)
- [x] health: `probe_health(Target::Api)`
- [ ] health: `probe_health` of each resource, `get_metrics`
{checklist}
## Configuration

Section `[providers.{name}]` of the fleet config, or environment variables `DAMM_{env}_<FIELD>`
(`DAMM_{env}_<FIELD>_FILE` reads the value from a file).

| key | meaning |
|---|---|
| `api_url` | base URL of the API (tests point it at the simulator on 127.0.0.1) |
| `token` | API token; never logged |
| `regions` | table DAMM region → provider region (over the built-in `DEFAULT_REGIONS`) |
| `request_timeout_ms` | timeout of each HTTP request (default 10000) |

## Regions

| DAMM region | {name} region |
|---|---|
| (fill in) | |

## Tests

`tests/conformance.rs` runs the shared conformance suite against `DAMM_{env}_API_URL`.
"#,
        name = n.name,
        caps = n.caps.join(", "),
        env = n.env,
    )
}

fn conformance_rs(n: &Names) -> String {
    format!(
        r#"//! The shared conformance suite against a live endpoint.

use {snake}::{{{camel}, CAPABILITIES}};
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::{{self, Fixture}};
use damm_provider::FleetId;

#[tokio::test]
#[ignore = "needs an endpoint: set DAMM_{env}_API_URL (and DAMM_{env}_REGIONS) to a simulator or emulator"]
async fn passes_the_conformance_suite() {{
    let fleet = FleetId::new("conformance").unwrap();
    let config = AdapterConfig::new(fleet.clone(), "{name}");
    let provider = {camel}::from_config(&config).expect("configured from DAMM_{env}_*");
    let fixture = Fixture::new(CAPABILITIES, fleet, "eu-central".parse().unwrap());
    testkit::run(&provider, &fixture).await.assert_passed();
}}
"#,
        snake = n.snake,
        camel = n.camel,
        env = n.env,
        name = n.name,
    )
}

/// Generates `demo-cloud` in a copy of the workspace, builds it, and checks that
/// `damm adapters --json` lists it with its capabilities and the drift test passes.
pub(crate) fn smoke(root: &Path) -> anyhow::Result<()> {
    let base = root.join("target/xtask-smoke");
    let copy = base.join("workspace");
    if copy.exists() {
        std::fs::remove_dir_all(&copy)?;
    }
    copy_tracked(root, &copy)?;
    println!(
        "==> new-adapter smoke: cargo xtask new-adapter demo-cloud --capabilities compute,ingress"
    );
    new_adapter(
        &copy,
        "demo-cloud",
        &["compute".to_owned(), "ingress".to_owned()],
    )?;
    let target = base.join("target");
    let env = [("CARGO_TARGET_DIR", target.as_path())];
    crate::ci::cargo_in(
        &copy,
        "smoke: format",
        &["fmt", "--all", "--", "--check"],
        &env,
    )?;
    crate::ci::cargo_in(
        &copy,
        "smoke: build",
        &["build", "--features", "demo-cloud"],
        &env,
    )?;
    crate::ci::cargo_in(
        &copy,
        "smoke: clippy on the generated crate",
        &[
            "clippy",
            "-p",
            "damm-adapter-demo-cloud",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        &env,
    )?;
    crate::ci::cargo_in(
        &copy,
        "smoke: registry drift",
        &["test", "-p", "damm-registry", "--test", "drift"],
        &env,
    )?;
    let output = Command::new(crate::ci::cargo())
        .args([
            "run",
            "-q",
            "--features",
            "demo-cloud",
            "--",
            "adapters",
            "--json",
        ])
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(&copy)
        .output()?;
    ensure!(
        output.status.success(),
        "damm adapters failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let entry = listing["adapters"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["name"] == "demo-cloud"))
        .context("damm adapters does not list demo-cloud")?;
    ensure!(
        entry["compiled"] == true,
        "demo-cloud is not compiled in: {entry}"
    );
    ensure!(
        entry["capabilities"] == serde_json::json!(["compute", "ingress"]),
        "demo-cloud lists capabilities {}",
        entry["capabilities"]
    );
    println!("<== new-adapter smoke: `damm adapters` lists demo-cloud [compute, ingress]");
    Ok(())
}

/// Copies the files git tracks (plus untracked, not ignored ones) into `to`.
fn copy_tracked(root: &Path, to: &Path) -> anyhow::Result<()> {
    let output = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .context("git ls-files")?;
    ensure!(output.status.success(), "git ls-files failed");
    for name in output.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let from = root.join(&rel);
        if !from.is_file() {
            continue;
        }
        let dest = to.join(&rel);
        std::fs::create_dir_all(dest.parent().expect("has parent"))?;
        std::fs::copy(&from, &dest).with_context(|| format!("copying {}", rel.display()))?;
    }
    Ok(())
}
