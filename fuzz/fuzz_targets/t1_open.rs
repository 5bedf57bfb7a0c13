//! Arbitrary datagrams through T1's decoder and replay guard: refused, never a panic; what
//! opens under the key round-trips.
#![no_main]

use damm_transport::t1::{Key, ReplayGuard, open, seal};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let key = Key::new(&[7; 32]);
    let mut guard = ReplayGuard::new(120_000, 64);
    if let Ok(opened) = open(&key, data) {
        let _ = guard.admit(&opened, opened.ts_ms);
    }
    // The same bytes as a datagram to carry: sealed, it opens to itself.
    if let Ok(wire) = seal(&key, data, 1, [3; 12], data.len() % 97) {
        assert_eq!(open(&key, &wire).map(|o| o.datagram).as_deref(), Ok(data));
    }
});
