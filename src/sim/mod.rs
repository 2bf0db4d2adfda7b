//! The remote-JWKS protocol under deterministic simulation (tests only).
//!
//! N [`Worker`]s, each with its own state, run against one simulated host: one shared-data
//! store with Envoy's compare-and-swap semantics (a write with a cas fails with `CasMismatch`
//! when the entry changed since; no cas always writes; every write gets a new cas, never 0), a
//! JWKS server whose answers, delays, failures and key sets a script or a seeded random schedule
//! controls, callouts answered after the server's delay or at their timeout (with no headers,
//! as Envoy does) or never, requests arriving on random workers (valid tokens for current,
//! rotated-out and future keys, forged and expired tokens, unknown kids, no token), clients
//! giving up, and a virtual clock that jumps forward and fails.
//!
//! After every event the invariants are checked (`World::check`, `World::answer`): a paused
//! request is answered by its deadline; at most one fetch per source is in flight across the
//! workers; a valid token for keys the proxy holds usable is not denied; an invalid token, or a
//! token for keys no longer held usable, is not allowed; every worker adopts a newer record
//! within a tick; after the server recovers a due refresh succeeds within the backoff; fetches
//! are spaced as documented (backoff, refresh, rotation refetch) whatever the requests; no
//! unbounded waiters, callouts or shared entries.
//!
//! `cargo test sim` runs the named scenarios and `SIM_SCHEDULES` (default 1500) random schedules;
//! a failing schedule prints its seed and trace; `SIM_SEED=<seed> cargo test sim_random` replays
//! it (and prints its trace even when it passes with `SIM_TRACE=1`).

use std::collections::BTreeSet;

use serde_json::json;

use crate::b64;
use crate::extract::Header;

mod engine;
mod scenarios;
mod schedules;
mod world;

pub use engine::Sim;
pub use world::World;

/// The wall clock at the start of every schedule.
pub const EPOCH_MS: u64 = 1_800_000_000_000;
/// `exp` of the valid tokens (2100).
pub const FAR_EXP: u64 = 4_102_444_800;

// ------------------------------------------------------------------------------ randomness

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ------------------------------------------------------------------------------ keys, tokens

pub fn secret(kid: &str) -> Vec<u8> {
    format!("sim-secret-of-{kid}-0123456789abcdef").into_bytes()
}

pub fn jwk(kid: &str) -> serde_json::Value {
    json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": b64::encode_url(&secret(kid))})
}

pub fn sign(kid: &str, key: &[u8], iss: &str, sub: &str, exp: u64) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid}).to_string();
    let payload = json!({"iss": iss, "sub": sub, "exp": exp}).to_string();
    let input = format!(
        "{}.{}",
        b64::encode_url(header.as_bytes()),
        b64::encode_url(payload.as_bytes())
    );
    let mac = hmac_sha256::HMAC::mac(input.as_bytes(), key);
    format!("{input}.{}", b64::encode_url(&mac))
}

pub fn kids_of(body: &[u8]) -> BTreeSet<String> {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["keys"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter_map(|k| k["kid"].as_str().map(str::to_owned))
        .collect()
}

/// What a request carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok {
    /// Signed by a key the server publishes now.
    Current,
    /// Signed by a key the server published before and dropped.
    Old,
    /// Signed by a key the server will publish next (rotation).
    Future,
    /// A kid nobody publishes.
    UnknownKid,
    /// Signed by key `k<n>` of the pool.
    Key(u8),
    /// A published kid, the wrong secret.
    Forged,
    /// A published key, `exp` an hour ago.
    Expired,
    Missing,
}

// ------------------------------------------------------------------------------ the server

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// 503.
    Unavailable,
    /// Connection reset: the callout ends with no headers.
    Reset,
    /// The callout is never answered (not even at its timeout).
    Never,
    /// 200 with a body that is no JWKS.
    BadBody,
    /// 200 with a well-formed JWKS without one valid key.
    NoValidKeys,
}

#[derive(Debug, Clone)]
pub enum Ev {
    Tick(usize, u64),
    Arrive(usize, Tok, usize),
    Response(u32),
    Cancel(usize, u32),
    Mode(Mode),
    Delay(u64),
    /// Publish the next key of the pool.
    AddKey,
    /// Drop the oldest published key (one is always kept).
    DropOldest,
    /// The wall clock jumps forward.
    Jump(u64),
    /// The host clock fails (`true`) or works again.
    ClockBroken(bool),
}

pub struct Callout {
    pub w: usize,
    pub source: Option<usize>,
    pub dispatched: u64,
    pub timeout_ms: u64,
    pub delivered: bool,
    /// The server's behaviour for this request, fixed when it was sent.
    pub mode: Mode,
    pub delay_ms: u64,
}

/// What a request got.
#[derive(Debug, Clone)]
pub struct Answer {
    pub at: u64,
    pub arrived: u64,
    pub worker: usize,
    pub kid: Option<String>,
    pub status: u32,
    pub body: String,
}

pub struct Req {
    pub arrived: u64,
    pub token: Option<(String, bool, usize)>,
    pub paused_at: Option<u64>,
    pub done: bool,
    pub cancelled: bool,
    pub headers: Vec<Header>,
}

/// A key set as the oracle sees it.
#[derive(Clone, Default)]
pub struct Snap {
    pub generation: u64,
    pub kids: BTreeSet<String>,
    pub usable_until: u64,
}

#[derive(Clone)]
pub struct SourceCfg {
    pub timeout_ms: u64,
    pub cache_ms: u64,
    pub async_fetch: bool,
}

#[derive(Clone)]
pub struct Setup {
    pub workers: usize,
    pub sources: Vec<SourceCfg>,
    pub max_stale_ms: u64,
    /// Keys published at the start (of the pool `k0`, `k1`, …).
    pub initial_keys: usize,
}

pub struct SourceInfo {
    pub shared_key: String,
    pub timeout_ms: u64,
    pub cache_ms: u64,
    pub max_stale_ms: u64,
}
