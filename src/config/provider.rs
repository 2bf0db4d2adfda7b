//! Providers (`spec.config.providers.NAME`): issuer, audiences, token sources, local or remote
//! keys, claims to headers; and the policy's `claims` rules.

use std::rc::Rc;

use serde_json::Value;

use super::time::parse_duration_ms;
use super::{Obj, Result, as_string, as_u64, child, err};
use crate::jwks;
use crate::policy::*;

pub(super) fn parse_claim_rule(v: &Value, path: &str) -> Result<ClaimRule> {
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

/// An RFC 9110 token: what header names and (RFC 6265) cookie names are made of.
fn is_token(name: &str) -> bool {
    let is_tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty() && name.chars().all(is_tchar)
}

/// An HTTP header name (RFC 9110 token), not a pseudo-header and not `host`.
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

/// A header the filter writes (a claim's, the payload's): a [`header_name`] that neither frames
/// the message or the connection nor instructs Envoy. A claim in `content-length` or
/// `transfer-encoding` would let whoever chooses the claim's value (often the user: an `email`,
/// a `name`) decide how the upstream reads the body (review 10's note); one in an `x-envoy-*`
/// header is read by Envoy's router (timeouts, retries, the original destination: review 11
/// showed `x-envoy-upstream-rq-timeout-ms` taken from a claim).
fn output_header_name(v: &Value, path: &str) -> Result<String> {
    const FRAMING: [&str; 10] = [
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "http2-settings",
    ];
    let name = header_name(v, path)?;
    if FRAMING.contains(&name.as_str()) {
        return err(
            path,
            format!(
                "{name} frames the message or the connection: it cannot be written from a token"
            ),
        );
    }
    if name.starts_with("x-envoy-") {
        return err(
            path,
            format!(
                "{name}: Envoy reads x-envoy-* headers as instructions, they cannot be written from a token"
            ),
        );
    }
    Ok(name)
}

pub(super) fn parse_provider(name: &str, v: &Value, path: &str) -> Result<Provider> {
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
                header: output_header_name(h, &hp)?,
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
        .map(|(v, p)| output_header_name(v, &p))
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
