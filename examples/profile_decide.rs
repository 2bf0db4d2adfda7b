//! A native harness of the request path, for profilers (`valgrind --tool=callgrind`, `perf`):
//! `cargo run --release --example profile_decide -- [hit|miss|verify] [N] [ALG]`.
//! `hit`: one token repeated (verified-token cache hits); `miss`: a cache of zero (every request
//! parses and verifies an RS256 signature); `verify`: the signature check alone, of the fixture
//! token ALG (RS256 by default; ES256, ES384, ES512, PS256, ... with their fixture key).

use jwt_policy_filter::authn::{Keys, RequestView, decide};
use jwt_policy_filter::config;
use jwt_policy_filter::jwt_cache::TokenCache;
use jwt_policy_filter::policy::KeySource;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("hit", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let fixtures: serde_json::Value =
        serde_json::from_str(include_str!("../tests/fixtures/tokens.json")).unwrap_or_default();
    let alg = args.get(3).map_or("RS256", String::as_str);
    let key = match alg {
        "ES256" => "ec256",
        "ES384" => "ec384",
        "ES512" => "ec521",
        "EdDSA" => "ed25519",
        _ => "rsa",
    };
    let pem = fixtures
        .pointer(&format!("/keys/{key}/pem"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let token = fixtures
        .pointer(&format!("/tokens/{alg}/token"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let spec = serde_json::json!({"config": {"providers": {"p": {"local": {"inline": pem},
        "claimsToHeaders": [{"claim": "org", "header": "x-org"}, {"claim": "email", "header": "x-email"}]}}}});
    let Ok(mut config) = config::parse(spec.to_string().as_bytes()) else {
        return;
    };
    let policy = config.policies.remove(0);
    let Some(KeySource::Local(jwks)) = policy.providers.first().map(|p| &p.keys) else {
        return;
    };
    let keys = |_: usize| Keys::local(jwks);
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), b"/get".to_vec()),
        (":authority".to_string(), b"api.example".to_vec()),
        (
            "authorization".to_string(),
            format!("Bearer {token}").into_bytes(),
        ),
        ("user-agent".to_string(), b"wrk".to_vec()),
    ];
    if mode == "verify" {
        // The signature check alone (no parsing, no cache): the public-key operation's share.
        let Ok(jwt) = jwt_policy_filter::jwt::parse(token) else {
            return;
        };
        let ok = (0..n)
            .filter(|_| jwt_policy_filter::verify::verify_signature(&jwt, jwks).is_ok())
            .count();
        println!("verify {alg}: {ok}/{n} verified");
        return;
    }
    let mut cache = TokenCache::new(if mode == "miss" { 0 } else { 1024 }, usize::MAX);
    let mut allowed = 0;
    for _ in 0..n {
        let d = decide(
            &policy,
            &RequestView { headers: &headers },
            1_800_000_000,
            &keys,
            &mut cache,
        );
        allowed += usize::from(matches!(
            d,
            jwt_policy_filter::authn::Decision::Allow { .. }
        ));
    }
    println!("{mode}: {allowed}/{n} allowed");
}
