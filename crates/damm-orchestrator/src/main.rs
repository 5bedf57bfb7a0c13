//! `damm`: the DAMM command-line tool.

mod dataplane_cmd;

use std::io::{BufRead as _, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};
use damm_fleet::{Mode, Policy};
use damm_orchestrator::engine::{Engine, Options, wall_clock};
use damm_orchestrator::report;
use damm_orchestrator::serve::{self, Shared, Stop};
use damm_orchestrator::state::{FileStore, StateStore};
use serde::Serialize;

/// DAMM: a censorship-resistant WireGuard fleet stitched from many providers.
#[derive(Debug, Parser)]
#[command(name = "damm", version, about)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// `damm serve --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Compute and show plans; change nothing.
    Plan,
    /// Apply plans through the adapters.
    Apply,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Where the policy, the state and the adapters' settings are.
#[derive(Debug, Args)]
struct Files {
    /// Policy file (default: the embedded policy/default.toml).
    #[arg(long, env = "DAMM_POLICY")]
    policy: Option<PathBuf>,
    /// State file.
    #[arg(long, env = "DAMM_STATE", default_value = "damm-state.json")]
    state: PathBuf,
    /// Adapters' settings (TOML, one [PROVIDER] section each); secrets come from the
    /// environment (`DAMM_<ADAPTER>_TOKEN` or `DAMM_<ADAPTER>_TOKEN_FILE`).
    #[arg(long, env = "DAMM_CONFIG")]
    config: Option<PathBuf>,
    /// Key directory from `damm keygen`; with it, every tick publishes the signed catalog.
    #[arg(long, env = "DAMM_KEYS")]
    keys: Option<PathBuf>,
    /// The catalog sink: the catalog file (its signature is written beside it, `.minisig`).
    #[arg(long, env = "DAMM_CATALOG", default_value = "catalog.json")]
    catalog: PathBuf,
    /// Proven failovers (written by `cargo xtask scenario provider-dark`) behind the
    /// catalog's `validated_for` (default: validated.json beside the state file).
    #[arg(long, env = "DAMM_VALIDATED")]
    validated: Option<PathBuf>,
    /// The orchestrator's URL as new gateways reach it (written into their bootstrap).
    #[arg(long, env = "DAMM_PUBLIC_URL", value_name = "URL")]
    public_url: Option<String>,
    /// Where new gateways download the `damm` binary (http(s); pinned by --agent-sha256).
    #[arg(long, env = "DAMM_AGENT_URL", value_name = "URL")]
    agent_url: Option<String>,
    /// The SHA-256 of the binary at --agent-url (`sha256sum` of the release build).
    #[arg(long, env = "DAMM_AGENT_SHA256", value_name = "HEX")]
    agent_sha256: Option<String>,
}

impl Files {
    /// The gateway bootstrap these settings ask for: all three settings and the keys, or
    /// none of them (then `None`, and new cloud gateways get only their WireGuard key).
    fn bootstrap(
        &self,
        keys: Option<&damm_orchestrator::publish::Keys>,
    ) -> anyhow::Result<Option<damm_orchestrator::bootstrap::Bootstrap>> {
        let (url, agent, sha) = match (&self.public_url, &self.agent_url, &self.agent_sha256) {
            (None, None, None) => return Ok(None),
            (Some(url), Some(agent), Some(sha)) => (url, agent, sha),
            _ => anyhow::bail!(
                "the gateway bootstrap needs all of --public-url, --agent-url and --agent-sha256"
            ),
        };
        let Some(keys) = keys else {
            anyhow::bail!(
                "the gateway bootstrap (--public-url) needs --keys: gateways verify their \
                 config against the catalog key"
            );
        };
        let trusted = keys.signing.public_key().to_minisign();
        Ok(Some(damm_orchestrator::bootstrap::Bootstrap::new(
            url, agent, sha, &trusted,
        )?))
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the adapters this build knows and their capabilities.
    Adapters {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the orchestrator on the built-in provider simulator (loopback, no credentials):
    /// from an empty fleet to the default policy with Cloudflare fronts, then one compute
    /// provider goes dark, then the CDN does.
    Demo {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show what one tick would change. Mutates nothing, not even the state file.
    Plan {
        #[command(flatten)]
        files: Files,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run one tick in apply mode.
    Apply {
        #[command(flatten)]
        files: Files,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Run the tick loop as a service, with /healthz, /metrics, /v1/state and /v1/plan.
    Serve {
        #[command(flatten)]
        files: Files,
        /// HTTP listen address.
        #[arg(long, env = "DAMM_LISTEN", default_value = "127.0.0.1:9477")]
        listen: SocketAddr,
        /// Plan or apply, overriding the policy's `mode`. Without a policy file the service
        /// only plans unless this says `apply`: real servers are never created by default.
        #[arg(long, env = "DAMM_MODE", value_enum)]
        mode: Option<ModeArg>,
    },
    /// Show the fleet from the state file.
    Status {
        /// State file.
        #[arg(long, env = "DAMM_STATE", default_value = "damm-state.json")]
        state: PathBuf,
        /// Policy file, for the capacity line (default: the embedded default).
        #[arg(long, env = "DAMM_POLICY")]
        policy: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// What if a provider went dark now: alternate paths, users failing over without
    /// re-enrollment, minutes until capacity is refilled, capacity at 5 minutes.
    Whatif {
        /// The provider that goes dark: a compute, `[fronts]` or `[overlay]` provider of the
        /// policy, or one the state or the catalog still names.
        #[arg(long = "provider-down", value_name = "NAME")]
        provider_down: String,
        /// State file.
        #[arg(long, env = "DAMM_STATE", default_value = "damm-state.json")]
        state: PathBuf,
        /// Policy file (default: the embedded default).
        #[arg(long, env = "DAMM_POLICY")]
        policy: Option<PathBuf>,
        /// The published catalog (without it, or when it is missing, the paths are composed
        /// from state as the orchestrator would publish them).
        #[arg(long, env = "DAMM_CATALOG", default_value = "catalog.json")]
        catalog: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Policy tools.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Create the catalog signing key and the gateway key seed (files mode 0600).
    Keygen {
        /// Directory for catalog.key, catalog.pub and gateway.seed.
        #[arg(long, env = "DAMM_KEYS", default_value = "keys")]
        dir: PathBuf,
    },
    /// Print the credential with which gateway GATEWAY fetches its own config (for a static
    /// host's /etc/damm/gateway.token; cloud gateways get theirs from the bootstrap).
    GatewayToken {
        /// The gateway's id (its node key, as in `damm status`).
        gateway: String,
        /// Directory from `damm keygen`.
        #[arg(long, env = "DAMM_KEYS", default_value = "keys")]
        keys: PathBuf,
    },
    /// Enroll a client: a WireGuard key pair, a tunnel address and a report token; prints a
    /// wg-quick .conf for the region's best path. Takes the state lock (stop `damm serve`).
    Enroll(dataplane_cmd::EnrollArgs),
    /// List the enrolled clients.
    Clients(dataplane_cmd::ClientsArgs),
    /// Remove an enrolled client; gateways drop its peer with their next config.
    Unenroll(dataplane_cmd::UnenrollArgs),
    /// Gateway side: pull this gateway's signed config from the orchestrator, verify it and
    /// apply it to WireGuard, in a loop.
    Agent(dataplane_cmd::AgentArgs),
    /// Client side: keep a verified catalog, connect through the best path, fail over when it
    /// goes quiet (no re-enrollment), report path quality to the orchestrator.
    Client(dataplane_cmd::ClientArgs),
    /// Sign, verify and show catalogs.
    Catalog {
        #[command(subcommand)]
        command: CatalogCommand,
    },
}

#[derive(Debug, Subcommand)]
enum CatalogCommand {
    /// Sign a catalog file: writes FILE.minisig (minisign's format).
    Sign {
        /// The catalog.
        file: PathBuf,
        /// Key directory from `damm keygen`.
        #[arg(long, env = "DAMM_KEYS", default_value = "keys")]
        keys: PathBuf,
    },
    /// Verify a catalog: signature, trusted key, expiry and (with --last-version) rollback.
    Verify {
        /// The catalog.
        file: PathBuf,
        /// The trusted public key (minisign format), e.g. keys/catalog.pub.
        #[arg(long = "pub")]
        public_key: PathBuf,
        /// The signature (default: FILE.minisig).
        #[arg(long)]
        signature: Option<PathBuf>,
        /// The last version this client accepted; lower versions are refused.
        #[arg(long)]
        last_version: Option<u64>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a catalog's paths (verified when --pub is given).
    Show {
        /// The catalog.
        file: PathBuf,
        /// The trusted public key; without it the catalog is shown unverified.
        #[arg(long = "pub")]
        public_key: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Validate a policy file; errors name the file, line, column and field.
    Check {
        /// The policy file.
        file: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format, &cli.command);
    let result = match cli.command {
        Command::Adapters { json } => adapters(json),
        Command::Policy {
            command: PolicyCommand::Check { file, json },
        } => policy_check(&file, json),
        Command::Status {
            state,
            policy,
            json,
        } => status(&state, policy.as_deref(), json),
        Command::Keygen { dir } => keygen(&dir),
        Command::GatewayToken { gateway, keys } => gateway_token(&gateway, &keys),
        Command::Whatif {
            provider_down,
            state,
            policy,
            catalog,
            json,
        } => whatif(&provider_down, &state, policy.as_deref(), &catalog, json),
        Command::Catalog { command } => catalog(command),
        Command::Enroll(args) => dataplane_cmd::enroll(&args),
        Command::Clients(args) => dataplane_cmd::clients(&args),
        Command::Unenroll(args) => dataplane_cmd::unenroll(&args),
        command => runtime().and_then(|rt| rt.block_on(run_async(command))),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("damm: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(format: LogFormat, command: &Command) {
    let default = match command {
        Command::Serve { .. } | Command::Agent(_) | Command::Client(_) => "info",
        Command::Demo { .. } => "error",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DAMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

async fn run_async(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Demo { json } => demo(json).await,
        Command::Plan { files, json } => {
            let mut engine = engine(&files, true).await?;
            let report = engine.tick(Mode::Plan, false).await?;
            if json {
                print_json(&report.plan)?;
            } else {
                print!("{}", report::plan_diff(&report.plan));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Apply { files, yes, json } => apply(&files, yes, json).await,
        Command::Serve {
            files,
            listen,
            mode,
        } => serve_cmd(&files, listen, mode).await,
        Command::Agent(args) => dataplane_cmd::agent(args).await,
        Command::Client(args) => dataplane_cmd::client(args).await,
        Command::Adapters { .. }
        | Command::Status { .. }
        | Command::Policy { .. }
        | Command::Keygen { .. }
        | Command::GatewayToken { .. }
        | Command::Whatif { .. }
        | Command::Catalog { .. }
        | Command::Enroll(_)
        | Command::Clients(_)
        | Command::Unenroll(_) => {
            unreachable!("handled without a runtime")
        }
    }
}

#[cfg(feature = "sim")]
async fn demo(json: bool) -> anyhow::Result<ExitCode> {
    damm_orchestrator::demo::run(json).await?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "sim"))]
async fn demo(_json: bool) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this build has no provider simulator; rebuild with `--features sim`")
}

fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    match path {
        Some(path) => Ok(Policy::load(path)?),
        None => Ok(Policy::default_policy()),
    }
}

/// An engine over the policy's providers. `read_only` opens the state without the lock
/// and never writes it.
async fn engine(files: &Files, read_only: bool) -> anyhow::Result<Engine> {
    let policy = load_policy(files.policy.as_deref())?;
    let providers = damm_orchestrator::providers::build(&policy, files.config.as_deref()).await?;
    let store: Box<dyn StateStore> = if read_only {
        Box::new(FileStore::read_only(&files.state))
    } else {
        Box::new(FileStore::open(&files.state)?)
    };
    let mut engine = Engine::new(policy, providers, store, wall_clock(), Options::default())?;
    engine.set_validated(
        files
            .validated
            .clone()
            .unwrap_or_else(|| damm_orchestrator::validated::default_path(&files.state)),
    );
    let keys = match &files.keys {
        Some(dir) => Some(damm_orchestrator::publish::Keys::load(dir)?),
        None => None,
    };
    match files.bootstrap(keys.as_ref())? {
        Some(bootstrap) => engine.set_bootstrap(bootstrap),
        None if keys.is_some() && !read_only => tracing::warn!(
            "no gateway bootstrap (--public-url, --agent-url, --agent-sha256): new cloud \
             gateways get their WireGuard key but must already have the agent on their image"
        ),
        None => {}
    }
    if let Some(keys) = keys {
        engine.set_publisher(
            Arc::new(keys),
            damm_orchestrator::publish::Sink {
                path: files.catalog.clone(),
            },
        );
    }
    Ok(engine)
}

async fn apply(files: &Files, yes: bool, json: bool) -> anyhow::Result<ExitCode> {
    if !yes {
        // Show the plan first, then ask.
        let mut preview = engine(files, true).await?;
        let report = preview.tick(Mode::Plan, false).await?;
        print!("{}", report::plan_diff(&report.plan));
        if report.plan.actions.is_empty() {
            return Ok(ExitCode::SUCCESS);
        }
        eprint!("Apply these changes? Only `yes` is accepted: ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if answer.trim() != "yes" {
            eprintln!("damm: nothing applied");
            return Ok(ExitCode::FAILURE);
        }
    }
    let mut engine = engine(files, false).await?;
    let report = engine.tick(Mode::Apply, true).await?;
    if json {
        print_json(&serde_json::json!({ "plan": report.plan, "summary": report.summary }))?;
    } else {
        if yes {
            print!("{}", report::plan_diff(&report.plan));
        }
        let s = &report.summary;
        println!(
            "Applied {} of {} actions ({} failed); state serial {}.",
            s.applied,
            s.planned,
            s.failed,
            engine.state().serial
        );
    }
    Ok(if report.summary.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn serve_cmd(
    files: &Files,
    listen: SocketAddr,
    mode: Option<ModeArg>,
) -> anyhow::Result<ExitCode> {
    let mut engine = engine(files, false).await?;
    let mode = match (mode, &files.policy) {
        (Some(ModeArg::Plan), _) => Mode::Plan,
        (Some(ModeArg::Apply), _) => Mode::Apply,
        (None, Some(_)) => engine.policy().fleet.mode,
        (None, None) => {
            if engine.policy().fleet.mode == Mode::Apply {
                tracing::warn!(
                    "no policy file: plan mode, nothing is created. Give --policy FILE with \
                     `mode = \"apply\"`, or --mode apply, to change the fleet"
                );
            }
            Mode::Plan
        }
    };
    engine.set_mode(mode);
    let shared: Shared = Shared::default();
    let (addr, server) = serve::http(listen, Arc::clone(&shared)).await?;
    tracing::info!(
        %addr,
        mode = serve::describe_mode(mode),
        tick = %engine.policy().fleet.tick,
        "damm serve: listening"
    );
    let stop = Arc::new(Stop::default());
    let signals = {
        let stop = Arc::clone(&stop);
        async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            tracing::info!("stop requested: finishing the current step");
            stop.request();
            anyhow::Ok(())
        }
    };
    tokio::spawn(signals);
    let server = tokio::spawn(server);
    serve::run_loop(engine, shared, stop).await?;
    server.abort();
    Ok(ExitCode::SUCCESS)
}

fn status(path: &Path, policy: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let policy = load_policy(policy)?;
    let Some(state) = FileStore::read_only(path).load()? else {
        anyhow::bail!(
            "{}: no state yet (run `damm apply` or `damm serve` first)",
            path.display()
        );
    };
    let now = state
        .orchestrator
        .last_tick
        .at
        .unwrap_or_else(chrono::Utc::now);
    let scores = state.scores.snapshot(now, &policy.scoring);
    let rows = report::fleet_rows(&state, &scores);
    if json {
        print_json(&serde_json::json!({
            "fleet": state.fleet,
            "serial": state.serial,
            "lastTick": state.orchestrator.last_tick,
            "dark": scores.dark,
            "alerts": state
                .scores
                .breakers
                .iter()
                .filter_map(|(p, b)| Some((p, b.alert.as_ref()?)))
                .collect::<std::collections::BTreeMap<_, _>>(),
            "nodes": rows,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let t = &state.orchestrator.last_tick;
    println!(
        "fleet {} · state serial {} · tick {} at {}",
        state.fleet,
        state.serial,
        t.number,
        t.at.map_or("-".to_owned(), |a| a.to_rfc3339())
    );
    print!("{}", report::fleet_table(&rows));
    println!("{}", report::capacity_line(&state, &scores, &policy));
    for (p, b) in &state.scores.breakers {
        if b.is_open() {
            println!(
                "provider {p}: DARK (breaker open; last error: {})",
                b.last_error.as_deref().unwrap_or("-")
            );
        }
        if let Some(alert) = &b.alert {
            println!(
                "provider {p}: ALERT {} since {} (not dark; an operator must act): {}",
                alert.kind,
                alert.since.to_rfc3339(),
                alert.error
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn whatif(
    provider: &str,
    path: &Path,
    policy: Option<&Path>,
    catalog: &Path,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use damm_orchestrator::whatif::{CatalogPaths, Users};
    let policy = load_policy(policy)?;
    let Some(state) = FileStore::read_only(path).load()? else {
        anyhow::bail!(
            "{}: no state yet (run `damm apply` or `damm serve` first)",
            path.display()
        );
    };
    let now = chrono::Utc::now();
    let scores = state.scores.snapshot(now, &policy.scoring);
    // The published catalog as clients hold it (unverified here: it is the operator's own
    // sink); when there is none, the paths the orchestrator would publish now.
    let paths = match std::fs::read(catalog) {
        Ok(bytes) => {
            let c = damm_catalog::Catalog::from_json(&bytes)
                .with_context(|| format!("{}: not a valid catalog", catalog.display()))?;
            CatalogPaths::from_catalog(&c, &catalog.display().to_string())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            CatalogPaths::compose(&state, &policy, &scores)
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", catalog.display())),
    };
    damm_orchestrator::whatif::check_provider(&state, &policy, &paths, provider)?;
    let answer = damm_orchestrator::whatif::whatif(
        &state,
        &policy,
        &paths,
        &scores,
        &Users::from_state(&state),
        provider,
        now,
    );
    if json {
        print_json(&answer)?;
    } else {
        print!("{}", damm_orchestrator::whatif::render(&answer));
    }
    Ok(ExitCode::SUCCESS)
}

fn policy_check(file: &Path, json: bool) -> anyhow::Result<ExitCode> {
    match Policy::load(file) {
        Ok(policy) => {
            if json {
                print_json(&serde_json::json!({ "ok": true, "policy": policy }))?;
            } else {
                println!(
                    "{}: ok (fleet {}, {} providers, {} regions, mode {})",
                    file.display(),
                    policy.fleet.id,
                    policy.providers.len(),
                    policy.regions.len(),
                    policy.fleet.mode
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if json {
                print_json(&serde_json::json!({ "ok": false, "error": e.to_string(),
                    "line": e.line, "column": e.column, "field": e.field, "message": e.message }))?;
            } else {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).context("writing JSON")?;
    writeln!(out)?;
    Ok(())
}

#[derive(Debug, Serialize)]
struct AdapterRow {
    name: &'static str,
    compiled: bool,
    capabilities: Option<damm_provider::Capabilities>,
    summary: Option<&'static str>,
}

fn adapters(json: bool) -> anyhow::Result<ExitCode> {
    let compiled = damm_registry::compiled();
    let rows: Vec<AdapterRow> = damm_registry::known()
        .iter()
        .map(|name| {
            let found = compiled.iter().find(|d| d.name == *name);
            AdapterRow {
                name,
                compiled: found.is_some(),
                capabilities: found.map(|d| d.capabilities),
                summary: found.map(|d| d.summary),
            }
        })
        .collect();
    if json {
        print_json(&serde_json::json!({ "adapters": rows }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0).max(7);
    writeln!(out, "{:width$}  {:32}  SUMMARY", "ADAPTER", "CAPABILITIES")?;
    for row in rows.iter().filter(|r| r.compiled) {
        let caps = row.capabilities.map(|c| c.to_string()).unwrap_or_default();
        writeln!(
            out,
            "{:width$}  {caps:32}  {}",
            row.name,
            row.summary.unwrap_or("")
        )?;
    }
    let missing: Vec<_> = rows
        .iter()
        .filter(|r| !r.compiled)
        .map(|r| r.name)
        .collect();
    if !missing.is_empty() {
        writeln!(
            out,
            "\nnot compiled in: {} (rebuild with --features NAME)",
            missing.join(", ")
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(dir: &Path) -> anyhow::Result<ExitCode> {
    let keys = damm_orchestrator::publish::Keys::generate();
    keys.write(dir)?;
    println!(
        "wrote {0}/catalog.key and {0}/gateway.seed (secret, mode 0600) and {0}/catalog.pub; key id {1}",
        dir.display(),
        keys.signing.key_id()
    );
    Ok(ExitCode::SUCCESS)
}

fn gateway_token(gateway: &str, dir: &Path) -> anyhow::Result<ExitCode> {
    use damm_provider::ExposeSecret as _;
    let keys = damm_orchestrator::publish::Keys::load(dir)?;
    println!("{}", keys.gateway_token(gateway).expose_secret());
    Ok(ExitCode::SUCCESS)
}

fn catalog(command: CatalogCommand) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now();
    match command {
        CatalogCommand::Sign { file, keys } => {
            let keys = damm_orchestrator::publish::Keys::load(&keys)?;
            let bytes =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let catalog = damm_catalog::Catalog::from_json(&bytes)
                .with_context(|| format!("{}: not a valid catalog", file.display()))?;
            let signature = damm_catalog::sign(
                &bytes,
                &keys.signing,
                &damm_catalog::catalog_trusted_comment(&catalog),
            );
            let sink = damm_orchestrator::publish::Sink { path: file.clone() };
            damm_provider::fs::write_atomic(&sink.signature_path(), signature.as_bytes())?;
            println!("wrote {}", sink.signature_path().display());
            Ok(ExitCode::SUCCESS)
        }
        CatalogCommand::Verify {
            file,
            public_key,
            signature,
            last_version,
            json,
        } => {
            match damm_orchestrator::publish::verify_file(
                &file,
                signature.as_deref(),
                &public_key,
                last_version,
                now,
            ) {
                Ok(c) => {
                    if json {
                        print_json(
                            &serde_json::json!({"ok": true, "version": c.version, "fleet": c.fleet, "expires_at": c.expires_at}),
                        )?;
                    } else {
                        println!(
                            "{}: ok (fleet {}, version {}, expires {})",
                            file.display(),
                            c.fleet,
                            c.version,
                            c.expires_at.to_rfc3339()
                        );
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    if json {
                        print_json(&serde_json::json!({"ok": false, "error": format!("{e:#}")}))?;
                    } else {
                        eprintln!("damm: {e:#}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        CatalogCommand::Show {
            file,
            public_key,
            json,
        } => {
            let catalog = match &public_key {
                Some(key) => damm_orchestrator::publish::verify_file(&file, None, key, None, now)?,
                None => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    damm_catalog::Catalog::from_json(&bytes)
                        .with_context(|| format!("{}: not a valid catalog", file.display()))?
                }
            };
            if json {
                print_json(&catalog)?;
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "catalog v{} of fleet {} ({}), issued {}, expires {}",
                catalog.version,
                catalog.fleet,
                if public_key.is_some() {
                    "verified"
                } else {
                    "NOT verified: pass --pub"
                },
                catalog.issued_at.to_rfc3339(),
                catalog.expires_at.to_rfc3339()
            );
            for (region, paths) in &catalog.regions {
                println!("{region}: {} paths", paths.paths.len());
                for p in &paths.paths {
                    let providers: Vec<&str> = p.providers();
                    println!(
                        "  {:.2}  {:<42} {:<22} via {}",
                        p.score,
                        p.path_id,
                        p.endpoint,
                        providers.join(" → ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
