//! Review 10 (independent adversarial review, 2026-12-07): verified-token cache, remote JWKS
//! lifecycle, token checks, claims to headers, several providers, crypto entry points.
//!
//! The four findings' tests (`review10_*` without `held`) failed before their fixes and pass now;
//! their comments say what the review found. The `review10_held_*` tests keep what held.

use serde_json::{Value, json};

use crate::authn::{Decision, HeaderOp, Keys, RequestView, decide};
use crate::b64;
use crate::config;
use crate::extract::Header;
use crate::jwt_cache::TokenCache;
use crate::policy::{KeySource, Policy};
use crate::status::Status;
use crate::testkit::NOW;

pub(crate) const SECRET: &[u8] = b"review10-secret-review10-secret!";
const OTHER: &[u8] = b"another-secret-another-secret-!!";

pub(crate) fn oct_jwks(secret: &[u8], extra: Value) -> String {
    let mut k = json!({"kty": "oct", "k": b64::encode_url(secret)});
    if let (Value::Object(o), Value::Object(e)) = (&mut k, extra) {
        o.extend(e);
    }
    json!({"keys": [k]}).to_string()
}

fn hs256(secret: &[u8], header: Value, payload: Value) -> String {
    let signed = format!(
        "{}.{}",
        b64::encode_url(header.to_string().as_bytes()),
        b64::encode_url(payload.to_string().as_bytes())
    );
    let mac = hmac_sha256::HMAC::mac(signed.as_bytes(), secret);
    format!("{signed}.{}", b64::encode_url(&mac))
}

pub(crate) fn tok(payload: Value) -> String {
    hs256(SECRET, json!({"alg": "HS256"}), payload)
}

fn policy_of(spec: Value) -> Policy {
    config::parse(spec.to_string().as_bytes())
        .unwrap()
        .policies
        .remove(0)
}

pub(crate) fn one_provider(provider: Value, extra: Value) -> Policy {
    let mut spec = json!({"config": {"providers": {"p": provider}}});
    if let (Some(c), Value::Object(e)) = (spec["config"].as_object_mut(), extra) {
        c.extend(e);
    }
    policy_of(spec)
}

pub(crate) fn req(extra: &[(&str, &str)]) -> Vec<Header> {
    let mut h: Vec<Header> = vec![
        (":method".into(), b"GET".to_vec()),
        (":scheme".into(), b"http".to_vec()),
        (":authority".into(), b"api.example".to_vec()),
        (":path".into(), b"/get".to_vec()),
    ];
    h.extend(
        extra
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
    );
    h
}

pub(crate) fn run_at(
    policy: &Policy,
    headers: &[Header],
    now: u64,
    cache: &mut TokenCache,
) -> Decision {
    let keys = |i: usize| match &policy.providers[i].keys {
        KeySource::Local(j) => Keys::local(j),
        KeySource::Remote(_) => Keys::Pending,
    };
    decide(policy, &RequestView { headers }, now, &keys, cache)
}

pub(crate) fn run(policy: &Policy, headers: &[Header]) -> Decision {
    run_at(policy, headers, NOW, &mut TokenCache::new(64, usize::MAX))
}

pub(crate) fn status(d: &Decision) -> Option<Status> {
    match d {
        Decision::Deny { status, .. } => Some(*status),
        _ => None,
    }
}

pub(crate) fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

pub(crate) fn hs_provider(extra: Value) -> Value {
    let mut p = json!({"issuer": "https://issuer.example", "local": {"inline": oct_jwks(SECRET, json!({}))}});
    if let (Some(o), Value::Object(e)) = (p.as_object_mut(), extra) {
        o.extend(e);
    }
    p
}

#[test]
fn probe_sanity_valid_token_passes() {
    let p = one_provider(hs_provider(json!({})), json!({}));
    let t = tok(json!({"iss": "https://issuer.example", "exp": NOW + 100}));
    let d = run(&p, &req(&[("authorization", &bearer(&t))]));
    assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
}

// ---------------------------------------------------------------------------------------------
// Findings (these fail on the code under review).

/// RFC 6749 §3.3: `scope` is a list of space-delimited (%x20) strings; SPEC §1 `requiredScopes`:
/// "the `scope` claim (space-separated string or list)"; Istio splits `scope` on ' ' only. A
/// scope string `read\u{a0}admin` (one scope token, with a NO-BREAK SPACE inside) is not the
/// scope `admin`, yet `str::split_whitespace` (Unicode White_Space) splits it there.
#[test]
fn review10_required_scopes_split_on_spaces_only() {
    let p = one_provider(hs_provider(json!({})), json!({"requiredScopes": ["admin"]}));
    for sep in [
        '\t', '\n', '\u{a0}', '\u{2003}', '\u{3000}', '\u{2028}', '\u{85}',
    ] {
        let t = tok(json!({"iss": "https://issuer.example", "scope": format!("read{sep}admin")}));
        let d = run(&p, &req(&[("authorization", &bearer(&t))]));
        assert_eq!(
            status(&d),
            Some(Status::ScopesNotAllowed),
            "scope \"read{}admin\" granted `admin`: {d:?}",
            sep.escape_unicode()
        );
    }
}

/// A claim present as `null` (or as an object / a list of lists) holds a `notValues`-only or
/// presence-only rule, while the same rule fails when the claim is absent: `{key: groups,
/// notValues: [banned]}` is held by `groups: null` and by `groups: [["banned"]]`.
#[test]
fn review10_a_null_or_unreadable_claim_is_not_a_matching_claim() {
    let p = one_provider(
        hs_provider(json!({})),
        json!({"claims": [{"key": "groups", "notValues": ["banned"]}]}),
    );
    let absent = tok(json!({"iss": "https://issuer.example"}));
    let d = run(&p, &req(&[("authorization", &bearer(&absent))]));
    assert_eq!(status(&d), Some(Status::ClaimsNotAllowed), "absent: {d:?}");
    for groups in [json!(null), json!([["banned"]]), json!({"0": "banned"})] {
        let t = tok(json!({"iss": "https://issuer.example", "groups": groups.clone()}));
        let d = run(&p, &req(&[("authorization", &bearer(&t))]));
        assert_eq!(
            status(&d),
            Some(Status::ClaimsNotAllowed),
            "groups = {groups}: the rule held ({d:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// What held (kept as regression tests).

#[test]
fn review10_held_cache_rechecks_time_issuer_and_audience_on_a_hit() {
    let p = one_provider(
        hs_provider(json!({"audiences": ["api"], "clockSkewSeconds": 0})),
        json!({}),
    );
    let mut cache = TokenCache::new(64, usize::MAX);
    let t = tok(
        json!({"iss": "https://issuer.example", "aud": "api", "exp": NOW + 10, "nbf": NOW - 10}),
    );
    let h = req(&[("authorization", &bearer(&t))]);
    assert!(matches!(
        run_at(&p, &h, NOW, &mut cache),
        Decision::Allow { .. }
    ));
    assert_eq!(cache.len(), 1);
    // Past exp: the cached verdict is not reused.
    assert_eq!(
        status(&run_at(&p, &h, NOW + 11, &mut cache)),
        Some(Status::JwtExpired)
    );
    // nbf on a hit (clock is monotonic in the worker; the core is asked again at an earlier time).
    let mut cache = TokenCache::new(64, usize::MAX);
    assert!(matches!(
        run_at(&p, &h, NOW, &mut cache),
        Decision::Allow { .. }
    ));
    assert_eq!(
        status(&run_at(&p, &h, NOW - 11, &mut cache)),
        Some(Status::JwtNotYetValid)
    );
    // Another provider index with another audience, same key and location: not a hit.
    let two = policy_of(json!({"config": {"providers": {
        "a": hs_provider(json!({"audiences": ["api"]})),
        "b": hs_provider(json!({"audiences": ["other"]}))}}}));
    let mut cache = TokenCache::new(64, usize::MAX);
    assert!(matches!(
        run_at(&two, &h, NOW, &mut cache),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        run_at(&two, &h, NOW, &mut cache),
        Decision::Allow { .. }
    ));
}

#[test]
fn review10_held_spellings_of_the_signature_are_one_entry_and_forged_spellings_fail() {
    let p = one_provider(hs_provider(json!({})), json!({}));
    let mut cache = TokenCache::new(64, usize::MAX);
    let t = tok(json!({"iss": "https://issuer.example"}));
    let (signed, sig) = t.rsplit_once('.').unwrap();
    // 32-byte MAC: 43 chars, last char carries 2 spare bits.
    let last = sig.chars().last().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = alphabet.find(last).unwrap();
    let spare = alphabet.chars().nth(v | 3).unwrap();
    let respelled = format!("{signed}.{}{spare}=", &sig[..sig.len() - 1]);
    assert!(matches!(
        run_at(&p, &req(&[("authorization", &bearer(&t))]), NOW, &mut cache),
        Decision::Allow { .. }
    ));
    assert!(matches!(
        run_at(
            &p,
            &req(&[("authorization", &bearer(&respelled))]),
            NOW,
            &mut cache
        ),
        Decision::Allow { .. }
    ));
    assert_eq!(cache.len(), 1);
    // A changed byte of the MAC, spelled any way, is a miss and fails.
    let flipped = alphabet.chars().nth(v ^ 4).unwrap();
    let forged = format!("{signed}.{}{flipped}", &sig[..sig.len() - 1]);
    assert_eq!(
        status(&run_at(
            &p,
            &req(&[("authorization", &bearer(&forged))]),
            NOW,
            &mut cache
        )),
        Some(Status::JwtVerificationFail)
    );
}

#[test]
fn review10_held_a_token_for_one_provider_in_anothers_location_is_refused() {
    // A reads x-a, issuer A; B reads x-b, issuer B; one shared secret.
    let jwks = oct_jwks(SECRET, json!({}));
    let p = policy_of(json!({"config": {"providers": {
        "a": {"issuer": "A", "local": {"inline": jwks}, "tokenSource": {"headers": [{"name": "x-a"}]},
              "claimsToHeaders": [{"claim": "sub", "header": "x-sub"}]},
        "b": {"issuer": "B", "local": {"inline": oct_jwks(OTHER, json!({}))}, "tokenSource": {"headers": [{"name": "x-b"}]}}}}}));
    let for_a = tok(json!({"iss": "A", "sub": "alice"}));
    assert_eq!(
        status(&run(&p, &req(&[("x-b", &for_a)]))),
        Some(Status::JwtUnknownIssuer)
    );
    // B's issuer, A's key, in B's location: signature fails (A's key never used for B).
    let b_iss_a_key = tok(json!({"iss": "B"}));
    assert_eq!(
        status(&run(&p, &req(&[("x-b", &b_iss_a_key)]))),
        Some(Status::JwtVerificationFail)
    );
    // A valid A token does not carry a forged B token through.
    let d = run(&p, &req(&[("x-a", &for_a), ("x-b", &b_iss_a_key)]));
    assert_eq!(status(&d), Some(Status::JwtVerificationFail));
}

#[test]
fn review10_held_shared_location_audience_and_key_are_one_providers() {
    // Same issuer and location; A: key S, aud a; B: key O, aud b. A token signed with S and aud b
    // must not pass (A's signature with B's audience).
    let p = policy_of(json!({"config": {"providers": {
        "a": {"issuer": "I", "audiences": ["a"], "local": {"inline": oct_jwks(SECRET, json!({}))}},
        "b": {"issuer": "I", "audiences": ["b"], "local": {"inline": oct_jwks(OTHER, json!({}))}}}}}));
    let t = tok(json!({"iss": "I", "aud": "b"}));
    let mut cache = TokenCache::new(64, usize::MAX);
    for _ in 0..2 {
        let d = run_at(&p, &req(&[("authorization", &bearer(&t))]), NOW, &mut cache);
        assert!(
            matches!(
                status(&d),
                Some(Status::JwtAudienceNotAllowed | Status::JwtVerificationFail)
            ),
            "{d:?}"
        );
    }
    assert_eq!(cache.len(), 0);
}

#[test]
fn review10_held_claim_headers_never_carry_control_characters() {
    let p = one_provider(
        hs_provider(json!({"claimsToHeaders": [{"claim": "x", "header": "x-x"}]})),
        json!({}),
    );
    for x in [
        json!("a\u{7f}b"),
        json!({"k": "a\u{85}b"}),
        json!(["a", "b\u{9b}"]),
        json!("a\rb"),
    ] {
        let t = tok(json!({"iss": "https://issuer.example", "x": x.clone()}));
        let d = run(
            &p,
            &req(&[("authorization", &bearer(&t)), ("X-X", "spoof")]),
        );
        let Decision::Allow { ops, .. } = d else {
            panic!("{d:?}")
        };
        assert_eq!(ops.first(), Some(&HeaderOp::Remove("x-x".into())), "{x}");
        assert!(
            ops.iter()
                .all(|o| !matches!(o, HeaderOp::Set(h, _) | HeaderOp::Add(h, _) if h == "x-x")),
            "{x}: {ops:?}"
        );
    }
}

/// Cost. A token is still accepted for `clockSkewSeconds` after its `exp`, but the cache drops it
/// at `exp` (`TokenCache::get`: `exp < now`) and then inserts it again after verifying it, so in
/// that minute every request pays a parse and a signature check for each such token. The
/// forged-token bound (checking stops at the first failure: one failed verification per
/// request) does not apply: these tokens are valid, so nothing stops. Eight distinct tokens of
/// one user (a client-credentials client can mint any number), all expired a few seconds ago,
/// make every request cost eight verifications (times the providers of their issuer tried
/// first, whose failures are not remembered either), against none for the same request with
/// live tokens: the multiplier review 4 closed for eight spellings of one token (18× a normal
/// request with P-521 keys). Expected: a repeated request costs no signature check while its
/// tokens are accepted (keep entries until `exp` + the largest skew; time is re-checked on
/// every hit anyway).
#[test]
fn review10_tokens_in_the_skew_window_after_exp_are_verified_on_every_request() {
    let p = one_provider(hs_provider(json!({})), json!({}));
    let mut cache = TokenCache::new(64, usize::MAX);
    let tokens: Vec<String> = (0..8)
        .map(|i| {
            tok(json!({"iss": "https://issuer.example", "jti": format!("t{i}"), "exp": NOW - 30}))
        })
        .collect();
    let query = tokens
        .iter()
        .map(|t| format!("access_token={t}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut h = req(&[]);
    h[3].1 = format!("/get?{query}").into_bytes();
    let first = run_at(&p, &h, NOW, &mut cache);
    assert!(matches!(first, Decision::Allow { .. }), "{first:?}");
    let _ = cache.take_counts();
    let again = run_at(&p, &h, NOW, &mut cache);
    assert!(matches!(again, Decision::Allow { .. }), "{again:?}");
    let (hits, misses) = cache.take_counts();
    assert_eq!(
        misses, 0,
        "the same request again paid {misses} signature checks ({hits} skipped)"
    );
    // Control: the same eight tokens unexpired cost nothing the second time.
    let live: Vec<String> = (0..8)
        .map(|i| {
            tok(json!({"iss": "https://issuer.example", "jti": format!("t{i}"), "exp": NOW + 300}))
        })
        .collect();
    let query = live
        .iter()
        .map(|t| format!("access_token={t}"))
        .collect::<Vec<_>>()
        .join("&");
    h[3].1 = format!("/get?{query}").into_bytes();
    let _ = run_at(&p, &h, NOW, &mut cache);
    let _ = cache.take_counts();
    let _ = run_at(&p, &h, NOW, &mut cache);
    assert_eq!(cache.take_counts().1, 0);
}

#[test]
fn review10_held_jwks_keys_used_only_for_their_family_curve_and_alg() {
    use crate::jwks::parse_jwks;
    use crate::jwt::parse;
    use crate::testkit::{jwk, jwks_doc, token};
    use crate::verify::verify_signature;
    // crv / alg mismatch drops the key; a P-256 point under crv P-384 is refused.
    let ec = jwk("ec256", json!({}));
    assert!(parse_jwks(jwks_doc(vec![jwk("ec256", json!({"alg": "ES384"}))]).as_bytes()).is_err());
    let mut as384 = ec.clone();
    as384["crv"] = json!("P-384");
    assert!(parse_jwks(jwks_doc(vec![as384]).as_bytes()).is_err());
    // A point off the curve (y + 1).
    let mut off = ec.clone();
    let mut y = b64::decode_url(off["y"].as_str().unwrap()).unwrap();
    *y.last_mut().unwrap() ^= 1;
    off["y"] = json!(b64::encode_url(&y));
    assert!(parse_jwks(jwks_doc(vec![off]).as_bytes()).is_err());
    // An ES256 token never verifies with an RSA/Ed25519/HMAC key set without kid/alg; an RSA key
    // marked alg HS256 never MACs.
    let es = parse(&token("ES256")).unwrap();
    let mut es_no_kid = es.clone();
    es_no_kid.kid = None;
    let others = parse_jwks(
        jwks_doc(vec![
            jwk("rsa", json!({"kid": null})),
            jwk("ed25519", json!({"kid": null})),
            jwk("hmac", json!({"kid": null})),
            jwk("ec384", json!({"kid": null})),
        ])
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        verify_signature(&es_no_kid, &others),
        Err(Status::JwtVerificationFail)
    );
    let hs = parse(&token("HS256_rsa_pem_secret")).unwrap();
    let rsa_hs =
        parse_jwks(jwks_doc(vec![jwk("rsa", json!({"alg": "HS256", "kid": null}))]).as_bytes())
            .unwrap();
    let mut hs_no_kid = hs.clone();
    hs_no_kid.kid = None;
    assert_eq!(
        verify_signature(&hs_no_kid, &rsa_hs),
        Err(Status::JwtVerificationFail)
    );
    // An empty or whitespace-only HMAC secret is no key.
    for k in ["", "   ", "=="] {
        let doc = json!({"keys": [{"kty": "oct", "k": k}]}).to_string();
        assert!(parse_jwks(doc.as_bytes()).is_err(), "k = {k:?}");
    }
}

#[test]
fn review10_held_an_embedded_jwk_jku_or_x5u_header_is_ignored() {
    let p = one_provider(hs_provider(json!({})), json!({}));
    let header = json!({"alg": "HS256", "jwk": {"kty": "oct", "k": b64::encode_url(OTHER)},
        "jku": "http://attacker/keys", "x5u": "http://attacker/cert", "kid": "../../other"});
    let t = hs256(OTHER, header, json!({"iss": "https://issuer.example"}));
    assert_eq!(
        status(&run(&p, &req(&[("authorization", &bearer(&t))]))),
        Some(Status::JwtVerificationFail)
    );
}

/// A host whose JWKS server never answers (every dispatch is accepted, none answered), with a clock the test moves and a log of what the
/// worker did to which request.
pub(crate) struct Clocked {
    pub(crate) headers: Vec<Header>,
    pub(crate) now_ms: u64,
    pub(crate) next_token: u32,
    pub(crate) current: u32,
    pub(crate) log: Vec<(&'static str, u32)>,
}

impl crate::host::Host for Clocked {
    fn now_ms(&mut self) -> Option<u64> {
        Some(self.now_ms)
    }
    fn get_shared(&mut self, _: &str) -> Result<crate::host::Shared, crate::host::Unreadable> {
        Ok((None, None))
    }
    fn set_shared(
        &mut self,
        _: &str,
        _: &[u8],
        _: Option<u32>,
    ) -> Result<(), crate::host::SetError> {
        Ok(())
    }
    fn dispatch(&mut self, _: &str, _: &[(&str, &str)], _: u64) -> Result<u32, String> {
        self.next_token += 1;
        Ok(self.next_token)
    }
    fn callout_status(&mut self) -> Option<Vec<u8>> {
        None
    }
    fn callout_body(&mut self, _: usize) -> Option<Vec<u8>> {
        None
    }
    fn set_tick(&mut self, _: u64) -> bool {
        true
    }
    fn enter(&mut self, id: u32) -> bool {
        self.current = id;
        self.log.push(("enter", id));
        true
    }
    fn resume(&mut self) -> bool {
        self.log.push(("resume", self.current));
        true
    }
    fn request_headers(&mut self) -> Option<Vec<Header>> {
        Some(self.headers.clone())
    }
    fn property(&mut self, _: &[&str]) -> Option<Vec<u8>> {
        None
    }
    fn apply(&mut self, _: &HeaderOp) -> bool {
        true
    }
    fn clear_route_cache(&mut self) {}
    fn reply(&mut self, _: u32, _: &[(&str, &str)], _: &str) -> bool {
        self.log.push(("reply", self.current));
        true
    }
    fn count(&mut self, _: crate::metrics::Counter, _: u64) {}
}

/// Cost. Each request that pauses for keys (`WaitForKeys`) does `waiters.retain(..)` over every
/// paused request, and so does every request's end (`forget`, called from `on_done` for all
/// requests): while a fetch is in flight (up to `timeout` + 1 s, every backoff round of an
/// outage) a client's N concurrent requests cost O(N²) in all, one request O(N).
#[test]
#[ignore = "timing; run with --ignored"]
fn review10_paused_requests_cost_grows_with_the_number_paused() {
    use crate::worker::Worker;
    let cfg = json!({"config": {"providers": {"r": {"issuer": "https://issuer.example",
        "remote": {"url": "http://jwks.example/keys", "timeout": "5s"}}}}});
    let t = tok(json!({"iss": "https://issuer.example", "exp": NOW + 100}));
    let per_request = |n: u32| {
        let mut w = Worker::new(config::parse(cfg.to_string().as_bytes()).unwrap());
        let mut host = Clocked {
            headers: req(&[("authorization", &bearer(&t))]),
            now_ms: NOW * 1000,
            next_token: 0,
            current: 0,
            log: Vec::new(),
        };
        w.start(&mut host);
        let start = std::time::Instant::now();
        for id in 1..=n {
            assert_eq!(w.on_request(&mut host, id), crate::host::Flow::Pause);
        }
        for id in 1..=n {
            w.forget(id);
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    };
    let small = per_request(2_000);
    let large = per_request(32_000);
    assert!(
        large < 3.0 * small,
        "one paused request costs {small:.1} µs with 2,000 paused, {large:.1} µs with 32,000"
    );
}

#[test]
fn review10_held_a_verdict_is_never_reused_for_another_key_version_or_policy() {
    let p = one_provider(
        json!({"issuer": "I", "remote": {"url": "http://jwks.example/keys"}}),
        json!({}),
    );
    let old = crate::jwks::parse_jwks(oct_jwks(SECRET, json!({})).as_bytes()).unwrap();
    let rotated = crate::jwks::parse_jwks(oct_jwks(OTHER, json!({})).as_bytes()).unwrap();
    let t = tok(json!({"iss": "I"}));
    let h = req(&[("authorization", &bearer(&t))]);
    let mut cache = TokenCache::new(64, usize::MAX);
    let at = |jwks: &'static crate::jwks::Jwks, version: u64| {
        move |_: usize| Keys::Ready {
            jwks,
            version,
            may_refetch: false,
        }
    };
    let old: &'static _ = Box::leak(Box::new(old));
    let rotated: &'static _ = Box::leak(Box::new(rotated));
    let d = decide(
        &p,
        &RequestView { headers: &h },
        NOW,
        &at(old, 7),
        &mut cache,
    );
    assert!(matches!(d, Decision::Allow { .. }), "{d:?}");
    let d = decide(
        &p,
        &RequestView { headers: &h },
        NOW,
        &at(rotated, 8),
        &mut cache,
    );
    assert_eq!(
        status(&d),
        Some(Status::JwtVerificationFail),
        "key rotated out: {d:?}"
    );
    // Two policies, provider 0 each, both local (version 0): policy 1's key never inherits
    // policy 0's verdict.
    let c = config::parse(
        json!({"policies": [
            {"config": {"providers": {"a": {"local": {"inline": oct_jwks(SECRET, json!({}))}}}}},
            {"config": {"providers": {"a": {"local": {"inline": oct_jwks(OTHER, json!({}))}}}}}]})
        .to_string()
        .as_bytes(),
    )
    .unwrap();
    let mut cache = TokenCache::new(64, usize::MAX);
    assert!(matches!(
        run_at(&c.policies[0], &h, NOW, &mut cache),
        Decision::Allow { .. }
    ));
    assert_eq!(
        status(&run_at(&c.policies[1], &h, NOW, &mut cache)),
        Some(Status::JwtVerificationFail)
    );
}
