//! Review 11 (independent adversarial review of the review-10 fixes, 2026-12-07): the cache's
//! skew leeway, claims rules and rendering, paused requests by context id, output header names.
//!
//! Findings' tests (`review11_*` without `held`) failed on the code under review and pass since
//! their fixes (the list-comma one documents a limit kept as SPEC §4 says); the
//! `review11_held_*` tests keep what held.

use serde_json::{Value, json};

use crate::authn::{Decision, HeaderOp};
use crate::config;
use crate::jwt_cache::TokenCache;
use crate::policy::Policy;
use crate::status::Status;
use crate::testkit::NOW;

const ISS: &str = "https://issuer.example";

// Review 10's fixtures (its provider and tokens share one HMAC key and the issuer above).
use crate::review10_tests::{
    Clocked, bearer, hs_provider, one_provider, req, run, run_at, status, tok,
};

fn policies(spec: Value) -> Vec<Policy> {
    config::parse(spec.to_string().as_bytes()).unwrap().policies
}

fn allowed(d: &Decision) -> bool {
    matches!(d, Decision::Allow { .. })
}

fn sets(d: &Decision) -> Vec<(String, String)> {
    match d {
        Decision::Allow { ops, .. } => ops
            .iter()
            .filter_map(|op| match op {
                HeaderOp::Set(n, v) | HeaderOp::Add(n, v) => Some((n.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Findings (these fail on the code under review).

/// Cost (low). The entry now stays until `exp` plus the skew of the providers *of the looking
/// request*, and a lookup with a smaller leeway removes it: a request on a policy (or at a
/// location) whose provider has a smaller `clockSkewSeconds` evicts the verdict another policy
/// (larger skew) earned, so that policy pays the signature check again: review 10's fix is undone
/// by interleaving one cheap, denied request per token. Two policies share each worker's cache.
/// Eight cheap denials on the strict route make one request on the lenient route cost eight
/// verifications again (the exact cost review 10 fixed).
#[test]
fn review11_a_stricter_skew_elsewhere_evicts_an_in_skew_verdict() {
    let ps = policies(json!({"policies": [
        {"config": {"providers": {"lenient": hs_provider(json!({"clockSkewSeconds": 300}))}}},
        {"config": {"providers": {"strict": hs_provider(json!({"clockSkewSeconds": 0}))}}}]}));
    let (lenient, strict) = (&ps[0], &ps[1]);
    let mut cache = TokenCache::new(64, usize::MAX);
    let tokens: Vec<String> = (0..8)
        .map(|i| tok(json!({"iss": ISS, "jti": format!("t{i}"), "exp": NOW - 30})))
        .collect();
    let query = tokens
        .iter()
        .map(|t| format!("access_token={t}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut all = req(&[]);
    all[3].1 = format!("/get?{query}").into_bytes();
    assert!(allowed(&run_at(lenient, &all, NOW, &mut cache)));
    let _ = cache.take_counts();
    assert!(allowed(&run_at(lenient, &all, NOW, &mut cache)));
    assert_eq!(cache.take_counts().1, 0, "held: review 10's fix");
    // One cheap request per token on the strict policy's route: each denied (expired there)
    // before any signature check.
    for t in &tokens {
        let d = run_at(
            strict,
            &req(&[("authorization", &bearer(t))]),
            NOW,
            &mut cache,
        );
        assert_eq!(status(&d), Some(Status::JwtExpired));
    }
    let _ = cache.take_counts();
    assert!(allowed(&run_at(lenient, &all, NOW, &mut cache)));
    let (hits, misses) = cache.take_counts();
    assert_eq!(
        misses, 0,
        "after 8 denials elsewhere the lenient request paid {misses} signature checks again \
         ({hits} skipped)"
    );
}

/// The same within one policy: two providers, one issuer and key, different skews and locations.
/// A request carrying the token where only the strict provider looks evicts the lenient
/// provider's verdict.
#[test]
fn review11_a_stricter_providers_location_evicts_the_lenient_providers_verdict() {
    let p = policies(json!({"config": {"providers": {
        "lenient": hs_provider(json!({"clockSkewSeconds": 300,
            "tokenSource": {"headers": [{"name": "x-a"}]}})),
        "strict": hs_provider(json!({"clockSkewSeconds": 0,
            "tokenSource": {"headers": [{"name": "x-b"}]}}))}}}))
    .remove(0);
    let mut cache = TokenCache::new(64, usize::MAX);
    let t = tok(json!({"iss": ISS, "exp": NOW - 30}));
    assert!(allowed(&run_at(&p, &req(&[("x-a", &t)]), NOW, &mut cache)));
    assert_eq!(
        status(&run_at(&p, &req(&[("x-b", &t)]), NOW, &mut cache)),
        Some(Status::JwtExpired)
    );
    let _ = cache.take_counts();
    assert!(allowed(&run_at(&p, &req(&[("x-a", &t)]), NOW, &mut cache)));
    assert_eq!(
        cache.take_counts().1,
        0,
        "the strict provider's request evicted the lenient one's verdict"
    );
}

/// Hop-by-hop / message-control headers the framing list misses: `expect` (RFC 9110 §10.1.1:
/// `100-continue` changes when the body is sent), `http2-settings` (RFC 9113 §8.2.2 and RFC 7540
/// §3.2.1: connection-specific). A token's claim value must not land there, for the reason the
/// engineer gave for `content-length`.
#[test]
fn review11_other_hop_by_hop_headers_can_be_written_from_a_token() {
    for name in ["expect", "Expect", "http2-settings"] {
        for shape in ["claims", "payload"] {
            let mut p = hs_provider(json!({}));
            if shape == "claims" {
                p["claimsToHeaders"] = json!([{"claim": "email", "header": name}]);
            } else {
                p["outputPayloadToHeader"] = json!(name);
            }
            let r = config::parse(
                json!({"config": {"providers": {"p": p}}})
                    .to_string()
                    .as_bytes(),
            );
            assert!(r.is_err(), "{shape} into {name:?} was accepted");
        }
    }
}

/// Envoy-internal request headers the router (and Istio) act on: a filter running after the
/// connection manager's `x-envoy-*` sanitizing writes them unchecked, so a claim there sets the
/// upstream timeout, the retry policy, or (original-dst clusters with `use_http_header`) the
/// upstream address itself. The same reasoning as for `content-length`: the claim's value is
/// often the user's.
#[test]
fn review11_envoy_internal_headers_can_be_written_from_a_token() {
    for name in [
        "x-envoy-original-dst-host",
        "x-envoy-upstream-rq-timeout-ms",
        "x-envoy-retry-on",
        "x-envoy-max-retries",
        "x-envoy-internal",
        "X-Envoy-Force-Trace",
    ] {
        let mut p = hs_provider(json!({}));
        p["claimsToHeaders"] = json!([{"claim": "email", "header": name}]);
        let r = config::parse(
            json!({"config": {"providers": {"p": p}}})
                .to_string()
                .as_bytes(),
        );
        assert!(r.is_err(), "a claim into {name:?} was accepted");
    }
}

/// A list claim is written joined with `,`, and an element may itself hold a `,`: the header
/// cannot tell `["eng,admin"]` (one group, perhaps user-named) from `["eng", "admin"]`. Review 11
/// found it; it stays as SPEC §4 says ("list of scalars joined with `,`"), as a string claim
/// `"eng,admin"` is written as it is: refusing such lists would drop the header of every user
/// whose IdP sends LDAP DNs (`cn=admins,ou=groups,…`) as groups. A documented limit (README,
/// "Claims to headers"): an upstream that needs the exact elements reads the payload header.
#[test]
fn review11_a_list_element_with_a_comma_is_joined_as_spec_4_says() {
    let p = one_provider(
        hs_provider(json!({"claimsToHeaders": [{"claim": "groups", "header": "x-groups"}]})),
        json!({}),
    );
    let one = tok(json!({"iss": ISS, "groups": ["eng,admin"]}));
    let two = tok(json!({"iss": ISS, "groups": ["eng", "admin"]}));
    let a = sets(&run(&p, &req(&[("authorization", &bearer(&one))])));
    let b = sets(&run(&p, &req(&[("authorization", &bearer(&two))])));
    assert_eq!(a, b);
}

// ---------------------------------------------------------------------------------------------
// What held.

/// The verdict a lenient policy cached is never used for a stricter one: time is checked per
/// provider on every hit (exp in the lenient window, nbf in the future, exp 0 / absent / 2^64-1).
#[test]
fn review11_held_a_cached_verdict_is_rechecked_with_the_checking_providers_skew() {
    let ps = policies(json!({"policies": [
        {"config": {"providers": {"lenient": hs_provider(json!({"clockSkewSeconds": 300}))}}},
        {"config": {"providers": {"strict": hs_provider(json!({"clockSkewSeconds": 0}))}}}]}));
    let (lenient, strict) = (&ps[0], &ps[1]);
    let mut cache = TokenCache::new(64, usize::MAX);
    for (payload, want) in [
        (
            json!({"iss": ISS, "exp": NOW - 30}),
            Some(Status::JwtExpired),
        ),
        (
            json!({"iss": ISS, "nbf": NOW + 30}),
            Some(Status::JwtNotYetValid),
        ),
        (
            json!({"iss": ISS, "exp": NOW - 30, "nbf": NOW + 30}),
            Some(Status::JwtNotYetValid),
        ),
        (json!({"iss": ISS, "exp": 0}), None),
        (json!({"iss": ISS}), None),
        (json!({"iss": ISS, "exp": u64::MAX}), None),
    ] {
        let t = tok(payload.clone());
        let h = req(&[("authorization", &bearer(&t))]);
        assert!(allowed(&run_at(lenient, &h, NOW, &mut cache)), "{payload}");
        let d = run_at(strict, &h, NOW, &mut cache);
        assert_eq!(status(&d), want, "{payload}: {d:?}");
        // And the lenient policy itself, once its own window has passed.
        let later = run_at(lenient, &h, NOW + 400, &mut cache);
        if payload.get("exp").and_then(Value::as_u64) == Some(NOW - 30) {
            assert_eq!(status(&later), Some(Status::JwtExpired), "{payload}");
        }
        // The end of time cannot overflow the entry's lifetime.
        let _ = cache.get(&t, u64::MAX);
    }
}

/// Claims rules on the shapes review 10 did not cover: an empty list holds a `notValues` rule and
/// fails a `values` rule (as "no value matches"); nested paths through a list or null fail;
/// numbers and booleans compare as their JSON text; a list with one null fails `values` too.
#[test]
fn review11_held_claim_rules_on_empty_lists_nested_paths_and_scalars() {
    let rule = |r: Value| one_provider(hs_provider(json!({})), json!({"claims": [r]}));
    let check = |p: &Policy, payload: Value| {
        let mut payload = payload;
        payload["iss"] = json!(ISS);
        let t = tok(payload);
        allowed(&run(p, &req(&[("authorization", &bearer(&t))])))
    };
    let nv = rule(json!({"key": "groups", "notValues": ["banned"]}));
    assert!(check(&nv, json!({"groups": []})));
    assert!(!check(&nv, json!({"groups": ["x", "banned"]})));
    assert!(!check(&nv, json!({"groups": ["x", null]})));
    assert!(!check(&nv, json!({"groups": [["banned"]]})));
    assert!(!check(&nv, json!({"groups": {"banned": true}})));
    let v = rule(json!({"key": "groups", "values": ["admin"]}));
    assert!(!check(&v, json!({"groups": []})));
    assert!(!check(&v, json!({"groups": ["admin", null]})));
    assert!(!check(&v, json!({"groups": ["admin", {"x": 1}]})));
    assert!(check(&v, json!({"groups": ["x", "admin"]})));
    let nested =
        rule(json!({"key": "realm.roles", "nestedClaimDelimiter": ".", "values": ["admin"]}));
    assert!(check(&nested, json!({"realm": {"roles": ["admin"]}})));
    assert!(!check(&nested, json!({"realm": [{"roles": ["admin"]}]})));
    assert!(!check(&nested, json!({"realm": null})));
    assert!(!check(&nested, json!({"realm.roles": ["admin"]})));
    let nested_nv =
        rule(json!({"key": "realm/roles", "nestedClaimDelimiter": "/", "notValues": ["banned"]}));
    assert!(!check(&nested_nv, json!({"realm": {"roles": null}})));
    assert!(!check(&nested_nv, json!({"realm": {}})));
    assert!(check(&nested_nv, json!({"realm": {"roles": "ok"}})));
    let num = rule(json!({"key": "tier", "values": ["1", "true"]}));
    assert!(check(&num, json!({"tier": 1})));
    assert!(check(&num, json!({"tier": true})));
    assert!(!check(&num, json!({"tier": 2})));
    let wild = rule(json!({"key": "email", "values": ["*@example.com"], "notValues": ["evil*"]}));
    assert!(check(&wild, json!({"email": "a@example.com"})));
    assert!(!check(&wild, json!({"email": "evil@example.com"})));
    assert!(!check(&wild, json!({"email": "a@example.com.evil"})));
    assert!(!check(&wild, json!({"email": ["a@example.com", null]})));
}

/// Scopes: only U+0020 separates; a list element with a space is one scope; a list with
/// non-strings grants only its strings; empty tokens grant nothing.
#[test]
fn review11_held_scopes() {
    let p = one_provider(hs_provider(json!({})), json!({"requiredScopes": ["admin"]}));
    let check = |scope: Value| {
        let t = tok(json!({"iss": ISS, "scope": scope}));
        allowed(&run(&p, &req(&[("authorization", &bearer(&t))])))
    };
    assert!(check(json!("read admin")));
    assert!(check(json!("  admin  ")));
    assert!(!check(json!("read\u{b}admin")));
    assert!(!check(json!("read\u{c}admin")));
    assert!(!check(json!("read\radmin")));
    assert!(!check(json!("read,admin")));
    assert!(!check(json!(["read admin"])));
    assert!(!check(json!([["admin"]])));
    assert!(!check(json!({"admin": true})));
    assert!(!check(json!(null)));
    assert!(check(json!(["read", 1, "admin"])));
}

/// Framing headers refused in any case; pseudo-headers and `host` too.
#[test]
fn review11_held_framing_pseudo_and_host_are_refused_in_any_spelling() {
    for name in [
        "Content-Length",
        "TRANSFER-ENCODING",
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Host",
        ":authority",
        ":path",
        "content-length ",
        " content-length",
        "content-length\u{0}",
        "c\u{130}ntent-length",
    ] {
        for shape in ["claims", "payload"] {
            let mut p = hs_provider(json!({}));
            if shape == "claims" {
                p["claimsToHeaders"] = json!([{"claim": "email", "header": name}]);
            } else {
                p["outputPayloadToHeader"] = json!(name);
            }
            let r = config::parse(
                json!({"config": {"providers": {"p": p}}})
                    .to_string()
                    .as_bytes(),
            );
            assert!(r.is_err(), "{shape} into {name:?} was accepted");
        }
    }
}

/// Paused requests by context id: pausing one id twice keeps one waiter;
/// a forgotten one is never entered; at the deadline every other one is answered exactly once,
/// and nothing stays paused; a reused id after that starts afresh.
#[test]
fn review11_held_paused_requests_by_id_are_answered_once_and_never_after_forget() {
    use crate::host::Flow;
    use crate::worker::Worker;
    let cfg = json!({"config": {"providers": {"r": {"issuer": ISS,
        "remote": {"url": "http://jwks.example/keys", "timeout": "2s"}}}}});
    let t = tok(json!({"iss": ISS, "exp": NOW + 100}));
    let mut w = Worker::new(config::parse(cfg.to_string().as_bytes()).unwrap());
    let mut host = Clocked {
        headers: req(&[("authorization", &bearer(&t))]),
        now_ms: NOW * 1000,
        next_token: 0,
        current: 0,
        log: Vec::new(),
    };
    w.start(&mut host);
    for id in [9, 3, 5] {
        assert_eq!(w.on_request(&mut host, id), Flow::Pause);
    }
    host.now_ms += 1_500;
    assert_eq!(w.on_request(&mut host, 3), Flow::Pause, "re-paused");
    assert_eq!(w.waiters.len(), 3);
    w.forget(9);
    assert_eq!(w.waiters.len(), 2);
    for _ in 0..50 {
        host.now_ms += 500;
        w.on_tick(&mut host);
    }
    assert!(w.waiters.is_empty(), "left paused: {:?}", w.waiters.keys());
    let mut entered: Vec<u32> = host
        .log
        .iter()
        .filter(|(what, _)| *what == "enter")
        .map(|(_, id)| *id)
        .collect();
    // (3 comes last: pausing it again through `on_request` dated a new deadline; the worker's own
    // re-pause, from `resume_waiters`, keeps the first.)
    entered.sort_unstable();
    assert_eq!(entered, vec![3, 5], "log: {:?}", host.log);
    let answered = host.log.iter().filter(|(what, _)| *what != "enter").count();
    assert_eq!(answered, 2, "log: {:?}", host.log);
    // The id used again later pauses afresh and is answered once more.
    assert_eq!(w.on_request(&mut host, 3), Flow::Pause);
    assert_eq!(w.waiters.len(), 1);
}
