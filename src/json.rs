//! JSON as Envoy's parser (protobuf's JSON-to-Struct) takes it: like `serde_json`, but a comma
//! before a closing `]` or `}` is allowed. Real JWKS documents carry such commas.

use std::borrow::Cow;

use serde_json::{Map, Value};

/// Parses `bytes`, tolerating trailing commas.
pub fn parse_lenient(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(&without_trailing_commas(bytes)).ok()
}

/// How deep objects and arrays may nest in a token's header or payload: protobuf's JSON parser,
/// which `jwt_authn` uses, refuses a 101st level.
pub const MAX_TOKEN_DEPTH: usize = 100;

/// A token's header or payload as `jwt_authn` reads it: trailing commas tolerated, but a member
/// repeated in one object, or nesting past [`MAX_TOKEN_DEPTH`], is invalid JSON. (A repeated
/// member would let this filter, which would keep the last value, and an upstream reading the
/// forwarded token with a first-wins parser see different `iss`, `sub` or `exp`.)
pub fn parse_token_json(bytes: &[u8]) -> Option<Value> {
    use serde::de::DeserializeSeed as _;
    let text = without_trailing_commas(bytes);
    let mut de = serde_json::Deserializer::from_slice(&text);
    let value = Strict { depth: 0 }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(value)
}

/// The plugin configuration: standard JSON, except that a member repeated in one object is an
/// error (serde_json would keep the last: a reviewer reading the first `validationPolicy` of a
/// policy would see another policy than the filter runs).
pub fn parse_config_json(bytes: &[u8]) -> Result<Value, String> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict { depth: 0 }
        .deserialize(&mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    Ok(value)
}

/// Builds a [`Value`], refusing repeated members and nesting past [`MAX_TOKEN_DEPTH`].
#[derive(Clone, Copy)]
struct Strict {
    /// Objects and arrays around the value being read.
    depth: usize,
}

impl<'de> serde::de::DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JSON without repeated members")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("not a finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.nested::<A::Error>()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.nested::<A::Error>()?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("repeated member {key:?}")));
            }
            let value = map.next_value_seed(inner)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

impl Strict {
    /// The seed for what an object or array at this level holds, or an error past the limit.
    fn nested<E: serde::de::Error>(self) -> Result<Strict, E> {
        if self.depth >= MAX_TOKEN_DEPTH {
            return Err(E::custom("nested too deep"));
        }
        Ok(Strict {
            depth: self.depth + 1,
        })
    }
}

/// `bytes` with every comma that only whitespace separates from a closing bracket removed
/// (outside strings). Borrowed when there is none.
fn without_trailing_commas(bytes: &[u8]) -> Cow<'_, [u8]> {
    let mut drop = Vec::new();
    let (mut in_string, mut escaped, mut pending_comma) = (false, false, None);
    let mut previous = b' ';
    for (i, &b) in bytes.iter().enumerate() {
        let before = previous;
        if !in_string && !b.is_ascii_whitespace() {
            previous = b;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                pending_comma = None;
            }
            // Only a comma after a value can be trailing: `[,]` and `,,` stay errors.
            b',' => pending_comma = (!matches!(before, b'[' | b'{' | b',')).then_some(i),
            b']' | b'}' => {
                if let Some(c) = pending_comma.take() {
                    drop.push(c);
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => pending_comma = None,
        }
    }
    if drop.is_empty() {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut skip = drop.into_iter().peekable();
    for (i, &b) in bytes.iter().enumerate() {
        if skip.peek() == Some(&i) {
            skip.next();
            continue;
        }
        out.push(b);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn token_json_refuses_repeated_members_and_deep_nesting_as_jwt_authn() {
        assert_eq!(
            parse_token_json(br#"{"a": [1, {"b": null}], "c": 1.5,}"#),
            Some(json!({"a": [1, {"b": null}], "c": 1.5}))
        );
        assert_eq!(parse_token_json(br#"{"exp": 1, "exp": 2}"#), None);
        // Decoded keys: an escape spells the same member.
        assert_eq!(parse_token_json(br#"{"sub": "a", "sub": "b"}"#), None);
        assert_eq!(parse_token_json(br#"{"a": {"x": 1, "x": 1}}"#), None);
        assert_eq!(
            parse_token_json(br#"[{"x": 1}, {"x": 1}]"#),
            Some(json!([{"x": 1}, {"x": 1}]))
        );
        // The object and 99 arrays: 100 levels pass; one more does not.
        let nested =
            |arrays: usize| format!("{{\"x\": {}{}}}", "[".repeat(arrays), "]".repeat(arrays));
        assert!(parse_token_json(nested(99).as_bytes()).is_some());
        assert_eq!(parse_token_json(nested(100).as_bytes()), None);
        assert_eq!(parse_token_json(b"{} x"), None);
        // The JWKS parser stays as lenient as before.
        assert!(parse_lenient(br#"{"keys": [], "keys": []}"#).is_some());
    }

    #[test]
    fn trailing_commas_only_outside_strings() {
        assert_eq!(
            parse_lenient(br#"{"a": [1, 2,], "b": ",]",}"#),
            Some(json!({"a": [1, 2], "b": ",]"}))
        );
        assert_eq!(
            parse_lenient(br#"{"a": "\",}",}"#),
            Some(json!({"a": "\",}"}))
        );
        assert_eq!(parse_lenient(b"[,]"), None);
        assert_eq!(parse_lenient(b"{\"a\":1,,}"), None);
        assert!(matches!(
            without_trailing_commas(b"{\"a\":1}"),
            Cow::Borrowed(_)
        ));
    }
}
