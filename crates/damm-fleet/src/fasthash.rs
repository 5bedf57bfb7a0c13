//! A small, fast, deterministic hasher (64-bit FNV-1a with an avalanche) for the planner's lookup tables.
//! Keys are DAMM's own names, not attacker-chosen, so flooding resistance is not needed;
//! nothing iterates these maps, so their order never reaches a plan.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// 64-bit FNV-1a.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        // FNV's high bits mix poorly for short keys, and the table takes its tag from
        // them: finish with murmur3's avalanche.
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Builds [`Fnv`] hashers.
pub type FastState = BuildHasherDefault<Fnv>;
/// A map hashed with [`Fnv`].
pub type FastMap<K, V> = HashMap<K, V, FastState>;
/// A set hashed with [`Fnv`].
pub type FastSet<K> = HashSet<K, FastState>;
