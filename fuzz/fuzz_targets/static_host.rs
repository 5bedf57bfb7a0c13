//! Arbitrary text through the static-host inventory parser: errors, never panics.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = damm_adapter_static_host::Inventory::parse(std::path::Path::new("hosts.toml"), text);
    }
});
