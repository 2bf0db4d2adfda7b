//! The per-request flow, pure: a request view, the governing policy, the keys and the time in;
//! a decision out. The filter layer only gathers the view and applies the decision.

use crate::claims;
use crate::extract::{self, Found, Header, Location};
use crate::jwks::Jwks;
use crate::jwt::{self, Jwt};
use crate::policy::{ClearRouteCache, Policy, Provider, ValidationPolicy};
use crate::status::Status;
use crate::verify;

/// What the key store holds for one provider right now.
pub enum Keys<'a> {
    Ready(&'a Jwks),
    /// Not fetched yet: the request must wait.
    Pending,
    /// Fetching failed and no good keys are left.
    Failed,
}

/// A change to the request before it goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderOp {
    Remove(String),
    /// Replace every value.
    Set(String, String),
    /// Add after any existing value.
    Add(String, String),
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
    },
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
            .collect()
    }
}

fn www_authenticate(realm: &str, status: Status) -> String {
    if status == Status::JwtMissing {
        format!("Bearer realm=\"{realm}\"")
    } else {
        format!("Bearer realm=\"{realm}\", error=\"invalid_token\"")
    }
}

enum TokenResult {
    Valid { provider: usize, jwt: Box<Jwt> },
    Invalid(Status),
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

fn audience_allowed(provider: &Provider, jwt: &Jwt) -> bool {
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

/// One token against the providers whose locations held it: format and header first, then per
/// provider issuer → time → audience → keys → signature. The first provider that accepts wins;
/// else the first provider's failure is the answer.
fn check_token<'k>(
    policy: &Policy,
    found: &Found,
    now: u64,
    keys: &dyn Fn(usize) -> Keys<'k>,
) -> TokenResult {
    let jwt = match jwt::parse(&found.token) {
        Ok(jwt) => jwt,
        Err(status) => return TokenResult::Invalid(status),
    };
    let mut first_error = None;
    let mut pending = Vec::new();
    let candidates = found
        .providers
        .iter()
        .filter_map(|&i| policy.providers.get(i).map(|p| (i, p)));
    let mut issuer_matched = false;
    for (i, provider) in candidates {
        if provider
            .issuer
            .as_ref()
            .is_some_and(|iss| jwt.iss.as_ref() != Some(iss))
        {
            continue;
        }
        issuer_matched = true;
        let outcome = jwt
            .check_time(now, provider.clock_skew_seconds)
            .and_then(|()| {
                if audience_allowed(provider, &jwt) {
                    Ok(())
                } else {
                    Err(Status::JwtAudienceNotAllowed)
                }
            })
            .and_then(|()| match keys(i) {
                Keys::Ready(jwks) => verify::verify_signature(&jwt, jwks),
                Keys::Failed => Err(Status::JwksFetchFail),
                Keys::Pending => {
                    pending.push(i);
                    Ok(())
                }
            });
        match outcome {
            Ok(()) if pending.last() == Some(&i) => {}
            Ok(()) => {
                return TokenResult::Valid {
                    provider: i,
                    jwt: Box::new(jwt),
                };
            }
            Err(status) => {
                first_error.get_or_insert(status);
            }
        }
    }
    if !pending.is_empty() {
        return TokenResult::Pending(pending);
    }
    if !issuer_matched {
        return TokenResult::Invalid(Status::JwtUnknownIssuer);
    }
    TokenResult::Invalid(first_error.unwrap_or(Status::JwtVerificationFail))
}

/// Decides one request governed by `policy`.
pub fn decide<'k>(
    policy: &Policy,
    req: &RequestView<'_>,
    now: u64,
    keys: &dyn Fn(usize) -> Keys<'k>,
) -> Decision {
    // Anti-spoofing: headers the policy may set are never taken from the client.
    let mut ops: Vec<HeaderOp> = policy
        .spoofable_headers
        .iter()
        .map(|h| HeaderOp::Remove(h.clone()))
        .collect();
    if req.is_cors_preflight() {
        return Decision::Allow {
            ops,
            clear_route_cache: false,
        };
    }
    let deny = |status| Decision::Deny {
        status,
        www_authenticate: www_authenticate(&req.realm(), status),
    };

    let path = req.header(":path").unwrap_or_default();
    let found = extract::extract(policy, req.headers, path);
    if found.is_empty() {
        return match policy.validation {
            ValidationPolicy::RequireValid => deny(Status::JwtMissing),
            _ => Decision::Allow {
                ops,
                clear_route_cache: false,
            },
        };
    }

    let mut valid = Vec::new();
    let mut first_failure = None;
    let mut waiting = Vec::new();
    for f in &found {
        match check_token(policy, f, now, keys) {
            TokenResult::Valid { provider, jwt } => valid.push((f, provider, jwt)),
            TokenResult::Invalid(status) => {
                first_failure.get_or_insert(status);
            }
            TokenResult::Pending(providers) => waiting.extend(providers),
        }
    }
    let lenient = policy.validation == ValidationPolicy::AllowMissingOrFailed;
    if let Some(status) = first_failure
        && !lenient
    {
        return deny(status);
    }
    if !waiting.is_empty() {
        waiting.sort_unstable();
        waiting.dedup();
        return Decision::WaitForKeys(waiting);
    }
    for (_, _, jwt) in &valid {
        let status = if !claims::rules_hold(&jwt.payload, &policy.claims) {
            Status::ClaimsNotAllowed
        } else if !claims::scopes_hold(&jwt.payload, &policy.required_scopes) {
            Status::ScopesNotAllowed
        } else {
            continue;
        };
        if !lenient {
            return deny(status);
        }
        return Decision::Allow {
            ops,
            clear_route_cache: false,
        };
    }

    let mut added_headers = false;
    let mut strip_params: Vec<&str> = Vec::new();
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
            }
        }
    }
    if !strip_params.is_empty() {
        ops.push(HeaderOp::SetPath(extract::remove_query_params(
            path,
            &strip_params,
        )));
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
