//! Machines that really boot: the simulator tells a [`Boot`] hook about every machine it
//! creates and deletes, with the address it gave the machine and the user-data it was
//! created with. A lab (`damm_tests::bootlab`) runs that user-data in a network namespace
//! holding that address, through [`crate::machine`], so that a created gateway installs
//! and starts its agent the way a cloud VM's cloud-init would.
//!
//! Without a hook (the default) machines only change state in the API, as before.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::Provider;

/// A machine the simulator has just created.
#[derive(Clone, PartialEq, Eq)]
pub struct Machine {
    /// The provider that created it.
    pub provider: Provider,
    /// Its id in the provider's API (`12345`, a droplet id, a Vultr UUID).
    pub id: String,
    /// Its name, as the create request gave it.
    pub name: String,
    /// Its public IPv4 address, if it has one.
    pub ipv4: Option<Ipv4Addr>,
    /// The user-data it was created with (decoded where the API carries it in base64).
    pub user_data: Option<String>,
}

impl fmt::Debug for Machine {
    // User-data holds a gateway's secrets: only its size is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("provider", &self.provider)
            .field("id", &self.id)
            .field("name", &self.name)
            .field("ipv4", &self.ipv4)
            .field(
                "user_data",
                &self
                    .user_data
                    .as_ref()
                    .map(|u| format!("<{} bytes>", u.len())),
            )
            .finish()
    }
}

/// What happens to machines outside the API. Called from the request handlers, with the
/// provider's state locked: implementations must return at once (start the work on a
/// thread of their own) and must not call the simulator back.
pub trait Boot: Send + Sync {
    /// `machine` was created and is powering on.
    fn boot(&self, machine: Machine);
    /// Machine `id` of `provider` was deleted: it is gone, with its address.
    fn halt(&self, provider: Provider, id: &str);
}

/// The hook of a [`crate::SimConfig`]: shared, and shown in `Debug` only by its presence.
#[derive(Clone)]
pub struct BootHook(pub Arc<dyn Boot>);

impl fmt::Debug for BootHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BootHook")
    }
}

impl crate::server::Shared {
    /// Tells the hook, if any, that `machine` was created.
    pub(crate) fn booted(&self, machine: Machine) {
        if let Some(BootHook(hook)) = &self.config.boot {
            hook.boot(machine);
        }
    }

    /// Tells the hook, if any, that machine `id` of `provider` was deleted.
    pub(crate) fn halted(&self, provider: Provider, id: impl fmt::Display) {
        if let Some(BootHook(hook)) = &self.config.boot {
            hook.halt(provider, &id.to_string());
        }
    }
}
