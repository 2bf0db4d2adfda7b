//! Envoy counters (shown at the admin `/stats` as `wasmcustom.jwt_policy.*`). The core names a
//! [`Counter`]; the host maps each [`slot`](Counter::slots) to a metric it defined once per VM
//! (a counter that cannot be defined is simply not recorded). Beside the totals, the counters of
//! each policy and provider ([`Layout`]) are named from the configuration:
//! `jwt_policy.policy.<policy>.{allowed,denied,dry_run.denied}` and
//! `jwt_policy.policy.<policy>.provider.<provider>.{denied.<family>,jwks_fetch_success,jwks_fetch_failure}`,
//! names made safe for Envoy's stats (every character but `A-Za-z0-9_-` becomes `_`, so a name
//! holds no `.`), for tag extraction to give Prometheus `policy` and `provider` labels.

use crate::policy::Config;
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
    /// A dry-run policy would have denied.
    DryRunDenied(Family),
    /// Per policy (index in `Config::policies`).
    PolicyAllowed(usize),
    PolicyDenied(usize),
    PolicyDryRunDenied(usize),
    /// Per provider of a policy, the reason family of a denial it gave.
    ProviderDenied {
        policy: usize,
        provider: usize,
        family: Family,
    },
    /// A fetch of a remote JWKS source, counted for every provider that uses it.
    SourceFetch {
        source: usize,
        ok: bool,
    },
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

/// Every total counter's name (without the `jwt_policy.` prefix), by slot.
pub const NAMES: [&str; 24] = [
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
    "dry_run.denied",
    "dry_run.denied.missing",
    "dry_run.denied.malformed",
    "dry_run.denied.issuer",
    "dry_run.denied.time",
    "dry_run.denied.audience",
    "dry_run.denied.signature",
    "dry_run.denied.jwks",
    "dry_run.denied.claims",
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
            Counter::DryRunDenied(family) => [
                Some(15),
                FAMILIES.iter().position(|f| *f == family).map(|i| 16 + i),
            ],
            // per policy and provider: see Layout
            Counter::PolicyAllowed(_)
            | Counter::PolicyDenied(_)
            | Counter::PolicyDryRunDenied(_)
            | Counter::ProviderDenied { .. }
            | Counter::SourceFetch { .. } => [None, None],
        }
    }
}

/// A name as Envoy stats take it: `A-Za-z0-9_-` kept, anything else `_` (no `.`, which
/// separates a stat name's parts).
pub fn stat_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The per-policy and per-provider counters of one configuration, numbered after [`NAMES`]:
/// per policy `allowed`, `denied`, `dry_run.denied`; per provider its eight family counters,
/// then `jwks_fetch_success`, `jwks_fetch_failure`.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// Every per-policy and per-provider counter's name (without `jwt_policy.`), by slot − NAMES.len().
    pub names: Vec<String>,
    /// The first slot of each policy's counters, and of each of its providers'.
    policy_at: Vec<usize>,
    provider_at: Vec<Vec<usize>>,
    /// The (policy, provider) pairs each remote source serves.
    source_users: Vec<Vec<(usize, usize)>>,
}

impl Layout {
    /// `source_of[policy][provider]`: the remote source of each provider (`None`: local keys).
    pub fn new(config: &Config, source_of: &[Vec<Option<usize>>]) -> Layout {
        let mut l = Layout::default();
        for (pi, p) in config.policies.iter().enumerate() {
            let name = stat_safe(&p.name);
            l.policy_at.push(NAMES.len() + l.names.len());
            for what in ["allowed", "denied", "dry_run.denied"] {
                l.names.push(format!("policy.{name}.{what}"));
            }
            let mut at = Vec::new();
            for (vi, v) in p.providers.iter().enumerate() {
                at.push(NAMES.len() + l.names.len());
                let prefix = format!("policy.{name}.provider.{}", stat_safe(&v.name));
                for f in FAMILIES {
                    l.names.push(format!("{prefix}.denied.{}", f.as_str()));
                }
                l.names.push(format!("{prefix}.jwks_fetch_success"));
                l.names.push(format!("{prefix}.jwks_fetch_failure"));
                if let Some(Some(si)) = source_of.get(pi).and_then(|s| s.get(vi)) {
                    if l.source_users.len() <= *si {
                        l.source_users.resize(si + 1, Vec::new());
                    }
                    if let Some(users) = l.source_users.get_mut(*si) {
                        users.push((pi, vi));
                    }
                }
            }
            l.provider_at.push(at);
        }
        l
    }

    /// Every slot `counter` increments, totals (see [`Counter::slots`]) and per policy/provider.
    pub fn each_slot(&self, counter: Counter, mut f: impl FnMut(usize)) {
        for slot in counter.slots().into_iter().flatten() {
            f(slot);
        }
        let provider =
            |pi: usize, vi: usize| self.provider_at.get(pi).and_then(|a| a.get(vi)).copied();
        match counter {
            Counter::PolicyAllowed(pi) => self.policy_at.get(pi).copied().into_iter().for_each(f),
            Counter::PolicyDenied(pi) => self
                .policy_at
                .get(pi)
                .map(|s| s + 1)
                .into_iter()
                .for_each(f),
            Counter::PolicyDryRunDenied(pi) => self
                .policy_at
                .get(pi)
                .map(|s| s + 2)
                .into_iter()
                .for_each(f),
            Counter::ProviderDenied {
                policy,
                provider: vi,
                family,
            } => {
                if let (Some(at), Some(i)) = (
                    provider(policy, vi),
                    FAMILIES.iter().position(|x| *x == family),
                ) {
                    f(at + i);
                }
            }
            Counter::SourceFetch { source, ok } => {
                for &(pi, vi) in self.source_users.get(source).into_iter().flatten() {
                    if let Some(at) = provider(pi, vi) {
                        f(at + FAMILIES.len() + usize::from(!ok));
                    }
                }
            }
            _ => {}
        }
    }

    /// Every counter name by slot: the totals, then this configuration's.
    pub fn all_names(&self) -> impl Iterator<Item = String> + '_ {
        NAMES
            .iter()
            .map(|n| (*n).to_owned())
            .chain(self.names.iter().cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_policy_and_provider_counters_are_named_from_the_configuration() {
        let c = crate::config::parse(
            br#"{"policies": [{"kind": "JWTPolicy", "metadata": {"name": "jwt-policy", "namespace": "httpbin"},
                "spec": {"config": {"providers": {"dev.example": {"remote": {"url": "http://idp/jwks"}},
                                                   "local": {"local": {"inline": "{\"keys\": []}"}}}}}}]}"#,
        );
        // an inline JWKS without keys is refused: use a remote-only policy instead
        assert!(c.is_err());
        let c = crate::config::parse(
            br#"{"policies": [{"kind": "JWTPolicy", "metadata": {"name": "jwt-policy", "namespace": "httpbin"},
                "spec": {"config": {"providers": {"dev.example": {"remote": {"url": "http://idp/jwks"}}}}}}]}"#,
        )
        .unwrap();
        let l = Layout::new(&c, &[vec![Some(0)]]);
        let names: Vec<String> = l.all_names().collect();
        let slot = |counter| {
            let mut v = Vec::new();
            l.each_slot(counter, |s| v.push(names[s].clone()));
            v
        };
        assert_eq!(
            slot(Counter::PolicyAllowed(0)),
            ["policy.httpbin_jwt-policy.allowed"]
        );
        assert_eq!(
            slot(Counter::DryRunDenied(Family::Time)),
            ["dry_run.denied", "dry_run.denied.time"]
        );
        assert_eq!(
            slot(Counter::ProviderDenied {
                policy: 0,
                provider: 0,
                family: Family::Signature
            }),
            ["policy.httpbin_jwt-policy.provider.dev_example.denied.signature"]
        );
        assert_eq!(
            slot(Counter::SourceFetch {
                source: 0,
                ok: false
            }),
            ["policy.httpbin_jwt-policy.provider.dev_example.jwks_fetch_failure"]
        );
        assert!(
            slot(Counter::PolicyDenied(7)).is_empty(),
            "out of range: nothing"
        );
    }

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
