//! Scoring: exponentially decayed signals per component, and a circuit breaker per provider.
//!
//! Every signal decays with the policy's half-life: an observation `h` old weighs
//! `2^(-h / half_life)`. The book is plain data (serialised into the orchestrator's state);
//! time only enters as arguments.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::fasthash::FastMap;
use crate::policy::{Breaker, Scoring};

/// A decayed weighted mean.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decayed {
    sum: f64,
    weight: f64,
    at: Option<DateTime<Utc>>,
}

fn decay(from: Option<DateTime<Utc>>, to: DateTime<Utc>, half_life: Duration) -> f64 {
    let Some(from) = from else { return 1.0 };
    let age = (to - from).to_std().unwrap_or_default().as_secs_f64();
    (-age / half_life.as_secs_f64().max(1e-9)).exp2()
}

impl Decayed {
    /// Adds one observation of `value` at `at`.
    pub fn add(&mut self, value: f64, at: DateTime<Utc>, half_life: Duration) {
        let at = self.at.map_or(at, |last| last.max(at));
        let factor = decay(self.at, at, half_life);
        self.sum = self.sum * factor + value;
        self.weight = self.weight * factor + 1.0;
        self.at = Some(at);
    }

    /// The decayed mean, if anything was observed.
    pub fn mean(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| self.sum / self.weight)
    }

    /// How many observations' worth of evidence is left at `now`.
    pub fn confidence(&self, now: DateTime<Utc>, half_life: Duration) -> f64 {
        self.weight * decay(self.at, now, half_life)
    }
}

/// Bucket bounds of the RTT histogram, in milliseconds (roughly ×1.5 apart).
const RTT_BOUNDS_MS: [f64; 20] = [
    1.0, 1.5, 2.25, 3.4, 5.0, 7.6, 11.0, 17.0, 26.0, 38.0, 58.0, 86.0, 130.0, 195.0, 290.0, 440.0,
    660.0, 990.0, 1500.0, 2200.0,
];

/// A decayed RTT histogram, for percentiles without keeping samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RttHistogram {
    buckets: Vec<f64>,
    at: Option<DateTime<Utc>>,
}

impl RttHistogram {
    /// Adds one RTT sample.
    pub fn add(&mut self, rtt: Duration, at: DateTime<Utc>, half_life: Duration) {
        if self.buckets.len() != RTT_BOUNDS_MS.len() + 1 {
            self.buckets = vec![0.0; RTT_BOUNDS_MS.len() + 1];
        }
        let at = self.at.map_or(at, |last| last.max(at));
        let factor = decay(self.at, at, half_life);
        for b in &mut self.buckets {
            *b *= factor;
        }
        let ms = rtt.as_secs_f64() * 1000.0;
        let index = RTT_BOUNDS_MS.partition_point(|&bound| bound < ms);
        self.buckets[index] += 1.0;
        self.at = Some(at);
    }

    /// The `q` quantile (0..=1) in milliseconds: the upper bound of its bucket.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: f64 = self.buckets.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut seen = 0.0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b;
            if seen >= q * total {
                return Some(RTT_BOUNDS_MS.get(i).copied().unwrap_or(3000.0));
            }
        }
        Some(3000.0)
    }
}

/// What DAMM has observed of one component (node, address, front, path).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Probe and handshake success (1 or 0 per probe).
    pub success: Decayed,
    /// Probe RTTs.
    pub rtt: RttHistogram,
    /// Throughput, bytes per second.
    pub throughput: Decayed,
    /// Client-reported quality, 0..=1.
    pub client: Decayed,
}

/// A provider's circuit breaker: open after `failures` failed ticks in a row, closed again by
/// the first good tick after the cooldown.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BreakerState {
    /// Failed ticks in a row.
    pub failures: u32,
    /// Set while open: the earliest instant a good tick closes it.
    pub open_until: Option<DateTime<Utc>>,
    /// The last failure, for operators.
    pub last_error: Option<String>,
    /// Raised while the provider refuses DAMM's credentials or quota. Not a failure: the
    /// breaker does not count it, because waiting does not fix it and the operator can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<ProviderAlert>,
    /// Set when a create (or another change) was refused for credentials or quota: until
    /// then the alert stands even though listings answer, since a listing says nothing of
    /// a quota or of the right to create. Each refusal moves it on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_held_until: Option<DateTime<Utc>>,
}

/// Why a provider needs its operator rather than patience.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderAlert {
    /// The error kind, as `damm_provider::ErrorKind::as_str` names it (`unauthenticated`,
    /// `quota_exceeded`).
    pub kind: String,
    /// When the alert of this kind was raised.
    pub since: DateTime<Utc>,
    /// The latest error's text (provider errors never carry secrets).
    pub error: String,
}

impl BreakerState {
    /// Whether the provider is dark in planning and in the catalog.
    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }
}

/// The scoring memory: serialised into state between ticks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScoreBook {
    /// Per component (keyed by the component's key).
    pub components: BTreeMap<String, Record>,
    /// Per provider.
    pub breakers: BTreeMap<String, BreakerState>,
}

impl ScoreBook {
    /// Records one probe of `component`.
    pub fn probe(
        &mut self,
        component: &str,
        at: DateTime<Utc>,
        ok: bool,
        rtt: Option<Duration>,
        scoring: &Scoring,
    ) {
        let hl = scoring.half_life.0;
        let record = self.components.entry(component.to_owned()).or_default();
        record.success.add(if ok { 1.0 } else { 0.0 }, at, hl);
        if let (true, Some(rtt)) = (ok, rtt) {
            record.rtt.add(rtt, at, hl);
        }
    }

    /// Records a throughput sample (bytes per second).
    pub fn throughput(&mut self, component: &str, at: DateTime<Utc>, bps: f64, scoring: &Scoring) {
        let record = self.components.entry(component.to_owned()).or_default();
        record.throughput.add(bps.max(0.0), at, scoring.half_life.0);
    }

    /// Records a client-reported quality (0..=1).
    pub fn client_report(
        &mut self,
        component: &str,
        at: DateTime<Utc>,
        quality: f64,
        scoring: &Scoring,
    ) {
        let record = self.components.entry(component.to_owned()).or_default();
        record
            .client
            .add(quality.clamp(0.0, 1.0), at, scoring.half_life.0);
    }

    /// Drops what is known of a retired component.
    pub fn forget(&mut self, component: &str) {
        self.components.remove(component);
    }

    /// Records the outcome of one tick at `provider`: `Ok` when its API answered and not
    /// every probe failed.
    pub fn provider_tick(
        &mut self,
        provider: &str,
        at: DateTime<Utc>,
        outcome: Result<(), String>,
        breaker: &Breaker,
    ) {
        let state = self.breakers.entry(provider.to_owned()).or_default();
        match outcome {
            Ok(()) => {
                state.failures = 0;
                if state.open_until.is_some_and(|until| at >= until) {
                    state.open_until = None;
                    state.last_error = None;
                }
            }
            Err(error) => {
                state.failures = state.failures.saturating_add(1);
                state.last_error = Some(error);
                if state.failures >= breaker.failures || state.open_until.is_some() {
                    state.open_until = Some(at + breaker.cooldown.chrono());
                }
            }
        }
    }

    /// Raises an alert of `kind` at `provider`, or keeps the one it has, with the latest
    /// `error`; the breaker is left as it is. True when the alert is new (or of a new kind),
    /// which is when the operator should hear of it.
    pub fn provider_alert(
        &mut self,
        provider: &str,
        at: DateTime<Utc>,
        kind: &str,
        error: String,
    ) -> bool {
        let state = self.breakers.entry(provider.to_owned()).or_default();
        match &mut state.alert {
            Some(alert) if alert.kind == kind => {
                alert.error = error;
                false
            }
            slot => {
                *slot = Some(ProviderAlert {
                    kind: kind.to_owned(),
                    since: at,
                    error,
                });
                true
            }
        }
    }

    /// Keeps `provider`'s alert raised until at least `until`, whatever its listings say
    /// (see [`BreakerState::alert_held_until`]).
    pub fn hold_alert(&mut self, provider: &str, until: DateTime<Utc>) {
        let state = self.breakers.entry(provider.to_owned()).or_default();
        state.alert_held_until = state.alert_held_until.max(Some(until));
    }

    /// A call of `provider` succeeded at `at`: its alert, if it had one and it is not held
    /// past `at`, is cleared and returned.
    pub fn provider_answered(
        &mut self,
        provider: &str,
        at: DateTime<Utc>,
    ) -> Option<ProviderAlert> {
        let state = self.breakers.get_mut(provider)?;
        if state.alert_held_until.is_some_and(|until| at < until) {
            return None;
        }
        state.alert_held_until = None;
        state.alert.take()
    }

    /// `provider`'s alert, if one is raised.
    pub fn alert(&self, provider: &str) -> Option<&ProviderAlert> {
        self.breakers.get(provider)?.alert.as_ref()
    }

    /// Whether `provider`'s breaker is open.
    pub fn is_dark(&self, provider: &str) -> bool {
        self.breakers
            .get(provider)
            .is_some_and(BreakerState::is_open)
    }

    /// Scores every component at `now`.
    pub fn snapshot(&self, now: DateTime<Utc>, scoring: &Scoring) -> Scores {
        let components = self
            .components
            .iter()
            .map(|(key, record)| (key.clone(), score(record, now, scoring)))
            .collect();
        let dark = self
            .breakers
            .iter()
            .filter(|(_, b)| b.is_open())
            .map(|(p, _)| p.clone())
            .collect();
        let suspect = self
            .breakers
            .iter()
            .filter(|(_, b)| !b.is_open() && b.failures > 0)
            .map(|(p, _)| p.clone())
            .collect();
        let alerted = self
            .breakers
            .iter()
            .filter(|(_, b)| b.alert.is_some())
            .map(|(p, _)| p.clone())
            .collect();
        Scores {
            components,
            dark,
            suspect,
            alerted,
        }
    }
}

/// One component's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    /// Decayed probe success, 0..=1.
    pub success: f64,
    /// Observations' worth of evidence left.
    pub confidence: f64,
    /// Median RTT, milliseconds.
    pub rtt_p50_ms: Option<f64>,
    /// 90th percentile RTT, milliseconds.
    pub rtt_p90_ms: Option<f64>,
    /// Decayed throughput, bytes per second.
    pub throughput_bps: Option<f64>,
    /// Decayed client-reported quality.
    pub client_quality: Option<f64>,
    /// The weighted score, 0..=1.
    pub value: f64,
    /// Success at or above the policy's healthy threshold.
    pub healthy: bool,
    /// Clients report it as blocked.
    pub blocked: bool,
}

fn score(record: &Record, now: DateTime<Utc>, scoring: &Scoring) -> Score {
    let hl = scoring.half_life.0;
    let success = record.success.mean().unwrap_or(0.0);
    let confidence = record.success.confidence(now, hl);
    let rtt_p50_ms = record.rtt.quantile(0.5);
    let rtt_p90_ms = record.rtt.quantile(0.9);
    let throughput_bps = record.throughput.mean();
    let client_quality = record.client.mean();
    let w = &scoring.weights;
    let mut parts = vec![(w.probe, success)];
    if let Some(p50) = rtt_p50_ms {
        let reference = scoring.rtt_reference_ms;
        parts.push((w.rtt, reference / (reference + p50)));
    }
    if let Some(bps) = throughput_bps {
        parts.push((w.throughput, bps / (bps + 1_000_000.0)));
    }
    if let Some(q) = client_quality {
        parts.push((w.client, q));
    }
    let weight: f64 = parts.iter().map(|(w, _)| w).sum();
    let value = if weight > 0.0 {
        parts.iter().map(|(w, v)| w * v).sum::<f64>() / weight
    } else {
        success
    };
    Score {
        success,
        confidence,
        rtt_p50_ms,
        rtt_p90_ms,
        throughput_bps,
        client_quality,
        value,
        healthy: confidence > 0.0 && success >= scoring.healthy_threshold,
        blocked: client_quality.is_some_and(|q| q < scoring.blocked_below),
    }
}

/// Scores at one instant: what the planner reads (a hash map: the planner looks up every
/// node's score once per plan).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Per component key.
    pub components: FastMap<String, Score>,
    /// Providers whose breaker is open.
    pub dark: BTreeSet<String>,
    /// Providers whose last tick failed while their breaker is still closed. Acting on one
    /// failed tick is cheap where it cannot hurt: their paths leave the catalog at once
    /// (unless a region would be left with none), warm spares elsewhere stand in for their
    /// live ingress, and no create is sent to them. Replacing their nodes waits for the
    /// breaker, so one lost answer does not churn the fleet.
    pub suspect: BTreeSet<String>,
    /// Providers with a raised alert (refused credentials, an exhausted quota): they keep
    /// their nodes and paths, but no create is sent to them, since it would be refused
    /// again; other providers take the create.
    #[serde(default)]
    pub alerted: BTreeSet<String>,
}

impl Scores {
    /// The score of a component.
    pub fn get(&self, key: &str) -> Option<&Score> {
        self.components.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::UNIX_EPOCH + TimeDelta::seconds(1_800_000_000 + secs)
    }

    #[test]
    fn old_failures_fade_with_the_half_life() {
        let scoring = Scoring::default(); // half-life 10 min
        let mut book = ScoreBook::default();
        for i in 0..10 {
            book.probe("n", t(i), false, None, &scoring);
        }
        let s = book.snapshot(t(10), &scoring);
        assert!(!s.get("n").unwrap().healthy);
        // One half-life later, ten fresh successes outweigh the faded failures.
        for i in 0..10 {
            book.probe(
                "n",
                t(600 + i),
                true,
                Some(Duration::from_millis(20)),
                &scoring,
            );
        }
        let s = book.snapshot(t(610), &scoring);
        let n = s.get("n").unwrap();
        assert!(n.healthy, "{n:?}");
        assert!((n.success - 2.0 / 3.0).abs() < 0.05, "{n:?}");
        assert_eq!(n.rtt_p50_ms, Some(26.0));
    }

    #[test]
    fn confidence_decays_to_nothing() {
        let scoring = Scoring::default();
        let mut book = ScoreBook::default();
        book.probe("n", t(0), true, None, &scoring);
        let near = book.snapshot(t(0), &scoring).get("n").unwrap().confidence;
        let far = book
            .snapshot(t(6000), &scoring)
            .get("n")
            .unwrap()
            .confidence;
        assert!((near - 1.0).abs() < 1e-9);
        assert!(far < 0.001);
    }

    #[test]
    fn blocked_and_weighted() {
        let scoring = Scoring::default();
        let mut book = ScoreBook::default();
        book.probe("n", t(0), true, Some(Duration::from_millis(80)), &scoring);
        book.client_report("n", t(0), 0.1, &scoring);
        let n = book.snapshot(t(0), &scoring).components["n"].clone();
        assert!(n.blocked && n.healthy);
        assert!(n.value < 0.8 && n.value > 0.4, "{n:?}");
    }

    #[test]
    fn breaker_opens_after_the_threshold_and_closes_after_the_cooldown() {
        let scoring = Scoring::default(); // 2 failures, 5 min cooldown
        let b = &scoring.breaker;
        let mut book = ScoreBook::default();
        book.provider_tick("p", t(0), Err("503".into()), b);
        assert!(!book.is_dark("p"));
        let first = book.snapshot(t(0), &scoring);
        assert!(first.suspect.contains("p") && first.dark.is_empty());
        book.provider_tick("p", t(60), Err("503".into()), b);
        assert!(book.is_dark("p"));
        let open = book.snapshot(t(60), &scoring);
        assert!(open.dark.contains("p") && open.suspect.is_empty());
        // A good tick inside the cooldown does not close it.
        book.provider_tick("p", t(120), Ok(()), b);
        assert!(book.is_dark("p"));
        book.provider_tick("p", t(400), Ok(()), b);
        assert!(!book.is_dark("p"));
        assert!(book.snapshot(t(400), &scoring).dark.is_empty());
    }

    #[test]
    fn alerts_are_raised_once_leave_the_breaker_alone_and_clear_on_an_answer() {
        let scoring = Scoring::default();
        let b = &scoring.breaker;
        let mut book = ScoreBook::default();
        book.provider_tick("p", t(0), Err("503".into()), b);
        assert!(book.provider_alert("p", t(60), "unauthenticated", "401 a".into()));
        assert!(!book.provider_alert("p", t(120), "unauthenticated", "401 b".into()));
        assert!(book.provider_alert("p", t(180), "quota_exceeded", "quota".into()));
        assert!(book.provider_alert("p", t(240), "unauthenticated", "401 c".into()));
        let alert = book.alert("p").unwrap();
        assert_eq!(
            (alert.kind.as_str(), alert.since, alert.error.as_str()),
            ("unauthenticated", t(240), "401 c")
        );
        // Neither counted nor reset: one earlier failure, still closed.
        assert_eq!(book.breakers["p"].failures, 1);
        assert!(!book.is_dark("p"));
        assert!(book.snapshot(t(240), &scoring).suspect.contains("p"));
        let json = serde_json::to_value(&book).unwrap();
        assert_eq!(json["breakers"]["p"]["alert"]["kind"], "unauthenticated");
        assert!(book.snapshot(t(240), &scoring).alerted.contains("p"));
        assert_eq!(book.provider_answered("p", t(300)).unwrap().error, "401 c");
        assert_eq!(book.alert("p"), None);
        assert!(book.snapshot(t(300), &scoring).alerted.is_empty());
        assert_eq!(book.provider_answered("p", t(300)), None);
        assert_eq!(book.provider_answered("never-seen", t(300)), None);
        // A book written before alerts existed still reads.
        let old = r#"{"components":{},"breakers":{"p":{"failures":0,"open_until":null,
            "last_error":null}}}"#;
        let old: ScoreBook = serde_json::from_str(old).unwrap();
        assert_eq!(old.alert("p"), None);
        assert!(!serde_json::to_string(&old).unwrap().contains("alert"));
    }

    #[test]
    fn a_held_alert_outlasts_answers_until_its_hold_ends() {
        let mut book = ScoreBook::default();
        assert!(book.provider_alert("p", t(0), "quota_exceeded", "limit".into()));
        book.hold_alert("p", t(120));
        // An earlier hold never shortens a later one.
        book.hold_alert("p", t(60));
        for at in [t(0), t(60), t(119)] {
            assert_eq!(book.provider_answered("p", at), None, "held at {at}");
            assert!(book.alert("p").is_some());
        }
        let cleared = book.provider_answered("p", t(120)).unwrap();
        assert_eq!(cleared.kind, "quota_exceeded");
        assert_eq!(book.breakers["p"].alert_held_until, None);
        // With the hold gone, the next alert clears on the first answer.
        assert!(book.provider_alert("p", t(180), "unauthenticated", "401".into()));
        assert!(book.provider_answered("p", t(180)).is_some());
        let json = serde_json::to_string(&book).unwrap();
        assert!(!json.contains("alert"), "{json}");
    }
}
