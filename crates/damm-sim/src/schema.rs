//! A small validator for the OpenAPI 3.0 schemas in the providers' API documents.
//!
//! The simulator checks every request it receives and every response it sends against the
//! provider's published document (see `specs/README.md`). General JSON Schema validators do
//! not fit these documents well, hence this local one:
//!
//! - OpenAPI 3.0 is not JSON Schema: a value may be `null` only where the schema says
//!   `nullable: true`, a keyword JSON Schema validators do not know (they would either reject
//!   every `null` or need the documents rewritten into 3.1 form first).
//! - The documents rely on a lenient reading of `nullable`: Hetzner's write
//!   `{"allOf": [{"$ref": …}], "nullable": true}`, which by the letter of OpenAPI 3.0.3 still
//!   rejects `null` (the referenced schema has `type: object`), yet the API sends `null` there.
//!   Here `nullable: true` accepts `null` outright, whatever else the schema says.
//! - Hetzner writes response codes as lowercase `4xx`/`5xx`; response keys are matched
//!   case-insensitively.
//! - DigitalOcean's `oneOf` alternatives overlap (see [`ApiSpec::validate_request`]'s notes
//!   on `oneOf`), so `oneOf` is read as "at least one".
//!
//! Only the subset of keywords these documents use is implemented, which keeps the module
//! small and its dependencies to `serde_json` and `regex`:
//! `$ref` (local, `#/…`), `type`, `nullable`, `enum`, `properties`, `required`,
//! `additionalProperties`, `items`, `minItems`, `maxItems`, `allOf`, `anyOf`, `oneOf`,
//! `minimum`, `maximum` (with the 3.0 boolean `exclusiveMinimum`/`exclusiveMaximum`),
//! `multipleOf`, `minLength`, `maxLength`, `pattern` and the `int32`/`int64` formats.
//! Annotations (`description`, `example`, `title`, `default`, `deprecated`, `readOnly`,
//! `discriminator`, `x-*`, other formats) are ignored. A `$ref`'s sibling keywords are
//! ignored, as OpenAPI 3.0 specifies.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use regex::Regex;
use serde_json::{Map, Number, Value};

/// The operation keys of an OpenAPI path item (other keys, like `servers` or `parameters`,
/// are not operations).
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// How many `$ref`s in a row may lead from a response or request body to its definition.
const MAX_REF_HOPS: usize = 32;

/// A parsed OpenAPI 3.0 document, ready to validate request and response bodies.
#[derive(Debug)]
pub struct ApiSpec {
    /// The whole document, for `$ref` lookups.
    doc: Value,
    /// The document's path templates, parsed for [`ApiSpec::match_path`].
    templates: Vec<PathTemplate>,
    /// Every `pattern` in the document, compiled once; `None` where the regex crate cannot
    /// compile it (ECMA-262 features such as look-around), in which case it is not checked.
    patterns: HashMap<String, Option<Regex>>,
}

/// One validation failure: where in the instance, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// JSON pointer (RFC 6901) into the validated body, e.g. `/server/labels`; empty for the
    /// body itself. A missing required property is reported at the pointer it would have.
    pub pointer: String,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)
    }
}

impl std::error::Error for SchemaError {}

/// A path template such as `/servers/{id}/actions/poweroff`, split into segments.
#[derive(Debug)]
struct PathTemplate {
    template: String,
    segments: Vec<Segment>,
    /// The operations (lowercase HTTP methods) the path item defines.
    methods: Vec<&'static str>,
}

/// One `/`-separated segment of a path template.
#[derive(Debug)]
enum Segment {
    /// Matched exactly.
    Literal(String),
    /// Text around parameters, such as `{name}.json`.
    Mixed(Regex),
    /// A whole-segment parameter such as `{id}`: any non-empty segment.
    Param,
}

impl Segment {
    fn parse(segment: &str) -> Result<Segment, String> {
        if !segment.contains('{') {
            return Ok(Segment::Literal(segment.to_owned()));
        }
        if segment.starts_with('{') && segment.ends_with('}') && segment.matches('{').count() == 1 {
            return Ok(Segment::Param);
        }
        let mut re = String::from("^");
        let mut rest = segment;
        while let Some(open) = rest.find('{') {
            re.push_str(&regex::escape(&rest[..open]));
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in path template segment `{segment}`"))?;
            re.push_str(".+?");
            rest = &rest[open + close + 1..];
        }
        re.push_str(&regex::escape(rest));
        re.push('$');
        Regex::new(&re)
            .map(Segment::Mixed)
            .map_err(|e| format!("path template segment `{segment}`: {e}"))
    }

    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Literal(literal) => literal == segment,
            Segment::Mixed(re) => re.is_match(segment),
            Segment::Param => !segment.is_empty(),
        }
    }

    /// Lower is more specific: literal text beats a parameter.
    fn rank(&self) -> u8 {
        match self {
            Segment::Literal(_) => 0,
            Segment::Mixed(_) => 1,
            Segment::Param => 2,
        }
    }
}

impl ApiSpec {
    /// Parses an OpenAPI 3.x document in JSON form.
    ///
    /// # Errors
    ///
    /// When the text is not JSON, is not an OpenAPI 3 document, has no `paths`, or has a
    /// malformed path template.
    pub fn from_json(text: &str) -> Result<ApiSpec, String> {
        let doc: Value =
            serde_json::from_str(text).map_err(|e| format!("the document is not JSON: {e}"))?;
        let version = doc
            .get("openapi")
            .and_then(Value::as_str)
            .ok_or("the document has no `openapi` version (is it Swagger 2.0?)")?;
        if !version.starts_with("3.") {
            return Err(format!("OpenAPI {version} is not supported, only 3.x"));
        }
        let paths = doc
            .get("paths")
            .and_then(Value::as_object)
            .ok_or("the document has no `paths` object")?;
        let mut templates = Vec::with_capacity(paths.len());
        for (template, item) in paths {
            let segments = template
                .split('/')
                .map(Segment::parse)
                .collect::<Result<_, _>>()?;
            let methods = HTTP_METHODS
                .into_iter()
                .filter(|method| item.get(*method).is_some_and(Value::is_object))
                .collect();
            templates.push(PathTemplate {
                template: template.clone(),
                segments,
                methods,
            });
        }
        let mut patterns = HashMap::new();
        collect_patterns(&doc, &mut patterns);
        Ok(ApiSpec {
            doc,
            templates,
            patterns,
        })
    }

    /// Validates `body` against the `application/json` response schema of `method` +
    /// `path_template` (as the document writes it, e.g. `/servers/{id}`) for `status`.
    ///
    /// The response is looked up by the exact code (`"200"`), then the code's class (`"2XX"`,
    /// any case), then `"default"`, and may be a `$ref` to `components/responses`. When the
    /// documented response has no content (e.g. a 204), `body` must be `Value::Null`, meaning
    /// no body.
    ///
    /// # Errors
    ///
    /// Every failure found, each at its JSON pointer in `body`; or a single error at the empty
    /// pointer when the operation or the status is not documented, or the document describes
    /// no JSON body for it.
    pub fn validate_response(
        &self,
        method: &str,
        path_template: &str,
        status: u16,
        body: &Value,
    ) -> Result<(), Vec<SchemaError>> {
        let operation = self.operation(method, path_template)?;
        let responses = operation.get("responses").and_then(Value::as_object);
        let response = responses
            .and_then(|responses| {
                get_ignore_case(responses, &status.to_string())
                    .or_else(|| get_ignore_case(responses, &format!("{}xx", status / 100)))
                    .or_else(|| get_ignore_case(responses, "default"))
            })
            .ok_or_else(|| {
                root_error(format!(
                    "status {status} is not documented for {} {path_template}",
                    method.to_ascii_uppercase()
                ))
            })?;
        let response = self.resolve(response)?;
        self.validate_content(response, body, true, false)
    }

    /// Validates a JSON request body against the `application/json` schema of the
    /// operation's `requestBody` (which may be a `$ref` to `components/requestBodies`).
    ///
    /// `Value::Null` stands for "no body": it passes when the operation documents no request
    /// body, or documents an optional one (`required` absent or false).
    ///
    /// `oneOf` is read as "at least one alternative matches", not "exactly one": the
    /// documents' alternatives overlap. For instance DigitalOcean's droplet actions list the
    /// generic `droplet_action` (any `type`) beside specialised ones, and its discriminator
    /// maps several `type` values to the generic schema, so a valid `{"type": "resize", …}`
    /// matches two alternatives. `discriminator` itself is ignored.
    ///
    /// # Errors
    ///
    /// As for [`ApiSpec::validate_response`]; also when a body is given to an operation that
    /// documents none.
    pub fn validate_request(
        &self,
        method: &str,
        path_template: &str,
        body: &Value,
    ) -> Result<(), Vec<SchemaError>> {
        let operation = self.operation(method, path_template)?;
        let Some(request_body) = operation.get("requestBody") else {
            return if body.is_null() {
                Ok(())
            } else {
                Err(root_error(format!(
                    "{} {path_template} documents no request body, but one was given",
                    method.to_ascii_uppercase()
                )))
            };
        };
        let request_body = self.resolve(request_body)?;
        let required = request_body
            .get("required")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        self.validate_content(request_body, body, required, true)
    }

    /// Finds the document's path template that matches a concrete `path` and defines
    /// `method`, e.g. `/servers/42/actions/poweroff` → `/servers/{id}/actions/poweroff`.
    ///
    /// Literal segments win over parameters (`/servers/actions` matches `/servers/actions`,
    /// not `/servers/{id}`), earlier segments first. `path` is relative to the document's
    /// `paths` (no server base path), is not percent-decoded, and any `?query` is ignored.
    #[must_use]
    pub fn match_path(&self, method: &str, path: &str) -> Option<&str> {
        let method = method.to_ascii_lowercase();
        let path = path.split(['?', '#']).next().unwrap_or(path);
        let segments: Vec<&str> = path.split('/').collect();
        self.templates
            .iter()
            .filter(|t| t.methods.contains(&method.as_str()))
            .filter(|t| {
                t.segments.len() == segments.len()
                    && t.segments.iter().zip(&segments).all(|(t, s)| t.matches(s))
            })
            .min_by_key(|t| t.segments.iter().map(Segment::rank).collect::<Vec<_>>())
            .map(|t| t.template.as_str())
    }

    /// The operation object for `method` on `path_template`.
    fn operation(&self, method: &str, path_template: &str) -> Result<&Value, Vec<SchemaError>> {
        let lower = method.to_ascii_lowercase();
        if !HTTP_METHODS.contains(&lower.as_str()) {
            return Err(root_error(format!("`{method}` is not an HTTP method")));
        }
        self.doc
            .get("paths")
            .and_then(|paths| paths.get(path_template))
            .and_then(|item| item.get(&lower))
            .ok_or_else(|| {
                root_error(format!(
                    "the document has no operation {} {path_template}",
                    method.to_ascii_uppercase()
                ))
            })
    }

    /// Follows `$ref`s (e.g. to `components/responses`) until a definition.
    fn resolve<'a>(&'a self, mut value: &'a Value) -> Result<&'a Value, Vec<SchemaError>> {
        for _ in 0..MAX_REF_HOPS {
            match value.get("$ref") {
                None => return Ok(value),
                Some(reference) => {
                    value = reference
                        .as_str()
                        .ok_or_else(|| "`$ref` is not a string".to_owned())
                        .and_then(|reference| self.lookup(reference))
                        .map_err(root_error)?;
                }
            }
        }
        Err(root_error(format!(
            "more than {MAX_REF_HOPS} `$ref`s in a row (a cycle?)"
        )))
    }

    /// The value a local `$ref` (`#/components/…`) points to.
    fn lookup(&self, reference: &str) -> Result<&Value, String> {
        // The fragment is used as a JSON pointer as is: the documents do not percent-encode.
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("`$ref` `{reference}` is not local to the document"))?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("`$ref` `{reference}` does not resolve"))
    }

    /// Validates `body` against the `application/json` schema of a response or request body
    /// object's `content`.
    fn validate_content(
        &self,
        holder: &Value,
        body: &Value,
        body_required: bool,
        request: bool,
    ) -> Result<(), Vec<SchemaError>> {
        let content = holder
            .get("content")
            .and_then(Value::as_object)
            .filter(|c| !c.is_empty());
        let Some(content) = content else {
            return if body.is_null() {
                Ok(())
            } else {
                Err(root_error(
                    "no body is documented here, but one was given".to_owned(),
                ))
            };
        };
        let media = get_ignore_case(content, "application/json").or_else(|| {
            content
                .iter()
                .find(|(media_type, _)| is_json_media_type(media_type))
                .map(|(_, m)| m)
        });
        let Some(media) = media else {
            let types: Vec<&str> = content.keys().map(String::as_str).collect();
            return Err(root_error(format!(
                "no application/json body is documented here (only {})",
                types.join(", ")
            )));
        };
        let Some(schema) = media.get("schema") else {
            return Ok(());
        };
        if body.is_null() && !body_required {
            return Ok(());
        }
        let mut errors = Vec::new();
        Walker {
            spec: self,
            active: Vec::new(),
            request,
        }
        .check(schema, body, "", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// One schema-against-instance evaluation.
struct Walker<'s> {
    spec: &'s ApiSpec,
    /// The `$ref`s being evaluated, with the instance location each is evaluated at.
    active: Vec<(&'s str, String)>,
    /// Whether a request body is checked: OpenAPI 3.0 applies a `required` property
    /// marked `readOnly` to responses only.
    request: bool,
}

impl<'s> Walker<'s> {
    /// Checks `instance` (found at `pointer`) against `schema`, adding every failure to
    /// `errors`.
    fn check(
        &mut self,
        schema: &'s Value,
        instance: &Value,
        pointer: &str,
        errors: &mut Vec<SchemaError>,
    ) {
        let schema = match schema {
            Value::Object(schema) => schema,
            Value::Bool(false) => {
                errors.push(error(pointer, "no value is allowed here".to_owned()));
                return;
            }
            _ => return,
        };
        if let Some(reference) = schema.get("$ref") {
            self.check_ref(reference, instance, pointer, errors);
            return;
        }
        let nullable = schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if instance.is_null() && nullable {
            return;
        }
        if let Some(expected) = schema.get("type")
            && !type_matches(expected, instance)
        {
            let expected = match expected {
                Value::Array(names) => names
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" or "),
                other => other.as_str().unwrap_or_default().to_owned(),
            };
            let not_nullable = if instance.is_null() {
                " (not nullable)"
            } else {
                ""
            };
            errors.push(error(
                pointer,
                format!(
                    "expected {expected}, found {}{not_nullable}",
                    kind(instance)
                ),
            ));
            // The other keywords would only repeat the mismatch.
            return;
        }
        if let Some(Value::Array(allowed)) = schema.get("enum")
            && !allowed.contains(instance)
        {
            let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
            errors.push(error(
                pointer,
                format!("{} is not one of {}", short(instance), allowed.join(", ")),
            ));
        }
        match instance {
            Value::Number(number) => check_number(schema, number, pointer, errors),
            Value::String(string) => self.check_string(schema, string, pointer, errors),
            Value::Array(items) => self.check_array(schema, items, pointer, errors),
            Value::Object(members) => self.check_object(schema, members, pointer, errors),
            Value::Null | Value::Bool(_) => {}
        }
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for alternative in all {
                self.check(alternative, instance, pointer, errors);
            }
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alternatives)) = schema.get(keyword) {
                self.check_any(keyword, alternatives, instance, pointer, errors);
            }
        }
    }

    /// Whether `schema` (or a schema it combines with `allOf`/`anyOf`/`oneOf`, following
    /// `$ref`s) declares property `name` as `readOnly`.
    fn read_only(&self, schema: &'s Map<String, Value>, name: &str, depth: usize) -> bool {
        if depth > 8 {
            return false;
        }
        let resolve = |value: &'s Value| -> Option<&'s Map<String, Value>> {
            let mut value = value;
            for _ in 0..8 {
                match value.get("$ref").and_then(Value::as_str) {
                    Some(reference) => value = self.spec.lookup(reference).ok()?,
                    None => return value.as_object(),
                }
            }
            None
        };
        let declared = schema
            .get("properties")
            .and_then(|p| p.get(name))
            .and_then(resolve)
            .and_then(|p| p.get("readOnly"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        declared
            || ["allOf", "anyOf", "oneOf"].iter().any(|keyword| {
                schema
                    .get(*keyword)
                    .and_then(Value::as_array)
                    .is_some_and(|branches| {
                        branches
                            .iter()
                            .filter_map(resolve)
                            .any(|branch| self.read_only(branch, name, depth + 1))
                    })
            })
    }

    fn check_ref(
        &mut self,
        reference: &'s Value,
        instance: &Value,
        pointer: &str,
        errors: &mut Vec<SchemaError>,
    ) {
        let Some(reference) = reference.as_str() else {
            errors.push(error(
                pointer,
                "schema error: `$ref` is not a string".to_owned(),
            ));
            return;
        };
        // Reaching the same `$ref` again at the same instance location means the document
        // loops without descending into the instance; the outer evaluation of that `$ref`
        // already checks everything it requires here, so stop instead of recursing forever.
        if self
            .active
            .iter()
            .any(|(r, p)| *r == reference && p == pointer)
        {
            return;
        }
        match self.spec.lookup(reference) {
            Ok(target) => {
                self.active.push((reference, pointer.to_owned()));
                self.check(target, instance, pointer, errors);
                self.active.pop();
            }
            Err(message) => errors.push(error(pointer, format!("schema error: {message}"))),
        }
    }

    /// `anyOf`, and `oneOf` read as "at least one" (see [`ApiSpec::validate_request`]).
    fn check_any(
        &mut self,
        keyword: &str,
        alternatives: &'s [Value],
        instance: &Value,
        pointer: &str,
        errors: &mut Vec<SchemaError>,
    ) {
        let mut closest: Option<(usize, Vec<SchemaError>)> = None;
        for (index, alternative) in alternatives.iter().enumerate() {
            let mut found = Vec::new();
            self.check(alternative, instance, pointer, &mut found);
            if found.is_empty() {
                return;
            }
            if closest
                .as_ref()
                .is_none_or(|(_, best)| found.len() < best.len())
            {
                closest = Some((index, found));
            }
        }
        let Some((index, found)) = closest else {
            return;
        };
        errors.push(error(
            pointer,
            format!(
                "matches none of the {} `{keyword}` alternatives; the closest, #{index}, fails:",
                alternatives.len()
            ),
        ));
        errors.extend(found.into_iter().map(|e| SchemaError {
            pointer: e.pointer,
            message: format!("(`{keyword}` #{index}) {}", e.message),
        }));
    }

    fn check_string(
        &self,
        schema: &Map<String, Value>,
        string: &str,
        pointer: &str,
        errors: &mut Vec<SchemaError>,
    ) {
        let length = string.chars().count();
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && (length as u64) < min
        {
            errors.push(error(
                pointer,
                format!("{length} characters, fewer than minLength {min}"),
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && (length as u64) > max
        {
            errors.push(error(
                pointer,
                format!("{length} characters, more than maxLength {max}"),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Some(Some(regex)) = self.spec.patterns.get(pattern)
            && !regex.is_match(string)
        {
            errors.push(error(
                pointer,
                format!(
                    "{} does not match the pattern `{pattern}`",
                    short(&Value::from(string))
                ),
            ));
        }
    }

    fn check_array(
        &mut self,
        schema: &'s Map<String, Value>,
        items: &[Value],
        pointer: &str,
        errors: &mut Vec<SchemaError>,
    ) {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            errors.push(error(
                pointer,
                format!("{count} items, fewer than minItems {min}"),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            errors.push(error(
                pointer,
                format!("{count} items, more than maxItems {max}"),
            ));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.check(
                    item_schema,
                    item,
                    &child(pointer, &index.to_string()),
                    errors,
                );
            }
        }
    }

    fn check_object(
        &mut self,
        schema: &'s Map<String, Value>,
        members: &Map<String, Value>,
        pointer: &str,
        errors: &mut Vec<SchemaError>,
    ) {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                // OpenAPI 3.0: a required `readOnly` property binds responses only.
                let exempt = self.request && self.read_only(schema, name, 0);
                if !members.contains_key(name) && !exempt {
                    errors.push(error(
                        &child(pointer, name),
                        "required property is missing".to_owned(),
                    ));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(properties) = properties {
            for (name, property_schema) in properties {
                if let Some(value) = members.get(name) {
                    self.check(property_schema, value, &child(pointer, name), errors);
                }
            }
        }
        let declared = |name: &str| properties.is_some_and(|p| p.contains_key(name));
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                for name in members.keys().filter(|name| !declared(name)) {
                    errors.push(error(
                        &child(pointer, name),
                        "property not allowed (additionalProperties is false)".to_owned(),
                    ));
                }
            }
            Some(additional @ Value::Object(_)) => {
                for (name, value) in members.iter().filter(|(name, _)| !declared(name)) {
                    self.check(additional, value, &child(pointer, name), errors);
                }
            }
            _ => {}
        }
    }
}

fn check_number(
    schema: &Map<String, Value>,
    number: &Number,
    pointer: &str,
    errors: &mut Vec<SchemaError>,
) {
    let flag = |keyword: &str| {
        schema
            .get(keyword)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    if let Some(min) = schema.get("minimum").and_then(Value::as_number) {
        let exclusive = flag("exclusiveMinimum");
        match compare(number, min) {
            Some(Ordering::Less) => {
                errors.push(error(
                    pointer,
                    format!("{number} is less than the minimum {min}"),
                ));
            }
            Some(Ordering::Equal) if exclusive => {
                errors.push(error(
                    pointer,
                    format!("{number} is not above the exclusive minimum {min}"),
                ));
            }
            _ => {}
        }
    }
    if let Some(max) = schema.get("maximum").and_then(Value::as_number) {
        let exclusive = flag("exclusiveMaximum");
        match compare(number, max) {
            Some(Ordering::Greater) => {
                errors.push(error(
                    pointer,
                    format!("{number} is greater than the maximum {max}"),
                ));
            }
            Some(Ordering::Equal) if exclusive => {
                errors.push(error(
                    pointer,
                    format!("{number} is not below the exclusive maximum {max}"),
                ));
            }
            _ => {}
        }
    }
    if let Some(divisor) = schema.get("multipleOf").and_then(Value::as_number) {
        let multiple = match (as_integer(number), as_integer(divisor)) {
            (Some(n), Some(d)) if d != 0 => n % d == 0,
            _ => match (number.as_f64(), divisor.as_f64()) {
                (Some(n), Some(d)) if d != 0.0 => {
                    let quotient = n / d;
                    (quotient - quotient.round()).abs() < 1e-9
                }
                _ => true,
            },
        };
        if !multiple {
            errors.push(error(
                pointer,
                format!("{number} is not a multiple of {divisor}"),
            ));
        }
    }
    let range = match schema.get("format").and_then(Value::as_str) {
        Some("int32") => Some((i128::from(i32::MIN), i128::from(i32::MAX), "32")),
        Some("int64") => Some((i128::from(i64::MIN), i128::from(i64::MAX), "64")),
        _ => None,
    };
    if let Some((low, high, bits)) = range
        && !as_integer(number).is_some_and(|n| (low..=high).contains(&n))
    {
        errors.push(error(
            pointer,
            format!("{number} is not a {bits}-bit integer"),
        ));
    }
}

/// Whether `instance` has the type (or, OpenAPI 3.1 style, one of the types) `expected`
/// names. An integer is a number; `1.0` is not an integer (clients decoding into integer
/// types reject it). Unknown type names accept anything.
fn type_matches(expected: &Value, instance: &Value) -> bool {
    let matches = |name: &str| match name {
        "string" => instance.is_string(),
        "integer" => matches!(instance, Value::Number(n) if as_integer(n).is_some()),
        "number" => instance.is_number(),
        "boolean" => instance.is_boolean(),
        "array" => instance.is_array(),
        "object" => instance.is_object(),
        "null" => instance.is_null(),
        _ => true,
    };
    match expected {
        Value::String(name) => matches(name),
        Value::Array(names) => names.iter().filter_map(Value::as_str).any(matches),
        _ => true,
    }
}

/// The instance's JSON type, for messages.
fn kind(instance: &Value) -> &'static str {
    match instance {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if as_integer(n).is_some() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn as_integer(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

/// Compares two numbers exactly when both are integers (ids near 2^53 and beyond), as
/// floats otherwise.
fn compare(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_integer(a), as_integer(b)) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

/// The value of `key` in `map`, ignoring ASCII case (Hetzner writes `4xx`, OpenAPI `4XX`).
fn get_ignore_case<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// `application/json`, with parameters (`; charset=utf-8`), or a `+json` type.
fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// Compiles every string-valued `pattern` in the document.
fn collect_patterns(value: &Value, patterns: &mut HashMap<String, Option<Regex>>) {
    match value {
        Value::Object(members) => {
            if let Some(Value::String(pattern)) = members.get("pattern") {
                patterns
                    .entry(pattern.clone())
                    .or_insert_with(|| Regex::new(pattern).ok());
            }
            members.values().for_each(|v| collect_patterns(v, patterns));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_patterns(v, patterns)),
        _ => {}
    }
}

/// `pointer` extended by one reference token, escaped as RFC 6901 requires.
fn child(pointer: &str, token: &str) -> String {
    format!("{pointer}/{}", token.replace('~', "~0").replace('/', "~1"))
}

fn error(pointer: &str, message: String) -> SchemaError {
    SchemaError {
        pointer: pointer.to_owned(),
        message,
    }
}

fn root_error(message: String) -> Vec<SchemaError> {
    vec![error("", message)]
}

/// The instance as JSON, shortened for messages.
fn short(instance: &Value) -> String {
    const MAX: usize = 60;
    let text = instance.to_string();
    if text.chars().count() <= MAX {
        text
    } else {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HETZNER: &str = include_str!("../specs/hetzner.json");
    const DIGITALOCEAN: &str = include_str!("../specs/digitalocean.json");

    fn hetzner() -> ApiSpec {
        ApiSpec::from_json(HETZNER).expect("the vendored Hetzner document parses")
    }

    fn digitalocean() -> ApiSpec {
        ApiSpec::from_json(DIGITALOCEAN).expect("the vendored DigitalOcean document parses")
    }

    /// Vultr's document is not vendored (no licence stated): it is read from the shared
    /// folder beside the workspace (or `DAMM_SIM_SPECS`) when present.
    fn vultr() -> Option<ApiSpec> {
        let dir = std::env::var_os("DAMM_SIM_SPECS")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs")
            });
        let text = std::fs::read_to_string(dir.join("vultr.subset.json")).ok()?;
        Some(ApiSpec::from_json(&text).expect("the Vultr document parses"))
    }

    /// The errors' pointers, sorted: the order errors are found in follows the order of the
    /// parsed maps, which depends on serde_json's `preserve_order` feature.
    fn pointers(errors: &[SchemaError]) -> Vec<&str> {
        let mut pointers: Vec<&str> = errors.iter().map(|e| e.pointer.as_str()).collect();
        pointers.sort_unstable();
        pointers
    }

    /// The message of the (first) error at `pointer`.
    fn message_at<'e>(errors: &'e [SchemaError], pointer: &str) -> &'e str {
        errors.iter().find(|e| e.pointer == pointer).map_or_else(
            || panic!("no error at `{pointer}` in {errors:?}"),
            |e| e.message.as_str(),
        )
    }

    fn expect_errors(result: Result<(), Vec<SchemaError>>) -> Vec<SchemaError> {
        match result {
            Ok(()) => panic!("expected schema errors, got none"),
            Err(errors) => errors,
        }
    }

    fn assert_valid(result: Result<(), Vec<SchemaError>>) {
        if let Err(errors) = result {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("unexpected schema errors:\n{}", list.join("\n"));
        }
    }

    fn hetzner_location() -> Value {
        json!({
            "id": 1,
            "name": "fsn1",
            "description": "Falkenstein DC Park 1",
            "country": "DE",
            "city": "Falkenstein",
            "latitude": 50.47612,
            "longitude": 12.370071,
            "network_zone": "eu-central"
        })
    }

    fn hetzner_server() -> Value {
        json!({
            "id": 42,
            "name": "my-server",
            "status": "running",
            "created": "2016-01-30T23:55:00Z",
            "public_net": {
                "ipv4": {
                    "id": 42, "ip": "1.2.3.4", "blocked": false, "dns_ptr": "server01.example.com"
                },
                "ipv6": {
                    "id": 42,
                    "ip": "2001:db8::/64",
                    "blocked": false,
                    "dns_ptr": [{ "ip": "2001:db8::1", "dns_ptr": "server.example.com" }]
                },
                "floating_ips": [478],
                "firewalls": [{ "id": 42, "status": "applied" }]
            },
            "private_net": [],
            "server_type": {
                "id": 1,
                "name": "cpx22",
                "description": "CPX22",
                "cores": 2,
                "memory": 4.0,
                "disk": 80,
                "deprecated": false,
                "prices": [{
                    "location": "fsn1",
                    "price_hourly": { "net": "1.0000", "gross": "1.1900" },
                    "price_monthly": { "net": "1.0000", "gross": "1.1900" },
                    "included_traffic": 21990232555520_i64,
                    "price_per_tb_traffic": { "net": "1.0000", "gross": "1.1900" }
                }],
                "storage_type": "local",
                "cpu_type": "shared",
                "architecture": "x86",
                "locations": [{ "id": 1, "name": "fsn1", "deprecation": null }]
            },
            "datacenter": {
                "id": 1,
                "name": "fsn1-dc8",
                "description": "Falkenstein 1 virtual DC 8",
                "location": hetzner_location(),
                "server_types": {
                    "supported": [1], "available": [1], "available_for_migration": [1]
                }
            },
            "location": hetzner_location(),
            "image": {
                "id": 42,
                "type": "system",
                "status": "available",
                "name": "ubuntu-24.04",
                "description": "Ubuntu 24.04 Standard 64 bit",
                "image_size": null,
                "disk_size": 10,
                "created": "2016-01-30T23:55:00Z",
                "created_from": null,
                "bound_to": null,
                "os_flavor": "ubuntu",
                "os_version": "24.04",
                "rapid_deploy": false,
                "protection": { "delete": false },
                "deprecated": null,
                "deleted": null,
                "labels": {},
                "architecture": "x86"
            },
            "iso": null,
            "rescue_enabled": false,
            "locked": false,
            "backup_window": null,
            "outgoing_traffic": 123456,
            "ingoing_traffic": 123456,
            "included_traffic": 654321,
            "protection": { "delete": false, "rebuild": false },
            "labels": { "environment": "prod", "example.com/my": "label" },
            "volumes": [],
            "load_balancers": [],
            "primary_disk_size": 50,
            "placement_group": null
        })
    }

    fn hetzner_list_servers() -> Value {
        json!({
            "servers": [hetzner_server()],
            "meta": {
                "pagination": {
                    "page": 1,
                    "per_page": 25,
                    "previous_page": null,
                    "next_page": null,
                    "last_page": 1,
                    "total_entries": 1
                }
            }
        })
    }

    fn do_droplet() -> Value {
        json!({
            "id": 3164444,
            "name": "example.com",
            "memory": 1024,
            "vcpus": 1,
            "disk": 25,
            "locked": false,
            "status": "active",
            "created_at": "2020-07-21T18:37:44Z",
            "features": ["backups", "ipv6"],
            "backup_ids": [],
            "next_backup_window": null,
            "snapshot_ids": [],
            "image": {
                "id": 63663980,
                "name": "20.04 (LTS) x64",
                "distribution": "Ubuntu",
                "slug": "ubuntu-20-04-x64",
                "public": true,
                "regions": ["nyc3"],
                "min_disk_size": 20,
                "type": "base"
            },
            "volume_ids": [],
            "size": {
                "slug": "s-1vcpu-1gb",
                "memory": 1024,
                "vcpus": 1,
                "disk": 25,
                "transfer": 1.0,
                "price_monthly": 5,
                "price_hourly": 0.00743999984115362,
                "regions": ["nyc3"],
                "available": true,
                "description": "Basic"
            },
            "size_slug": "s-1vcpu-1gb",
            "networks": {
                "v4": [{
                    "ip_address": "104.236.32.182",
                    "netmask": "255.255.192.0",
                    "gateway": "104.236.0.1",
                    "type": "public"
                }],
                "v6": []
            },
            "region": {
                "name": "New York 3",
                "slug": "nyc3",
                "features": ["backups"],
                "available": true,
                "sizes": ["s-1vcpu-1gb"]
            },
            "tags": []
        })
    }

    #[test]
    fn hetzner_list_servers_response_validates() {
        assert_valid(hetzner().validate_response("GET", "/servers", 200, &hetzner_list_servers()));
    }

    #[test]
    fn missing_required_field_is_reported_at_its_pointer() {
        let spec = hetzner();
        let mut body = hetzner_list_servers();
        body["servers"][0].as_object_mut().unwrap().remove("id");
        let errors = expect_errors(spec.validate_response("GET", "/servers", 200, &body));
        assert_eq!(pointers(&errors), ["/servers/0/id"]);
        assert_eq!(
            errors[0].to_string(),
            "/servers/0/id: required property is missing"
        );

        let mut body = hetzner_list_servers();
        body.as_object_mut().unwrap().remove("meta");
        let errors = expect_errors(spec.validate_response("GET", "/servers", 200, &body));
        assert_eq!(pointers(&errors), ["/meta"]);

        // A required property of a schema reached through `allOf` + `$ref`.
        let mut body = hetzner_list_servers();
        body["servers"][0]["datacenter"]["location"]
            .as_object_mut()
            .unwrap()
            .remove("city");
        let errors = expect_errors(spec.validate_response("GET", "/servers", 200, &body));
        assert_eq!(pointers(&errors), ["/servers/0/datacenter/location/city"]);
    }

    #[test]
    fn wrong_types_are_reported() {
        let spec = hetzner();
        let mut body = hetzner_list_servers();
        body["servers"][0]["id"] = json!("42");
        body["servers"][0]["locked"] = json!(0);
        body["servers"][0]["labels"]["environment"] = json!(3);
        body["meta"]["pagination"]["page"] = json!(1.5);
        let errors = expect_errors(spec.validate_response("GET", "/servers", 200, &body));
        assert_eq!(
            pointers(&errors),
            [
                "/meta/pagination/page",
                "/servers/0/id",
                "/servers/0/labels/environment",
                "/servers/0/locked"
            ]
        );
        assert_eq!(
            message_at(&errors, "/servers/0/id"),
            "expected integer, found string"
        );
        // `1.0` is not an integer either: clients decoding into integer types reject it.
        let mut body = hetzner_list_servers();
        body["servers"][0]["id"] = json!(42.0);
        let errors = expect_errors(spec.validate_response("GET", "/servers", 200, &body));
        assert_eq!(pointers(&errors), ["/servers/0/id"]);
    }

    #[test]
    fn nullable_accepts_null_and_only_there() {
        let spec = hetzner();
        let mut body = hetzner_list_servers();
        let server = &mut body["servers"][0];
        // Plain `nullable` properties and Hetzner's `allOf: [$ref] + nullable: true` form.
        for name in [
            "image",
            "iso",
            "backup_window",
            "included_traffic",
            "placement_group",
        ] {
            server[name] = Value::Null;
        }
        server["public_net"]["ipv4"] = Value::Null;
        server["public_net"]["ipv6"] = Value::Null;
        server["server_type"]["deprecated"] = Value::Null;
        assert_valid(spec.validate_response("GET", "/servers", 200, &body));

        body["servers"][0]["name"] = Value::Null;
        body["servers"][0]["location"] = Value::Null;
        let errors = expect_errors(spec.validate_response("GET", "/servers", 200, &body));
        assert_eq!(
            pointers(&errors),
            ["/servers/0/location", "/servers/0/name"]
        );
        assert_eq!(
            message_at(&errors, "/servers/0/name"),
            "expected string, found null (not nullable)"
        );
    }

    #[test]
    fn errors_are_collected_not_just_the_first() {
        let spec = hetzner();
        let mut body = hetzner_list_servers();
        body["servers"][0]["status"] = json!("exploded");
        body["servers"][0]["id"] = json!(9_007_199_254_740_992_u64); // above `maximum` 2^53 - 1
        body["servers"][0]["datacenter"]["name"] = json!("FSN1 DC8"); // fails the pattern
        body["servers"][0]["protection"]
            .as_object_mut()
            .unwrap()
            .remove("rebuild");
        let errors = expect_errors(spec.validate_response("GET", "/servers", 200, &body));
        assert_eq!(
            pointers(&errors),
            [
                "/servers/0/datacenter/name",
                "/servers/0/id",
                "/servers/0/protection/rebuild",
                "/servers/0/status"
            ]
        );
        assert!(
            message_at(&errors, "/servers/0/datacenter/name")
                .contains("does not match the pattern")
        );
        assert!(message_at(&errors, "/servers/0/id").contains("greater than the maximum"));
        assert!(
            message_at(&errors, "/servers/0/status")
                .starts_with(r#""exploded" is not one of "deleting","#)
        );
    }

    #[test]
    fn pointers_escape_slash_and_tilde() {
        let mut body = hetzner_list_servers();
        body["servers"][0]["labels"]["example.com/my~label"] = json!("no spaces allowed");
        let errors = expect_errors(hetzner().validate_response("GET", "/servers", 200, &body));
        assert_eq!(
            pointers(&errors),
            ["/servers/0/labels/example.com~1my~0label"]
        );
    }

    #[test]
    fn hetzner_match_path() {
        let spec = hetzner();
        assert_eq!(
            spec.match_path("POST", "/servers/42/actions/poweroff"),
            Some("/servers/{id}/actions/poweroff")
        );
        assert_eq!(spec.match_path("GET", "/servers/42"), Some("/servers/{id}"));
        assert_eq!(
            spec.match_path("delete", "/servers/42"),
            Some("/servers/{id}")
        );
        assert_eq!(
            spec.match_path("GET", "/servers/42?page=2"),
            Some("/servers/{id}")
        );
        assert_eq!(spec.match_path("GET", "/servers"), Some("/servers"));
        // Literal segments win over parameters.
        assert_eq!(
            spec.match_path("GET", "/servers/actions"),
            Some("/servers/actions")
        );
        assert_eq!(
            spec.match_path("GET", "/servers/actions/7"),
            Some("/servers/actions/{id}")
        );
        assert_eq!(
            spec.match_path("GET", "/servers/42/actions/7"),
            Some("/servers/{id}/actions/{action_id}")
        );
        // The method must be defined on the path.
        assert_eq!(spec.match_path("POST", "/servers/42"), None);
        assert_eq!(
            spec.match_path("GET", "/servers/42/actions/poweroff"),
            Some("/servers/{id}/actions/{action_id}")
        );
        assert_eq!(spec.match_path("GET", "/servers/"), None);
        assert_eq!(spec.match_path("GET", "/volumes"), None);
        assert_eq!(spec.match_path("SERVERS", "/servers"), None);
    }

    #[test]
    fn hetzner_lowercase_status_classes_and_action_responses() {
        let spec = hetzner();
        let error = json!({
            "error": { "code": "not_found", "message": "server not found", "details": {} }
        });
        assert_valid(spec.validate_response("GET", "/servers/{id}", 404, &error));
        assert_valid(spec.validate_response("GET", "/servers/{id}", 503, &error));
        // (`get_server_response` requires nothing, so `GET /servers/{id}` would accept it.)
        expect_errors(spec.validate_response("GET", "/servers", 200, &error));
        let errors = expect_errors(spec.validate_response("GET", "/servers/{id}", 302, &error));
        assert!(
            errors[0].message.contains("not documented"),
            "{}",
            errors[0]
        );

        let action = json!({
            "action": {
                "id": 13,
                "command": "stop_server",
                "status": "running",
                "progress": 0,
                "started": "2016-01-30T23:50:00Z",
                "finished": null,
                "resources": [{ "id": 42, "type": "server" }],
                "error": null
            }
        });
        assert_valid(spec.validate_response(
            "POST",
            "/servers/{id}/actions/poweroff",
            201,
            &action,
        ));
        let mut failed = action.clone();
        failed["action"]["error"] = json!({ "code": "action_failed" });
        let errors = expect_errors(spec.validate_response(
            "POST",
            "/servers/{id}/actions/poweroff",
            201,
            &failed,
        ));
        assert_eq!(pointers(&errors), ["/action/error/message"]);
        let mut overflow = action;
        overflow["action"]["progress"] = json!(i64::from(i32::MAX) + 1);
        let errors = expect_errors(spec.validate_response(
            "POST",
            "/servers/{id}/actions/poweroff",
            201,
            &overflow,
        ));
        assert!(errors[0].message.contains("32-bit"), "{}", errors[0]);
    }

    #[test]
    fn hetzner_create_server_request() {
        let spec = hetzner();
        let request = json!({
            "name": "my-server",
            "server_type": "cpx22",
            "image": "ubuntu-24.04",
            "location": "fsn1",
            "labels": { "damm": "1" },
            "start_after_create": true,
            "public_net": { "enable_ipv4": true, "enable_ipv6": true }
        });
        assert_valid(spec.validate_request("POST", "/servers", &request));
        let mut bad = request;
        bad.as_object_mut().unwrap().remove("server_type");
        bad["start_after_create"] = json!("yes");
        let errors = expect_errors(spec.validate_request("POST", "/servers", &bad));
        assert_eq!(pointers(&errors), ["/server_type", "/start_after_create"]);
        // The request body is required here; a missing body (null) fails.
        expect_errors(spec.validate_request("POST", "/servers", &Value::Null));
        // Operations without a request body accept only no body.
        assert_valid(spec.validate_request("POST", "/servers/{id}/actions/poweroff", &Value::Null));
        expect_errors(spec.validate_request("POST", "/servers/{id}/actions/poweroff", &json!({})));
    }

    #[test]
    fn digitalocean_droplet_create_request_validates() {
        let spec = digitalocean();
        let single = json!({
            "name": "example.com",
            "region": "nyc3",
            "size": "s-1vcpu-1gb",
            "image": "ubuntu-20-04-x64",
            "ssh_keys": [289794, "3b:16:e4:bf:8b:00:8b:b8:59:8c:a9:d3:f0:19:fa:45"],
            "backups": false,
            "ipv6": true,
            "monitoring": true,
            "tags": ["damm"],
            "user_data": "#cloud-config\n"
        });
        assert_valid(spec.validate_request("POST", "/v2/droplets", &single));
        let multi = json!({ "names": ["a1", "a2"], "size": "s-1vcpu-1gb", "image": 12345 });
        assert_valid(spec.validate_request("POST", "/v2/droplets", &multi));

        let mut bad = single;
        bad["name"] = json!("bad name!");
        bad.as_object_mut().unwrap().remove("size");
        let errors = expect_errors(spec.validate_request("POST", "/v2/droplets", &bad));
        // One summary for the `oneOf`, then the closest alternative's (single create) errors.
        assert_eq!(pointers(&errors), ["", "/name", "/size"]);
        assert!(
            errors[0]
                .message
                .starts_with("matches none of the 2 `oneOf` alternatives"),
            "{}",
            errors[0]
        );
        assert!(
            message_at(&errors, "/name")
                .starts_with("(`oneOf` #0) \"bad name!\" does not match the pattern")
        );
    }

    #[test]
    fn digitalocean_list_droplets_response_with_minimal_droplet_validates() {
        let spec = digitalocean();
        let body = json!({ "droplets": [do_droplet()], "links": {}, "meta": { "total": 1 } });
        assert_valid(spec.validate_response("GET", "/v2/droplets", 200, &body));

        let mut bad = body.clone();
        bad["droplets"][0]["memory"] = json!(1001); // `multipleOf: 8`
        bad["meta"].as_object_mut().unwrap().remove("total"); // required through `allOf`
        let errors = expect_errors(spec.validate_response("GET", "/v2/droplets", 200, &bad));
        assert_eq!(pointers(&errors), ["/droplets/0/memory", "/meta/total"]);

        // A droplet built from nothing but the schema's required properties.
        let droplet = do_droplet();
        let required = [
            "id",
            "name",
            "memory",
            "vcpus",
            "disk",
            "locked",
            "status",
            "created_at",
            "features",
            "backup_ids",
            "next_backup_window",
            "snapshot_ids",
            "image",
            "volume_ids",
            "size",
            "size_slug",
            "networks",
            "region",
            "tags",
        ];
        let minimal: Map<String, Value> = required
            .iter()
            .map(|name| ((*name).to_owned(), droplet[*name].clone()))
            .collect();
        let body = json!({ "droplets": [minimal], "meta": { "total": 1 } });
        assert_valid(spec.validate_response("GET", "/v2/droplets", 200, &body));
    }

    #[test]
    fn digitalocean_responses_defined_in_components() {
        let spec = digitalocean();
        let error = json!({ "id": "unauthorized", "message": "Unable to authenticate you." });
        assert_valid(spec.validate_response("GET", "/v2/droplets", 401, &error));
        // Undocumented codes fall back to `default`.
        assert_valid(spec.validate_response("GET", "/v2/droplets", 404, &error));
        let errors = expect_errors(spec.validate_response(
            "GET",
            "/v2/droplets",
            401,
            &json!({ "id": "x" }),
        ));
        assert_eq!(pointers(&errors), ["/message"]);
        // 204: no content documented, so no body.
        assert_valid(spec.validate_response(
            "DELETE",
            "/v2/droplets/{droplet_id}",
            204,
            &Value::Null,
        ));
        expect_errors(spec.validate_response(
            "DELETE",
            "/v2/droplets/{droplet_id}",
            204,
            &json!({}),
        ));
        let created = json!({ "droplet": do_droplet(), "links": { "actions": [] } });
        assert_valid(spec.validate_response("POST", "/v2/droplets", 202, &created));
        let reserved = json!({
            "reserved_ip": {
                "ip": "45.55.96.47",
                "droplet": null,
                "region": do_droplet()["region"],
                "locked": false,
                "project_id": "746c6152-2fa2-11ed-92d3-27aaa54e4988"
            },
            "links": {}
        });
        assert_valid(spec.validate_response(
            "GET",
            "/v2/reserved_ips/{reserved_ip}",
            200,
            &reserved,
        ));
    }

    #[test]
    fn digitalocean_match_path_and_action_requests() {
        let spec = digitalocean();
        assert_eq!(
            spec.match_path("POST", "/v2/droplets/42/actions"),
            Some("/v2/droplets/{droplet_id}/actions")
        );
        assert_eq!(
            spec.match_path("POST", "/v2/droplets/actions"),
            Some("/v2/droplets/actions")
        );
        assert_eq!(
            spec.match_path("GET", "/v2/reserved_ips/45.55.96.47"),
            Some("/v2/reserved_ips/{reserved_ip}")
        );
        // `{"type": "resize", …}` matches both the generic `droplet_action` and
        // `droplet_action_resize`: `oneOf` would reject it, hence "at least one".
        let resize = json!({ "type": "resize", "size": "s-2vcpu-2gb", "disk": true });
        assert_valid(spec.validate_request("POST", "/v2/droplets/{droplet_id}/actions", &resize));
        assert_valid(spec.validate_request(
            "POST",
            "/v2/droplets/{droplet_id}/actions",
            &json!({ "type": "power_off" }),
        ));
        expect_errors(spec.validate_request(
            "POST",
            "/v2/droplets/{droplet_id}/actions",
            &json!({ "type": "explode" }),
        ));
        let assign = json!({ "type": "assign", "droplet_id": 758_604_968 });
        assert_valid(spec.validate_request(
            "POST",
            "/v2/reserved_ips/{reserved_ip}/actions",
            &assign,
        ));
    }

    /// Every example the documents attach to a JSON request or response body validates
    /// against that body's schema (examples that are `$ref`s to `components/examples`
    /// included).
    #[test]
    fn documented_examples_validate() {
        for (name, spec) in [("hetzner", hetzner()), ("digitalocean", digitalocean())] {
            let mut failures = Vec::new();
            let mut checked = 0;
            let paths = spec.doc["paths"].as_object().unwrap();
            for (template, item) in paths {
                for method in HTTP_METHODS {
                    let Some(operation) = item.get(method) else {
                        continue;
                    };
                    let mut bodies: Vec<(Option<u16>, &Value)> = Vec::new();
                    if let Some(request) = operation.get("requestBody") {
                        bodies.push((None, spec.resolve(request).unwrap()));
                    }
                    for (code, response) in operation["responses"].as_object().unwrap() {
                        if let Ok(status) = code.parse::<u16>() {
                            bodies.push((Some(status), spec.resolve(response).unwrap()));
                        }
                    }
                    for (status, holder) in bodies {
                        let Some(media) = holder.pointer("/content/application~1json") else {
                            continue;
                        };
                        let mut examples: Vec<Value> =
                            media.get("example").cloned().into_iter().collect();
                        for example in media
                            .get("examples")
                            .and_then(Value::as_object)
                            .into_iter()
                            .flat_map(Map::values)
                        {
                            examples.push(spec.resolve(example).unwrap()["value"].clone());
                        }
                        for example in examples {
                            checked += 1;
                            let result = match status {
                                None => spec.validate_request(method, template, &example),
                                Some(status) => {
                                    spec.validate_response(method, template, status, &example)
                                }
                            };
                            if let Err(errors) = result {
                                failures
                                    .push(format!("{method} {template} {status:?}: {}", errors[0]));
                            }
                        }
                    }
                }
            }
            assert!(checked > 0, "{name}: no examples found");
            eprintln!("{name}: {checked} documented examples validate");
            assert!(
                failures.is_empty(),
                "{name}: {} of {checked} examples fail:\n{}",
                failures.len(),
                failures.join("\n")
            );
        }
    }

    /// The documents use no schema keyword this module neither implements nor ignores on
    /// purpose; a new one in an updated document fails here instead of passing unchecked.
    #[test]
    fn documents_use_only_known_keywords() {
        const KNOWN: &str = "$ref type nullable enum properties required additionalProperties \
            items minItems maxItems allOf anyOf oneOf minimum maximum exclusiveMinimum \
            exclusiveMaximum multipleOf minLength maxLength pattern format \
            description example title default deprecated readOnly discriminator externalDocs";
        fn walk(schema: &Value, unknown: &mut Vec<String>) {
            let Some(schema) = schema.as_object() else {
                return;
            };
            for (keyword, value) in schema {
                if !KNOWN.split_whitespace().any(|k| k == keyword) && !keyword.starts_with("x-") {
                    unknown.push(keyword.clone());
                }
                match keyword.as_str() {
                    "properties" => value
                        .as_object()
                        .into_iter()
                        .flat_map(Map::values)
                        .for_each(|v| walk(v, unknown)),
                    "items" | "additionalProperties" => walk(value, unknown),
                    "allOf" | "anyOf" | "oneOf" => value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .for_each(|v| walk(v, unknown)),
                    _ => {}
                }
            }
        }
        let mut documents = vec![("hetzner", hetzner()), ("digitalocean", digitalocean())];
        documents.extend(vultr().map(|spec| ("vultr", spec)));
        for (name, spec) in documents {
            let mut unknown = Vec::new();
            let section = |name: &str| {
                spec.doc["components"]
                    .get(name)
                    .and_then(Value::as_object)
                    .into_iter()
                    .flat_map(Map::values)
            };
            let mut bodies: Vec<&Value> = section("responses")
                .chain(section("requestBodies"))
                .collect();
            for item in spec.doc["paths"].as_object().unwrap().values() {
                for method in HTTP_METHODS {
                    let Some(operation) = item.get(method) else {
                        continue;
                    };
                    bodies.extend(operation.get("requestBody"));
                    bodies.extend(
                        operation["responses"]
                            .as_object()
                            .into_iter()
                            .flat_map(Map::values),
                    );
                }
            }
            for schema in section("schemas") {
                walk(schema, &mut unknown);
            }
            for media in bodies
                .into_iter()
                .filter_map(|b| b.get("content")?.as_object())
                .flat_map(Map::values)
            {
                walk(media.get("schema").unwrap_or(&Value::Null), &mut unknown);
            }
            unknown.sort();
            unknown.dedup();
            assert!(
                unknown.is_empty(),
                "{name} uses unknown schema keywords: {unknown:?}"
            );
        }
    }

    #[test]
    fn required_read_only_properties_bind_responses_only() {
        let document = json!({
            "openapi": "3.0.3",
            "paths": { "/records": { "post": {
                "requestBody": { "required": true, "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/record" }
                } } },
                "responses": { "200": { "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/record" }
                } } } }
            } } },
            "components": { "schemas": {
                "record": {
                    "oneOf": [{ "$ref": "#/components/schemas/a" }],
                    "required": ["id", "name"]
                },
                "a": { "allOf": [{ "$ref": "#/components/schemas/base" }] },
                "base": { "properties": {
                    "id": { "allOf": [{ "type": "string" }], "readOnly": true },
                    "name": { "type": "string" }
                } }
            } }
        });
        let spec = ApiSpec::from_json(&document.to_string()).unwrap();
        // A create omits the server-assigned id, but must name the record.
        assert!(
            spec.validate_request("post", "/records", &json!({ "name": "x" }))
                .is_ok()
        );
        assert!(
            spec.validate_request("post", "/records", &json!({ "id": "1" }))
                .is_err()
        );
        // The answer must carry it.
        let missing = spec.validate_response("post", "/records", 200, &json!({ "name": "x" }));
        assert!(missing.unwrap_err().iter().any(|e| e.pointer == "/id"));
    }

    #[test]
    fn ref_cycles_terminate_and_bad_patterns_are_skipped() {
        let tree_ref = json!({ "$ref": "#/components/schemas/tree" });
        let document = json!({
            "openapi": "3.0.3",
            "paths": {
                "/trees/{id}.json": { "put": {
                    "requestBody": { "$ref": "#/components/requestBodies/tree" },
                    "responses": { "2XX": { "$ref": "#/components/responses/tree" } }
                } }
            },
            "components": {
                "requestBodies": {
                    "tree": { "$ref": "#/components/requestBodies/tree2" },
                    "tree2": {
                        "required": true,
                        "content": { "application/json; charset=utf-8": { "schema": tree_ref } }
                    }
                },
                "responses": { "tree": { "content": { "application/json": {
                    "schema": { "$ref": "#/components/schemas/loop" }
                } } } },
                "schemas": {
                    "tree": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": false,
                        "properties": {
                            "name": {
                                "type": "string", "pattern": "(?=look-ahead)", "minLength": 1
                            },
                            "children": { "type": "array", "maxItems": 2, "items": tree_ref }
                        }
                    },
                    "loop": {
                        "allOf": [{ "$ref": "#/components/schemas/loop2" }, { "type": "object" }]
                    },
                    "loop2": { "allOf": [{ "$ref": "#/components/schemas/loop" }] }
                }
            }
        });
        let spec = ApiSpec::from_json(&document.to_string()).unwrap();
        assert_eq!(
            spec.match_path("PUT", "/trees/7.json"),
            Some("/trees/{id}.json")
        );
        assert_eq!(spec.match_path("PUT", "/trees/7"), None);
        let tree =
            json!({ "name": "a", "children": [{ "name": "b", "children": [{ "name": "c" }] }] });
        assert_valid(spec.validate_request("PUT", "/trees/{id}.json", &tree));
        let bad = json!({ "name": "", "children": [{ "children": [], "colour": "red" }, {}, {}] });
        let errors = expect_errors(spec.validate_request("PUT", "/trees/{id}.json", &bad));
        assert_eq!(
            pointers(&errors),
            [
                "/children",
                "/children/0/colour",
                "/children/0/name",
                "/children/1/name",
                "/children/2/name",
                "/name"
            ]
        );
        assert_valid(spec.validate_response("PUT", "/trees/{id}.json", 201, &json!({})));
        let errors =
            expect_errors(spec.validate_response("PUT", "/trees/{id}.json", 200, &json!([])));
        assert_eq!(pointers(&errors), [""]);
    }

    #[test]
    fn from_json_rejects_non_openapi_documents() {
        assert!(ApiSpec::from_json("not json").is_err());
        assert!(ApiSpec::from_json(r#"{"swagger": "2.0", "paths": {}}"#).is_err());
        assert!(ApiSpec::from_json(r#"{"openapi": "3.0.0"}"#).is_err());
        assert!(ApiSpec::from_json(r#"{"openapi": "3.0.0", "paths": {"/a/{b": {}}}"#).is_err());
    }

    #[test]
    fn api_spec_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<ApiSpec>();
    }

    /// Runs only where `../shared/specs/vultr.subset.json` (or `DAMM_SIM_SPECS`) is present.
    #[test]
    fn vultr_when_present() {
        let Some(spec) = vultr() else {
            eprintln!("vultr.subset.json is absent: skipped");
            return;
        };
        assert_eq!(
            spec.match_path(
                "POST",
                "/instances/cb676a46-66fd-4dfb-b839-443f2e6c0b60/halt"
            ),
            Some("/instances/{instance-id}/halt")
        );
        assert_eq!(
            spec.match_path("POST", "/reserved-ips/convert"),
            Some("/reserved-ips/convert")
        );
        assert_eq!(
            spec.match_path("GET", "/reserved-ips/abc"),
            Some("/reserved-ips/{reserved-ip}")
        );
        let error = expect_errors(spec.validate_response(
            "GET",
            "/instances",
            200,
            &json!({ "instances": "none" }),
        ));
        assert!(error.iter().any(|e| e.pointer == "/instances"), "{error:?}");
        assert_valid(spec.validate_response(
            "POST",
            "/instances/{instance-id}/halt",
            204,
            &Value::Null,
        ));
    }
}
