//! Envoy counters (shown at the admin `/stats` as `wasmcustom.jwt_policy.*`). Defined once per
//! VM; a counter that cannot be defined is simply not recorded.

use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

use crate::status::Family;

pub enum Counter {
    Allowed,
    Denied(Family),
    /// A dry-run policy would have denied (`jwt_policy.dry_run.denied[.<family>]`).
    DryRunDenied(Family),
    JwksFetchSuccess,
    JwksFetchFailure,
    RequestsPaused,
    CacheHit,
    CacheMiss,
}

const FAMILIES: [Family; 8] = [
    Family::Missing,
    Family::Malformed,
    Family::Issuer,
    Family::Time,
    Family::Audience,
    Family::Signature,
    Family::Jwks,
    Family::Claims,
];

#[derive(Default)]
pub struct Metrics {
    allowed: Option<u32>,
    denied: Option<u32>,
    denied_by: [Option<u32>; 8],
    dry_run_denied: Option<u32>,
    dry_run_denied_by: [Option<u32>; 8],
    fetch_success: Option<u32>,
    fetch_failure: Option<u32>,
    paused: Option<u32>,
    cache_hit: Option<u32>,
    cache_miss: Option<u32>,
}

fn counter(name: &str) -> Option<u32> {
    hostcalls::define_metric(MetricType::Counter, &format!("jwt_policy.{name}")).ok()
}

impl Metrics {
    pub fn define() -> Metrics {
        let mut m = Metrics {
            allowed: counter("allowed"),
            denied: counter("denied"),
            dry_run_denied: counter("dry_run.denied"),
            fetch_success: counter("jwks_fetch_success"),
            fetch_failure: counter("jwks_fetch_failure"),
            paused: counter("requests_paused"),
            cache_hit: counter("token_cache_hit"),
            cache_miss: counter("token_cache_miss"),
            ..Metrics::default()
        };
        for (slot, family) in m.denied_by.iter_mut().zip(FAMILIES) {
            *slot = counter(&format!("denied.{}", family.as_str()));
        }
        for (slot, family) in m.dry_run_denied_by.iter_mut().zip(FAMILIES) {
            *slot = counter(&format!("dry_run.denied.{}", family.as_str()));
        }
        m
    }

    pub fn inc(&self, c: Counter) {
        self.add(c, 1);
    }

    pub fn add(&self, c: Counter, n: u64) {
        if n == 0 {
            return;
        }
        let ids = match c {
            Counter::Allowed => [self.allowed, None],
            Counter::Denied(family) => {
                let i = FAMILIES.iter().position(|f| *f == family);
                [
                    self.denied,
                    i.and_then(|i| self.denied_by.get(i).copied().flatten()),
                ]
            }
            Counter::DryRunDenied(family) => {
                let i = FAMILIES.iter().position(|f| *f == family);
                [
                    self.dry_run_denied,
                    i.and_then(|i| self.dry_run_denied_by.get(i).copied().flatten()),
                ]
            }
            Counter::JwksFetchSuccess => [self.fetch_success, None],
            Counter::JwksFetchFailure => [self.fetch_failure, None],
            Counter::RequestsPaused => [self.paused, None],
            Counter::CacheHit => [self.cache_hit, None],
            Counter::CacheMiss => [self.cache_miss, None],
        };
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        for id in ids.into_iter().flatten() {
            let _ = hostcalls::increment_metric(id, n);
        }
    }
}
