//! DAMM's signed path catalog, as clients and operators see it.
//!
//! The orchestrator publishes a [`Catalog`]: for every region, the scored [`Path`]s a client may
//! connect through (a composition of provider components, the transports it speaks, an endpoint
//! and the gateway's WireGuard key). This crate holds everything a client needs to use it and
//! nothing else (no orchestrator, no async runtime), so clients and small agents can embed it:
//!
//! - the schema (`damm-catalog/1`) with its validation: [`Catalog::from_json`]; each path's
//!   [`Offer`]s list the transports it can be reached by, with their parameters;
//! - Ed25519 signatures in minisign's file format, so operators check a catalog with the stock
//!   `minisign -Vm catalog.json -p damm.pub`: [`SigningKey`], [`PublicKey`], [`sign`],
//!   [`sign_catalog`], and [`verify`], which also refuses expired, not-yet-valid and rolled-back
//!   catalogs;
//! - client-side path choice: [`pick`] ranks a region's paths by the catalog score adjusted by
//!   the client's own measurements, [`next_after`] chooses where to fail over to;
//! - WireGuard: [`WgKey`], [`KeyPair`] and [`render_wg_quick`] for a stock `wg-quick` `.conf`.
//!
//! The file formats are described in `docs/catalog.md`, the JSON Schema in
//! `docs/catalog.schema.json`.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//!
//! use chrono::{Duration, Utc};
//! use damm_catalog::{
//!     Catalog, Component, KeyPair, Path, RegionPaths, Role, SigningKey, Transport, pick,
//!     sign_catalog, verify,
//! };
//!
//! // Orchestrator side: build, sign, publish.
//! let now = Utc::now();
//! let gateway = KeyPair::generate();
//! let path = Path {
//!     path_id: "eu-central/hetzner-fsn1-a".into(),
//!     composition: vec![Component {
//!         role: Role::Ingress,
//!         provider: "hetzner".into(),
//!         component: "hetzner:fsn1:ingress-a".into(),
//!     }],
//!     score: 0.9,
//!     transports: vec![Transport::WireguardUdp],
//!     endpoint: "203.0.113.10:51820".into(),
//!     gateway_public_key: gateway.public_key(),
//!     // T0 only: nothing beyond the primary transport to offer.
//!     offers: vec![],
//! };
//! let catalog = Catalog {
//!     schema: damm_catalog::SCHEMA_V1.into(),
//!     fleet: "demo".into(),
//!     version: 7,
//!     issued_at: now,
//!     expires_at: now + Duration::hours(6),
//!     validated_for: vec![],
//!     regions: BTreeMap::from([("eu-central".into(), RegionPaths { paths: vec![path] })]),
//! };
//! let key = SigningKey::generate();
//! let signed = sign_catalog(&catalog, &key)?;
//!
//! // Client side: verify against the keys it trusts and the last version it accepted.
//! let trusted = [key.public_key()];
//! let accepted = verify(signed.json.as_bytes(), &signed.signature, &trusted, Some(6), now)?;
//! let best = pick(&accepted, "eu-central", &BTreeMap::new());
//! assert_eq!(best[0].path_id, "eu-central/hetzner-fsn1-a");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod endpoint;
#[doc(hidden)]
pub mod fuzz;
mod gateway;
mod offer;
mod pick;
mod schema;
mod signature;
mod wg;

pub use endpoint::{Endpoint, EndpointError, EndpointHost};
pub use gateway::{
    Backbone, GATEWAY_SCHEMA_V1, GatewayConfig, GatewayConfigError, GatewayPeer, GatewayRole,
    GatewayT1, GatewayT2, GatewayT3, GatewayTransports, SignedGatewayConfig,
    gateway_trusted_comment, sign_gateway_config, verify_gateway_config,
};
pub use offer::{Offer, T0Offer, T1Key, T1Offer, T2Offer, T3Offer};
pub use pick::{Measurement, effective_score, next_after, pick};
pub use schema::{
    Catalog, CatalogError, Component, MAX_IDENTIFIER_LEN, Path, RegionPaths, Role, SCHEMA_V1,
    Transport, Validation,
};
pub use signature::{
    KeyFileError, KeyId, MAX_FUTURE_SKEW, PublicKey, SignatureAlgorithm, SignedCatalog, SigningKey,
    VerifiedSignature, VerifyError, catalog_trusted_comment, sign, sign_catalog, verify,
    verify_signature,
};
pub use wg::{
    ClientConfig, KeyPair, PrivateKey, WgConfigError, WgKey, WgKeyError, render_wg_quick,
};
