//! Fault injection: what each provider does wrong, drawn from a seeded generator.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a dark provider fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dark {
    /// The connection is dropped without an answer (as a refused or reset connection).
    Refuse,
    /// Every call answers 503 in the provider's error shape.
    Unavailable,
}

/// The faults of one provider. The default is none.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// The provider is down.
    pub dark: Option<Dark>,
    /// Extra latency on every call, in milliseconds.
    pub latency_ms: u64,
    /// The token was revoked: every call answers 401 in the provider's error shape.
    pub unauthorized: bool,
    /// Share of calls (0–1) that fail with a 500 in the provider's error shape.
    pub error_rate: f64,
    /// The next this-many calls answer 429 with the provider's rate-limit headers.
    pub rate_limit_storm: u32,
    /// Share of calls (0–1) whose JSON body is cut short.
    pub malformed_rate: f64,
    /// Multiplies the boot delay of machines created while it is set.
    pub boot_factor: Option<f64>,
    /// The simulator's own responses lose their first field before the schema check,
    /// to prove that a response drifting from the published schema is caught.
    pub drift: bool,
    /// A page missing mid-pagination: every page of a listing after the first comes back
    /// with no items while the listing's metadata still counts them all (Hetzner's
    /// `total_entries` and `next_page`, DigitalOcean's `meta.total` and `links.pages`,
    /// Cloudflare's `result_info.total_count`, Gcore's `count`; Vultr's `meta.total` with an
    /// empty `next` cursor, as an expired cursor is answered). It is what a client sees when
    /// a shard of a listing is lost behind the provider's load balancer, and an adapter must fail
    /// such a listing rather than return a truncated inventory (which would make the
    /// orchestrator believe the missing nodes vanished). Tailscale's lists are not paged.
    pub missing_page: bool,
    /// The account's server limit is reached: every create of a machine answers the
    /// provider's own quota error (Hetzner's 403 `resource_limit_exceeded`, DigitalOcean's
    /// 422 droplet limit, Vultr's 400 instance limit, Compute Engine's 403
    /// `quotaExceeded`); reads, deletes and everything else work.
    pub quota_exhausted: bool,
}

impl Faults {
    /// The provider is dark in `mode`.
    pub fn dark(mode: Dark) -> Self {
        Faults {
            dark: Some(mode),
            ..Faults::default()
        }
    }

    /// Added latency.
    pub fn latency(&self) -> Duration {
        Duration::from_millis(self.latency_ms)
    }
}

/// SplitMix64: small, fast, and the same sequence for the same seed.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Whether an event of probability `p` happens.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}
