//! The fuzz target's body, a plain function so stable tests (a proptest) exercise it too;
//! `fuzz/fuzz_targets/verify.rs` hands it cargo-fuzz's input.

use chrono::{DateTime, Utc};

use crate::endpoint::Endpoint;
use crate::schema::Catalog;
use crate::signature::{KeyId, PublicKey, SigningKey, VerifyError, sign, verify};
use crate::wg::WgKey;

/// Feeds arbitrary bytes to every parser and to [`verify`]; panics only on a bug.
///
/// The first two bytes (little-endian) say where the rest splits into catalog bytes and
/// signature text. The catalog half is also signed with a fixed key and verified, so the
/// fuzzer reaches the catalog checks behind a valid signature.
pub fn verify_bytes(data: &[u8]) {
    let (split, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0, data),
    };
    let (catalog_bytes, signature_bytes) = rest.split_at(split.min(rest.len()));
    let signature_text = String::from_utf8_lossy(signature_bytes);
    let key = SigningKey::from_seed([0x42; 32], KeyId::from_bytes(*b"fuzzkey!"));
    let trusted = [key.public_key()];
    let now = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).expect("in range");

    let _ = verify(catalog_bytes, &signature_text, &trusted, Some(1), now);
    let _ = PublicKey::from_minisign(&signature_text);
    let _ = SigningKey::from_file(&signature_text);
    let _ = Endpoint::parse(&signature_text);
    let _ = signature_text.parse::<WgKey>();

    // Behind a valid signature, verify and from_json must agree, and only time can refuse a
    // catalog that parses.
    let signature = sign(catalog_bytes, &key, "fuzz");
    let verified = verify(catalog_bytes, &signature, &trusted, None, now);
    match (Catalog::from_json(catalog_bytes), verified) {
        (Ok(catalog), Ok(accepted)) => {
            assert_eq!(catalog, accepted);
            let json = catalog.to_json().expect("a valid catalog serialises");
            Catalog::from_json(json.as_bytes()).expect("a serialised catalog parses again");
        }
        (Ok(_), Err(VerifyError::Expired { .. } | VerifyError::NotYetValid { .. })) => {}
        (Err(_), Err(VerifyError::InvalidCatalog(_))) => {}
        (parsed, verified) => panic!("from_json {parsed:?} disagrees with verify {verified:?}"),
    }
}
