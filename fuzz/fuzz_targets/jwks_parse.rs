//! Key documents: JWKS JSON and PEM, as `local.inline` and remote fetches give them.
#![no_main]
use jwt_policy_filter::jwks;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = jwks::parse_jwks(data);
    let text = String::from_utf8_lossy(data);
    let _ = jwks::parse_pem(&text);
    let _ = jwks::parse_inline(&text);
});
