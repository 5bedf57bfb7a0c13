//! The catalog schema, version 1 (`damm-catalog/1`), and its validation.
//!
//! Every struct refuses unknown fields: a client that cannot understand a field must not
//! silently act on a catalog without it. A change to the schema is a new `schema` string.
//! The one extension point is a path's `offers` (see [`crate::Offer`]): an offer of a kind
//! this client does not know is skipped, so new transports need no new schema.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::endpoint::{Endpoint, EndpointError};
use crate::offer::{Offer, OfferProblem, deserialize_offers};
use crate::wg::WgKey;

/// The `schema` value of a version 1 catalog.
pub const SCHEMA_V1: &str = "damm-catalog/1";

/// Longest fleet name, region name, path id, provider or component key, in bytes.
pub const MAX_IDENTIFIER_LEN: usize = 128;

/// Longest `validated_for[].scenario`, in bytes.
const MAX_SCENARIO_LEN: usize = 256;

/// A signed list of the paths clients may use, per region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Always [`SCHEMA_V1`] for this version of the format.
    pub schema: String,
    /// The fleet this catalog belongs to (printable ASCII, no spaces).
    pub fleet: String,
    /// Grows with every published catalog; clients refuse a lower one than they accepted.
    pub version: u64,
    /// When the orchestrator issued it (RFC 3339).
    pub issued_at: DateTime<Utc>,
    /// From this instant on, clients refuse it (RFC 3339). Bounds a freeze attack.
    pub expires_at: DateTime<Utc>,
    /// Providers whose failover was proven, with when and by which scenario.
    pub validated_for: Vec<Validation>,
    /// Region name → the paths serving it.
    pub regions: BTreeMap<String, RegionPaths>,
}

/// A provider whose failover was proven by a scenario run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    /// The provider that was switched off.
    pub provider: String,
    /// The day the proof ran (`YYYY-MM-DD`).
    pub proven_at: NaiveDate,
    /// The scenario that proved it, e.g. `provider-down hetzner`.
    pub scenario: String,
}

/// The paths of one region.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionPaths {
    /// The region's paths, in no particular order; [`crate::pick`] ranks them.
    pub paths: Vec<Path>,
}

/// One way into the fleet: a composition of provider components behind one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Path {
    /// Unique within its region; stable while the path exists.
    pub path_id: String,
    /// The components traffic crosses, client side first (front, ingress, ..., egress).
    pub composition: Vec<Component>,
    /// The orchestrator's score, 0 (unusable) to 1 (best).
    pub score: f64,
    /// The path's primary transport (what clients that do not read `offers` use), first.
    /// Only ever the three values of schema 1: new transports go in `offers`.
    pub transports: Vec<Transport>,
    /// Where the client sends its WireGuard packets over the primary transport: `host:port`,
    /// IPv6 as `[addr]:port`.
    pub endpoint: String,
    /// The WireGuard public key of the gateway behind the endpoint (and every offer).
    pub gateway_public_key: WgKey,
    /// Every way into this path's gateway with its parameters, the primary one included, for
    /// clients that race transports. Empty (and then left out of the JSON) where the path
    /// offers nothing beyond `transports` and `endpoint`. Offers of a kind this crate does not
    /// know are skipped when parsing.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "deserialize_offers"
    )]
    pub offers: Vec<Offer>,
}

/// One provider component of a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    /// What the component does on the path.
    pub role: Role,
    /// The provider id, e.g. `hetzner`.
    pub provider: String,
    /// The component's key in the fleet model.
    pub component: String,
}

/// What a component does on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// An HTTPS-shaped front (CDN) hiding the ingress.
    Front,
    /// The public surface the client connects to.
    Ingress,
    /// The outbound NAT face traffic leaves through.
    Egress,
    /// A private network the path rides on.
    Overlay,
}

impl Role {
    /// Every role, in schema order.
    pub const ALL: [Role; 4] = [Role::Front, Role::Ingress, Role::Egress, Role::Overlay];

    /// The name used in the JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Front => "front",
            Role::Ingress => "ingress",
            Role::Egress => "egress",
            Role::Overlay => "overlay",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transport a path speaks (the `T` tiers of the design notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Transport {
    /// `T0`: bare WireGuard over UDP.
    #[serde(rename = "T0")]
    WireguardUdp,
    /// `T3`: WireGuard carried through a CDN front (HTTPS-shaped).
    #[serde(rename = "T3")]
    CdnFronted,
    /// `overlay`: reachable inside an overlay network (e.g. a tailnet address).
    #[serde(rename = "overlay")]
    Overlay,
}

impl Transport {
    /// Every transport, in schema order.
    pub const ALL: [Transport; 3] = [
        Transport::WireguardUdp,
        Transport::CdnFronted,
        Transport::Overlay,
    ];

    /// The name used in the JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Transport::WireguardUdp => "T0",
            Transport::CdnFronted => "T3",
            Transport::Overlay => "overlay",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why bytes are not a valid catalog. Every variant names the offending field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Not JSON, or JSON of the wrong shape (unknown or missing field, wrong type, bad date,
    /// bad key). The message carries line and column.
    #[error("not a valid damm catalog: {0}")]
    Json(#[from] serde_json::Error),
    /// A `schema` this crate does not implement.
    #[error("unsupported catalog schema `{found}` (this client reads `{SCHEMA_V1}`)")]
    UnsupportedSchema {
        /// The `schema` value found.
        found: String,
    },
    /// `version` is 0; versions start at 1 so that "nothing accepted yet" is unambiguous.
    #[error("`version` must be greater than 0")]
    ZeroVersion,
    /// `issued_at` is not before `expires_at`.
    #[error("`issued_at` ({issued_at}) must be before `expires_at` ({expires_at})")]
    EmptyValidity {
        /// The catalog's `issued_at`.
        issued_at: DateTime<Utc>,
        /// The catalog's `expires_at`.
        expires_at: DateTime<Utc>,
    },
    /// Two paths of one region share a `path_id`.
    #[error("`regions.{region}`: path_id `{path_id}` appears more than once")]
    DuplicatePathId {
        /// The region.
        region: String,
        /// The repeated id.
        path_id: String,
    },
    /// A path's endpoint is not `host:port`.
    #[error("`{field}`: {source}")]
    Endpoint {
        /// Where, e.g. `regions.eu.paths[2].endpoint`.
        field: String,
        /// What is wrong.
        source: EndpointError,
    },
    /// Any other field with a value outside its range.
    #[error("`{field}`: {reason}")]
    InvalidField {
        /// Where, e.g. `regions.eu.paths[2].score`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

impl Catalog {
    /// Parses and validates a catalog. Does not check signatures or time: see [`crate::verify`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, CatalogError> {
        let catalog: Catalog = serde_json::from_slice(bytes)?;
        catalog.validate()?;
        Ok(catalog)
    }

    /// The catalog as pretty-printed JSON with a trailing newline, after validating it (a
    /// catalog that [`Catalog::from_json`] would refuse is never produced).
    pub fn to_json(&self) -> Result<String, CatalogError> {
        self.validate()?;
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        Ok(json)
    }

    /// The paths of `region`, if the catalog serves it.
    pub fn region(&self, region: &str) -> Option<&[Path]> {
        self.regions.get(region).map(|r| r.paths.as_slice())
    }

    /// Checks everything the types alone do not: schema, version, validity window, names,
    /// scores, endpoints, keys, offers and the uniqueness of path ids within a region.
    pub fn validate(&self) -> Result<(), CatalogError> {
        if self.schema != SCHEMA_V1 {
            return Err(CatalogError::UnsupportedSchema {
                found: self.schema.clone(),
            });
        }
        check_identifier("fleet", &self.fleet)?;
        if self.version == 0 {
            return Err(CatalogError::ZeroVersion);
        }
        if self.issued_at >= self.expires_at {
            return Err(CatalogError::EmptyValidity {
                issued_at: self.issued_at,
                expires_at: self.expires_at,
            });
        }
        for (i, v) in self.validated_for.iter().enumerate() {
            check_identifier(&format!("validated_for[{i}].provider"), &v.provider)?;
            let field = format!("validated_for[{i}].scenario");
            if v.scenario.is_empty()
                || v.scenario.len() > MAX_SCENARIO_LEN
                || v.scenario.chars().any(char::is_control)
            {
                return Err(invalid(
                    &field,
                    format!("must be 1 to {MAX_SCENARIO_LEN} bytes without control characters"),
                ));
            }
        }
        for (region, paths) in &self.regions {
            check_identifier(&format!("regions.{}", printable(region)), region)?;
            let mut seen = BTreeSet::new();
            for (i, path) in paths.paths.iter().enumerate() {
                let at = format!("regions.{region}.paths[{i}]");
                path.validate(&at)?;
                if !seen.insert(path.path_id.as_str()) {
                    return Err(CatalogError::DuplicatePathId {
                        region: region.clone(),
                        path_id: path.path_id.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Path {
    fn validate(&self, at: &str) -> Result<(), CatalogError> {
        check_identifier(&format!("{at}.path_id"), &self.path_id)?;
        if self.composition.is_empty() {
            return Err(invalid(
                &format!("{at}.composition"),
                "must list at least one component".into(),
            ));
        }
        for (j, c) in self.composition.iter().enumerate() {
            check_identifier(&format!("{at}.composition[{j}].provider"), &c.provider)?;
            check_identifier(&format!("{at}.composition[{j}].component"), &c.component)?;
        }
        if !(self.score.is_finite() && (0.0..=1.0).contains(&self.score)) {
            return Err(invalid(
                &format!("{at}.score"),
                format!("{} is outside 0..=1", self.score),
            ));
        }
        if self.transports.is_empty() {
            return Err(invalid(
                &format!("{at}.transports"),
                "must list at least one transport".into(),
            ));
        }
        Endpoint::parse(&self.endpoint).map_err(|source| CatalogError::Endpoint {
            field: format!("{at}.endpoint"),
            source,
        })?;
        if self.gateway_public_key.as_bytes() == &[0; 32] {
            return Err(invalid(
                &format!("{at}.gateway_public_key"),
                "is the all-zero key".into(),
            ));
        }
        for (k, offer) in self.offers.iter().enumerate() {
            offer.check().map_err(|problem| match problem {
                OfferProblem::Endpoint(field, source) => CatalogError::Endpoint {
                    field: format!("{at}.offers[{k}].{field}"),
                    source,
                },
                OfferProblem::Field(field, reason) => {
                    invalid(&format!("{at}.offers[{k}].{field}"), reason)
                }
            })?;
        }
        Ok(())
    }

    /// Every provider the path crosses, without repeats, in composition order.
    pub fn providers(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::with_capacity(self.composition.len());
        for c in &self.composition {
            if !out.contains(&c.provider.as_str()) {
                out.push(&c.provider);
            }
        }
        out
    }

    /// The provider the client's packets reach first that it connects to: the ingress
    /// component's provider, else the first component's.
    pub fn ingress_provider(&self) -> Option<&str> {
        self.composition
            .iter()
            .find(|c| c.role == Role::Ingress)
            .or_else(|| self.composition.first())
            .map(|c| c.provider.as_str())
    }
}

fn invalid(field: &str, reason: String) -> CatalogError {
    CatalogError::InvalidField {
        field: field.to_owned(),
        reason,
    }
}

/// Names are printable ASCII without spaces: they end up in trusted comments, `.conf` comments
/// and log lines, where a newline or a control character would forge structure.
fn check_identifier(field: &str, value: &str) -> Result<(), CatalogError> {
    if value.is_empty()
        || value.len() > MAX_IDENTIFIER_LEN
        || !value.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(
            field,
            format!(
                "`{}` must be 1 to {MAX_IDENTIFIER_LEN} printable ASCII characters without spaces",
                printable(value)
            ),
        ));
    }
    Ok(())
}

/// `value` with control characters escaped and cut to a readable length, for messages.
fn printable(value: &str) -> String {
    let mut out: String = value
        .chars()
        .take(64)
        .flat_map(char::escape_default)
        .collect();
    if value.chars().nth(64).is_some() {
        out.push_str("...");
    }
    out
}
