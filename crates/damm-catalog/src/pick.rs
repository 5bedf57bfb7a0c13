//! Client-side path choice: the catalog's score, adjusted by what this client measured.
//!
//! The orchestrator scores paths from everything it sees; a client sees its own network. The
//! effective score blends the two, small and explainable:
//!
//! - measured RTT blends in with weight [`RTT_WEIGHT`]: 20 ms or less counts as perfect, each
//!   further 200 ms halves the RTT quality (no RTT measured: the catalog score alone);
//! - every consecutive failure halves the score (capped at [`MAX_COUNTED_FAILURES`]);
//! - a handshake older than [`STALE_HANDSHAKE_S`] (WireGuard rekeys every 2 minutes, so a live
//!   tunnel never gets there) costs a quarter; a fresh one earns [`STICKINESS`], so a client does
//!   not flap between near-equal paths.
//!
//! Ties break on the catalog score, then on the path id: the order is a pure function of the
//! inputs.

use std::collections::BTreeMap;

use crate::schema::{Catalog, Path};

/// Weight of the client's RTT quality in the effective score.
const RTT_WEIGHT: f64 = 0.3;
/// RTT counted as perfect, in milliseconds.
const RTT_FLOOR_MS: f64 = 20.0;
/// RTT above the floor that halves the RTT quality, in milliseconds.
const RTT_HALF_MS: f64 = 200.0;
/// Failures beyond this many change nothing more (the score is already ~0).
const MAX_COUNTED_FAILURES: u32 = 16;
/// Seconds after which a handshake is stale (WireGuard's REJECT_AFTER_TIME, 180 s).
const STALE_HANDSHAKE_S: u64 = 180;
/// Bonus for the path with a fresh handshake.
const STICKINESS: f64 = 0.05;

/// What the client measured on one path.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measurement {
    /// Recent round-trip time through the path, in milliseconds.
    pub rtt_ms: Option<f64>,
    /// Consecutive failures (handshake timeouts, connection errors); 0 after a success.
    pub failures: u32,
    /// Seconds since the last WireGuard handshake on the path, if it was ever used.
    pub last_handshake_age_s: Option<u64>,
}

/// The score `pick` ranks `path` by, given the client's measurement of it (if any).
pub fn effective_score(path: &Path, measurement: Option<&Measurement>) -> f64 {
    let base = if path.score.is_finite() {
        path.score.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let Some(m) = measurement else {
        return base;
    };
    let mut score = base;
    if let Some(rtt) = m.rtt_ms.filter(|r| r.is_finite() && *r >= 0.0) {
        let quality = 1.0 / (1.0 + (rtt - RTT_FLOOR_MS).max(0.0) / RTT_HALF_MS);
        score = (1.0 - RTT_WEIGHT) * score + RTT_WEIGHT * quality;
    }
    match m.last_handshake_age_s {
        Some(age) if age > STALE_HANDSHAKE_S => score *= 0.75,
        Some(_) => score += STICKINESS,
        None => {}
    }
    score * 0.5f64.powi(m.failures.min(MAX_COUNTED_FAILURES) as i32)
}

/// The paths of `region`, best first. An unknown region gives an empty list.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use damm_catalog::{Catalog, Measurement, pick};
/// # fn demo(catalog: &Catalog) {
/// let mut measured = BTreeMap::new();
/// measured.insert("eu/hetzner-a".to_owned(), Measurement { failures: 2, ..Default::default() });
/// for path in pick(catalog, "eu", &measured) {
///     println!("{} {}", path.path_id, path.endpoint);
/// }
/// # }
/// ```
pub fn pick<'a>(
    catalog: &'a Catalog,
    region: &str,
    measurements: &BTreeMap<String, Measurement>,
) -> Vec<&'a Path> {
    let mut ranked: Vec<(f64, &Path)> = catalog
        .region(region)
        .unwrap_or_default()
        .iter()
        .map(|p| (effective_score(p, measurements.get(&p.path_id)), p))
        .collect();
    ranked.sort_by(|(a_score, a), (b_score, b)| {
        b_score
            .total_cmp(a_score)
            .then_with(|| b.score.total_cmp(&a.score))
            .then_with(|| a.path_id.cmp(&b.path_id))
    });
    ranked.into_iter().map(|(_, p)| p).collect()
}

/// Where to fail over to when `current_path_id` stops working: the best other path (ranked as
/// [`pick`] ranks them) that shares no provider with the current one; failing that, the best
/// one with a different ingress provider; failing that, the best other path. If the current
/// path is not in the region, the best path. `None` when nothing else is left.
pub fn next_after<'a>(
    catalog: &'a Catalog,
    region: &str,
    measurements: &BTreeMap<String, Measurement>,
    current_path_id: &str,
) -> Option<&'a Path> {
    let ranked = pick(catalog, region, measurements);
    let Some(current) = ranked.iter().find(|p| p.path_id == current_path_id) else {
        return ranked.first().copied();
    };
    let failed_providers = current.providers();
    let failed_ingress = current.ingress_provider();
    let others = || {
        ranked
            .iter()
            .copied()
            .filter(|p| p.path_id != current_path_id)
    };
    others()
        .find(|p| p.providers().iter().all(|q| !failed_providers.contains(q)))
        .or_else(|| others().find(|p| p.ingress_provider() != failed_ingress))
        .or_else(|| others().next())
}
