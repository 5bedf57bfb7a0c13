//! Why verification stays ours rather than `minisign-verify` (see `src/signature.rs`): it
//! agrees with us on what we sign, but it cannot say which part of a signature failed, and
//! its Ed25519 check is not strict about small-order keys.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use damm_catalog::{KeyId, PublicKey, VerifyError, sign, sign_catalog, verify_signature};

use crate::common::{key, sample};

fn their_key(key: &PublicKey) -> minisign_verify::PublicKey {
    minisign_verify::PublicKey::from_base64(&key.to_base64()).unwrap()
}

#[test]
fn minisign_verify_accepts_what_we_sign() {
    let signed = sign_catalog(&sample(), &key()).unwrap();
    let signature = minisign_verify::Signature::decode(&signed.signature).unwrap();
    let public = their_key(&key().public_key());
    public
        .verify(signed.json.as_bytes(), &signature, false)
        .unwrap();
    assert!(public.verify(b"other bytes", &signature, false).is_err());
}

/// An altered trusted comment and an altered file are one error to `minisign-verify`
/// (`InvalidSignature`); a client told "the comment was altered" knows the file is intact.
#[test]
fn minisign_verify_cannot_tell_an_altered_comment_from_an_altered_file() {
    let signed = sign_catalog(&sample(), &key()).unwrap();
    let altered = signed
        .signature
        .replace("version:42", "version:43 (rewritten)");
    assert_ne!(altered, signed.signature);
    let trusted = [key().public_key()];
    let public = their_key(&trusted[0]);

    let theirs_comment = minisign_verify::Signature::decode(&altered).unwrap();
    let theirs_comment = public.verify(signed.json.as_bytes(), &theirs_comment, false);
    let theirs_file = minisign_verify::Signature::decode(&signed.signature).unwrap();
    let theirs_file = public.verify(b"altered file", &theirs_file, false);
    assert!(matches!(
        theirs_comment,
        Err(minisign_verify::Error::InvalidSignature)
    ));
    assert!(matches!(
        theirs_file,
        Err(minisign_verify::Error::InvalidSignature)
    ));

    assert!(matches!(
        verify_signature(signed.json.as_bytes(), &altered, &trusted),
        Err(VerifyError::BadTrustedComment { .. })
    ));
    assert!(matches!(
        verify_signature(b"altered file", &signed.signature, &trusted),
        Err(VerifyError::BadSignature { .. })
    ));
}

/// With a small-order "public key" (here the point of order 2) the signature R = identity,
/// S = 0 satisfies cofactorless verification for about one message in four (both the file
/// signature and the comment signature must come out right). `minisign-verify` accepts such
/// forgeries; ed25519-dalek's `verify_strict`, which we use, refuses weak keys outright.
#[test]
fn minisign_verify_accepts_forgeries_under_a_small_order_key() {
    let id = KeyId::from_bytes(*b"weak-key");
    let mut order_two = [0xff_u8; 32];
    order_two[0] = 0xec;
    order_two[31] = 0x7f;
    let mut raw_key = b"Ed".to_vec();
    raw_key.extend_from_slice(id.as_bytes());
    raw_key.extend_from_slice(&order_two);
    let key_line = STANDARD.encode(&raw_key);
    let ours = PublicKey::from_minisign(&key_line).unwrap();
    let theirs = minisign_verify::PublicKey::from_base64(&key_line).unwrap();

    let mut forged_signature = [0_u8; 64];
    forged_signature[0] = 1; // R: the identity point; S: zero.
    let mut line = b"ED".to_vec();
    line.extend_from_slice(id.as_bytes());
    line.extend_from_slice(&forged_signature);
    let mut accepted_by_them = 0;
    for i in 0..64 {
        let text = format!(
            "untrusted comment: forged\n{}\ntrusted comment: damm-catalog/1 forged {i}\n{}\n",
            STANDARD.encode(&line),
            STANDARD.encode(forged_signature)
        );
        let bytes = format!("{{\"forged\": {i}}}");
        let signature = minisign_verify::Signature::decode(&text).unwrap();
        if theirs.verify(bytes.as_bytes(), &signature, false).is_ok() {
            accepted_by_them += 1;
        }
        assert!(
            verify_signature(bytes.as_bytes(), &text, std::slice::from_ref(&ours)).is_err(),
            "we accepted forgery {i}"
        );
    }
    assert!(
        accepted_by_them > 0,
        "minisign-verify refused every forgery: it may have become strict, see signature.rs"
    );
}

/// Our signatures over arbitrary bytes and comments verify under `minisign-verify` too (a
/// third implementation beside ours and the stock tool).
#[test]
fn minisign_verify_agrees_on_arbitrary_inputs() {
    let public = their_key(&key().public_key());
    for (i, comment) in ["", "x", "tabs\tand\nnewlines", &"é".repeat(5000)]
        .into_iter()
        .enumerate()
    {
        let bytes = vec![i as u8; i * 1000];
        let text = sign(&bytes, &key(), comment);
        let signature = minisign_verify::Signature::decode(&text).unwrap();
        public.verify(&bytes, &signature, false).unwrap();
    }
}
