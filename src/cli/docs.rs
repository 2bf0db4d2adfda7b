//! Policy documents: YAML or JSON files in, JSON values out, and YAML out again.

use serde_json::{Value, json};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::config;

/// A YAML node as JSON (keys become strings, as Kubernetes YAML is JSON-compatible).
pub(crate) fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        _ => String::new(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
        Yaml::Alias(_) | Yaml::Null | Yaml::BadValue => Value::Null,
    }
}

/// JSON as a YAML node, for the emitter.
pub(crate) fn to_yaml(v: &Value) -> Yaml {
    match v {
        Value::Null => Yaml::Null,
        Value::Bool(b) => Yaml::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Yaml::Integer(i),
            None => Yaml::Real(n.to_string()),
        },
        Value::String(s) => Yaml::String(s.clone()),
        Value::Array(a) => Yaml::Array(a.iter().map(to_yaml).collect()),
        Value::Object(m) => Yaml::Hash(
            m.iter()
                .map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v)))
                .collect(),
        ),
    }
}

/// Every document of a YAML or JSON file.
pub(crate) fn load(path: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(match v {
            Value::Object(m) if m.get("kind").and_then(Value::as_str) == Some("List") => m
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            other => vec![other],
        });
    }
    let docs =
        YamlLoader::load_from_str(&text).map_err(|e| format!("{path}: not YAML or JSON: {e}"))?;
    for doc in &docs {
        merge_key(doc, "").map_or(Ok(()), |at| {
            Err(format!(
                "{path}: {at}: a YAML merge key `<<`, which Kubernetes applies (YAML 1.1) and \
                 this command would read as a plain key: what it checks would not be what runs; \
                 write the merged members out"
            ))
        })?;
    }
    if let Some((mark, number, why)) = ambiguous_number(&text) {
        return Err(format!(
            "{path}: line {} column {}: `{number}`, {why}: what it checks would not be what \
             runs; quote it, or write the number in decimal without a leading zero",
            mark.line(),
            mark.col() + 1
        ));
    }
    Ok(docs.iter().map(to_json).filter(|d| !d.is_null()).collect())
}

/// The first plain (unquoted, untagged) scalar whose meaning Kubernetes (YAML 1.1, as
/// `kubectl` and the API machinery read it) and this command (YAML 1.2) differ on: `0443` is
/// octal 291 there and decimal 443 here; `0o443` a string there and octal 291 here.
fn ambiguous_number(text: &str) -> Option<(Marker, String, String)> {
    #[derive(Default)]
    struct First(Option<(Marker, String, String)>);
    impl MarkedEventReceiver for First {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if let (None, Event::Scalar(v, TScalarStyle::Plain, _, None)) = (&self.0, ev) {
                let digits = v.strip_prefix(['-', '+']).unwrap_or(&v);
                let why = if digits.len() > 1
                    && digits.starts_with('0')
                    && digits.bytes().all(|b| b.is_ascii_digit())
                {
                    let octal = i64::from_str_radix(digits, 8)
                        .map_or_else(|_| "not a number".to_owned(), |n| format!("the octal {n}"));
                    Some(format!(
                        "a number Kubernetes reads as octal (YAML 1.1: {octal}) and this \
                         command as decimal"
                    ))
                } else if digits
                    .strip_prefix("0o")
                    .is_some_and(|o| !o.is_empty() && o.bytes().all(|b| (b'0'..=b'7').contains(&b)))
                {
                    Some(
                        "a string to Kubernetes (YAML 1.1) and an octal number to this command"
                            .to_owned(),
                    )
                } else {
                    None
                };
                if let Some(why) = why {
                    self.0 = Some((mark, v, why));
                }
            }
        }
    }
    let mut first = First::default();
    Parser::new_from_str(text).load(&mut first, true).ok()?;
    first.0
}

/// Where the first `<<` key is (a JSON-path-like location), if any.
fn merge_key(y: &Yaml, at: &str) -> Option<String> {
    match y {
        Yaml::Hash(h) => h.iter().find_map(|(k, v)| {
            let key = k.as_str().unwrap_or_default();
            if key == "<<" {
                return Some(if at.is_empty() {
                    "<<".into()
                } else {
                    format!("{at}.<<")
                });
            }
            merge_key(
                v,
                &if at.is_empty() {
                    key.to_owned()
                } else {
                    format!("{at}.{key}")
                },
            )
        }),
        Yaml::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| merge_key(v, &format!("{at}[{i}]"))),
        _ => None,
    }
}

pub(crate) fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or_default()
}

pub(crate) fn name(doc: &Value) -> String {
    let meta = doc.get("metadata");
    let n = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{ns}/{n}"),
        None => n.to_owned(),
    }
}

/// Every JWTPolicy of the files, validated for the given kind of proxy.
pub(crate) fn policies_of(files: &[String], proxy: config::Proxy) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for file in files {
        for doc in load(file)? {
            if kind(&doc) != "JWTPolicy" {
                continue;
            }
            config::parse_on(doc.to_string().as_bytes(), proxy)
                .map_err(|e| format!("{file}: JWTPolicy {}: {e}", name(&doc)))?;
            out.push(doc);
        }
    }
    if out.is_empty() {
        return Err("no JWTPolicy in the files".into());
    }
    Ok(out)
}

pub(crate) fn emit(docs: &[Value], out: &mut String) -> Result<(), String> {
    for doc in docs {
        let mut text = String::new();
        YamlEmitter::new(&mut text)
            .dump(&to_yaml(doc))
            .map_err(|e| format!("cannot write YAML: {e:?}"))?;
        out.push_str(&text);
        out.push('\n');
    }
    Ok(())
}
