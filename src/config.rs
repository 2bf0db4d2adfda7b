//! Plugin configuration (JSON) → the compiled [`Config`]. Every error names the JSON path of
//! the offending value and the reason, e.g.
//! `policies[0].spec.config.providers.dev-example.remote.url: not an absolute http(s) URL`.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{Map, Value};

use crate::policy::*;
use crate::{json, jwks};

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

/// Gloo fields that scope a selector to what one proxy cannot see (the multi-cluster `cluster`
/// and `workspace`, a port's `name`): ignored, they would widen the selector, and a widened
/// older policy governs requests meant for a younger one (only the oldest applies; review 6).
fn refuse_unseeable(o: &Obj<'_>, path: &str, keys: &[&str]) -> Result<()> {
    for key in keys {
        if o.string(key)?.is_some_and(|v| !v.is_empty()) {
            return err(
                &child(path, key),
                format!(
                    "a proxy cannot see a selector's `{key}`: ignored, it would widen this \
                     selector (and an older policy widened governs requests meant for a younger \
                     one); remove it, and give this proxy only the policies meant for it"
                ),
            );
        }
    }
    Ok(())
}

/// A Kubernetes name Istio puts in cluster names (an RFC 1123 label: lower case, digits, `-`,
/// at most 63 characters); any other can never match one there.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

fn parse_route_selector(v: &Value, path: &str, proxy: Proxy) -> Result<RouteSelector> {
    let o = Obj::new(v, path, &["route"])?;
    let Some((r, rp)) = o.get("route") else {
        return Ok(RouteSelector::default());
    };
    let r = Obj::new(
        r,
        &rp,
        &["labels", "name", "namespace", "cluster", "workspace"],
    )?;
    refuse_unseeable(&r, &rp, &["cluster", "workspace"])?;
    let selector = RouteSelector {
        labels: r.string_map("labels")?,
        name: r.string("name")?,
        namespace: r.string("namespace")?,
    };
    if proxy == Proxy::Istio {
        for (key, set) in [
            ("labels", !selector.labels.is_empty()),
            ("namespace", selector.namespace.is_some()),
        ] {
            if set {
                return err(
                    &child(&rp, key),
                    format!(
                        "Istio carries no route {key} into Envoy, so this selector would select \
                         nothing and leave the route unauthenticated: select the VirtualService \
                         http route by `name` instead"
                    ),
                );
            }
        }
    }
    Ok(selector)
}

fn parse_destination_selector(v: &Value, path: &str, proxy: Proxy) -> Result<DestinationSelector> {
    let o = Obj::new(v, path, &["kind", "selector", "port"])?;
    match o.string("kind")?.as_deref() {
        None | Some("SERVICE") => {}
        // Their names are not in the cluster name the proxy sees (an external service's host,
        // a virtual destination's global hostname): matched as Services they would select
        // nothing, silently (review 4).
        Some(kind @ ("VIRTUAL_DESTINATION" | "EXTERNAL_SERVICE")) => {
            return err(
                &child(path, "kind"),
                format!(
                    "{kind}: a proxy cannot tell such a destination from its upstream cluster, so \
                     this selector would select nothing and leave it unauthenticated: select the \
                     route (applyToRoutes) or the Service (kind SERVICE) instead"
                ),
            );
        }
        Some(_) => {
            return err(
                &child(path, "kind"),
                "expected SERVICE (VIRTUAL_DESTINATION and EXTERNAL_SERVICE cannot be evaluated)",
            );
        }
    }
    let mut d = DestinationSelector::default();
    if let Some((s, sp)) = o.get("selector") {
        let s = Obj::new(
            s,
            &sp,
            &["name", "namespace", "labels", "cluster", "workspace"],
        )?;
        refuse_unseeable(&s, &sp, &["cluster", "workspace"])?;
        d.name = s.string("name")?;
        d.namespace = s.string("namespace")?;
        if proxy == Proxy::Istio {
            for (key, value) in [("name", &d.name), ("namespace", &d.namespace)] {
                if value.as_deref().is_some_and(|v| !is_dns_label(v)) {
                    return err(
                        &child(&sp, key),
                        "not a Kubernetes name (lower case letters, digits and `-`, at most 63): \
                         Istio's cluster names carry only those, so this selector would select \
                         nothing and leave the destination unauthenticated",
                    );
                }
            }
        }
        d.labels = s.string_map("labels")?;
        if !d.labels.is_empty() {
            return err(
                &child(&sp, "labels"),
                "a proxy cannot see its destinations' labels, so this selector would select \
                 nothing and leave the destination unauthenticated: select by `name` and \
                 `namespace` instead",
            );
        }
    }
    if let Some((p, pp)) = o.get("port") {
        let p = Obj::new(p, &pp, &["number", "name"])?;
        refuse_unseeable(&p, &pp, &["name"])?;
        d.port = p
            .get("number")
            .map(|(v, p)| {
                as_u64(v, &p).and_then(|n| {
                    u32::try_from(n)
                        .ok()
                        .filter(|n| *n <= 65535)
                        .ok_or(())
                        .or_else(|()| err(&p, "not a port number"))
                })
            })
            .transpose()?;
    }
    Ok(d)
}

fn parse_claim_rule(v: &Value, path: &str) -> Result<ClaimRule> {
    let o = Obj::new(
        v,
        path,
        &["key", "values", "notValues", "nestedClaimDelimiter"],
    )?;
    let key = o
        .string("key")?
        .filter(|k| !k.is_empty())
        .ok_or(())
        .or_else(|()| err(&child(path, "key"), "required: the claim name"))?;
    let path_parts = match o.string("nestedClaimDelimiter")? {
        Some(d) if d.is_empty() => {
            return err(&child(path, "nestedClaimDelimiter"), "must not be empty");
        }
        Some(d) => key.split(d.as_str()).map(str::to_owned).collect(),
        None => vec![key],
    };
    let values = o.string_list("values")?.unwrap_or_default();
    let not_values = o.string_list("notValues")?.unwrap_or_default();
    Ok(ClaimRule {
        path: path_parts,
        values,
        not_values,
    })
}

/// An HTTP header name (RFC 9110 token), not a pseudo-header and not `host`.
/// An RFC 9110 token: what header names and (RFC 6265) cookie names are made of.
fn is_token(name: &str) -> bool {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(is_tchar)
}

fn header_name(v: &Value, path: &str) -> Result<String> {
    let name = as_string(v, path)?;
    if !is_token(&name) {
        return err(path, format!("{name:?} is not a valid HTTP header name"));
    }
    let lower = name.to_ascii_lowercase();
    if lower == "host" {
        return err(path, "the host header cannot be set from a claim");
    }
    Ok(lower)
}

fn parse_provider(name: &str, v: &Value, path: &str) -> Result<Provider> {
    let o = Obj::new(
        v,
        path,
        &[
            "issuer",
            "audiences",
            "tokenSource",
            "local",
            "remote",
            "claimsToHeaders",
            "keepToken",
            "clockSkewSeconds",
            "outputPayloadToHeader",
        ],
    )?;
    let keys = match (o.get("local"), o.get("remote")) {
        (Some((l, lp)), None) => parse_local(l, &lp)?,
        (None, Some((r, rp))) => KeySource::Remote(parse_remote(r, &rp)?),
        (None, None) => return err(path, "needs one of local or remote"),
        (Some(_), Some(_)) => return err(path, "set only one of local or remote"),
    };
    let (mut headers, mut query_params, mut cookies) = (
        vec![HeaderSource {
            name: "authorization".into(),
            prefix: "Bearer ".into(),
        }],
        vec!["access_token".to_owned()],
        Vec::new(),
    );
    if let Some((ts, tp)) = o.get("tokenSource") {
        let t = Obj::new(ts, &tp, &["headers", "queryParams", "cookies"])?;
        headers = t
            .list("headers")?
            .unwrap_or_default()
            .iter()
            .map(|(h, hp)| {
                let h = Obj::new(h, hp, &["name", "prefix"])?;
                let Some((n, np)) = h.get("name") else {
                    return err(&child(hp, "name"), "required");
                };
                Ok(HeaderSource {
                    name: header_name(n, &np)?,
                    prefix: h.string("prefix")?.unwrap_or_default(),
                })
            })
            .collect::<Result<_>>()?;
        query_params = t.string_list("queryParams")?.unwrap_or_default();
        if let Some(i) = query_params.iter().position(String::is_empty) {
            return err(&format!("{tp}.queryParams[{i}]"), "must not be empty");
        }
        cookies = t.string_list("cookies")?.unwrap_or_default();
        if let Some(i) = cookies.iter().position(|c| !is_token(c)) {
            return err(
                &format!("{tp}.cookies[{i}]"),
                format!(
                    "{:?} is not a valid cookie name",
                    cookies.get(i).map_or("", |c| c)
                ),
            );
        }
        if headers.is_empty() && query_params.is_empty() && cookies.is_empty() {
            return err(
                &tp,
                "names no header, no query parameter and no cookie: no token could ever be found",
            );
        }
    }
    let claims_to_headers = o
        .list("claimsToHeaders")?
        .unwrap_or_default()
        .iter()
        .map(|(c, cp)| {
            let c = Obj::new(c, cp, &["claim", "header", "append"])?;
            let claim = c
                .string("claim")?
                .filter(|s| !s.is_empty())
                .ok_or(())
                .or_else(|()| err(&child(cp, "claim"), "required"))?;
            let Some((h, hp)) = c.get("header") else {
                return err(&child(cp, "header"), "required");
            };
            Ok(ClaimToHeader {
                claim,
                header: header_name(h, &hp)?,
                append: c.bool("append")?.unwrap_or(false),
            })
        })
        .collect::<Result<_>>()?;
    let audiences = o.string_list("audiences")?;
    // A uint32, as jwt_authn's `clock_skew_seconds` (a larger one would switch expiry off).
    let clock_skew_seconds = match o.get("clockSkewSeconds") {
        None => 60,
        Some((v, p)) => match as_u64(v, &p)? {
            s if s <= u64::from(u32::MAX) => s,
            _ => {
                return err(
                    &p,
                    "at most 4294967295 (a uint32, as jwt_authn's clock_skew_seconds)",
                );
            }
        },
    };
    let payload_header = o
        .get("outputPayloadToHeader")
        .map(|(v, p)| header_name(v, &p))
        .transpose()?;
    Ok(Provider {
        name: name.to_owned(),
        issuer: o.string("issuer")?.filter(|s| !s.is_empty()),
        audiences,
        headers,
        query_params,
        cookies,
        keys,
        claims_to_headers,
        keep_token: o.bool("keepToken")?.unwrap_or(false),
        clock_skew_seconds,
        payload_header,
    })
}

fn parse_local(v: &Value, path: &str) -> Result<KeySource> {
    let o = Obj::new(v, path, &["inline", "secretRef"])?;
    if o.get("secretRef").is_some() {
        return err(
            &child(path, "secretRef"),
            "a proxy-wasm filter cannot read Kubernetes Secrets: put the key in local.inline, or serve a JWKS and use remote",
        );
    }
    let Some(inline) = o.string("inline")? else {
        return err(
            &child(path, "inline"),
            "required: a PEM public key or a JWKS",
        );
    };
    match jwks::parse_inline(&inline) {
        Ok(keys) => Ok(KeySource::Local(Rc::new(keys))),
        Err(e) => err(
            &child(path, "inline"),
            format!("not a usable PEM public key or JWKS: {e}"),
        ),
    }
}

/// Splits an absolute http(s) URL into (scheme, host, port, path-with-query).
pub fn split_url(url: &str) -> Option<(&str, &str, u16, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (rest.get(..i)?, rest.get(i..)?),
        None => (rest, "/"),
    };
    if authority.is_empty()
        || authority.contains('@')
        || path.contains('#')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse::<u16>() {
            Ok(port) if port > 0 => (h, port),
            _ => return None,
        },
        _ => (authority, default_port),
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme, host, port, path))
}

fn parse_remote(v: &Value, path: &str) -> Result<Remote> {
    let o = Obj::new(
        v,
        path,
        &[
            "url",
            "cluster",
            "destinationRef",
            "cacheDuration",
            "timeout",
            "enableAsyncFetch",
        ],
    )?;
    let url_path = child(path, "url");
    let Some(url) = o.string("url")? else {
        return err(&url_path, "required: the JWKS URL");
    };
    let Some((_, host, port, req_path)) = split_url(&url) else {
        return err(&url_path, "not an absolute http(s) URL");
    };
    let (url_host, url_port, req_path) = (
        host.to_owned(),
        port,
        if req_path.starts_with('?') {
            format!("/{req_path}")
        } else {
            req_path.to_owned()
        },
    );
    let authority = match url
        .split_once("://")
        .and_then(|(_, r)| r.split(['/', '?']).next())
    {
        Some(a) => a.to_owned(),
        None => url_host.clone(),
    };
    let mut derived = format!("outbound|{url_port}||{url_host}");
    if let Some((d, dp)) = o.get("destinationRef") {
        let d = Obj::new(d, &dp, &["kind", "ref", "port"])?;
        d.string("kind")?;
        let Some((r, rp)) = d.get("ref") else {
            return err(&child(&dp, "ref"), "required");
        };
        let r = Obj::new(r, &rp, &["name", "namespace", "cluster"])?;
        let Some(name) = r.string("name")? else {
            return err(&child(&rp, "name"), "required");
        };
        r.string("cluster")?;
        let host = match r.string("namespace")? {
            Some(ns) => format!("{name}.{ns}.svc.cluster.local"),
            None => name,
        };
        let mut port = url_port;
        if let Some((p, pp)) = d.get("port") {
            let p = Obj::new(p, &pp, &["number", "name"])?;
            p.string("name")?;
            if let Some((n, np)) = p.get("number") {
                port = u16::try_from(as_u64(n, &np)?)
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or(())
                    .or_else(|()| err(&np, "not a port number"))?;
            }
        }
        derived = format!("outbound|{port}||{host}");
    }
    let cluster = match o.string("cluster")? {
        Some(c) if c.is_empty() => return err(&child(path, "cluster"), "must not be empty"),
        Some(c) => c,
        None => derived,
    };
    let duration = |key: &str, default_ms: u64| -> Result<u64> {
        match o.get(key) {
            None => Ok(default_ms),
            Some((v, p)) => {
                let text = as_string(v, &p)?;
                match parse_duration_ms(&text) {
                    // The host takes a callout's timeout in 32-bit milliseconds: 2^32 ms would
                    // arrive as 0, no timeout at all (SPEC §5).
                    Some(ms) if key == "timeout" && ms > u64::from(u32::MAX) => err(
                        &p,
                        "at most 4294967295ms (about 49 days: the host takes 32-bit milliseconds)",
                    ),
                    Some(ms) if ms > 0 => Ok(ms),
                    Some(_) => err(&p, "must be greater than zero"),
                    None => err(
                        &p,
                        format!(
                            "{text:?} is not a duration (use e.g. \"300s\", \"1.5s\", \"5m\", \"1h\")"
                        ),
                    ),
                }
            }
        }
    };
    Ok(Remote {
        url: url.clone(),
        cluster,
        authority,
        path: req_path,
        cache_duration_ms: duration("cacheDuration", 300_000)?,
        timeout_ms: duration("timeout", 5_000)?,
        async_fetch: o.bool("enableAsyncFetch")?.unwrap_or(false),
    })
}

/// `"300s"`, `"1.5s"`, `"250ms"`, `"5m"`, `"1h"`, `"1h30m"` → milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let factor = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            _ => return None,
        };
        total += value * factor;
        rest = tail;
    }
    (total.is_finite() && total < 1e15).then_some(total.round() as u64)
}

/// RFC 3339 (`2024-01-02T03:04:05Z`, fractions and offsets allowed) → seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    if b.len() < 20
        || b.get(4) != Some(&b'-')
        || b.get(7) != Some(&b'-')
        || !matches!(b.get(10), Some(b'T' | b't' | b' '))
        || b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
    {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
    }
    let offset = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() && b.get(i + 3) == Some(&b':') => {
            let off = num(i + 1..i + 3)? * 3600 + num(i + 4..i + 6)? * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
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
