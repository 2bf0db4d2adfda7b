//! The per-request flow, pure: a request view, the governing policy, the keys and the time in;
//! a decision out. The filter layer only gathers the view and applies the decision.

use crate::claims;
use crate::extract::{self, Found, Header, Location};
use std::rc::Rc;

use crate::jwt::{self, Jwt};
use crate::jwt_cache::TokenCache;
use crate::policy::{ClearRouteCache, Policy, Provider, ValidationPolicy};
use crate::status::Status;
use crate::verify;

pub use crate::jwks_cache::Keys;

/// A change to the request before it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    Remove(String),
    /// Replace every value.
    Set(String, String),
    /// Add after any existing value.
    Add(String, String),
    /// Replace every value with raw bytes (the `Cookie` header without a token cookie).
    SetBytes(String, Vec<u8>),
    /// Replace `:path` (a token taken out of the query).
    SetPath(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        ops: Vec<HeaderOp>,
        clear_route_cache: bool,
    },
    Deny {
        status: Status,
        www_authenticate: String,
        /// The provider whose check gave `status` (for its stats), when one did.
        provider: Option<usize>,
    },
    /// A dry-run policy would have denied: the request goes on with only `ops` (the removal of
    /// client-sent claim headers), and the denial is counted and logged.
    WouldDeny { status: Status, ops: Vec<HeaderOp> },
    /// Ask again once these providers' keys are ready (or failed).
    WaitForKeys(Vec<usize>),
}

/// The request as the core needs it.
pub struct RequestView<'a> {
    pub headers: &'a [Header],
}

impl RequestView<'_> {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    fn is_cors_preflight(&self) -> bool {
        self.header(":method") == Some(b"OPTIONS")
            && self.header("origin").is_some_and(|v| !v.is_empty())
            && self
                .header("access-control-request-method")
                .is_some_and(|v| !v.is_empty())
    }

    /// `<scheme>://<host><path without query>`, as `jwt_authn` builds its realm.
    fn realm(&self) -> String {
        let text =
            |name| String::from_utf8_lossy(self.header(name).unwrap_or_default()).into_owned();
        let path = text(":path");
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let scheme = self
            .header(":scheme")
            .map(|_| text(":scheme"))
            .unwrap_or_else(|| "http".into());
        let realm = format!("{scheme}://{}{path}", text(":authority"));
        realm
            .chars()
            .filter(|c| !c.is_control())
            .map(|c| if c == '"' { '\'' } else { c })
            .take(MAX_REALM_CHARS)
            .collect()
    }
}

/// `jwt_authn` cuts the realm of its `www-authenticate` header at 256 characters.
const MAX_REALM_CHARS: usize = 256;

fn www_authenticate(realm: &str, status: Status) -> String {
    if status == Status::JwtMissing {
        format!("Bearer realm=\"{realm}\"")
    } else {
        format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
    }
}

enum TokenResult {
    Valid {
        provider: usize,
        jwt: Rc<Jwt>,
    },
    /// Refused, and the provider whose check said so (`None`: the token's form, or no provider
    /// with its issuer).
    Invalid(Status, Option<usize>),
    Pending(Vec<usize>),
}

/// Envoy's audience comparison: `http(s)://` and a trailing `/` do not count.
fn normalize_audience(aud: &str) -> &str {
    let aud = aud
        .strip_prefix("http://")
        .or_else(|| aud.strip_prefix("https://"))
        .unwrap_or(aud);
    aud.strip_suffix('/').unwrap_or(aud)
}

/// The provider's `audiences` rule (unset or empty: any).
pub fn audience_allowed(provider: &Provider, jwt: &Jwt) -> bool {
    match &provider.audiences {
        None => true,
        Some(allowed) if allowed.is_empty() => true,
        Some(allowed) => jwt.audiences.iter().any(|a| {
            allowed
                .iter()
                .any(|b| normalize_audience(a) == normalize_audience(b))
        }),
    }
}

/// The token as the cache knows it: its signature segment spelled canonically. That segment is
/// not signed and its decoder (like `jwt_authn`'s) takes whitespace, `=` padding and set spare
/// bits, so one valid token has any number of spellings; keyed as they come, none but the
/// canonical one could be cached, and a request carrying several of them paid a signature
/// check for each, every time (review 4: 8 spellings, 18× a normal request). Keyed by the one
/// spelling, they are one entry, verified once.
fn cache_key(token: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    match token.rsplit_once('.') {
        Some((signed, sig)) if !crate::b64::is_canonical_url(sig) => {
            match crate::b64::canonical_url(sig) {
                Some(sig) => Cow::Owned(format!("{signed}.{sig}")),
                None => Cow::Borrowed(token),
            }
        }
        _ => Cow::Borrowed(token),
    }
}

/// One token against the providers whose locations held it: format and header first, then per
/// provider issuer → time → audience → keys → signature. The first provider that accepts wins;
/// else the first provider's failure is the answer. A token verified before (same policy,
/// provider and key version) skips parsing and the signature check.
fn check_token<'k>(
    policy: &Policy,
    found: &Found,
    now: u64,
    keys: &dyn Fn(usize) -> Keys<'k>,
    cache: &mut TokenCache,
) -> TokenResult {
    if found.token.len() > policy.limits.max_token_bytes {
        return TokenResult::Invalid(Status::JwtBadFormat, None);
    }
    let key = cache_key(&found.token);
    let (jwt, verdicts, known_failures) = match cache.get(&key, now) {
        Some(c) => (c.jwt, c.verified.to_vec(), c.failed.to_vec()),
        None => match jwt::parse(&found.token) {
            Ok(jwt) => (Rc::new(jwt), Vec::new(), Vec::new()),
            Err(status) => return TokenResult::Invalid(status, None),
        },
    };
    // Keys that failed this token on the way to the ones that verified it (several providers
    // for one issuer, say an old and a new key): remembered with the token, so its next
    // request does not pay those failed signature checks again.
    let mut failed_now: Vec<(crate::jwt_cache::Verdict, Status)> = Vec::new();
    let mut first_error = None;
    let mut pending = Vec::new();
    let mut issuer_matched = false;
    for &i in &found.providers {
        let Some(provider) = policy.providers.get(i) else {
            continue;
        };
        if provider
            .issuer
            .as_ref()
            .is_some_and(|iss| jwt.iss.as_ref() != Some(iss))
        {
            continue;
        }
        issuer_matched = true;
        let checked = jwt
            .check_time(now, provider.clock_skew_seconds)
            .and_then(|()| {
                if audience_allowed(provider, &jwt) {
                    Ok(())
                } else {
                    Err(Status::JwtAudienceNotAllowed)
                }
            });
        if let Err(status) = checked {
            first_error.get_or_insert((status, i));
            continue;
        }
        match keys(i) {
            Keys::Ready {
                jwks,
                version,
                may_refetch,
            } => {
                let verdict = (policy.index, i, version);
                if let Some(&(_, status)) = known_failures.iter().find(|(v, _)| *v == verdict) {
                    cache.record(true);
                    first_error.get_or_insert((status, i));
                    continue;
                }
                let hit = verdicts.contains(&verdict);
                cache.record(hit);
                if hit {
                    if !failed_now.is_empty() {
                        cache.insert_verified(
                            &key,
                            Rc::clone(&jwt),
                            verdict,
                            &failed_now,
                            provider.clock_skew_seconds,
                        );
                    }
                    return TokenResult::Valid { provider: i, jwt };
                }
                match verify::verify_signature(&jwt, jwks) {
                    Ok(()) => {
                        cache.insert_verified(
                            &key,
                            Rc::clone(&jwt),
                            verdict,
                            &failed_now,
                            provider.clock_skew_seconds,
                        );
                        return TokenResult::Valid { provider: i, jwt };
                    }
                    Err(Status::JwksKidAlgMismatch) if may_refetch => pending.push(i),
                    Err(status) => {
                        failed_now.push((verdict, status));
                        first_error.get_or_insert((status, i));
                    }
                }
            }
            Keys::Pending => pending.push(i),
            Keys::Failed(status) => {
                first_error.get_or_insert((status, i));
            }
        }
    }
    if !pending.is_empty() {
        return TokenResult::Pending(pending);
    }
    if !issuer_matched {
        return TokenResult::Invalid(Status::JwtUnknownIssuer, None);
    }
    match first_error {
        Some((status, i)) => TokenResult::Invalid(status, Some(i)),
        None => TokenResult::Invalid(Status::JwtVerificationFail, None),
    }
}

/// Anti-spoofing: the headers the policy may set are never taken from the client. Only those
/// the request carries are removed (each removal is a hostcall, and the view holds every header).
pub fn sanitize(policy: &Policy, req: &RequestView<'_>) -> Vec<HeaderOp> {
    policy
        .spoofable_headers
        .iter()
        .filter(|h| req.header(h).is_some())
        .map(|h| HeaderOp::Remove(h.clone()))
        .collect()
}

/// Decides one request governed by `policy`; a dry-run policy never denies (`WouldDeny`).
pub fn decide<'k>(
    policy: &Policy,
    req: &RequestView<'_>,
    now: u64,
    keys: &dyn Fn(usize) -> Keys<'k>,
    cache: &mut TokenCache,
) -> Decision {
    match evaluate(policy, req, now, keys, cache) {
        Decision::Deny { status, .. } if policy.dry_run => Decision::WouldDeny {
            status,
            ops: sanitize(policy, req),
        },
        decision => decision,
    }
}

fn evaluate<'k>(
    policy: &Policy,
    req: &RequestView<'_>,
    now: u64,
    keys: &dyn Fn(usize) -> Keys<'k>,
    cache: &mut TokenCache,
) -> Decision {
    let mut ops = sanitize(policy, req);
    if policy.bypass_cors_preflight && req.is_cors_preflight() {
        return Decision::Allow {
            ops,
            clear_route_cache: false,
        };
    }
    let deny_by = |status, provider| Decision::Deny {
        status,
        www_authenticate: www_authenticate(&req.realm(), status),
        provider,
    };
    let deny = |status| deny_by(status, None);
    let lenient = policy.validation == ValidationPolicy::AllowMissingOrFailed;
    // Everything passes in the lenient mode, but only what verified adds headers.
    let pass_unverified = |ops| Decision::Allow {
        ops,
        clear_route_cache: false,
    };

    let path = req.header(":path").unwrap_or_default();
    let found = match extract::extract(policy, req.headers, path) {
        Ok(found) => found,
        Err(extract::TooManyTokens) if lenient => return pass_unverified(ops),
        Err(extract::TooManyTokens) => return deny(Status::JwtMultipleTokens),
    };
    if found.is_empty() {
        return match policy.validation {
            ValidationPolicy::RequireValid => deny(Status::JwtMissing),
            _ => pass_unverified(ops),
        };
    }

    // Checking stops at the first token that fails (as `jwt_authn`): a request's cost is one
    // failed verification, however many forged tokens it carries.
    let mut valid = Vec::new();
    let mut waiting = Vec::new();
    for f in &found {
        match check_token(policy, f, now, keys, cache) {
            TokenResult::Valid { provider, jwt } => valid.push((f, provider, jwt)),
            TokenResult::Invalid(..) if lenient => return pass_unverified(ops),
            TokenResult::Invalid(status, provider) => return deny_by(status, provider),
            TokenResult::Pending(providers) => waiting.extend(providers),
        }
    }
    if !waiting.is_empty() {
        waiting.sort_unstable();
        waiting.dedup();
        return Decision::WaitForKeys(waiting);
    }
    for (_, provider, jwt) in &valid {
        let status = if !claims::rules_hold(&jwt.payload, &policy.claims) {
            Status::ClaimsNotAllowed
        } else if !claims::scopes_hold(&jwt.payload, &policy.required_scopes) {
            Status::ScopesNotAllowed
        } else {
            continue;
        };
        if !lenient {
            return deny_by(status, Some(*provider));
        }
        return pass_unverified(ops);
    }

    let mut added_headers = false;
    let mut strip_params: Vec<&str> = Vec::new();
    let mut strip_cookies: Vec<&str> = Vec::new();
    for (found, provider_index, jwt) in &valid {
        let Some(provider) = policy.providers.get(*provider_index) else {
            continue;
        };
        for rule in &provider.claims_to_headers {
            let Some(value) = claims::lookup(&jwt.payload, &rule.claim).and_then(claims::render)
            else {
                continue;
            };
            added_headers = true;
            ops.push(if rule.append {
                HeaderOp::Add(rule.header.clone(), value)
            } else {
                HeaderOp::Set(rule.header.clone(), value)
            });
        }
        if let Some(header) = &provider.payload_header {
            added_headers = true;
            ops.push(HeaderOp::Set(header.clone(), jwt.payload_b64.clone()));
        }
        if !provider.keep_token {
            match &found.location {
                Location::Header(name) => ops.push(HeaderOp::Remove(name.clone())),
                Location::Query(name) => strip_params.push(name),
                Location::Cookie(name) => strip_cookies.push(name),
            }
        }
    }
    if !strip_params.is_empty() {
        ops.push(HeaderOp::SetPath(extract::remove_query_params(
            path,
            &strip_params,
        )));
    }
    if !strip_cookies.is_empty() {
        ops.push(match extract::remove_cookies(req.headers, &strip_cookies) {
            Some(rest) => HeaderOp::SetBytes("cookie".into(), rest),
            None => HeaderOp::Remove("cookie".into()),
        });
    }
    let clear_route_cache = match policy.clear_route_cache {
        ClearRouteCache::Auto => added_headers,
        ClearRouteCache::True => !valid.is_empty(),
        ClearRouteCache::False => false,
    };
    Decision::Allow {
        ops,
        clear_route_cache,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::testkit::{NOW, pem, token};
    use serde_json::{Value, json};

    fn policy(provider: Value, extra: Value) -> Policy {
        let mut spec = json!({"config": {"providers": {"p": provider}}});
        if let (Some(c), Value::Object(e)) = (spec["config"].as_object_mut(), extra) {
            c.extend(e);
        }
        config::parse(spec.to_string().as_bytes())
            .unwrap()
            .policies
            .remove(0)
    }

    fn rsa_provider(extra: Value) -> Value {
        let mut p = json!({"issuer": "https://issuer.example", "local": {"inline": pem("rsa")},
            "tokenSource": {"headers": [{"name": "X-Auth", "prefix": "Bearer "}], "queryParams": ["auth_token"]}});
        if let (Some(o), Value::Object(e)) = (p.as_object_mut(), extra) {
            o.extend(e);
        }
        p
    }

    fn request(path: &str, extra: &[(&str, &str)]) -> Vec<Header> {
        let mut h: Vec<Header> = vec![
            (":method".into(), b"GET".to_vec()),
            (":scheme".into(), b"http".to_vec()),
            (":authority".into(), b"api.example".to_vec()),
            (":path".into(), path.as_bytes().to_vec()),
        ];
        h.extend(
            extra
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        h
    }

    fn run(policy: &Policy, headers: &[Header]) -> Decision {
        let keys = |i: usize| match &policy.providers[i].keys {
            crate::policy::KeySource::Local(j) => Keys::local(j),
            crate::policy::KeySource::Remote(_) => Keys::Pending,
        };
        decide(
            policy,
            &RequestView { headers },
            NOW,
            &keys,
            &mut TokenCache::new(16, usize::MAX),
        )
    }

    fn denied(d: &Decision) -> (Status, &str) {
        match d {
            Decision::Deny {
                status,
                www_authenticate,
                ..
            } => (*status, www_authenticate),
            other => panic!("expected a denial, got {other:?}"),
        }
    }

    fn ops(d: Decision) -> Vec<HeaderOp> {
        match d {
            Decision::Allow { ops, .. } => ops,
            other => panic!("expected to allow, got {other:?}"),
        }
    }

    #[test]
    fn missing_token_gets_a_realm_without_the_query() {
        let p = policy(rsa_provider(json!({})), json!({}));
        let d = run(&p, &request("/get?x=1", &[]));
        assert_eq!(
            denied(&d),
            (
                Status::JwtMissing,
                r#"Bearer realm="http://api.example/get""#
            )
        );
    }

    #[test]
    fn invalid_token_adds_error_invalid_token() {
        let p = policy(rsa_provider(json!({})), json!({}));
        let bearer = format!("Bearer {}", token("RS256_tampered"));
        let d = run(&p, &request("/get", &[("x-auth", &bearer)]));
        assert_eq!(
            denied(&d),
            (
                Status::JwtVerificationFail,
                r#"Bearer realm="http://api.example/get", error="invalid_token""#
            )
        );
    }

    #[test]
    fn valid_token_adds_claims_and_strips_the_token() {
        let p = policy(
            rsa_provider(json!({"claimsToHeaders": [
            {"claim": "org", "header": "x-org"}, {"claim": "email", "header": "x-email", "append": true},
            {"claim": "realm.roles", "header": "x-roles"}, {"claim": "missing", "header": "x-missing"}]})),
            json!({}),
        );
        let path = format!("/get?a=1&auth_token={}", token("RS256"));
        let spoofed = [("x-org", "spoofed"), ("X-Missing", "spoofed")];
        let got = ops(run(&p, &request(&path, &spoofed)));
        assert_eq!(
            got,
            vec![
                // only the claim headers the client sent are removed (one hostcall each)
                HeaderOp::Remove("x-org".into()),
                HeaderOp::Remove("x-missing".into()),
                HeaderOp::Set("x-org".into(), "solo.io".into()),
                HeaderOp::Add("x-email".into(), "dev1@solo.io".into()),
                HeaderOp::Set("x-roles".into(), "reader,writer".into()),
                HeaderOp::SetPath(b"/get?a=1".to_vec()),
            ]
        );
        let bearer = format!("Bearer {}", token("RS256"));
        let got = ops(run(&p, &request("/get", &[("x-auth", &bearer)])));
        assert!(got.contains(&HeaderOp::Remove("x-auth".into())));
    }

    #[test]
    fn keep_token_keeps_it_and_payload_header_forwards_the_payload_segment() {
        let p = policy(
            rsa_provider(json!({"keepToken": true, "outputPayloadToHeader": "x-payload"})),
            json!({}),
        );
        let t = token("RS256");
        let got = ops(run(
            &p,
            &request("/get", &[("x-auth", &format!("Bearer {t}"))]),
        ));
        let segment = t.split('.').nth(1).unwrap().to_owned();
        assert_eq!(got, vec![HeaderOp::Set("x-payload".into(), segment)]);
    }

    #[test]
    fn every_token_found_must_be_valid() {
        let p = policy(rsa_provider(json!({})), json!({}));
        let path = format!("/get?auth_token={}", token("RS256_tampered"));
        let bearer = format!("Bearer {}", token("RS256"));
        assert_eq!(
            denied(&run(&p, &request(&path, &[("x-auth", &bearer)]))).0,
            Status::JwtVerificationFail
        );
    }

    #[test]
    fn checks_run_in_order_issuer_time_audience_signature() {
        let p = policy(rsa_provider(json!({"issuer": "https://other"})), json!({}));
        let bearer = format!("Bearer {}", token("RS256_tampered"));
        assert_eq!(
            denied(&run(&p, &request("/", &[("x-auth", &bearer)]))).0,
            Status::JwtUnknownIssuer
        );
        let p = policy(
            rsa_provider(json!({"audiences": ["someone-else"]})),
            json!({}),
        );
        let d = run(&p, &request("/", &[("x-auth", &bearer)]));
        assert_eq!(denied(&d).0, Status::JwtAudienceNotAllowed);
        assert_eq!(Status::JwtAudienceNotAllowed.http_code(), 403);
        let p = policy(
            rsa_provider(json!({"audiences": ["https://api.example/"]})),
            json!({}),
        );
        let ok = format!("Bearer {}", token("RS256"));
        assert!(
            matches!(
                run(&p, &request("/", &[("x-auth", &ok)])),
                Decision::Allow { .. }
            ),
            "audiences compare without scheme and trailing slash"
        );
    }

    #[test]
    fn header_prefix_is_case_sensitive_and_required() {
        let p = policy(rsa_provider(json!({})), json!({}));
        let lower = format!("bearer {}", token("RS256"));
        assert_eq!(
            denied(&run(&p, &request("/", &[("X-AUTH", &lower)]))).0,
            Status::JwtMissing
        );
        let upper_name = format!("Bearer {}", token("RS256"));
        assert!(matches!(
            run(&p, &request("/", &[("X-AUTH", &upper_name)])),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn an_empty_token_is_malformed_even_when_missing_is_allowed() {
        let p = policy(
            rsa_provider(json!({})),
            json!({"validationPolicy": "ALLOW_MISSING"}),
        );
        for (path, headers) in [
            ("/get?auth_token=", vec![]),
            ("/get?auth_token", vec![]),
            ("/get", vec![("x-auth", "Bearer ,")]),
        ] {
            assert_eq!(
                denied(&run(&p, &request(path, &headers))).0,
                Status::JwtBadFormat,
                "{path} {headers:?}"
            );
        }
        assert!(matches!(
            run(&p, &request("/get", &[("x-auth", "Bearer")])),
            Decision::Allow { .. }
        ));
    }

    #[test]
    fn a_token_cookie_is_removed_unless_keep_token() {
        let cookies = |keep: bool| {
            rsa_provider(json!({"keepToken": keep, "tokenSource": {"cookies": ["jwt"]}}))
        };
        let t = token("RS256");
        let sent = [
            ("cookie", format!("a=1; jwt={t}")),
            ("cookie", "b=\"2\"".to_owned()),
        ];
        let sent: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let got = ops(run(
            &policy(cookies(false), json!({})),
            &request("/", &sent),
        ));
        assert_eq!(
            got,
            vec![HeaderOp::SetBytes(
                "cookie".into(),
                b"a=1; b=\"2\"".to_vec()
            )]
        );
        let only = format!("jwt={t}");
        let got = ops(run(
            &policy(cookies(false), json!({})),
            &request("/", &[("cookie", &only)]),
        ));
        assert_eq!(got, vec![HeaderOp::Remove("cookie".into())]);
        let got = ops(run(&policy(cookies(true), json!({})), &request("/", &sent)));
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn any_provider_may_accept_a_token() {
        let mut spec = json!({"config": {"providers": {
            "a": {"local": {"inline": pem("ec256")}},
            "b": {"local": {"inline": pem("rsa")}}}}});
        spec["config"]["providers"]["a"]["issuer"] = json!("https://issuer.example");
        let p = config::parse(spec.to_string().as_bytes())
            .unwrap()
            .policies
            .remove(0);
        let bearer = format!("Bearer {}", token("RS256"));
        assert!(matches!(
            run(&p, &request("/", &[("authorization", &bearer)])),
            Decision::Allow { .. }
        ));
        let bad = format!("Bearer {}", token("RS256_other_key"));
        assert_eq!(
            denied(&run(&p, &request("/", &[("authorization", &bad)]))).0,
            Status::JwtVerificationFail
        );
    }

    #[test]
    fn validation_policies() {
        let bad = format!("Bearer {}", token("RS256_tampered"));
        let missing = policy(
            rsa_provider(json!({})),
            json!({"validationPolicy": "ALLOW_MISSING"}),
        );
        assert!(matches!(
            run(&missing, &request("/", &[])),
            Decision::Allow { .. }
        ));
        assert_eq!(
            denied(&run(&missing, &request("/", &[("x-auth", &bad)]))).0,
            Status::JwtVerificationFail
        );
        let lenient = policy(
            rsa_provider(json!({"claimsToHeaders": [{"claim": "org", "header": "x-org"}]})),
            json!({"allowMissingOrFailed": true}),
        );
        assert_eq!(
            ops(run(
                &lenient,
                &request("/", &[("x-auth", &bad), ("x-org", "spoofed")])
            )),
            vec![HeaderOp::Remove("x-org".into())]
        );
    }

    #[test]
    fn a_dry_run_policy_never_denies_but_says_what_it_would_do() {
        let spec = json!({"kind": "JWTPolicy", "metadata": {"name": "rollout", "annotations": {"jwt-policy/dry-run": "true"}},
            "spec": {"config": {"providers": {"p": rsa_provider(json!({"claimsToHeaders": [{"claim": "org", "header": "x-org"}]}))}}}});
        let p = config::parse(spec.to_string().as_bytes())
            .unwrap()
            .policies
            .remove(0);
        assert!(p.dry_run);
        let forged = format!("Bearer {}", token("RS256_tampered"));
        assert_eq!(
            run(
                &p,
                &request("/", &[("x-auth", &forged), ("x-org", "spoofed")])
            ),
            Decision::WouldDeny {
                status: Status::JwtVerificationFail,
                ops: vec![HeaderOp::Remove("x-org".into())]
            }
        );
        assert!(matches!(
            run(&p, &request("/", &[])),
            Decision::WouldDeny {
                status: Status::JwtMissing,
                ..
            }
        ));
        let good = format!("Bearer {}", token("RS256"));
        let allowed = ops(run(&p, &request("/", &[("x-auth", &good)])));
        assert!(allowed.contains(&HeaderOp::Set("x-org".into(), "solo.io".into())));
        let bad_mark = json!({"kind": "JWTPolicy", "metadata": {"annotations": {"jwt-policy/dry-run": "yes"}},
            "spec": {"config": {"providers": {"p": rsa_provider(json!({}))}}}});
        let e = config::parse(bad_mark.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.path, "metadata.annotations[\"jwt-policy/dry-run\"]");
    }

    #[test]
    fn cors_preflight_passes_without_a_token() {
        let p = policy(rsa_provider(json!({})), json!({}));
        let mut h = request(
            "/",
            &[
                ("origin", "https://app"),
                ("access-control-request-method", "POST"),
            ],
        );
        h[0].1 = b"OPTIONS".to_vec();
        assert!(matches!(run(&p, &h), Decision::Allow { .. }));
    }

    #[test]
    fn claims_and_scopes_rules_answer_403() {
        let bearer = format!("Bearer {}", token("RS256"));
        let p = policy(
            rsa_provider(json!({})),
            json!({"claims": [{"key": "groups", "values": ["ops"]}], "requiredScopes": ["read"]}),
        );
        assert!(matches!(
            run(&p, &request("/", &[("x-auth", &bearer)])),
            Decision::Allow { .. }
        ));
        let p = policy(
            rsa_provider(json!({})),
            json!({"claims": [{"key": "realm/tier/name", "nestedClaimDelimiter": "/", "notValues": ["gold"]}]}),
        );
        assert_eq!(
            denied(&run(&p, &request("/", &[("x-auth", &bearer)]))).0,
            Status::ClaimsNotAllowed
        );
        let p = policy(
            rsa_provider(json!({})),
            json!({"requiredScopes": ["admin"]}),
        );
        assert_eq!(
            denied(&run(&p, &request("/", &[("x-auth", &bearer)]))).0,
            Status::ScopesNotAllowed
        );
    }

    #[test]
    fn remote_keys_not_yet_fetched_make_the_request_wait() {
        let p = policy(json!({"remote": {"url": "http://idp/jwks"}}), json!({}));
        let bearer = format!("Bearer {}", token("RS256"));
        assert_eq!(
            run(&p, &request("/", &[("authorization", &bearer)])),
            Decision::WaitForKeys(vec![0])
        );
        let bad = format!("Bearer {}", token("alg_none"));
        assert_eq!(
            denied(&run(&p, &request("/", &[("authorization", &bad)]))).0,
            Status::JwtHeaderNotImplementedAlg
        );
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::config;
    use crate::testkit::{NOW, pem, token};
    use serde_json::json;

    fn policy_of(spec: serde_json::Value) -> Policy {
        config::parse(spec.to_string().as_bytes())
            .unwrap()
            .policies
            .remove(0)
    }

    /// Each provider's local keys (version 0).
    fn local_keys<'p>(policy: &'p Policy) -> impl Fn(usize) -> Keys<'p> {
        |i: usize| match &policy.providers[i].keys {
            crate::policy::KeySource::Local(j) => Keys::local(j),
            crate::policy::KeySource::Remote(_) => Keys::Pending,
        }
    }

    fn decide_with<'k>(
        policy: &Policy,
        headers: &[crate::extract::Header],
        keys: &dyn Fn(usize) -> Keys<'k>,
        cache: &mut TokenCache,
    ) -> Decision {
        decide(policy, &RequestView { headers }, NOW, keys, cache)
    }

    #[test]
    fn a_cached_token_skips_the_keys_that_failed_it_before() {
        // Two providers for one issuer (an old and a new key): the token verifies at the second.
        let policy = policy_of(json!({"config": {"providers": {
            "a-old": {"local": {"inline": pem("rsa_other")}},
            "b-new": {"local": {"inline": pem("rsa")}}}}}));
        let keys = local_keys(&policy);
        let headers = vec![
            (":path".to_string(), b"/".to_vec()),
            (
                "authorization".to_string(),
                format!("Bearer {}", token("RS256")).into_bytes(),
            ),
        ];
        let mut cache = TokenCache::new(8, usize::MAX);
        for round in 0..3 {
            let d = decide_with(&policy, &headers, &keys, &mut cache);
            assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
            let (hits, misses) = cache.take_counts();
            if round == 0 {
                assert_eq!((hits, misses), (0, 2), "both keys tried");
            } else {
                assert_eq!((hits, misses), (2, 0), "no signature checked again");
            }
        }
        // A forged token is never remembered, failures included.
        let forged = vec![(
            "authorization".to_string(),
            format!("Bearer {}", token("RS256_tampered")).into_bytes(),
        )];
        for _ in 0..2 {
            let d = decide_with(&policy, &forged, &keys, &mut cache);
            assert!(matches!(d, Decision::Deny { .. }), "{d:?}");
            assert_eq!(cache.take_counts(), (0, 2));
        }
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn every_spelling_of_one_token_is_one_cache_entry_verified_once() {
        // Review 4: 8 spellings in one request cost 8 signature checks on every request.
        let policy =
            policy_of(json!({"config": {"providers": {"p": {"local": {"inline": pem("rsa")}}}}}));
        let keys = local_keys(&policy);
        let t = token("RS256");
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let query: Vec<String> = (0..8)
            .map(|i| format!("access_token={signed}.{}%20{}", &sig[..=i], &sig[i + 1..]))
            .collect();
        let headers = vec![(
            ":path".to_string(),
            format!("/?{}", query.join("&")).into_bytes(),
        )];
        let mut cache = TokenCache::new(8, usize::MAX);
        for round in 0..3 {
            let d = decide_with(&policy, &headers, &keys, &mut cache);
            assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
            let (hits, misses) = cache.take_counts();
            assert_eq!(misses, u64::from(round == 0), "round {round}: {hits} hits");
        }
        assert_eq!(cache.len(), 1);
        // The canonical spelling finds the same entry.
        let canonical = vec![(
            "authorization".to_string(),
            format!("Bearer {t}").into_bytes(),
        )];
        let d = decide_with(&policy, &canonical, &keys, &mut cache);
        assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
        assert_eq!(cache.take_counts(), (1, 0));
        assert_eq!(cache_key(&format!("{signed}.{sig}==")), cache_key(&t));
        assert_eq!(cache_key("a.b.%%%"), "a.b.%%%");
    }

    #[test]
    fn a_verified_token_is_reused_only_for_the_same_keys() {
        let policy =
            policy_of(json!({"config": {"providers": {"p": {"local": {"inline": pem("rsa")}}}}}));
        let crate::policy::KeySource::Local(jwks) = &policy.providers[0].keys else {
            panic!("the policy has local keys")
        };
        let other = crate::jwks::parse_pem(&pem("rsa_other")).unwrap();
        let headers = |t: &str| {
            vec![
                (":path".to_string(), b"/".to_vec()),
                (
                    "authorization".to_string(),
                    format!("Bearer {t}").into_bytes(),
                ),
            ]
        };
        let mut cache = TokenCache::new(8, usize::MAX);
        let good = headers(&token("RS256"));
        let v1 = |_: usize| Keys::Ready {
            jwks,
            version: 1,
            may_refetch: false,
        };
        assert!(matches!(
            decide_with(&policy, &good, &v1, &mut cache),
            Decision::Allow { .. }
        ));
        assert_eq!(cache.len(), 1);
        assert!(matches!(
            decide_with(&policy, &good, &v1, &mut cache),
            Decision::Allow { .. }
        ));
        let rotated = |_: usize| Keys::Ready {
            jwks: &other,
            version: 2,
            may_refetch: false,
        };
        let d = decide_with(&policy, &good, &rotated, &mut cache);
        assert!(
            matches!(
                d,
                Decision::Deny {
                    status: Status::JwtVerificationFail,
                    ..
                }
            ),
            "{d:?}"
        );
        let forged = headers(&token("RS256_tampered"));
        assert!(matches!(
            decide_with(&policy, &forged, &v1, &mut cache),
            Decision::Deny { .. }
        ));
        assert_eq!(cache.len(), 1, "failed tokens are not cached");
        let far_future = u64::MAX / 2;
        let d = decide(
            &policy,
            &RequestView { headers: &good },
            far_future,
            &v1,
            &mut cache,
        );
        assert!(
            matches!(
                d,
                Decision::Deny {
                    status: Status::JwtExpired,
                    ..
                }
            ),
            "{d:?}"
        );
    }

    #[test]
    fn limits_on_token_size_and_count() {
        let spec = json!({"policies": [{"config": {"providers": {"p": {"local": {"inline": pem("rsa")},
            "tokenSource": {"queryParams": ["a", "b", "c"]}}}}}], "settings": {"limits": {"maxTokenBytes": 100, "maxTokensPerRequest": 2}}});
        let policy = config::parse(spec.to_string().as_bytes())
            .unwrap()
            .policies
            .remove(0);
        let keys = |_: usize| Keys::Failed(Status::JwksFetchFail);
        let run = |path: String| {
            decide(
                &policy,
                &RequestView {
                    headers: &[(":path".to_string(), path.into_bytes())],
                },
                NOW,
                &keys,
                &mut TokenCache::new(0, usize::MAX),
            )
        };
        assert!(matches!(
            run(format!("/?a={}", token("RS256"))),
            Decision::Deny {
                status: Status::JwtBadFormat,
                ..
            }
        ));
        assert!(matches!(
            run("/?a=x&b=y&c=z".into()),
            Decision::Deny {
                status: Status::JwtMultipleTokens,
                ..
            }
        ));
    }
}
