//! `jwt-policy render`: Istio `WasmPlugin`s (one per phase) or an Envoy filter block with a
//! cluster per remote JWKS.

use serde_json::{Map, Value, json};

use super::docs::{emit, policies_of};
use super::flags::{Flags, flags};
use crate::config;
use crate::policy::{KeySource, Phase};

pub(crate) fn render(args: &[String], out: &mut String) -> Result<bool, String> {
    let f = flags(
        args,
        &[
            "--namespace",
            "--selector",
            "--image",
            "--wasm",
            "--mode",
            "--ca-file",
        ],
    )?;
    if let Some(unknown) = f
        .switches
        .iter()
        .find(|s| !["--istio", "--envoy", "--gateway"].contains(&s.as_str()))
    {
        return Err(format!("unknown option {unknown} (see `jwt-policy help`)"));
    }
    let docs = match (f.has("--istio"), f.has("--envoy")) {
        (true, false) => render_istio(&policies_of(&f.files, config::Proxy::Istio)?, &f)?,
        (false, true) => vec![render_envoy(
            &policies_of(&f.files, config::Proxy::Envoy)?,
            &f,
        )?],
        _ => {
            return Err(
                "render needs one of --istio or --envoy (see `jwt-policy help`)".to_string(),
            );
        }
    };
    emit(&docs, out)?;
    Ok(true)
}

/// Debian's and Ubuntu's trust bundle (the one the official Envoy images carry).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How a certificate names `host`: an IP address SAN or a DNS name SAN.
fn san_type(host: &str) -> &'static str {
    if host.parse::<std::net::IpAddr>().is_ok() {
        "IP_ADDRESS"
    } else {
        "DNS"
    }
}

pub(crate) fn phase_of(policy: &Value) -> Result<(Phase, i64), String> {
    let c = config::parse(policy.to_string().as_bytes()).map_err(|e| e.to_string())?;
    let p = c.policies.first().ok_or("no policy")?;
    Ok((p.phase, p.priority))
}

/// The name of the first of `policies` that selects routes by name, if any.
pub(crate) fn selecting_route_names(policies: &[Value]) -> Result<Option<String>, String> {
    for policy in policies {
        let c = config::parse(policy.to_string().as_bytes()).map_err(|e| e.to_string())?;
        if let Some(p) = c.policies.iter().find(|p| p.names_routes()) {
            return Ok(Some(p.name.clone()));
        }
    }
    Ok(None)
}

/// A sidecar's inbound side (`match` SERVER, or no match: both sides) has only Istio's own
/// routes, never the VirtualService's named ones: the filter refuses every request there that
/// such a policy may govern.
/// Istio installs a WasmPlugin in an ingress gateway only for the modes its listeners have
/// (`CLIENT`): one that matches `SERVER` alone is never installed there (review 6).
pub(crate) const GATEWAY_SERVER: &str = "a gateway's listeners are CLIENT to Istio: a WasmPlugin \
     that matches mode SERVER alone is never installed there, and every route of the gateway \
     would pass unauthenticated; use mode CLIENT or UNDEFINED (the default for --gateway)";

pub(crate) fn route_names_on_inbound(policy: &str, mode: &str) -> String {
    format!(
        "policy {policy} selects routes by name, which exist only in the clients' sidecars and \
         in gateways: on a sidecar's inbound side (match {mode}) Istio's only route is its own \
         (`default`), so the filter would refuse every request there. Render it for the \
         workloads that call the service (--mode CLIENT, their --namespace and --selector) or \
         for a gateway (--gateway), or select the destination instead (applyToDestinations)"
    )
}

pub(crate) fn render_istio(policies: &[Value], f: &Flags) -> Result<Vec<Value>, String> {
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
    let mode = f
        .value("--mode")
        .unwrap_or(if gateway { "UNDEFINED" } else { "SERVER" });
    if !["SERVER", "CLIENT", "UNDEFINED"].contains(&mode) {
        return Err(format!("--mode {mode}: want SERVER, CLIENT or UNDEFINED"));
    }
    if gateway && mode == "SERVER" {
        return Err(GATEWAY_SERVER.into());
    }
    if !gateway
        && mode != "CLIENT"
        && let Some(name) = selecting_route_names(policies)?
    {
        return Err(route_names_on_inbound(&name, mode));
    }
    let mut docs = Vec::new();
    for (phase, gloo, istio) in [
        (Phase::PreAuthz, "preAuthz", "AUTHZ"),
        (Phase::PostAuthz, "postAuthz", "STATS"),
    ] {
        // Each phase's plugin sees every policy, so that both agree on the governing (oldest)
        // one, and enforces it only when it is of its phase.
        let mut present = false;
        let mut lowest = i64::MAX;
        for p in policies {
            let (ph, priority) = phase_of(p)?;
            if ph == phase {
                present = true;
                lowest = lowest.min(priority);
            }
        }
        if !present {
            continue;
        }
        let mut spec = json!({
            "url": image,
            "phase": istio,
            // Gloo runs the lowest priority first, Istio the highest: negate.
            "priority": lowest.saturating_neg(),
            // An authentication filter that cannot load must deny, not open the mesh.
            "failStrategy": "FAIL_CLOSE",
            "pluginConfig": {"policies": policies, "settings": {"phase": gloo}},
        });
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

pub(crate) fn render_envoy(policies: &[Value], f: &Flags) -> Result<Value, String> {
    let wasm = f
        .value("--wasm")
        .unwrap_or("/etc/envoy/jwt_policy_filter.wasm");
    let ca_file = f.value("--ca-file").unwrap_or(SYSTEM_CA_BUNDLE);
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
                // Whoever serves the keys can sign any token: the server's certificate must chain
                // to a trusted CA and name the URL's host.
                let tls = json!({
                    "name": "envoy.transport_sockets.tls",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
                        "sni": host,
                        "common_tls_context": {"validation_context": {
                            "trusted_ca": {"filename": ca_file},
                            "match_typed_subject_alt_names": [
                                {"san_type": san_type(host), "matcher": {"exact": host}},
                            ],
                        }},
                    },
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
