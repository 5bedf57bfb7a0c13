//! `damm-sim`: a local, stateful simulator of the providers' HTTP APIs.
//!
//! One listener serves every provider under its own prefix (`/hetzner/v1/...`,
//! `/digitalocean/v2/...`, `/vultr/v2/...`, `/gce/compute/v1/...`, `/gcore/cdn/...`),
//! speaking each provider's published wire format: its JSON shapes, its pagination, its
//! token 401s, its rate limits with its own headers, and its error bodies. Machines boot
//! (`initializing` → `running` after the boot delay) and get addresses from the
//! documentation ranges.
//!
//! Faults are injected per provider, from Rust ([`SimHandle::set_faults`]) or over HTTP
//! (`PUT /_sim/faults/{provider}`): dark (connection dropped, or 503), added latency, an
//! error rate, 429 storms, malformed JSON, a revoked token (401), a page missing
//! mid-pagination and slow boots, deterministic for a seed.
//!
//! With validation on (the default), every request body and every response the
//! simulator sends is checked against the provider's published OpenAPI document (for
//! Compute Engine, Google's Discovery document); a
//! request that does not match is refused the way the provider would, and a response
//! that drifts is replaced by a 500 and recorded ([`SimHandle::drifts`]), so tests fail.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> std::io::Result<()> {
//! use damm_sim::{Provider, SimConfig};
//!
//! let sim = damm_sim::start(SimConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! println!("hetzner API at {}", sim.url(Provider::Hetzner));
//! # Ok(()) }
//! ```

pub mod boot;
mod cloudflare;
mod digitalocean;
mod discovery;
mod faults;
mod gce;
mod gcore;
mod hetzner;
pub mod machine;
pub mod schema;
mod server;
mod tailscale;
pub mod testing;
mod validation;
mod vultr;
mod world;

pub use faults::{Dark, Faults};
pub use server::{SimHandle, start};
pub use validation::shared_specs_dir;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A simulated provider API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Hetzner Cloud API v1, under `/hetzner/v1`.
    Hetzner,
    /// DigitalOcean API v2, under `/digitalocean/v2`.
    DigitalOcean,
    /// Vultr API v2, under `/vultr/v2`.
    Vultr,
    /// Cloudflare API v4, under `/cloudflare/client/v4`.
    Cloudflare,
    /// Tailscale API v2, under `/tailscale/api/v2`.
    Tailscale,
    /// Compute Engine API v1, under `/gce/compute/v1` (point a Google client's endpoint
    /// at `http://ADDR/gce`).
    Gce,
    /// Gcore's CDN API (CDN resources, origin groups), under `/gcore` (its paths start
    /// with `/cdn/`).
    Gcore,
}

impl Provider {
    /// Every simulated provider.
    pub const ALL: &'static [Provider] = &[
        Provider::Hetzner,
        Provider::DigitalOcean,
        Provider::Vultr,
        Provider::Cloudflare,
        Provider::Tailscale,
        Provider::Gce,
        Provider::Gcore,
    ];

    /// The URL path segment and admin-API name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Hetzner => "hetzner",
            Provider::DigitalOcean => "digitalocean",
            Provider::Vultr => "vultr",
            Provider::Cloudflare => "cloudflare",
            Provider::Tailscale => "tailscale",
            Provider::Gce => "gce",
            Provider::Gcore => "gcore",
        }
    }

    /// The API's base path on the simulator (what an adapter's base URL ends with).
    pub const fn base_path(self) -> &'static str {
        match self {
            Provider::Hetzner => "/hetzner/v1",
            Provider::DigitalOcean => "/digitalocean/v2",
            Provider::Vultr => "/vultr/v2",
            Provider::Cloudflare => "/cloudflare/client/v4",
            Provider::Tailscale => "/tailscale/api/v2",
            Provider::Gce => "/gce/compute/v1",
            Provider::Gcore => "/gcore",
        }
    }

    /// The scheme of the `Authorization` header the API takes the token in: `Bearer`, or
    /// Gcore's `APIKey`.
    pub const fn auth_scheme(self) -> &'static str {
        match self {
            Provider::Gcore => "APIKey",
            Provider::Hetzner
            | Provider::DigitalOcean
            | Provider::Vultr
            | Provider::Cloudflare
            | Provider::Tailscale
            | Provider::Gce => "Bearer",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown provider `{s}`"))
    }
}

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// The token every provider API accepts (as a bearer token, or as Gcore's `APIKey`).
    pub token: String,
    /// Seed for every random choice (fault draws), so runs repeat.
    pub seed: u64,
    /// How long a new machine takes to boot.
    pub boot_delay: Duration,
    /// Check requests and responses against the published schemas.
    pub validate: bool,
    /// Enforce the providers' documented rate limits.
    pub rate_limits: bool,
    /// Caps every list page at this many items, whatever the client asks for (providers
    /// cap `per_page` too): lets a small fleet span several pages in tests.
    pub max_page_size: Option<usize>,
    /// Runs created machines for real (see [`boot`]); `None`: machines exist only in the
    /// API.
    pub boot: Option<boot::BootHook>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: "damm-sim-token".to_owned(),
            seed: 1,
            boot_delay: Duration::from_millis(500),
            validate: true,
            rate_limits: true,
            max_page_size: None,
            boot: None,
        }
    }
}
