//! `jwt-policy check`: JWTPolicy resources and WasmPlugin `pluginConfig`s against the filter's
//! own parser, reporting every error of a document, each with its JSON path.
//!
//! The parser stops at the first error; to find the next, `check` takes the offending member out
//! of a copy of the document and parses again (the member's parent when the same path fails
//! twice, e.g. a required field that is missing), until the copy parses or nothing more can be
//! taken out. Every error shown is the filter's own message for the document as written.

use std::fmt::Write as _;

use serde_json::Value;

use super::docs::{kind, load, name};
use crate::config::{self, ConfigError, Proxy};
use crate::policy::Phase;

/// At most this many errors per document.
const MAX_ERRORS: usize = 50;

/// One step of a JSON path as the parser writes it: `a.b`, `a[0]`, `a["k/ey"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

fn steps(path: &str) -> Option<Vec<Step>> {
    let mut out = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            rest = r;
        }
        if let Some(r) = rest.strip_prefix("[\"") {
            let end = r.find("\"]")?;
            out.push(Step::Key(r.get(..end)?.to_owned()));
            rest = r.get(end + 2..)?;
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Step::Index(r.get(..end)?.parse().ok()?));
            rest = r.get(end + 1..)?;
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            out.push(Step::Key(rest.get(..end)?.to_owned()));
            rest = rest.get(end..)?;
        }
    }
    Some(out)
}

/// Takes the member at `path` out of `doc`; false when there is none.
fn remove(doc: &mut Value, path: &[Step]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let mut node = doc;
    for step in parent {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(m)) => m.get_mut(k),
            (Step::Index(i), Value::Array(a)) => a.get_mut(*i),
            _ => None,
        };
        let Some(next) = next else {
            return false;
        };
        node = next;
    }
    match (last, node) {
        (Step::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        (Step::Index(i), Value::Array(a)) if *i < a.len() => {
            // keep the indices of the following items: replace by an empty object
            a.get_mut(*i)
                .map(|v| *v = Value::Object(Default::default()))
                .is_some()
        }
        _ => false,
    }
}

/// True when `ancestor` is `path` or contains it.
fn covers(ancestor: &[Step], path: &[Step]) -> bool {
    path.starts_with(ancestor)
}

/// Every error the parser finds in `doc`, in order, each with its path. An error about a member
/// this search itself changed (a provider left without keys once its `remote` was taken out) is
/// a consequence of the removal, not of the document: it is not reported.
fn all_errors(doc: &Value, proxy: Proxy) -> Vec<ConfigError> {
    let mut copy = doc.clone();
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut removed: Vec<Vec<Step>> = Vec::new();
    for _ in 0..MAX_ERRORS * 4 {
        if errors.len() >= MAX_ERRORS {
            break;
        }
        let Err(e) = config::parse_on(copy.to_string().as_bytes(), proxy) else {
            break;
        };
        let Some(mut path) = steps(&e.path) else {
            break;
        };
        let repeated = seen.contains(&e.path);
        let consequence = removed.iter().any(|r| covers(&path, r));
        if !repeated && !consequence {
            errors.push(e.clone());
        }
        seen.push(e.path.clone());
        if repeated {
            path.pop();
        }
        // Drop the member, or its parent when the member cannot be dropped (a missing field).
        while !path.is_empty() && !remove(&mut copy, &path) {
            path.pop();
        }
        if path.is_empty() {
            break;
        }
        removed.push(path);
    }
    errors
}

pub(crate) fn check(files: &[String], out: &mut String) -> Result<bool, String> {
    if files.is_empty() {
        return Err("check needs files (see `jwt-policy help`)".to_string());
    }
    let mut ok = true;
    for file in files {
        let docs = match load(file) {
            Ok(docs) => docs,
            Err(e) => {
                let _ = writeln!(out, "{e}");
                ok = false;
                continue;
            }
        };
        let mut checked = 0;
        for (i, doc) in docs.iter().enumerate() {
            // A WasmPlugin runs in an Istio proxy, whose routes carry no labels of ours.
            let (what, config, proxy) = match kind(doc) {
                "JWTPolicy" => ("JWTPolicy", doc.clone(), config::Proxy::Envoy),
                "WasmPlugin" => match doc.pointer("/spec/pluginConfig") {
                    Some(pc) => ("WasmPlugin pluginConfig", pc.clone(), config::Proxy::Istio),
                    None => continue,
                },
                _ => continue,
            };
            checked += 1;
            let mut errors = all_errors(&config, proxy);
            if what != "JWTPolicy" {
                errors.extend(wasmplugin_errors(doc));
            }
            for e in errors {
                let _ = writeln!(
                    out,
                    "{file}: document {} ({what} {}): {e}",
                    i + 1,
                    name(doc)
                );
                ok = false;
            }
        }
        if ok && checked > 0 {
            let _ = writeln!(out, "{file}: ok ({checked} checked)");
        } else if checked == 0 {
            let _ = writeln!(out, "{file}: no JWTPolicy or WasmPlugin");
        }
    }
    Ok(ok)
}

/// What the WasmPlugin around a valid `pluginConfig` must say for the filter to hold: fail
/// closed, run in the phase its `settings.phase` serves (a preAuthz policy after Istio's
/// authorization filters lets an AuthorizationPolicy read the client's own claim headers), and
/// no route selected by name on a sidecar's inbound side (review 4).
fn wasmplugin_errors(doc: &Value) -> Vec<ConfigError> {
    let spec = |p: &str| doc.pointer(&format!("/spec/{p}")).and_then(Value::as_str);
    let mut errors = Vec::new();
    let mut push = |path: &str, reason: String| {
        errors.push(ConfigError {
            path: path.to_owned(),
            reason,
        })
    };
    // Istio installs any other type as a network filter, where no HTTP request reaches it.
    if doc.pointer("/spec/type").is_some_and(|t| t != "HTTP") {
        push(
            "spec.type",
            format!(
                "{}: not HTTP (this filter is an HTTP filter: as another type no request would \
                 reach it)",
                doc.pointer("/spec/type")
                    .map(Value::to_string)
                    .unwrap_or_default()
            ),
        );
    }
    match (doc.pointer("/spec/failStrategy"), spec("failStrategy")) {
        (None, _) | (_, Some("FAIL_CLOSE")) => {}
        (_, Some("FAIL_OPEN")) => push(
            "spec.failStrategy",
            "FAIL_OPEN skips the filter whenever the module cannot load or configure, which \
             opens every route it guards: use FAIL_CLOSE"
                .to_owned(),
        ),
        (Some(other), _) => push(
            "spec.failStrategy",
            format!("{other}: not FAIL_CLOSE (the only value that never lets traffic through)"),
        ),
    }
    // The policies this instance holds, whatever the pluginConfig's shape (one spec, one
    // resource, or {policies, settings}); none when it does not load (reported above).
    let config = doc
        .pointer("/spec/pluginConfig")
        .and_then(|pc| config::parse_on(pc.to_string().as_bytes(), Proxy::Istio).ok());
    let policies = config.as_ref().map_or(&[][..], |c| c.policies.as_slice());
    let serves = config.as_ref().and_then(|c| c.settings.phase);
    // A preAuthz policy it enforces runs before Istio's authorization (AUTHZ); an instance of
    // postAuthz policies only, after it (STATS).
    let (wanted, why) = match serves {
        Some(Phase::PreAuthz) => (Some("AUTHZ"), "pluginConfig.settings.phase preAuthz"),
        Some(Phase::PostAuthz) => (Some("STATS"), "pluginConfig.settings.phase postAuthz"),
        None if policies.iter().any(|p| p.phase == Phase::PreAuthz) => {
            (Some("AUTHZ"), "preAuthz policies and no settings.phase")
        }
        None => (None, ""),
    };
    if let Some(wanted) = wanted
        && spec("phase") != Some(wanted)
    {
        push(
            "spec.phase",
            format!(
                "{} for {why}: the instance runs in phase {wanted} (render --istio writes it so; \
                 after Istio's authorization an AuthorizationPolicy would read the client's own \
                 claim headers)",
                spec("phase").unwrap_or("(none)")
            ),
        );
    }
    // Route names exist in the callers' sidecars and in gateways; anywhere else (SERVER, or no
    // mode: both sides) the inbound side refuses every request such a policy may govern.
    let client_only = doc
        .pointer("/spec/match")
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty() && m.iter().all(|x| x["mode"] == "CLIENT"));
    // An ingress or egress gateway (`istio: …gateway`) has CLIENT listeners only. (A Gateway
    // API gateway's `gateway-name` label is also a waypoint's, whose listeners are SERVER.)
    let modes: Vec<&str> = doc
        .pointer("/spec/match")
        .and_then(Value::as_array)
        .map(|m| {
            m.iter()
                .map(|x| x["mode"].as_str().unwrap_or("UNDEFINED"))
                .collect()
        })
        .unwrap_or_default();
    if istio_gateway_label(doc) && !modes.is_empty() && modes.iter().all(|m| *m == "SERVER") {
        push("spec.match", super::render::GATEWAY_SERVER.to_owned());
    }
    if !client_only
        && !targets_a_gateway(doc)
        && let Some(p) = policies.iter().find(|p| p.names_routes())
    {
        let mode = if doc.pointer("/spec/match").is_some() {
            "SERVER or UNDEFINED"
        } else {
            "none: both sides"
        };
        push(
            "spec.match",
            super::render::route_names_on_inbound(&p.name, mode),
        );
    }
    errors
}

/// The WasmPlugin is for a gateway: a `Gateway` target, or the labels Istio's gateways carry.
fn targets_a_gateway(doc: &Value) -> bool {
    let refs = [doc.pointer("/spec/targetRef")]
        .into_iter()
        .flatten()
        .chain(
            doc.pointer("/spec/targetRefs")
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        );
    refs.into_iter().any(|r| r["kind"] == "Gateway") || labels_a_gateway(doc)
}

/// The WasmPlugin's selector picks a gateway (or an ambient waypoint: Gateway API gateways
/// and waypoints both carry `gateway-name`) by the labels Istio's carry.
fn labels_a_gateway(doc: &Value) -> bool {
    let labels = || {
        doc.pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
    };
    istio_gateway_label(doc)
        || labels().is_some_and(|l| l.contains_key("gateway.networking.k8s.io/gateway-name"))
}

/// The selector's `istio: …gateway` label: Istio's own ingress or egress gateway.
fn istio_gateway_label(doc: &Value) -> bool {
    doc.pointer("/spec/selector/matchLabels/istio")
        .and_then(Value::as_str)
        .is_some_and(|v| v.ends_with("gateway"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_split_as_the_parser_writes_them() {
        assert_eq!(
            steps("policies[0].spec.config.providers.dev-example.remote.url"),
            Some(vec![
                Step::Key("policies".into()),
                Step::Index(0),
                Step::Key("spec".into()),
                Step::Key("config".into()),
                Step::Key("providers".into()),
                Step::Key("dev-example".into()),
                Step::Key("remote".into()),
                Step::Key("url".into()),
            ])
        );
        assert_eq!(
            steps(r#"metadata.annotations["jwt-policy/dry-run"]"#),
            Some(vec![
                Step::Key("metadata".into()),
                Step::Key("annotations".into()),
                Step::Key("jwt-policy/dry-run".into()),
            ])
        );
    }

    #[test]
    fn every_error_of_a_document_is_reported() {
        let doc = json!({"policies": [
            {"config": {"providers": {
                "a": {"issuerr": "x", "local": {"inline": "not a key"}},
                "b": {"remote": {"url": "ftp://nope"}},
                "c": {"remote": {"url": "https://idp/jwks"}, "clockSkewSeconds": "sixty"}},
             "validationPolicy": "MAYBE"}},
            {"applyToRoutes": [{"route": {"nme": "r"}}], "config": {}},
        ], "settings": {"phase": "later"}});
        let errors: Vec<String> = all_errors(&doc, Proxy::Envoy)
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            errors,
            [
                "settings.phase",
                "policies[0].config.validationPolicy",
                "policies[0].config.providers.a.issuerr",
                "policies[0].config.providers.a.local.inline",
                "policies[0].config.providers.b.remote.url",
                "policies[0].config.providers.c.clockSkewSeconds",
                "policies[1].applyToRoutes[0].route.nme",
                "policies[1].config.providers",
            ]
        );
        let good = json!({"config": {"providers": {"a": {"remote": {"url": "https://idp/jwks"}}}}});
        assert!(all_errors(&good, Proxy::Envoy).is_empty());
    }

    #[test]
    fn a_wasmplugin_that_fails_open_runs_in_another_phase_or_names_routes_inbound_is_refused() {
        // Review 4: `check` read only pluginConfig and passed these.
        let named = json!({"applyToRoutes": [{"route": {"name": "httpbin-mesh"}}],
            "config": {"providers": {"a": {"remote": {"url": "https://idp/jwks"}}}}});
        let plugin = |fail: &str, phase: &str, mode: &str| {
            json!({"kind": "WasmPlugin", "spec": {"failStrategy": fail, "phase": phase,
                "match": [{"mode": mode}],
                "pluginConfig": {"policies": [named.clone()], "settings": {"phase": "preAuthz"}}}})
        };
        let paths = |doc: &Value| -> Vec<String> {
            wasmplugin_errors(doc).into_iter().map(|e| e.path).collect()
        };
        assert!(paths(&plugin("FAIL_CLOSE", "AUTHZ", "CLIENT")).is_empty());
        assert_eq!(
            paths(&plugin("FAIL_OPEN", "AUTHZ", "CLIENT")),
            ["spec.failStrategy"]
        );
        // Any other spelling too (review 8: a `!!binary` FAIL_OPEN was text here).
        for other in ["FAIL_CLOSED", "fail_open", "RkFJTF9PUEVO"] {
            assert_eq!(
                paths(&plugin(other, "AUTHZ", "CLIENT")),
                ["spec.failStrategy"],
                "{other}"
            );
        }
        assert_eq!(
            paths(&plugin("FAIL_CLOSE", "STATS", "CLIENT")),
            ["spec.phase"]
        );
        assert_eq!(
            paths(&plugin("FAIL_CLOSE", "AUTHZ", "SERVER")),
            ["spec.match"]
        );
        let mut post = plugin("FAIL_CLOSE", "AUTHZ", "CLIENT");
        post["spec"]["pluginConfig"]["policies"][0]["config"]["phase"] = json!({"postAuthz": {}});
        post["spec"]["pluginConfig"]["settings"]["phase"] = json!("postAuthz");
        assert_eq!(paths(&post), ["spec.phase"]);
        // Review 5: route names on both sides (no match, UNDEFINED, ports only), a pluginConfig of
        // one policy, a preAuthz policy in STATS without settings.phase; a gateway is fine.
        for m in [
            json!(null),
            json!([{"mode": "UNDEFINED"}]),
            json!([{"ports": [{"number": 80}]}]),
        ] {
            let mut both = plugin("FAIL_CLOSE", "AUTHZ", "CLIENT");
            both["spec"]["match"] = m.clone();
            if m.is_null() {
                both["spec"].as_object_mut().unwrap().remove("match");
            }
            assert_eq!(paths(&both), ["spec.match"], "match {m}");
            both["spec"]["selector"] = json!({"matchLabels": {"istio": "ingressgateway"}});
            assert!(paths(&both).is_empty(), "a gateway, match {m}");
        }
        let mut single = plugin("FAIL_CLOSE", "AUTHZ", "SERVER");
        single["spec"]["pluginConfig"] = named.clone();
        assert_eq!(paths(&single), ["spec.match"]);
        let mut unsettled = plugin("FAIL_CLOSE", "STATS", "CLIENT");
        unsettled["spec"]["pluginConfig"]
            .as_object_mut()
            .unwrap()
            .remove("settings");
        assert_eq!(paths(&unsettled), ["spec.phase"]);
        unsettled["spec"].as_object_mut().unwrap().remove("phase");
        assert_eq!(
            paths(&unsettled),
            ["spec.phase"],
            "no phase: after authorization"
        );
    }
}
