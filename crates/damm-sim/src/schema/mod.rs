//! A small validator for the OpenAPI 3.0 schemas in the providers' API documents.
//!
//! The simulator checks every request it receives and every response it sends against the
//! provider's published document (see `specs/README.md`); what does not match is a drift
//! (`SimHandle::drifts`). The parts: `document` loads a document, matches concrete paths to
//! its path templates and follows its `$ref`s; `validator` walks a schema against a body
//! and collects every failure with its JSON pointer.
//!
//! General JSON Schema validators do not fit these documents well, hence this local one:
//!
//! - OpenAPI 3.0 is not JSON Schema: a value may be `null` only where the schema says
//!   `nullable: true`, a keyword JSON Schema validators do not know (they would either reject
//!   every `null` or need the documents rewritten into 3.1 form first).
//! - The documents rely on a lenient reading of `nullable`: Hetzner's write
//!   `{"allOf": [{"$ref": …}], "nullable": true}`, which by the letter of OpenAPI 3.0.3 still
//!   rejects `null` (the referenced schema has `type: object`), yet the API sends `null` there.
//!   Here `nullable: true` accepts `null` outright, whatever else the schema says.
//! - A `required` property marked `readOnly` binds responses only (OpenAPI 3.0): Cloudflare's
//!   record create reuses the record schema, whose server-assigned fields are required.
//! - Hetzner writes response codes as lowercase `4xx`/`5xx`; response keys are matched
//!   case-insensitively.
//! - `oneOf` is read as "at least one" (see [`ApiSpec::validate_request`]'s notes on
//!   `oneOf`): alternatives in these documents overlap.
//!
//! Only the subset of keywords these documents use is implemented, which keeps the module
//! small and its dependencies to `serde_json` and `regex`:
//! `$ref` (local, `#/…`), `type`, `nullable`, `enum`, `properties`, `required`,
//! `additionalProperties`, `items`, `minItems`, `maxItems`, `allOf`, `anyOf`, `oneOf`,
//! `minimum`, `maximum` (with the 3.0 boolean `exclusiveMinimum`/`exclusiveMaximum`),
//! `multipleOf`, `minLength`, `maxLength`, `pattern` and the `int32`/`int64` formats.
//! Annotations (`description`, `example`, `title`, `default`, `deprecated`, `discriminator`,
//! `x-*`, other formats) are ignored; `readOnly` only as above. A `$ref`'s sibling keywords
//! are ignored, as OpenAPI 3.0 specifies.
//!
//! # Why not `jsonschema` (+ `openapiv3`)
//!
//! Weighed in issue 14 with `jsonschema` 0.61 (default features off); the harness is
//! `eval/jsonschema/` (its own workspace: `cargo run --release --manifest-path
//! crates/damm-sim/eval/jsonschema/Cargo.toml [rewritten]`), and the test
//! `read_as_json_schema_the_documents_refuse_valid_traffic` pins the constructs.
//!
//! - Behaviour. On the documents as vendored it refuses the valid traffic: 11 false errors
//!   on one valid Hetzner server page (every documented `null`), one on a DigitalOcean
//!   droplet (`next_backup_window: null`), and a Cloudflare record create for lacking the
//!   server-assigned `id`, `proxiable`, `created_on`, `modified_on`. Rewriting `nullable`
//!   into `anyOf [null, …]` fixes the first two; the `readOnly` rule has no JSON Schema
//!   form, so requests would need a second copy of each document with those properties
//!   taken out of `required` through `allOf`/`$ref` chains (the logic of
//!   `Walker::read_only`, kept anyway). Its failures are reported at the object
//!   (`/servers/0: "id" is a required property`) where ours, and the tests and drift
//!   reports, name the property (`/servers/0/id: required property is missing`); `int32`/
//!   `int64` are not JSON Schema formats and go unchecked; `$ref`s need percent-encoding
//!   (`{id}`). `openapiv3` only types the document; it validates nothing.
//! - Speed: it is faster. Per check of a 25-server Hetzner page (release, one thread, best
//!   of 5 × 2000, on the rewritten document where both accept it): jsonschema 85–89 µs, ours
//!   613–720 µs (it was 1,000–1,460 µs before the lazy pointers of `validator`); a
//!   25-droplet DigitalOcean page: 35–44 µs against 247–294 µs. In instructions (callgrind)
//!   per Hetzner page: jsonschema 0.94 M, ours 8.1 M (13.3 M before). Building one
//!   validator takes 5–12 ms (30 M instructions), once per operation and status.
//! - Build: 36 crates the workspace does not have (fancy-regex, fraction with the `num`
//!   family, ahash, referencing, fluent-uri, parking_lot, strum with its proc macro,
//!   email_address, uuid-simd, a second hashbrown and zerocopy, …) for a test-only tool, on
//!   the two cores CI builds from clean.
//!
//! So: kept. Well under a millisecond per checked page costs little beside a loopback HTTP
//! exchange; if it ever shows in `benches/throughput.rs` (checked against unchecked), the
//! crate with the rewrites above is the measured alternative.

mod document;
mod validator;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;

use regex::Regex;
use serde_json::Value;

use document::{PathTemplate, get_ignore_case};

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

impl ApiSpec {
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
}

fn root_error(message: String) -> Vec<SchemaError> {
    vec![SchemaError {
        pointer: String::new(),
        message,
    }]
}
