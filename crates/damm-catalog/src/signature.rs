//! Ed25519 signatures in minisign's file format, and catalog verification.
//!
//! Implemented from minisign's published format description, so the stock tool checks what we
//! sign (`minisign -Vm catalog.json -p damm.pub`) and we check what it signs.
//!
//! - Public key: `untrusted comment: <text>` then base64(`Ed` ‖ key id (8 bytes) ‖ Ed25519
//!   public key (32 bytes)).
//! - Signature: `untrusted comment: <text>`, base64(algorithm (2 bytes) ‖ key id ‖ Ed25519
//!   signature (64 bytes)), `trusted comment: <text>`, base64(Ed25519 signature over
//!   signature ‖ trusted comment bytes) (the "global" signature, which makes the trusted comment
//!   tamper-proof). The algorithm is `ED` (the signed message is the BLAKE2b-512 hash of the
//!   file; what we write) or the legacy `Ed` (the file itself; accepted on verify).
//!
//! The untrusted comment is not signed and is ignored. The secret key never leaves our own
//! file format (`damm-signing-key/1`, see [`SigningKey::to_file`]).
//!
//! # Why not the `minisign` or `minisign-verify` crates
//!
//! What is hand-written here is the file format (about 150 lines of parsing and printing);
//! the cryptography is ed25519-dalek and RustCrypto's BLAKE2b. Both crates were weighed
//! (issue 14) and neither replaces it without losing something:
//!
//! - `minisign-verify` 0.3 (MIT, no dependencies) verifies with its own Ed25519, SHA-512 and
//!   BLAKE2b code (about 2,200 lines). Signing still needs ed25519-dalek and blake2, so this
//!   crate, which clients embed, would carry two implementations of the same primitives.
//!   It also reports an altered file and an altered trusted comment as the same
//!   `InvalidSignature`, where [`VerifyError`] tells `BadSignature` from
//!   `BadTrustedComment`; and its check is cofactorless without refusing small-order keys,
//!   so under such a key it accepts forged signatures that `verify_strict` refuses. The tests
//!   in `tests/suite/minisign_crates.rs` show all three (and that it accepts what we sign).
//! - `minisign` 0.10 (signing) brings scrypt, pbkdf2, salsa20, sha2 0.10 and digest 0.10
//!   (a second digest stack beside blake2's 0.11), rpassword (a terminal password prompt)
//!   and, again, its own Ed25519 and BLAKE2b. Its secret keys are scrypt-boxed minisign key
//!   files, not the `damm-signing-key/1` seed file the orchestrator keeps, and its
//!   `SecretKey`'s `Debug` prints the secret key bytes in hex, where ours prints
//!   `[redacted]`.
//!
//! Interop is tested both ways against the stock `minisign` tool (`tests/suite/interop.rs`).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use blake2::{Blake2b512, Digest as _};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use ed25519_dalek::{Signature, Signer as _};

use crate::schema::{Catalog, CatalogError, SCHEMA_V1};

/// How far in the future `issued_at` may be before a catalog is refused as not yet valid:
/// tolerates clock skew between the orchestrator and clients.
pub const MAX_FUTURE_SKEW: TimeDelta = TimeDelta::minutes(5);

const KEY_ALGORITHM: &[u8; 2] = b"Ed";
const SIG_LEGACY: &[u8; 2] = b"Ed";
const SIG_PREHASHED: &[u8; 2] = b"ED";
const UNTRUSTED_PREFIX: &str = "untrusted comment:";
const TRUSTED_PREFIX: &str = "trusted comment: ";
/// A signature file is four short lines; anything much larger is not one.
const MAX_SIGNATURE_TEXT: usize = 16 * 1024;
/// Below minisign's own trusted comment limit (8 KiB including the prefix).
const MAX_TRUSTED_COMMENT: usize = 8000;
const KEY_FILE_HEADER: &str = "damm-signing-key/1";

/// The 8-byte key id minisign stores next to keys and signatures, so a verifier can tell which
/// key signed. Shown as minisign shows it: 16 upper-case hex digits (little-endian number).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl KeyId {
    /// The id from its bytes, in file order.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        Self(bytes)
    }

    /// The bytes, in file order.
    pub const fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().rev().try_for_each(|b| write!(f, "{b:02X}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = KeyFileError;

    /// 16 hex digits, as [`KeyId`]'s `Display` writes them.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || KeyFileError::SigningKey("the key id is not 16 hex digits".into());
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut bytes = [0u8; 8];
        for (i, byte) in bytes.iter_mut().rev().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Self(bytes))
    }
}

/// Why a key file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// Not a minisign public key.
    #[error("not a minisign public key: {0}")]
    PublicKey(String),
    /// Not a `damm-signing-key/1` file.
    #[error("not a damm signing key file: {0}")]
    SigningKey(String),
}

/// A catalog signing key (Ed25519) with its key id. Its `Debug` never shows the secret, and the
/// secret is wiped from memory on drop.
#[derive(Clone)]
pub struct SigningKey {
    key_id: KeyId,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id)
            .field("secret", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// A fresh key and key id from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide randomness, which leaves nothing safe to do.
    pub fn generate() -> Self {
        let mut seed = [0u8; 32];
        let mut id = [0u8; 8];
        getrandom::fill(&mut seed).expect("the OS random number generator failed");
        getrandom::fill(&mut id).expect("the OS random number generator failed");
        let key = Self::from_seed(seed, KeyId(id));
        seed.fill(0);
        key
    }

    /// The key with this Ed25519 seed (secret key) and key id.
    pub fn from_seed(seed: [u8; 32], key_id: KeyId) -> Self {
        Self {
            key_id,
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        }
    }

    /// The key id written into signatures.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The public half, for clients and for `minisign -p`.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id,
            key: self.key.verifying_key(),
        }
    }

    /// The key as a `damm-signing-key/1` file: the secret seed, the key id and (for the
    /// operator's convenience, checked on load) the minisign public key:
    ///
    /// ```text
    /// # DAMM catalog signing key. SECRET: keep it on the orchestrator, mode 0600.
    /// damm-signing-key/1
    /// key-id: 6E1C0E3B2A9F8D70
    /// public-key: RWRwjZ8qOw4cbu...
    /// seed: base64 of the 32-byte Ed25519 seed
    /// ```
    pub fn to_file(&self) -> String {
        format!(
            "# DAMM catalog signing key. SECRET: keep it on the orchestrator, mode 0600.\n\
             {KEY_FILE_HEADER}\n\
             key-id: {}\n\
             public-key: {}\n\
             seed: {}\n",
            self.key_id,
            self.public_key().to_base64(),
            STANDARD.encode(self.key.as_bytes()),
        )
    }

    /// Reads a `damm-signing-key/1` file (see [`SigningKey::to_file`]). `#` lines and blank
    /// lines are ignored; `public-key` is optional and must match when present.
    pub fn from_file(text: &str) -> Result<Self, KeyFileError> {
        let bad = |reason: &str| KeyFileError::SigningKey(reason.to_owned());
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'));
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(bad("the first line must be `damm-signing-key/1`"));
        }
        let (mut key_id, mut public, mut seed) = (None, None, None);
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad("expected `name: value` lines"))?;
            let slot = match name.trim() {
                "key-id" => &mut key_id,
                "public-key" => &mut public,
                "seed" => &mut seed,
                _ => return Err(bad("unknown field (expected key-id, public-key, seed)")),
            };
            if slot.replace(value.trim()).is_some() {
                return Err(bad("a field appears twice"));
            }
        }
        let key_id: KeyId = key_id.ok_or_else(|| bad("no `key-id`"))?.parse()?;
        let seed = STANDARD
            .decode(seed.ok_or_else(|| bad("no `seed`"))?)
            .map_err(|_| bad("the seed is not base64"))?;
        let mut seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| bad("the seed is not 32 bytes"))?;
        let key = Self::from_seed(seed, key_id);
        seed.fill(0);
        if let Some(public) = public
            && PublicKey::from_minisign(public).ok() != Some(key.public_key())
        {
            return Err(bad("`public-key` does not belong to this seed and key id"));
        }
        Ok(key)
    }
}

/// A public key trusted to sign catalogs, with its key id.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key_id: KeyId,
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .field("minisign", &self.to_base64())
            .finish()
    }
}

impl PublicKey {
    /// The key id.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// The key as a minisign public key file (`damm.pub`).
    pub fn to_minisign(&self) -> String {
        format!(
            "{UNTRUSTED_PREFIX} minisign public key {}\n{}\n",
            self.key_id,
            self.to_base64()
        )
    }

    /// The key's base64 line alone, as `minisign -P` takes it.
    pub fn to_base64(&self) -> String {
        let mut raw = Vec::with_capacity(42);
        raw.extend_from_slice(KEY_ALGORITHM);
        raw.extend_from_slice(&self.key_id.0);
        raw.extend_from_slice(self.key.as_bytes());
        STANDARD.encode(raw)
    }

    /// Reads a minisign public key: the whole file, or its base64 line alone.
    pub fn from_minisign(text: &str) -> Result<Self, KeyFileError> {
        let bad = |reason: &str| KeyFileError::PublicKey(reason.to_owned());
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with(UNTRUSTED_PREFIX));
        let line = lines.next().ok_or_else(|| bad("no key line"))?;
        if lines.next().is_some() {
            return Err(bad("more than one key line"));
        }
        let raw = decode_exact::<42>(line)
            .ok_or_else(|| bad("the key line is not 42 bytes of base64"))?;
        if &raw[..2] != KEY_ALGORITHM {
            return Err(bad("not an Ed25519 key (algorithm is not `Ed`)"));
        }
        let key_id = KeyId(raw[2..10].try_into().expect("8 bytes"));
        let key_bytes: [u8; 32] = raw[10..].try_into().expect("32 bytes");
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes)
            .map_err(|_| bad("the key is not a valid Ed25519 point"))?;
        Ok(Self { key_id, key })
    }
}

impl FromStr for PublicKey {
    type Err = KeyFileError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::from_minisign(text)
    }
}

/// The algorithm of a minisign signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignatureAlgorithm {
    /// `ED`: Ed25519 over the BLAKE2b-512 hash of the file (minisign's default; what we write).
    Prehashed,
    /// `Ed`: Ed25519 over the file itself (minisign before 0.8; accepted on verify).
    Legacy,
}

/// What a valid signature says besides "valid".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The key that signed.
    pub key_id: KeyId,
    /// The signature algorithm.
    pub algorithm: SignatureAlgorithm,
    /// The trusted (signed) comment.
    pub trusted_comment: String,
}

/// Why a catalog was refused. Every case is a reason not to use the catalog; a client keeps the
/// one it has.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The signature text is not a minisign signature.
    #[error("malformed signature: {0}")]
    MalformedSignature(String),
    /// Signed by a key the client does not trust.
    #[error(
        "signed by key {key_id}, which is not a trusted key (trusted: {})",
        list_ids(trusted)
    )]
    UnknownKey {
        /// The signing key's id.
        key_id: KeyId,
        /// The ids of the trusted keys.
        trusted: Vec<KeyId>,
    },
    /// The signature does not match the bytes.
    #[error(
        "the signature by key {key_id} does not match the catalog: it was altered or is not the file that was signed"
    )]
    BadSignature {
        /// The signing key's id.
        key_id: KeyId,
    },
    /// The signature matches the bytes but the trusted comment's (global) signature does not.
    #[error("the trusted comment's signature by key {key_id} is invalid: the comment was altered")]
    BadTrustedComment {
        /// The signing key's id.
        key_id: KeyId,
    },
    /// Correctly signed, but not a valid catalog.
    #[error("the signature is valid but the catalog is not: {0}")]
    InvalidCatalog(#[source] CatalogError),
    /// The trusted comment names another fleet or version than the catalog holds.
    #[error("the trusted comment says {field} `{signed}` but the catalog says `{catalog}`")]
    CommentMismatch {
        /// `fleet` or `version`.
        field: &'static str,
        /// The value in the trusted comment.
        signed: String,
        /// The value in the catalog.
        catalog: String,
    },
    /// Past its `expires_at`.
    #[error("the catalog expired at {expires_at} (now is {now}); fetch a fresh one")]
    Expired {
        /// The catalog's `expires_at`.
        expires_at: DateTime<Utc>,
        /// The verifier's clock.
        now: DateTime<Utc>,
    },
    /// `issued_at` lies further in the future than [`MAX_FUTURE_SKEW`].
    #[error(
        "the catalog is issued at {issued_at}, more than 5 minutes after now ({now}): check the clock"
    )]
    NotYetValid {
        /// The catalog's `issued_at`.
        issued_at: DateTime<Utc>,
        /// The verifier's clock.
        now: DateTime<Utc>,
    },
    /// Older than the last catalog the client accepted.
    #[error(
        "catalog version {version} is older than version {last_accepted}, already accepted: rollback refused"
    )]
    Rollback {
        /// The catalog's version.
        version: u64,
        /// The last version the client accepted.
        last_accepted: u64,
    },
}

fn list_ids(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "none".to_owned();
    }
    ids.iter()
        .map(KeyId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Signs `bytes` with `key`, returning the text of a minisign signature file (`.minisig`),
/// algorithm `ED`.
///
/// The trusted comment is signed too; control characters in it become spaces, trailing
/// whitespace is dropped and it is cut to 8000 bytes, so that it stays one line minisign reads.
pub fn sign(bytes: &[u8], key: &SigningKey, trusted_comment: &str) -> String {
    let comment = clean_comment(trusted_comment);
    let signature = key.key.sign(&Blake2b512::digest(bytes)).to_bytes();
    let mut line = Vec::with_capacity(74);
    line.extend_from_slice(SIG_PREHASHED);
    line.extend_from_slice(&key.key_id.0);
    line.extend_from_slice(&signature);
    let global = key
        .key
        .sign(&global_message(&signature, &comment))
        .to_bytes();
    format!(
        "{UNTRUSTED_PREFIX} signature from damm secret key {}\n{}\n{TRUSTED_PREFIX}{comment}\n{}\n",
        key.key_id,
        STANDARD.encode(line),
        STANDARD.encode(global),
    )
}

fn clean_comment(comment: &str) -> String {
    let mut out: String = comment
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    out.truncate(out.trim_end().len());
    if out.len() > MAX_TRUSTED_COMMENT {
        let mut cut = MAX_TRUSTED_COMMENT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

fn global_message(signature: &[u8; 64], comment: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(64 + comment.len());
    message.extend_from_slice(signature);
    message.extend_from_slice(comment.as_bytes());
    message
}

/// A catalog as published: its JSON and the minisign signature of exactly those bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCatalog {
    /// The catalog file (`catalog.json`).
    pub json: String,
    /// The signature file (`catalog.json.minisig`).
    pub signature: String,
}

/// The trusted comment written for a catalog: schema, fleet, version and validity window, so
/// `minisign -V` shows them and [`verify`] cross-checks fleet and version.
pub fn catalog_trusted_comment(catalog: &Catalog) -> String {
    format!(
        "{SCHEMA_V1} fleet:{} version:{} issued_at:{} expires_at:{}",
        catalog.fleet,
        catalog.version,
        catalog
            .issued_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        catalog
            .expires_at
            .to_rfc3339_opts(SecondsFormat::AutoSi, true),
    )
}

/// Validates, serialises and signs a catalog.
pub fn sign_catalog(catalog: &Catalog, key: &SigningKey) -> Result<SignedCatalog, CatalogError> {
    let json = catalog.to_json()?;
    let signature = sign(json.as_bytes(), key, &catalog_trusted_comment(catalog));
    Ok(SignedCatalog { json, signature })
}

/// Checks a minisign signature over `bytes` against the trusted keys, and nothing else: use it
/// for signed files that are not catalogs. Catalogs go through [`verify`].
pub fn verify_signature(
    bytes: &[u8],
    signature_text: &str,
    trusted_keys: &[PublicKey],
) -> Result<VerifiedSignature, VerifyError> {
    let parsed = parse_signature(signature_text)?;
    let key_id = parsed.key_id;
    let mut candidates = trusted_keys
        .iter()
        .filter(|k| k.key_id == key_id)
        .peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::UnknownKey {
            key_id,
            trusted: trusted_keys.iter().map(|k| k.key_id).collect(),
        });
    }
    let message: Cow<'_, [u8]> = match parsed.algorithm {
        SignatureAlgorithm::Prehashed => Cow::Owned(Blake2b512::digest(bytes).to_vec()),
        SignatureAlgorithm::Legacy => Cow::Borrowed(bytes),
    };
    let signature = Signature::from_bytes(&parsed.signature);
    let global = Signature::from_bytes(&parsed.global);
    let global_message = global_message(&parsed.signature, &parsed.trusted_comment);
    let mut error = VerifyError::BadSignature { key_id };
    // Two trusted keys may share an id; the signature decides which one signed.
    for key in candidates {
        if key.key.verify_strict(&message, &signature).is_err() {
            continue;
        }
        if key.key.verify_strict(&global_message, &global).is_err() {
            error = VerifyError::BadTrustedComment { key_id };
            continue;
        }
        return Ok(VerifiedSignature {
            key_id,
            algorithm: parsed.algorithm,
            trusted_comment: parsed.trusted_comment,
        });
    }
    Err(error)
}

/// Verifies a signed catalog the way a client must before using it.
///
/// Refuses, in this order: a malformed signature, a key not in `trusted_keys`, a signature that
/// does not match `bytes`, an altered trusted comment, bytes that are not a valid catalog, a
/// trusted comment naming another fleet or version, an expired catalog (`now >= expires_at`), a
/// catalog issued more than [`MAX_FUTURE_SKEW`] after `now`, and a version lower than
/// `last_accepted_version` (the same version is accepted: a re-fetch of the same catalog).
///
/// The caller checks that [`Catalog::fleet`] is the fleet it enrolled in, and stores the
/// accepted version for the next call.
///
/// ```
/// # use std::collections::BTreeMap;
/// # use chrono::{Duration, Utc};
/// # use damm_catalog::{Catalog, SigningKey, VerifyError, sign_catalog, verify};
/// # let now = Utc::now();
/// # let catalog = Catalog {
/// #     schema: damm_catalog::SCHEMA_V1.into(),
/// #     fleet: "demo".into(),
/// #     version: 7,
/// #     issued_at: now,
/// #     expires_at: now + Duration::hours(6),
/// #     validated_for: vec![],
/// #     regions: BTreeMap::new(),
/// # };
/// let key = SigningKey::generate();
/// let signed = sign_catalog(&catalog, &key)?;
/// let trusted = [key.public_key()];
/// let bytes = signed.json.as_bytes();
/// assert!(verify(bytes, &signed.signature, &trusted, Some(7), now).is_ok());
/// assert!(matches!(
///     verify(bytes, &signed.signature, &trusted, Some(8), now),
///     Err(VerifyError::Rollback { version: 7, last_accepted: 8 })
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(
    bytes: &[u8],
    signature_text: &str,
    trusted_keys: &[PublicKey],
    last_accepted_version: Option<u64>,
    now: DateTime<Utc>,
) -> Result<Catalog, VerifyError> {
    let verified = verify_signature(bytes, signature_text, trusted_keys)?;
    let catalog = Catalog::from_json(bytes).map_err(VerifyError::InvalidCatalog)?;
    check_comment(&verified.trusted_comment, &catalog)?;
    if now >= catalog.expires_at {
        return Err(VerifyError::Expired {
            expires_at: catalog.expires_at,
            now,
        });
    }
    if catalog.issued_at > now + MAX_FUTURE_SKEW {
        return Err(VerifyError::NotYetValid {
            issued_at: catalog.issued_at,
            now,
        });
    }
    if let Some(last_accepted) = last_accepted_version
        && catalog.version < last_accepted
    {
        return Err(VerifyError::Rollback {
            version: catalog.version,
            last_accepted,
        });
    }
    Ok(catalog)
}

/// `fleet:` and `version:` in the trusted comment, when present, must be the catalog's. A
/// comment without them (say, signed by hand with `minisign -S`) is accepted.
fn check_comment(comment: &str, catalog: &Catalog) -> Result<(), VerifyError> {
    for token in comment.split_whitespace() {
        let (field, signed, actual) = if let Some(fleet) = token.strip_prefix("fleet:") {
            ("fleet", fleet, catalog.fleet.clone())
        } else if let Some(version) = token.strip_prefix("version:") {
            ("version", version, catalog.version.to_string())
        } else {
            continue;
        };
        if signed != actual {
            return Err(VerifyError::CommentMismatch {
                field,
                signed: signed.to_owned(),
                catalog: actual,
            });
        }
    }
    Ok(())
}

struct ParsedSignature {
    algorithm: SignatureAlgorithm,
    key_id: KeyId,
    signature: [u8; 64],
    trusted_comment: String,
    global: [u8; 64],
}

fn parse_signature(text: &str) -> Result<ParsedSignature, VerifyError> {
    let bad = |reason: &str| VerifyError::MalformedSignature(reason.to_owned());
    if text.len() > MAX_SIGNATURE_TEXT {
        return Err(bad("larger than 16 KiB, not a minisign signature file"));
    }
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    if !lines
        .next()
        .is_some_and(|l| l.starts_with(UNTRUSTED_PREFIX))
    {
        return Err(bad("line 1 must start with `untrusted comment:`"));
    }
    let raw = lines
        .next()
        .and_then(decode_exact::<74>)
        .ok_or_else(|| bad("line 2 must be the base64 signature (74 bytes)"))?;
    let algorithm = match <&[u8; 2]>::try_from(&raw[..2]).expect("2 bytes") {
        SIG_PREHASHED => SignatureAlgorithm::Prehashed,
        SIG_LEGACY => SignatureAlgorithm::Legacy,
        _ => return Err(bad("unknown signature algorithm (expected `ED` or `Ed`)")),
    };
    let trusted_comment = lines
        .next()
        .and_then(|l| l.strip_prefix(TRUSTED_PREFIX))
        .ok_or_else(|| bad("line 3 must start with `trusted comment: `"))?
        .to_owned();
    let global = lines
        .next()
        .and_then(decode_exact::<64>)
        .ok_or_else(|| bad("line 4 must be the base64 trusted comment signature (64 bytes)"))?;
    if lines.any(|l| !l.trim().is_empty()) {
        return Err(bad("unexpected text after line 4"));
    }
    Ok(ParsedSignature {
        algorithm,
        key_id: KeyId(raw[2..10].try_into().expect("8 bytes")),
        signature: raw[10..].try_into().expect("64 bytes"),
        trusted_comment,
        global,
    })
}

/// Standard base64 (surrounding whitespace ignored) decoding to exactly `N` bytes.
fn decode_exact<const N: usize>(text: &str) -> Option<[u8; N]> {
    let text = text.trim();
    // Encoded length of N bytes: refuse longer input before decoding it.
    if text.len() > N.div_ceil(3) * 4 {
        return None;
    }
    STANDARD.decode(text).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_seed([7; 32], KeyId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]))
    }

    #[test]
    fn key_id_displays_like_minisign() {
        let id = KeyId::from_bytes([1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(id.to_string(), "0807060504030201");
        assert_eq!("0807060504030201".parse::<KeyId>().unwrap(), id);
        assert!("08070605040302".parse::<KeyId>().is_err());
        assert!("080706050403020G".parse::<KeyId>().is_err());
    }

    #[test]
    fn signing_key_file_round_trips_and_hides_the_secret() {
        let key = SigningKey::generate();
        let file = key.to_file();
        let again = SigningKey::from_file(&file).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let seed = STANDARD.encode(key.key.as_bytes());
        assert!(file.contains(&seed));
        for shown in [format!("{key:?}"), format!("{key:#?}")] {
            assert!(!shown.contains(&seed), "{shown}");
            assert!(shown.contains("redacted"));
        }
        // Without the optional public-key line.
        let short: String = file
            .lines()
            .filter(|l| !l.starts_with("public-key"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            SigningKey::from_file(&short).unwrap().public_key(),
            key.public_key()
        );
    }

    #[test]
    fn signing_key_file_refuses_broken_files() {
        let good = key().to_file();
        let other = SigningKey::generate().public_key().to_base64();
        let cases = [
            String::new(),
            good.replace("damm-signing-key/1", "damm-signing-key/2"),
            good.replace("seed:", "sed:"),
            good.replace("key-id: 0807060504030201", "key-id: 0807060504030202"),
            good.replace(&key().public_key().to_base64(), &other),
            format!("{good}seed: AAAA\n"),
            good.lines()
                .filter(|l| !l.starts_with("seed"))
                .collect::<Vec<_>>()
                .join("\n"),
        ];
        for case in cases {
            assert!(SigningKey::from_file(&case).is_err(), "{case}");
        }
    }

    #[test]
    fn public_key_file_round_trips() {
        let public = key().public_key();
        let file = public.to_minisign();
        assert!(file.starts_with("untrusted comment: minisign public key 0807060504030201\n"));
        assert_eq!(PublicKey::from_minisign(&file).unwrap(), public);
        assert_eq!(
            PublicKey::from_minisign(&public.to_base64()).unwrap(),
            public
        );
        assert!(PublicKey::from_minisign("untrusted comment: x\n").is_err());
        assert!(PublicKey::from_minisign(&format!("{file}{file}")).is_err());
    }

    #[test]
    fn signature_has_minisign_shape() {
        let sig = sign(b"hello\n", &key(), "a\nb\r\tc  ");
        let lines: Vec<&str> = sig.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("untrusted comment: "));
        assert_eq!(
            &STANDARD.decode(lines[1]).unwrap()[..10],
            b"ED\x01\x02\x03\x04\x05\x06\x07\x08"
        );
        assert_eq!(lines[2], "trusted comment: a b  c");
        assert_eq!(STANDARD.decode(lines[3]).unwrap().len(), 64);
        assert!(sig.ends_with('\n'));
        let verified = verify_signature(b"hello\n", &sig, &[key().public_key()]).unwrap();
        assert_eq!(verified.algorithm, SignatureAlgorithm::Prehashed);
        assert_eq!(verified.trusted_comment, "a b  c");
    }

    #[test]
    fn legacy_signatures_verify() {
        // Built by hand: `Ed` signs the bytes themselves.
        let key = key();
        let signature = key.key.sign(b"legacy").to_bytes();
        let mut line = b"Ed".to_vec();
        line.extend_from_slice(&key.key_id.0);
        line.extend_from_slice(&signature);
        let global = key.key.sign(&global_message(&signature, "old")).to_bytes();
        let text = format!(
            "untrusted comment: x\r\n{}\r\ntrusted comment: old\r\n{}\r\n",
            STANDARD.encode(line),
            STANDARD.encode(global)
        );
        let verified = verify_signature(b"legacy", &text, &[key.public_key()]).unwrap();
        assert_eq!(verified.algorithm, SignatureAlgorithm::Legacy);
        assert!(verify_signature(b"legacy!", &text, &[key.public_key()]).is_err());
    }

    #[test]
    fn long_comments_are_cut_on_a_character_boundary() {
        let comment = "é".repeat(MAX_TRUSTED_COMMENT);
        let cleaned = clean_comment(&comment);
        assert!(cleaned.len() <= MAX_TRUSTED_COMMENT);
        let sig = sign(b"x", &key(), &comment);
        let verified = verify_signature(b"x", &sig, &[key().public_key()]).unwrap();
        assert_eq!(verified.trusted_comment, cleaned);
    }
}
