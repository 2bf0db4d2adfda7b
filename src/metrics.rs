//! Envoy counters (shown at the admin `/stats` as `wasmcustom.jwt_policy.*`). The core names a
//! [`Counter`]; the host maps each [`slot`](Counter::slots) to a metric it defined once per VM
//! (a counter that cannot be defined is simply not recorded).

use crate::status::Family;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Allowed,
    Denied(Family),
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

/// Every counter's name (without the `jwt_policy.` prefix), by slot.
pub const NAMES: [&str; 15] = [
    "allowed",
    "denied",
    "jwks_fetch_success",
    "jwks_fetch_failure",
    "requests_paused",
    "token_cache_hit",
    "token_cache_miss",
    "denied.missing",
    "denied.malformed",
    "denied.issuer",
    "denied.time",
    "denied.audience",
    "denied.signature",
    "denied.jwks",
    "denied.claims",
];

impl Counter {
    /// The slots (indexes into [`NAMES`]) this event increments: a denial counts in `denied`
    /// and in its family's counter.
    pub fn slots(self) -> [Option<usize>; 2] {
        match self {
            Counter::Allowed => [Some(0), None],
            Counter::Denied(family) => [
                Some(1),
                FAMILIES.iter().position(|f| *f == family).map(|i| 7 + i),
            ],
            Counter::JwksFetchSuccess => [Some(2), None],
            Counter::JwksFetchFailure => [Some(3), None],
            Counter::RequestsPaused => [Some(4), None],
            Counter::CacheHit => [Some(5), None],
            Counter::CacheMiss => [Some(6), None],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_a_name() {
        assert_eq!(Counter::Denied(Family::Claims).slots(), [Some(1), Some(14)]);
        assert_eq!(NAMES[14], "denied.claims");
        for f in FAMILIES {
            let [_, slot] = Counter::Denied(f).slots();
            assert_eq!(NAMES[slot.unwrap()], format!("denied.{}", f.as_str()));
        }
    }
}
