//! What every test file shares: a simulator on 127.0.0.1 and the adapter pointed at it.

#![allow(dead_code)] // each test file uses its own part

use std::time::Duration;

use damm_adapter_digitalocean::Digitalocean;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks;
use damm_sim::testing::{QUICK_BOOT, adapter_env, booting_in};
use damm_sim::{Provider as Sim, SimHandle};

/// The simulator's boot delay.
pub(crate) const BOOT: Duration = QUICK_BOOT;

/// A fresh simulator on a free port of 127.0.0.1, its droplets booting in [`BOOT`].
pub(crate) async fn sim() -> SimHandle {
    booting_in(BOOT).await
}

/// The adapter for `fleet`, pointed at `sim`, with `extra` settings over the defaults.
pub(crate) fn adapter(sim: &SimHandle, fleet: &str, extra: &[(&str, &str)]) -> Digitalocean {
    let env = adapter_env(sim, Sim::DigitalOcean, extra);
    Digitalocean::from_config(
        &AdapterConfig::new(checks::fleet(fleet), "digitalocean").with_env(env),
    )
    .expect("the adapter builds")
}
