//! Token extraction, verification and claims-to-headers rendering: a whole request decided.
//! The input is split into a header value and a path; a fixed policy with every feature on.
#![no_main]
use jwt_policy_filter::authn::{self, Keys, RequestView};
use jwt_policy_filter::policy::{KeySource, Policy};
use jwt_policy_filter::{config, select};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static POLICY: Policy = build_policy();
}

fn build_policy() -> Policy {
    {
        let fixtures: serde_json::Value = serde_json::from_str(include_str!("../../tests/fixtures/tokens.json")).unwrap_or_default();
        let jwks = serde_json::json!({ "keys": [fixtures["keys"]["rsa"]["jwk"], fixtures["keys"]["hmac"]["jwk"]] }).to_string();
        let spec = serde_json::json!({"config": {
            "claims": [{"key": "realm.tier.name", "nestedClaimDelimiter": ".", "values": ["g*"], "notValues": ["bad*"]}],
            "requiredScopes": ["read"],
            "providers": {"p": {"local": {"inline": jwks}, "audiences": ["api.example"],
                "tokenSource": {"headers": [{"name": "x-auth", "prefix": "Bearer "}], "queryParams": ["t"]},
                "claimsToHeaders": [{"claim": "org", "header": "x-org"}, {"claim": "realm", "header": "x-realm", "append": true},
                                    {"claim": "groups", "header": "x-groups"}, {"claim": "realm.tier.name", "header": "x-tier"}],
                "outputPayloadToHeader": "x-payload"}}}});
        let mut c = config::parse(spec.to_string().as_bytes()).unwrap_or_else(|_| std::process::abort());
        c.policies.remove(0)
    }
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (header, rest) = data.split_at(split);
    let mut path = b"/get?t=".to_vec();
    path.extend(rest.get(1..).unwrap_or_default());
    let headers = vec![
        (":method".to_string(), b"GET".to_vec()),
        (":path".to_string(), path),
        (":authority".to_string(), b"api.example".to_vec()),
        ("x-auth".to_string(), [b"Bearer ".as_slice(), header].concat()),
        ("x-org".to_string(), b"spoof".to_vec()),
    ];
    POLICY.with(|policy| decide(policy, &headers));
    let _ = select::decode_pairs(data);
});

fn decide(policy: &Policy, headers: &[(String, Vec<u8>)]) {
    let keys = |i: usize| match policy.providers.get(i).map(|p| &p.keys) {
        Some(KeySource::Local(j)) => Keys::local(j),
        _ => Keys::Failed(jwt_policy_filter::status::Status::JwksFetchFail),
    };
    let mut cache = jwt_policy_filter::jwt_cache::TokenCache::new(4, 1 << 20);
    let _ = authn::decide(policy, &RequestView { headers }, 1_800_000_000, &keys, &mut cache);
    let _ = authn::decide(policy, &RequestView { headers }, 1_800_000_000, &keys, &mut cache);
}
