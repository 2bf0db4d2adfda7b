//! `jwt-policy explain`: what the filter would do with one request, step by step, from the
//! filter's own core. The verdict is `authn::decide`'s (the function the wasm runs); the steps
//! re-run the same checks (`select`, `extract`, `jwt::parse`, `Jwt::check_time`,
//! `authn::audience_allowed`, `verify::selects` and `verifies`, `claims`) to say why.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::docs::{kind, load};
use super::flags::flags;
use crate::authn::{self, Decision, HeaderOp, Keys, RequestView};
use crate::config::{self, Proxy};
use crate::extract::{self, Header, Location};
use crate::jwks::{self, Jwks};
use crate::jwt;
use crate::jwt_cache::TokenCache;
use crate::policy::{Config, KeySource, Phase, Policy};
use crate::select::{self, RouteInfo};
use crate::{b64, claims, verify};

const VALUE_FLAGS: &[&str] = &[
    "--token",
    "--header",
    "--path",
    "--method",
    "--host",
    "--route-name",
    "--route-label",
    "--route-namespace",
    "--cluster",
    "--jwks",
    "--now",
];

/// The request's route and upstream, as the flags describe them.
struct FlagRoute {
    labels: std::collections::BTreeMap<String, String>,
    namespace: Option<String>,
    name: Option<String>,
    cluster: Option<String>,
}

impl RouteInfo for FlagRoute {
    fn route_labels(&mut self) -> Option<&std::collections::BTreeMap<String, String>> {
        Some(&self.labels)
    }
    fn route_namespace(&mut self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn route_name(&mut self) -> Option<&str> {
        self.name.as_deref()
    }
    fn cluster_name(&mut self) -> Option<&str> {
        self.cluster.as_deref()
    }
    fn local_service(&mut self) -> Option<(String, String)> {
        None
    }
    fn cluster_services(&mut self) -> Option<Vec<(String, String)>> {
        None
    }
}

/// The policies of the files: a WasmPlugin's `pluginConfig` (for an Istio proxy), or every
/// JWTPolicy resource of the files together (for a plain Envoy).
fn load_config(files: &[String]) -> Result<Config, String> {
    let mut policies = Vec::new();
    for file in files {
        for doc in load(file)? {
            match kind(&doc) {
                "WasmPlugin" => {
                    let pc = doc
                        .pointer("/spec/pluginConfig")
                        .ok_or_else(|| format!("{file}: a WasmPlugin without pluginConfig"))?;
                    return config::parse_on(pc.to_string().as_bytes(), Proxy::Istio)
                        .map_err(|e| format!("{file}: pluginConfig: {e}"));
                }
                "JWTPolicy" => policies.push(doc),
                _ if doc.get("policies").is_some() || doc.get("config").is_some() => {
                    return config::parse(doc.to_string().as_bytes())
                        .map_err(|e| format!("{file}: {e}"));
                }
                _ => {}
            }
        }
    }
    if policies.is_empty() {
        return Err("no JWTPolicy or WasmPlugin in the files".into());
    }
    config::parse(json!({ "policies": policies }).to_string().as_bytes()).map_err(|e| e.to_string())
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(crate) fn utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn short(token: &str) -> String {
    if token.len() <= 40 {
        return token.to_owned();
    }
    let head: String = token.chars().take(20).collect();
    let tail: String = token
        .chars()
        .rev()
        .take(12)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}…{tail} ({} bytes)", token.len())
}

/// A token segment decoded for display, whatever it holds.
fn segment(token: &str, i: usize) -> Value {
    let Some(seg) = token.split('.').nth(i) else {
        return Value::Null;
    };
    match b64::decode_url(seg) {
        Some(bytes) => serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())),
        None => Value::Null,
    }
}

fn location_text(location: &Location) -> String {
    match location {
        Location::Header(name) => format!("header {name}"),
        Location::Query(name) => format!("query parameter {name}"),
        Location::Cookie(name) => format!("cookie {name}"),
    }
}

/// Keys given for remote providers: `--jwks FILE` (every remote provider) or `--jwks NAME=FILE`.
fn remote_keys(
    policy: &Policy,
    jwks_flags: &[&str],
    fetch: bool,
) -> Result<Vec<Option<Jwks>>, String> {
    let mut out = Vec::new();
    for provider in &policy.providers {
        let KeySource::Remote(remote) = &provider.keys else {
            out.push(None);
            continue;
        };
        let file = jwks_flags
            .iter()
            .filter_map(|f| match f.split_once('=') {
                Some((name, file)) if name == provider.name => Some(file),
                Some(_) => None,
                None => Some(*f),
            })
            .next_back();
        let body = match file {
            Some(file) => std::fs::read(file).map_err(|e| format!("--jwks {file}: {e}"))?,
            None if fetch => fetch_jwks(&remote.url)?,
            None => {
                out.push(None);
                continue;
            }
        };
        let keys = jwks::parse_jwks(&body)
            .map_err(|e| format!("the JWKS of provider {}: {e}", provider.name))?;
        out.push(Some(keys));
    }
    Ok(out)
}

fn fetch_jwks(url: &str) -> Result<Vec<u8>, String> {
    let mut resp = ureq::get(url)
        .header("accept", "application/json")
        .call()
        .map_err(|e| format!("--fetch {url}: {e}"))?;
    resp.body_mut()
        .with_config()
        .limit(4 * 1024 * 1024)
        .read_to_vec()
        .map_err(|e| format!("--fetch {url}: {e}"))
}

pub(crate) fn explain(args: &[String], out: &mut String) -> Result<bool, String> {
    let f = flags(args, VALUE_FLAGS)?;
    if let Some(unknown) = f
        .switches
        .iter()
        .find(|s| !["--json", "--fetch"].contains(&s.as_str()))
    {
        return Err(format!("unknown option {unknown} (see `jwt-policy help`)"));
    }
    if f.files.is_empty() {
        return Err("explain needs policy files (see `jwt-policy help`)".into());
    }
    let config = load_config(&f.files)?;
    let now = match f.value("--now") {
        Some(n) => n
            .parse::<u64>()
            .map_err(|_| format!("--now {n}: want UNIX seconds"))?,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970")?
            .as_secs(),
    };
    let method = f.value("--method").unwrap_or("GET");
    let path = f.value("--path").unwrap_or("/");
    let host = f.value("--host").unwrap_or("example.com");
    let mut headers: Vec<Header> = vec![
        (":method".into(), method.as_bytes().to_vec()),
        (":scheme".into(), b"http".to_vec()),
        (":authority".into(), host.as_bytes().to_vec()),
        (":path".into(), path.as_bytes().to_vec()),
    ];
    for h in f.all("--header") {
        let (name, value) = h
            .split_once(':')
            .ok_or_else(|| format!("--header {h}: want NAME:VALUE"))?;
        headers.push((
            name.trim().to_ascii_lowercase(),
            value.trim().as_bytes().to_vec(),
        ));
    }
    let mut route = FlagRoute {
        labels: Default::default(),
        namespace: f.value("--route-namespace").map(str::to_owned),
        name: f.value("--route-name").map(str::to_owned),
        cluster: f.value("--cluster").map(str::to_owned),
    };
    for l in f.all("--route-label") {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("--route-label {l}: want KEY=VALUE"))?;
        route.labels.insert(k.to_owned(), v.to_owned());
    }

    let mut report = json!({"now": now, "now_utc": utc(now)});
    // Selection: the oldest enforcing policy that selects governs (the filter's own function).
    let selection = select::selection(&config, &mut route);
    let who = selection.as_ref().map(|s| s.who).unwrap_or_default();
    let stripped = selection
        .as_ref()
        .map(|s| s.stripped.clone())
        .unwrap_or_default();
    let mut rows = Vec::new();
    let mut doubtful = Vec::new();
    for (i, p) in config.policies.iter().enumerate() {
        let selects = select::selects(p, config.settings.istio, &mut route);
        if stripped.contains(&i) && !selects {
            doubtful.push(i);
        }
        let why = if p.routes.is_none() && p.destinations.is_none() {
            "no applyToRoutes / applyToDestinations: selects every request".to_owned()
        } else {
            let mut parts = Vec::new();
            for (j, sel) in p.routes.iter().flatten().enumerate() {
                let m = select::route_selector_matches(sel, &mut route);
                parts.push(format!(
                    "applyToRoutes[{j}] {}",
                    if m { "matches" } else { "does not match" }
                ));
            }
            for (j, sel) in p.destinations.iter().flatten().enumerate() {
                let m =
                    select::destination_selector_matches(sel, config.settings.istio, &mut route);
                parts.push(format!(
                    "applyToDestinations[{j}] {}",
                    if m { "matches" } else { "does not match" }
                ));
            }
            parts.join(", ")
        };
        rows.push(
            json!({"name": p.name, "phase": p.phase.name(), "priority": p.priority,
            "created": p.created.map(|c| utc(u64::try_from(c).unwrap_or(0))), "selects": selects,
            "governs": who.enforce == Some(i), "dry_run": p.dry_run,
            "shadow": who.shadow == Some(i), "in_doubt": doubtful.contains(&i), "why": why}),
        );
    }
    let (governing, shadow) = (who.enforce, who.shadow);
    if let (Some(_), Some(si)) = (governing, shadow)
        && let Some(p) = config.policies.get(si)
    {
        set(
            &mut report,
            "dry_run",
            json!(format!(
                "{} (dry run, older) is decided beside the enforcing policy: its would-be \
                 denials are counted and logged, and of it only the removal of the claim headers \
                 it would write reaches the request",
                p.name
            )),
        );
    }
    // What this instance removes besides the deciding policy's own changes, before them: the
    // client's copies of the claim headers of the dry runs older than it (`select::stripped`);
    // in an instance before the deciding policy's, those of its phase, leaving the deciding
    // policy's token headers (as `worker` does).
    let deciding = governing.or(shadow);
    let decides_here = deciding.is_some_and(|i| select::serves(&config, i));
    let keep: Vec<&str> = match deciding.and_then(|i| config.policies.get(i)) {
        Some(p) if !decides_here => p.token_headers(),
        _ => Vec::new(),
    };
    let stripped: Vec<String> = {
        let mut names: Vec<String> = Vec::new();
        let here = stripped
            .iter()
            .filter(|d| decides_here || select::strips_here(&config, who, **d));
        for p in here.filter_map(|i| config.policies.get(*i)) {
            for h in &p.spoofable_headers {
                if !names.contains(h)
                    && !keep.contains(&h.as_str())
                    && headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(h))
                {
                    names.push(h.clone());
                }
            }
        }
        names
    };
    let without = |headers: &[Header]| -> Vec<Header> {
        headers
            .iter()
            .filter(|(n, _)| !stripped.iter().any(|h| n.eq_ignore_ascii_case(h)))
            .cloned()
            .collect()
    };
    if !doubtful.is_empty() {
        let names: Vec<&str> = doubtful
            .iter()
            .filter_map(|i| config.policies.get(*i))
            .map(|p| p.name.as_str())
            .collect();
        set(
            &mut report,
            "in_doubt",
            json!(format!(
                "{} (dry run) cannot be evaluated for this request: not decided, but the \
                 client's copies of the claim headers it would write are removed",
                names.join(", ")
            )),
        );
    }
    set(&mut report, "policies", Value::Array(rows));
    set(
        &mut report,
        "request",
        json!({"method": method, "host": host, "path": path,
        "route_name": route.name, "route_labels": route.labels, "cluster": route.cluster}),
    );
    if let Err(u) = &selection {
        let name = config
            .policies
            .get(u.policy)
            .map_or("?", |p| p.name.as_str());
        set(
            &mut report,
            "decision",
            json!({"verdict": "refused", "status": 500,
                "why": format!("policy {name} cannot be evaluated for this request: {}", u.why)}),
        );
        return finish(&report, f.has("--json"), out, false);
    }
    let Some(policy) = deciding.and_then(|i| config.policies.get(i)) else {
        let decision = if stripped.is_empty() {
            json!({"verdict": "untouched", "why": "no policy selects the request"})
        } else {
            json!({"verdict": "allow", "status": 200, "upstream_headers": upstream(&without(&headers), &[]),
                "why": "no policy decides the request; the claim headers of the dry runs in \
                        doubt are removed"})
        };
        set(&mut report, "decision", decision);
        return finish(&report, f.has("--json"), out, true);
    };
    if !decides_here {
        let why = format!(
            "the governing policy is {}; this instance serves only {} policies",
            policy.phase.name(),
            config.settings.phase.map(Phase::name).unwrap_or_default()
        );
        let decision = if stripped.is_empty() {
            json!({"verdict": "untouched", "why": why})
        } else {
            json!({"verdict": "allow", "status": 200, "upstream_headers": upstream(&without(&headers), &[]),
                "why": format!("{why}; it removes the client's copies of the claim headers of \
                                older dry runs of its phase")})
        };
        set(&mut report, "decision", decision);
        return finish(&report, f.has("--json"), out, true);
    }
    if let Some(token) = f.value("--token") {
        place_token(policy, token, &mut headers);
    }
    let remote = remote_keys(
        policy,
        &f.all("--jwks").collect::<Vec<_>>(),
        f.has("--fetch"),
    )?;
    let keys_of = |i: usize| match (
        policy.providers.get(i).map(|p| &p.keys),
        remote.get(i).and_then(Option::as_ref),
    ) {
        (Some(KeySource::Local(j)), _) => Keys::local(j),
        (_, Some(j)) => Keys::local(j),
        _ => Keys::Failed(crate::status::Status::JwksFetchFail),
    };

    // Tokens and the checks of each, as check_token runs them.
    let req_path = path.as_bytes();
    let found = extract::extract(policy, &headers, req_path);
    let mut tokens = Vec::new();
    match &found {
        Err(_) => {
            let why = format!(
                "more than {} tokens: Found multiple Jwt tokens",
                policy.limits.max_tokens_per_request
            );
            set(&mut report, "extraction", json!(why));
        }
        Ok(found) => {
            for t in found {
                tokens.push(token_steps(policy, t, now, &keys_of));
            }
        }
    }
    set(&mut report, "tokens", Value::Array(tokens));

    let decision = authn::decide(
        policy,
        &RequestView { headers: &headers },
        now,
        &keys_of,
        &mut TokenCache::new(0, usize::MAX),
    );
    let allowed = !matches!(decision, Decision::Deny { .. });
    set(
        &mut report,
        "decision",
        decision_json(&decision, &without(&headers), policy),
    );
    finish(&report, f.has("--json"), out, allowed)
}

/// `v[key] = x` for an object (the report is built of objects only).
fn set(v: &mut Value, key: &str, x: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_owned(), x);
    }
}

fn quoted(v: &Option<String>) -> String {
    v.as_ref().map_or("none".to_owned(), |s| format!("{s:?}"))
}

/// `--token T`: where the governing policy's first provider looks first.
fn place_token(policy: &Policy, token: &str, headers: &mut Vec<Header>) {
    let Some(provider) = policy.providers.first() else {
        return;
    };
    if let Some(h) = provider.headers.first() {
        headers.push((h.name.clone(), format!("{}{token}", h.prefix).into_bytes()));
    } else if let Some(q) = provider.query_params.first()
        && let Some((_, path)) = headers.iter_mut().find(|(n, _)| n == ":path")
    {
        let sep = if path.contains(&b'?') { '&' } else { '?' };
        path.extend(format!("{sep}{q}={token}").into_bytes());
    }
}

fn token_steps<'k>(
    policy: &Policy,
    t: &extract::Found,
    now: u64,
    keys_of: &dyn Fn(usize) -> Keys<'k>,
) -> Value {
    let mut entry = json!({"location": location_text(&t.location), "token": short(&t.token),
        "header": segment(&t.token, 0), "payload": segment(&t.token, 1)});
    let parsed = if t.token.len() > policy.limits.max_token_bytes {
        Err(crate::status::Status::JwtBadFormat)
    } else {
        jwt::parse(&t.token)
    };
    let jwt = match parsed {
        Ok(jwt) => jwt,
        Err(status) => {
            set(&mut entry, "parse", json!(status.as_str()));
            return entry;
        }
    };
    set(&mut entry, "parse", json!("ok"));
    let mut providers = Vec::new();
    for &i in &t.providers {
        let Some(p) = policy.providers.get(i) else {
            continue;
        };
        let mut steps = Vec::new();
        let mut step = |check: &str, ok: bool, detail: String| {
            steps.push(json!({"check": check, "ok": ok, "detail": detail}));
            ok
        };
        let result = 'checks: {
            let issuer_ok = p
                .issuer
                .as_ref()
                .is_none_or(|iss| jwt.iss.as_ref() == Some(iss));
            let detail = match (&p.issuer, &jwt.iss) {
                (None, _) => "no issuer configured: any".to_owned(),
                (Some(want), got) => format!("token iss {}, configured {want:?}", quoted(got)),
            };
            if !step("issuer", issuer_ok, detail) {
                break 'checks "provider skipped: Jwt issuer is not configured".to_owned();
            }
            let time = jwt.check_time(now, p.clock_skew_seconds);
            let show = |v: Option<u64>| v.map_or("—".to_owned(), |s| format!("{} ({s})", utc(s)));
            let detail = format!(
                "now {} ({now}); nbf {}; exp {}; skew {} s",
                utc(now),
                show(jwt.nbf),
                show(jwt.exp),
                p.clock_skew_seconds
            );
            if let Err(status) = time {
                step("time", false, detail);
                break 'checks status.as_str().to_owned();
            }
            step("time", true, detail);
            let aud_ok = authn::audience_allowed(p, &jwt);
            let detail = match &p.audiences {
                None => "no audiences configured: any".to_owned(),
                Some(a) => format!("token aud {:?}, allowed {a:?}", jwt.audiences),
            };
            if !step("audience", aud_ok, detail) {
                break 'checks "Audiences in Jwt are not allowed".to_owned();
            }
            let jwks = match keys_of(i) {
                Keys::Ready { jwks, .. } => jwks,
                _ => {
                    step(
                        "keys",
                        false,
                        "remote keys not given: pass --jwks FILE (or NAME=FILE) or --fetch".into(),
                    );
                    break 'checks "Jwks remote fetch is failed".to_owned();
                }
            };
            let mut tried = false;
            for (k, key) in jwks.keys.iter().enumerate() {
                let kind = format!("{:?}", key.material).replace("(..)", "");
                let desc = format!(
                    "key #{k} ({kind}, kid {}, alg {}); token kid {}, alg {}",
                    quoted(&key.kid),
                    quoted(&key.alg),
                    quoted(&jwt.kid),
                    jwt.alg_name
                );
                if !verify::selects(&jwt, key) {
                    step(
                        "key",
                        false,
                        format!("{desc}: skipped (kid or alg differs)"),
                    );
                    continue;
                }
                tried = true;
                let ok = verify::verifies(
                    &key.material,
                    jwt.alg,
                    jwt.signed.as_bytes(),
                    &jwt.signature,
                );
                let what = if ok {
                    "signature valid"
                } else {
                    "signature does not verify"
                };
                if step("signature", ok, format!("{desc}: {what}")) {
                    break 'checks "valid".to_owned();
                }
            }
            if tried {
                "Jwt verification fails".to_owned()
            } else {
                "Jwks doesn't have key to match kid or alg from Jwt".to_owned()
            }
        };
        let mut rules = Vec::new();
        if result == "valid" {
            for rule in &policy.claims {
                let ok = claims::rules_hold(&jwt.payload, std::slice::from_ref(rule));
                let name = rule.path.join(".");
                let value = claims::lookup(&jwt.payload, &name).cloned();
                rules.push(
                    json!({"claim": name, "values": rule.values, "notValues": rule.not_values,
                    "token_has": value, "ok": ok}),
                );
            }
            if !policy.required_scopes.is_empty() {
                rules.push(json!({"requiredScopes": policy.required_scopes,
                    "token_has": jwt.payload.get("scope"),
                    "ok": claims::scopes_hold(&jwt.payload, &policy.required_scopes)}));
            }
        }
        providers
            .push(json!({"provider": p.name, "steps": steps, "result": result, "rules": rules}));
    }
    set(&mut entry, "providers", Value::Array(providers));
    entry
}

fn decision_json(decision: &Decision, headers: &[Header], policy: &Policy) -> Value {
    match decision {
        Decision::Deny {
            status,
            www_authenticate,
            ..
        } => json!({"verdict": "deny", "status": status.http_code(), "body": status.as_str(),
            "www_authenticate": www_authenticate, "policy": policy.name}),
        Decision::WouldDeny { status, ops } => json!({"verdict": "allow (dry run)",
            "would_deny": {"status": status.http_code(), "body": status.as_str()},
            "upstream_headers": upstream(headers, ops), "policy": policy.name}),
        Decision::Allow { ops, .. } => json!({"verdict": "allow", "status": 200,
            "upstream_headers": upstream(headers, ops), "policy": policy.name}),
        Decision::WaitForKeys(_) => json!({"verdict": "deny", "status": 401,
            "body": "Jwks remote fetch is failed", "policy": policy.name}),
    }
}

/// The request headers after the decision's changes, as the upstream would see them.
fn upstream(headers: &[Header], ops: &[HeaderOp]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    for op in ops {
        match op {
            HeaderOp::Remove(name) => h.retain(|(n, _)| !n.eq_ignore_ascii_case(name)),
            HeaderOp::Set(name, value) => {
                h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                h.push((name.clone(), value.clone()));
            }
            HeaderOp::Add(name, value) => h.push((name.clone(), value.clone())),
            HeaderOp::SetBytes(name, value) => {
                h.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                h.push((name.clone(), String::from_utf8_lossy(value).into_owned()));
            }
            HeaderOp::SetPath(path) => {
                if let Some((_, v)) = h.iter_mut().find(|(n, _)| n == ":path") {
                    *v = String::from_utf8_lossy(path).into_owned();
                }
            }
        }
    }
    h
}

fn finish(report: &Value, as_json: bool, out: &mut String, allowed: bool) -> Result<bool, String> {
    if as_json {
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    } else {
        text(report, out);
    }
    Ok(allowed)
}

fn text(r: &Value, out: &mut String) {
    let s = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    let req = &r["request"];
    let _ = writeln!(
        out,
        "request: {} {} (host {}){}{}",
        s(&req["method"]),
        s(&req["path"]),
        s(&req["host"]),
        req["route_name"]
            .as_str()
            .map(|n| format!(", route {n}"))
            .unwrap_or_default(),
        req["cluster"]
            .as_str()
            .map(|c| format!(", cluster {c}"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "now: {} ({})", s(&r["now_utc"]), s(&r["now"]));
    let _ = writeln!(
        out,
        "\npolicies, oldest first (the oldest enforcing one that selects governs; ~: a dry run \
         decided beside it, or alone when none enforces; ?: a dry run in doubt):"
    );
    for p in r["policies"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {} {} [{}, priority {}, created {}{}]: {}",
            if p["governs"] == json!(true) {
                "→"
            } else if p["shadow"] == json!(true) {
                "~"
            } else if p["in_doubt"] == json!(true) {
                "?"
            } else {
                " "
            },
            s(&p["name"]),
            s(&p["phase"]),
            s(&p["priority"]),
            s(&p["created"]),
            if p["dry_run"] == json!(true) {
                ", dry run"
            } else {
                ""
            },
            if p["selects"] == json!(true) {
                format!("selects ({})", s(&p["why"]))
            } else {
                format!("does not select ({})", s(&p["why"]))
            }
        );
    }
    if let Some(d) = r.get("dry_run") {
        let _ = writeln!(out, "\ndry run: {}", s(d));
    }
    if let Some(d) = r.get("in_doubt") {
        let _ = writeln!(out, "\nin doubt: {}", s(d));
    }
    if let Some(e) = r.get("extraction") {
        let _ = writeln!(out, "\ntokens: {}", s(e));
    }
    if let Some(tokens) = r["tokens"].as_array() {
        if tokens.is_empty() {
            let _ = writeln!(out, "\ntokens: none found in the policy's locations");
        }
        for (i, t) in tokens.iter().enumerate() {
            let _ = writeln!(
                out,
                "\ntoken #{} in {}: {}",
                i + 1,
                s(&t["location"]),
                s(&t["token"])
            );
            let _ = writeln!(out, "  header:  {}", s(&t["header"]));
            let _ = writeln!(out, "  payload: {}", s(&t["payload"]));
            if t["parse"] != json!("ok") {
                let _ = writeln!(out, "  parse: {} (checking stops here)", s(&t["parse"]));
                continue;
            }
            for p in t["providers"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "  provider {}:", s(&p["provider"]));
                for st in p["steps"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        out,
                        "    {} {:9} {}",
                        if st["ok"] == json!(true) {
                            "ok "
                        } else {
                            "NO "
                        },
                        s(&st["check"]),
                        s(&st["detail"])
                    );
                }
                for rule in p["rules"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        out,
                        "    {} rule      {}",
                        if rule["ok"] == json!(true) {
                            "ok "
                        } else {
                            "NO "
                        },
                        rule
                    );
                }
                let _ = writeln!(out, "    → {}", s(&p["result"]));
            }
        }
    }
    let d = &r["decision"];
    let _ = writeln!(out);
    match d["verdict"].as_str().unwrap_or_default() {
        "deny" => {
            let _ = writeln!(out, "decision: DENY {} {}", s(&d["status"]), s(&d["body"]));
            let _ = writeln!(out, "  www-authenticate: {}", s(&d["www_authenticate"]));
        }
        "untouched" => {
            let _ = writeln!(out, "decision: passes untouched ({})", s(&d["why"]));
        }
        "refused" => {
            let _ = writeln!(
                out,
                "decision: REFUSED {} ({})",
                s(&d["status"]),
                s(&d["why"])
            );
        }
        verdict => {
            let _ = writeln!(out, "decision: {}", verdict.to_ascii_uppercase());
            if d.get("would_deny").is_some() {
                let _ = writeln!(
                    out,
                    "  the dry-run policy would have denied: {} {}",
                    s(d.pointer("/would_deny/status").unwrap_or(&Value::Null)),
                    s(d.pointer("/would_deny/body").unwrap_or(&Value::Null))
                );
            }
            let _ = writeln!(out, "  the upstream sees:");
            for h in d["upstream_headers"].as_array().into_iter().flatten() {
                let _ = writeln!(out, "    {}: {}", s(&h[0]), s(&h[1]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = "policies/dev-example.yaml";
    const REMOTE: &str = "policies/dev-example-remote.yaml";
    const KEY: &str = "policies/demo-keys/demo-private-key.pem";
    const ISSUER: &str = "https://dev.example.com";
    const NOW: &str = "1800000000"; // 2027-01-15

    fn cli(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (String::new(), String::new());
        let code = crate::cli::run(&args, &mut out, &mut err);
        (code, out, err)
    }

    fn demo_token() -> String {
        std::fs::read_to_string("policies/demo-keys/demo-token.jwt")
            .unwrap()
            .trim()
            .to_owned()
    }

    fn signed(extra: &[&str]) -> String {
        let mut args = vec![
            "token",
            "--key",
            KEY,
            "--claim",
            "org=solo.io",
            "--exp",
            "100000h",
        ];
        args.extend_from_slice(extra);
        let (code, out, err) = cli(&args);
        assert_eq!(code, 0, "{err}");
        out.trim().to_owned()
    }

    fn explain_json(extra: &[&str]) -> (i32, Value) {
        let mut args = vec![
            "explain",
            GUIDE,
            "--route-label",
            "route=httpbin",
            "--now",
            NOW,
        ];
        args.extend_from_slice(extra);
        args.push("--json");
        let (code, out, err) = cli(&args);
        assert!(code == 0 || code == 1, "{err}");
        (code, serde_json::from_str(&out).unwrap())
    }

    #[test]
    fn a_route_name_policy_on_an_istio_inbound_cluster_is_refused_not_untouched() {
        // Review 4: the filter answers 500 there; explain says the same.
        let at = |file: &str, cluster: &str, route: &str| {
            cli(&[
                "explain",
                file,
                "--cluster",
                cluster,
                "--route-name",
                route,
                "--now",
                NOW,
            ])
        };
        // virtualservice.yaml's plugin (the callers' side) as if it ran on httpbin's inbound side.
        let (code, out, err) = at("istio/virtualservice.yaml", "inbound|8080||", "default");
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            out.contains("decision: REFUSED 500 (policy httpbin/jwt-policy cannot be evaluated"),
            "{out}"
        );
        let outbound = "outbound|8000||httpbin.httpbin.svc.cluster.local";
        let (code, out, err) = at("istio/virtualservice.yaml", outbound, "httpbin-default");
        assert_eq!(code, 0, "the callers' side, another route: {out}{err}");
        let (code, out, err) = at(
            "policies/dev-example-istio.yaml",
            "inbound|8080||",
            "default",
        );
        // A JWTPolicy file is explained as a plain Envoy, whose route names are its own.
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("passes untouched"), "{out}");
    }

    #[test]
    fn an_older_dry_run_is_shown_beside_the_enforcing_policy_that_governs() {
        // The guide's policy (enforcing) and an older copy marked dry run, in one file.
        let guide = crate::cli::docs::load(GUIDE).unwrap();
        let mut rollout = guide[0].clone();
        rollout["metadata"]["name"] = json!("rollout");
        rollout["metadata"]["creationTimestamp"] = json!("2020-01-01T00:00:00Z");
        rollout["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
        let mut enforced = guide[0].clone();
        enforced["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        let dir = std::env::temp_dir().join(format!("explain-dry-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("two.json");
        let list = json!({"kind": "List", "items": [enforced, rollout]});
        std::fs::write(&path, list.to_string()).unwrap();
        let path = path.to_string_lossy().into_owned();
        let args = [
            "explain",
            &path,
            "--route-label",
            "route=httpbin",
            "--now",
            NOW,
        ];
        let (code, out, err) = cli(&[&args[..], &["--json"]].concat());
        assert_eq!(code, 1, "{err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        let row = |name: &str| {
            r["policies"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"].as_str().unwrap().ends_with(name))
                .cloned()
                .unwrap()
        };
        assert_eq!(row("rollout")["shadow"], json!(true), "{r:#}");
        assert_eq!(row("rollout")["governs"], json!(false));
        assert_eq!(row("jwt-policy")["governs"], json!(true), "{r:#}");
        assert!(
            r["dry_run"].as_str().unwrap().contains("decided beside"),
            "{r:#}"
        );
        assert_eq!(
            r["decision"]["status"], 401,
            "the enforcing policy decides: {r:#}"
        );
        let (_, text, _) = cli(&args);
        assert!(text.contains("  ~ "), "{text}");
    }

    /// A dry run explain cannot evaluate for the request (a route name on an Istio inbound
    /// side): marked `?`, not decided, and the client's copies of its claim headers are gone
    /// from what the upstream sees, as in the filter (`worker::review7_tests::
    /// a_dry_run_in_doubt_has_the_clients_copies_of_its_claim_headers_removed`).
    #[test]
    fn a_dry_run_in_doubt_is_shown_and_its_claim_headers_are_removed() {
        let mut plugin =
            crate::cli::docs::load("istio/wasmplugin-sidecar.yaml").unwrap()[0].clone();
        let policy = &mut plugin["spec"]["pluginConfig"]["policies"][0];
        policy["spec"]["applyToRoutes"] = json!([{"route": {"name": "httpbin-mesh"}}]);
        policy["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
        let dir = std::env::temp_dir().join(format!("explain-doubt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("plugin.json");
        std::fs::write(&path, plugin.to_string()).unwrap();
        let path = path.to_string_lossy().into_owned();
        let args = [
            "explain",
            &path,
            "--route-name",
            "default",
            "--cluster",
            "inbound|8080||",
            "--header",
            "x-org:solo.io",
            "--header",
            "x-other:kept",
            "--now",
            NOW,
        ];
        let (code, out, err) = cli(&[&args[..], &["--json"]].concat());
        assert_eq!(code, 0, "{out}{err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["policies"][0]["in_doubt"], json!(true), "{r:#}");
        assert_eq!(r["decision"]["verdict"], "allow", "{r:#}");
        let seen = r["decision"]["upstream_headers"].as_array().unwrap();
        assert!(!seen.iter().any(|h| h[0] == "x-org"), "{r:#}");
        assert!(seen.iter().any(|h| h[0] == "x-other"), "{r:#}");
        let (_, text, _) = cli(&args);
        assert!(
            text.contains("  ? ") && text.contains("in doubt:"),
            "{text}"
        );
    }

    fn checks(report: &Value) -> Vec<(String, bool)> {
        report["tokens"][0]["providers"][0]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["check"].as_str().unwrap().to_owned(),
                    s["ok"] == json!(true),
                )
            })
            .collect()
    }

    #[test]
    fn missing_token_is_denied_with_the_filters_reply() {
        let (code, r) = explain_json(&["--path", "/get?x=1"]);
        assert_eq!(code, 1);
        assert_eq!(r["policies"][0]["governs"], json!(true));
        assert_eq!(r["tokens"], json!([]));
        assert_eq!(r["decision"]["status"], 401);
        assert_eq!(r["decision"]["body"], "Jwt is missing");
        assert_eq!(
            r["decision"]["www_authenticate"],
            r#"Bearer realm="http://example.com/get""#
        );
    }

    #[test]
    fn the_demo_token_passes_and_the_upstream_sees_its_claims() {
        let (code, r) = explain_json(&["--token", &demo_token()]);
        assert_eq!(code, 0, "{r:#}");
        assert_eq!(r["tokens"][0]["location"], "header x-auth");
        assert!(checks(&r).iter().all(|(_, ok)| *ok), "{r:#}");
        let seen = r["decision"]["upstream_headers"].as_array().unwrap();
        assert!(seen.contains(&json!(["x-org", "solo.io"])), "{seen:?}");
        assert!(seen.contains(&json!(["x-email", "dev1@solo.io"])));
        assert!(
            !seen.iter().any(|h| h[0] == "x-auth"),
            "the token is stripped"
        );
        // the text form tells the same
        let (code, out, _) = cli(&[
            "explain",
            GUIDE,
            "--route-label",
            "route=httpbin",
            "--token",
            &demo_token(),
            "--now",
            NOW,
        ]);
        assert_eq!(code, 0);
        assert!(out.contains("→ httpbin/jwt-policy"), "{out}");
        assert!(out.contains("decision: ALLOW"), "{out}");
        assert!(out.contains("x-org: solo.io"), "{out}");
    }

    #[test]
    fn a_token_from_another_issuer_stops_at_the_issuer() {
        let t = signed(&["--claim", "iss=https://dev.example.com/"]);
        let (code, r) = explain_json(&["--token", &t]);
        assert_eq!(code, 1);
        assert_eq!(checks(&r), vec![("issuer".to_owned(), false)]);
        let detail = r["tokens"][0]["providers"][0]["steps"][0]["detail"]
            .as_str()
            .unwrap();
        assert!(detail.contains("\"https://dev.example.com/\""), "{detail}");
        assert_eq!(r["decision"]["body"], "Jwt issuer is not configured");
    }

    #[test]
    fn an_expired_token_shows_its_dates() {
        let (code, r) = explain_json(&["--token", &demo_token(), "--now", "4102448400"]);
        assert_eq!(code, 1);
        assert_eq!(
            checks(&r),
            vec![("issuer".to_owned(), true), ("time".to_owned(), false)]
        );
        let detail = r["tokens"][0]["providers"][0]["steps"][1]["detail"]
            .as_str()
            .unwrap();
        assert!(
            detail.contains("exp 2100-01-01T00:00:00Z") && detail.contains("skew 60 s"),
            "{detail}"
        );
        assert_eq!(r["decision"]["body"], "Jwt is expired");
    }

    fn demo_jwks(kid: &str) -> String {
        use base64::Engine as _;
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        let pem = std::fs::read_to_string("policies/demo-keys/demo-public-key.pem").unwrap();
        let key = rsa::RsaPublicKey::from_public_key_pem(&pem).unwrap();
        let b64 = |b: Vec<u8>| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let doc = json!({"keys": [{"kty": "RSA", "kid": kid, "alg": "RS256",
            "n": b64(key.n().to_bytes_be()), "e": b64(key.e().to_bytes_be())}]});
        let dir = std::env::temp_dir().join(format!("jwt-policy-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{kid}.json"));
        std::fs::write(&path, doc.to_string()).unwrap();
        path.to_string_lossy().into_owned()
    }

    fn explain_remote(token: &str, jwks: Option<&str>) -> (i32, Value) {
        let mut args = vec![
            "explain",
            REMOTE,
            "--route-label",
            "route=httpbin",
            "--now",
            NOW,
            "--token",
            token,
            "--json",
        ];
        if let Some(j) = jwks {
            args.extend_from_slice(&["--jwks", j]);
        }
        let (code, out, err) = cli(&args);
        assert!(code == 0 || code == 1, "{err}");
        (code, serde_json::from_str(&out).unwrap())
    }

    #[test]
    fn a_remote_provider_with_jwks_and_a_wrong_kid() {
        let jwks = demo_jwks("demo-1");
        let good = signed(&["--claim", &format!("iss={ISSUER}"), "--kid", "demo-1"]);
        let (code, r) = explain_remote(&good, Some(&jwks));
        assert_eq!(code, 0, "{r:#}");
        let wrong = signed(&["--claim", &format!("iss={ISSUER}"), "--kid", "rotated-away"]);
        let (code, r) = explain_remote(&wrong, Some(&jwks));
        assert_eq!(code, 1);
        let key = r["tokens"][0]["providers"][0]["steps"][3]["detail"]
            .as_str()
            .unwrap();
        assert!(
            key.contains("kid \"demo-1\"") && key.contains("token kid \"rotated-away\""),
            "{key}"
        );
        assert!(key.ends_with("skipped (kid or alg differs)"), "{key}");
        assert_eq!(
            r["decision"]["body"],
            "Jwks doesn't have key to match kid or alg from Jwt"
        );
        // without keys it says how to give them
        let (code, r) = explain_remote(&good, None);
        assert_eq!(code, 1);
        assert_eq!(r["decision"]["body"], "Jwks remote fetch is failed");
        let last = r["tokens"][0]["providers"][0]["steps"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert!(last["detail"].as_str().unwrap().contains("--jwks"));
    }

    #[test]
    fn fetch_gets_the_providers_jwks() {
        use std::io::{Read as _, Write as _};
        let body = std::fs::read_to_string(demo_jwks("demo-fetch")).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let n = conn.read(&mut buf).unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).into_owned();
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(reply.as_bytes()).unwrap();
            request
        });
        let policy = json!({"kind": "JWTPolicy", "metadata": {"name": "fetched"}, "spec": {"config": {"providers": {
            "idp": {"issuer": ISSUER, "remote": {"url": format!("http://127.0.0.1:{port}/keys.json")}}}}}});
        let dir = std::env::temp_dir().join(format!("jwt-policy-explain-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("fetched.json");
        std::fs::write(&file, policy.to_string()).unwrap();
        let token = signed(&["--claim", &format!("iss={ISSUER}"), "--kid", "demo-fetch"]);
        let (code, out, err) = cli(&[
            "explain",
            file.to_str().unwrap(),
            "--token",
            &token,
            "--fetch",
            "--now",
            NOW,
        ]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            server
                .join()
                .unwrap()
                .starts_with("GET /keys.json HTTP/1.1")
        );
        assert!(out.contains("signature valid"), "{out}");
    }

    #[test]
    fn an_unverifiable_token_is_still_decoded() {
        let (code, r) = explain_json(&["--token", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2ln"]);
        assert_eq!(code, 1);
        assert_eq!(r["tokens"][0]["header"], json!({"alg": "none"}));
        assert_eq!(r["tokens"][0]["payload"], json!({"sub": "x"}));
        assert_eq!(r["tokens"][0]["parse"], "Jwt header [alg] is not supported");
        assert_eq!(r["decision"]["body"], "Jwt header [alg] is not supported");
    }

    #[test]
    fn a_request_no_policy_selects_passes_untouched() {
        let (code, out, _) = cli(&["explain", GUIDE, "--route-label", "route=other"]);
        assert_eq!(code, 0);
        assert!(
            out.contains("does not select (applyToRoutes[0] does not match)"),
            "{out}"
        );
        assert!(out.contains("decision: passes untouched"), "{out}");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(utc(4_102_444_800), "2100-01-01T00:00:00Z");
        assert_eq!(utc(u64::MAX).len(), utc(u64::MAX).len()); // no panic
    }
}

#[cfg(test)]
mod review9_tests {
    //! Review 9: explain against the filter.
    use super::*;

    fn cli(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (mut out, mut err) = (String::new(), String::new());
        let code = crate::cli::run(&args, &mut out, &mut err);
        (code, out, err)
    }

    /// Finding 5. `seen` (the headers minus the dry runs' stripped ones) is taken before
    /// `--token` places the token: with `keepToken: true` the filter forwards the token header
    /// (X-Auth here), and explain's "what the upstream sees" leaves it out. Before this change
    /// `decision_json` got the headers after `place_token`.
    #[test]
    fn review9_explain_drops_the_token_it_placed_from_what_the_upstream_sees() {
        let mut policy = crate::cli::docs::load("policies/dev-example.yaml").unwrap()[0].clone();
        policy["spec"]["config"]["providers"]["dev-example"]["keepToken"] = json!(true);
        let dir = std::env::temp_dir().join(format!("explain-review9-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keep.json");
        std::fs::write(&path, policy.to_string()).unwrap();
        let path = path.to_string_lossy().into_owned();
        let token = std::fs::read_to_string("policies/demo-keys/demo-token.jwt").unwrap();
        let (code, out, err) = cli(&[
            "explain",
            &path,
            "--route-label",
            "route=httpbin",
            "--token",
            token.trim(),
            "--now",
            "1800000000",
            "--json",
        ]);
        assert_eq!(code, 0, "{out}{err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["decision"]["verdict"], "allow", "{r:#}");
        let seen = r["decision"]["upstream_headers"].as_array().unwrap();
        assert!(
            seen.iter().any(|h| h[0]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case("x-auth"))),
            "keepToken: the filter forwards X-Auth; explain shows {seen:?}"
        );
    }

    /// Finding 5b. A per-phase instance (`settings.phase: preAuthz`, as `render --istio`
    /// writes it) whose request the postAuthz policy decides: explain answers "untouched", but
    /// the filter's preAuthz instance removes the client's copies of the older preAuthz dry
    /// run's claim headers (`select::strips_here`: the earlier phase), here `x-dev-sub`.
    #[test]
    fn review9_explain_says_untouched_where_the_instance_removes_headers() {
        let policy = |name: &str, day: u32, dry: bool, phase: &str, header: &str| {
            let mut r = json!({"metadata": {"name": name,
                "creationTimestamp": format!("2024-01-{day:02}T00:00:00Z")},
                "spec": {"config": {"phase": {phase: {}}, "providers": {"p": {
                    "local": {"inline": crate::testkit::pem("ec256")},
                    "claimsToHeaders": [{"claim": "sub", "header": header}]}}}}});
            if dry {
                r["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
            }
            r
        };
        let plugin = json!({"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
            "metadata": {"name": "jwt-pre", "namespace": "istio-system"},
            "spec": {"phase": "AUTHZ", "pluginConfig": {"settings": {"phase": "preAuthz"},
                "policies": [policy("rollout", 1, true, "preAuthz", "x-dev-sub"),
                             policy("enforced", 2, false, "postAuthz", "x-user")]}}});
        let dir = std::env::temp_dir().join(format!("explain-review9b-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pre.json");
        std::fs::write(&path, plugin.to_string()).unwrap();
        let path = path.to_string_lossy().into_owned();
        let (code, out, err) = cli(&[
            "explain",
            &path,
            "--route-name",
            "a",
            "--cluster",
            "outbound|80||a.shop.svc.cluster.local",
            "--header",
            "x-dev-sub:admin",
            "--now",
            "1800000000",
            "--json",
        ]);
        assert!(code == 0 || code == 1, "{out}{err}");
        let r: Value = serde_json::from_str(&out).unwrap();
        assert_ne!(
            r["decision"]["verdict"], "untouched",
            "the filter's preAuthz instance removes x-dev-sub here: {:#}",
            r["decision"]
        );
    }
}
