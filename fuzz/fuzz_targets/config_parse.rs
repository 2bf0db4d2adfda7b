//! Plugin configuration parsing and compilation.
#![no_main]
use jwt_policy_filter::config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = config::parse(data);
    let text = String::from_utf8_lossy(data);
    let _ = config::parse_duration_ms(&text);
    let _ = config::parse_rfc3339(&text);
    let _ = config::split_url(&text);
});
