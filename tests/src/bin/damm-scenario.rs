//! `damm-scenario`: scenario runs against the built-in simulator, printing figures.
//! Run through `cargo xtask scenario NAME [ARGS]`, which builds in release mode first.

use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: damm-scenario probe [--nodes N] [--latency-ms MS] [--concurrency N]"
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
