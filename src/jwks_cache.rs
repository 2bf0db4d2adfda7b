//! Remote keys and their freshness, host-agnostic: when to fetch, what a fetch result means,
//! and the record every worker shares (through proxy-wasm shared data) so that one fetch serves
//! the whole proxy.
//!
//! Rules (SPEC §5): keys live for `cacheDuration` and are refreshed before they expire; a failed
//! fetch keeps the last good keys (stale-while-error) and retries with capped exponential
//! backoff; an unknown `kid` may trigger one refetch per [`MIN_REFETCH_INTERVAL_MS`], never one
//! per request; with no good keys at all, requests fail with `Jwks remote fetch is failed`.

use std::rc::Rc;

use crate::jwks::{self, Jwks};
use crate::policy::Remote;
use crate::status::Status;

/// An unknown `kid` refetches at most this often (per provider, across all workers).
pub const MIN_REFETCH_INTERVAL_MS: u64 = 10_000;
/// Retry delays after failures: 1 s, 2 s, 4 s, … capped here.
pub const MAX_BACKOFF_MS: u64 = 10_000;
/// A paused request is answered at most this long after its fetch's timeout.
pub const DEADLINE_MARGIN_MS: u64 = 1_000;

/// What every worker knows about one JWKS source; kept in shared data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Bumped by every published fetch result (good or bad), unique across the workers (taken
    /// with a compare-and-swap on the source's version entry): a worker adopts a record only
    /// when its generation is newer than its own, whatever the clock says.
    pub generation: u64,
    /// The generation at which `body` last changed: the key version cached verdicts are keyed
    /// by (a refresh that brings the same document keeps it, a new document never shares it).
    pub key_version: u64,
    /// When `body` was fetched (0: never).
    pub good_at_ms: u64,
    /// When the last fetch (good or bad) ended.
    pub attempt_at_ms: u64,
    /// Failed fetches since the last good one.
    pub failures: u32,
    /// The last fetch got a well-formed JWKS without one valid key.
    pub no_valid_keys: bool,
    /// The last good JWKS document (empty: none).
    pub body: Vec<u8>,
}

/// The fixed-size part of an encoded [`Record`], before the body.
const RECORD_HEADER: usize = 37;

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RECORD_HEADER + self.body.len());
        out.extend(self.generation.to_le_bytes());
        out.extend(self.key_version.to_le_bytes());
        out.extend(self.good_at_ms.to_le_bytes());
        out.extend(self.attempt_at_ms.to_le_bytes());
        out.extend(self.failures.to_le_bytes());
        out.push(u8::from(self.no_valid_keys));
        out.extend(&self.body);
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<Record> {
        let u64_at = |i: usize| {
            bytes
                .get(i..i + 8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
        };
        let failures = bytes
            .get(32..36)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)?;
        Some(Record {
            generation: u64_at(0)?,
            key_version: u64_at(8)?,
            good_at_ms: u64_at(16)?,
            attempt_at_ms: u64_at(24)?,
            failures,
            no_valid_keys: *bytes.get(36)? == 1,
            body: bytes.get(RECORD_HEADER..)?.to_vec(),
        })
    }

    /// The generation of an encoded record, without copying its body.
    pub fn generation_of(bytes: &[u8]) -> Option<u64> {
        bytes
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }

    pub fn next_retry_at(&self) -> u64 {
        if self.failures == 0 {
            return 0;
        }
        self.attempt_at_ms.saturating_add(backoff_ms(self.failures))
    }
}

/// The wait after `failures` failed fetches in a row: 1 s, 2 s, 4 s, … at most
/// [`MAX_BACKOFF_MS`].
pub fn backoff_ms(failures: u32) -> u64 {
    let exp = failures.saturating_sub(1).min(20);
    1_000u64.saturating_mul(1 << exp).min(MAX_BACKOFF_MS)
}

/// The keys of one provider as a request sees them: local keys are always `Ready`; a remote
/// source is `Ready` once fetched, `Pending` before, `Failed` when fetching failed with no good
/// keys left.
pub enum Keys<'a> {
    /// Usable keys. `version` changes whenever the keys do (a cached verdict is only reused
    /// for the same version). `may_refetch`: a token whose `kid` no key has waits for a refetch
    /// instead of failing at once (key rotation).
    Ready {
        jwks: &'a Jwks,
        version: u64,
        may_refetch: bool,
    },
    /// Not fetched yet: the request must wait.
    Pending,
    /// No good keys: `Jwks remote fetch is failed`, or `Jwks doesn't have any valid public key`
    /// when the server sent a JWKS without one.
    Failed(Status),
}

impl<'a> Keys<'a> {
    /// Local keys: one version, never refetched.
    pub fn local(jwks: &'a Jwks) -> Keys<'a> {
        Keys::Ready {
            jwks,
            version: 0,
            may_refetch: false,
        }
    }
}

/// One JWKS source in one worker: a remote URL and cluster with one timeout, cache duration and
/// fetch mode (providers that differ in any of these get their own source, so each keeps what
/// it configured).
#[derive(Debug)]
pub struct Source {
    pub remote: Remote,
    /// The shared-data key of its [`Record`]; `<shared_key>.version` holds the record's
    /// generation (8 bytes) and `<shared_key>.lease` the fetch lease.
    pub shared_key: String,
    /// `<shared_key>.version` and `<shared_key>.lease`.
    pub version_key: String,
    pub lease_key: String,
    pub record: Record,
    keys: Option<Rc<Jwks>>,
    /// A fetch of this worker is in flight, to be given up at this time.
    pub in_flight_until: Option<u64>,
    /// Requests want keys (none yet, or an unknown `kid`).
    pub wanted: bool,
    /// A larger JWKS body is a failed fetch.
    pub max_body: usize,
    /// The last good keys serve at most this long past their expiry (`settings.maxStaleKeys`).
    pub max_stale_ms: u64,
}

/// Why a fetch did not give keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    NoResponse,
    Status(String),
    Empty,
    TooLarge(usize),
    Invalid(String),
    NoValidKeys(String),
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::NoResponse => {
                f.write_str("no response (timeout, reset or no such cluster)")
            }
            FetchError::Status(s) => write!(f, "HTTP status {s}"),
            FetchError::Empty => f.write_str("empty body"),
            FetchError::TooLarge(n) => {
                write!(f, "body of {n} bytes is over the size cap")
            }
            FetchError::Invalid(why) => write!(f, "invalid JWKS: {why}"),
            FetchError::NoValidKeys(why) => write!(f, "no valid key in the JWKS: {why}"),
        }
    }
}

impl Source {
    pub fn new(remote: Remote, max_body: usize, max_stale_ms: u64) -> Source {
        // Everything that changes what the record means is in its key: two configurations (or
        // two providers) with another timeout, cache duration, mode or size cap never share
        // (and never overwrite) each other's record.
        let shared_key = format!(
            "jwt_policy_filter.jwks.v2.{}.{}.{}.{}.{}.{}",
            remote.timeout_ms,
            remote.cache_duration_ms,
            u8::from(remote.async_fetch),
            max_body,
            remote.cluster,
            remote.url
        );
        Source {
            remote,
            version_key: format!("{shared_key}.version"),
            lease_key: format!("{shared_key}.lease"),
            shared_key,
            record: Record::default(),
            keys: None,
            in_flight_until: None,
            wanted: false,
            max_body,
            max_stale_ms,
        }
    }

    /// Whether two providers' remote keys are one source (same everything).
    pub fn serves(&self, remote: &Remote) -> bool {
        let r = &self.remote;
        r.cluster == remote.cluster
            && r.url == remote.url
            && r.timeout_ms == remote.timeout_ms
            && r.cache_duration_ms == remote.cache_duration_ms
            && r.async_fetch == remote.async_fetch
    }

    /// When the last good keys stop being fresh.
    pub fn expires_at(&self) -> u64 {
        self.record
            .good_at_ms
            .saturating_add(self.remote.cache_duration_ms)
    }

    /// When the last good keys stop being used at all (stale bound).
    pub fn usable_until(&self) -> u64 {
        self.expires_at().saturating_add(self.max_stale_ms)
    }

    /// The keys a request may use at `now`: none past the stale bound.
    fn usable_keys(&self, now: u64) -> Option<&Rc<Jwks>> {
        self.keys.as_ref().filter(|_| now < self.usable_until())
    }

    /// The keys as a request sees them at `now`.
    pub fn state(&self, now: u64) -> Keys<'_> {
        match self.usable_keys(now) {
            Some(jwks) => Keys::Ready {
                jwks,
                version: self.record.key_version,
                may_refetch: self.may_refetch(now),
            },
            None if self.record.failures > 0
                && self.in_flight_until.is_none()
                && now < self.record.next_retry_at() =>
            {
                Keys::Failed(if self.record.no_valid_keys {
                    Status::JwksNoValidKeys
                } else {
                    Status::JwksFetchFail
                })
            }
            None => Keys::Pending,
        }
    }

    fn may_refetch(&self, now: u64) -> bool {
        self.in_flight_until.is_none()
            && now.saturating_sub(self.record.attempt_at_ms) >= MIN_REFETCH_INTERVAL_MS
            && now >= self.record.next_retry_at()
    }

    /// True when this worker should fetch now (it still needs the shared lease).
    pub fn should_fetch(&self, now: u64) -> bool {
        if self.in_flight_until.is_some() || now < self.record.next_retry_at() {
            return false;
        }
        match self.usable_keys(now) {
            None => self.wanted || self.remote.async_fetch || self.keys.is_some(),
            Some(_) => now >= self.refresh_at() || (self.wanted && self.may_refetch(now)),
        }
    }

    /// When the background refresh is due: a tenth of the cache duration (at most 30 s)
    /// before expiry.
    pub fn refresh_at(&self) -> u64 {
        let lead = (self.remote.cache_duration_ms / 10).min(30_000);
        self.record
            .good_at_ms
            .saturating_add(self.remote.cache_duration_ms.saturating_sub(lead))
    }

    /// A fetch was dispatched at `now`.
    pub fn fetch_started(&mut self, now: u64) {
        self.in_flight_until = Some(
            now.saturating_add(self.remote.timeout_ms)
                .saturating_add(DEADLINE_MARGIN_MS),
        );
    }

    /// Applies a fetch result (the record gets the next generation; [`Source::renumber`] moves
    /// it past what other workers published before it is shared).
    pub fn fetch_done(
        &mut self,
        now: u64,
        result: Result<Vec<u8>, FetchError>,
    ) -> Result<&Record, FetchError> {
        self.in_flight_until = None;
        self.wanted = false;
        let parsed = result.and_then(|body| {
            if body.is_empty() {
                return Err(FetchError::Empty);
            }
            if body.len() > self.max_body {
                return Err(FetchError::TooLarge(body.len()));
            }
            let jwks = jwks::parse_jwks(&body).map_err(|e| match e {
                jwks::JwksError::NoValidKeys(why) => FetchError::NoValidKeys(why),
                other => FetchError::Invalid(other.to_string()),
            })?;
            Ok((body, jwks))
        });
        let generation = self.record.generation.saturating_add(1);
        match parsed {
            Ok((body, jwks)) => {
                let same_keys = self.keys.is_some() && body == self.record.body;
                if !same_keys {
                    self.keys = Some(Rc::new(jwks));
                }
                self.record = Record {
                    generation,
                    key_version: if same_keys {
                        self.record.key_version
                    } else {
                        generation
                    },
                    good_at_ms: now,
                    attempt_at_ms: now,
                    failures: 0,
                    no_valid_keys: false,
                    body,
                };
                Ok(&self.record)
            }
            Err(e) => {
                self.record.generation = generation;
                self.record.attempt_at_ms = now;
                self.record.failures = self.record.failures.saturating_add(1);
                self.record.no_valid_keys = matches!(e, FetchError::NoValidKeys(_));
                Err(e)
            }
        }
    }

    /// Gives the record (not yet shared) another generation, above `floor`: keys that changed
    /// with it take that generation as their version too.
    pub fn renumber(&mut self, floor: u64) {
        if self.record.generation > floor {
            return;
        }
        let generation = floor.saturating_add(1);
        if self.record.key_version == self.record.generation {
            self.record.key_version = generation;
        }
        self.record.generation = generation;
    }

    /// Adopts a record another worker published, when it is newer than ours (parsing its body
    /// only when it changed). Returns whether it was adopted.
    pub fn adopt(&mut self, record: Record) -> bool {
        if record.generation <= self.record.generation {
            return false;
        }
        if record.body != self.record.body || self.keys.is_none() {
            self.keys = if record.body.is_empty() {
                None
            } else {
                jwks::parse_jwks(&record.body).ok().map(Rc::new)
            };
        }
        self.record = record;
        if self.keys.is_some() {
            self.wanted = false;
        }
        true
    }

    /// The in-flight fetch is overdue (the host never answered): count it as failed.
    pub fn expire_in_flight(&mut self, now: u64) -> bool {
        match self.in_flight_until {
            Some(until) if now >= until => {
                let _ = self.fetch_done(now, Err(FetchError::NoResponse));
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{jwk, jwks_doc};
    use serde_json::json;

    fn source(cache_ms: u64, async_fetch: bool) -> Source {
        stale_source(cache_ms, async_fetch, crate::policy::DEFAULT_MAX_STALE_MS)
    }

    fn stale_source(cache_ms: u64, async_fetch: bool, max_stale_ms: u64) -> Source {
        Source::new(
            Remote {
                url: "http://idp/jwks".into(),
                cluster: "idp".into(),
                authority: "idp".into(),
                path: "/jwks".into(),
                cache_duration_ms: cache_ms,
                timeout_ms: 1_000,
                async_fetch,
            },
            256 * 1024,
            max_stale_ms,
        )
    }

    fn good_body() -> Vec<u8> {
        jwks_doc(vec![jwk("rsa", json!({}))]).into_bytes()
    }

    fn is(state: Keys<'_>) -> &'static str {
        match state {
            Keys::Ready {
                may_refetch: true, ..
            } => "ready+refetch",
            Keys::Ready { .. } => "ready",
            Keys::Pending => "pending",
            Keys::Failed(_) => "failed",
        }
    }

    #[test]
    fn fetches_only_when_wanted_unless_async() {
        let mut s = source(300_000, false);
        assert!(!s.should_fetch(0));
        s.wanted = true;
        assert!(s.should_fetch(0));
        assert!(source(300_000, true).should_fetch(0));
    }

    #[test]
    fn one_fetch_at_a_time_and_keys_after_it() {
        let mut s = source(300_000, false);
        s.wanted = true;
        s.fetch_started(0);
        assert!(!s.should_fetch(1));
        assert_eq!(is(s.state(1)), "pending");
        assert!(s.fetch_done(5, Ok(good_body())).is_ok());
        assert_eq!(is(s.state(6)), "ready");
        assert_eq!(is(s.state(5 + MIN_REFETCH_INTERVAL_MS)), "ready+refetch");
    }

    #[test]
    fn refreshes_before_expiry_and_keeps_stale_keys_on_failure() {
        let mut s = source(100_000, false);
        s.fetch_done(0, Ok(good_body())).unwrap();
        assert!(!s.should_fetch(89_999));
        assert!(
            s.should_fetch(90_000),
            "a tenth of the cache duration early"
        );
        s.fetch_started(90_000);
        assert!(
            s.fetch_done(91_000, Err(FetchError::Status("503".into())))
                .is_err()
        );
        assert_eq!(
            is(s.state(200_000)),
            "ready+refetch",
            "stale keys keep serving"
        );
        assert!(!s.should_fetch(91_500), "backoff 1 s");
        assert!(s.should_fetch(92_000));
        s.fetch_started(92_000);
        let _ = s.fetch_done(92_100, Err(FetchError::Empty));
        assert!(!s.should_fetch(94_000), "backoff 2 s");
        assert!(s.should_fetch(94_100));
    }

    #[test]
    fn no_keys_and_a_failed_fetch_fail_requests_until_the_retry() {
        let mut s = source(300_000, false);
        s.wanted = true;
        s.fetch_started(0);
        let _ = s.fetch_done(10, Err(FetchError::NoResponse));
        assert_eq!(is(s.state(500)), "failed");
        assert_eq!(
            is(s.state(1_010)),
            "pending",
            "the retry is due: requests wait for it"
        );
    }

    #[test]
    fn backoff_is_capped() {
        let r = Record {
            failures: 30,
            attempt_at_ms: 1,
            ..Record::default()
        };
        assert_eq!(r.next_retry_at(), 1 + MAX_BACKOFF_MS);
    }

    #[test]
    fn bad_documents_are_failures() {
        let mut s = source(300_000, false);
        assert_eq!(
            s.fetch_done(0, Ok(Vec::new())).unwrap_err(),
            FetchError::Empty
        );
        assert!(matches!(
            s.fetch_done(0, Ok(b"{\"keys\": 5}".to_vec())).unwrap_err(),
            FetchError::Invalid(_)
        ));
        assert!(matches!(
            s.fetch_done(0, Ok(b"<html>".to_vec())).unwrap_err(),
            FetchError::Invalid(_)
        ));
        assert!(matches!(
            s.fetch_done(0, Ok(vec![b' '; 256 * 1024 + 1])).unwrap_err(),
            FetchError::TooLarge(_)
        ));
        assert_eq!(s.record.failures, 4);
        assert!(matches!(
            s.fetch_done(0, Ok(br#"{"keys": [{"kty": "EC"}]}"#.to_vec()))
                .unwrap_err(),
            FetchError::NoValidKeys(_)
        ));
        assert!(matches!(s.state(1), Keys::Failed(Status::JwksNoValidKeys)));
    }

    #[test]
    fn records_round_trip_and_are_adopted_once() {
        let rec = Record {
            generation: 3,
            key_version: 2,
            good_at_ms: 7,
            attempt_at_ms: 9,
            failures: 2,
            no_valid_keys: true,
            body: good_body(),
        };
        assert_eq!(Record::decode(&rec.encode()), Some(rec.clone()));
        assert_eq!(Record::decode(b"short"), None);
        let mut s = source(300_000, false);
        s.wanted = true;
        s.adopt(rec);
        assert_eq!(is(s.state(10)), "ready");
        assert!(!s.wanted);
        assert!(!s.adopt(Record {
            generation: 3,
            attempt_at_ms: 100,
            ..Record::default()
        }));
        assert_eq!(
            s.record.attempt_at_ms, 9,
            "a record of the same generation is not adopted again, whatever its clock says"
        );
        assert!(s.adopt(Record {
            generation: 4,
            key_version: 2,
            attempt_at_ms: 1,
            body: good_body(),
            ..Record::default()
        }));
        assert_eq!(
            s.record.attempt_at_ms, 1,
            "a newer generation is, even dated earlier"
        );
    }

    #[test]
    fn an_overdue_fetch_counts_as_failed() {
        let mut s = source(300_000, false);
        s.fetch_started(0);
        assert!(!s.expire_in_flight(1_000));
        assert!(s.expire_in_flight(2_000));
        assert_eq!(s.record.failures, 1);
        assert!(s.in_flight_until.is_none());
    }

    fn version(state: Keys<'_>) -> u64 {
        match state {
            Keys::Ready { version, .. } => version,
            _ => panic!("no keys"),
        }
    }

    fn other_body() -> Vec<u8> {
        jwks_doc(vec![jwk("ec256", json!({}))]).into_bytes()
    }

    // Issue 11 item 9: the version was the fetch time, so two key sets fetched in the same
    // millisecond shared cached verdicts.
    #[test]
    fn key_sets_fetched_in_the_same_millisecond_get_different_versions() {
        let mut s = source(300_000, false);
        s.fetch_done(5, Ok(good_body())).unwrap();
        let v1 = version(s.state(5));
        s.fetch_done(5, Ok(other_body())).unwrap();
        let v2 = version(s.state(5));
        assert_ne!(v1, v2, "another key set in the same ms is another version");
        s.fetch_done(5, Ok(other_body())).unwrap();
        assert_eq!(
            version(s.state(5)),
            v2,
            "a refresh bringing the same document keeps the verdicts"
        );
        let _ = s.fetch_done(6, Err(FetchError::Empty));
        assert_eq!(version(s.state(6)), v2, "a failed refresh keeps the keys");
    }

    #[test]
    fn renumbering_moves_a_new_key_version_with_the_generation() {
        let mut s = source(300_000, false);
        s.fetch_done(5, Ok(good_body())).unwrap();
        assert_eq!((s.record.generation, s.record.key_version), (1, 1));
        s.renumber(7);
        assert_eq!((s.record.generation, s.record.key_version), (8, 8));
        let _ = s.fetch_done(6, Err(FetchError::Empty));
        s.renumber(10);
        assert_eq!(
            (s.record.generation, s.record.key_version),
            (11, 8),
            "a failure moves the generation, not the keys' version"
        );
        s.renumber(3);
        assert_eq!(s.record.generation, 11, "never backwards");
    }

    // Issue 11 item 8: a failed refresh kept the last good keys with no age limit.
    #[test]
    fn stale_keys_stop_serving_at_the_stale_bound() {
        let mut s = stale_source(1_000, false, 2_000);
        s.fetch_done(0, Ok(good_body())).unwrap();
        s.fetch_started(900);
        let _ = s.fetch_done(1_000, Err(FetchError::Status("503".into())));
        assert_eq!(is(s.state(1_500)), "ready", "expired, within the bound");
        assert_eq!(is(s.state(2_999)), "ready");
        assert_eq!(
            is(s.state(3_000)),
            "pending",
            "past the bound with a retry due: requests wait for it"
        );
        assert!(
            s.should_fetch(3_000),
            "past the bound the source keeps retrying"
        );
        s.fetch_started(3_000);
        let _ = s.fetch_done(3_100, Err(FetchError::Status("503".into())));
        assert!(
            matches!(s.state(3_200), Keys::Failed(Status::JwksFetchFail)),
            "no usable keys: Jwks remote fetch is failed"
        );
        s.fetch_started(5_100);
        s.fetch_done(5_200, Ok(good_body())).unwrap();
        assert_eq!(is(s.state(5_300)), "ready", "a good fetch restores them");
    }

    #[test]
    fn providers_differing_in_timeout_or_cache_duration_are_other_sources() {
        let a = source(300_000, false);
        let mut r = a.remote.clone();
        assert!(a.serves(&r));
        r.timeout_ms = 2_000;
        assert!(!a.serves(&r));
        let b = Source::new(r, 256 * 1024, 0);
        assert_ne!(a.shared_key, b.shared_key, "and never share a record");
    }
}
