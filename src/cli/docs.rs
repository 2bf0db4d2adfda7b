//! Policy documents: YAML or JSON files in, JSON values out, and YAML out again.

use serde_json::Value;
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use super::yaml11;
use crate::config;

/// A YAML node as JSON (keys become strings, as Kubernetes YAML is JSON-compatible).
pub(crate) fn to_json(y: &Yaml) -> Value {
    if let Some(scalar) = yaml11::scalar_json(y) {
        return scalar;
    }
    match y {
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
        // Scalars are above; an alias is resolved by the loader; a tag yaml-rust2 cannot read
        // (BadValue) is refused before (`yaml11::first_divergence`).
        _ => Value::Null,
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

/// Every document of a YAML or JSON file; the items of a `List` (`kind: List`, `…List`: what
/// `kubectl get -o yaml` writes, and `kubectl apply` applies item by item). Refused where
/// Kubernetes would read the file otherwise: a member repeated in one JSON object (kept last
/// here, while a reviewer reads the first), a YAML merge key, a YAML tag or scalar that YAML 1.1
/// resolves otherwise ([`yaml11`]).
pub(crate) fn load(path: &str) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
    if let Some(why) = yaml11::unsplittable(&text) {
        return Err(format!(
            "{path}: {why}: what it checks would not be what runs"
        ));
    }
    if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
        let v = crate::json::parse_config_json(text.as_bytes())
            .map_err(|e| format!("{path}: {e}: what it checks would not be what runs"))?;
        return Ok(items(vec![v]));
    }
    let docs =
        YamlLoader::load_from_str(&text).map_err(|e| format!("{path}: not YAML or JSON: {e}"))?;
    for doc in &docs {
        if let Some(at) = non_string_key(doc, "") {
            return Err(format!(
                "{path}: {at}: a key that is not a string (a number, a boolean, null), which \
                 Kubernetes spells otherwise when it makes JSON of it: quote it"
            ));
        }
        merge_key(doc, "").map_or(Ok(()), |at| {
            Err(format!(
                "{path}: {at}: a YAML merge key `<<`, which Kubernetes applies (YAML 1.1) and \
                 this command would read as a plain key: what it checks would not be what runs; \
                 write the merged members out"
            ))
        })?;
    }
    if let Some(d) = yaml11::first_divergence(&text) {
        return Err(format!(
            "{path}: line {} column {}: `{}`: {}: what it checks would not be what runs; quote \
             a string, write a number in decimal without a leading zero, a boolean as \
             true/false, null as null",
            d.at.line(),
            d.at.col() + 1,
            d.text,
            d.why
        ));
    }
    Ok(items(
        docs.iter().map(to_json).filter(|d| !d.is_null()).collect(),
    ))
}

/// The documents, each list replaced by its items, as kubectl opens them: any object with an
/// `items` array (whatever its kind; the member's name matched in any case, as Go's JSON does),
/// lists inside lists, and an item with neither `kind` nor `apiVersion` taking the list's kind
/// without `List` and its `apiVersion`.
fn items(docs: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for doc in docs {
        let Value::Object(mut m) = doc else {
            out.push(doc);
            continue;
        };
        let key = m
            .iter()
            .find(|(k, v)| k.eq_ignore_ascii_case("items") && v.is_array())
            .map(|(k, _)| k.clone());
        let Some(Value::Array(list)) = key.and_then(|k| m.remove(&k)) else {
            out.push(Value::Object(m));
            continue;
        };
        let list_kind = m.get("kind").and_then(Value::as_str).unwrap_or_default();
        let item_kind = list_kind.strip_suffix("List").filter(|k| !k.is_empty());
        let api = m.get("apiVersion").cloned();
        let list = list.into_iter().map(|mut item| {
            if let Value::Object(i) = &mut item
                && !i.contains_key("kind")
                && !i.contains_key("apiVersion")
                && let (Some(k), Some(a)) = (item_kind, &api)
            {
                i.insert("kind".into(), Value::String(k.to_owned()));
                i.insert("apiVersion".into(), a.clone());
            }
            item
        });
        out.extend(items(list.collect()));
    }
    out
}

/// Where the first key that is not a string is (a JSON-path-like location), if any.
fn non_string_key(y: &Yaml, at: &str) -> Option<String> {
    match y {
        Yaml::Hash(h) => h.iter().find_map(|(k, v)| match k {
            Yaml::String(key) => non_string_key(
                v,
                &if at.is_empty() {
                    key.clone()
                } else {
                    format!("{at}.{key}")
                },
            ),
            other => Some(format!(
                "{}{:?}",
                if at.is_empty() {
                    String::new()
                } else {
                    format!("{at}.")
                },
                other
            )),
        }),
        Yaml::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| non_string_key(v, &format!("{at}[{i}]"))),
        _ => None,
    }
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
        let text = yaml11::escape_breaks(&yaml11::quote_divergent(&text, doc));
        if let Some(why) = yaml11::unsplittable(&text) {
            return Err(format!(
                "cannot write YAML Kubernetes reads as written: {why}"
            ));
        }
        if let Some(d) = yaml11::first_divergence(&text) {
            return Err(format!(
                "cannot write `{}` so Kubernetes reads it as written: {}",
                d.text, d.why
            ));
        }
        out.push_str(&text);
        out.push('\n');
    }
    Ok(())
}

#[cfg(test)]
mod review8_tests {
    //! Review 8: YAML 1.1 (Kubernetes: sigs.k8s.io/yaml's goyaml.v2 `resolve`) against YAML 1.2
    //! (this command: yaml-rust2), where `check` approves a file Kubernetes applies otherwise.
    use super::*;

    pub(super) fn temp(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("jwt-policy-review8-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    pub(super) fn check(path: &str) -> (bool, String) {
        let mut out = String::new();
        let ok = crate::cli::check::check(&[path.to_owned()], &mut out).unwrap_or(false);
        (ok, out)
    }

    fn policy(config_extra: &str, port: &str) -> String {
        format!(
            "kind: JWTPolicy\nmetadata: {{name: p, namespace: ns}}\nspec:\n  \
             applyToDestinations:\n  - selector: {{name: web}}\n    port:\n      number: {port}\n  \
             config:\n{config_extra}    providers:\n      p:\n        \
             issuer: https://idp.example.com\n        \
             remote: {{url: 'https://idp.example.com/jwks'}}\n"
        )
    }

    /// Finding 5a. `ambiguous_number` looks only at untagged plain scalars: `!!int 0443` is 443
    /// here (yaml-rust2 parses a `!!int` scalar with `str::parse`) and 291 to Kubernetes
    /// (goyaml.v2 resolves `!!int` with `strconv.ParseInt(s, 0, 64)`: a leading 0 is octal).
    #[test]
    fn review8_a_tagged_int_with_a_leading_zero_passes_the_check() {
        let path = temp("tagged-int.yaml", &policy("", "!!int 0443"));
        let docs = load(&path);
        assert!(
            docs.is_err(),
            "approved, port read as {:?} (Kubernetes: 291)",
            docs.map(|d| d[0]
                .pointer("/spec/applyToDestinations/0/port/number")
                .cloned())
        );
    }

    /// Finding 5b. A tagged scalar yaml-rust2 cannot read (`!!bool yes`, `!!int 0x1bb`,
    /// `!!int 1_000`) becomes `BadValue`, which `to_json` turns into `null`: absent to the
    /// filter's parser. Kubernetes reads `!!bool yes` as true. `allowMissingOrFailed: !!bool yes`
    /// is approved as REQUIRE_VALID; what runs is ALLOW_MISSING_OR_FAILED (every request passes).
    #[test]
    fn review8_a_tagged_yaml_1_1_bool_is_silently_absent() {
        let path = temp(
            "tagged-bool.yaml",
            &policy("    allowMissingOrFailed: !!bool yes\n", "443"),
        );
        let (ok, out) = check(&path);
        assert!(
            !ok,
            "check approved a policy Kubernetes applies with allowMissingOrFailed: true: {out}"
        );
    }

    /// Finding 5c. `Null` and `NULL` are null to Kubernetes (YAML 1.1 and goyaml.v2) and strings
    /// to yaml-rust2, and the filter's parser takes a null member as an absent one: check
    /// approves `issuer: NULL` (the token's iss must be "NULL"); what runs checks no issuer.
    #[test]
    fn review8_a_yaml_1_1_null_spelling_is_a_string_here() {
        let text = policy("", "443").replace("issuer: https://idp.example.com", "issuer: NULL");
        let path = temp("null.yaml", &text);
        let (ok, out) = check(&path);
        assert!(
            !ok,
            "check approved issuer: NULL, null (no issuer check) to Kubernetes: {out}"
        );
    }

    /// Finding 6. A YAML `kind: List` (what `kubectl get -o yaml` writes, and `kubectl apply`
    /// applies item by item) is not opened (only a JSON List is): its WasmPlugin with
    /// `failStrategy: FAIL_OPEN` is never looked at, and check exits 0.
    #[test]
    fn review8_a_yaml_list_is_not_checked_and_passes() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: extensions.istio.io/v1alpha1\n  \
                    kind: WasmPlugin\n  metadata: {name: jwt, namespace: istio-system}\n  spec:\n    \
                    failStrategy: FAIL_OPEN\n    phase: AUTHZ\n    pluginConfig:\n      \
                    settings: {phase: preAuthz}\n      policies:\n      - spec:\n          \
                    config:\n            providers:\n              p:\n                \
                    remote: {url: 'https://idp.example.com/jwks'}\n";
        let path = temp("list.yaml", text);
        let (ok, out) = check(&path);
        assert!(
            !ok,
            "a FAIL_OPEN WasmPlugin in a YAML List passed check: {out}"
        );
    }

    /// Finding 6b. `failStrategy` is compared with the one spelling `FAIL_OPEN`; a `!!binary`
    /// scalar (base64 of `FAIL_OPEN`) is that text here and FAIL_OPEN to Kubernetes (goyaml.v2
    /// decodes `!!binary`); any other unknown value passes too.
    #[test]
    fn review8_a_binary_tagged_fail_open_passes_the_check() {
        let text = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n\
                    metadata: {name: jwt, namespace: istio-system}\nspec:\n  \
                    failStrategy: !!binary RkFJTF9PUEVO\n  phase: AUTHZ\n  pluginConfig:\n    \
                    settings: {phase: preAuthz}\n    policies:\n    - spec:\n        \
                    config:\n          providers:\n            p:\n              \
                    remote: {url: 'https://idp.example.com/jwks'}\n";
        let path = temp("binary.yaml", text);
        let (ok, out) = check(&path);
        assert!(
            !ok,
            "failStrategy !!binary RkFJTF9PUEVO (FAIL_OPEN) passed check: {out}"
        );
    }

    /// Finding 7. `emit` (render's output) leaves strings unquoted that YAML 1.1 reads as
    /// numbers: yaml-rust2's `need_quotes` knows `0x…` and what Rust parses as a number, not
    /// `0o…`, `0b…`, `1_000` or `+0x…` (goyaml.v2: `strconv.ParseInt(s, 0, 64)` after removing
    /// `_`). A claim value "1_000" rendered into a WasmPlugin arrives at the filter as the
    /// number 1000 (`expected a string`: the plugin's configuration is refused).
    #[test]
    fn review8_render_leaves_yaml_1_1_numbers_unquoted() {
        let mut out = String::new();
        let values = ["0o17", "0b101", "1_000", "+0x1bb"];
        emit(&[serde_json::json!({ "values": values })], &mut out).unwrap();
        let unquoted: Vec<&str> = values
            .iter()
            .copied()
            .filter(|v| out.contains(&format!("- {v}\n")))
            .collect();
        assert!(
            unquoted.is_empty(),
            "emitted bare, numbers to Kubernetes: {unquoted:?}\n{out}"
        );
    }

    /// Finding 8. A JSON file goes through `serde_json::Value` first, which keeps the LAST of
    /// a repeated member silently; the filter's own refusal of repeated members (review 4: "a
    /// reviewer read REQUIRE_VALID, the filter ran ALLOW_MISSING_OR_FAILED") then never sees
    /// them, since the document is re-serialized. The same document in YAML is refused
    /// (yaml-rust2: duplicated key). `check` approves the JSON one.
    #[test]
    fn review8_a_json_file_with_a_repeated_member_passes_the_check() {
        let text = r#"{"kind": "JWTPolicy", "metadata": {"name": "p", "namespace": "ns"},
  "spec": {"config": {"validationPolicy": "REQUIRE_VALID",
    "providers": {"p": {"remote": {"url": "https://idp.example.com/jwks"}}},
    "validationPolicy": "ALLOW_MISSING_OR_FAILED"}}}"#;
        let path = temp("repeated.json", text);
        let (ok, out) = check(&path);
        assert!(
            !ok,
            "approved; what it read: {:?}; {out}",
            load(&path).map(|d| d[0].pointer("/spec/config/validationPolicy").cloned())
        );
    }

    /// What held: duplicated keys are refused by yaml-rust2; `yes`/`on`/`y` where a boolean is
    /// due are strings and refused; `0443`, `-012` refused; `!!str 0443` is a string
    /// on both sides (the filter parses it as 443 on both).
    #[test]
    fn review8_held_duplicates_booleans_and_leading_zeros() {
        let dup = policy(
            "    validationPolicy: REQUIRE_VALID\n    validationPolicy: ALLOW_MISSING_OR_FAILED\n",
            "443",
        );
        assert!(load(&temp("dup.yaml", &dup)).is_err());
        for b in ["yes", "on", "y", "Y", "NO", "off"] {
            let text = policy(&format!("    allowMissingOrFailed: {b}\n"), "443");
            assert!(!check(&temp("b.yaml", &text)).0, "{b}");
        }
        for n in ["0443", "-012", "+0443"] {
            assert!(load(&temp("n.yaml", &policy("", n))).is_err(), "{n}");
        }
        // (Fixed with this review: `0o443` is 291 to both, Go's ParseInt reading `0o` too.)
        assert!(load(&temp("n.yaml", &policy("", "0o443"))).is_ok());
        assert!(check(&temp("s.yaml", &policy("", "!!str 0443"))).0);
    }
}

#[cfg(test)]
mod review9_tests {
    //! Review 9: YAML files `check` approves that Kubernetes (sigs.k8s.io/yaml on goyaml.v2)
    //! applies with another meaning, and `render` output it reads otherwise.
    use super::review8_tests::{check, temp};
    use super::*;

    const WASMPLUGIN: &str = "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\n\
        metadata: {name: jwt, namespace: istio-system}\nspec:\n  \
        phase: AUTHZ # reviewed COMMENT\n  pluginConfig:\n    settings: {phase: preAuthz}\n    \
        policies:\n    - spec:\n        config:\n          providers:\n            p:\n              \
        remote: {url: 'https://idp.example.com/jwks'}\n";

    /// Finding 1 (critical). goyaml (every version: `is_break`) ends a line, and so a comment,
    /// at NEL (U+0085), LS (U+2028) and PS (U+2029), YAML 1.1 line breaks; yaml-rust2 (YAML 1.2)
    /// only at CR/LF, so for it the rest of the line is still the comment. A comment ending
    /// in `<LS>  failStrategy: FAIL_OPEN` is nothing here and a member of `spec` to Kubernetes:
    /// `check` approves a WasmPlugin that Kubernetes applies FAIL_OPEN (and likewise a
    /// JWTPolicy with a hidden `allowMissingOrFailed: true`).
    #[test]
    fn review9_a_yaml_1_1_line_break_in_a_comment_hides_members_from_check() {
        for brk in ['\u{2028}', '\u{2029}', '\u{85}'] {
            let text = WASMPLUGIN.replace(
                "COMMENT\n",
                &format!("COMMENT{brk}  failStrategy: FAIL_OPEN\n"),
            );
            let path = temp("ls-comment.yaml", &text);
            let (ok, out) = check(&path);
            assert!(
                !ok,
                "U+{:04X}: approved; Kubernetes reads spec.failStrategy: FAIL_OPEN: {out}",
                brk as u32
            );
        }
    }

    /// Finding 1b. The same in a JWTPolicy: `# owner: team-a<LS>    allowMissingOrFailed: true`.
    #[test]
    fn review9_a_line_separator_in_a_comment_hides_allow_missing_or_failed() {
        let text = "kind: JWTPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  config:\n    \
                    # owner: team-a\u{2028}    allowMissingOrFailed: true\n    providers:\n      \
                    p:\n        issuer: https://idp.example.com\n        \
                    remote: {url: 'https://idp.example.com/jwks'}\n";
        let path = temp("ls-policy.yaml", text);
        let docs = load(&path);
        assert!(
            docs.is_err(),
            "loaded as {:?}; Kubernetes reads spec.config.allowMissingOrFailed: true",
            docs.map(|d| d[0].pointer("/spec/config").cloned())
        );
    }

    /// Finding 2. `render` (emit) writes a string holding U+2028/U+2029/U+0085 as a plain or
    /// double-quoted scalar with the character raw. goyaml folds a raw NEL inside a quoted
    /// scalar into a space (read_line turns it into `\n`), and ends a plain scalar's line at
    /// any of the three. What Kubernetes reads is not the string rendered.
    #[test]
    fn review9_render_writes_yaml_1_1_line_breaks_raw() {
        for s in [
            "https://idp.example.com/\u{85}a",
            "a\u{2028}b",
            "x\u{2029}y",
        ] {
            let mut out = String::new();
            emit(&[serde_json::json!({ "issuer": s })], &mut out).unwrap();
            assert!(
                !out.contains(['\u{85}', '\u{2028}', '\u{2029}']),
                "{s:?} emitted with a raw YAML 1.1 line break: {out:?}"
            );
        }
    }

    /// Finding 3. Map keys: to_json turns `1` and `'1'` (and `true` / `'true'`) into the same
    /// JSON member silently (the last wins), the case refused for a JSON file (review 8,
    /// finding 8); Kubernetes keeps both Go map keys until its own JSON conversion, where which
    /// one survives follows Go's map order. Also `1.0:` is the member "1.0" here and "1" to
    /// Kubernetes (strconv.FormatFloat(1, 'g', -1, 32)), `1e3:` "1e3" here and "1000" there: the
    /// scalar comparison only checks numbers for equal values, not a key's spelling.
    #[test]
    fn review9_numeric_and_colliding_keys_are_not_refused() {
        let collide = temp("collide.yaml", "a:\n  '1': first\n  1: second\n");
        let spelled = temp("float-key.yaml", "a:\n  1.0: first\n  1e3: second\n");
        let (c, s) = (load(&collide), load(&spelled));
        assert!(
            c.is_err() && s.is_err(),
            "'1' and 1 read as one member: {c:?}; 1.0 and 1e3 read as {s:?} (Kubernetes: \"1\" \
             and \"1000\")"
        );
    }

    /// Finding 6. kubectl decodes every document with an `items` member as a list
    /// (apimachinery's unstructuredJSONScheme.decode: `if det.Items != nil`, whatever the
    /// kind; Go's encoding/json matches `Items`/`ITEMS` too) and its FlattenListVisitor opens
    /// lists inside lists. `items()` opens only a kind ending in `List`, one level deep, with
    /// the member spelled `items`, and checks an item only by its own `kind`: each of these
    /// applies a FAIL_OPEN WasmPlugin that `check` never looks at ("no JWTPolicy or
    /// WasmPlugin", exit 0). (`Items` depends on the apimachinery version's JSON matching.)
    #[test]
    fn review9_lists_kubectl_opens_and_check_does_not() {
        let plugin = "  - apiVersion: extensions.istio.io/v1alpha1\n    kind: WasmPlugin\n    \
                      metadata: {name: jwt, namespace: istio-system}\n    spec:\n      \
                      failStrategy: FAIL_OPEN\n      phase: AUTHZ\n      pluginConfig:\n        \
                      settings: {phase: preAuthz}\n        policies:\n        - spec:\n            \
                      config:\n              providers:\n                p:\n                  \
                      remote: {url: 'https://idp.example.com/jwks'}\n";
        let nested = format!(
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  {}",
            plugin.replace("\n  ", "\n    ")
        );
        let cases = [
            (
                "other-kind",
                format!("apiVersion: v1\nkind: Bundle\nitems:\n{plugin}"),
            ),
            (
                "capital-items",
                format!("apiVersion: v1\nkind: List\nItems:\n{plugin}"),
            ),
            ("nested", nested),
            // decodeToList: an item with neither kind nor apiVersion takes the list's kind
            // without `List` and its apiVersion: this item is a WasmPlugin to kubectl.
            (
                "kindless-item",
                format!(
                    "apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPluginList\nitems:\n{}",
                    plugin.replace(
                        "  - apiVersion: extensions.istio.io/v1alpha1\n    kind: WasmPlugin\n    ",
                        "  - "
                    )
                ),
            ),
        ];
        let mut approved = Vec::new();
        for (name, text) in &cases {
            assert!(
                YamlLoader::load_from_str(text).is_ok(),
                "{name}: not YAML:\n{text}"
            );
            let (ok, out) = check(&temp(&format!("{name}.yaml"), text));
            if ok {
                approved.push(format!("{name}: {out}"));
            }
        }
        assert!(approved.is_empty(), "approved: {approved:#?}");
    }

    /// Finding 7 (low). `same` compares two numbers as f64: `09007199254740993` is the integer
    /// 9007199254740993 here (Rust parses leading zeros) and, to goyaml.v2, octal that fails
    /// (a 9), so yamlStyleFloat: the float 9007199254740992. Both are 9007199254740992.0 as f64,
    /// so nothing is refused though the two JSON values differ.
    #[test]
    fn review9_numbers_equal_only_as_f64_pass() {
        let text = "a: 09007199254740993\n";
        assert!(
            yaml11::first_divergence(text).is_some(),
            "read here as {:?}; Kubernetes: 9007199254740992",
            YamlLoader::load_from_str(text).map(|d| to_json(&d[0]))
        );
    }

    /// Finding 8. In a flow collection goyaml (libyaml: `'?' && (flow_level > 0 ||
    /// is_blankz(next))`) takes a `?` starting an entry for the explicit-key indicator, even
    /// with no space after it; yaml-rust2 (YAML 1.2) reads `?x` as the plain scalar "?x".
    /// `annotations: {?jwt-policy/dry-run: "true"}` is an unknown annotation here (check
    /// approves an ENFORCING policy) and `jwt-policy/dry-run: "true"` to Kubernetes: the policy
    /// deployed never denies.
    #[test]
    fn review9_a_flow_key_with_a_question_mark_is_another_key_to_kubernetes() {
        let text = "apiVersion: security.policy.gloo.solo.io/v2\nkind: JWTPolicy\nmetadata:\n  \
                    name: p\n  namespace: ns\n  annotations: {?jwt-policy/dry-run: \"true\"}\n\
                    spec:\n  config:\n    providers:\n      p:\n        \
                    issuer: https://idp.example.com\n        \
                    remote: {url: 'https://idp.example.com/jwks'}\n";
        let path = temp("question.yaml", text);
        let (ok, out) = check(&path);
        let docs = load(&path);
        let dry = docs.as_ref().ok().and_then(|d| {
            crate::config::parse_on(d[0].to_string().as_bytes(), crate::config::Proxy::Istio)
                .ok()
                .map(|c| c.policies[0].dry_run)
        });
        assert!(
            !ok,
            "approved as dry_run = {dry:?}; annotations read {:?}; Kubernetes: \
             jwt-policy/dry-run: \"true\" (never denies): {out}",
            docs.map(|d| d[0].pointer("/metadata/annotations").cloned())
        );
    }

    /// Finding 9 (low). `render --istio` writes `type: HTTP`; `check` does not look at
    /// `spec.type`: a WasmPlugin with `type: NETWORK` (Istio installs it as a network filter,
    /// where no HTTP request reaches the filter's request callback) is approved.
    #[test]
    fn review9_a_network_type_wasmplugin_is_approved() {
        let text = WASMPLUGIN.replace("  phase: AUTHZ", "  type: NETWORK\n  phase: AUTHZ");
        let (ok, out) = check(&temp("network.yaml", &text));
        assert!(!ok, "type: NETWORK approved: {out}");
    }

    /// Finding 10 (low). kubectl cuts a file into documents only at lines starting `---`
    /// (apimachinery's YAMLReader) and hands each piece to sigs.k8s.io/yaml, whose goyaml.v2
    /// `Unmarshal` decodes the FIRST document of the piece only. After a `...` end marker, a
    /// second document needs no `---` to yaml-rust2: `check` validates the JWTPolicy after
    /// `...`, kubectl applies the ConfigMap before it and silently drops the policy.
    #[test]
    fn review9_a_document_after_an_end_marker_is_checked_but_never_applied() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: ns}\n...\n\
                    kind: JWTPolicy\nmetadata: {name: p, namespace: ns}\nspec:\n  config:\n    \
                    providers:\n      p:\n        issuer: https://idp.example.com\n        \
                    remote: {url: 'https://idp.example.com/jwks'}\n";
        let path = temp("end-marker.yaml", text);
        let docs = load(&path);
        let (ok, out) = check(&path);
        assert!(
            !ok,
            "approved ({} documents read: {:?}); kubectl applies only the ConfigMap: {out}",
            docs.as_ref().map_or(0, Vec::len),
            docs.map(|d| d.iter().map(|x| kind(x).to_owned()).collect::<Vec<_>>())
        );
    }

    /// Finding 11 (critical). apimachinery's YAMLReader (what kubectl splits a file with)
    /// starts a new document at every line that begins with `---` and whose rest, trimmed, is
    /// empty or a `#` comment: `---#:` is a separator to kubectl. To yaml-rust2 `---#` is no
    /// document marker (no blank after `---`) but a plain scalar, here a key of the first
    /// document. The indented WasmPlugin under it is that key's value for `check` (a ConfigMap
    /// with one more member: "no JWTPolicy or WasmPlugin", exit 0) and, to kubectl, a second
    /// document of its own: a FAIL_OPEN WasmPlugin applied.
    #[test]
    fn review9_a_separator_kubectl_splits_at_hides_a_document_from_check() {
        let plugin: String = WASMPLUGIN
            .replace(
                "phase: AUTHZ # reviewed COMMENT",
                "failStrategy: FAIL_OPEN\n  phase: AUTHZ",
            )
            .lines()
            .map(|l| format!("  {l}\n"))
            .collect();
        let text = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c, namespace: ns}}\n---#:\n{plugin}"
        );
        let path = temp("hidden.yaml", &text);
        let docs = load(&path);
        let (ok, out) = check(&path);
        assert!(
            !ok,
            "approved; read as {:?}; kubectl applies a second document, the FAIL_OPEN \
             WasmPlugin: {out}",
            docs.map(|d| d.iter().map(|x| kind(x).to_owned()).collect::<Vec<_>>())
        );
    }
}
