//! The `damm` verbs of the data plane: `enroll`, `clients`, `unenroll` (orchestrator side) and
//! `agent`, `client` (gateway and client side).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};
use damm_agent::agent::GatewayInterfaces;
use damm_fleet::Policy;
use damm_orchestrator::dataplane::{self, Backend, CatalogSource};
use damm_orchestrator::enroll::{self, EnrollmentFile};
use damm_orchestrator::state::{FileStore, StateStore};
use damm_provider::Region;

/// `damm enroll`.
#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// The client's region.
    #[arg(long)]
    region: String,
    /// Policy file (default: the embedded policy/default.toml).
    #[arg(long, env = "DAMM_POLICY")]
    policy: Option<PathBuf>,
    /// State file (its lock is taken: stop `damm serve` first).
    #[arg(long, env = "DAMM_STATE", default_value = "damm-state.json")]
    state: PathBuf,
    /// Key directory from `damm keygen` (verifies the catalog).
    #[arg(long, env = "DAMM_KEYS", default_value = "keys")]
    keys: PathBuf,
    /// The published catalog (the sink `damm serve` writes).
    #[arg(long, env = "DAMM_CATALOG", default_value = "catalog.json")]
    catalog: PathBuf,
    /// Write the enrollment bundle (private key, report token, .conf; mode 0600) to FILE and
    /// print no secret.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the enrollment bundle as JSON.
    #[arg(long)]
    json: bool,
}

/// `damm clients`.
#[derive(Debug, Args)]
pub(crate) struct ClientsArgs {
    /// State file.
    #[arg(long, env = "DAMM_STATE", default_value = "damm-state.json")]
    state: PathBuf,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

/// `damm unenroll`.
#[derive(Debug, Args)]
pub(crate) struct UnenrollArgs {
    /// The client id.
    id: String,
    /// State file (its lock is taken: stop `damm serve` first).
    #[arg(long, env = "DAMM_STATE", default_value = "damm-state.json")]
    state: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    /// The `wg` tool.
    Wg,
    /// wireguard-control, userspace UAPI socket.
    #[cfg(feature = "wireguard-control")]
    ControlUserspace,
    /// wireguard-control, kernel netlink.
    #[cfg(feature = "wireguard-control")]
    ControlKernel,
}

impl From<BackendArg> for Backend {
    fn from(b: BackendArg) -> Self {
        match b {
            BackendArg::Wg => Backend::WgTool,
            #[cfg(feature = "wireguard-control")]
            BackendArg::ControlUserspace => Backend::ControlUserspace,
            #[cfg(feature = "wireguard-control")]
            BackendArg::ControlKernel => Backend::ControlKernel,
        }
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    text.parse::<damm_fleet::Span>()
        .map(|s| s.0)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            if d.is_zero() {
                Err("must be longer than zero".into())
            } else {
                Ok(d)
            }
        })
}

/// `damm agent`.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    /// This gateway's id (its node key, as in the catalog and `damm status`).
    #[arg(long, env = "DAMM_GATEWAY")]
    gateway: String,
    /// The orchestrator's base URL.
    #[arg(long, env = "DAMM_ORCHESTRATOR")]
    orchestrator: String,
    /// The trusted catalog key (minisign format, keys/catalog.pub).
    #[arg(long, env = "DAMM_TRUSTED_KEY")]
    trusted_key: PathBuf,
    /// A file holding this gateway's config credential (installed by its bootstrap; for a
    /// static host, `damm gateway-token`).
    #[arg(long, env = "DAMM_GATEWAY_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// This gateway's WireGuard private key (installed by its bootstrap).
    #[arg(long, default_value = "/etc/damm/wg.key")]
    private_key: PathBuf,
    /// T2's certificate chain (PEM), for a config that asks for T2 (a direct TLS front):
    /// a certificate for `*.<t2_domain>` from the operator's CA or ACME client.
    #[arg(long, value_name = "PEM_FILE", default_value = "/etc/damm/t2.crt")]
    t2_certificate: PathBuf,
    /// T2's private key (PEM).
    #[arg(long, value_name = "PEM_FILE", default_value = "/etc/damm/t2.key")]
    t2_key: PathBuf,
    /// The main interface (client-facing on an ingress, backbone end on an egress).
    #[arg(long, default_value = "wg0")]
    interface: String,
    /// The ingress's backbone interface.
    #[arg(long, default_value = "wg1")]
    backbone_interface: String,
    /// How WireGuard is driven.
    #[arg(long, value_enum, default_value = "wg")]
    backend: BackendArg,
    /// How often the config is pulled (`10s`, `1m`).
    #[arg(long, default_value = "10s", value_parser = duration)]
    interval: Duration,
}

/// `damm client`.
#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    /// The enrollment bundle from `damm enroll --out`.
    #[arg(long)]
    enrollment: PathBuf,
    /// The catalog: a file (with FILE.minisig beside it) or an http(s) URL (with URL.minisig),
    /// e.g. http://ORCHESTRATOR/v1/catalog.json.
    #[arg(long, value_name = "URL_OR_FILE")]
    catalog: String,
    /// The trusted catalog key (minisign format).
    #[arg(long)]
    trusted_key: PathBuf,
    /// The orchestrator's base URL, for reports.
    #[arg(long, env = "DAMM_ORCHESTRATOR")]
    orchestrator: String,
    /// The client's WireGuard interface (created beforehand, e.g. `ip link add damm0 type
    /// wireguard`).
    #[arg(long, default_value = "damm0")]
    interface: String,
    /// A prefix to route into the tunnel (repeatable), e.g. 0.0.0.0/1 and 128.0.0.0/1.
    #[arg(long = "route")]
    routes: Vec<String>,
    /// How WireGuard is driven.
    #[arg(long, value_enum, default_value = "wg")]
    backend: BackendArg,
    /// How often the peer is sampled.
    #[arg(long, default_value = "500ms", value_parser = duration)]
    poll: Duration,
    /// How often the catalog is fetched again.
    #[arg(long, default_value = "60s", value_parser = duration)]
    refresh: Duration,
    /// Where the last accepted catalog version is kept (default: ENROLLMENT.catalog-version).
    #[arg(long)]
    version_file: Option<PathBuf>,
    /// Where the client remembers which transports worked on which network, so that the
    /// next connect on a network that blocks UDP starts with T3 (default:
    /// ENROLLMENT.networks).
    #[arg(long, value_name = "FILE")]
    networks_file: Option<PathBuf>,
    /// CA certificates (PEM) that T3 fronts are checked against instead of the public web's
    /// roots: a private or test CA.
    #[arg(long, value_name = "PEM_FILE")]
    transport_ca: Option<PathBuf>,
    /// Dial ADDR:PORT for the T3 front HOST instead of asking DNS (repeatable), as curl's
    /// --resolve: HOST=ADDR:PORT.
    #[arg(long = "front-address", value_name = "HOST=ADDR:PORT", value_parser = front_address)]
    front_addresses: Vec<(String, std::net::SocketAddr)>,
}

fn front_address(text: &str) -> Result<(String, std::net::SocketAddr), String> {
    let (host, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected HOST=ADDR:PORT"))?;
    if host.is_empty() {
        return Err(format!(
            "`{text}`: the front's HOST is missing (HOST=ADDR:PORT)"
        ));
    }
    let addr = addr
        .parse()
        .map_err(|_| format!("`{addr}`: expected ADDR:PORT"))?;
    Ok((host.to_owned(), addr))
}

fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    match path {
        Some(path) => Ok(Policy::load(path)?),
        None => Ok(Policy::default_policy()),
    }
}

pub(crate) fn enroll(args: &EnrollArgs) -> anyhow::Result<ExitCode> {
    let policy = load_policy(args.policy.as_deref())?;
    let region = Region::new(args.region.as_str()).context("--region")?;
    let catalog = damm_orchestrator::publish::verify_file(
        &args.catalog,
        None,
        &args.keys.join("catalog.pub"),
        None,
        chrono::Utc::now(),
    )
    .context("the published catalog (run `damm serve` or `damm apply` with --keys first)")?;
    let mut store = FileStore::open(&args.state)?;
    let Some(mut state) = store.load()? else {
        bail!(
            "{}: no state yet (run `damm apply` or `damm serve` first)",
            args.state.display()
        );
    };
    if state.fleet != policy.fleet.id {
        bail!(
            "{} holds fleet `{}`, but the policy's [fleet] id is `{}`",
            args.state.display(),
            state.fleet,
            policy.fleet.id
        );
    }
    let enrolled = enroll::enroll(&mut state, &policy, &region, chrono::Utc::now())?;
    // Everything that can fail is done before the state is written.
    let bundle = EnrollmentFile::new(&enrolled, &policy, &catalog)?;
    let bundle_json = serde_json::to_string_pretty(&bundle)? + "\n";
    if let Some(out) = &args.out {
        damm_orchestrator::publish::write_secret(out, &bundle_json)?;
    }
    if let Err(e) = store.save(&mut state) {
        if let Some(out) = &args.out {
            let _ = std::fs::remove_file(out);
        }
        return Err(e);
    }
    let record = &enrolled.record;
    match (&args.out, args.json) {
        (Some(out), _) => println!(
            "enrolled {} in {} as {}/32 (best path {}); bundle with the key, the report token and the .conf: {}",
            record.id,
            record.region,
            record.address,
            bundle.path_id,
            out.display()
        ),
        (None, true) => print!("{bundle_json}"),
        (None, false) => {
            print!("{}", bundle.wg_quick);
            println!();
            println!("# client id: {}", record.id);
            println!("# report token (shown once, not stored): {}", bundle.token);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn clients(args: &ClientsArgs) -> anyhow::Result<ExitCode> {
    let Some(state) = FileStore::read_only(&args.state).load()? else {
        bail!("{}: no state yet", args.state.display());
    };
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "clients": state.clients }))?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:18}  {:14}  {:16}  {:44}  ENROLLED",
        "CLIENT", "REGION", "ADDRESS", "PUBLIC KEY"
    );
    for c in state.clients.values() {
        println!(
            "{:18}  {:14}  {:16}  {:44}  {}",
            c.id,
            c.region.as_str(),
            c.address.to_string(),
            c.public_key.to_string(),
            c.enrolled_at.to_rfc3339()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn unenroll(args: &UnenrollArgs) -> anyhow::Result<ExitCode> {
    let mut store = FileStore::open(&args.state)?;
    let Some(mut state) = store.load()? else {
        bail!("{}: no state yet", args.state.display());
    };
    let record = enroll::unenroll(&mut state, &args.id)?;
    store.save(&mut state)?;
    println!(
        "unenrolled {} ({}); gateways drop its peer with their next config",
        record.id, record.address
    );
    Ok(ExitCode::SUCCESS)
}

/// A stop switch flipped by SIGTERM or Ctrl-C.
fn stop_on_signal() -> anyhow::Result<tokio::sync::watch::Receiver<bool>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        let _ = tx.send(true);
    });
    Ok(rx)
}

pub(crate) async fn agent(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let options = dataplane::GatewayOptions {
        gateway: args.gateway,
        orchestrator: args.orchestrator,
        trusted: dataplane::trusted_key(&args.trusted_key)?,
        token: args
            .token_file
            .as_deref()
            .map(dataplane::secret_file)
            .transpose()?,
        private_key_file: args.private_key,
        t2_certificate: Some((args.t2_certificate, args.t2_key)),
        interfaces: GatewayInterfaces {
            main: args.interface,
            backbone: Some(args.backbone_interface),
        },
        backend: args.backend.into(),
        interval: args.interval,
    };
    dataplane::run_gateway(options, stop_on_signal()?).await?;
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn client(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let version_file = args
        .version_file
        .unwrap_or_else(|| PathBuf::from(format!("{}.catalog-version", args.enrollment.display())));
    let networks_file = args
        .networks_file
        .unwrap_or_else(|| PathBuf::from(format!("{}.networks", args.enrollment.display())));
    let options = dataplane::ClientOptions {
        networks_file,
        enrollment: args.enrollment,
        catalog: CatalogSource::parse(&args.catalog),
        trusted: dataplane::trusted_key(&args.trusted_key)?,
        orchestrator: args.orchestrator,
        interface: args.interface,
        routes: args.routes,
        backend: args.backend.into(),
        poll: args.poll,
        refresh: args.refresh,
        version_file,
        transport_ca: args.transport_ca,
        front_addresses: args.front_addresses,
    };
    dataplane::run_client(options, stop_on_signal()?).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::front_address;

    #[test]
    fn front_addresses_are_parsed_or_refused_with_the_text() {
        let (host, addr) = front_address("front.example=192.0.2.20:443").unwrap();
        assert_eq!(
            (host.as_str(), addr.to_string().as_str()),
            ("front.example", "192.0.2.20:443")
        );
        for bad in [
            "front.example",
            "=192.0.2.20:443",
            "front.example=192.0.2.20",
            "h=x:1",
        ] {
            let e = front_address(bad).unwrap_err();
            assert!(e.contains('`'), "{bad}: {e}");
        }
    }
}
