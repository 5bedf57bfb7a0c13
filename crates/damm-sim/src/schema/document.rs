//! The document side: loading an OpenAPI document, its path templates, its operations and
//! local `$ref`s.

use std::collections::HashMap;

use regex::Regex;
use serde_json::{Map, Value};

use super::{ApiSpec, SchemaError, root_error};

/// The operation keys of an OpenAPI path item (other keys, like `servers` or `parameters`,
/// are not operations).
pub(super) const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// How many `$ref`s in a row may lead from a response or request body to its definition.
const MAX_REF_HOPS: usize = 32;

/// A path template such as `/servers/{id}/actions/poweroff`, split into segments.
#[derive(Debug)]
pub(super) struct PathTemplate {
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
    pub(super) fn operation(
        &self,
        method: &str,
        path_template: &str,
    ) -> Result<&Value, Vec<SchemaError>> {
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
    pub(super) fn resolve<'a>(
        &'a self,
        mut value: &'a Value,
    ) -> Result<&'a Value, Vec<SchemaError>> {
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
    pub(super) fn lookup(&self, reference: &str) -> Result<&Value, String> {
        // The fragment is used as a JSON pointer as is: the documents do not percent-encode.
        let pointer = reference
            .strip_prefix('#')
            .ok_or_else(|| format!("`$ref` `{reference}` is not local to the document"))?;
        self.doc
            .pointer(pointer)
            .ok_or_else(|| format!("`$ref` `{reference}` does not resolve"))
    }
}

/// The value of `key` in `map`, ignoring ASCII case (Hetzner writes `4xx`, OpenAPI `4XX`).
pub(super) fn get_ignore_case<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// `application/json`, with parameters (`; charset=utf-8`), or a `+json` type.
pub(super) fn is_json_media_type(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// Compiles every string-valued `pattern` in the document.
pub(super) fn collect_patterns(value: &Value, patterns: &mut HashMap<String, Option<Regex>>) {
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
