//! What Kubernetes makes of a YAML file against what this command reads, scalar by scalar.
//! Kubernetes reads manifests as YAML 1.1 (sigs.k8s.io/yaml, on goyaml.v2's `resolve`), this
//! command as YAML 1.2 (yaml-rust2): `0443` is octal 291 there and 443 here, `NULL` null there
//! and a string here, `yes` true there and a string here, `1_000` a number there. Where the two
//! differ, what `check` approves would not be what runs, so the loader refuses it; and `render`
//! quotes every string Kubernetes would read as something else.

use serde_json::{Value, json};
use yaml_rust2::Yaml;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A scalar of the YAML tree as JSON, as this command reads it (`None` for a collection).
pub(crate) fn scalar_json(y: &Yaml) -> Option<Value> {
    Some(match y {
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::Integer(i) => json!(i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
        Yaml::Array(_) | Yaml::Hash(_) | Yaml::Alias(_) | Yaml::BadValue => return None,
    })
}

/// The plain scalar `v` as this command reads it (yaml-rust2's core schema).
fn ours(v: &str) -> Value {
    scalar_json(&Yaml::from_str(v)).unwrap_or(Value::Null)
}

/// The plain scalar `v` as Kubernetes reads it: goyaml.v2's `resolve`, as JSON. `None`: a
/// value JSON cannot hold (NaN, the infinities: kubectl refuses the file).
fn theirs(v: &str) -> Option<Value> {
    match v {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Some(Value::Bool(true));
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Some(Value::Bool(false));
        }
        "" | "~" | "null" | "Null" | "NULL" => return Some(Value::Null),
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return None,
        _ => {}
    }
    let string = || Some(Value::String(v.to_owned()));
    let float = |f: f64| serde_json::Number::from_f64(f).map(Value::Number);
    match v.as_bytes().first() {
        // strconv.ParseFloat.
        Some(b'.') => v.parse::<f64>().ok().map_or_else(string, float),
        Some(c) if c.is_ascii_digit() || *c == b'+' || *c == b'-' => {
            // Underscores removed, then strconv.ParseInt(s, 0, 64), ParseUint(s, 0, 64) and,
            // for yamlStyleFloat, ParseFloat. (A timestamp stays the string it is.)
            let plain: String = v.chars().filter(|c| *c != '_').collect();
            if let Some(n) = go_integer(&plain) {
                return Some(n);
            }
            if yaml_style_float(&plain) {
                return plain.parse::<f64>().ok().map_or_else(string, float);
            }
            string()
        }
        _ => string(),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, else `ParseUint(s, 0, 64)` (no sign): an optional sign,
/// then `0x`, `0o`, `0b` or a leading `0` (octal) for the base.
fn go_integer(s: &str) -> Option<Value> {
    let (negative, signed, body) = match s.as_bytes().first() {
        Some(b'-') => (true, true, &s[1..]),
        Some(b'+') => (false, true, &s[1..]),
        _ => (false, false, s),
    };
    let prefixed = |p: &str, q: &str| body.strip_prefix(p).or_else(|| body.strip_prefix(q));
    let (radix, digits) = if let Some(d) = prefixed("0x", "0X") {
        (16, d)
    } else if let Some(d) = prefixed("0o", "0O") {
        (8, d)
    } else if let Some(d) = prefixed("0b", "0B") {
        (2, d)
    } else if body.len() > 1 && body.starts_with('0') {
        (8, &body[1..])
    } else {
        (10, body)
    };
    // from_str_radix takes a sign of its own: Go's digits have none.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        let m = i128::from(magnitude);
        i64::try_from(-m).ok().map(|n| json!(n))
    } else if let Ok(n) = i64::try_from(magnitude) {
        Some(json!(n))
    } else {
        (!signed).then(|| json!(magnitude))
    }
}

/// goyaml.v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => !frac.is_empty() && digits(frac),
        Some((int, frac)) => digits(int) && digits(frac),
        None => !mantissa.is_empty() && digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

fn same(a: &Value, b: &Option<Value>) -> bool {
    // An integral number exactly (9007199254740993 is not the float 9007199254740992).
    let exact = |n: &serde_json::Number| -> Option<i128> {
        (n.as_i64().map(i128::from))
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                // Below 2^63 as a float, so the conversion is exact.
                (n.as_f64())
                    .filter(|f| f.fract() == 0.0 && f.abs() < (1u64 << 63) as f64)
                    .map(|f| f as i128)
            })
    };
    match (a, b) {
        (Value::Number(x), Some(Value::Number(y))) => match (exact(x), exact(y)) {
            (Some(i), Some(j)) => i == j,
            (None, None) => x.as_f64() == y.as_f64(),
            _ => false,
        },
        (a, Some(b)) => a == b,
        (_, None) => false,
    }
}

/// Why the text cannot be read as Kubernetes reads it, whatever its scalars: a YAML 1.1 line
/// break (NEL, LS, PS: goyaml ends a line, and so a comment, there; yaml-rust2 does not), a
/// line that starts with `---` and goes on without a blank (kubectl's document splitter ends a
/// document at `---#`, yaml-rust2 reads on), a document end marker `...` (kubectl decodes only
/// the first document before it).
pub(crate) fn unsplittable(text: &str) -> Option<String> {
    if let Some((line, _)) =
        (text.lines().enumerate()).find(|(_, l)| l.contains(['\u{85}', '\u{2028}', '\u{2029}']))
    {
        return Some(format!(
            "line {}: a YAML 1.1 line break (U+0085, U+2028 or U+2029), where Kubernetes ends \
             the line (a comment too) and this command does not",
            line + 1
        ));
    }
    for (i, l) in text.lines().enumerate() {
        if l.strip_prefix("---")
            .is_some_and(|rest| !rest.is_empty() && !rest.starts_with([' ', '\t']))
        {
            return Some(format!(
                "line {}: `---` followed by more than a blank, where kubectl may split \
                 documents and this command does not",
                i + 1
            ));
        }
        if l.strip_prefix("...")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
        {
            return Some(format!(
                "line {}: a document end marker `...`: kubectl reads only the first document \
                 before it",
                i + 1
            ));
        }
    }
    None
}

fn describe(v: Option<&Value>) -> String {
    match v {
        None => "no JSON value (NaN or an infinity: kubectl refuses it)".to_owned(),
        Some(Value::String(s)) => format!("the string {s:?}"),
        Some(Value::Number(n)) => format!("the number {n}"),
        Some(other) => other.to_string(),
    }
}

/// The line breaks of YAML 1.1 that YAML 1.2 reads as plain characters.
const BREAKS: [char; 3] = ['\u{85}', '\u{2028}', '\u{2029}'];

/// `s` as a YAML double-quoted scalar both read alike: JSON's escapes, and `\N`, `\L`, `\P`
/// for the YAML 1.1 line breaks (raw, goyaml folds them into a space).
fn double_quoted(s: &str) -> String {
    escape_breaks(&Value::String(s.to_owned()).to_string())
}

/// Each raw YAML 1.1 line break of `text` as its escape; right only inside double-quoted
/// scalars, where this command's output holds them (plain ones are quoted first).
pub(crate) fn escape_breaks(text: &str) -> String {
    text.replace('\u{85}', "\\N")
        .replace('\u{2028}', "\\L")
        .replace('\u{2029}', "\\P")
}

/// Where Kubernetes and this command read a file differently, and how.
pub(crate) struct Divergence {
    pub at: Marker,
    pub text: String,
    pub why: String,
}

/// Every scalar in order, with its place and whether it is plain and untagged; and the first
/// tag other than `!!str` (which both read alike: a string).
#[derive(Default)]
struct Scan {
    scalars: Vec<(Marker, String, bool)>,
    tag: Option<(Marker, String)>,
    aliases: usize,
    first_alias: Option<Marker>,
}

/// More aliases than a manifest needs: refused before the loader expands them (yaml-rust2 has
/// no limit; a file of nested aliases grows exponentially).
const MAX_ALIASES: usize = 64;

impl MarkedEventReceiver for Scan {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let tag = match ev {
            Event::Scalar(v, style, _, tag) => {
                let plain = style == TScalarStyle::Plain && tag.is_none();
                self.scalars.push((mark, v, plain));
                tag
            }
            Event::SequenceStart(_, tag) | Event::MappingStart(_, tag) => tag,
            Event::Alias(_) => {
                self.aliases += 1;
                self.first_alias.get_or_insert(mark);
                None
            }
            _ => None,
        };
        if let Some(t) = tag
            && !(t.handle == "tag:yaml.org,2002:" && t.suffix == "str")
            && self.tag.is_none()
        {
            let name = match t.handle.as_str() {
                "tag:yaml.org,2002:" => format!("!!{}", t.suffix),
                handle => format!("{handle}{}", t.suffix),
            };
            self.tag = Some((mark, name));
        }
    }
}

fn scan(text: &str) -> Option<Scan> {
    let mut s = Scan::default();
    Parser::new_from_str(text).load(&mut s, true).ok()?;
    Some(s)
}

/// The first place `text` (a YAML file) means one thing to Kubernetes and another here: a tag
/// (each side resolves `!!int`, `!!bool`, `!!binary`… its own way; yaml-rust2 reads some as
/// nothing at all), or a plain scalar the two resolve differently.
pub(crate) fn first_divergence(text: &str) -> Option<Divergence> {
    let s = scan(text)?;
    if let Some((at, tag)) = s.tag {
        return Some(Divergence {
            at,
            text: tag,
            why: "a YAML tag, which Kubernetes (YAML 1.1) and this command (YAML 1.2) resolve \
                  differently"
                .to_owned(),
        });
    }
    if let (true, Some(at)) = (s.aliases > MAX_ALIASES, s.first_alias) {
        return Some(Divergence {
            at,
            text: format!("{} aliases", s.aliases),
            why: format!("more than {MAX_ALIASES} aliases (each may expand to a whole subtree)"),
        });
    }
    s.scalars
        .into_iter()
        .filter(|s| s.2)
        .find_map(|(at, v, _)| {
            if v.starts_with('?') {
                return Some(Divergence {
                    why: "a plain scalar that starts with `?`, the explicit-key indicator to \
                          Kubernetes in a flow collection (`{?a: b}` is the key `a` there, \
                          `?a` here)"
                        .to_owned(),
                    at,
                    text: v,
                });
            }
            let (here, there) = (ours(&v), theirs(&v));
            (!same(&here, &there)).then(|| Divergence {
                why: format!(
                    "Kubernetes (YAML 1.1) reads {} and this command (YAML 1.2) {}",
                    describe(there.as_ref()),
                    describe(Some(&here))
                ),
                at,
                text: v,
            })
        })
}

/// `emitted`, the YAML this command wrote of `source`, with each string that went out as a
/// plain scalar either side reads as something else (`0o17`, `1_000`, `yes`, `NULL`: the
/// emitter quotes only what YAML 1.2 would misread, and not all of that) written as a
/// double-quoted string, which both read alike. The scalars of the text are those of `source`
/// in order (keys and values); if they are not, the text is returned as it is.
pub(crate) fn quote_divergent(emitted: &str, source: &Value) -> String {
    fn flatten<'v>(v: &'v Value, out: &mut Vec<Option<&'v str>>) {
        match v {
            Value::Object(m) => m.iter().for_each(|(k, x)| {
                out.push(Some(k));
                flatten(x, out);
            }),
            Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
            Value::String(s) => out.push(Some(s)),
            _ => out.push(None),
        }
    }
    let Some(scanned) = scan(emitted) else {
        return emitted.to_owned();
    };
    let mut strings = Vec::new();
    flatten(source, &mut strings);
    if strings.len() != scanned.scalars.len() {
        return emitted.to_owned();
    }
    // Markers count characters; splice from the end so earlier ones stay valid.
    let mut spans: Vec<(usize, String)> = scanned
        .scalars
        .into_iter()
        .zip(strings)
        .filter(|((_, v, plain), string)| {
            let s = Value::String(v.clone());
            *plain
                && *string == Some(v.as_str())
                && (!(ours(v) == s && same(&s, &theirs(v))) || v.contains(BREAKS))
        })
        .map(|((at, v, _), _)| (at.index(), v))
        .collect();
    spans.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
    let mut out = emitted.to_owned();
    for (index, v) in spans {
        let Some((start, _)) = out.char_indices().nth(index) else {
            continue;
        };
        if out.get(start..start + v.len()) == Some(v.as_str()) {
            out.replace_range(start..start + v.len(), &double_quoted(&v));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_reads_plain_scalars_as_goyaml_v2_resolves_them() {
        let cases: &[(&str, Option<Value>)] = &[
            ("0443", Some(json!(291))),
            ("-012", Some(json!(-10))),
            ("0o443", Some(json!(291))),
            ("0x1bb", Some(json!(443))),
            ("+0x1bb", Some(json!(443))),
            ("0b101", Some(json!(5))),
            ("1_000", Some(json!(1000))),
            ("08080", Some(json!(8080.0))),
            ("1e3", Some(json!(1000.0))),
            (".5", Some(json!(0.5))),
            ("18446744073709551615", Some(json!(u64::MAX))),
            ("+18446744073709551615", Some(json!(1.8446744073709552e19))),
            ("NULL", Some(Value::Null)),
            ("~", Some(Value::Null)),
            ("yes", Some(json!(true))),
            ("Off", Some(json!(false))),
            (".inf", None),
            ("1:20", Some(json!("1:20"))),
            ("2024-01-02", Some(json!("2024-01-02"))),
            ("-", Some(json!("-"))),
            ("0x", Some(json!("0x"))),
            ("web", Some(json!("web"))),
        ];
        for (v, want) in cases {
            let got = theirs(v);
            let equal = match (&got, want) {
                (Some(a), b) => same(a, b),
                (None, None) => true,
                (None, Some(_)) => false,
            };
            assert!(equal, "{v}: {got:?}, want {want:?}");
        }
    }

    #[test]
    fn where_the_two_read_alike_nothing_is_refused() {
        for v in [
            "443",
            "0",
            "-1",
            "0o443",
            "0x1bb",
            "08080",
            "1e3",
            "1.5",
            "true",
            "false",
            "null",
            "~",
            "web",
            "1:20",
            "2024-01-02",
            "https://idp.example.com/jwks",
        ] {
            assert!(
                first_divergence(&format!("a: {v}\n")).is_none(),
                "{v}: {}",
                first_divergence(&format!("a: {v}\n")).map_or(String::new(), |d| d.why)
            );
        }
        for v in [
            "0443", "-012", "+0443", "NULL", "Null", "yes", "on", "Y", "NO", "1_000", "0b101",
            "+0x1bb", ".inf",
        ] {
            assert!(first_divergence(&format!("a: {v}\n")).is_some(), "{v}");
        }
        // Keys too; tags other than !!str; quoted scalars never.
        assert!(first_divergence("yes: 1\n").is_some());
        assert!(first_divergence("a: !!int 0443\n").is_some());
        assert!(first_divergence("a: !!binary RkFJTF9PUEVO\n").is_some());
        assert!(first_divergence("a: !!str 0443\nb: '0443'\nc: \"yes\"\n").is_none());
    }

    #[test]
    fn emitted_strings_kubernetes_reads_otherwise_are_quoted() {
        let source = json!({"values": ["0o17", "1_000", "yes", "é", "NULL", "web"], "port": 443});
        // As the emitter writes it: keys in the map's order.
        let text = "port: 443\nvalues:\n- 0o17\n- 1_000\n- yes\n- é\n- NULL\n- web\n";
        let quoted = quote_divergent(text, &source);
        assert_eq!(
            quoted,
            "port: 443\nvalues:\n- \"0o17\"\n- \"1_000\"\n- \"yes\"\n- é\n- \"NULL\"\n- web\n"
        );
        assert!(first_divergence(&quoted).is_none());
        // Not the scalars of `source`: left as it is.
        assert_eq!(quote_divergent(text, &json!({"other": 1})), text);
    }
}
