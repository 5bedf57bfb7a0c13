//! The only crate that names DAMM's adapters.
//!
//! Each adapter is one cargo feature and one line in [`adapters!`]; everything else in
//! DAMM works against [`damm_provider::Provider`]. `tests/drift.rs` fails when the
//! feature list, these lines and the `adapters/` folders disagree.
//!
//! ```
//! // What this build holds; `damm adapters` prints the same.
//! for adapter in damm_registry::compiled() {
//!     println!("{} [{}]", adapter.name, adapter.capabilities);
//! }
//! assert!(damm_registry::known().contains(&"static-host"));
//! ```

use std::sync::Arc;

use damm_provider::config::AdapterConfig;
use damm_provider::{AdapterDescriptor, Provider};

/// Declares every adapter: its name (equal to its cargo feature) and its crate.
macro_rules! adapters {
    ($($name:literal => $krate:ident,)*) => {
        const KNOWN: &[&str] = &[$($name),*];

        const COMPILED: &[AdapterDescriptor] = &[
            $(
                #[cfg(feature = $name)]
                $krate::ADAPTER,
            )*
        ];
    };
}

// One line per adapter, alphabetical. `cargo xtask new-adapter` inserts new ones.
adapters! {
    "aws" => damm_adapter_aws,
    "cloudflare" => damm_adapter_cloudflare,
    "digitalocean" => damm_adapter_digitalocean,
    "gce" => damm_adapter_gce,
    "gcore" => damm_adapter_gcore,
    "hetzner" => damm_adapter_hetzner,
    "static-host" => damm_adapter_static_host,
    "tailscale" => damm_adapter_tailscale,
    "vultr" => damm_adapter_vultr,
}

/// Every adapter DAMM has, compiled into this build or not, alphabetical.
pub fn known() -> &'static [&'static str] {
    KNOWN
}

/// The adapters compiled into this build, alphabetical.
pub fn compiled() -> &'static [AdapterDescriptor] {
    COMPILED
}

/// Why [`get_adapter`] could not build an adapter.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The adapter exists but this build left it out.
    #[error("adapter `{name}` is not compiled into this build; rebuild with `--features {name}`")]
    NotCompiled {
        /// The adapter (and cargo feature) name.
        name: String,
    },
    /// No adapter has this name.
    #[error("unknown adapter `{name}`; compiled in: {}", list(.compiled))]
    Unknown {
        /// The name asked for.
        name: String,
        /// What this build has.
        compiled: Vec<&'static str>,
    },
    /// The adapter refused its configuration or could not start.
    #[error(transparent)]
    Build(#[from] damm_provider::Error),
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// Builds adapter `name` from `config`.
pub async fn get_adapter(
    name: &str,
    config: &AdapterConfig,
) -> Result<Arc<dyn Provider>, RegistryError> {
    let compiled = compiled();
    match compiled.iter().find(|d| d.name == name) {
        Some(descriptor) => Ok((descriptor.build)(config.clone()).await?),
        None if KNOWN.contains(&name) => Err(RegistryError::NotCompiled {
            name: name.to_owned(),
        }),
        None => Err(RegistryError::Unknown {
            name: name.to_owned(),
            compiled: compiled.iter().map(|d| d.name).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use damm_provider::FleetId;

    fn config() -> AdapterConfig {
        AdapterConfig::new(FleetId::new("f").unwrap(), "x").without_env()
    }

    #[tokio::test]
    async fn unknown_names_list_what_is_compiled() {
        let err = get_adapter("teleport", &config()).await.unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("unknown adapter `teleport`; compiled in: "),
            "{text}"
        );
        for adapter in compiled() {
            assert!(text.contains(adapter.name), "{text}");
        }
    }

    #[test]
    fn known_is_alphabetical_and_holds_the_compiled() {
        let mut sorted = KNOWN.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, KNOWN);
        for adapter in compiled() {
            assert!(KNOWN.contains(&adapter.name));
        }
    }

    #[cfg(feature = "static-host")]
    #[tokio::test]
    async fn a_compiled_adapter_reports_its_build_errors() {
        // static-host needs an inventory: the adapter's own error comes through.
        let err = get_adapter("static-host", &config()).await.unwrap_err();
        assert!(matches!(err, RegistryError::Build(_)), "{err}");
        assert!(err.to_string().contains("inventory"), "{err}");
    }
}
