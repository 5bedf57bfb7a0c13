//! Listing: the subset of Compute Engine's filter language the simulator serves, and
//! pages with opaque page tokens.

use super::*;

/// One term of a list filter: `labels.KEY = "VALUE"`, `name != x`, `labels.KEY:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Term {
    pub(super) field: String,
    pub(super) negate: bool,
    /// `None` for `:*` (the field is present).
    pub(super) value: Option<String>,
}

/// Parses the subset of Compute Engine's filter language the simulator serves: terms
/// with `=`, `!=` or `:`, each alone or in parentheses, joined by spaces or `AND`.
pub(super) fn parse_filter(filter: &str) -> Result<Vec<Term>, String> {
    let mut terms = Vec::new();
    let mut rest = filter.trim();
    while !rest.is_empty() {
        let expression;
        if let Some(inner) = rest.strip_prefix('(') {
            let close = inner
                .find(')')
                .ok_or("Invalid list filter expression: unbalanced parentheses")?;
            expression = &inner[..close];
            rest = inner[close + 1..].trim_start();
        } else {
            expression = rest;
            rest = "";
        }
        terms.push(parse_term(expression)?);
        if let Some(after) = rest.strip_prefix("AND ") {
            rest = after.trim_start();
        } else if rest.starts_with("OR ") {
            return Err("OR in list filters is not simulated".into());
        }
    }
    Ok(terms)
}

pub(super) fn parse_term(expression: &str) -> Result<Term, String> {
    let expression = expression.trim();
    let (field, op, value) = if let Some((f, v)) = expression.split_once("!=") {
        (f, "!=", v)
    } else if let Some((f, v)) = expression.split_once('=') {
        (f, "=", v)
    } else if let Some((f, v)) = expression.split_once(':') {
        (f, ":", v)
    } else {
        return Err(format!(
            "Invalid list filter expression '{expression}': expected FIELD = VALUE"
        ));
    };
    let field = field.trim();
    let value = value.trim();
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    if field.is_empty() || field.contains(char::is_whitespace) {
        return Err(format!("Invalid list filter field '{field}'"));
    }
    if field != "name" && field != "status" && !field.starts_with("labels.") {
        return Err(format!("Invalid list filter field '{field}'"));
    }
    Ok(Term {
        field: field.to_owned(),
        negate: op == "!=",
        value: if op == ":" && value == "*" {
            None
        } else {
            Some(value.to_owned())
        },
    })
}

/// Whether a resource with `name`, `status` and `labels` passes every term.
pub(super) fn passes(
    terms: &[Term],
    name: &str,
    status: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    terms.iter().all(|t| {
        let actual = match t.field.as_str() {
            "name" => Some(name),
            "status" => Some(status),
            field => field
                .strip_prefix("labels.")
                .and_then(|k| labels.get(k))
                .map(String::as_str),
        };
        let matched = match &t.value {
            None => actual.is_some(),
            Some(v) => actual == Some(v.as_str()),
        };
        matched != t.negate
    })
}

/// What a list filters on and answers: instances and addresses alike.
pub(super) trait Listed {
    /// Its creation sequence number (lists follow it; page tokens name it).
    fn seq(&self) -> u64;
    /// Whether its name, status and labels pass every term of the filter.
    fn passes(&self, terms: &[Term]) -> bool;
    /// How a list shows it.
    fn json(&self) -> Value;
}

/// A `kind` list of `resources` (`id` is their collection's path below the API, e.g.
/// `projects/p/zones/z/instances`): those that pass the query's filter, the page after
/// its page token.
pub(super) fn list<'a, R: Listed + 'a>(
    kind: &str,
    id: String,
    resources: impl Iterator<Item = &'a R>,
    q: &ListQuery,
) -> Response {
    let terms = match filter_terms(q) {
        Ok(t) => t,
        Err(e) => return *e,
    };
    let items: Vec<(u64, Value)> = resources
        .filter(|r| r.passes(&terms))
        .map(|r| (r.seq(), r.json()))
        .collect();
    let max = match q.max_results.as_deref().map(str::parse::<usize>) {
        None | Some(Ok(0)) => MAX_RESULTS,
        Some(Ok(n)) if n <= MAX_RESULTS => n,
        Some(_) => {
            return invalid(format!(
                "Invalid value for field 'maxResults': must be between 0 and {MAX_RESULTS}"
            ));
        }
    };
    let start = match q.page_token.as_deref().filter(|t| !t.is_empty()) {
        None => 0,
        Some(token) => match decode_token(token) {
            Some(seq) => items.partition_point(|(s, _)| *s < seq),
            None => return invalid("Invalid value for field 'pageToken'"),
        },
    };
    let end = (start + max).min(items.len());
    let next = items.get(end).map(|(seq, _)| encode_token(*seq));
    let page: Vec<Value> = items
        .into_iter()
        .skip(start)
        .take(end - start)
        .map(|(_, v)| v)
        .collect();
    let self_link = format!("{LINK_BASE}/{id}");
    let mut body = json!({ "kind": kind, "id": id, "selfLink": self_link });
    if !page.is_empty() {
        body["items"] = Value::Array(page);
    }
    if let Some(next) = next {
        body["nextPageToken"] = json!(next);
    }
    Json(body).into_response()
}

/// Page tokens are opaque to clients; here they name the first sequence number of the
/// next page.
pub(super) fn encode_token(seq: u64) -> String {
    base64(format!("damm-sim-page:{seq}").as_bytes())
}

pub(super) fn decode_token(token: &str) -> Option<u64> {
    let text = String::from_utf8(base64_decode(token)?).ok()?;
    text.strip_prefix("damm-sim-page:")?.parse().ok()
}

pub(super) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for b in text.trim_end_matches('=').bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(v);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

fn filter_terms(q: &ListQuery) -> Result<Vec<Term>, Refusal> {
    match q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        None => Ok(Vec::new()),
        Some(filter) => parse_filter(filter).map_err(|e| Box::new(invalid(e))),
    }
}
