//! JSON as Envoy's parser (protobuf's JSON-to-Struct) takes it: like `serde_json`, but a comma
//! before a closing `]` or `}` is allowed. Real JWKS documents carry such commas.

use std::borrow::Cow;

use serde_json::Value;

/// Parses `bytes`, tolerating trailing commas.
pub fn parse_lenient(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(&without_trailing_commas(bytes)).ok()
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
