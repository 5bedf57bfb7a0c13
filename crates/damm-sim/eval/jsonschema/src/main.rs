//! damm-sim's OpenAPI validator (`src/schema/`) beside `jsonschema` on the vendored
//! documents: which valid bodies each refuses, and how long each takes to check a page.
//!
//! `cargo run --release --manifest-path crates/damm-sim/eval/jsonschema/Cargo.toml` runs
//! jsonschema on the documents as vendored; with the argument `rewritten`, on copies with the
//! two rewrites adopting it would need (`nullable: true` as `anyOf: [{type: null}, …]`, `oneOf`
//! as `anyOf`). The timings are the best of 5 × 2000 checks, one thread.

#[path = "../../../src/schema/fixtures.rs"]
mod fixtures;
#[allow(dead_code, unreachable_pub, missing_docs)]
#[path = "../../../src/schema/mod.rs"]
mod ours;

use std::time::Instant;

use serde_json::{Value, json};

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../specs");

fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Follows `$ref`s from `pointer` to a definition.
fn follow(doc: &Value, mut pointer: String) -> String {
    loop {
        let value = doc.pointer(&pointer).unwrap_or_else(|| panic!("{pointer}"));
        match value.get("$ref").and_then(Value::as_str) {
            Some(reference) => pointer = reference.trim_start_matches('#').to_owned(),
            None => return pointer,
        }
    }
}

/// The pointer of a request body's (no `status`) or a response's JSON schema.
fn body_schema(doc: &Value, path: &str, method: &str, status: Option<&str>) -> String {
    let operation = format!("/paths/{}/{method}", escape(path));
    let holder = match status {
        Some(status) => follow(doc, format!("{operation}/responses/{status}")),
        None => follow(doc, format!("{operation}/requestBody")),
    };
    format!("{holder}/content/application~1json/schema")
}

/// The rewrites adopting jsonschema would need: `nullable: true` as `anyOf [null, …]`, and
/// `oneOf` read as `anyOf` (the documents' alternatives overlap).
fn rewrite(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (key, value) in map {
                if key == "nullable" && value == &Value::Bool(true) {
                    continue;
                }
                let key = if key == "oneOf" { "anyOf" } else { key };
                out.insert(key.to_owned(), rewrite(value));
            }
            if map.get("nullable") == Some(&Value::Bool(true)) {
                json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] })
            } else {
                Value::Object(out)
            }
        }
        Value::Array(items) => Value::Array(items.iter().map(rewrite).collect()),
        other => other.clone(),
    }
}

/// A jsonschema validator for the schema at `pointer`: the whole document is the root (so
/// `#/components/…` resolves), with a `$ref` to the schema (Draft 4 ignores its siblings, as
/// OpenAPI 3.0 does). The fragment must be percent-encoded (`{id}` is not a valid URI).
fn theirs(doc: &Value, pointer: &str) -> jsonschema::Validator {
    let mut root = doc.clone();
    let fragment = pointer.replace('{', "%7B").replace('}', "%7D");
    root["$ref"] = json!(format!("#{fragment}"));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft4)
        .build(&root)
        .expect("the validator builds")
}

/// What our validator says of a body.
type OurVerdict = Result<(), Vec<ours::SchemaError>>;

/// One schema both validators check a body against: ours through `ours`, jsonschema through
/// `theirs`.
struct Check<'a> {
    ours: Box<dyn Fn(&Value) -> OurVerdict + 'a>,
    theirs: jsonschema::Validator,
}

impl<'a> Check<'a> {
    fn new(ours: impl Fn(&Value) -> OurVerdict + 'a, theirs: jsonschema::Validator) -> Self {
        Check {
            ours: Box::new(ours),
            theirs,
        }
    }

    /// Prints both verdicts on `body`.
    fn report(&self, label: &str, body: &Value) {
        let ours = match (self.ours)(body) {
            Ok(()) => "valid".to_owned(),
            Err(errors) => {
                let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                format!("INVALID: {}", list.join("; "))
            }
        };
        let errors: Vec<String> = self
            .theirs
            .iter_errors(body)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        let theirs = if errors.is_empty() {
            "valid".to_owned()
        } else {
            format!("INVALID ({}): {}", errors.len(), errors.join("; "))
        };
        let theirs: String = theirs.chars().take(500).collect();
        println!("## {label}\n  ours:       {ours}\n  jsonschema: {theirs}\n");
    }

    /// The time each takes to check `body` (µs): ours, then jsonschema's.
    fn timings(&self, body: &Value) -> (f64, f64) {
        (
            best_of(body, |b| (self.ours)(b).is_ok()),
            best_of(body, |b| self.theirs.iter_errors(b).next().is_none()),
        )
    }
}

fn best_of(body: &Value, check: impl Fn(&Value) -> bool) -> f64 {
    const N: u32 = 2000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let started = Instant::now();
        for _ in 0..N {
            std::hint::black_box(check(std::hint::black_box(body)));
        }
        best = best.min(started.elapsed().as_secs_f64() * 1e6 / f64::from(N));
    }
    best
}

fn main() {
    let read = |name: &str| std::fs::read_to_string(format!("{SPECS}/{name}")).unwrap();
    let (h_text, d_text, c_text) = (
        read("hetzner.json"),
        read("digitalocean.json"),
        read("cloudflare.json"),
    );
    let hetzner = ours::ApiSpec::from_json(&h_text).unwrap();
    let digitalocean = ours::ApiSpec::from_json(&d_text).unwrap();
    let cloudflare = ours::ApiSpec::from_json(&c_text).unwrap();
    let raw = std::env::args().nth(1).as_deref() != Some("rewritten");
    println!(
        "# jsonschema on the {} documents\n",
        if raw {
            "vendored"
        } else {
            "rewritten (nullable -> anyOf null, oneOf -> anyOf)"
        }
    );
    let prepare = |text: &str| {
        let doc: Value = serde_json::from_str(text).unwrap();
        if raw { doc } else { rewrite(&doc) }
    };
    let (h_doc, d_doc, c_doc) = (prepare(&h_text), prepare(&d_text), prepare(&c_text));

    let started = Instant::now();
    let h_list = theirs(&h_doc, &body_schema(&h_doc, "/servers", "get", Some("200")));
    let build_h_list = started.elapsed();
    let h_list = Check::new(
        |b| hetzner.validate_response("GET", "/servers", 200, b),
        h_list,
    );
    let page = fixtures::hetzner_list_servers();
    h_list.report(
        "hetzner GET /servers 200: a valid page, nulls where the document says nullable",
        &page,
    );
    let mut nulls = page.clone();
    nulls["servers"][0]["public_net"]["ipv4"] = Value::Null;
    nulls["servers"][0]["image"] = Value::Null;
    h_list.report(
        "hetzner: public_net.ipv4 and image null (Hetzner's `allOf: [$ref]` + `nullable`)",
        &nulls,
    );
    let mut bad = page.clone();
    bad["servers"][0].as_object_mut().unwrap().remove("id");
    bad["servers"][0]["name"] = Value::Null;
    h_list.report("hetzner: id missing and name null (two real errors)", &bad);

    let actions = "/v2/droplets/{droplet_id}/actions";
    let d_action = Check::new(
        |b| digitalocean.validate_request("POST", actions, b),
        theirs(&d_doc, &body_schema(&d_doc, actions, "post", None)),
    );
    d_action.report(
        "digitalocean POST droplet action `resize` (`anyOf` + `discriminator`)",
        &json!({ "type": "resize", "size": "s-2vcpu-2gb", "disk": true }),
    );
    let d_list = Check::new(
        |b| digitalocean.validate_response("GET", "/v2/droplets", 200, b),
        theirs(
            &d_doc,
            &body_schema(&d_doc, "/v2/droplets", "get", Some("200")),
        ),
    );
    let droplets =
        json!({ "droplets": [fixtures::do_droplet()], "links": {}, "meta": { "total": 1 } });
    d_list.report("digitalocean GET /v2/droplets 200: a valid page", &droplets);

    let records = "/zones/{zone_id}/dns_records";
    let c_create = Check::new(
        |b| cloudflare.validate_request("POST", records, b),
        theirs(&c_doc, &body_schema(&c_doc, records, "post", None)),
    );
    c_create.report(
        "cloudflare POST dns_records: a create without the server-assigned (readOnly, required) fields",
        &json!({
            "type": "A", "name": "gw1.example.com", "content": "192.0.2.1", "ttl": 60, "proxied": false
        }),
    );

    let started = Instant::now();
    let _ = ours::ApiSpec::from_json(&h_text).unwrap();
    let load_ours = started.elapsed();
    println!(
        "## set-up\n  ours: load the Hetzner document (parse, path templates, patterns): {load_ours:?}\n  \
         jsonschema: build the validator of one response (hetzner GET /servers 200): {build_h_list:?}\n"
    );

    let mut servers = page.clone();
    servers["servers"] = Value::Array(vec![fixtures::hetzner_server(); 25]);
    let mut droplet_page = droplets.clone();
    droplet_page["droplets"] = Value::Array(vec![fixtures::do_droplet(); 25]);
    println!(
        "## time to check one page (µs, best of 5 × 2000; with `rewritten` only, where both accept it)"
    );
    for round in 1..=3 {
        let (ours_h, theirs_h) = h_list.timings(&servers);
        let (ours_d, theirs_d) = d_list.timings(&droplet_page);
        println!(
            "  round {round}: 25 Hetzner servers: ours {ours_h:.0}, jsonschema {theirs_h:.0}; \
             25 DigitalOcean droplets: ours {ours_d:.0}, jsonschema {theirs_d:.0}"
        );
    }
}
