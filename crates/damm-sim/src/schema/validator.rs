//! The validator: one walk of a schema against an instance, collecting every failure.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

use super::document::{get_ignore_case, is_json_media_type};
use super::{ApiSpec, SchemaError, root_error};

impl ApiSpec {
    /// Validates `body` against the `application/json` schema of a response or request body
    /// object's `content`.
    pub(super) fn validate_content(
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
        .check(schema, body, &Loc::Root, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// One schema-against-instance evaluation.
struct Walker<'s, 'i> {
    spec: &'s ApiSpec,
    /// The `$ref`s being evaluated, with the instance value each is evaluated at (one
    /// location in the instance is one value in memory).
    active: Vec<(&'s str, &'i Value)>,
    /// Whether a request body is checked: OpenAPI 3.0 applies a `required` property
    /// marked `readOnly` to responses only.
    request: bool,
}

impl<'s, 'i> Walker<'s, 'i> {
    /// Checks `instance` (found at `at`) against `schema`, adding every failure to
    /// `errors`.
    fn check(
        &mut self,
        schema: &'s Value,
        instance: &'i Value,
        at: &Loc<'_>,
        errors: &mut Vec<SchemaError>,
    ) {
        let schema = match schema {
            Value::Object(schema) => schema,
            Value::Bool(false) => {
                errors.push(error(at, "no value is allowed here".to_owned()));
                return;
            }
            _ => return,
        };
        if let Some(reference) = schema.get("$ref") {
            self.check_ref(reference, instance, at, errors);
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
                at,
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
                at,
                format!("{} is not one of {}", short(instance), allowed.join(", ")),
            ));
        }
        match instance {
            Value::Number(number) => check_number(schema, number, at, errors),
            Value::String(string) => self.check_string(schema, string, at, errors),
            Value::Array(items) => self.check_array(schema, items, at, errors),
            Value::Object(members) => self.check_object(schema, members, at, errors),
            Value::Null | Value::Bool(_) => {}
        }
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for alternative in all {
                self.check(alternative, instance, at, errors);
            }
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(Value::Array(alternatives)) = schema.get(keyword) {
                self.check_any(keyword, alternatives, instance, at, errors);
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
        instance: &'i Value,
        at: &Loc<'_>,
        errors: &mut Vec<SchemaError>,
    ) {
        let Some(reference) = reference.as_str() else {
            errors.push(error(at, "schema error: `$ref` is not a string".to_owned()));
            return;
        };
        // Reaching the same `$ref` again at the same instance location means the document
        // loops without descending into the instance; the outer evaluation of that `$ref`
        // already checks everything it requires here, so stop instead of recursing forever.
        if self
            .active
            .iter()
            .any(|(r, value)| std::ptr::eq(*value, instance) && *r == reference)
        {
            return;
        }
        match self.spec.lookup(reference) {
            Ok(target) => {
                self.active.push((reference, instance));
                self.check(target, instance, at, errors);
                self.active.pop();
            }
            Err(message) => errors.push(error(at, format!("schema error: {message}"))),
        }
    }

    /// `anyOf`, and `oneOf` read as "at least one" (see [`ApiSpec::validate_request`]).
    fn check_any(
        &mut self,
        keyword: &str,
        alternatives: &'s [Value],
        instance: &'i Value,
        at: &Loc<'_>,
        errors: &mut Vec<SchemaError>,
    ) {
        let mut closest: Option<(usize, Vec<SchemaError>)> = None;
        for (index, alternative) in alternatives.iter().enumerate() {
            let mut found = Vec::new();
            self.check(alternative, instance, at, &mut found);
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
            at,
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
        at: &Loc<'_>,
        errors: &mut Vec<SchemaError>,
    ) {
        let length = string.chars().count();
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && (length as u64) < min
        {
            errors.push(error(
                at,
                format!("{length} characters, fewer than minLength {min}"),
            ));
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && (length as u64) > max
        {
            errors.push(error(
                at,
                format!("{length} characters, more than maxLength {max}"),
            ));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && let Some(Some(regex)) = self.spec.patterns.get(pattern)
            && !regex.is_match(string)
        {
            errors.push(error(
                at,
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
        items: &'i [Value],
        at: &Loc<'_>,
        errors: &mut Vec<SchemaError>,
    ) {
        let count = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && count < min
        {
            errors.push(error(
                at,
                format!("{count} items, fewer than minItems {min}"),
            ));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && count > max
        {
            errors.push(error(
                at,
                format!("{count} items, more than maxItems {max}"),
            ));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                self.check(item_schema, item, &Loc::Index(at, index), errors);
            }
        }
    }

    fn check_object(
        &mut self,
        schema: &'s Map<String, Value>,
        members: &'i Map<String, Value>,
        at: &Loc<'_>,
        errors: &mut Vec<SchemaError>,
    ) {
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                // OpenAPI 3.0: a required `readOnly` property binds responses only.
                let exempt = self.request && self.read_only(schema, name, 0);
                if !members.contains_key(name) && !exempt {
                    errors.push(error(
                        &Loc::Key(at, name),
                        "required property is missing".to_owned(),
                    ));
                }
            }
        }
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(properties) = properties {
            for (name, property_schema) in properties {
                if let Some(value) = members.get(name) {
                    self.check(property_schema, value, &Loc::Key(at, name), errors);
                }
            }
        }
        let declared = |name: &str| properties.is_some_and(|p| p.contains_key(name));
        match schema.get("additionalProperties") {
            Some(Value::Bool(false)) => {
                for name in members.keys().filter(|name| !declared(name)) {
                    errors.push(error(
                        &Loc::Key(at, name),
                        "property not allowed (additionalProperties is false)".to_owned(),
                    ));
                }
            }
            Some(additional @ Value::Object(_)) => {
                for (name, value) in members.iter().filter(|(name, _)| !declared(name)) {
                    self.check(additional, value, &Loc::Key(at, name), errors);
                }
            }
            _ => {}
        }
    }
}

fn check_number(
    schema: &Map<String, Value>,
    number: &Number,
    at: &Loc<'_>,
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
                    at,
                    format!("{number} is less than the minimum {min}"),
                ));
            }
            Some(Ordering::Equal) if exclusive => {
                errors.push(error(
                    at,
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
                    at,
                    format!("{number} is greater than the maximum {max}"),
                ));
            }
            Some(Ordering::Equal) if exclusive => {
                errors.push(error(
                    at,
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
                at,
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
        errors.push(error(at, format!("{number} is not a {bits}-bit integer")));
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

/// Where in the instance a value sits, as a chain up to the body: written out as a JSON
/// pointer only when a failure is reported there, so checking a valid body builds no
/// strings.
#[derive(Clone, Copy)]
enum Loc<'p> {
    /// The body itself (the empty pointer).
    Root,
    /// A member of an object.
    Key(&'p Loc<'p>, &'p str),
    /// An item of an array.
    Index(&'p Loc<'p>, usize),
}

impl Loc<'_> {
    /// The JSON pointer (RFC 6901), each reference token escaped.
    fn pointer(&self) -> String {
        let mut tokens = Vec::new();
        let mut at = self;
        loop {
            match at {
                Loc::Root => break,
                Loc::Key(parent, key) => {
                    tokens.push(key.replace('~', "~0").replace('/', "~1"));
                    at = parent;
                }
                Loc::Index(parent, index) => {
                    tokens.push(index.to_string());
                    at = parent;
                }
            }
        }
        tokens
            .iter()
            .rev()
            .fold(String::new(), |mut pointer, token| {
                pointer.push('/');
                pointer.push_str(token);
                pointer
            })
    }
}

fn error(at: &Loc<'_>, message: String) -> SchemaError {
    SchemaError {
        pointer: at.pointer(),
        message,
    }
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
