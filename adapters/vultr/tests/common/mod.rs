//! The simulator and an adapter pointed at it, for every test file.

#![allow(dead_code)] // each test file uses a part

use std::time::Duration;

use damm_adapter_vultr::Vultr;
use damm_provider::config::AdapterConfig;
use damm_provider::{FleetId, IdempotencyKey, NodeRole, NodeSpec, Region};
use damm_sim::{Provider, SimConfig, SimHandle};

/// A simulator on 127.0.0.1 with quick boots.
pub(crate) async fn sim() -> SimHandle {
    let config = SimConfig {
        boot_delay: Duration::from_millis(200),
        ..SimConfig::default()
    };
    damm_sim::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("the simulator starts")
}

/// The adapter for `fleet` against `sim`, with extra `DAMM_VULTR_*` settings.
pub(crate) fn adapter(sim: &SimHandle, fleet: &str, extra: &[(&str, &str)]) -> Vultr {
    let mut env = vec![
        ("DAMM_VULTR_API_URL".to_owned(), sim.url(Provider::Vultr)),
        ("DAMM_VULTR_TOKEN".to_owned(), sim.token().to_owned()),
    ];
    for (k, v) in extra {
        env.retain(|(name, _)| name != k);
        env.push(((*k).to_owned(), (*v).to_owned()));
    }
    let config = AdapterConfig::new(FleetId::new(fleet).unwrap(), "vultr").with_env(env);
    Vultr::from_config(&config).expect("the adapter configures")
}

/// A node spec in `eu-central`, profile `small`.
pub(crate) fn spec(fleet: &str, key: &str, role: NodeRole) -> NodeSpec {
    NodeSpec::new(
        &FleetId::new(fleet).unwrap(),
        IdempotencyKey::new(key).unwrap(),
        Region::new("eu-central").unwrap(),
        role,
        "small",
    )
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
