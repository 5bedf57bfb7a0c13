//! State every provider shares: the clock, the address pool, rate-limit buckets, and the
//! action log Hetzner and DigitalOcean keep.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Hands out addresses from the documentation ranges (RFC 5737, 759 addresses) and then,
/// for fleets larger than that, from the benchmarking range 198.18.0.0/15 (RFC 2544);
/// neither is routed on the Internet. Released addresses are handed out again, lowest first.
#[derive(Debug, Default)]
pub(crate) struct AddressPool {
    /// Index of the next never-used address.
    next: u32,
    /// Released indices, reused before `next`.
    free: BTreeSet<u32>,
    next_v6: u32,
}

impl AddressPool {
    const DOC_RANGES: [[u8; 3]; 3] = [[192, 0, 2], [198, 51, 100], [203, 0, 113]];
    /// Hosts .2 to .254 of each documentation /24.
    const PER_DOC_RANGE: u32 = 253;
    const DOC: u32 = 3 * Self::PER_DOC_RANGE;
    /// 198.18.0.0/15 minus each /24's .0 and .255.
    const BENCH: u32 = 512 * 254;

    fn address(index: u32) -> Option<Ipv4Addr> {
        if index < Self::DOC {
            let [a, b, c] = Self::DOC_RANGES[(index / Self::PER_DOC_RANGE) as usize];
            let d = 2 + (index % Self::PER_DOC_RANGE) as u8;
            return Some(Ipv4Addr::new(a, b, c, d));
        }
        let i = index - Self::DOC;
        (i < Self::BENCH).then(|| {
            let subnet = i / 254;
            Ipv4Addr::new(
                198,
                18 + (subnet / 256) as u8,
                (subnet % 256) as u8,
                1 + (i % 254) as u8,
            )
        })
    }

    fn index(ip: Ipv4Addr) -> Option<u32> {
        let [a, b, c, d] = ip.octets();
        if let Some(r) = Self::DOC_RANGES.iter().position(|x| *x == [a, b, c]) {
            return (2..=254)
                .contains(&d)
                .then(|| r as u32 * Self::PER_DOC_RANGE + u32::from(d) - 2);
        }
        (a == 198 && (18..=19).contains(&b) && (1..=254).contains(&d))
            .then(|| Self::DOC + (u32::from(b - 18) * 256 + u32::from(c)) * 254 + u32::from(d) - 1)
    }

    /// A free IPv4 address, or `None` when all are taken.
    pub(crate) fn v4(&mut self) -> Option<Ipv4Addr> {
        if let Some(i) = self.free.pop_first() {
            return Self::address(i);
        }
        let ip = Self::address(self.next)?;
        self.next += 1;
        Some(ip)
    }

    /// A fresh /64 inside 2001:db8::/32, as its network address.
    pub(crate) fn v6_network(&mut self) -> Ipv6Addr {
        self.next_v6 += 1;
        let n = self.next_v6;
        Ipv6Addr::new(0x2001, 0x0db8, (n >> 16) as u16, n as u16, 0, 0, 0, 0)
    }

    pub(crate) fn release(&mut self, ip: IpAddr) {
        if let IpAddr::V4(v4) = ip
            && let Some(i) = Self::index(v4)
            && i < self.next
        {
            self.free.insert(i);
        }
    }
}

/// An asynchronous action, as Hetzner and DigitalOcean report them: `kind` on `target` (in
/// the provider's terms), running for `takes` from `started`.
#[derive(Debug, Clone)]
pub(crate) struct Action<T> {
    pub(crate) id: i64,
    pub(crate) kind: &'static str,
    pub(crate) target: T,
    pub(crate) started: DateTime<Utc>,
    pub(crate) takes: Duration,
    pub(crate) done_at: Instant,
}

/// A world's id sequence (`BASE + 1`, `BASE + 2`, …), which Hetzner and DigitalOcean
/// number resources and actions from alike, and the actions started so far.
#[derive(Debug)]
pub(crate) struct ActionLog<T, const BASE: i64> {
    last: i64,
    actions: BTreeMap<i64, Action<T>>,
}

impl<T, const BASE: i64> Default for ActionLog<T, BASE> {
    fn default() -> Self {
        ActionLog {
            last: 0,
            actions: BTreeMap::new(),
        }
    }
}

impl<T: Clone, const BASE: i64> ActionLog<T, BASE> {
    /// The next id of the sequence.
    pub(crate) fn next_id(&mut self) -> i64 {
        self.last += 1;
        BASE + self.last
    }

    /// Starts `kind` on `target`, done after `takes`, and answers it.
    pub(crate) fn start(&mut self, kind: &'static str, target: T, takes: Duration) -> Action<T> {
        let action = Action {
            id: self.next_id(),
            kind,
            target,
            started: Utc::now(),
            takes,
            done_at: Instant::now() + takes,
        };
        self.actions.insert(action.id, action.clone());
        action
    }

    /// The action `id`, if it was started.
    pub(crate) fn get(&self, id: i64) -> Option<&Action<T>> {
        self.actions.get(&id)
    }
}

#[cfg(test)]
mod pool_tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_are_reused() {
        for i in (0..AddressPool::DOC + AddressPool::BENCH).step_by(97) {
            let ip = AddressPool::address(i).unwrap();
            assert_eq!(AddressPool::index(ip), Some(i), "{ip}");
        }
        assert_eq!(
            AddressPool::address(AddressPool::DOC + AddressPool::BENCH),
            None
        );
        let mut pool = AddressPool::default();
        let first = pool.v4().unwrap();
        assert_eq!(first, Ipv4Addr::new(192, 0, 2, 2));
        let all: BTreeSet<_> = std::iter::once(first)
            .chain((1..2000).map(|_| pool.v4().unwrap()))
            .collect();
        assert_eq!(all.len(), 2000, "no address twice");
        assert!(all.contains(&Ipv4Addr::new(198, 18, 0, 1)));
        pool.release(IpAddr::V4(first));
        assert_eq!(pool.v4(), Some(first));
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
pub(crate) fn page_of<T>(items: Vec<T>, page: usize, per_page: usize) -> impl Iterator<Item = T> {
    let per_page = per_page.max(1);
    let start = page.saturating_sub(1).saturating_mul(per_page);
    items.into_iter().skip(start).take(per_page)
}

/// The number of pages `total` items fill.
pub(crate) fn last_page(total: usize, per_page: usize) -> usize {
    total.div_ceil(per_page.max(1)).max(1)
}

/// One page of a list paged by number, as Hetzner, DigitalOcean and Cloudflare page theirs.
#[derive(Debug)]
pub(crate) struct NumberedPage<T> {
    /// Its number, from 1.
    pub(crate) page: usize,
    pub(crate) per_page: usize,
    /// How many items the whole list holds.
    pub(crate) total: usize,
    /// The number of the last page (1 for an empty list).
    pub(crate) last: usize,
    /// The page's items.
    pub(crate) items: Vec<T>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_come_from_reserved_ranges_until_exhausted() {
        let mut pool = AddressPool::default();
        let first = pool.v4().unwrap();
        assert_eq!(first, Ipv4Addr::new(192, 0, 2, 2));
        let all: Vec<_> = std::iter::from_fn(|| pool.v4()).collect();
        assert_eq!(all.len(), 3 * 253 + 512 * 254 - 1);
        assert!(all.iter().all(|ip| {
            let [a, b, ..] = ip.octets();
            ip.is_documentation() || (a == 198 && (18..=19).contains(&b))
        }));
        assert!(pool.v4().is_none());
        pool.release(IpAddr::V4(first));
        assert_eq!(pool.v4(), Some(first));
        assert_eq!(pool.v6_network().segments()[..2], [0x2001, 0x0db8]);
    }

    #[test]
    fn pages_slice_and_count() {
        let items: Vec<u32> = (1..=7).collect();
        let page = |n| page_of(items.clone(), n, 3).collect::<Vec<_>>();
        assert_eq!(page(2), vec![4, 5, 6]);
        assert_eq!(page(3), vec![7]);
        assert!(page(4).is_empty());
        assert_eq!(last_page(7, 3), 3);
        assert_eq!(last_page(0, 3), 1);
    }
}
