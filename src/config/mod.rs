//! Plugin configuration (JSON) → the compiled [`Config`]. Every error names the JSON path of
//! the offending value and the reason, e.g.
//! `policies[0].spec.config.providers.dev-example.remote.url: not an absolute http(s) URL`.

mod provider;
mod selector;
mod time;

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::json;
use crate::policy::*;
pub use provider::split_url;
use provider::{parse_claim_rule, parse_provider};
use selector::{parse_destination_selector, parse_route_selector};
pub use time::{parse_duration_ms, parse_rfc3339};

/// A configuration refused: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

type Result<T> = std::result::Result<T, ConfigError>;

fn err<T>(path: &str, reason: impl Into<String>) -> Result<T> {
    Err(ConfigError {
        path: path.to_owned(),
        reason: reason.into(),
    })
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// An object whose keys were checked against the known ones.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(value: &'a Value, path: &str, known: &[&str]) -> Result<Self> {
        let Value::Object(map) = value else {
            return err(path, "expected an object");
        };
        if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return err(
                &child(path, unknown),
                format!("unknown field (expected one of: {})", known.join(", ")),
            );
        }
        Ok(Obj {
            map,
            path: path.to_owned(),
        })
    }

    /// A present, non-null field and its path.
    fn get(&self, key: &str) -> Option<(&'a Value, String)> {
        match self.map.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => Some((v, child(&self.path, key))),
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        self.get(key).map(|(v, p)| as_string(v, &p)).transpose()
    }

    fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some((Value::Bool(b), _)) => Ok(Some(*b)),
            Some((_, p)) => err(&p, "expected true or false"),
        }
    }

    fn string_list(&self, key: &str) -> Result<Option<Vec<String>>> {
        let Some((v, p)) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return err(&p, "expected a list of strings");
        };
        items
            .iter()
            .enumerate()
            .map(|(i, v)| as_string(v, &format!("{p}[{i}]")))
            .collect::<Result<_>>()
            .map(Some)
    }

    fn list(&self, key: &str) -> Result<Option<Vec<(&'a Value, String)>>> {
        let Some((v, p)) = self.get(key) else {
            return Ok(None);
        };
        let Value::Array(items) = v else {
            return err(&p, "expected a list");
        };
        Ok(Some(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| (v, format!("{p}[{i}]")))
                .collect(),
        ))
    }

    fn string_map(&self, key: &str) -> Result<BTreeMap<String, String>> {
        let Some((v, p)) = self.get(key) else {
            return Ok(BTreeMap::new());
        };
        let Value::Object(m) = v else {
            return err(&p, "expected a map of strings");
        };
        m.iter()
            .map(|(k, v)| Ok((k.clone(), as_string(v, &child(&p, k))?)))
            .collect()
    }
}

fn as_string(v: &Value, path: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        _ => err(path, "expected a string"),
    }
}

fn as_u64(v: &Value, path: &str) -> Result<u64> {
    match v {
        Value::Number(n) => n
            .as_u64()
            .ok_or(())
            .or_else(|()| err(path, "expected a non-negative integer")),
        // Protobuf JSON allows 64-bit integers as strings.
        Value::String(s) => s
            .parse()
            .or_else(|_| err(path, "expected a non-negative integer")),
        _ => err(path, "expected a non-negative integer"),
    }
}

fn as_i64(v: &Value, path: &str) -> Result<i64> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .ok_or(())
            .or_else(|()| err(path, "expected an integer")),
        Value::String(s) => s.parse().or_else(|_| err(path, "expected an integer")),
        _ => err(path, "expected an integer"),
    }
}

/// The annotation that marks a policy for rollout: decided normally, never denying
/// (`metadata.annotations`, so the JWTPolicy spec stays Gloo's).
pub const DRY_RUN_ANNOTATION: &str = "jwt-policy/dry-run";

/// The kind of proxy the configuration runs in: it decides which selectors can be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proxy {
    /// Envoy configured by hand: routes can carry labels in their metadata.
    Envoy,
    /// An Istio sidecar or gateway: Istio puts no route metadata of ours in Envoy's routes, so a
    /// route selected by `labels` or `namespace` could never match.
    Istio,
}

/// Parses the plugin configuration bytes for a plain Envoy.
pub fn parse(bytes: &[u8]) -> Result<Config> {
    parse_on(bytes, Proxy::Envoy)
}

/// Parses the plugin configuration bytes for the given kind of proxy: a selector that proxy
/// cannot evaluate is an error, never a policy that silently selects nothing.
pub fn parse_on(bytes: &[u8], proxy: Proxy) -> Result<Config> {
    let root: Value = match json::parse_config_json(bytes) {
        Ok(v) => v,
        Err(e) => return err("configuration", format!("not valid JSON: {e}")),
    };
    let Value::Object(map) = &root else {
        return err(
            "configuration",
            "expected a JSON object (a JWTPolicy spec, a JWTPolicy resource, or {\"policies\": [...]})",
        );
    };
    let (mut policies, mut settings) =
        if map.contains_key("policies") || map.contains_key("settings") {
            let o = Obj::new(&root, "", &["policies", "settings"])?;
            let settings = match o.get("settings") {
                Some((v, p)) => parse_settings(v, &p)?,
                None => Settings::default(),
            };
            let Some(items) = o.list("policies")? else {
                return err(
                    "policies",
                    "required: a list of JWTPolicy resources or specs",
                );
            };
            if items.is_empty() {
                return err("policies", "must hold at least one policy");
            }
            let policies = items
                .iter()
                .enumerate()
                .map(|(i, (v, p))| parse_policy(v, p, i, proxy))
                .collect::<Result<Vec<_>>>()?;
            (policies, settings)
        } else {
            (
                vec![parse_policy(&root, "", 0, proxy)?],
                Settings::default(),
            )
        };
    if let Some(phase) = settings.phase
        && !policies.iter().any(|p| p.phase == phase)
    {
        return err(
            "settings.phase",
            format!(
                "{}, but no policy is of that phase: this instance would enforce nothing (an \
                 instance carries every policy, as `render --istio` writes them)",
                phase.name()
            ),
        );
    }
    settings.istio = proxy == Proxy::Istio;
    // Age order (creation time, else list order: the sort is stable): the oldest policy that
    // selects a request governs it, whatever its phase or priority (Gloo's rule).
    policies.sort_by_key(|p| p.created.unwrap_or(i64::MAX));
    for (i, p) in policies.iter_mut().enumerate() {
        p.index = i;
        p.limits = settings.limits;
        p.bypass_cors_preflight = settings.bypass_cors_preflight;
    }
    Ok(Config { policies, settings })
}

fn parse_settings(v: &Value, path: &str) -> Result<Settings> {
    let o = Obj::new(
        v,
        path,
        &[
            "phase",
            "routeLabelsNamespace",
            "limits",
            "bypassCorsPreflight",
            "maxStaleKeys",
        ],
    )?;
    let mut s = Settings::default();
    if let Some((l, lp)) = o.get("limits") {
        let l = Obj::new(
            l,
            &lp,
            &[
                "maxTokenBytes",
                "maxTokensPerRequest",
                "maxCachedTokens",
                "maxCacheBytes",
                "maxJwksBytes",
            ],
        )?;
        let limit = |key: &str, min: u64, slot: &mut usize| -> Result<()> {
            if let Some((v, p)) = l.get(key) {
                let n = as_u64(v, &p)?;
                if n < min {
                    return err(&p, format!("must be at least {min}"));
                }
                *slot = usize::try_from(n).unwrap_or(usize::MAX);
            }
            Ok(())
        };
        limit("maxTokenBytes", 16, &mut s.limits.max_token_bytes)?;
        limit(
            "maxTokensPerRequest",
            1,
            &mut s.limits.max_tokens_per_request,
        )?;
        limit("maxCachedTokens", 0, &mut s.limits.max_cached_tokens)?;
        limit("maxCacheBytes", 0, &mut s.limits.max_cache_bytes)?;
        limit("maxJwksBytes", 64, &mut s.limits.max_jwks_bytes)?;
    }
    if let Some((v, p)) = o.get("phase") {
        s.phase = Some(match as_string(v, &p)?.as_str() {
            "preAuthz" => Phase::PreAuthz,
            "postAuthz" => Phase::PostAuthz,
            _ => return err(&p, "expected \"preAuthz\" or \"postAuthz\""),
        });
    }
    if let Some(ns) = o.string("routeLabelsNamespace")? {
        if ns.is_empty() {
            return err(&child(path, "routeLabelsNamespace"), "must not be empty");
        }
        s.route_labels_namespace = ns;
    }
    if let Some(b) = o.bool("bypassCorsPreflight")? {
        s.bypass_cors_preflight = b;
    }
    if let Some(text) = o.string("maxStaleKeys")? {
        s.max_stale_ms = parse_duration_ms(&text).ok_or_else(|| ConfigError {
            path: child(path, "maxStaleKeys"),
            reason: format!("{text:?} is not a duration (\"24h\", \"3600s\")"),
        })?;
    }
    Ok(s)
}

/// A whole resource (`kind`/`spec`) or a bare spec.
fn parse_policy(v: &Value, path: &str, index: usize, proxy: Proxy) -> Result<Policy> {
    let Value::Object(map) = v else {
        return err(
            if path.is_empty() {
                "configuration"
            } else {
                path
            },
            "expected an object",
        );
    };
    if map.contains_key("spec") || map.contains_key("kind") || map.contains_key("apiVersion") {
        let o = Obj::new(
            v,
            path,
            &["apiVersion", "kind", "metadata", "spec", "status"],
        )?;
        if let Some(kind) = o.string("kind")?
            && kind != "JWTPolicy"
        {
            return err(
                &child(path, "kind"),
                format!("expected \"JWTPolicy\", got {kind:?}"),
            );
        }
        let (mut name, mut created, mut dry_run) = (format!("policies[{index}]"), None, false);
        if let Some((m, mp)) = o.get("metadata") {
            let Value::Object(meta) = m else {
                return err(&mp, "expected an object");
            };
            let field = |k: &str| {
                meta.get(k)
                    .filter(|v| !v.is_null())
                    .map(|v| as_string(v, &child(&mp, k)))
                    .transpose()
            };
            let (n, ns) = (field("name")?, field("namespace")?);
            if let Some(n) = n {
                name = match ns {
                    Some(ns) => format!("{ns}/{n}"),
                    None => n,
                };
            }
            if let Some((a, ap)) = meta
                .get("annotations")
                .map(|a| (a, child(&mp, "annotations")))
                && let Some(mark) = a.get(DRY_RUN_ANNOTATION).filter(|v| !v.is_null())
            {
                dry_run = match mark.as_str() {
                    Some("true") => true,
                    Some("false") => false,
                    _ => {
                        return err(
                            &format!("{ap}[{DRY_RUN_ANNOTATION:?}]"),
                            "expected \"true\" or \"false\"",
                        );
                    }
                };
            }
            if let Some(ts) = field("creationTimestamp")? {
                created = Some(parse_rfc3339(&ts).ok_or(()).or_else(|()| {
                    err(
                        &child(&mp, "creationTimestamp"),
                        "not an RFC 3339 timestamp",
                    )
                })?);
            }
        }
        let Some((spec, sp)) = o.get("spec") else {
            return err(&child(path, "spec"), "required");
        };
        let mut policy = parse_spec(spec, &sp, name, created, proxy)?;
        policy.dry_run = dry_run;
        Ok(policy)
    } else {
        let name = if path.is_empty() {
            "policy".to_owned()
        } else {
            format!("policies[{index}]")
        };
        parse_spec(v, path, name, None, proxy)
    }
}

fn parse_spec(
    v: &Value,
    path: &str,
    name: String,
    created: Option<i64>,
    proxy: Proxy,
) -> Result<Policy> {
    let o = Obj::new(v, path, &["applyToRoutes", "applyToDestinations", "config"])?;
    let routes = o
        .list("applyToRoutes")?
        .map(|items| {
            items
                .iter()
                .map(|(v, p)| parse_route_selector(v, p, proxy))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        // The API is protobuf: an empty list is an omitted one.
        .filter(|list| !list.is_empty());
    let destinations = o
        .list("applyToDestinations")?
        .map(|items| {
            items
                .iter()
                .map(|(v, p)| parse_destination_selector(v, p, proxy))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?
        .filter(|list| !list.is_empty());
    let Some((config, cp)) = o.get("config") else {
        return err(&child(path, "config"), "required");
    };
    let c = Obj::new(
        config,
        &cp,
        &[
            "providers",
            "phase",
            "validationPolicy",
            "allowMissingOrFailed",
            "claims",
            "requiredScopes",
            "clearRouteCache",
        ],
    )?;

    let (phase, priority) = match c.get("phase") {
        None => (Phase::PreAuthz, 0),
        Some((v, p)) => parse_phase(v, &p)?,
    };
    let mut validation = if c.bool("allowMissingOrFailed")?.unwrap_or(false) {
        ValidationPolicy::AllowMissingOrFailed
    } else {
        ValidationPolicy::RequireValid
    };
    if let Some((v, p)) = c.get("validationPolicy") {
        validation = match as_string(v, &p)?.as_str() {
            "REQUIRE_VALID" => ValidationPolicy::RequireValid,
            "ALLOW_MISSING" => ValidationPolicy::AllowMissing,
            "ALLOW_MISSING_OR_FAILED" => ValidationPolicy::AllowMissingOrFailed,
            _ => {
                return err(
                    &p,
                    "expected REQUIRE_VALID, ALLOW_MISSING or ALLOW_MISSING_OR_FAILED",
                );
            }
        };
    }
    let clear_route_cache = match c.string("clearRouteCache")?.as_deref() {
        None | Some("AUTO") => ClearRouteCache::Auto,
        Some("TRUE") => ClearRouteCache::True,
        Some("FALSE") => ClearRouteCache::False,
        Some(_) => {
            return err(
                &child(&cp, "clearRouteCache"),
                "expected AUTO, TRUE or FALSE",
            );
        }
    };
    let claims = c
        .list("claims")?
        .unwrap_or_default()
        .iter()
        .map(|(v, p)| parse_claim_rule(v, p))
        .collect::<Result<Vec<_>>>()?;
    let required_scopes = c.string_list("requiredScopes")?.unwrap_or_default();

    let Some((pv, pp)) = c.get("providers") else {
        return err(
            &child(&cp, "providers"),
            "required: a map of provider name to provider",
        );
    };
    let Value::Object(pmap) = pv else {
        return err(&pp, "expected a map of provider name to provider");
    };
    if pmap.is_empty() {
        return err(&pp, "must name at least one provider");
    }
    let providers = pmap
        .iter()
        .map(|(n, v)| parse_provider(n, v, &child(&pp, n)))
        .collect::<Result<Vec<_>>>()?;

    let mut spoofable_headers: Vec<String> = Vec::new();
    for p in &providers {
        let names = p
            .claims_to_headers
            .iter()
            .map(|c| &c.header)
            .chain(&p.payload_header);
        for h in names {
            if !spoofable_headers.contains(h) {
                spoofable_headers.push(h.clone());
            }
        }
    }
    Ok(Policy {
        index: 0,
        name,
        limits: Limits::default(),
        created,
        routes,
        destinations,
        phase,
        priority,
        providers,
        validation,
        claims,
        required_scopes,
        clear_route_cache,
        bypass_cors_preflight: true,
        dry_run: false,
        spoofable_headers,
    })
}

fn parse_phase(v: &Value, path: &str) -> Result<(Phase, i64)> {
    let o = Obj::new(v, path, &["preAuthz", "postAuthz"])?;
    let (phase, (inner, ip)) = match (o.get("preAuthz"), o.get("postAuthz")) {
        (Some(x), None) => (Phase::PreAuthz, x),
        (None, Some(x)) => (Phase::PostAuthz, x),
        (None, None) => return Ok((Phase::PreAuthz, 0)),
        (Some(_), Some(_)) => return err(path, "set only one of preAuthz or postAuthz"),
    };
    let io = Obj::new(inner, &ip, &["priority"])?;
    let priority = io
        .get("priority")
        .map(|(v, p)| as_i64(v, &p))
        .transpose()?
        .unwrap_or(0);
    Ok((phase, priority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::pem;
    use serde_json::json;

    fn provider_json() -> Value {
        json!({"issuer": "https://issuer.example", "local": {"inline": pem("rsa")}})
    }

    fn spec_with(provider: Value) -> Value {
        json!({"config": {"providers": {"dev-example": provider}}})
    }

    fn error_of(v: Value) -> String {
        parse(v.to_string().as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn the_three_shapes_load() {
        let spec = spec_with(provider_json());
        let one = parse(spec.to_string().as_bytes()).unwrap();
        assert_eq!(one.policies.len(), 1);
        let resource = json!({"apiVersion": "security.policy.gloo.solo.io/v2", "kind": "JWTPolicy",
            "metadata": {"name": "jwt-policy", "namespace": "httpbin", "annotations": {"a": "b"}}, "spec": spec});
        let two = parse(resource.to_string().as_bytes()).unwrap();
        assert_eq!(two.policies[0].name, "httpbin/jwt-policy");
        let post =
            json!({"config": {"phase": {"postAuthz": {}}, "providers": {"p": provider_json()}}});
        let many = json!({"policies": [resource, spec, post], "settings": {"phase": "postAuthz", "routeLabelsNamespace": "labels"}});
        let three = parse(many.to_string().as_bytes()).unwrap();
        assert_eq!(three.policies.len(), 3);
        assert_eq!(three.settings.phase, Some(Phase::PostAuthz));
        assert_eq!(three.settings.route_labels_namespace, "labels");
    }

    #[test]
    fn a_remote_timeout_past_32_bit_milliseconds_and_a_skew_past_uint32_are_refused() {
        // 4294967296 ms would reach Envoy as 0, no timeout (review 4).
        for t in ["4294967296ms", "1200h"] {
            let p = json!({"remote": {"url": "https://idp.example/jwks", "timeout": t}});
            let e = error_of(spec_with(p));
            assert!(
                e.contains("remote.timeout: at most 4294967295ms"),
                "{t}: {e}"
            );
        }
        let p = json!({"remote": {"url": "https://idp.example/jwks", "timeout": "4294967295ms"}});
        assert!(parse(spec_with(p).to_string().as_bytes()).is_ok());
        let mut p = provider_json();
        p["clockSkewSeconds"] = json!(4_294_967_296u64);
        assert!(error_of(spec_with(p.clone())).contains("clockSkewSeconds: at most 4294967295"));
        p["clockSkewSeconds"] = json!(4_294_967_295u64);
        assert!(parse(spec_with(p).to_string().as_bytes()).is_ok());
    }

    #[test]
    fn destination_kinds_a_proxy_cannot_evaluate_are_refused() {
        for kind in ["EXTERNAL_SERVICE", "VIRTUAL_DESTINATION"] {
            let mut spec = spec_with(provider_json());
            spec["applyToDestinations"] = json!([{"kind": kind, "selector": {"name": "my-api"}}]);
            let e = error_of(spec);
            assert!(
                e.starts_with(&format!(
                    "applyToDestinations[0].kind: {kind}: a proxy cannot tell"
                )),
                "{e}"
            );
        }
        let mut spec = spec_with(provider_json());
        spec["applyToDestinations"] = json!([{"kind": "SERVICE", "selector": {"name": "httpbin"}}]);
        assert!(parse(spec.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn an_instance_whose_phase_no_policy_has_is_refused() {
        // It would enforce nothing (review 4: a hand-edited WasmPlugin).
        let e = error_of(
            json!({"settings": {"phase": "postAuthz"}, "policies": [spec_with(provider_json())]}),
        );
        assert!(
            e.starts_with("settings.phase: postAuthz, but no policy is of that phase"),
            "{e}"
        );
    }

    #[test]
    fn a_repeated_member_anywhere_in_the_configuration_is_refused() {
        // serde_json keeps the last one: REQUIRE_VALID read, ALLOW_MISSING_OR_FAILED run (review 4).
        let pem = serde_json::to_string(&pem("rsa")).unwrap();
        let twice = format!(
            r#"{{"config": {{"validationPolicy": "REQUIRE_VALID", "providers": {{"d": {{"local": {{"inline": {pem}}}}}}},
                "validationPolicy": "ALLOW_MISSING_OR_FAILED"}}}}"#
        );
        let e = parse(twice.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("repeated member \"validationPolicy\""), "{e}");
        let provider_twice = format!(
            r#"{{"config": {{"providers": {{"d": {{"local": {{"inline": {pem}}}}}, "d": {{"local": {{"inline": {pem}}}}}}}}}}}"#
        );
        let e = parse(provider_twice.as_bytes()).unwrap_err().to_string();
        assert!(e.contains("repeated member \"d\""), "{e}");
        assert!(parse(spec_with(provider_json()).to_string().as_bytes()).is_ok());
    }

    #[test]
    fn cache_limits_load_and_default_to_16384_tokens_and_64_mib() {
        let c = parse(spec_with(provider_json()).to_string().as_bytes()).unwrap();
        assert_eq!(c.settings.limits.max_cached_tokens, 16384);
        assert_eq!(c.settings.limits.max_cache_bytes, 64 << 20);
        let set = json!({"policies": [spec_with(provider_json())],
            "settings": {"limits": {"maxCachedTokens": 10, "maxCacheBytes": 4096}}});
        let c = parse(set.to_string().as_bytes()).unwrap();
        assert_eq!(
            (
                c.settings.limits.max_cached_tokens,
                c.settings.limits.max_cache_bytes
            ),
            (10, 4096)
        );
        let bad = json!({"policies": [spec_with(provider_json())],
            "settings": {"limits": {"maxCacheBytes": "lots"}}});
        assert!(error_of(bad).contains("settings.limits.maxCacheBytes"));
    }

    #[test]
    fn defaults() {
        let c = parse(spec_with(provider_json()).to_string().as_bytes()).unwrap();
        let p = &c.policies[0];
        assert_eq!(
            (p.phase, p.priority, p.validation, p.clear_route_cache),
            (
                Phase::PreAuthz,
                0,
                ValidationPolicy::RequireValid,
                ClearRouteCache::Auto
            )
        );
        let pr = &p.providers[0];
        assert_eq!(
            pr.headers,
            vec![HeaderSource {
                name: "authorization".into(),
                prefix: "Bearer ".into()
            }]
        );
        assert_eq!(pr.query_params, vec!["access_token"]);
        assert_eq!((pr.keep_token, pr.clock_skew_seconds), (false, 60));
        assert_eq!(c.settings.route_labels_namespace, "jwt_policy");
    }

    #[test]
    fn token_source_given_replaces_both_defaults() {
        let mut p = provider_json();
        p["tokenSource"] = json!({"headers": [{"name": "X-Auth", "prefix": "Bearer "}]});
        let c = parse(spec_with(p).to_string().as_bytes()).unwrap();
        let pr = &c.policies[0].providers[0];
        assert_eq!(pr.headers[0].name, "x-auth");
        assert!(pr.query_params.is_empty());
        assert!(pr.cookies.is_empty());
    }

    #[test]
    fn token_source_cookies() {
        let mut p = provider_json();
        p["tokenSource"] = json!({"cookies": ["session", "jwt"]});
        let c = parse(spec_with(p.clone()).to_string().as_bytes()).unwrap();
        let pr = &c.policies[0].providers[0];
        assert_eq!(pr.cookies, vec!["session", "jwt"]);
        assert!(pr.headers.is_empty() && pr.query_params.is_empty());
        let at = "config.providers.dev-example.tokenSource";
        for (bad, reason) in [
            (
                json!(["ok", "a b"]),
                "cookies[1]: \"a b\" is not a valid cookie name",
            ),
            (json!([""]), "cookies[0]: \"\" is not a valid cookie name"),
            (
                json!(["a=b"]),
                "cookies[0]: \"a=b\" is not a valid cookie name",
            ),
            (json!("jwt"), "cookies: expected a list of strings"),
        ] {
            p["tokenSource"] = json!({"cookies": bad});
            assert_eq!(error_of(spec_with(p.clone())), format!("{at}.{reason}"));
        }
        p["tokenSource"] = json!({"cookies": []});
        assert_eq!(
            error_of(spec_with(p)),
            format!(
                "{at}: names no header, no query parameter and no cookie: no token could ever be found"
            )
        );
    }

    #[test]
    fn validation_policy_wins_over_the_deprecated_alias() {
        let mut spec = spec_with(provider_json());
        spec["config"]["allowMissingOrFailed"] = json!(true);
        assert_eq!(
            parse(spec.to_string().as_bytes()).unwrap().policies[0].validation,
            ValidationPolicy::AllowMissingOrFailed
        );
        spec["config"]["validationPolicy"] = json!("ALLOW_MISSING");
        assert_eq!(
            parse(spec.to_string().as_bytes()).unwrap().policies[0].validation,
            ValidationPolicy::AllowMissing
        );
    }

    #[test]
    fn headers_that_frame_the_message_are_never_written_from_a_token() {
        let mut p = provider_json();
        p["claimsToHeaders"] = json!([{"claim": "sub", "header": "x-sub"},
            {"claim": "email", "header": "Content-Length"}]);
        assert_eq!(
            error_of(spec_with(p)),
            "config.providers.dev-example.claimsToHeaders[1].header: content-length frames the \
             message or the connection: it cannot be written from a token"
        );
        let mut p = provider_json();
        p["outputPayloadToHeader"] = json!("transfer-encoding");
        assert!(
            error_of(spec_with(p)).starts_with(
                "config.providers.dev-example.outputPayloadToHeader: transfer-encoding"
            )
        );
    }

    #[test]
    fn errors_name_the_json_path_and_reason() {
        let mut p = provider_json();
        p["remote"] = json!({"url": "ftp://x"});
        p.as_object_mut().unwrap().remove("local");
        let many = json!({"policies": [{"kind": "JWTPolicy", "spec": spec_with(p)}]});
        assert_eq!(
            error_of(many),
            "policies[0].spec.config.providers.dev-example.remote.url: not an absolute http(s) URL"
        );

        let mut p = provider_json();
        p["issuerr"] = json!("x");
        assert!(
            error_of(spec_with(p))
                .starts_with("config.providers.dev-example.issuerr: unknown field")
        );

        assert_eq!(
            error_of(spec_with(json!({"issuer": "x"}))),
            "config.providers.dev-example: needs one of local or remote"
        );
        assert_eq!(
            error_of(json!({"config": {"providers": {}}})),
            "config.providers: must name at least one provider"
        );
        let mut p = provider_json();
        p["clockSkewSeconds"] = json!("soon");
        assert_eq!(
            error_of(spec_with(p)),
            "config.providers.dev-example.clockSkewSeconds: expected a non-negative integer"
        );
        let mut p = provider_json();
        p["local"] =
            json!({"inline": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"});
        assert!(error_of(spec_with(p)).starts_with(
            "config.providers.dev-example.local.inline: not a usable PEM public key or JWKS"
        ));
        let mut p = provider_json();
        p["local"] = json!({"secretRef": {"name": "s"}});
        assert!(
            error_of(spec_with(p))
                .contains("local.secretRef: a proxy-wasm filter cannot read Kubernetes Secrets")
        );
        let mut p = provider_json();
        p["claimsToHeaders"] = json!([{"claim": "org", "header": "bad header"}]);
        assert!(
            error_of(spec_with(p))
                .starts_with("config.providers.dev-example.claimsToHeaders[0].header:")
        );
        assert!(error_of(json!([1])).starts_with("configuration: expected a JSON object"));
        assert!(error_of(json!({"policies": []})).starts_with("policies: must hold"));
        assert!(
            parse(b"{not json")
                .unwrap_err()
                .to_string()
                .starts_with("configuration: not valid JSON")
        );
        let mut p = provider_json();
        p["remote"] = json!({"url": "https://idp.example/jwks", "timeout": "soon"});
        p.as_object_mut().unwrap().remove("local");
        assert!(error_of(spec_with(p)).starts_with(
            "config.providers.dev-example.remote.timeout: \"soon\" is not a duration"
        ));
        let routes = json!({"applyToRoutes": [{"route": {"labels": {"a": 1}}}], "config": {"providers": {"p": provider_json()}}});
        assert_eq!(
            error_of(routes),
            "applyToRoutes[0].route.labels.a: expected a string"
        );
    }

    #[test]
    fn remote_cluster_is_derived_in_istio_form() {
        let remote = |r: Value| {
            let spec = spec_with(json!({"remote": r}));
            match &parse(spec.to_string().as_bytes()).unwrap().policies[0].providers[0].keys {
                KeySource::Remote(r) => r.clone(),
                KeySource::Local(_) => panic!("expected remote keys"),
            }
        };
        let r = remote(json!({"url": "https://idp.example.com/.well-known/jwks.json"}));
        assert_eq!(
            (r.cluster.as_str(), r.authority.as_str(), r.path.as_str()),
            (
                "outbound|443||idp.example.com",
                "idp.example.com",
                "/.well-known/jwks.json"
            )
        );
        assert_eq!(
            (r.cache_duration_ms, r.timeout_ms, r.async_fetch),
            (300_000, 5_000, false)
        );
        let r = remote(
            json!({"url": "http://jwks:8080/keys?x=1", "cacheDuration": "1.5s", "timeout": "250ms"}),
        );
        assert_eq!(
            (
                r.cluster.as_str(),
                r.path.as_str(),
                r.cache_duration_ms,
                r.timeout_ms
            ),
            ("outbound|8080||jwks", "/keys?x=1", 1500, 250)
        );
        let r = remote(
            json!({"url": "http://idp/keys", "destinationRef": {"ref": {"name": "idp", "namespace": "auth"}, "port": {"number": 9000}}}),
        );
        assert_eq!(r.cluster, "outbound|9000||idp.auth.svc.cluster.local");
        let r = remote(json!({"url": "http://idp/keys", "cluster": "jwks_cluster"}));
        assert_eq!(r.cluster, "jwks_cluster");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("300s"), Some(300_000));
        assert_eq!(parse_duration_ms("1.5s"), Some(1_500));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms(""), None);
        assert_eq!(parse_duration_ms("9999999999999h"), None);
    }

    #[test]
    fn oldest_policy_first() {
        let res = |name: &str, ts: Option<&str>| {
            let mut meta = json!({"name": name});
            if let Some(ts) = ts {
                meta["creationTimestamp"] = json!(ts);
            }
            json!({"kind": "JWTPolicy", "metadata": meta, "spec": spec_with(provider_json())})
        };
        let c = parse(json!({"policies": [res("new", Some("2024-05-01T00:00:00Z")), res("old", Some("2023-01-01T10:00:00+02:00")), res("none", None)]}).to_string().as_bytes()).unwrap();
        let names: Vec<_> = c.policies.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["old", "new", "none"]);
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2000-03-01T00:00:00.123Z"), Some(951_868_800));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn spoofable_headers_are_every_claim_header_whatever_append_and_the_payload_header() {
        let mut p = provider_json();
        p["claimsToHeaders"] = json!([{"claim": "org", "header": "X-Org"}, {"claim": "email", "header": "x-email", "append": true}]);
        p["outputPayloadToHeader"] = json!("X-Jwt-Payload");
        let c = parse(spec_with(p).to_string().as_bytes()).unwrap();
        assert_eq!(
            c.policies[0].spoofable_headers,
            vec!["x-org", "x-email", "x-jwt-payload"]
        );
    }
}
