//! `damm-scenario`: scenario runs against the built-in simulator, printing figures.
//! Run through `cargo xtask scenario NAME [ARGS]`, which builds in release mode first.

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: damm-scenario probe [--nodes N] [--latency-ms MS] [--concurrency N]\n\
     \x20      damm-scenario provider-dark [--provider NAME] [--policy FILE] [--breaker-failures N] [--compression C] [--boot-s S] [--ticks N] [--validated FILE] [--json]\n\
     \x20      damm-scenario converge [--nodes N] [--tick-s S] [--compression C] [--boot-s S] [--json]\n\
     \x20      damm-scenario soak [--kills N] [--seed S] [--check-every N] [--max-run-ms MS]"
}

fn value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn provider_dark(args: &[String]) -> Result<(), String> {
    let policy = match value(args, "--policy") {
        Some(path) => {
            damm_fleet::Policy::load(std::path::Path::new(&path)).map_err(|e| e.to_string())?
        }
        None => damm_fleet::Policy::default_policy(),
    };
    let mut policy = policy;
    if let Some(n) = value(args, "--breaker-failures") {
        policy.scoring.breaker.failures = n
            .parse()
            .map_err(|_| "--breaker-failures: not a number".to_owned())?;
    }
    let providers: Vec<String> = match value(args, "--provider") {
        Some(p) => vec![p],
        None => policy.adapters().map(|(name, _)| name.to_owned()).collect(),
    };
    let validated: std::path::PathBuf = value(args, "--validated")
        .unwrap_or_else(|| "validated.json".to_owned())
        .into();
    let json = args.iter().any(|a| a == "--json");
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    for provider in &providers {
        let mut run = damm_tests::dark::DarkRun::new(provider);
        run.policy = policy.clone();
        run.setup.compression = flag(args, "--compression", run.setup.compression)?;
        run.setup.boot = std::time::Duration::from_secs(flag(args, "--boot-s", 45)?);
        run.ticks_after = flag(args, "--ticks", run.ticks_after)?;
        run.validated = Some(validated.clone());
        let result = rt
            .block_on(damm_tests::dark::run(&run))
            .map_err(|e| format!("{provider}: {e:#}"))?;
        if !json {
            damm_tests::dark::print(
                &result,
                &run.setup,
                damm_tests::harness::PROBE_TIMEOUT.as_secs_f64(),
            );
            println!(
                "  {}\n",
                if result.proves_failover() {
                    format!("failover proven: recorded in {}", validated.display())
                } else {
                    "failover NOT proven: nothing recorded".to_owned()
                }
            );
        }
        results.push(result);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&results).map_err(|e| e.to_string())?
        );
    }
    Ok(())
}

fn converge(args: &[String]) -> Result<(), String> {
    let mut run = damm_tests::converge::ConvergeRun::new(flag(args, "--nodes", 300)?);
    run.tick = std::time::Duration::from_secs(flag(args, "--tick-s", 60)?);
    run.setup.compression = flag(args, "--compression", run.setup.compression)?;
    run.setup.boot = std::time::Duration::from_secs(flag(args, "--boot-s", 45)?);
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let result = rt
        .block_on(damm_tests::converge::run(&run))
        .map_err(|e| format!("{e:#}"))?;
    if args.iter().any(|a| a == "--json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
        );
    } else {
        damm_tests::converge::print(&result, &run);
    }
    Ok(())
}

/// The crash soak with the `damm` binary next to this one (`cargo xtask soak` builds both).
fn soak(args: &[String]) -> Result<(), String> {
    let damm = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("damm")))
        .filter(|p| p.exists())
        .ok_or("no `damm` binary next to damm-scenario: run `cargo xtask soak`")?;
    let run = damm_tests::soak::SoakArgs {
        kills: flag(args, "--kills", 500)?,
        damm,
        seed: flag(args, "--seed", 1)?,
        check_every: flag(args, "--check-every", 10)?,
        max_run: std::time::Duration::from_millis(flag(args, "--max-run-ms", 1500)?),
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
    let report = rt
        .block_on(damm_tests::soak::run(&run))
        .map_err(|e| format!("{e:#}"))?;
    println!("{report}");
    Ok(())
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .ok_or_else(|| format!("{name} needs a value"))?
            .parse()
            .map_err(|_| format!("{name}: not a valid value")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("probe") => (|| {
            let run = damm_tests::probe::ProbeRun {
                nodes: flag(&args, "--nodes", 10_000)?,
                latency_ms: flag(&args, "--latency-ms", 50)?,
                concurrency: flag(&args, "--concurrency", 512)?,
                damm: std::env::current_exe()
                    .ok()
                    .and_then(|p| p.parent().map(|d| d.join("damm")))
                    .filter(|p| p.exists()),
            };
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(damm_tests::probe::run(&run))
                .map_err(|e| format!("{e:#}"))
        })(),
        Some("provider-dark") => provider_dark(&args),
        Some("converge") => converge(&args),
        Some("soak") => soak(&args),
        _ => Err(usage().to_owned()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("damm-scenario: {e}");
            ExitCode::FAILURE
        }
    }
}
