//! The compiled configuration: what `config/` builds once in `on_configure` and every request
//! reads. No JSON here: every field is typed, defaulted and validated.

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::jwks::Jwks;

/// The whole plugin configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Oldest first (`metadata.creationTimestamp`, then list order).
    pub policies: Vec<Policy>,
    pub settings: Settings,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// Serve only the policies of this phase (`None`: every policy).
    pub phase: Option<Phase>,
    /// Route-metadata namespace that carries route labels.
    pub route_labels_namespace: String,
    pub limits: Limits,
    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) passes
    /// unchecked (`settings.bypassCorsPreflight`, default true, as Istio configures `jwt_authn`).
    pub bypass_cors_preflight: bool,
    /// How long past their expiry the last good keys of a remote JWKS are still used while
    /// refreshes fail (`settings.maxStaleKeys`, default 24 h); after that `Jwks remote fetch is
    /// failed`.
    pub max_stale_ms: u64,
    /// Configured on an Istio proxy (not a setting: `config::parse_on` decides it).
    pub istio: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            istio: false,
            phase: None,
            route_labels_namespace: "jwt_policy".into(),
            limits: Limits::default(),
            bypass_cors_preflight: true,
            max_stale_ms: DEFAULT_MAX_STALE_MS,
        }
    }
}

/// Default of `settings.maxStaleKeys`: a day past the keys' expiry.
pub const DEFAULT_MAX_STALE_MS: u64 = 24 * 3600 * 1000;

/// Bounds on what one request or one worker may cost (`settings.limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A longer token is malformed (`Jwt is not in the form …`).
    pub max_token_bytes: usize,
    /// More tokens in one request: `Found multiple Jwt tokens`.
    pub max_tokens_per_request: usize,
    /// Verified tokens remembered per worker.
    pub max_cached_tokens: usize,
    /// What they may hold, in bytes (`jwt_cache::entry_bytes`).
    pub max_cache_bytes: usize,
    /// A larger JWKS response is a failed fetch.
    pub max_jwks_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_token_bytes: 32 * 1024,
            max_tokens_per_request: 8,
            max_cached_tokens: 16384,
            max_cache_bytes: 64 * 1024 * 1024,
            max_jwks_bytes: 256 * 1024,
        }
    }
}

/// In the order the phases run (`Ord`: preAuthz first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    PreAuthz,
    PostAuthz,
}

impl Phase {
    /// As the configuration spells it.
    pub fn name(self) -> &'static str {
        match self {
            Phase::PreAuthz => "preAuthz",
            Phase::PostAuthz => "postAuthz",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValidationPolicy {
    RequireValid,
    AllowMissing,
    AllowMissingOrFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearRouteCache {
    Auto,
    True,
    False,
}

/// One JWTPolicy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its place in evaluation order (`Config::policies`).
    pub index: usize,
    /// `namespace/name`, or its place in the list when it has no metadata.
    pub name: String,
    pub limits: Limits,
    /// Seconds since the epoch from `metadata.creationTimestamp`.
    pub created: Option<i64>,
    pub routes: Option<Vec<RouteSelector>>,
    pub destinations: Option<Vec<DestinationSelector>>,
    pub phase: Phase,
    pub priority: i64,
    pub providers: Vec<Provider>,
    pub validation: ValidationPolicy,
    pub claims: Vec<ClaimRule>,
    pub required_scopes: Vec<String>,
    pub clear_route_cache: ClearRouteCache,
    /// Copied from `Settings::bypass_cors_preflight`.
    pub bypass_cors_preflight: bool,
    /// Marked for rollout (`metadata.annotations["jwt-policy/dry-run"]: "true"`): decided
    /// normally, but a denial lets the request go on unchanged (claim headers still removed),
    /// counted and logged.
    pub dry_run: bool,
    /// Headers removed from every governed request before anything else (anti-spoofing, as
    /// `jwt_authn`'s `sanitizeHeaders`): every claim header, whatever its `append`, and every
    /// payload header, lower-case, deduplicated.
    pub spoofable_headers: Vec<String>,
}

impl Policy {
    /// The (lower-case) names of the headers its providers read tokens from.
    pub fn token_headers(&self) -> Vec<&str> {
        (self.providers.iter())
            .flat_map(|p| &p.headers)
            .map(|h| h.name.as_str())
            .collect()
    }

    /// It selects routes by name (which exist only where the route is: on Istio, the callers'
    /// sidecars and gateways, never a sidecar's inbound side).
    pub fn names_routes(&self) -> bool {
        self.routes.iter().flatten().any(|r| r.name.is_some())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteSelector {
    pub labels: BTreeMap<String, String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationSelector {
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub port: Option<u32>,
}

/// A `claims` entry: `key` must match one of `values` (if any) and none of `not_values`.
#[derive(Debug, Clone)]
pub struct ClaimRule {
    /// The claim path, split on the delimiter (one element without a delimiter).
    pub path: Vec<String>,
    pub values: Vec<String>,
    pub not_values: Vec<String>,
}

/// Where the keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    Local(Rc<Jwks>),
    Remote(Remote),
}

#[derive(Debug, Clone)]
pub struct Remote {
    pub url: String,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub cache_duration_ms: u64,
    pub timeout_ms: u64,
    pub async_fetch: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderSource {
    /// Lower-case header name.
    pub name: String,
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimToHeader {
    pub claim: String,
    /// Lower-case header name.
    pub header: String,
    pub append: bool,
}

#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub issuer: Option<String>,
    pub audiences: Option<Vec<String>>,
    pub headers: Vec<HeaderSource>,
    pub query_params: Vec<String>,
    /// Cookie names (`tokenSource.cookies`, case-sensitive).
    pub cookies: Vec<String>,
    pub keys: KeySource,
    pub claims_to_headers: Vec<ClaimToHeader>,
    pub keep_token: bool,
    pub clock_skew_seconds: u64,
    /// Lower-case header name.
    pub payload_header: Option<String>,
}
