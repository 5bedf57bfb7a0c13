//! State every provider shares: the clock, the address pool, rate-limit buckets.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Hands out addresses from the documentation ranges (RFC 5737, RFC 3849) and takes
/// them back when released.
#[derive(Debug, Default)]
pub(crate) struct AddressPool {
    used_v4: BTreeSet<Ipv4Addr>,
    next_v6: u32,
}

impl AddressPool {
    const RANGES: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];

    /// A free IPv4 address, or `None` when all 759 are taken.
    pub(crate) fn v4(&mut self) -> Option<Ipv4Addr> {
        for [a, b, c] in Self::RANGES {
            for d in 2..=254u8 {
                let ip = Ipv4Addr::new(a, b, c, d);
                if self.used_v4.insert(ip) {
                    return Some(ip);
                }
            }
        }
        None
    }

    /// A fresh /64 inside 2001:db8::/32, as its network address.
    pub(crate) fn v6_network(&mut self) -> Ipv6Addr {
        self.next_v6 += 1;
        let n = self.next_v6;
        Ipv6Addr::new(0x2001, 0x0db8, (n >> 16) as u16, n as u16, 0, 0, 0, 0)
    }

    pub(crate) fn release(&mut self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip {
            self.used_v4.remove(&v4);
        }
    }
}

/// A token bucket as the provider enforces it.
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    pub(crate) capacity: f64,
    per_second: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub(crate) fn new(capacity: u32, period: Duration) -> Self {
        let capacity = f64::from(capacity);
        Bucket {
            capacity,
            per_second: capacity / period.as_secs_f64(),
            tokens: capacity,
            at: Instant::now(),
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.capacity);
        self.at = now;
    }

    /// Takes a token; `false` when empty.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole tokens left.
    pub(crate) fn remaining(&mut self, now: Instant) -> u64 {
        self.refill(now);
        self.tokens.floor() as u64
    }

    /// Time until one more token is there.
    pub(crate) fn until_next(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        }
    }

    /// Time until the bucket is full again.
    pub(crate) fn until_full(&self) -> Duration {
        Duration::from_secs_f64((self.capacity - self.tokens).max(0.0) / self.per_second)
    }
}

/// Unix seconds `after` from now, as rate-limit reset headers carry them.
pub(crate) fn unix_after(after: Duration) -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    (now + after).as_secs_f64().ceil() as u64
}

/// Slices `items` for page `page` (1-based) of `per_page`.
pub(crate) fn page_of<T: Clone>(items: &[T], page: usize, per_page: usize) -> Vec<T> {
    let per_page = per_page.max(1);
    let start = page.saturating_sub(1).saturating_mul(per_page);
    items.iter().skip(start).take(per_page).cloned().collect()
}

/// The number of pages `total` items fill.
pub(crate) fn last_page(total: usize, per_page: usize) -> usize {
    total.div_ceil(per_page.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_documentation_ranges_and_are_reused() {
        let mut pool = AddressPool::default();
        let first = pool.v4().unwrap();
        assert_eq!(first, Ipv4Addr::new(192, 0, 2, 2));
        let all: Vec<_> = std::iter::from_fn(|| pool.v4()).collect();
        assert_eq!(all.len(), 3 * 253 - 1);
        assert!(pool.v4().is_none());
        pool.release(IpAddr::V4(first));
        assert_eq!(pool.v4(), Some(first));
        assert_eq!(pool.v6_network().segments()[..2], [0x2001, 0x0db8]);
    }

    #[test]
    fn pages_slice_and_count() {
        let items: Vec<u32> = (1..=7).collect();
        assert_eq!(page_of(&items, 2, 3), vec![4, 5, 6]);
        assert_eq!(page_of(&items, 3, 3), vec![7]);
        assert!(page_of(&items, 4, 3).is_empty());
        assert_eq!(last_page(7, 3), 3);
        assert_eq!(last_page(0, 3), 1);
    }
}
