//! The simulator and an adapter pointed at it, for every test file.

#![allow(dead_code)] // each test file uses a part

use damm_adapter_vultr::Vultr;
use damm_provider::config::AdapterConfig;
use damm_provider::testkit::checks;
use damm_sim::testing::{QUICK_BOOT, adapter_env, booting_in};
use damm_sim::{Provider, SimHandle};

/// A simulator on 127.0.0.1 with quick boots.
pub(crate) async fn sim() -> SimHandle {
    booting_in(QUICK_BOOT).await
}

/// The adapter for `fleet` against `sim`, with extra `DAMM_VULTR_*` settings.
pub(crate) fn adapter(sim: &SimHandle, fleet: &str, extra: &[(&str, &str)]) -> Vultr {
    let env = adapter_env(sim, Provider::Vultr, extra);
    Vultr::from_config(&AdapterConfig::new(checks::fleet(fleet), "vultr").with_env(env))
        .expect("the adapter configures")
}

/// No simulator response drifted from Vultr's document; says whether it was checked.
pub(crate) fn assert_no_drift(sim: &SimHandle) {
    assert!(sim.drifts().is_empty(), "{:#?}", sim.drifts());
    if !sim.schema_checked(Provider::Vultr) {
        eprintln!(
            "note: {} has no vultr.subset.json; traffic was not schema-checked",
            damm_sim::shared_specs_dir().display()
        );
    }
}
