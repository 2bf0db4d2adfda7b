//! Token parsing and verification against a fixed key set (every family).
#![no_main]
use jwt_policy_filter::{jwks, jwt, verify};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys() -> &'static jwks::Jwks {
    static KEYS: OnceLock<jwks::Jwks> = OnceLock::new();
    KEYS.get_or_init(|| {
        let fixtures: serde_json::Value = serde_json::from_str(include_str!("../../tests/fixtures/tokens.json")).unwrap_or_default();
        let keys: Vec<serde_json::Value> = fixtures["keys"].as_object().map(|m| m.values().map(|k| k["jwk"].clone()).collect()).unwrap_or_default();
        jwks::parse_jwks(serde_json::json!({ "keys": keys }).to_string().as_bytes()).unwrap_or_default()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(token) = jwt::parse(&text) {
        let _ = token.check_time(1_800_000_000, 60);
        let _ = verify::verify_signature(&token, keys());
    }
});
