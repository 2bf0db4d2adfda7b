//! The host-side command: `check` policies and Istio manifests with the filter's exact parser,
//! `render` them as Istio `WasmPlugin`s or an Envoy filter block, mint a dev `token`.
//! Built only with the `cli` feature (`cargo build --release --features cli`).

use std::fmt::Write as _;

use serde_json::{Map, Value, json};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::config;
use crate::policy::{KeySource, Phase};

const USAGE: &str = "\
usage:
  jwt-policy check FILE...
      Validate JWTPolicy resources (and the pluginConfig of WasmPlugin resources) in YAML or
      JSON files with the filter's own rules. Exit 1 on any error.
  jwt-policy render --istio [--namespace NS] [--selector KEY=VALUE]... [--gateway] [--image URL]
                    [--mode SERVER|CLIENT|UNDEFINED] FILE...
      Istio WasmPlugin manifests, one per phase (preAuthz -> AUTHZ, postAuthz -> STATS). Sidecar
      plugins match SERVER traffic unless --mode says otherwise; gateway plugins match all.
  jwt-policy render --envoy [--wasm PATH] FILE...
      An Envoy http_filters block (the wasm filter, then the router) and a cluster per remote JWKS.
  jwt-policy token --key PEM_FILE | --secret TEXT [--alg ALG] [--kid KID] [--exp DURATION]
                   [--claim NAME=VALUE]... [--claims JSON]
      Sign a development token (RS256/384/512, ES256/384, EdDSA, HS256/384/512).
";

/// Runs the command; returns the exit code.
pub fn run(args: &[String], out: &mut String, err: &mut String) -> i32 {
    let result = match args.first().map(String::as_str) {
        Some("check") => check(args.get(1..).unwrap_or_default(), out),
        Some("render") => render(args.get(1..).unwrap_or_default(), out, err),
        Some("token") => crate::cli_token::token(args.get(1..).unwrap_or_default(), out),
        Some("help" | "--help" | "-h") => {
            out.push_str(USAGE);
            Ok(true)
        }
        _ => Err(format!("unknown command\n{USAGE}")),
    };
    match result {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            let _ = writeln!(err, "jwt-policy: {e}");
            2
        }
    }
}

/// A YAML node as JSON (keys become strings, as Kubernetes YAML is JSON-compatible).
fn to_json(y: &Yaml) -> Value {
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
fn to_yaml(v: &Value) -> Yaml {
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
fn load(path: &str) -> Result<Vec<Value>, String> {
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
    Ok(docs.iter().map(to_json).filter(|d| !d.is_null()).collect())
}

fn kind(doc: &Value) -> &str {
    doc.get("kind").and_then(Value::as_str).unwrap_or_default()
}

fn name(doc: &Value) -> String {
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

fn check(files: &[String], out: &mut String) -> Result<bool, String> {
    if files.is_empty() {
        return Err(format!("check needs files\n{USAGE}"));
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
            let (what, config) = match kind(doc) {
                "JWTPolicy" => ("JWTPolicy", doc.clone()),
                "WasmPlugin" => match doc.pointer("/spec/pluginConfig") {
                    Some(pc) => ("WasmPlugin pluginConfig", pc.clone()),
                    None => continue,
                },
                _ => continue,
            };
            checked += 1;
            if let Err(e) = config::parse(config.to_string().as_bytes()) {
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

/// Every JWTPolicy of the files, validated.
fn policies_of(files: &[String]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for file in files {
        for doc in load(file)? {
            if kind(&doc) != "JWTPolicy" {
                continue;
            }
            config::parse(doc.to_string().as_bytes())
                .map_err(|e| format!("{file}: JWTPolicy {}: {e}", name(&doc)))?;
            out.push(doc);
        }
    }
    if out.is_empty() {
        return Err("no JWTPolicy in the files".into());
    }
    Ok(out)
}

pub(crate) struct Flags {
    pub(crate) values: Vec<(String, String)>,
    switches: Vec<String>,
    files: Vec<String>,
}

fn flags(args: &[String], with_value: &[&str]) -> Result<Flags, String> {
    let mut f = Flags {
        values: Vec::new(),
        switches: Vec::new(),
        files: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if with_value.contains(&a.as_str()) {
            let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
            f.values.push((a.clone(), v.clone()));
        } else if a.starts_with("--") {
            f.switches.push(a.clone());
        } else {
            f.files.push(a.clone());
        }
    }
    Ok(f)
}

impl Flags {
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.values
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn has(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}

fn emit(docs: &[Value], out: &mut String) -> Result<(), String> {
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

fn render(args: &[String], out: &mut String, err: &mut String) -> Result<bool, String> {
    let f = flags(
        args,
        &["--namespace", "--selector", "--image", "--wasm", "--mode"],
    )?;
    if let Some(unknown) = f
        .switches
        .iter()
        .find(|s| !["--istio", "--envoy", "--gateway"].contains(&s.as_str()))
    {
        return Err(format!("unknown option {unknown}\n{USAGE}"));
    }
    let policies = policies_of(&f.files)?;
    let docs = match (f.has("--istio"), f.has("--envoy")) {
        (true, false) => {
            for p in &policies {
                let labelled = p
                    .pointer("/spec/applyToRoutes")
                    .and_then(Value::as_array)
                    .is_some_and(|routes| {
                        routes.iter().any(|r| {
                            r.pointer("/route/labels")
                                .and_then(Value::as_object)
                                .is_some_and(|l| !l.is_empty())
                        })
                    });
                if labelled {
                    let _ = writeln!(
                        err,
                        "warning: JWTPolicy {} selects routes by labels, which Istio cannot put in Envoy route metadata: \
                         on Istio such a policy selects nothing; select the VirtualService http route by `name` instead",
                        name(p)
                    );
                }
            }
            render_istio(&policies, &f)?
        }
        (false, true) => vec![render_envoy(&policies, &f)?],
        _ => return Err(format!("render needs one of --istio or --envoy\n{USAGE}")),
    };
    emit(&docs, out)?;
    Ok(true)
}

fn phase_of(policy: &Value) -> Result<(Phase, i64), String> {
    let c = config::parse(policy.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let p = c.policies.first().ok_or("no policy")?;
    Ok((p.phase, p.priority))
}

fn render_istio(policies: &[Value], f: &Flags) -> Result<Vec<Value>, String> {
    let gateway = f.has("--gateway");
    let namespace =
        f.value("--namespace")
            .unwrap_or(if gateway { "istio-system" } else { "default" });
    let mut labels = Map::new();
    for sel in f.all("--selector") {
        let (k, v) = sel
            .split_once('=')
            .ok_or_else(|| format!("--selector {sel}: want KEY=VALUE"))?;
        labels.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    if gateway && labels.is_empty() {
        labels.insert("istio".into(), json!("ingressgateway"));
    }
    let image = f
        .value("--image")
        .unwrap_or("oci://registry.example.com/jwt-policy-filter:0.1.0");
    let mut docs = Vec::new();
    for (phase, gloo, istio) in [
        (Phase::PreAuthz, "preAuthz", "AUTHZ"),
        (Phase::PostAuthz, "postAuthz", "STATS"),
    ] {
        let mut members = Vec::new();
        let mut lowest = i64::MAX;
        for p in policies {
            let (ph, priority) = phase_of(p)?;
            if ph == phase {
                members.push(p.clone());
                lowest = lowest.min(priority);
            }
        }
        if members.is_empty() {
            continue;
        }
        let mut spec = json!({
            "url": image,
            "phase": istio,
            // Gloo runs the lowest priority first, Istio the highest: negate.
            "priority": lowest.saturating_neg(),
            // An authentication filter that cannot load must deny, not open the mesh.
            "failStrategy": "FAIL_CLOSE",
            "pluginConfig": {"policies": members, "settings": {"phase": gloo}},
        });
        let mode = f
            .value("--mode")
            .unwrap_or(if gateway { "UNDEFINED" } else { "SERVER" });
        if !["SERVER", "CLIENT", "UNDEFINED"].contains(&mode) {
            return Err(format!("--mode {mode}: want SERVER, CLIENT or UNDEFINED"));
        }
        if let Some(spec) = spec.as_object_mut() {
            spec.insert("type".into(), json!("HTTP"));
            if !labels.is_empty() {
                spec.insert("selector".into(), json!({"matchLabels": labels}));
            }
            if mode != "UNDEFINED" {
                spec.insert("match".into(), json!([{"mode": mode}]));
            }
        }
        docs.push(json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": {"name": format!("jwt-policy-{}", gloo.to_ascii_lowercase()), "namespace": namespace},
            "spec": spec,
        }));
    }
    Ok(docs)
}

fn render_envoy(policies: &[Value], f: &Flags) -> Result<Value, String> {
    let wasm = f
        .value("--wasm")
        .unwrap_or("/etc/envoy/jwt_policy_filter.wasm");
    let plugin = json!({"policies": policies});
    let compiled = config::parse(plugin.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let mut clusters: Vec<Value> = Vec::new();
    for p in &compiled.policies {
        for provider in &p.providers {
            let KeySource::Remote(r) = &provider.keys else {
                continue;
            };
            if clusters.iter().any(|c| c["name"] == json!(r.cluster)) {
                continue;
            }
            let Some((scheme, host, port, _)) = config::split_url(&r.url) else {
                continue;
            };
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let mut cluster = json!({
                "name": r.cluster,
                "type": "STRICT_DNS",
                "connect_timeout": "5s",
                "load_assignment": {"cluster_name": r.cluster, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}]},
            });
            if scheme == "https" {
                let tls = json!({
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext", "sni": host},
                });
                if let Some(c) = cluster.as_object_mut() {
                    c.insert("transport_socket".into(), tls);
                }
            }
            clusters.push(cluster);
        }
    }
    Ok(json!({
        "http_filters": [
            {"name": "envoy.filters.http.wasm", "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": "jwt_policy",
                    "root_id": "jwt_policy_filter",
                    "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": plugin.to_string()},
                    "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": wasm}}},
                }}},
            {"name": "envoy.filters.http.router", "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
        ],
        "clusters": clusters,
    }))
}

/// Flags of a command that takes no files.
pub(crate) fn parse_flags(args: &[String], with_value: &[&str]) -> Result<Flags, String> {
    let f = flags(args, with_value)?;
    if let Some(extra) = f.files.first().or(f.switches.first()) {
        return Err(format!("unexpected argument {extra}\n{USAGE}"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (String::new(), String::new());
        let code = run(&args, &mut out, &mut err);
        (code, out, err)
    }

    fn temp(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("jwt-policy-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    #[test]
    fn checks_the_shipped_policy_and_names_the_path_of_an_error() {
        let (code, out, _) = run_args(&["check", "policies/dev-example.yaml"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("ok (1 checked)"));
        let broken = std::fs::read_to_string("policies/dev-example.yaml")
            .unwrap()
            .replace("issuer:", "issuerr:");
        let path = temp("broken.yaml", &broken);
        let (code, out, _) = run_args(&["check", &path]);
        assert_eq!(code, 1);
        assert!(out.contains("JWTPolicy httpbin/jwt-policy): spec.config.providers.dev-example.issuerr: unknown field"), "{out}");
    }

    #[test]
    fn renders_one_wasmplugin_per_phase_with_negated_priority() {
        let post = std::fs::read_to_string("policies/dev-example.yaml")
            .unwrap()
            .replace("name: jwt-policy", "name: late")
            .replace("preAuthz: {}", "postAuthz:\n        priority: 3");
        let path = temp(
            "two.yaml",
            &format!(
                "{}\n---\n{post}",
                std::fs::read_to_string("policies/dev-example.yaml").unwrap()
            ),
        );
        let (code, out, err) = run_args(&[
            "render",
            "--istio",
            "--namespace",
            "httpbin",
            "--selector",
            "app=httpbin",
            &path,
        ]);
        assert_eq!(code, 0, "{err}");
        let docs: Vec<Value> = YamlLoader::load_from_str(&out)
            .unwrap()
            .iter()
            .map(to_json)
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0]["spec"]["phase"], "AUTHZ");
        assert_eq!(docs[1]["spec"]["phase"], "STATS");
        assert_eq!(docs[1]["spec"]["priority"], -3);
        assert_eq!(docs[0]["spec"]["failStrategy"], "FAIL_CLOSE");
        assert_eq!(docs[0]["spec"]["selector"]["matchLabels"]["app"], "httpbin");
        assert_eq!(docs[0]["spec"]["match"][0]["mode"], "SERVER");
        assert_eq!(docs[0]["spec"]["type"], "HTTP");
        let config = docs[0]["spec"]["pluginConfig"].to_string();
        assert_eq!(
            crate::config::parse(config.as_bytes())
                .unwrap()
                .settings
                .phase,
            Some(Phase::PreAuthz)
        );
    }

    #[test]
    fn renders_an_envoy_block_with_clusters_for_remote_keys() {
        let remote = r#"{"kind": "JWTPolicy", "metadata": {"name": "r"}, "spec": {"config": {"providers": {"idp": {"remote": {"url": "https://idp.example.com/jwks"}}}}}}"#;
        let path = temp("remote.json", remote);
        let (code, out, err) = run_args(&["render", "--envoy", "--wasm", "/x.wasm", &path]);
        assert_eq!(code, 0, "{err}");
        let doc = to_json(&YamlLoader::load_from_str(&out).unwrap()[0]);
        assert_eq!(doc["clusters"][0]["name"], "outbound|443||idp.example.com");
        assert_eq!(
            doc["clusters"][0]["transport_socket"]["typed_config"]["sni"],
            "idp.example.com"
        );
        let value = doc["http_filters"][0]["typed_config"]["config"]["configuration"]["value"]
            .as_str()
            .unwrap();
        assert!(crate::config::parse(value.as_bytes()).is_ok());
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(run_args(&["frobnicate"]).0, 2);
        assert_eq!(run_args(&["render", "policies/dev-example.yaml"]).0, 2);
        assert_eq!(run_args(&["check"]).0, 2);
    }
}
