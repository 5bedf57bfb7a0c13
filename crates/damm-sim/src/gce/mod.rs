//! Compute Engine API v1, under `/gce/compute/v1`: zonal instances (insert, get, list,
//! delete, setLabels, addAccessConfig, deleteAccessConfig), regional static external
//! addresses (insert, get, list, delete) and the zonal and regional operations every
//! mutation answers with (get, wait), moving `PENDING` → `RUNNING` → `DONE`.
//!
//! Shapes follow Google's Discovery document (`specs/gce-compute.v1.json`, Apache-2.0):
//! camelCase JSON, 64-bit integers as strings, `kind` on every resource, lists paged by
//! `maxResults`/`pageToken` and filtered by `filter` (`labels.KEY = "VALUE"` terms,
//! parenthesised and joined by `AND`; `OR` is refused as not simulated), and errors as
//! `{"error": {"code", "message", "errors": [{"message", "domain", "reason"}]}}`.
//! Instances go `PROVISIONING` → `STAGING` → `RUNNING` over the boot delay, and an
//! insert's operation is `DONE` when the instance runs.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Provider;
use crate::server::{Api, ProviderJson, Shared, lock, provider_error};
use crate::world::Bucket;

mod addresses;
mod filter;
mod instances;
mod operations;

use addresses::*;
use filter::*;

type S = State<Arc<Shared>>;

/// A refusal already in Google's error shape (boxed: a `Response` is large).
type Refusal = Box<Response>;

/// Compute Engine's wiring: API requests are limited per project per minute (the
/// default read and write quotas are in the low thousands; 1500 a minute stands in for
/// them), answered with 429 `rateLimitExceeded` and no rate-limit headers.
pub(crate) const API: Api = Api {
    routes,
    error_body,
    rate_limits: || vec![Bucket::new(1500, Duration::from_secs(60))],
    rate_headers: None,
    admin: None,
    reject_body: Some(invalid_body),
};

/// Where resource URLs point (`selfLink`, `zone`, `targetLink`), as Google writes them.
const LINK_BASE: &str = "https://www.googleapis.com/compute/v1";

/// The regions the simulator serves; each has zones `-a`, `-b` and `-c`.
const REGIONS: &[&str] = &[
    "asia-southeast1",
    "europe-north1",
    "europe-west2",
    "europe-west3",
    "europe-west4",
    "europe-west8",
    "us-east4",
    "us-west1",
];

/// Machine types the simulator knows.
const MACHINE_TYPES: &[&str] = &[
    "e2-micro",
    "e2-small",
    "e2-medium",
    "e2-standard-2",
    "e2-standard-4",
];

/// Page sizes: Compute Engine's default and maximum are both 500.
const MAX_RESULTS: usize = 500;

/// The longest `operations.wait` blocks (Google: about two minutes; kept short here).
const MAX_WAIT: Duration = Duration::from_secs(10);

/// Metadata values may be up to 256 KiB each.
const MAX_METADATA_VALUE: usize = 256 * 1024;

#[derive(Debug, Clone)]
struct AccessConfig {
    name: String,
    nat_ip: Ipv4Addr,
    /// Whether `nat_ip` belongs to a reserved address (else it is ephemeral).
    reserved: bool,
}

#[derive(Debug, Clone)]
struct Instance {
    seq: u64,
    id: u64,
    project: String,
    zone: String,
    name: String,
    description: String,
    machine_type: String,
    labels: BTreeMap<String, String>,
    metadata: Vec<(String, String)>,
    network_ip: Ipv4Addr,
    access: Option<AccessConfig>,
    created: DateTime<Utc>,
    created_at: Instant,
    ready_at: Instant,
}

impl Instance {
    fn link(&self) -> String {
        format!(
            "{LINK_BASE}/projects/{}/zones/{}/instances/{}",
            self.project, self.zone, self.name
        )
    }
}

#[derive(Debug, Clone)]
struct Address {
    seq: u64,
    id: u64,
    project: String,
    region: String,
    name: String,
    description: String,
    ip: Ipv4Addr,
    labels: BTreeMap<String, String>,
    network_tier: String,
    /// The instance holding it, as a link.
    user: Option<String>,
    created: DateTime<Utc>,
}

impl Address {
    /// `IN_USE` while an instance holds it, else `RESERVED`.
    fn status(&self) -> &'static str {
        if self.user.is_some() {
            "IN_USE"
        } else {
            "RESERVED"
        }
    }

    fn link(&self) -> String {
        format!(
            "{LINK_BASE}/projects/{}/regions/{}/addresses/{}",
            self.project, self.region, self.name
        )
    }
}

/// Where an operation lives.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Scope {
    Zone(String),
    Region(String),
}

impl Scope {
    /// Its path below a project: `zones/{zone}` or `regions/{region}`.
    fn path(&self) -> String {
        match self {
            Scope::Zone(zone) => format!("zones/{zone}"),
            Scope::Region(region) => format!("regions/{region}"),
        }
    }
}

#[derive(Debug, Clone)]
struct Operation {
    id: u64,
    name: String,
    project: String,
    scope: Scope,
    kind: &'static str,
    target_link: String,
    target_id: u64,
    client_id: Option<String>,
    inserted: DateTime<Utc>,
    inserted_at: Instant,
    /// `PENDING` until then, `RUNNING` until `done_at`.
    start_at: Instant,
    done_at: Instant,
}

/// Compute Engine's world, keyed by creation sequence (the order lists follow).
#[derive(Debug, Default)]
pub(crate) struct World {
    next: u64,
    instances: BTreeMap<u64, Instance>,
    addresses: BTreeMap<u64, Address>,
    operations: BTreeMap<String, Operation>,
}

impl World {
    /// The next sequence number and a Compute-style 19-digit id derived from it.
    fn next_id(&mut self) -> (u64, u64) {
        self.next += 1;
        let id = 1_000_000_000_000_000_000 + mix(self.next) % 8_000_000_000_000_000_000;
        (self.next, id)
    }

    fn instance(&self, project: &str, zone: &str, name: &str) -> Option<&Instance> {
        self.instances
            .values()
            .find(|i| i.project == project && i.zone == zone && i.name == name)
    }

    fn instance_seq(&self, project: &str, zone: &str, name: &str) -> Option<u64> {
        self.instance(project, zone, name).map(|i| i.seq)
    }

    fn address(&self, project: &str, region: &str, name: &str) -> Option<&Address> {
        self.addresses
            .values()
            .find(|a| a.project == project && a.region == region && a.name == name)
    }

    fn address_by_ip_mut(&mut self, project: &str, ip: Ipv4Addr) -> Option<&mut Address> {
        self.addresses
            .values_mut()
            .find(|a| a.project == project && a.ip == ip)
    }

    /// Records an operation on `target` that runs for `span`, and answers with it.
    #[allow(clippy::too_many_arguments)]
    fn operation(
        &mut self,
        project: &str,
        scope: Scope,
        kind: &'static str,
        target_link: String,
        target_id: u64,
        client_id: Option<String>,
        span: Duration,
    ) -> Response {
        let (_, id) = self.next_id();
        let now = Instant::now();
        let created = Utc::now();
        let name = format!(
            "operation-{}-{:012x}-{:08x}",
            created.timestamp_millis(),
            mix(id) & 0xffff_ffff_ffff,
            mix(id ^ 0x5bd1_e995) & 0xffff_ffff
        );
        let op = Operation {
            id,
            name: name.clone(),
            project: project.to_owned(),
            scope,
            kind,
            target_link,
            target_id,
            client_id,
            inserted: created,
            inserted_at: now,
            start_at: now + span / 3,
            done_at: now + span,
        };
        let answer = Json(operation_json(&op)).into_response();
        self.operations.insert(name, op);
        answer
    }
}

/// SplitMix64 finaliser: spreads a counter over 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .nest(
            "/projects/{project}/zones/{zone}",
            instances::routes().merge(operations::routes(Scope::Zone)),
        )
        .nest(
            "/projects/{project}/regions/{region}",
            addresses::routes().merge(operations::routes(Scope::Region)),
        )
}

/// Google's error body. `code` is a Google `reason` (`notFound`), or one of the
/// simulator's shared codes, translated.
fn error_body(status: u16, code: &str, message: &str) -> Value {
    let reason = match code {
        "rate_limit_exceeded" => "rateLimitExceeded",
        "unauthorized" => "authError",
        "unavailable" | "server_error" => "backendError",
        "invalid_input" => "invalid",
        "json_error" => "parseError",
        "" => match status {
            404 => "notFound",
            409 => "alreadyExists",
            _ => "invalid",
        },
        reason => reason,
    };
    let domain = if matches!(reason, "rateLimitExceeded" | "quotaExceeded") {
        "usageLimits"
    } else {
        "global"
    };
    json!({
        "error": {
            "code": status,
            "message": message,
            "errors": [{ "message": message, "domain": domain, "reason": reason }],
        }
    })
}

fn error(status: StatusCode, reason: &str, message: impl AsRef<str>) -> Response {
    provider_error(Provider::Gce, status, reason, message.as_ref())
}

fn invalid(message: impl AsRef<str>) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid", message)
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "notFound",
        format!("The resource '{what}' was not found"),
    )
}

fn invalid_body(rejection: JsonRejection) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "parseError",
        format!("Invalid JSON payload received. {}", rejection.body_text()),
    )
}

/// Google writes `2026-11-23T04:05:06.789-08:00`; UTC with milliseconds is the same form.
fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, false)
}

fn region_of_zone(zone: &str) -> Option<&'static str> {
    let (region, letter) = zone.rsplit_once('-')?;
    if !matches!(letter, "a" | "b" | "c") {
        return None;
    }
    REGIONS.iter().copied().find(|r| *r == region)
}

fn known_region(region: &str) -> bool {
    REGIONS.contains(&region)
}

/// An RFC 1035 label, as Compute Engine names resources.
fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

/// Label keys start with a lowercase letter; keys and values hold lowercase letters,
/// digits, `_` and `-`, at most 63 characters; at most 64 labels.
fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), String> {
    if labels.len() > 64 {
        return Err("A resource may carry at most 64 labels".into());
    }
    let allowed = |s: &str| {
        s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    for (key, value) in labels {
        if !key.starts_with(|c: char| c.is_ascii_lowercase()) || !allowed(key) {
            return Err(format!("Invalid label key '{key}'"));
        }
        if !allowed(value) {
            return Err(format!("Invalid value '{value}' for label '{key}'"));
        }
    }
    Ok(())
}

fn labels_of(body: &Value) -> Result<BTreeMap<String, String>, String> {
    let mut labels = BTreeMap::new();
    if let Some(map) = body.get("labels").and_then(Value::as_object) {
        for (k, v) in map {
            let v = v.as_str().ok_or(format!("label '{k}' is not a string"))?;
            labels.insert(k.clone(), v.to_owned());
        }
    }
    check_labels(&labels)?;
    Ok(labels)
}

/// A fingerprint: 8 bytes of a hash of `value`, base64url (what Google's look like).
fn fingerprint(value: &impl Hash) -> String {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut hasher);
    base64(&hasher.finish().to_be_bytes())
}

/// Padded base64url, which is what Discovery's `format: byte` means (RFC 4648 §5).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `PROVISIONING` for the first half of the boot, `STAGING` for the second, then `RUNNING`.
fn instance_status(i: &Instance) -> &'static str {
    let now = Instant::now();
    let boot = i.ready_at.saturating_duration_since(i.created_at);
    if now >= i.ready_at {
        "RUNNING"
    } else if now >= i.created_at + boot / 2 {
        "STAGING"
    } else {
        "PROVISIONING"
    }
}

fn instance_json(i: &Instance) -> Value {
    let status = instance_status(i);
    let zone_link = format!("{LINK_BASE}/projects/{}/zones/{}", i.project, i.zone);
    let mut nic = json!({
        "kind": "compute#networkInterface",
        "name": "nic0",
        "network": format!("{LINK_BASE}/projects/{}/global/networks/default", i.project),
        "networkIP": i.network_ip.to_string(),
        "stackType": "IPV4_ONLY",
        "fingerprint": fingerprint(&(i.seq, i.access.as_ref().map(|a| a.nat_ip))),
    });
    if let Some(access) = &i.access {
        nic["accessConfigs"] = json!([{
            "kind": "compute#accessConfig",
            "type": "ONE_TO_ONE_NAT",
            "name": access.name,
            "natIP": access.nat_ip.to_string(),
            "networkTier": "PREMIUM",
        }]);
    }
    let mut metadata = json!({
        "kind": "compute#metadata",
        "fingerprint": fingerprint(&i.metadata),
    });
    if !i.metadata.is_empty() {
        metadata["items"] = i
            .metadata
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
    }
    let mut body = json!({
        "kind": "compute#instance",
        "id": i.id.to_string(),
        "creationTimestamp": time(i.created),
        "name": i.name,
        "machineType": format!("{zone_link}/machineTypes/{}", i.machine_type),
        "status": status,
        "zone": zone_link,
        "canIpForward": false,
        "networkInterfaces": [nic],
        "disks": [{
            "kind": "compute#attachedDisk",
            "type": "PERSISTENT",
            "mode": "READ_WRITE",
            "source": format!("{zone_link}/disks/{}", i.name),
            "deviceName": "persistent-disk-0",
            "index": 0,
            "boot": true,
            "autoDelete": true,
            "interface": "SCSI",
            "diskSizeGb": "10",
        }],
        "metadata": metadata,
        "selfLink": i.link(),
        "labelFingerprint": fingerprint(&i.labels),
        "fingerprint": fingerprint(&(i.seq, &i.labels, &i.metadata)),
        "cpuPlatform": "Intel Broadwell",
        "startRestricted": false,
        "deletionProtection": false,
    });
    if !i.description.is_empty() {
        body["description"] = json!(i.description);
    }
    if !i.labels.is_empty() {
        body["labels"] = json!(i.labels);
    }
    body
}

impl Listed for Instance {
    fn seq(&self) -> u64 {
        self.seq
    }

    fn passes(&self, terms: &[Term]) -> bool {
        passes(terms, &self.name, instance_status(self), &self.labels)
    }

    fn json(&self) -> Value {
        instance_json(self)
    }
}

fn address_json(a: &Address) -> Value {
    let mut body = json!({
        "kind": "compute#address",
        "id": a.id.to_string(),
        "creationTimestamp": time(a.created),
        "name": a.name,
        "address": a.ip.to_string(),
        "status": a.status(),
        "region": format!("{LINK_BASE}/projects/{}/regions/{}", a.project, a.region),
        "selfLink": a.link(),
        "networkTier": a.network_tier,
        "addressType": "EXTERNAL",
        "ipVersion": "IPV4",
        "labelFingerprint": fingerprint(&a.labels),
    });
    if !a.description.is_empty() {
        body["description"] = json!(a.description);
    }
    if !a.labels.is_empty() {
        body["labels"] = json!(a.labels);
    }
    if let Some(user) = &a.user {
        body["users"] = json!([user]);
    }
    body
}

impl Listed for Address {
    fn seq(&self) -> u64 {
        self.seq
    }

    fn passes(&self, terms: &[Term]) -> bool {
        passes(terms, &self.name, self.status(), &self.labels)
    }

    fn json(&self) -> Value {
        address_json(self)
    }
}

fn operation_json(op: &Operation) -> Value {
    let now = Instant::now();
    let (status, progress) = if now >= op.done_at {
        ("DONE", 100)
    } else if now >= op.start_at {
        ("RUNNING", 50)
    } else {
        ("PENDING", 0)
    };
    let scope_key = match &op.scope {
        Scope::Zone(_) => "zone",
        Scope::Region(_) => "region",
    };
    let scope_link = format!("{LINK_BASE}/projects/{}/{}", op.project, op.scope.path());
    let at = |instant: Instant| time(op.inserted + (instant - op.inserted_at));
    let mut body = json!({
        "kind": "compute#operation",
        "id": op.id.to_string(),
        "name": op.name,
        "operationType": op.kind,
        "targetLink": op.target_link,
        "targetId": op.target_id.to_string(),
        "status": status,
        "user": "damm-sim@damm-sim.iam.gserviceaccount.com",
        "progress": progress,
        "insertTime": time(op.inserted),
        "selfLink": format!("{scope_link}/operations/{}", op.name),
    });
    body[scope_key] = json!(scope_link);
    if status != "PENDING" {
        body["startTime"] = json!(at(op.start_at));
    }
    if status == "DONE" {
        body["endTime"] = json!(at(op.done_at));
    }
    if let Some(client) = &op.client_id {
        body["clientOperationId"] = json!(client);
    }
    body
}

/// How long a short mutation (delete, labels, access configs, addresses) runs.
fn short_span(sh: &Shared) -> Duration {
    (sh.config.boot_delay / 4).min(Duration::from_secs(1))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    filter: Option<String>,
    max_results: Option<String>,
    page_token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MutationQuery {
    request_id: Option<String>,
    network_interface: Option<String>,
    access_config: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_the_forms_clients_send() {
        let terms =
            parse_filter(r#"(labels.damm-fleet = "f1") (labels.damm-key = "k-1")"#).unwrap();
        assert_eq!(terms.len(), 2);
        assert_eq!(terms[1].value.as_deref(), Some("k-1"));
        // Several terms need parentheses, as in Compute Engine.
        assert!(parse_filter("labels.damm-fleet = f1 AND name != x").is_err());
        let terms = parse_filter("(labels.damm-fleet = f1) AND (name != x)").unwrap();
        assert!(terms[1].negate);
        assert!(parse_filter("labels.owner:*").unwrap()[0].value.is_none());
        assert!(parse_filter("(name = a) OR (name = b)").is_err());
        assert!(parse_filter("(cpuPlatform = x)").is_err());
        let labels = BTreeMap::from([("damm-fleet".to_owned(), "f1".to_owned())]);
        let terms = parse_filter(r#"(labels.damm-fleet = "f1") (name != other)"#).unwrap();
        assert!(passes(&terms, "node", "RUNNING", &labels));
        assert!(!passes(&terms, "other", "RUNNING", &labels));
    }

    #[test]
    fn page_tokens_round_trip_and_base64_is_url_safe() {
        assert_eq!(decode_token(&encode_token(42)), Some(42));
        assert_eq!(decode_token("!!"), None);
        assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base64(&[0xfb, 0xff]), "-_8=");
        assert_eq!(base64_decode("-_8=").unwrap(), [0xfb, 0xff]);
    }

    #[test]
    fn names_labels_and_zones_follow_compute_rules() {
        assert!(valid_name("damm-node-1"));
        assert!(!valid_name("1node") && !valid_name("node-") && !valid_name("Node"));
        assert_eq!(region_of_zone("europe-west3-a"), Some("europe-west3"));
        assert_eq!(region_of_zone("europe-west3-z"), None);
        let bad = BTreeMap::from([("Key".to_owned(), "v".to_owned())]);
        assert!(check_labels(&bad).is_err());
    }
}
