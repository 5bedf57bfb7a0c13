//! The JSON Schema in docs/ and the Rust types agree; validation refuses what it must.
//!
//! No JSON Schema crate: a small checker below understands exactly the keywords the schema
//! uses and fails on any other, so the schema cannot grow past what is checked here.

use std::collections::BTreeSet;

use damm_catalog::{Catalog, CatalogError, Role, Transport};
use serde_json::{Value, json};

use crate::common::sample;

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

/// The two patterns the schema uses, by hand.
fn pattern(pattern: &str, s: &str) -> bool {
    match pattern {
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

/// Every `properties` entry of every object schema, as `location/name`.
fn all_properties(schema: &Value, at: &str, out: &mut BTreeSet<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{at} has properties but no required list"))
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let names: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        // No Option fields in schema 1: the Rust types always write every field.
        assert_eq!(
            required, names,
            "{at}: required list differs from properties"
        );
        assert_eq!(
            schema["additionalProperties"],
            json!(false),
            "{at} must be closed"
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

#[test]
fn schema_file_and_rust_types_agree_on_the_sample() {
    let value: Value = serde_json::from_str(&sample().to_json().unwrap()).unwrap();
    let (errors, seen) = check_against_schema(&value);
    assert!(errors.is_empty(), "sample does not validate: {errors:#?}");
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
