//! Claims: finding one (top-level name, else a dotted path), rendering it as a header value,
//! and the policy's `claims` and `requiredScopes` rules.

use serde_json::{Map, Value};

use crate::policy::ClaimRule;

/// A top-level claim named exactly `name`, else the nested claim reached by splitting `name`
/// on dots (`realm.roles`).
pub fn lookup<'a>(payload: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(v) = payload.get(name) {
        return Some(v);
    }
    if !name.contains('.') {
        return None;
    }
    lookup_path(payload, name.split('.'))
}

fn lookup_path<'a, 'p>(
    payload: &'a Map<String, Value>,
    mut path: impl Iterator<Item = &'p str>,
) -> Option<&'a Value> {
    let mut current = payload.get(path.next()?)?;
    for part in path {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

/// The header value of a claim: string as is, integer as integer, other numbers as JSON,
/// `true`/`false`, a list of scalars joined with `,`, anything else as compact JSON.
/// `None` for `null` and for values with control characters (they never reach a header).
pub fn render(value: &Value) -> Option<String> {
    let text = match value {
        Value::Null => return None,
        Value::String(s) => s.clone(),
        Value::Bool(_) | Value::Number(_) => value.to_string(),
        Value::Array(items)
            if items
                .iter()
                .all(|v| matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))) =>
        {
            items
                .iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(",")
        }
        Value::Array(_) | Value::Object(_) => value.to_string(),
    };
    // Every control character, tab too (SPEC §4; HTTP allows a tab in a value, but an upstream
    // that splits on white space reads one claim as two: review 10).
    let safe = !text.chars().any(char::is_control);
    safe.then_some(text)
}

/// `*` matches any run of characters (`*`, `*@example.com`, `dev-*-eu`).
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = rest.get(i + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The scalar strings a claim offers for matching: a list offers each element.
fn candidates(value: &Value) -> Option<Vec<String>> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => scalar(other).map(|c| vec![c]),
    }
}

/// All rules hold: the claim exists and can be compared (a scalar, or a list of scalars); a
/// value matches one of `values` (when given); no value matches any of `not_values`. A claim
/// that is `null`, an object, or a list holding one fails every rule, as an absent claim does:
/// `notValues` cannot be checked against it (review 10: `groups: null` held
/// `notValues: [banned]`, which an absent `groups` fails).
pub fn rules_hold(payload: &Map<String, Value>, rules: &[ClaimRule]) -> bool {
    rules.iter().all(|rule| {
        let value = if rule.path.len() == 1 {
            rule.path.first().and_then(|k| payload.get(k))
        } else {
            lookup_path(payload, rule.path.iter().map(String::as_str))
        };
        let Some(offered) = value.and_then(candidates) else {
            return false;
        };
        let allowed = rule.values.is_empty()
            || offered
                .iter()
                .any(|c| rule.values.iter().any(|p| wildcard_match(p, c)));
        let denied = offered
            .iter()
            .any(|c| rule.not_values.iter().any(|p| wildcard_match(p, c)));
        allowed && !denied
    })
}

/// The `scope` claim (space-separated string, or list) holds every required scope. A string
/// splits on U+0020 only, as RFC 6749 §3.3 spells scopes (review 10: `split_whitespace` read
/// `"read\u{a0}admin"`, or a tab or newline between them, as granting `admin`).
pub fn scopes_hold(payload: &Map<String, Value>, required: &[String]) -> bool {
    if required.is_empty() {
        return true;
    }
    let granted: Vec<&str> = match payload.get("scope") {
        Some(Value::String(s)) => s.split(' ').filter(|t| !t.is_empty()).collect(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return false,
    };
    required.iter().all(|r| granted.contains(&r.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn rendering() {
        assert_eq!(render(&json!("a b")).as_deref(), Some("a b"));
        assert_eq!(render(&json!(42)).as_deref(), Some("42"));
        assert_eq!(render(&json!(-7)).as_deref(), Some("-7"));
        assert_eq!(render(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(render(&json!(true)).as_deref(), Some("true"));
        assert_eq!(
            render(&json!(["a", 1, false])).as_deref(),
            Some("a,1,false")
        );
        assert_eq!(
            render(&json!({"b": [1, {"c": 2}]})).as_deref(),
            Some(r#"{"b":[1,{"c":2}]}"#)
        );
        assert_eq!(render(&json!([{"a": 1}])).as_deref(), Some(r#"[{"a":1}]"#));
        assert_eq!(render(&json!(null)), None);
        assert_eq!(render(&json!("evil\r\nx-admin: 1")), None);
        assert_eq!(render(&json!("a\tb")), None);
        assert_eq!(render(&json!(["a", "b\tc"])), None);
        assert_eq!(
            render(&json!({"a": "b\tc"})).as_deref(),
            Some(r#"{"a":"b\tc"}"#)
        );
        assert_eq!(
            render(&json!({"k": "new\nline"})).as_deref(),
            Some(r#"{"k":"new\nline"}"#)
        );
    }

    #[test]
    fn lookup_prefers_an_exact_top_level_name() {
        let p = obj(
            json!({"realm.roles": "top", "realm": {"roles": ["a", "b"]}, "x": {"y": {"z": 1}}}),
        );
        assert_eq!(lookup(&p, "realm.roles"), Some(&json!("top")));
        assert_eq!(lookup(&p, "x.y.z"), Some(&json!(1)));
        assert_eq!(lookup(&p, "x.nope"), None);
        assert_eq!(lookup(&p, "missing"), None);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("*@example.com", "a@example.com"));
        assert!(!wildcard_match("*@example.com", "a@example.org"));
        assert!(wildcard_match("dev-*-eu", "dev-1-eu"));
        assert!(!wildcard_match("dev-*-eu", "dev-eu"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
    }

    #[test]
    fn claim_rules_and_scopes() {
        let p = obj(
            json!({"groups": ["dev", "ops"], "email": "a@example.com", "org": {"id": "7"}, "scope": "read write"}),
        );
        let rule = |path: &[&str], values: &[&str], not_values: &[&str]| ClaimRule {
            path: path.iter().map(|s| s.to_string()).collect(),
            values: values.iter().map(|s| s.to_string()).collect(),
            not_values: not_values.iter().map(|s| s.to_string()).collect(),
        };
        assert!(rules_hold(&p, &[rule(&["groups"], &["ops"], &[])]));
        assert!(!rules_hold(&p, &[rule(&["groups"], &["admin"], &[])]));
        assert!(!rules_hold(&p, &[rule(&["groups"], &[], &["dev"])]));
        assert!(rules_hold(
            &p,
            &[
                rule(&["email"], &["*@example.com"], &[]),
                rule(&["org", "id"], &["7"], &[])
            ]
        ));
        assert!(!rules_hold(&p, &[rule(&["missing"], &[], &[])]));
        assert!(scopes_hold(&p, &["write".into(), "read".into()]));
        assert!(!scopes_hold(&p, &["admin".into()]));
        let listed = obj(json!({"scope": ["a", "b"]}));
        assert!(scopes_hold(&listed, &["b".into()]));
    }
}
