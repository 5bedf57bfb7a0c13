//! Signing and verification: every refusal `verify` promises, and no panic on any input.

use chrono::{DateTime, Duration, Utc};
use damm_catalog::{
    Catalog, KeyId, PublicKey, SigningKey, VerifyError, catalog_trusted_comment, sign,
    sign_catalog, verify, verify_signature,
};
use proptest::prelude::*;

use crate::common::{key, now, other_key, sample};

fn signed() -> (String, String) {
    let signed = sign_catalog(&sample(), &key()).unwrap();
    (signed.json, signed.signature)
}

fn trusted() -> Vec<PublicKey> {
    vec![key().public_key()]
}

#[test]
fn sign_then_verify_round_trips() {
    let (json, sig) = signed();
    let catalog = verify(json.as_bytes(), &sig, &trusted(), None, now()).unwrap();
    assert_eq!(catalog, sample());
    let comment = sig.lines().nth(2).unwrap();
    assert_eq!(
        comment,
        format!("trusted comment: {}", catalog_trusted_comment(&sample()))
    );
    assert!(comment.contains("fleet:demo") && comment.contains("version:42"));
}

#[test]
fn tampering_any_catalog_byte_is_rejected() {
    let (json, sig) = signed();
    for i in 0..json.len() {
        let mut bytes = json.clone().into_bytes();
        bytes[i] ^= 0x01;
        match verify(&bytes, &sig, &trusted(), None, now()) {
            Err(VerifyError::BadSignature { key_id }) => assert_eq!(key_id, key().key_id()),
            other => panic!("byte {i} tampered, got {other:?}"),
        }
    }
    // Appending or dropping a trailing newline is tampering too.
    let longer = format!("{json}\n");
    assert!(verify(longer.as_bytes(), &sig, &trusted(), None, now()).is_err());
    let shorter = json.trim_end();
    assert!(verify(shorter.as_bytes(), &sig, &trusted(), None, now()).is_err());
}

#[test]
fn the_signature_covers_the_offers() {
    let (json, sig) = signed();
    assert!(json.contains("\"offers\"") && json.contains(&"5a".repeat(32)));
    // Valid catalogs each, so only the signature can refuse them: another T1 key, another T3
    // secret path, the offers gone.
    let other_key = json.replace(&"5a".repeat(32), &"6b".repeat(32));
    let other_path = json.replace("/q3Vt7hWc0Zb9xKpL2mNaRg", "/guessed");
    let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value["regions"]["eu-central"]["paths"][0]
        .as_object_mut()
        .unwrap()
        .remove("offers");
    let no_offers = serde_json::to_string_pretty(&value).unwrap() + "\n";
    for forged in [other_key, other_path, no_offers] {
        assert_ne!(forged, json);
        assert!(Catalog::from_json(forged.as_bytes()).is_ok());
        assert!(matches!(
            verify(forged.as_bytes(), &sig, &trusted(), None, now()),
            Err(VerifyError::BadSignature { .. })
        ));
    }
}

/// Replaces base64 character `index` of `line` with another valid base64 character.
fn flip_base64_char(sig: &str, line: usize, index: usize) -> String {
    let mut lines: Vec<String> = sig.lines().map(str::to_owned).collect();
    let mut chars: Vec<char> = lines[line].chars().collect();
    chars[index] = if chars[index] == 'A' { 'B' } else { 'A' };
    lines[line] = chars.into_iter().collect();
    lines.join("\n") + "\n"
}

#[test]
fn tampering_the_signature_is_rejected() {
    let (json, sig) = signed();
    let sig_len = sig.lines().nth(1).unwrap().len();
    // Characters 14.. of line 2 encode the Ed25519 signature (bytes 10..74); the last two
    // characters hold padding bits that base64 decoders refuse when altered.
    for index in 14..sig_len - 2 {
        let bad = flip_base64_char(&sig, 1, index);
        match verify(json.as_bytes(), &bad, &trusted(), None, now()) {
            Err(VerifyError::BadSignature { .. }) => {}
            other => panic!("signature char {index} flipped, got {other:?}"),
        }
    }
    // The algorithm bytes.
    let bad = flip_base64_char(&sig, 1, 0);
    assert!(matches!(
        verify(json.as_bytes(), &bad, &trusted(), None, now()),
        Err(VerifyError::MalformedSignature(_))
    ));
    // The key id bytes.
    let bad = flip_base64_char(&sig, 1, 5);
    assert!(matches!(
        verify(json.as_bytes(), &bad, &trusted(), None, now()),
        Err(VerifyError::UnknownKey { .. })
    ));
}

#[test]
fn tampering_the_trusted_comment_is_rejected() {
    let (json, sig) = signed();
    let bad = sig.replace("version:42", "version:43");
    assert!(matches!(
        verify(json.as_bytes(), &bad, &trusted(), None, now()),
        Err(VerifyError::BadTrustedComment { .. })
    ));
    let global_len = sig.lines().nth(3).unwrap().len();
    // The last three characters hold padding bits (`==`).
    for index in 0..global_len - 3 {
        let bad = flip_base64_char(&sig, 3, index);
        assert!(
            matches!(
                verify(json.as_bytes(), &bad, &trusted(), None, now()),
                Err(VerifyError::BadTrustedComment { .. })
            ),
            "global signature char {index}"
        );
    }
}

#[test]
fn the_untrusted_comment_is_not_signed() {
    let (json, sig) = signed();
    let relabelled = sig.replacen(
        "untrusted comment: signature from damm secret key",
        "untrusted comment: anything at all",
        1,
    );
    assert!(verify(json.as_bytes(), &relabelled, &trusted(), None, now()).is_ok());
}

#[test]
fn unknown_key_is_rejected() {
    let signed = sign_catalog(&sample(), &other_key()).unwrap();
    let err = verify(
        signed.json.as_bytes(),
        &signed.signature,
        &trusted(),
        None,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, VerifyError::UnknownKey { key_id, trusted }
            if *key_id == other_key().key_id() && trusted == &[key().key_id()]),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&other_key().key_id().to_string()),
        "{message}"
    );
    assert!(message.contains(&key().key_id().to_string()), "{message}");
    // No trusted keys at all.
    assert!(matches!(
        verify(signed.json.as_bytes(), &signed.signature, &[], None, now()),
        Err(VerifyError::UnknownKey { .. })
    ));
}

#[test]
fn same_key_id_different_key_is_a_bad_signature() {
    let impostor = SigningKey::from_seed([0x33; 32], key().key_id());
    let signed = sign_catalog(&sample(), &impostor).unwrap();
    assert!(matches!(
        verify(
            signed.json.as_bytes(),
            &signed.signature,
            &trusted(),
            None,
            now()
        ),
        Err(VerifyError::BadSignature { .. })
    ));
    // Trusting both (a key rotation with a colliding id): the right one is found.
    let both = [key().public_key(), impostor.public_key()];
    assert!(
        verify(
            signed.json.as_bytes(),
            &signed.signature,
            &both,
            None,
            now()
        )
        .is_ok()
    );
}

#[test]
fn rotation_trusts_several_keys() {
    let both = [other_key().public_key(), key().public_key()];
    let (json, sig) = signed();
    assert!(verify(json.as_bytes(), &sig, &both, None, now()).is_ok());
}

/// The sample catalog, signed with the trusted key, verified at `at`.
fn verify_sample_at(at: DateTime<Utc>) -> Result<Catalog, VerifyError> {
    let (json, sig) = signed();
    verify(json.as_bytes(), &sig, &trusted(), None, at)
}

#[test]
fn expired_catalog_is_rejected() {
    let expires = sample().expires_at;
    for at in [expires, expires + Duration::days(30)] {
        assert!(
            matches!(verify_sample_at(at), Err(VerifyError::Expired { .. })),
            "at {at}"
        );
    }
    assert!(verify_sample_at(expires - Duration::seconds(1)).is_ok());
    let message = verify_sample_at(expires).unwrap_err().to_string();
    assert!(message.contains("expired"), "{message}");
}

#[test]
fn catalog_from_the_future_is_rejected_beyond_the_skew() {
    let issued = sample().issued_at;
    assert!(matches!(
        verify_sample_at(issued - Duration::minutes(6)),
        Err(VerifyError::NotYetValid { .. })
    ));
    assert!(verify_sample_at(issued - Duration::minutes(4)).is_ok());
}

#[test]
fn rollback_is_rejected_and_refetch_accepted() {
    let (json, sig) = signed();
    let bytes = json.as_bytes();
    assert!(matches!(
        verify(bytes, &sig, &trusted(), Some(43), now()),
        Err(VerifyError::Rollback {
            version: 42,
            last_accepted: 43
        })
    ));
    assert!(verify(bytes, &sig, &trusted(), Some(42), now()).is_ok());
    assert!(verify(bytes, &sig, &trusted(), Some(1), now()).is_ok());
    let message = verify(bytes, &sig, &trusted(), Some(u64::MAX), now())
        .unwrap_err()
        .to_string();
    assert!(message.contains("rollback"), "{message}");
}

#[test]
fn trusted_comment_must_name_the_catalogs_fleet_and_version() {
    let json = sample().to_json().unwrap();
    for (comment, field) in [
        ("damm-catalog/1 fleet:other version:42", "fleet"),
        ("damm-catalog/1 fleet:demo version:41", "version"),
        ("version:042", "version"),
    ] {
        let sig = sign(json.as_bytes(), &key(), comment);
        match verify(json.as_bytes(), &sig, &trusted(), None, now()) {
            Err(VerifyError::CommentMismatch { field: f, .. }) => assert_eq!(f, field, "{comment}"),
            other => panic!("{comment}: {other:?}"),
        }
    }
    // A comment without those tokens (signed by hand with `minisign -S`) is fine.
    let sig = sign(
        json.as_bytes(),
        &key(),
        "timestamp:1795000000\tfile:catalog.json\thashed",
    );
    assert!(verify(json.as_bytes(), &sig, &trusted(), None, now()).is_ok());
}

#[test]
fn signed_but_invalid_catalog_is_rejected() {
    let mut catalog = sample();
    catalog.regions.get_mut("us-east").unwrap().paths[0].score = 1.5;
    // `sign_catalog` refuses to produce it...
    assert!(sign_catalog(&catalog, &key()).is_err());
    // ...and `verify` refuses it when signed anyway.
    let json = serde_json::to_string(&catalog).unwrap();
    let sig = sign(json.as_bytes(), &key(), "");
    let err = verify(json.as_bytes(), &sig, &trusted(), None, now()).unwrap_err();
    assert!(matches!(err, VerifyError::InvalidCatalog(_)), "{err:?}");
    assert!(err.to_string().contains("score"), "{err}");
    for junk in [&b""[..], b"{}", b"null", b"\xff\xfe", b"[1,2,3]"] {
        let sig = sign(junk, &key(), "");
        assert!(matches!(
            verify(junk, &sig, &trusted(), None, now()),
            Err(VerifyError::InvalidCatalog(_))
        ));
    }
}

#[test]
fn malformed_signatures_are_rejected_without_panic() {
    let (json, sig) = signed();
    let lines: Vec<&str> = sig.lines().collect();
    let cases = vec![
        String::new(),
        "\n\n\n\n".to_owned(),
        "untrusted comment: x".to_owned(),
        lines[..2].join("\n"),
        lines[..3].join("\n"),
        format!("{}\n{}\n{}\n{}", lines[1], lines[0], lines[2], lines[3]),
        format!(
            "{}\n{}\n{}\n{}",
            lines[0], lines[1], "trusted comment:x", lines[3]
        ),
        format!(
            "{}\n{}garbage\n{}\n{}",
            lines[0], lines[1], lines[2], lines[3]
        ),
        format!("{}\n{}\n{}\n{}==", lines[0], lines[1], lines[2], lines[3]),
        format!(
            "{}\n{}\n{}\n{}\nextra",
            lines[0], lines[1], lines[2], lines[3]
        ),
        format!(
            "{}\n{}\n{}\n{}",
            lines[0],
            &lines[1][..20],
            lines[2],
            lines[3]
        ),
        format!(
            "{}\n{}\n{}\n{}",
            lines[0],
            "*".repeat(100),
            lines[2],
            lines[3]
        ),
        "untrusted comment: \u{0}\n\u{0}\n\u{0}\n\u{0}".to_owned(),
        "é".repeat(100_000),
        format!("{sig}{}", " ".repeat(20_000)),
    ];
    for case in cases {
        let result = verify(json.as_bytes(), &case, &trusted(), None, now());
        assert!(
            matches!(result, Err(VerifyError::MalformedSignature(_))),
            "{:?}: {result:?}",
            case.get(..80).unwrap_or(&case)
        );
        assert!(verify_signature(json.as_bytes(), &case, &trusted()).is_err());
    }
    // Windows line endings and trailing blank lines are fine.
    let crlf = sig.replace('\n', "\r\n") + "\r\n";
    assert!(verify(json.as_bytes(), &crlf, &trusted(), None, now()).is_ok());
}

#[test]
fn every_error_has_a_readable_message() {
    let id = KeyId::from_bytes([1; 8]);
    let errors = [
        VerifyError::MalformedSignature("line 2".into()),
        VerifyError::UnknownKey {
            key_id: id,
            trusted: vec![],
        },
        VerifyError::BadSignature { key_id: id },
        VerifyError::BadTrustedComment { key_id: id },
        VerifyError::InvalidCatalog(Catalog::from_json(b"{").unwrap_err()),
        VerifyError::CommentMismatch {
            field: "fleet",
            signed: "a".into(),
            catalog: "b".into(),
        },
        VerifyError::Expired {
            expires_at: now(),
            now: now(),
        },
        VerifyError::NotYetValid {
            issued_at: now(),
            now: now(),
        },
        VerifyError::Rollback {
            version: 1,
            last_accepted: 2,
        },
    ];
    let mut seen = std::collections::BTreeSet::new();
    for err in errors {
        let message = err.to_string();
        assert!(message.len() > 20, "{message}");
        assert!(seen.insert(message.clone()), "duplicate message {message}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The fuzz target's body on random input: never panics.
    #[test]
    fn fuzz_body_never_panics(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
        damm_catalog::fuzz::verify_bytes(&data);
    }

    /// Random text as a signature: refused, never a panic.
    #[test]
    fn random_signature_text_is_refused(text in ".{0,400}") {
        let json = sample().to_json().unwrap();
        prop_assert!(verify(json.as_bytes(), &text, &trusted(), None, now()).is_err());
    }

    /// Any one-byte change to a signed catalog is refused.
    #[test]
    fn mutated_catalog_is_refused(position in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (json, sig) = signed();
        let mut bytes = json.into_bytes();
        let i = position.index(bytes.len());
        bytes[i] ^= xor;
        prop_assert!(verify(&bytes, &sig, &trusted(), None, now()).is_err());
    }
}

/// The fuzz body on inputs built around a real catalog, so the signed path is taken too.
#[test]
fn fuzz_body_on_structured_inputs() {
    let json = sample().to_json().unwrap();
    let (_, sig) = signed();
    for catalog in [json.as_str(), "", "{}", &json[..json.len() / 2]] {
        let split = u16::try_from(catalog.len()).unwrap().to_le_bytes();
        let mut data = split.to_vec();
        data.extend_from_slice(catalog.as_bytes());
        data.extend_from_slice(sig.as_bytes());
        damm_catalog::fuzz::verify_bytes(&data);
    }
}
