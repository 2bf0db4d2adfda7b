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

impl Record {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(21 + self.body.len());
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
            .get(16..20)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)?;
        Some(Record {
            good_at_ms: u64_at(0)?,
            attempt_at_ms: u64_at(8)?,
            failures,
            no_valid_keys: *bytes.get(20)? == 1,
            body: bytes.get(21..)?.to_vec(),
        })
    }

    fn next_retry_at(&self) -> u64 {
        if self.failures == 0 {
            return 0;
        }
        let exp = self.failures.saturating_sub(1).min(20);
        let delay = 1_000u64.saturating_mul(1 << exp).min(MAX_BACKOFF_MS);
        self.attempt_at_ms.saturating_add(delay)
    }
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

/// One JWKS source (a remote URL and cluster) in one worker.
#[derive(Debug)]
pub struct Source {
    pub remote: Remote,
    /// The shared-data key of its [`Record`].
    pub shared_key: String,
    pub record: Record,
    keys: Option<Rc<Jwks>>,
    /// A fetch of this worker is in flight, to be given up at this time.
    pub in_flight_until: Option<u64>,
    /// Requests want keys (none yet, or an unknown `kid`).
    pub wanted: bool,
    /// A larger JWKS body is a failed fetch.
    pub max_body: usize,
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
    pub fn new(remote: Remote, max_body: usize) -> Source {
        let shared_key = format!("jwt_policy_filter.jwks.{}.{}", remote.cluster, remote.url);
        Source {
            remote,
            shared_key,
            record: Record::default(),
            keys: None,
            in_flight_until: None,
            wanted: false,
            max_body,
        }
    }
}

impl Source {
    /// The keys as a request sees them at `now`.
    pub fn state(&self, now: u64) -> Keys<'_> {
        match &self.keys {
            Some(jwks) => Keys::Ready {
                jwks,
                version: self.record.good_at_ms,
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
        match &self.keys {
            None => self.wanted || self.remote.async_fetch,
            Some(_) => {
                let refresh_at = self.record.good_at_ms.saturating_add(
                    self.remote
                        .cache_duration_ms
                        .saturating_sub(self.refresh_lead_ms()),
                );
                now >= refresh_at || (self.wanted && self.may_refetch(now))
            }
        }
    }

    /// Refresh this long before expiry: a tenth of the cache duration, at most 30 s.
    fn refresh_lead_ms(&self) -> u64 {
        (self.remote.cache_duration_ms / 10).min(30_000)
    }

    /// A fetch was dispatched at `now`.
    pub fn fetch_started(&mut self, now: u64) {
        self.in_flight_until = Some(
            now.saturating_add(self.remote.timeout_ms)
                .saturating_add(DEADLINE_MARGIN_MS),
        );
    }

    /// Applies a fetch result; returns the record to publish to the other workers.
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
        match parsed {
            Ok((body, jwks)) => {
                self.keys = Some(Rc::new(jwks));
                self.record = Record {
                    good_at_ms: now,
                    attempt_at_ms: now,
                    failures: 0,
                    no_valid_keys: false,
                    body,
                };
                Ok(&self.record)
            }
            Err(e) => {
                self.record.attempt_at_ms = now;
                self.record.failures = self.record.failures.saturating_add(1);
                self.record.no_valid_keys = matches!(e, FetchError::NoValidKeys(_));
                Err(e)
            }
        }
    }

    /// Adopts a record another worker published (parsing its body only when it changed).
    pub fn adopt(&mut self, record: Record) {
        if record.attempt_at_ms < self.record.attempt_at_ms {
            return;
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
        s.adopt(Record {
            attempt_at_ms: 1,
            ..Record::default()
        });
        assert_eq!(s.record.attempt_at_ms, 9, "an older record is ignored");
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
}
