//! Verified tokens, so a repeated token costs a lookup instead of a parse and a signature check.
//!
//! Keyed by the token itself (no hash collisions to reason about). An entry holds the parsed
//! token and the (policy, provider, key version) triples whose keys verified its signature; a
//! new JWKS (another key version) never reuses an old verdict, and an entry is dropped once the
//! token's `exp` plus the largest clock skew of the providers that verified it has passed.
//! Issuer, time and audience are still checked on every request (they are cheap, and time
//! moves). Bounded: at most `capacity` tokens and `max_bytes` of heap (the
//! token, its copies in the parsed token and the parsed payload, counted by [`entry_bytes`]), the
//! oldest evicted first.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use serde_json::Value;

use crate::jwt::Jwt;
use crate::status::Status;

/// Which keys verified a token: policy index, provider index, key version.
pub type Verdict = (usize, usize, u64);

struct Entry {
    jwt: Rc<Jwt>,
    verified: Vec<Verdict>,
    /// The keys that did not verify it, and why (only for a token some keys did verify: a
    /// genuine token met at a provider it is not for, not a forged one).
    failed: Vec<(Verdict, Status)>,
    /// What [`entry_bytes`] counted for it.
    bytes: usize,
    /// Kept until `exp` plus this: the largest clock skew of the providers that verified it, so
    /// an entry stays while one of them accepts the token, whoever looks it up (review 10: dropped
    /// at `exp`, a token in the skew window paid a signature check on every request; review 11:
    /// dropped at the looking request's skew, a cheap request under a stricter provider evicted
    /// a lenient provider's verdict).
    leeway: u64,
}

/// A cached token: the parsed token, the keys that verified it and those that did not.
pub struct Cached<'a> {
    pub jwt: Rc<Jwt>,
    pub verified: &'a [Verdict],
    pub failed: &'a [(Verdict, Status)],
}

/// Fixed cost of one entry beyond its strings: the map slot, the order slot, the `Entry`, the
/// `Jwt`, the verdict list and the allocators' headers (rounded up).
const ENTRY_OVERHEAD: usize = 512;

/// Heap held by one JSON value beyond its own slot: strings' bytes, arrays' slots, and per map
/// entry the key, the value's slot and about 16 bytes of B-tree node. Recursion is bounded by
/// serde_json's nesting limit (128).
fn value_bytes(v: &Value) -> usize {
    const SLOT: usize = std::mem::size_of::<Value>();
    match v {
        Value::String(s) => s.capacity(),
        Value::Array(a) => a.iter().fold(a.capacity().saturating_mul(SLOT), |n, x| {
            n.saturating_add(value_bytes(x))
        }),
        Value::Object(m) => m.iter().fold(0usize, |n, (k, x)| {
            n.saturating_add(k.capacity() + std::mem::size_of::<String>() + SLOT + 16)
                .saturating_add(value_bytes(x))
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => 0,
    }
}

/// What caching `jwt` under a key of `token_len` bytes holds: the key, the parsed token's strings
/// and payload, and [`ENTRY_OVERHEAD`]. An estimate of the allocator's view, within a small
/// factor: a 1 KiB token with a dozen claims counts about 3.5 KiB.
pub fn entry_bytes(token_len: usize, jwt: &Jwt) -> usize {
    let strings = jwt.alg_name.capacity()
        + jwt.kid.as_ref().map_or(0, String::capacity)
        + jwt.signed.capacity()
        + jwt.payload_b64.capacity()
        + jwt.signature.capacity()
        + jwt.iss.as_ref().map_or(0, String::capacity)
        + jwt
            .audiences
            .iter()
            .map(|a| a.capacity() + std::mem::size_of::<String>())
            .sum::<usize>();
    let payload = jwt.payload.iter().fold(0usize, |n, (k, x)| {
        n.saturating_add(k.capacity() + std::mem::size_of::<String>() + 16 + 32)
            .saturating_add(value_bytes(x))
    });
    ENTRY_OVERHEAD
        .saturating_add(token_len)
        .saturating_add(strings)
        .saturating_add(payload)
}

/// A fast, unkeyed hash of the token's length and last 32 bytes (the signature's tail). Unkeyed
/// is safe here: only tokens whose signature verified, spelled canonically, are ever inserted,
/// so nobody but the issuer can make keys that collide (a new key needs a new signature); a
/// lookup that collides just compares one more whole token.
#[derive(Default)]
pub struct TailHasher(u64);

impl Hasher for TailHasher {
    fn write(&mut self, bytes: &[u8]) {
        let tail = bytes.get(bytes.len().saturating_sub(32)..).unwrap_or(bytes);
        let mut h = self.0 ^ (bytes.len() as u64);
        for chunk in tail.chunks(8) {
            let mut word = [0u8; 8];
            word.iter_mut().zip(chunk).for_each(|(w, c)| *w = *c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
        self.0 = h;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

pub struct TokenCache {
    map: HashMap<Rc<str>, Entry, BuildHasherDefault<TailHasher>>,
    order: VecDeque<Rc<str>>,
    capacity: usize,
    /// Heap budget, and what the entries hold now ([`entry_bytes`]).
    max_bytes: usize,
    bytes: usize,
    /// Signature checks skipped and done since the last [`TokenCache::take_counts`].
    hits: u64,
    misses: u64,
}

impl TokenCache {
    pub fn new(capacity: usize, max_bytes: usize) -> TokenCache {
        TokenCache {
            map: HashMap::default(),
            order: VecDeque::new(),
            capacity,
            max_bytes,
            bytes: 0,
            hits: 0,
            misses: 0,
        }
    }

    /// Counts a signature check skipped (`hit`) or done.
    pub fn record(&mut self, hit: bool) {
        if hit {
            self.hits = self.hits.saturating_add(1);
        } else {
            self.misses = self.misses.saturating_add(1);
        }
    }

    /// (hits, misses) since the last call.
    pub fn take_counts(&mut self) -> (u64, u64) {
        (
            std::mem::take(&mut self.hits),
            std::mem::take(&mut self.misses),
        )
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The parsed token and the verdicts it earned, unless it is unknown or expired for every
    /// provider that verified it (`exp` plus the largest of their clock skews before `now`).
    /// Time is the caller's to check again, with its own provider's skew.
    pub fn get(&mut self, token: &str, now: u64) -> Option<Cached<'_>> {
        let e = self.map.get(token)?;
        let expired = e
            .jwt
            .exp
            .is_some_and(|exp| exp != 0 && exp.saturating_add(e.leeway) < now);
        if expired {
            self.remove(token);
            return None;
        }
        self.map.get(token).map(|e| Cached {
            jwt: Rc::clone(&e.jwt),
            verified: &e.verified,
            failed: &e.failed,
        })
    }

    /// Remembers that `verdict`'s keys verified this token (evicting the oldest when full), and
    /// that `failed`'s keys, tried first on the way, did not; the entry stays until `exp` plus
    /// `skew` (the verifying provider's clock skew) at least. Only verified tokens are kept, so
    /// forged ones cannot push good ones out.
    pub fn insert_verified(
        &mut self,
        token: &str,
        jwt: Rc<Jwt>,
        verdict: Verdict,
        failed: &[(Verdict, Status)],
        skew: u64,
    ) {
        if let Some(e) = self.map.get_mut(token) {
            e.leeway = e.leeway.max(skew);
            if !e.verified.contains(&verdict) {
                e.verified.push(verdict);
            }
            for f in failed {
                if !e.failed.contains(f) {
                    e.failed.push(*f);
                }
            }
            return;
        }
        // Only the one spelling of a token: its signature segment is not signed, and the decoder
        // (like `jwt_authn`'s) takes whitespace, padding and set spare bits in it, so a holder
        // of one valid token could otherwise make any number of distinct entries (pushing
        // others' tokens out, and, same length and tail, all in one hash bucket). Other
        // spellings are verified each time, like any token not seen before.
        let canonical = token
            .rsplit_once('.')
            .is_some_and(|(_, sig)| crate::b64::is_canonical_url(sig));
        let bytes = entry_bytes(token.len(), &jwt);
        if !canonical || self.capacity == 0 || bytes > self.max_bytes {
            return;
        }
        while self.map.len() >= self.capacity || self.bytes.saturating_add(bytes) > self.max_bytes {
            match self.order.pop_front() {
                // Only the entry this queue slot was made for: a key dropped for expiry and
                // inserted again has a newer slot (and another `Rc`), and stays.
                Some(old) => {
                    if self
                        .map
                        .get_key_value(&*old)
                        .is_some_and(|(live, _)| Rc::ptr_eq(live, &old))
                    {
                        self.remove(&old);
                    }
                }
                None => break,
            }
        }
        let key: Rc<str> = Rc::from(token);
        self.order.push_back(Rc::clone(&key));
        self.bytes = self.bytes.saturating_add(bytes);
        self.map.insert(
            key,
            Entry {
                jwt,
                verified: vec![verdict],
                failed: failed.to_vec(),
                bytes,
                leeway: skew,
            },
        );
        // `order` may hold keys already dropped for expiry: keep it from growing past the map.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
    }

    fn remove(&mut self, token: &str) {
        if let Some(e) = self.map.remove(token) {
            self.bytes = self.bytes.saturating_sub(e.bytes);
        }
    }

    /// What the entries hold ([`entry_bytes`] summed).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn was_verified(&self, token: &str, verdict: Verdict) -> bool {
        self.map
            .get(token)
            .is_some_and(|e| e.verified.contains(&verdict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::parse;
    use crate::testkit::token;

    fn jwt(name: &str) -> Rc<Jwt> {
        Rc::new(parse(&token(name)).unwrap())
    }

    #[test]
    fn remembers_tokens_and_their_verdicts() {
        let mut c = TokenCache::new(4, usize::MAX);
        let t = token("RS256");
        assert!(c.get(&t, 0).is_none());
        c.insert_verified(&t, jwt("RS256"), (0, 0, 1), &[], 0);
        assert!(c.get(&t, 0).is_some());
        assert!(c.was_verified(&t, (0, 0, 1)));
        c.insert_verified(&t, jwt("RS256"), (0, 1, 1), &[], 0);
        assert!(c.was_verified(&t, (0, 1, 1)));
        assert!(
            !c.was_verified(&t, (0, 0, 2)),
            "another key version is not verified"
        );
        assert!(
            !c.was_verified(&t, (1, 0, 1)),
            "another policy is not verified"
        );
    }

    #[test]
    fn expired_entries_are_dropped() {
        let mut c = TokenCache::new(4, usize::MAX);
        let t = token("RS256");
        let j = jwt("RS256");
        let exp = j.exp.unwrap();
        c.insert_verified(&t, j, (0, 0, 0), &[], 0);
        assert!(c.get(&t, exp).is_some());
        assert!(c.get(&t, exp + 1).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn entries_stay_while_a_verifying_providers_skew_accepts_the_token() {
        let mut c = TokenCache::new(4, usize::MAX);
        let t = token("RS256");
        let j = jwt("RS256");
        let exp = j.exp.unwrap();
        c.insert_verified(&t, j, (0, 0, 0), &[], 60);
        // A stricter provider verifying it too does not shorten its stay.
        c.insert_verified(&t, jwt("RS256"), (0, 1, 0), &[], 0);
        assert!(c.get(&t, exp + 60).is_some());
        assert!(c.get(&t, exp + 61).is_none());
        assert!(c.is_empty());
        // No overflow at the end of time.
        let mut c = TokenCache::new(4, usize::MAX);
        c.insert_verified(&t, jwt("RS256"), (0, 0, 0), &[], u64::MAX);
        assert!(c.get(&t, u64::MAX).is_some());
    }

    #[test]
    fn bounded_oldest_evicted_first() {
        let mut c = TokenCache::new(2, usize::MAX);
        for name in ["RS256", "RS384", "RS512"] {
            c.insert_verified(&token(name), jwt(name), (0, 0, 0), &[], 0);
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&token("RS256"), 0).is_none());
        assert!(c.get(&token("RS512"), 0).is_some());
        let mut none = TokenCache::new(0, usize::MAX);
        none.insert_verified(&token("RS256"), jwt("RS256"), (0, 0, 0), &[], 0);
        assert!(none.is_empty());
    }

    #[test]
    fn a_token_inserted_again_after_expiry_is_not_evicted_by_its_old_queue_slot() {
        // Review 2: the queue kept the expired entry's slot; evicting it removed the new entry.
        let mut c = TokenCache::new(2, usize::MAX);
        let exp = jwt("RS256").exp.unwrap();
        c.insert_verified(&token("RS256"), jwt("RS256"), (0, 0, 0), &[], 0);
        c.insert_verified(&token("RS384"), jwt("RS384"), (0, 0, 0), &[], 0);
        assert!(
            c.get(&token("RS256"), exp + 1).is_none(),
            "dropped for expiry"
        );
        c.insert_verified(&token("RS256"), jwt("RS256"), (0, 0, 0), &[], 0);
        c.insert_verified(&token("RS512"), jwt("RS512"), (0, 0, 0), &[], 0);
        // The oldest live entry (RS384) went, not the RS256 inserted after it.
        assert_eq!(c.len(), 2);
        assert!(c.get(&token("RS256"), 0).is_some());
        assert!(c.get(&token("RS384"), 0).is_none());
    }

    #[test]
    fn bounded_by_bytes_too_oldest_evicted_first() {
        let names = ["RS256", "RS384", "RS512"];
        let costs: Vec<usize> = names
            .iter()
            .map(|n| entry_bytes(token(n).len(), &jwt(n)))
            .collect();
        // Room for the first two, not the third: the oldest goes.
        let mut c = TokenCache::new(100, costs[0] + costs[1] + costs[2] - 1);
        for name in names {
            c.insert_verified(&token(name), jwt(name), (0, 0, 0), &[], 0);
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&token("RS256"), 0).is_none());
        assert_eq!(c.bytes(), costs[1] + costs[2]);
        // An entry over the whole budget is never cached (and evicts nothing).
        let mut small = TokenCache::new(100, costs[0] - 1);
        small.insert_verified(&token("RS256"), jwt("RS256"), (0, 0, 0), &[], 0);
        assert!(small.is_empty());
        assert_eq!(small.bytes(), 0);
        // Expiry gives the bytes back.
        let j = jwt("RS256");
        let exp = j.exp.unwrap();
        let mut c = TokenCache::new(100, usize::MAX);
        c.insert_verified(&token("RS256"), j, (0, 0, 0), &[], 0);
        assert!(c.get(&token("RS256"), exp + 1).is_none());
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn entry_bytes_grows_with_the_payload_it_holds() {
        let plain = jwt("RS256");
        let base = entry_bytes(1000, &plain);
        assert!(base > 1000 + ENTRY_OVERHEAD);
        // A payload of many small claims costs more than its text: slots and keys count.
        let mut many = (*plain).clone();
        for i in 0..1000 {
            many.payload
                .insert(format!("k{i}"), Value::Array(vec![Value::Null; 4]));
        }
        let text = 1000 * r#""k999":[null,null,null,null],"#.len();
        assert!(entry_bytes(1000, &many) - base > 2 * text);
    }

    #[test]
    fn only_the_canonical_spelling_of_a_token_is_cached() {
        let t = token("ES256");
        let (head, sig) = t.rsplit_once('.').unwrap();
        let mut c = TokenCache::new(100, usize::MAX);
        for variant in [
            format!("{head}.{} {}", &sig[..10], &sig[10..]),
            format!("{head}.{sig}=="),
        ] {
            c.insert_verified(&variant, jwt("ES256"), (0, 0, 0), &[], 0);
        }
        assert!(
            c.is_empty(),
            "whitespace and padding variants are not cached"
        );
        c.insert_verified(&t, jwt("ES256"), (0, 0, 0), &[], 0);
        assert_eq!(c.len(), 1);
    }
}
