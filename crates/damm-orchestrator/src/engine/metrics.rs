//! The engine's live instruments: counters and latency histograms recorded while it ticks,
//! registered into each `/metrics` scrape (see `serve::render_metrics`, which adds the gauges
//! read from the state). Clones share their values.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::state::TickSummary;

/// A `provider` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ProviderLabel {
    /// The policy's provider name.
    pub provider: String,
}

impl ProviderLabel {
    /// The label of `provider`.
    pub fn new(provider: &str) -> Self {
        ProviderLabel {
            provider: provider.to_owned(),
        }
    }
}

/// An `outcome` label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// What became of it (`applied`, `failed`, ...).
    pub outcome: &'static str,
}

/// A histogram family whose members are made by a plain function.
type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// Probe calls: 1 ms to about 8 s.
fn probe_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 14))
}

/// Ticks and apply phases: 10 ms to about 80 s.
fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// What the engine counts and times.
#[derive(Debug, Clone)]
pub struct Metrics {
    ticks: Counter,
    tick_duration: Histogram,
    probes: Family<ProviderLabel, Counter>,
    probe_failures: Family<ProviderLabel, Counter>,
    probe_duration: Histograms<ProviderLabel>,
    actions: Family<OutcomeLabel, Counter>,
    apply_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            ticks: Counter::default(),
            tick_duration: phase_histogram(),
            probes: Family::default(),
            probe_failures: Family::default(),
            probe_duration: Family::new_with_constructor(probe_histogram),
            actions: Family::default(),
            apply_duration: phase_histogram(),
        }
    }
}

impl Metrics {
    /// Registers every instrument into `registry` (shared: later observations show).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "damm_ticks",
            "Ticks completed by this process",
            self.ticks.clone(),
        );
        registry.register(
            "damm_tick_duration_seconds",
            "Wall time of a completed tick, from inventory to persisted state",
            self.tick_duration.clone(),
        );
        registry.register(
            "damm_probes",
            "Health verdicts by provider (probe calls and readings of the listing)",
            self.probes.clone(),
        );
        registry.register(
            "damm_probe_failures",
            "Health verdicts that found a node down or unreachable, by provider",
            self.probe_failures.clone(),
        );
        registry.register(
            "damm_probe_duration_seconds",
            "Latency of a probe call, by provider (timeouts count at the timeout)",
            self.probe_duration.clone(),
        );
        registry.register(
            "damm_actions",
            "Actions the apply ran, by outcome",
            self.actions.clone(),
        );
        registry.register(
            "damm_apply_duration_seconds",
            "Wall time of a tick's apply phase, intents to the last adapter answer",
            self.apply_duration.clone(),
        );
    }

    /// One health verdict at `provider`.
    pub(crate) fn probe(&self, provider: &str, ok: bool) {
        let label = ProviderLabel::new(provider);
        self.probes.get_or_create(&label).inc();
        if !ok {
            self.probe_failures.get_or_create(&label).inc();
        }
    }

    /// One probe call at `provider` that took `took`.
    pub(crate) fn probe_call(&self, provider: &str, took: Duration) {
        self.probe_duration
            .get_or_create(&ProviderLabel::new(provider))
            .observe(took.as_secs_f64());
    }

    /// An apply phase that took `took`.
    pub(crate) fn apply(&self, took: Duration) {
        self.apply_duration.observe(took.as_secs_f64());
    }

    /// A completed tick that took `took`.
    pub(crate) fn tick(&self, summary: &TickSummary, took: Duration) {
        self.ticks.inc();
        self.tick_duration.observe(took.as_secs_f64());
        for (outcome, n) in [("applied", summary.applied), ("failed", summary.failed)] {
            self.actions
                .get_or_create(&OutcomeLabel { outcome })
                .inc_by(n);
        }
    }
}
