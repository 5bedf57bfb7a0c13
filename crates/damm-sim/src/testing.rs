//! Starting a simulator the way tests do (on a free port of 127.0.0.1, failing loudly when it
//! cannot) and pointing an adapter at it. The simulator's own tests, the adapters' tests and
//! the orchestrator's all start it through here, so "a simulator for this test" reads the
//! same everywhere.
//!
//! ```no_run
//! # #[tokio::main] async fn main() {
//! use damm_sim::{Provider, testing};
//!
//! let sim = testing::booting_in(testing::QUICK_BOOT).await;
//! println!("hetzner API at {}", sim.url(Provider::Hetzner));
//! # }
//! ```

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::{Provider, SimConfig, SimHandle};

/// The boot delay most tests use: long enough to see a machine that is still booting, short
/// enough to wait out.
pub const QUICK_BOOT: Duration = Duration::from_millis(200);

/// Starts a simulator with `config` on a free port of 127.0.0.1.
///
/// # Panics
///
/// When no port of 127.0.0.1 can be bound: a test cannot go on without its simulator.
pub async fn start(config: SimConfig) -> SimHandle {
    crate::start(config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .expect("the simulator listens on a free port of 127.0.0.1")
}

/// [`start`] with the default configuration, machines booting after `boot_delay`.
///
/// # Panics
///
/// As [`start`].
pub async fn booting_in(boot_delay: Duration) -> SimHandle {
    start(SimConfig {
        boot_delay,
        ..SimConfig::default()
    })
    .await
}

/// The settings that point adapter `provider` at `sim`, as every adapter reads them
/// (`DAMM_<ADAPTER>_API_URL` = [`SimHandle::url`], `DAMM_<ADAPTER>_TOKEN`), then `extra`, each
/// replacing a setting of the same name.
pub fn adapter_env(
    sim: &SimHandle,
    provider: Provider,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let stem = format!("DAMM_{}", provider.as_str().to_ascii_uppercase());
    let mut env = vec![
        (format!("{stem}_API_URL"), sim.url(provider)),
        (format!("{stem}_TOKEN"), sim.token().to_owned()),
    ];
    for (key, value) in extra {
        env.retain(|(name, _)| name != key);
        env.push(((*key).to_owned(), (*value).to_owned()));
    }
    env
}
