//! The JSON Schema in docs/ and the Rust types agree; validation refuses what it must.
//!
//! No JSON Schema crate: a small checker below understands exactly the keywords the schema
//! uses and fails on any other, so the schema cannot grow past what is checked here.

use std::collections::BTreeSet;

use damm_catalog::{Catalog, CatalogError, Offer, Role, T1Key, Transport};
use serde_json::{Value, json};

use crate::common::{SAMPLE_T1_KEY, sample};

fn docs(file: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../docs")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn schema() -> Value {
    serde_json::from_str(&docs("catalog.schema.json")).expect("docs/catalog.schema.json is JSON")
}

/// Keywords that only annotate.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$comment",
    "title",
    "description",
];

struct Checker<'a> {
    root: &'a Value,
    errors: Vec<String>,
    /// `schema location/property` of every object property seen in an instance.
    seen: BTreeSet<String>,
}

impl Checker<'_> {
    fn check(&mut self, schema: &Value, value: &Value, at: &str, schema_at: &str) {
        let Some(schema) = schema.as_object() else {
            self.errors
                .push(format!("{schema_at}: schema is not an object"));
            return;
        };
        for (keyword, arg) in schema {
            match keyword.as_str() {
                k if ANNOTATIONS.contains(&k) => {}
                "oneOf" => {
                    // Exactly one branch must hold; only its properties count as seen.
                    let mut matched = Vec::new();
                    for (i, branch) in arg.as_array().unwrap().iter().enumerate() {
                        let mut sub = Checker {
                            root: self.root,
                            errors: Vec::new(),
                            seen: BTreeSet::new(),
                        };
                        sub.check(branch, value, at, &format!("{schema_at}/oneOf/{i}"));
                        if sub.errors.is_empty() {
                            matched.push(sub.seen);
                        }
                    }
                    if matched.len() == 1 {
                        self.seen.extend(matched.pop().unwrap());
                    } else {
                        self.errors.push(format!(
                            "{at}: matches {} of the oneOf branches, not exactly one",
                            matched.len()
                        ));
                    }
                }
                "not" => {
                    let mut sub = Checker {
                        root: self.root,
                        errors: Vec::new(),
                        seen: BTreeSet::new(),
                    };
                    sub.check(arg, value, at, &format!("{schema_at}/not"));
                    self.expect(!sub.errors.is_empty(), at, &format!("must not match {arg}"));
                }
                "$ref" => {
                    let name = arg.as_str().unwrap().strip_prefix("#/$defs/").unwrap();
                    let target = &self.root["$defs"][name];
                    assert!(!target.is_null(), "dangling $ref {name}");
                    self.check(target, value, at, &format!("#/$defs/{name}"));
                }
                "type" => {
                    let ok = match arg.as_str().unwrap() {
                        "object" => value.is_object(),
                        "array" => value.is_array(),
                        "string" => value.is_string(),
                        "integer" => value.is_u64() || value.is_i64(),
                        "number" => value.is_number(),
                        "boolean" => value.is_boolean(),
                        other => panic!("type {other} not handled"),
                    };
                    self.expect(ok, at, &format!("is not of type {arg}"));
                }
                "const" => self.expect(value == arg, at, &format!("is not {arg}")),
                "enum" => self.expect(
                    arg.as_array().unwrap().contains(value),
                    at,
                    &format!("is not one of {arg}"),
                ),
                "minimum" | "maximum" => {
                    if let (Some(v), Some(bound)) = (value.as_f64(), arg.as_f64()) {
                        let ok = if keyword == "minimum" {
                            v >= bound
                        } else {
                            v <= bound
                        };
                        self.expect(ok, at, &format!("violates {keyword} {bound}"));
                    }
                }
                "minLength" | "maxLength" => {
                    if let Some(s) = value.as_str() {
                        let n = s.chars().count() as u64;
                        let bound = arg.as_u64().unwrap();
                        let ok = if keyword == "minLength" {
                            n >= bound
                        } else {
                            n <= bound
                        };
                        self.expect(ok, at, &format!("violates {keyword} {bound}"));
                    }
                }
                "minItems" => {
                    if let Some(items) = value.as_array() {
                        let ok = items.len() as u64 >= arg.as_u64().unwrap();
                        self.expect(ok, at, &format!("has fewer than {arg} items"));
                    }
                }
                "pattern" => {
                    if let Some(s) = value.as_str() {
                        self.expect(
                            pattern(arg.as_str().unwrap(), s),
                            at,
                            &format!("does not match {arg}"),
                        );
                    }
                }
                "format" => {
                    if let Some(s) = value.as_str() {
                        let ok = match arg.as_str().unwrap() {
                            "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                            "date" => s.parse::<chrono::NaiveDate>().is_ok() && s.len() == 10,
                            other => panic!("format {other} not handled"),
                        };
                        self.expect(ok, at, &format!("is not a {arg}"));
                    }
                }
                "required" => {
                    if let Some(object) = value.as_object() {
                        for name in arg.as_array().unwrap() {
                            let name = name.as_str().unwrap();
                            self.expect(object.contains_key(name), at, &format!("misses `{name}`"));
                        }
                    }
                }
                "properties" => {
                    if let Some(object) = value.as_object() {
                        for (name, sub) in arg.as_object().unwrap() {
                            if let Some(v) = object.get(name) {
                                self.seen.insert(format!("{schema_at}/{name}"));
                                self.check(
                                    sub,
                                    v,
                                    &format!("{at}.{name}"),
                                    &format!("{schema_at}/properties/{name}"),
                                );
                            }
                        }
                    }
                }
                "additionalProperties" => {
                    if let Some(object) = value.as_object() {
                        let known = schema.get("properties").and_then(Value::as_object);
                        for (name, v) in object {
                            if known.is_some_and(|k| k.contains_key(name)) {
                                continue;
                            }
                            match arg {
                                Value::Bool(false) => {
                                    self.errors.push(format!("{at}: unknown field `{name}`"))
                                }
                                Value::Bool(true) => {}
                                sub => self.check(
                                    sub,
                                    v,
                                    &format!("{at}.{name}"),
                                    &format!("{schema_at}/additionalProperties"),
                                ),
                            }
                        }
                    }
                }
                "propertyNames" => {
                    if let Some(object) = value.as_object() {
                        for name in object.keys() {
                            self.check(arg, &json!(name), &format!("{at} key {name}"), schema_at);
                        }
                    }
                }
                "items" => {
                    if let Some(items) = value.as_array() {
                        for (i, item) in items.iter().enumerate() {
                            self.check(
                                arg,
                                item,
                                &format!("{at}[{i}]"),
                                &format!("{schema_at}/items"),
                            );
                        }
                    }
                }
                other => panic!("{schema_at}: keyword `{other}` is not handled by this checker"),
            }
        }
    }

    fn expect(&mut self, ok: bool, at: &str, what: &str) {
        if !ok {
            self.errors.push(format!("{at}: {what}"));
        }
    }
}

/// The patterns the schema uses, by hand.
fn pattern(pattern: &str, s: &str) -> bool {
    match pattern {
        "^[0-9a-f]{64}$" => {
            s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        }
        "^[A-Za-z0-9.-]{1,253}$" => {
            (1..=253).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        }
        "^wss://[^/?#@\\s]+/[A-Za-z0-9._~!$&'()*+,;=:@%/-]+$" => {
            let Some((authority, path)) = s.strip_prefix("wss://").and_then(|r| r.split_once('/'))
            else {
                return false;
            };
            !authority.is_empty()
                && !authority
                    .chars()
                    .any(|c| "/?#@".contains(c) || c.is_whitespace())
                && !path.is_empty()
                && path
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._~!$&'()*+,;=:@%/-".contains(&b))
        }
        "^[!-~]{1,128}$" => (1..=128).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic()),
        "^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$" => {
            s.len() == 44
                && s.as_bytes()[..42]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
                && "AEIMQUYcgkosw048".contains(s.as_bytes()[42] as char)
                && s.ends_with('=')
        }
        other => panic!("pattern {other} not handled by this checker"),
    }
}

fn check_against_schema(value: &Value) -> (Vec<String>, BTreeSet<String>) {
    let schema = schema();
    let mut checker = Checker {
        root: &schema,
        errors: Vec::new(),
        seen: BTreeSet::new(),
    };
    checker.check(&schema, value, "$", "#");
    (checker.errors, checker.seen)
}

/// The one optional property: `offers` came after the first clients, which never send it.
const OPTIONAL: &[&str] = &["#/$defs/path/offers"];

/// The one open object: an offer of a kind the schema does not define, which clients skip.
const OPEN: &[&str] = &["#/$defs/offer_unknown"];

/// Every `properties` entry of every object schema, as `location/name`.
fn all_properties(schema: &Value, at: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{at} has properties but no required list"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let names: BTreeSet<&str> = props
            .keys()
            .filter(|name| !OPTIONAL.contains(&format!("{at}/{name}").as_str()))
            .map(String::as_str)
            .collect();
        // Every other field is always written: the Rust types have no other Option.
        assert_eq!(
            required, names,
            "{at}: required list differs from properties"
        );
        assert_eq!(
            schema["additionalProperties"],
            json!(OPEN.contains(&at)),
            "{at} must be closed (only {OPEN:?} is open)"
        );
        for name in props.keys() {
            out.insert(format!("{at}/{name}"));
        }
    }
    if let Some(defs) = schema.get("$defs").and_then(Value::as_object) {
        for (name, def) in defs {
            all_properties(def, &format!("#/$defs/{name}"), out);
        }
    }
}

/// The sample as JSON, with an offer of a kind no client knows added to its first path (what
/// a newer publisher may write): the one object the crate never writes itself.
fn sample_with_unknown_offer() -> Value {
    let mut value: Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
    value
        .pointer_mut("/regions/eu-central/paths/0/offers")
        .unwrap()
        .as_array_mut()
        .unwrap()
        .insert(
            1,
            json!({ "kind": "T9", "endpoint": "203.0.113.10:9999", "secret": "zz" }),
        );
    value
}

#[test]
fn schema_file_and_rust_types_agree_on_the_sample() {
    let value = sample_with_unknown_offer();
    let (errors, seen) = check_against_schema(&value);
    assert!(errors.is_empty(), "sample does not validate: {errors:#?}");
    assert_eq!(from_value(&value).unwrap(), sample());
    let mut declared = BTreeSet::new();
    all_properties(&schema(), "#", &mut declared);
    let never_written: Vec<_> = declared.difference(&seen).collect();
    assert!(
        never_written.is_empty(),
        "schema properties the crate never writes: {never_written:?}"
    );
}

#[test]
fn schema_enums_are_the_rust_enums() {
    let schema = schema();
    let names = |v: &Value| -> BTreeSet<String> {
        v["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let roles: BTreeSet<String> = Role::ALL
        .iter()
        .map(|r| {
            serde_json::to_value(r)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        names(&schema["$defs"]["component"]["properties"]["role"]),
        roles
    );
    let transports: BTreeSet<String> = Transport::ALL
        .iter()
        .map(|t| {
            serde_json::to_value(t)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names(&schema["$defs"]["transport"]), transports);
    // The offer kinds: one closed branch per kind the crate knows, and the open branch for
    // every other kind.
    let kinds: BTreeSet<String> = Offer::KINDS.iter().map(|k| (*k).to_owned()).collect();
    let branches: BTreeSet<String> = schema["$defs"]["offer"]["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            b["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/$defs/")
                .to_owned()
        })
        .filter(|name| name != "offer_unknown")
        .map(|name| {
            schema["$defs"][&name]["properties"]["kind"]["const"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(branches, kinds);
    assert_eq!(
        names(&schema["$defs"]["offer_unknown"]["properties"]["kind"]["not"]),
        kinds
    );
    for t in Transport::ALL {
        assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
    }
    for r in Role::ALL {
        assert_eq!(serde_json::to_value(r).unwrap(), json!(r.as_str()));
    }
    assert_eq!(
        schema["properties"]["schema"]["const"],
        json!(damm_catalog::SCHEMA_V1)
    );
}

/// A named change that breaks a document.
type Edit = (&'static str, Box<dyn Fn(&mut Value)>);

#[test]
fn the_checker_and_the_crate_refuse_the_same_broken_documents() {
    let good: Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
    let path = "/regions/eu-central/paths/0";
    let edits: Vec<Edit> = vec![
        (
            "unknown top field",
            Box::new(|v| {
                v["extra"] = json!(1);
            }),
        ),
        (
            "unknown path field",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["extra"] = json!(1);
            }),
        ),
        (
            "missing field",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("expires_at");
            }),
        ),
        (
            "score above 1",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["score"] = json!(1.5);
            }),
        ),
        (
            "negative score",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["score"] = json!(-0.1);
            }),
        ),
        (
            "version 0",
            Box::new(|v| {
                v["version"] = json!(0);
            }),
        ),
        (
            "schema 2",
            Box::new(|v| {
                v["schema"] = json!("damm-catalog/2");
            }),
        ),
        (
            "bad role",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["composition"][0]["role"] = json!("exit");
            }),
        ),
        (
            "bad transport",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["transports"] = json!(["T9"]);
            }),
        ),
        (
            "no transports",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["transports"] = json!([]);
            }),
        ),
        (
            "no components",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["composition"] = json!([]);
            }),
        ),
        (
            "short key",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["gateway_public_key"] = json!("AAAA");
            }),
        ),
        (
            "bad date",
            Box::new(|v| {
                v["issued_at"] = json!("yesterday");
            }),
        ),
        (
            "bad day",
            Box::new(|v| {
                v["validated_for"][0]["proven_at"] = json!("2026-13-01");
            }),
        ),
        (
            "fleet with space",
            Box::new(|v| {
                v["fleet"] = json!("my fleet");
            }),
        ),
        (
            "short T1 key",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["offers"][1]["key"] = json!("abcd");
            }),
        ),
        (
            "uppercase T1 key",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["offers"][1]["key"] = json!("AB".repeat(32));
            }),
        ),
        (
            "T1 without key",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["offers"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("key");
            }),
        ),
        (
            "unknown field in a known offer",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["offers"][0]["port"] = json!(1);
            }),
        ),
        (
            "offer without kind",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["offers"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("kind");
            }),
        ),
        (
            "offer kind not a string",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["offers"][0]["kind"] = json!(0);
            }),
        ),
        (
            "offer not an object",
            Box::new(|v| {
                v.pointer_mut(path).unwrap()["offers"] = json!(["T0"]);
            }),
        ),
        (
            "T3 over plain ws",
            Box::new(|v| {
                v.pointer_mut("/regions/eu-central/paths/1").unwrap()["offers"][0]["url"] =
                    json!("ws://vpn-front.example.org/secret");
            }),
        ),
        (
            "T3 without a path",
            Box::new(|v| {
                v.pointer_mut("/regions/eu-central/paths/1").unwrap()["offers"][0]["url"] =
                    json!("wss://vpn-front.example.org/");
            }),
        ),
        (
            "T3 with a query",
            Box::new(|v| {
                v.pointer_mut("/regions/eu-central/paths/1").unwrap()["offers"][0]["url"] =
                    json!("wss://vpn-front.example.org/a?b");
            }),
        ),
        (
            "T3 host with a space",
            Box::new(|v| {
                v.pointer_mut("/regions/eu-central/paths/1").unwrap()["offers"][0]["sni"] =
                    json!("vpn front");
            }),
        ),
        (
            "region with space",
            Box::new(|v| {
                let paths = v["regions"]
                    .as_object_mut()
                    .unwrap()
                    .remove("us-east")
                    .unwrap();
                v["regions"]["us east"] = paths;
            }),
        ),
    ];
    for (name, edit) in edits {
        let mut broken = good.clone();
        edit(&mut broken);
        let (errors, _) = check_against_schema(&broken);
        assert!(!errors.is_empty(), "{name}: the schema accepts it");
        let bytes = serde_json::to_vec(&broken).unwrap();
        assert!(
            Catalog::from_json(&bytes).is_err(),
            "{name}: the crate accepts it"
        );
    }
}

fn from_value(v: &Value) -> Result<Catalog, CatalogError> {
    Catalog::from_json(&serde_json::to_vec(v).unwrap())
}

#[test]
fn validation_beyond_the_schema() {
    let good: Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
    let path = "/regions/eu-central/paths/0";

    let mut v = good.clone();
    v["expires_at"] = v["issued_at"].clone();
    assert!(matches!(
        from_value(&v),
        Err(CatalogError::EmptyValidity { .. })
    ));

    let mut v = good.clone();
    let first = v.pointer(path).unwrap().clone();
    v.pointer_mut("/regions/eu-central/paths")
        .unwrap()
        .as_array_mut()
        .unwrap()
        .push(first);
    let err = from_value(&v).unwrap_err();
    assert!(
        matches!(err, CatalogError::DuplicatePathId { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("eu-central/hetzner-fsn1-a"),
        "{err}"
    );

    // The same path id in two regions is fine.
    let mut v = good.clone();
    v["regions"]["us-east"]["paths"][0]["path_id"] = json!("eu-central/hetzner-fsn1-a");
    assert!(from_value(&v).is_ok());

    for endpoint in [
        "203.0.113.10",
        "203.0.113.10:0",
        "2001:db8::1:51820",
        "bad host:1",
        "h:1\nx",
    ] {
        let mut v = good.clone();
        v.pointer_mut(path).unwrap()["endpoint"] = json!(endpoint);
        let err = from_value(&v).unwrap_err();
        assert!(
            matches!(err, CatalogError::Endpoint { .. }),
            "{endpoint}: {err:?}"
        );
        assert!(err.to_string().contains("paths[0].endpoint"), "{err}");
    }

    let mut v = good.clone();
    v.pointer_mut(path).unwrap()["gateway_public_key"] = json!("A".repeat(43) + "=");
    assert!(matches!(
        from_value(&v),
        Err(CatalogError::InvalidField { .. })
    ));

    let mut v = good.clone();
    v["validated_for"][0]["scenario"] = json!("line\nbreak");
    assert!(from_value(&v).is_err());

    let mut v = good;
    v["fleet"] = json!("x".repeat(129));
    assert!(from_value(&v).is_err());
}

#[test]
fn parse_errors_name_line_and_column() {
    let json = sample()
        .to_json()
        .unwrap()
        .replace("\"score\": 0.93", "\"score\": \"high\"");
    let message = Catalog::from_json(json.as_bytes()).unwrap_err().to_string();
    assert!(
        message.contains("line") && message.contains("column"),
        "{message}"
    );
    let message = Catalog::from_json(br#"{"schema":"damm-catalog/1","bogus":1}"#)
        .unwrap_err()
        .to_string();
    assert!(message.contains("bogus"), "{message}");
}

#[test]
fn to_json_round_trips() {
    let json = sample().to_json().unwrap();
    assert!(json.ends_with("}\n"));
    assert_eq!(Catalog::from_json(json.as_bytes()).unwrap(), sample());
    assert!(
        json.contains("\"issued_at\": \"2026-11-23T11:59:00Z\""),
        "{json}"
    );
}

#[test]
fn the_example_in_the_docs_is_valid() {
    let doc = docs("catalog.md");
    let start = doc
        .find("```json\n")
        .expect("docs/catalog.md has a ```json example")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    let example = &doc[start..end];
    let catalog = Catalog::from_json(example.as_bytes())
        .unwrap_or_else(|e| panic!("the docs example is not a valid catalog: {e}"));
    let (errors, _) = check_against_schema(&serde_json::from_str(example).unwrap());
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(catalog.schema, damm_catalog::SCHEMA_V1);
}

/// `regions.eu-central.paths[0].offers[1]` is the sample's T1 offer.
const T1_OFFER: &str = "/regions/eu-central/paths/0/offers/1";

#[test]
fn an_unknown_offer_kind_is_skipped_not_the_catalog() {
    let with_unknown = sample_with_unknown_offer();
    let catalog = from_value(&with_unknown).expect("an unknown offer kind is skipped");
    let offers = &catalog.region("eu-central").unwrap()[0].offers;
    assert_eq!(
        offers.iter().map(Offer::kind).collect::<Vec<_>>(),
        ["T0", "T1", "T2"],
        "the known offers stay, in order"
    );
    // Whatever the unknown offer holds, even fields that would be wrong in a known kind.
    let mut v = with_unknown.clone();
    v.pointer_mut("/regions/eu-central/paths/0/offers/1")
        .unwrap()
        .as_object_mut()
        .unwrap()
        .insert("key".into(), json!(["not", "a", "key"]));
    assert!(from_value(&v).is_ok());
    // A path whose only offers are unknown keeps its primary transport.
    let mut v = with_unknown;
    v.pointer_mut("/regions/us-east/paths/0").unwrap()["offers"] =
        json!([{ "kind": "T7", "url": "quic://x" }]);
    let catalog = from_value(&v).unwrap();
    let path = &catalog.region("us-east").unwrap()[0];
    assert!(path.offers.is_empty());
    assert_eq!(path.transports, [Transport::WireguardUdp]);
    assert_eq!(path.endpoint, "[2001:db8::10]:51820");
}

#[test]
fn a_bad_offer_is_refused_with_its_field() {
    let good: Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
    let refused = |edit: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        edit(&mut v);
        from_value(&v).unwrap_err()
    };
    for key in [
        json!("abcd"),
        json!("AB".repeat(32)),
        json!("g0".repeat(32)),
        json!("0".repeat(64)),
    ] {
        let err = refused(&|v| v.pointer_mut(T1_OFFER).unwrap()["key"] = key.clone());
        assert!(matches!(err, CatalogError::InvalidField { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with("`regions.eu-central.paths[0].offers[1].key`:"),
            "{err}"
        );
    }
    let err = refused(&|v| v.pointer_mut(T1_OFFER).unwrap()["endpoint"] = json!("203.0.113.10"));
    assert!(matches!(err, CatalogError::Endpoint { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("regions.eu-central.paths[0].offers[1].endpoint"),
        "{err}"
    );
    let t3 = "/regions/eu-central/paths/1/offers/0";
    for (field, value) in [
        ("url", "https://vpn-front.example.org/x"),
        ("url", "wss://vpn-front.example.org"),
        ("host", "vpn_front.example.org"),
        ("sni", "203.0.113.10"),
    ] {
        let err = refused(&|v| v.pointer_mut(t3).unwrap()[field] = json!(value));
        assert!(
            err.to_string()
                .starts_with(&format!("`regions.eu-central.paths[1].offers[0].{field}`:")),
            "{field} = {value}: {err}"
        );
    }
    // Shape errors (serde's) name the offer and where it is in the text.
    let err = refused(&|v| {
        v.pointer_mut(T1_OFFER)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("key");
    });
    let message = err.to_string();
    assert!(
        message.contains("offers[1] (T1)") && message.contains("`key`"),
        "{message}"
    );
}

#[test]
fn offers_round_trip() {
    let catalog = sample();
    let json = catalog.to_json().unwrap();
    let again = Catalog::from_json(json.as_bytes()).unwrap();
    assert_eq!(again, catalog);
    assert_eq!(again.to_json().unwrap(), json, "the same bytes again");
    let Offer::T1(t1) = &again.region("eu-central").unwrap()[0].offers[1] else {
        panic!("the second offer is T1");
    };
    assert_eq!(t1.key.to_bytes(), Some(SAMPLE_T1_KEY));
    assert_eq!(t1.key, T1Key::from_bytes(SAMPLE_T1_KEY));
    // What the JSON looks like: kind first, then the kind's parameters.
    let value: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        value.pointer(T1_OFFER).unwrap(),
        &json!({ "kind": "T1", "endpoint": "203.0.113.10:4443", "key": "5a".repeat(32) })
    );
    assert!(
        json.find("\"kind\": \"T1\"").unwrap() < json.find("\"key\": \"5a5a").unwrap(),
        "{json}"
    );
}

#[test]
fn old_clients_keep_their_meaning() {
    // A catalog without offers is written exactly as before offers existed: no `offers` key,
    // so clients that predate it accept it.
    let mut plain = sample();
    for region in plain.regions.values_mut() {
        for path in &mut region.paths {
            path.offers.clear();
        }
    }
    let json = plain.to_json().unwrap();
    assert!(!json.contains("offers"), "{json}");
    assert_eq!(Catalog::from_json(json.as_bytes()).unwrap(), plain);

    // A catalog with offers says the same through `transports` and `endpoint`: drop every
    // `offers` and the rest is the same catalog, and the primary endpoint is among the offers.
    let with: Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
    let mut without = with.clone();
    for region in without["regions"].as_object_mut().unwrap().values_mut() {
        for path in region["paths"].as_array_mut().unwrap() {
            path.as_object_mut().unwrap().remove("offers");
        }
    }
    let (errors, _) = check_against_schema(&without);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(from_value(&without).unwrap(), plain);
    let with = from_value(&with).unwrap();
    for (region, paths) in &with.regions {
        for (path, old) in paths.paths.iter().zip(&plain.regions[region].paths) {
            assert_eq!(path.transports, old.transports);
            assert_eq!(path.endpoint, old.endpoint);
            assert_eq!(path.gateway_public_key, old.gateway_public_key);
        }
    }
    let udp = &with.region("eu-central").unwrap()[0];
    assert!(matches!(&udp.offers[0], Offer::T0(t0) if t0.endpoint == udp.endpoint));
}

#[test]
fn a_t1_key_never_shows_in_debug() {
    let catalog = sample();
    let hex = "5a".repeat(32);
    let path = &catalog.region("eu-central").unwrap()[0];
    for shown in [
        format!("{catalog:?}"),
        format!("{path:?}"),
        format!("{:?}", path.offers),
        format!("{:#?}", path.offers[1]),
    ] {
        assert!(!shown.contains(&hex), "{shown}");
        assert!(shown.contains("T1Key([redacted])"), "{shown}");
    }
}
