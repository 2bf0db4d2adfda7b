//! Verified tokens, so a repeated token costs a lookup instead of a parse and a signature check.
//!
//! Keyed by the token itself (no hash collisions to reason about). An entry holds the parsed
//! token and the (policy, provider, key version) triples whose keys verified its signature; a
//! new JWKS (another key version) never reuses an old verdict, and an entry is dropped once the
//! token's `exp` has passed. Issuer, time and audience are still checked on every request (they
//! are cheap, and time moves). Bounded: at most `capacity` tokens, the oldest evicted first.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::rc::Rc;

use crate::jwt::Jwt;

/// Which keys verified a token: policy index, provider index, key version.
pub type Verdict = (usize, usize, u64);

struct Entry {
    jwt: Rc<Jwt>,
    verified: Vec<Verdict>,
}

/// A fast, unkeyed hash of the token's length and last 32 bytes (the signature's tail). Unkeyed
/// is safe here: only tokens whose signature verified are ever inserted, so nobody can fill the
/// map with colliding keys; a lookup that collides just compares one more whole token.
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
    /// Signature checks skipped and done since the last [`TokenCache::take_counts`].
    hits: u64,
    misses: u64,
}

impl TokenCache {
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            map: HashMap::default(),
            order: VecDeque::new(),
            capacity,
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

    /// The parsed token and the verdicts it earned, unless it is unknown or expired (`exp`
    /// before `now`).
    pub fn get(&mut self, token: &str, now: u64) -> Option<(Rc<Jwt>, &[Verdict])> {
        let expired = self
            .map
            .get(token)?
            .jwt
            .exp
            .is_some_and(|exp| exp != 0 && exp < now);
        if expired {
            self.map.remove(token);
            return None;
        }
        self.map
            .get(token)
            .map(|e| (Rc::clone(&e.jwt), e.verified.as_slice()))
    }

    /// Remembers that `verdict`'s keys verified this token (evicting the oldest when full).
    /// Only verified tokens are kept, so forged ones cannot push good ones out.
    pub fn insert_verified(&mut self, token: &str, jwt: Rc<Jwt>, verdict: Verdict) {
        if let Some(e) = self.map.get_mut(token) {
            if !e.verified.contains(&verdict) {
                e.verified.push(verdict);
            }
            return;
        }
        if self.capacity == 0 {
            return;
        }
        while self.map.len() >= self.capacity {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        let key: Rc<str> = Rc::from(token);
        self.order.push_back(Rc::clone(&key));
        self.map.insert(
            key,
            Entry {
                jwt,
                verified: vec![verdict],
            },
        );
        // `order` may hold keys already dropped for expiry: keep it from growing past the map.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let map = &self.map;
            self.order.retain(|k| map.contains_key(k));
        }
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
        let mut c = TokenCache::new(4);
        let t = token("RS256");
        assert!(c.get(&t, 0).is_none());
        c.insert_verified(&t, jwt("RS256"), (0, 0, 1));
        assert!(c.get(&t, 0).is_some());
        assert!(c.was_verified(&t, (0, 0, 1)));
        c.insert_verified(&t, jwt("RS256"), (0, 1, 1));
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
        let mut c = TokenCache::new(4);
        let t = token("RS256");
        let j = jwt("RS256");
        let exp = j.exp.unwrap();
        c.insert_verified(&t, j, (0, 0, 0));
        assert!(c.get(&t, exp).is_some());
        assert!(c.get(&t, exp + 1).is_none());
        assert!(c.is_empty());
    }

    #[test]
    fn bounded_oldest_evicted_first() {
        let mut c = TokenCache::new(2);
        for name in ["RS256", "RS384", "RS512"] {
            c.insert_verified(&token(name), jwt(name), (0, 0, 0));
        }
        assert_eq!(c.len(), 2);
        assert!(c.get(&token("RS256"), 0).is_none());
        assert!(c.get(&token("RS512"), 0).is_some());
        let mut none = TokenCache::new(0);
        none.insert_verified(&token("RS256"), jwt("RS256"), (0, 0, 0));
        assert!(none.is_empty());
    }
}
