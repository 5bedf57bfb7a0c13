//! The hasher of the planner's lookup tables: `rustc-hash`'s `FxHasher` (v2), with its fixed
//! seed.
//!
//! Keys are DAMM's own names, not attacker-chosen, so flooding resistance is not needed. The
//! planner never iterates these maps, so their order does not reach a plan; and because the
//! state is fixed (no per-process random seed), even an iteration, such as serialising
//! [`crate::Scores`], is the same for the same inputs.
//!
//! It replaced a hand-written 64-bit FNV-1a with a murmur3 avalanche (issue 14). Measured on
//! the benchmark's synthetic fleets (`examples/plan_time.rs`, 20 plans of 10k nodes and 5 of
//! 100k), instructions inside `plan` under callgrind, the one figure that other builds on the
//! same two cores do not move: FNV 2,418 M, FxHasher 2,255 M (-6.7 %), foldhash 0.2 (fixed
//! state) 2,247 M (-7.1 %). The plans are byte-for-byte the same JSON with all three. Wall
//! clock (best of 20/5, interleaved runs on the busy machine) is within noise: 10k nodes
//! FNV 7.2-10.3 ms, Fx 6.5-10.8 ms; 100k nodes FNV 117-129 ms, Fx 105-126 ms (one outlier at
//! 159 ms); criterion's `plan` group showed no change beyond its ±20 % noise. FxHasher and
//! foldhash tie, and `rustc-hash` is one small file with no dependencies already in the
//! lock file, so it was chosen.

use std::collections::{HashMap, HashSet};

/// Builds the maps' hashers (fixed state: the same key hashes the same in every process).
pub type FastState = rustc_hash::FxBuildHasher;
/// A map hashed with [`FastState`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A set hashed with [`FastState`].
pub type FastSet<K> = HashSet<K, FastState>;

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher as _;

    use super::*;

    /// The planner's determinism rests on this: no random seed per map or per process.
    #[test]
    fn the_state_is_fixed() {
        let key = ("eu-central", "node-0042");
        assert_eq!(
            FastState::default().hash_one(key),
            FastState::default().hash_one(key)
        );
        let build = || -> Vec<u32> {
            let map: FastMap<u32, ()> = (0..1000).map(|i| (i * 7919, ())).collect();
            map.into_keys().collect()
        };
        assert_eq!(build(), build());
    }
}
