//! The one retry, backoff and client-side rate-limit mechanism every adapter shares.
//!
//! - [`RateLimit`]: a token bucket per documented provider limit (Hetzner 3600/hour;
//!   DigitalOcean 5000/hour *and* 250/minute; Cloudflare 1200 per 5 minutes; Vultr
//!   30/second). A call takes one token from every bucket of its provider, waiting when
//!   one is empty; a 429 with a reset hint empties the buckets until then.
//! - [`RetryPolicy`]: retries only temporary errors, with exponential backoff and
//!   decorrelated jitter, capped, honouring the provider's `retry_after`. Calls that are
//!   not idempotent (creates) are never retried blindly: they are made safe by the
//!   idempotency key and replayed by the orchestrator, which looks first. The one exception
//!   is a 429: the provider refused the call before doing anything, so it is sent again
//!   after the wait like any other (a client's bucket and the provider's drift apart when
//!   requests bunch up in flight).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use damm_provider::retry::{RateLimit, RetryPolicy};
//! use damm_provider::{Error, ErrorKind, Operation};
//!
//! let limits = [RateLimit::per_hour(3600)];
//! let policy = RetryPolicy::default();
//! let mut calls = 0;
//! let answer = policy
//!     .run(&limits, true, || {
//!         calls += 1;
//!         let first = calls < 2;
//!         async move {
//!             if first {
//!                 Err(Error::new(ErrorKind::Unavailable, "demo", Operation::ListNodes))
//!             } else {
//!                 Ok("listed")
//!             }
//!         }
//!     })
//!     .await;
//! assert_eq!(answer.unwrap(), "listed");
//! assert_eq!(calls, 2);
//! # }
//! ```

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use crate::{Error, ErrorKind, Result};

/// The longest a provider's rate-limit answer holds its buckets back. Longer hints are cut to
/// this; the circuit breaker takes over from there.
pub const MAX_BLOCK: Duration = Duration::from_secs(3600);

/// Speeds every token bucket's refill up by a factor, process-wide: for simulated runs
/// with compressed time (scenarios against the simulator), never for real providers.
/// Stored as the bits of an `f64`; 1.0 (real time) by default.
static TIME_COMPRESSION: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0x3FF0_0000_0000_0000);

/// Sets the process-wide time compression of client-side rate limits (see the scenario
/// runs in `damm-tests`); `factor` ≥ 1.
pub fn set_time_compression(factor: f64) {
    let factor = if factor.is_finite() {
        factor.max(1.0)
    } else {
        1.0
    };
    TIME_COMPRESSION.store(factor.to_bits(), std::sync::atomic::Ordering::Relaxed);
}

fn compression() -> f64 {
    f64::from_bits(TIME_COMPRESSION.load(std::sync::atomic::Ordering::Relaxed))
}

/// A token bucket: `capacity` calls at once, refilled evenly over `period`.
#[derive(Debug)]
pub struct RateLimit {
    capacity: f64,
    per_second: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// The provider said: nothing until then.
    blocked_until: Option<Instant>,
}

impl RateLimit {
    /// `calls` per `period`, starting full.
    pub fn new(calls: u32, period: Duration) -> Self {
        let capacity = f64::from(calls.max(1));
        RateLimit {
            capacity,
            per_second: capacity / period.as_secs_f64().max(f64::MIN_POSITIVE),
            state: Mutex::new(Bucket {
                tokens: capacity,
                at: Instant::now(),
                blocked_until: None,
            }),
        }
    }

    /// `calls` per second.
    pub fn per_second(calls: u32) -> Self {
        RateLimit::new(calls, Duration::from_secs(1))
    }

    /// `calls` per minute.
    pub fn per_minute(calls: u32) -> Self {
        RateLimit::new(calls, Duration::from_secs(60))
    }

    /// `calls` per hour.
    pub fn per_hour(calls: u32) -> Self {
        RateLimit::new(calls, Duration::from_secs(3600))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a token now, or says how long until one is there.
    pub fn try_acquire(&self) -> std::result::Result<(), Duration> {
        let now = Instant::now();
        let mut b = self.lock();
        if let Some(until) = b.blocked_until {
            if now < until {
                return Err(until - now);
            }
            b.blocked_until = None;
        }
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        let rate = self.per_second * compression();
        b.tokens = (b.tokens + elapsed * rate).min(self.capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / rate))
        }
    }

    /// Waits for a token.
    pub async fn acquire(&self) {
        while let Err(wait) = self.try_acquire() {
            tokio::time::sleep(wait).await;
        }
    }

    /// The provider answered 429: take nothing for `wait` (at most [`MAX_BLOCK`]), and start
    /// empty after it. A `Retry-After` of years, whether a provider's bug or a hostile
    /// answer, would otherwise hold the provider back until a restart (or overflow the clock).
    pub fn block_for(&self, wait: Duration) {
        let now = Instant::now();
        let until = now
            .checked_add(wait.min(MAX_BLOCK))
            .unwrap_or(now + MAX_BLOCK);
        let mut b = self.lock();
        b.blocked_until = Some(b.blocked_until.map_or(until, |u| u.max(until)));
        b.tokens = 0.0;
        b.at = until;
    }

    /// Tokens available now (for metrics and tests).
    pub fn available(&self) -> f64 {
        let b = *self.lock();
        let now = Instant::now();
        if b.blocked_until.is_some_and(|u| now < u) {
            return 0.0;
        }
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        (b.tokens + elapsed * self.per_second * compression()).min(self.capacity)
    }
}

/// How failed calls are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The smallest pause between attempts.
    pub base: Duration,
    /// The largest pause between attempts (a provider's own `retry_after` may exceed it
    /// up to `max_wait`).
    pub cap: Duration,
    /// The longest a provider's `retry_after` is honoured before giving up instead.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base: Duration::from_millis(200),
            cap: Duration::from_secs(10),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The pause after a failed attempt: decorrelated jitter, `random(base, 3 × previous)`
    /// capped, where `unit` is a uniform number in `[0, 1)`.
    pub fn next_delay(&self, previous: Duration, unit: f64) -> Duration {
        let low = self.base.as_secs_f64();
        let high = (previous.as_secs_f64() * 3.0).max(low);
        let pick = low + (high - low) * unit.clamp(0.0, 1.0);
        Duration::from_secs_f64(pick.min(self.cap.as_secs_f64()))
    }

    /// Runs `call` under `limits`, retrying temporary failures when `idempotent`.
    ///
    /// A rate-limit error blocks the buckets for the provider's `retry_after`, so other
    /// calls to the same provider wait too.
    /// `call` is a plain closure returning a future (not an async closure), so the
    /// future stays `Send` inside `async_trait` methods.
    pub async fn run<T, F, Fut>(
        &self,
        limits: &[RateLimit],
        idempotent: bool,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut previous = self.base;
        let mut attempt = 1;
        loop {
            for limit in limits {
                limit.acquire().await;
            }
            let err: Error = match call().await {
                Ok(value) => return Ok(value),
                Err(err) => err,
            };
            if let Some(wait) = err.retry_after() {
                for limit in limits {
                    limit.block_for(wait);
                }
            }
            // A 429 is an answer before any work: the provider refused the call, so even a
            // create is safe to send again once the wait is over.
            let refused_unprocessed = matches!(err.kind(), ErrorKind::RateLimited { .. });
            let give_up = (!idempotent && !refused_unprocessed)
                || !err.is_temporary()
                || attempt >= self.max_attempts
                || err.retry_after().is_some_and(|w| w > self.max_wait);
            if give_up {
                return Err(err);
            }
            let delay = self.next_delay(previous, jitter_unit());
            previous = delay;
            tracing::debug!(
                provider = err.provider(),
                operation = %err.operation(),
                attempt,
                delay_ms = delay.as_millis() as u64,
                "retrying: {err}"
            );
            // The buckets already hold back for `retry_after`; this adds the backoff.
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// A uniform number in `[0, 1)` for jitter (xorshift over a process-wide seed: jitter
/// needs spread, not secrecy).
fn jitter_unit() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0x9E37_79B9_7F4A_7C15);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0x9E37_79B9_7F4A_7C15 {
        x ^= std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
    }
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ErrorKind, Operation};

    fn err(kind: ErrorKind) -> Error {
        Error::new(kind, "p", Operation::ListNodes)
    }

    /// Found by the tailscale fuzz target: `Retry-After: 11111111111111111111` overflowed
    /// the clock in `block_for` and panicked.
    #[tokio::test(start_paused = true)]
    async fn an_absurd_retry_after_is_cut_to_the_maximum_block() {
        let limit = RateLimit::per_second(10);
        limit.block_for(Duration::from_secs(11_111_111_111_111_111_111));
        limit.block_for(Duration::MAX);
        let wait = limit.try_acquire().unwrap_err();
        assert!(wait <= MAX_BLOCK && wait > MAX_BLOCK / 2, "{wait:?}");
        tokio::time::advance(MAX_BLOCK).await;
        limit.acquire().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_spreads_calls_over_its_period() {
        let limit = RateLimit::per_hour(3600);
        let started = Instant::now();
        for _ in 0..3600 {
            limit.acquire().await;
        }
        assert!(
            started.elapsed() < Duration::from_millis(1),
            "a full bucket serves at once"
        );
        limit.acquire().await;
        limit.acquire().await;
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(1990)..Duration::from_millis(2010)).contains(&waited),
            "then one call per second: {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_bucket_of_a_provider_is_respected() {
        // DigitalOcean: 5000/hour and 250/minute.
        let limits = [RateLimit::per_hour(5000), RateLimit::per_minute(250)];
        let started = Instant::now();
        for _ in 0..251 {
            for limit in &limits {
                limit.acquire().await;
            }
        }
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(230)..Duration::from_millis(250)).contains(&waited),
            "the 251st call waits for the minute bucket (60s/250 = 240ms): {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn temporary_errors_are_retried_with_growing_capped_pauses() {
        let policy = RetryPolicy::default();
        let mut attempts = Vec::new();
        let started = Instant::now();
        let result: Result<()> = policy
            .run(&[], true, || {
                attempts.push(started.elapsed());
                std::future::ready(Err(err(ErrorKind::Unavailable)))
            })
            .await;
        assert_eq!(result.unwrap_err().kind(), ErrorKind::Unavailable);
        assert_eq!(attempts.len(), 4);
        for pair in attempts.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(gap >= policy.base && gap <= policy.cap, "{gap:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permanent_errors_and_non_idempotent_calls_are_not_retried() {
        let policy = RetryPolicy::default();
        let mut calls = 0;
        let _ = policy
            .run(&[], true, || {
                calls += 1;
                std::future::ready(Err::<(), _>(err(ErrorKind::NotFound)))
            })
            .await;
        assert_eq!(calls, 1, "not found is final");
        let mut calls = 0;
        let _ = policy
            .run(&[], false, || {
                calls += 1;
                std::future::ready(Err::<(), _>(err(ErrorKind::Unavailable)))
            })
            .await;
        assert_eq!(calls, 1, "a create is never blindly retried");
        // A 429 was refused before any work: the create goes again after the wait.
        let mut calls = 0;
        let result = policy
            .run(&[], false, || {
                calls += 1;
                std::future::ready(if calls == 1 {
                    Err(err(ErrorKind::RateLimited {
                        retry_after: Some(Duration::from_secs(1)),
                    }))
                } else {
                    Ok(())
                })
            })
            .await;
        assert!(result.is_ok());
        assert_eq!(calls, 2, "a refused create is sent again");
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_holds_back_every_caller_of_the_provider() {
        let limits = [RateLimit::per_second(30)];
        let policy = RetryPolicy::default();
        let started = Instant::now();
        let mut calls = 0;
        let result = policy
            .run(&limits, true, || {
                calls += 1;
                std::future::ready(if calls == 1 {
                    Err(err(ErrorKind::RateLimited {
                        retry_after: Some(Duration::from_secs(5)),
                    }))
                } else {
                    Ok(calls)
                })
            })
            .await;
        assert_eq!(result.unwrap(), 2);
        assert!(
            started.elapsed() >= Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Another caller right after also found the bucket refilling from empty.
        assert!(limits[0].available() < 30.0);
        let mut calls = 0;
        let result: Result<()> = policy
            .run(&[], true, || {
                calls += 1;
                std::future::ready(Err(err(ErrorKind::RateLimited {
                    retry_after: Some(Duration::from_secs(3600)),
                })))
            })
            .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "an hour's wait is reported, not slept through");
    }

    #[test]
    fn jitter_stays_between_base_and_cap() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.next_delay(Duration::ZERO, 0.0), policy.base);
        assert_eq!(
            policy.next_delay(Duration::from_secs(100), 0.99),
            policy.cap
        );
        let mid = policy.next_delay(Duration::from_secs(1), 0.5);
        assert!(mid > policy.base && mid < Duration::from_secs(3), "{mid:?}");
        for _ in 0..1000 {
            let u = jitter_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
