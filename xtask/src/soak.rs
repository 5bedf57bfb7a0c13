//! `cargo xtask soak [--kills N] [--seed S]`: the crash soak in release mode — `kill -9` of
//! `damm serve` at random instants while it applies against the simulator, restarted and
//! checked every time; prints the counts (kills, restarts, resources, leaks, duplicates,
//! caps). The same code runs 50 kills in the test suite (`tests/tests/crash_soak.rs`).

use std::path::Path;

use anyhow::{Context as _, bail};

pub(crate) fn run(root: &Path, args: &[String]) -> anyhow::Result<()> {
    let mut pass = vec!["soak".to_owned()];
    let mut it = args.iter();
    let mut kills = false;
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--kills" | "--seed" | "--check-every" | "--max-run-ms" => {
                kills |= arg == "--kills";
                let value = it.next().with_context(|| format!("{arg} needs a value"))?;
                pass.extend([arg.clone(), value.clone()]);
            }
            other => bail!(
                "unknown argument `{other}`\nusage: cargo xtask soak [--kills N] [--seed S] [--check-every N] [--max-run-ms MS]"
            ),
        }
    }
    if !kills {
        pass.extend(["--kills".to_owned(), "500".to_owned()]);
    }
    crate::scenario::release_run(root, &pass)
}
