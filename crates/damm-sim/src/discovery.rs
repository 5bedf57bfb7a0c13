//! Requests and responses checked against a Google API Discovery document.
//!
//! Google describes its REST APIs (Compute Engine among them) in the Discovery format,
//! not OpenAPI: methods carry a `path` template relative to the service path, `request`
//! and `response` name schemas by id, and schemas are a small JSON-Schema dialect —
//! `$ref` by schema id (not by JSON pointer), `type` with a `format` (`int64` and
//! `uint64` travel as decimal *strings*, `byte` as base64, `int32`/`uint32` as numbers),
//! `properties`, `items`, `additionalProperties`, `enum` and `pattern`. Required request
//! fields are written per method as `annotations.required: ["compute.instances.insert"]`.
//!
//! What the format does not say, and this checker adds (both to catch a simulator that
//! drifts, not to be stricter than Google):
//! - a property that the schema does not document is an error, in requests and responses;
//! - in a response, a schema's `kind` property with a `default` is a constant the object
//!   must carry (`compute#instance`), and a resource or list with such a `kind` must
//!   also carry its documented `id` and `selfLink`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One method of the document: where it lives and what it takes and returns.
#[derive(Debug, Clone)]
struct Method {
    /// `compute.instances.insert`.
    id: String,
    http_method: String,
    /// The path template split at `/`: `projects`, `{project}`, `zones`, ...
    segments: Vec<String>,
    request: Option<String>,
    response: Option<String>,
}

impl Method {
    /// Whether `path` fits the template; the number of literal segments when it does
    /// (a literal `bulkInsert` beats a `{instance}`).
    fn fit(&self, path: &[&str]) -> Option<usize> {
        if self.segments.len() != path.len() {
            return None;
        }
        let mut literal = 0;
        for (template, actual) in self.segments.iter().zip(path) {
            if template.starts_with('{') {
                if actual.is_empty() {
                    return None;
                }
            } else if template == actual {
                literal += 1;
            } else {
                return None;
            }
        }
        Some(literal)
    }
}

/// A parsed Discovery document.
#[derive(Debug)]
pub(crate) struct Discovery {
    schemas: Map<String, Value>,
    methods: Vec<Method>,
}

/// Which way a body travels: requests check `annotations.required`, responses the
/// identity fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Request,
    Response,
}

impl Discovery {
    /// Parses the document.
    pub(crate) fn from_json(text: &str) -> Result<Discovery, String> {
        let doc: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if doc.get("kind").and_then(Value::as_str) != Some("discovery#restDescription") {
            return Err("not a Discovery document (kind is not discovery#restDescription)".into());
        }
        let schemas = doc
            .get("schemas")
            .and_then(Value::as_object)
            .cloned()
            .ok_or("the document has no schemas")?;
        let mut methods = Vec::new();
        if let Some(resources) = doc.get("resources").and_then(Value::as_object) {
            collect_methods(resources, &mut methods);
        }
        let discovery = Discovery { schemas, methods };
        // Every reference must resolve, or a check would fail at run time instead.
        for (name, schema) in &discovery.schemas {
            discovery.check_refs(schema, name)?;
        }
        Ok(discovery)
    }

    fn check_refs(&self, schema: &Value, at: &str) -> Result<(), String> {
        match schema {
            Value::Object(map) => {
                if let Some(target) = map.get("$ref").and_then(Value::as_str)
                    && !self.schemas.contains_key(target)
                {
                    return Err(format!("{at}: $ref `{target}` names no schema"));
                }
                map.values().try_for_each(|v| self.check_refs(v, at))
            }
            Value::Array(items) => items.iter().try_for_each(|v| self.check_refs(v, at)),
            _ => Ok(()),
        }
    }

    /// The method serving `http_method` on `path` (relative to the service path, with or
    /// without the leading `/`).
    fn method(&self, http_method: &str, path: &str) -> Option<&Method> {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        self.methods
            .iter()
            .filter(|m| m.http_method.eq_ignore_ascii_case(http_method))
            .filter_map(|m| m.fit(&parts).map(|literal| (literal, m)))
            .max_by_key(|(literal, _)| *literal)
            .map(|(_, m)| m)
    }

    /// The id of the method serving the call (`compute.instances.insert`), if any.
    pub(crate) fn method_id(&self, http_method: &str, path: &str) -> Option<&str> {
        self.method(http_method, path).map(|m| m.id.as_str())
    }

    /// Checks a request body against the method's `request` schema. Calls the document
    /// does not describe pass.
    pub(crate) fn validate_request(
        &self,
        http_method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(), Vec<String>> {
        self.validate(
            http_method,
            path,
            Direction::Request,
            |checker, method| match &method.request {
                Some(name) => checker.named(name, body, "$"),
                None if body.as_object().is_some_and(Map::is_empty) || body.is_null() => {}
                None => checker
                    .errors
                    .push(format!("$: {} takes no request body", method.id)),
            },
        )
    }

    /// Checks a successful response body against the method's `response` schema.
    pub(crate) fn validate_response(
        &self,
        http_method: &str,
        path: &str,
        body: &Value,
    ) -> Result<(), Vec<String>> {
        self.validate(http_method, path, Direction::Response, |checker, method| {
            if let Some(name) = &method.response {
                checker.named(name, body, "$");
            }
        })
    }

    /// Runs `check` on the method serving the call, collecting its errors; calls the
    /// document does not describe pass.
    fn validate(
        &self,
        http_method: &str,
        path: &str,
        direction: Direction,
        check: impl FnOnce(&mut Checker<'_>, &Method),
    ) -> Result<(), Vec<String>> {
        let Some(method) = self.method(http_method, path) else {
            return Ok(());
        };
        let mut checker = Checker {
            schemas: &self.schemas,
            direction,
            method: &method.id,
            errors: Vec::new(),
        };
        check(&mut checker, method);
        if checker.errors.is_empty() {
            Ok(())
        } else {
            Err(checker.errors)
        }
    }
}

/// One body's check against the document: which way it travels, for which method, and the
/// errors found so far.
struct Checker<'a> {
    schemas: &'a Map<String, Value>,
    direction: Direction,
    /// The method's id (`compute.instances.insert`), as `annotations.required` names it.
    method: &'a str,
    errors: Vec<String>,
}

impl Checker<'_> {
    fn named(&mut self, name: &str, value: &Value, at: &str) {
        match self.schemas.get(name) {
            Some(schema) => self.check(schema, value, at),
            None => self
                .errors
                .push(format!("{at}: schema `{name}` is not in the document")),
        }
    }

    fn check(&mut self, schema: &Value, value: &Value, at: &str) {
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            return self.named(target, value, at);
        }
        let kind = schema.get("type").and_then(Value::as_str).unwrap_or("any");
        let format = schema.get("format").and_then(Value::as_str);
        match kind {
            "any" => {}
            "object" => self.check_object(schema, value, at),
            "array" => match value.as_array() {
                Some(items) => {
                    if let Some(item_schema) = schema.get("items") {
                        for (i, item) in items.iter().enumerate() {
                            self.check(item_schema, item, &format!("{at}[{i}]"));
                        }
                    }
                }
                None => self
                    .errors
                    .push(format!("{at}: expected an array, found {}", type_of(value))),
            },
            "string" => match value.as_str() {
                Some(text) => check_string(schema, format, text, at, &mut self.errors),
                None => self
                    .errors
                    .push(format!("{at}: expected a string, found {}", type_of(value))),
            },
            "integer" => check_integer(format, value, at, &mut self.errors),
            "number" => {
                if !value.is_number() {
                    self.errors
                        .push(format!("{at}: expected a number, found {}", type_of(value)));
                }
            }
            "boolean" => {
                if !value.is_boolean() {
                    self.errors.push(format!(
                        "{at}: expected a boolean, found {}",
                        type_of(value)
                    ));
                }
            }
            other => self
                .errors
                .push(format!("{at}: the schema has unknown type `{other}`")),
        }
    }

    fn check_object(&mut self, schema: &Value, value: &Value, at: &str) {
        let Some(object) = value.as_object() else {
            self.errors.push(format!(
                "{at}: expected an object, found {}",
                type_of(value)
            ));
            return;
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (key, item) in object {
            let child = format!("{at}.{key}");
            match (properties.and_then(|p| p.get(key)), additional) {
                (Some(property), _) | (None, Some(property)) => {
                    self.check(property, item, &child);
                }
                (None, None) => self
                    .errors
                    .push(format!("{child}: not a documented property")),
            }
        }
        let Some(properties) = properties else {
            return;
        };
        for (key, property) in properties {
            if object.contains_key(key) {
                continue;
            }
            let required = match self.direction {
                Direction::Request => required_by(property, self.method),
                Direction::Response => false,
            };
            if required {
                let method = self.method;
                self.errors
                    .push(format!("{at}.{key}: required by {method} but missing"));
            }
        }
        if self.direction == Direction::Response {
            check_identity(properties, object, at, &mut self.errors);
        }
    }
}

/// A response object whose schema gives `kind` a default carries that kind, and (for
/// resources and lists) its `id` and `selfLink`.
fn check_identity(
    properties: &Map<String, Value>,
    object: &Map<String, Value>,
    at: &str,
    errors: &mut Vec<String>,
) {
    let Some(constant) = properties
        .get("kind")
        .and_then(|k| k.get("default"))
        .and_then(Value::as_str)
    else {
        return;
    };
    match object.get("kind").and_then(Value::as_str) {
        Some(found) if found == constant => {}
        Some(found) => errors.push(format!("{at}.kind: `{found}`, documented `{constant}`")),
        None => errors.push(format!("{at}.kind: missing (always `{constant}`)")),
    }
    for identity in ["id", "selfLink"] {
        if properties.contains_key(identity) && !object.contains_key(identity) {
            errors.push(format!("{at}.{identity}: missing from a `{constant}`"));
        }
    }
}

/// Whether `property` is required for `method` (`annotations.required` lists method
/// ids; a plain `required: true` counts for every method).
fn required_by(property: &Value, method: &str) -> bool {
    property.get("required").and_then(Value::as_bool) == Some(true)
        || property
            .get("annotations")
            .and_then(|a| a.get("required"))
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(method)))
}

fn collect_methods(resources: &Map<String, Value>, out: &mut Vec<Method>) {
    for resource in resources.values() {
        if let Some(methods) = resource.get("methods").and_then(Value::as_object) {
            for method in methods.values() {
                let text = |key: &str| method.get(key).and_then(Value::as_str).map(str::to_owned);
                let schema = |key: &str| {
                    method
                        .get(key)
                        .and_then(|r| r.get("$ref"))
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                };
                let (Some(id), Some(http_method), Some(path)) =
                    (text("id"), text("httpMethod"), text("path"))
                else {
                    continue;
                };
                out.push(Method {
                    id,
                    http_method,
                    segments: path.split('/').map(str::to_owned).collect(),
                    request: schema("request"),
                    response: schema("response"),
                });
            }
        }
        if let Some(nested) = resource.get("resources").and_then(Value::as_object) {
            collect_methods(nested, out);
        }
    }
}

fn check_string(
    schema: &Value,
    format: Option<&str>,
    text: &str,
    at: &str,
    errors: &mut Vec<String>,
) {
    let ok = match format {
        Some("int64") => text.parse::<i64>().is_ok(),
        Some("uint64") => text.parse::<u64>().is_ok(),
        Some("byte") => is_base64(text),
        Some("google-datetime") | Some("date-time") => {
            chrono::DateTime::parse_from_rfc3339(text).is_ok()
        }
        _ => true,
    };
    if !ok {
        errors.push(format!(
            "{at}: `{text}` is not a {}",
            format.unwrap_or("string")
        ));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.iter().any(|a| a.as_str() == Some(text))
    {
        errors.push(format!(
            "{at}: `{text}` is not one of the documented values"
        ));
    }
    if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
        // Discovery patterns are written unanchored but mean the whole value.
        match regex::Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) if !re.is_match(text) => {
                errors.push(format!("{at}: `{text}` does not match `{pattern}`"));
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("{at}: the schema's pattern does not compile: {e}")),
        }
    }
}

fn check_integer(format: Option<&str>, value: &Value, at: &str, errors: &mut Vec<String>) {
    let fits = match format {
        Some("int32") => value.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        Some("uint32") => value.as_u64().is_some_and(|n| u32::try_from(n).is_ok()),
        // Wider formats travel as strings; an integer schema without a format takes any.
        _ => value.is_i64() || value.is_u64(),
    };
    if !fits {
        errors.push(format!(
            "{at}: expected an {} integer, found {value}",
            format.unwrap_or("")
        ));
    }
}

/// Discovery's `byte`: "a padded, base64-encoded string of bytes, encoded with a URL
/// and filename safe alphabet" (base64url, RFC 4648 §5). Google's clients refuse `+`
/// and `/` there.
fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
}

fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Google's error body, which the Discovery document does not describe:
/// `{"error": {"code": N, "message": "...", "errors": [{"message", "domain", "reason"}]}}`.
pub(crate) fn check_google_error(status: u16, body: &Value) -> Result<(), String> {
    let mut problems = Vec::new();
    let error = body.get("error").and_then(Value::as_object);
    match error {
        None => problems.push("no `error` object".to_owned()),
        Some(error) => {
            if error.get("code").and_then(Value::as_u64) != Some(u64::from(status)) {
                problems.push(format!("`error.code` is not {status}"));
            }
            if !error.get("message").is_some_and(Value::is_string) {
                problems.push("`error.message` is not a string".to_owned());
            }
            let items = error.get("errors").and_then(Value::as_array);
            let well_formed = items.is_some_and(|items| {
                !items.is_empty()
                    && items.iter().all(|i| {
                        ["message", "domain", "reason"]
                            .iter()
                            .all(|k| i.get(*k).is_some_and(Value::is_string))
                    })
            });
            if !well_formed {
                problems
                    .push("`error.errors` is not a list of {message, domain, reason}".to_owned());
            }
            let known: BTreeMap<&str, ()> = ["code", "message", "errors", "status", "details"]
                .into_iter()
                .map(|k| (k, ()))
                .collect();
            for key in error.keys() {
                if !known.contains_key(key.as_str()) {
                    problems.push(format!("`error.{key}` is not part of Google's error body"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "a Google error body is {{\"error\": {{code, message, errors}}}}: {}",
            problems.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc() -> Discovery {
        let text = json!({
            "kind": "discovery#restDescription",
            "resources": {"things": {"methods": {
                "insert": {"id": "x.things.insert", "httpMethod": "POST",
                    "path": "projects/{project}/things",
                    "request": {"$ref": "Thing"}, "response": {"$ref": "Op"}},
                "special": {"id": "x.things.special", "httpMethod": "POST",
                    "path": "projects/{project}/things/special", "response": {"$ref": "Op"}},
                "get": {"id": "x.things.get", "httpMethod": "GET",
                    "path": "projects/{project}/things/{thing}", "response": {"$ref": "Thing"}}
            }}},
            "schemas": {
                "Thing": {"id": "Thing", "type": "object", "properties": {
                    "kind": {"type": "string", "default": "x#thing"},
                    "id": {"type": "string", "format": "uint64"},
                    "selfLink": {"type": "string"},
                    "name": {"type": "string", "pattern": "[a-z]+",
                        "annotations": {"required": ["x.things.insert"]}},
                    "size": {"type": "integer", "format": "int32"},
                    "state": {"type": "string", "enum": ["UP", "DOWN"]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "parts": {"type": "array", "items": {"$ref": "Op"}}
                }},
                "Op": {"id": "Op", "type": "object", "properties": {
                    "status": {"type": "string"}, "fingerprint": {"type": "string", "format": "byte"}
                }}
            }
        });
        Discovery::from_json(&text.to_string()).unwrap()
    }

    #[test]
    fn methods_match_by_template_and_literals_win() {
        let d = doc();
        assert_eq!(
            d.method_id("POST", "/projects/p/things"),
            Some("x.things.insert")
        );
        assert_eq!(
            d.method_id("POST", "/projects/p/things/special"),
            Some("x.things.special")
        );
        assert_eq!(
            d.method_id("GET", "projects/p/things/special"),
            Some("x.things.get")
        );
        assert_eq!(d.method_id("DELETE", "/projects/p/things/a"), None);
    }

    #[test]
    fn requests_need_their_required_fields_and_documented_shapes() {
        let d = doc();
        let path = "/projects/p/things";
        assert!(
            d.validate_request("POST", path, &json!({"name": "abc"}))
                .is_ok()
        );
        let errors = d
            .validate_request("POST", path, &json!({"size": 1}))
            .unwrap_err();
        assert!(errors[0].contains("name"), "{errors:?}");
        let errors = d
            .validate_request(
                "POST",
                path,
                &json!({"name": "ABC", "size": 5_000_000_000i64, "state": "SIDEWAYS",
                    "labels": {"a": 1}, "extra": true}),
            )
            .unwrap_err();
        assert_eq!(errors.len(), 5, "{errors:?}");
    }

    #[test]
    fn responses_carry_kind_id_and_self_link_and_wide_integers_as_strings() {
        let d = doc();
        let path = "/projects/p/things/t";
        let good = json!({"kind": "x#thing", "id": "123", "selfLink": "s",
            "parts": [{"status": "DONE", "fingerprint": "q83vEjRW-_A="}]});
        assert!(d.validate_response("GET", path, &good).is_ok());
        let errors = d
            .validate_response("GET", path, &json!({"kind": "x#other", "id": 123}))
            .unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        let errors = d
            .validate_response(
                "GET",
                path,
                &json!({"kind": "x#thing", "id": "1", "selfLink": "s",
                    "parts": [{"fingerprint": "q83vEjRW+/A="}]}),
            )
            .unwrap_err();
        assert!(errors[0].contains("parts[0].fingerprint"), "{errors:?}");
    }

    #[test]
    fn dangling_references_are_refused_at_load() {
        let text = json!({"kind": "discovery#restDescription",
            "schemas": {"A": {"type": "object", "properties": {"b": {"$ref": "B"}}}}});
        assert!(Discovery::from_json(&text.to_string()).is_err());
    }

    #[test]
    fn google_error_bodies_are_checked() {
        let good = json!({"error": {"code": 404, "message": "gone",
            "errors": [{"message": "gone", "domain": "global", "reason": "notFound"}]}});
        assert!(check_google_error(404, &good).is_ok());
        assert!(check_google_error(409, &good).is_err());
        assert!(check_google_error(404, &json!({"error": "gone"})).is_err());
    }

    #[test]
    fn the_vendored_compute_document_loads() {
        let d = Discovery::from_json(include_str!("../specs/gce-compute.v1.json")).unwrap();
        assert_eq!(
            d.method_id("POST", "/projects/p/zones/z/instances/i/addAccessConfig"),
            Some("compute.instances.addAccessConfig")
        );
        assert_eq!(
            d.method_id("POST", "/projects/p/zones/z/instances"),
            Some("compute.instances.insert")
        );
    }
}
