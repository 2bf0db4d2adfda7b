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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use serde_json::json;

use crate::authn::HeaderOp;
use crate::b64;
use crate::config;
use crate::extract::Header;
use crate::jwks_cache::{DEADLINE_MARGIN_MS, MAX_BACKOFF_MS, MIN_REFETCH_INTERVAL_MS, Record};
use crate::metrics::{Counter, NAMES};
use crate::worker::{BUSY_TICK_MS, Flow, Host, IDLE_TICK_MS, SetError, Shared, Unreadable, Worker};

/// The wall clock at the start of every schedule.
const EPOCH_MS: u64 = 1_800_000_000_000;
/// `exp` of the valid tokens (2100).
const FAR_EXP: u64 = 4_102_444_800;

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

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

// ------------------------------------------------------------------------------ keys, tokens

fn secret(kid: &str) -> Vec<u8> {
    format!("sim-secret-of-{kid}-0123456789abcdef").into_bytes()
}

fn jwk(kid: &str) -> serde_json::Value {
    json!({"kty": "oct", "kid": kid, "alg": "HS256", "k": b64::encode_url(&secret(kid))})
}

fn sign(kid: &str, key: &[u8], iss: &str, sub: &str, exp: u64) -> String {
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

fn kids_of(body: &[u8]) -> BTreeSet<String> {
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

struct Callout {
    w: usize,
    source: Option<usize>,
    dispatched: u64,
    timeout_ms: u64,
    delivered: bool,
    /// The server's behaviour for this request, fixed when it was sent.
    mode: Mode,
    delay_ms: u64,
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

struct Req {
    arrived: u64,
    token: Option<(String, bool, usize)>,
    paused_at: Option<u64>,
    done: bool,
    cancelled: bool,
    headers: Vec<Header>,
}

/// A key set as the oracle sees it.
#[derive(Clone, Default)]
struct Snap {
    generation: u64,
    kids: BTreeSet<String>,
    usable_until: u64,
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

struct SourceInfo {
    shared_key: String,
    timeout_ms: u64,
    cache_ms: u64,
    max_stale_ms: u64,
}

/// Everything but the workers: the host the workers share.
pub struct World {
    pub now: u64,
    offset: u64,
    clock_broken: bool,
    last_jump: Option<u64>,
    store: BTreeMap<String, (Vec<u8>, u32)>,
    next_cas: u32,
    pub keys: Vec<String>,
    next_key: usize,
    dropped: Vec<String>,
    mode: Mode,
    delay_ms: u64,
    healthy_since: Option<u64>,
    callouts: BTreeMap<u32, Callout>,
    next_token: u32,
    reqs: BTreeMap<(usize, u32), Req>,
    next_ctx: u32,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Ev>,
    seq: u64,
    ticks: Vec<(u64, u64)>,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    pub counters: Vec<[u64; NAMES.len()]>,
    snaps: Vec<Vec<Snap>>,
    sources: Vec<SourceInfo>,
    /// Per source: dispatch times (real).
    pub fetches: Vec<Vec<u64>>,
    behind_since: Vec<Vec<Option<u64>>>,
    /// Bytes copied out of shared data, and how many reads.
    pub shared_bytes_read: u64,
    pub shared_reads: u64,
    /// Every answer, in order.
    pub answers: Vec<Answer>,
    max_entries: usize,
    pub steps: u64,
    /// Per source: the generation in the store and when (real) it appeared.
    published: Vec<(u64, u64)>,
    /// Keep a trace (off in batch runs: a failing seed is replayed with it on).
    pub tracing: bool,
    tokens: BTreeMap<(String, bool, String, String, u64), String>,
    snap_cache: BTreeMap<(usize, u64), Snap>,
}

impl World {
    fn wall(&self) -> u64 {
        EPOCH_MS + self.now + self.offset
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let line = format!("{:>7} {}", self.now, line());
            self.trace.push(line);
        }
    }

    fn violation(&mut self, what: String) {
        let line = format!("t={} VIOLATION {what}", self.now);
        self.trace.push(line.clone());
        self.violations.push(line);
    }

    pub fn at(&mut self, time: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((time, self.seq)));
        self.events.insert(self.seq, ev);
    }

    fn record_snap(&mut self, si: usize) -> Snap {
        let Some(info) = self.sources.get(si) else {
            return Snap::default();
        };
        let Some(record) = self
            .store
            .get(&info.shared_key)
            .and_then(|(bytes, _)| Record::decode(bytes))
        else {
            return Snap::default();
        };
        if let Some(snap) = self.snap_cache.get(&(si, record.generation)) {
            return snap.clone();
        }
        let snap = snap_of(&record, info);
        self.snap_cache
            .insert((si, record.generation), snap.clone());
        snap
    }

    fn store_record(&self, si: usize) -> Option<Record> {
        let info = self.sources.get(si)?;
        self.store
            .get(&info.shared_key)
            .and_then(|(bytes, _)| Record::decode(bytes))
    }

    /// A request got its answer: check it against what the proxy held.
    fn answer(&mut self, w: usize, ctx: u32, allowed: bool, status: u32, body: &str) {
        let wall = self.wall();
        let clock_broken = self.clock_broken;
        let Some(req) = self.reqs.get_mut(&(w, ctx)) else {
            self.violation(format!("answer for an unknown request {w}/{ctx}"));
            return;
        };
        if req.done {
            self.violation(format!("request {w}/{ctx} answered twice"));
            return;
        }
        if req.cancelled {
            self.violation(format!("request {w}/{ctx} answered after it was gone"));
            return;
        }
        req.done = true;
        let token = req.token.clone();
        let answer = Answer {
            at: self.now,
            arrived: req.arrived,
            worker: w,
            kid: token.as_ref().map(|t| t.0.clone()),
            status,
            body: body.to_owned(),
        };
        self.answers.push(answer);
        self.log(|| format!("w{w} answers {ctx}: {status} {body}"));
        let Some((kid, genuine, si)) = token else {
            if allowed {
                self.violation(format!("request {w}/{ctx} without a token allowed"));
            }
            return;
        };
        let held_now = self.record_snap(si);
        let before = self
            .snaps
            .get(w)
            .and_then(|s| s.get(si))
            .cloned()
            .unwrap_or_default();
        let usable = |s: &Snap| s.kids.contains(&kid) && wall < s.usable_until;
        if allowed {
            if !genuine {
                self.violation(format!("invalid token (kid {kid}) allowed on w{w}"));
            } else if !usable(&before) && !usable(&held_now) {
                self.violation(format!(
                    "token for kid {kid} allowed on w{w}: no usable key set holds it \
                     (worker {:?} until {}, shared {:?} until {}, wall {wall})",
                    before.kids, before.usable_until, held_now.kids, held_now.usable_until
                ));
            }
        } else if status == 500 {
            if !clock_broken {
                self.violation(format!("500 on w{w} with a working clock: {body}"));
            }
        } else if genuine && held_now.kids.contains(&kid) && wall + 1 < held_now.usable_until {
            self.violation(format!(
                "valid token (kid {kid}) denied on w{w} ({status} {body}) while the proxy \
                 holds it usable until {} (wall {wall})",
                held_now.usable_until
            ));
        }
    }
}

fn snap_of(record: &Record, info: &SourceInfo) -> Snap {
    Snap {
        generation: record.generation,
        kids: kids_of(&record.body),
        usable_until: if record.good_at_ms == 0 {
            0
        } else {
            record
                .good_at_ms
                .saturating_add(info.cache_ms)
                .saturating_add(info.max_stale_ms)
        },
    }
}

/// One worker's view of the world during one of its callbacks.
struct SimHost<'a> {
    world: &'a mut World,
    w: usize,
    current: Option<u32>,
    response: Option<(Vec<u8>, Vec<u8>)>,
}

impl Host for SimHost<'_> {
    fn now_ms(&mut self) -> Option<u64> {
        (!self.world.clock_broken).then(|| self.world.wall())
    }

    fn get_shared(&mut self, key: &str) -> Result<Shared, Unreadable> {
        self.world.shared_reads += 1;
        Ok(match self.world.store.get(key) {
            Some((value, cas)) => {
                self.world.shared_bytes_read += value.len() as u64;
                (Some(value.clone()), Some(*cas))
            }
            None => (None, None),
        })
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        if let (Some(cas), Some((_, current))) = (cas, self.world.store.get(key))
            && cas != 0
            && cas != *current
        {
            return Err(SetError::CasMismatch);
        }
        self.world.next_cas = self.world.next_cas.wrapping_add(1).max(1);
        let cas = self.world.next_cas;
        self.world
            .store
            .insert(key.to_owned(), (value.to_vec(), cas));
        Ok(())
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, String> {
        if cluster != "jwks" {
            return Err("BadArgument".into());
        }
        let path = headers
            .iter()
            .find(|(k, _)| *k == ":path")
            .map(|(_, v)| v.to_string())
            .unwrap_or_default();
        let world = &mut *self.world;
        world.next_token += 1;
        let token = world.next_token;
        let (mode, delay_ms) = (world.mode, world.delay_ms);
        world.callouts.insert(
            token,
            Callout {
                w: self.w,
                source: None,
                dispatched: world.now,
                timeout_ms,
                delivered: false,
                mode,
                delay_ms,
            },
        );
        if mode != Mode::Never {
            let at = world.now + delay_ms.min(timeout_ms);
            world.at(at, Ev::Response(token));
        }
        world.log(|| {
            format!(
                "w{} dispatches #{token} {path} (server {mode:?}, delay {delay_ms})",
                self.w
            )
        });
        Ok(token)
    }

    fn callout_status(&mut self) -> Option<Vec<u8>> {
        self.response.as_ref().map(|(s, _)| s.clone())
    }

    fn callout_body(&mut self, size: usize) -> Option<Vec<u8>> {
        self.response
            .as_ref()
            .map(|(_, b)| b.iter().take(size).copied().collect())
    }

    fn set_tick(&mut self, ms: u64) -> bool {
        let world = &mut *self.world;
        let Some(tick) = world.ticks.get_mut(self.w) else {
            return false;
        };
        tick.0 = ms;
        tick.1 += 1;
        let gen_ = tick.1;
        if ms > 0 {
            let at = world.now + ms;
            world.at(at, Ev::Tick(self.w, gen_));
        }
        true
    }

    fn enter(&mut self, context_id: u32) -> bool {
        let live = self
            .world
            .reqs
            .get(&(self.w, context_id))
            .is_some_and(|r| !r.done && !r.cancelled);
        if live {
            self.current = Some(context_id);
        }
        live
    }

    fn resume(&mut self) -> bool {
        let Some(ctx) = self.current else {
            self.world
                .violation("resume with no current request".into());
            return false;
        };
        self.world.answer(self.w, ctx, true, 200, "");
        true
    }

    fn request_headers(&mut self) -> Option<Vec<Header>> {
        let ctx = self.current?;
        self.world
            .reqs
            .get(&(self.w, ctx))
            .map(|r| r.headers.clone())
    }

    fn property(&mut self, _path: &[&str]) -> Option<Vec<u8>> {
        None
    }

    fn apply(&mut self, _op: &HeaderOp) -> bool {
        true
    }

    fn clear_route_cache(&mut self) {}

    fn reply(&mut self, status: u32, _headers: &[(&str, &str)], body: &str) -> bool {
        let Some(ctx) = self.current else {
            self.world.violation("reply with no current request".into());
            return false;
        };
        self.world.answer(self.w, ctx, false, status, body);
        true
    }

    fn count(&mut self, counter: Counter, n: u64) {
        if let Some(c) = self.world.counters.get_mut(self.w) {
            for slot in counter.slots().into_iter().flatten() {
                c[slot] += n;
            }
        }
    }
}

pub struct Sim {
    pub world: World,
    pub workers: Vec<Worker>,
    /// Per source: the worker-side index of the source, by provider.
    provider_source: Vec<usize>,
    issuers: Vec<String>,
    rng: Rng,
}

fn duration(ms: u64) -> String {
    format!("{ms}ms")
}

impl Sim {
    pub fn new(setup: &Setup, seed: u64) -> Sim {
        let providers: serde_json::Map<String, serde_json::Value> = setup
            .sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    format!("p{i}"),
                    json!({
                        "issuer": format!("https://iss{i}"),
                        "remote": {
                            "url": "http://jwks/keys",
                            "cluster": "jwks",
                            "timeout": duration(s.timeout_ms),
                            "cacheDuration": duration(s.cache_ms),
                            "enableAsyncFetch": s.async_fetch,
                        },
                    }),
                )
            })
            .collect();
        let doc = json!({
            "policies": [{"config": {"providers": providers}}],
            "settings": {"maxStaleKeys": duration(setup.max_stale_ms)},
        });
        let config = config::parse(doc.to_string().as_bytes()).unwrap();
        let workers: Vec<Worker> = (0..setup.workers)
            .map(|_| Worker::new(config.clone()))
            .collect();
        let first = &workers[0];
        let sources: Vec<SourceInfo> = first
            .sources
            .iter()
            .map(|s| SourceInfo {
                shared_key: s.shared_key.clone(),
                timeout_ms: s.remote.timeout_ms,
                cache_ms: s.remote.cache_duration_ms,
                max_stale_ms: s.max_stale_ms,
            })
            .collect();
        let provider_source = config.policies[0]
            .providers
            .iter()
            .map(|p| match &p.keys {
                crate::policy::KeySource::Remote(r) => {
                    first.sources.iter().position(|s| s.serves(r)).unwrap()
                }
                crate::policy::KeySource::Local(_) => panic!("sim providers are remote"),
            })
            .collect();
        let n_sources = sources.len();
        let keys: Vec<String> = (0..setup.initial_keys).map(|i| format!("k{i}")).collect();
        let world = World {
            now: 0,
            offset: 0,
            clock_broken: false,
            last_jump: None,
            store: BTreeMap::new(),
            next_cas: 0,
            next_key: keys.len(),
            keys,
            dropped: Vec::new(),
            mode: Mode::Up,
            delay_ms: 5,
            healthy_since: Some(0),
            callouts: BTreeMap::new(),
            next_token: 0,
            reqs: BTreeMap::new(),
            next_ctx: 100,
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            ticks: vec![(0, 0); setup.workers],
            trace: Vec::new(),
            violations: Vec::new(),
            counters: vec![[0; NAMES.len()]; setup.workers],
            snaps: vec![vec![Snap::default(); n_sources]; setup.workers],
            sources,
            fetches: vec![Vec::new(); n_sources],
            behind_since: vec![vec![None; n_sources]; setup.workers],
            shared_bytes_read: 0,
            shared_reads: 0,
            answers: Vec::new(),
            max_entries: 3 * n_sources + 1,
            steps: 0,
            published: vec![(0, 0); n_sources],
            tracing: true,
            tokens: BTreeMap::new(),
            snap_cache: BTreeMap::new(),
        };
        let mut sim = Sim {
            world,
            workers,
            provider_source,
            issuers: (0..setup.sources.len())
                .map(|i| format!("https://iss{i}"))
                .collect(),
            rng: Rng::new(seed),
        };
        let line = format!(
            "setup: {} workers, max stale {} ms, sources {:?}",
            setup.workers,
            setup.max_stale_ms,
            setup
                .sources
                .iter()
                .map(|s| (s.timeout_ms, s.cache_ms, s.async_fetch))
                .collect::<Vec<_>>()
        );
        sim.world.log(|| line);
        for w in 0..sim.workers.len() {
            sim.with_worker(w, None, None, |worker, host| worker.start(host));
        }
        sim
    }

    /// Runs one callback of worker `w` with the simulated host, then registers the callouts it
    /// started and checks their spacing.
    fn with_worker<R>(
        &mut self,
        w: usize,
        current: Option<u32>,
        response: Option<(Vec<u8>, Vec<u8>)>,
        f: impl FnOnce(&mut Worker, &mut SimHost<'_>) -> R,
    ) -> R {
        let snaps: Vec<Snap> = {
            let worker = &self.workers[w];
            worker
                .sources
                .iter()
                .zip(&self.world.snaps[w])
                .zip(&self.world.sources)
                .map(|((s, old), info)| {
                    if s.record.generation == old.generation && old.generation != 0 {
                        old.clone()
                    } else {
                        snap_of(&s.record, info)
                    }
                })
                .collect()
        };
        self.world.snaps[w] = snaps;
        let before: BTreeSet<u32> = self.workers[w].callouts.iter().map(|(t, _)| *t).collect();
        let mut host = SimHost {
            world: &mut self.world,
            w,
            current,
            response,
        };
        let r = f(&mut self.workers[w], &mut host);
        let started: Vec<(u32, usize)> = self.workers[w]
            .callouts
            .iter()
            .filter(|(t, _)| !before.contains(t))
            .copied()
            .collect();
        for (token, si) in started {
            if let Some(c) = self.world.callouts.get_mut(&token) {
                c.source = Some(si);
            }
            self.world.log(|| format!("  (#{token} is source {si})"));
            self.check_spacing(si, token);
        }
        r
    }

    /// A fetch may start only as the documented rules allow, given the last published result.
    fn check_spacing(&mut self, si: usize, token: u32) {
        let wall = self.world.wall();
        self.world.fetches[si].push(self.world.now);
        let Some(record) = self.world.store_record(si) else {
            return;
        };
        if record.generation == 0 {
            return;
        }
        let cache = self.world.sources[si].cache_ms;
        let min_gap = if record.failures > 0 {
            crate::jwks_cache::backoff_ms(record.failures)
        } else {
            let refresh = cache.saturating_sub((cache / 10).min(30_000));
            refresh.min(MIN_REFETCH_INTERVAL_MS)
        };
        if wall < record.attempt_at_ms.saturating_add(min_gap) {
            self.world.violation(format!(
                "fetch #{token} of source {si} {} ms after the last one ended (at least {min_gap} \
                 after {} failures)",
                wall.saturating_sub(record.attempt_at_ms),
                record.failures
            ));
        }
    }

    fn arrive(&mut self, w: usize, tok: Tok, provider: usize) {
        let world = &mut self.world;
        world.next_ctx += 1;
        let ctx = world.next_ctx;
        let iss = self.issuers[provider].clone();
        let si = self.provider_source[provider];
        let sub = format!("u{}", self.rng.below(3));
        let pick = |keys: &[String], rng: &mut Rng| -> Option<String> {
            keys.get(rng.below(keys.len() as u64) as usize).cloned()
        };
        let token = match tok {
            Tok::Missing => None,
            Tok::Current => pick(&world.keys, &mut self.rng).map(|k| (k, true, FAR_EXP)),
            Tok::Old => pick(&world.dropped, &mut self.rng)
                .or_else(|| pick(&world.keys, &mut self.rng))
                .map(|k| (k, true, FAR_EXP)),
            Tok::Future => Some((format!("k{}", world.next_key), true, FAR_EXP)),
            Tok::Key(n) => Some((format!("k{n}"), true, FAR_EXP)),
            Tok::UnknownKid => Some((format!("bogus-{}", self.rng.below(1000)), true, FAR_EXP)),
            Tok::Forged => pick(&world.keys, &mut self.rng).map(|k| (k, false, FAR_EXP)),
            Tok::Expired => pick(&world.keys, &mut self.rng)
                .map(|k| (k, false, (world.wall() / 1000).saturating_sub(3_600))),
        };
        let mut headers: Vec<Header> = vec![
            (":method".into(), b"GET".to_vec()),
            (":scheme".into(), b"http".to_vec()),
            (":authority".into(), b"api".to_vec()),
            (":path".into(), b"/get".to_vec()),
        ];
        let token = token.map(|(kid, genuine, exp)| {
            let key = if matches!(tok, Tok::Forged) {
                b"not-the-secret-0123456789abcdef-xx".to_vec()
            } else {
                secret(&kid)
            };
            let cache_key = (kid.clone(), genuine, iss.clone(), sub.clone(), exp);
            let jwt = world
                .tokens
                .entry(cache_key)
                .or_insert_with(|| sign(&kid, &key, &iss, &sub, exp))
                .clone();
            headers.push(("authorization".into(), format!("Bearer {jwt}").into_bytes()));
            // A token for a bogus kid is genuine but no key set ever holds it.
            (kid, genuine, si)
        });
        world.log(|| {
            format!(
                "w{w} request {ctx}: {tok:?} {:?}",
                token.as_ref().map(|t| &t.0)
            )
        });
        world.reqs.insert(
            (w, ctx),
            Req {
                arrived: world.now,
                token,
                paused_at: None,
                done: false,
                cancelled: false,
                headers,
            },
        );
        let flow = self.with_worker(w, Some(ctx), None, |worker, host| {
            worker.on_request(host, ctx)
        });
        match flow {
            Flow::Continue => self.world.answer(w, ctx, true, 200, ""),
            Flow::Pause => {
                let now = self.world.now;
                if let Some(r) = self.world.reqs.get_mut(&(w, ctx))
                    && !r.done
                {
                    r.paused_at = Some(now);
                    self.world.log(|| format!("w{w} pauses {ctx}"));
                }
            }
        }
        self.end_streams(w);
    }

    /// Envoy ends the streams of answered requests: `on_done`.
    fn end_streams(&mut self, w: usize) {
        let done: Vec<u32> = self
            .world
            .reqs
            .iter()
            .filter(|((rw, _), r)| *rw == w && (r.done || r.cancelled))
            .map(|((_, c), _)| *c)
            .collect();
        for ctx in done {
            self.workers[w].forget(ctx);
            if let Some(r) = self.world.reqs.get(&(w, ctx))
                && r.done
            {
                self.world.reqs.remove(&(w, ctx));
            }
        }
    }

    fn respond(&mut self, token: u32) {
        let Some(c) = self.world.callouts.get_mut(&token) else {
            return;
        };
        if c.delivered {
            return;
        }
        c.delivered = true;
        let (w, mode, slow) = (c.w, c.mode, c.delay_ms >= c.timeout_ms);
        let body = json!({"keys": self.world.keys.iter().map(|k| jwk(k)).collect::<Vec<_>>()})
            .to_string()
            .into_bytes();
        let response: Option<(Vec<u8>, Vec<u8>)> = match mode {
            _ if slow => None,
            Mode::Up => Some((b"200".to_vec(), body)),
            Mode::Unavailable => Some((b"503".to_vec(), b"unavailable".to_vec())),
            Mode::Reset | Mode::Never => None,
            Mode::BadBody => Some((b"200".to_vec(), b"<html>".to_vec())),
            Mode::NoValidKeys => Some((b"200".to_vec(), br#"{"keys":[{"kty":"EC"}]}"#.to_vec())),
        };
        self.world.log(|| {
            format!(
                "w{w} gets #{token}: {}",
                response
                    .as_ref()
                    .map_or("no response".to_string(), |(s, b)| format!(
                        "{} {}",
                        String::from_utf8_lossy(s),
                        String::from_utf8_lossy(b)
                    ))
            )
        });
        let (headers, size) = response.as_ref().map_or((0, 0), |(_, b)| (3, b.len()));
        self.with_worker(w, None, response, |worker, host| {
            worker.on_fetch_response(host, token, headers, size)
        });
        self.end_streams(w);
    }

    fn step(&mut self, ev: Ev) {
        match ev {
            Ev::Tick(w, gen_) => {
                if self.world.ticks[w].1 != gen_ {
                    return;
                }
                self.with_worker(w, None, None, |worker, host| worker.on_tick(host));
                let (period, now_gen) = self.world.ticks[w];
                if now_gen == gen_ && period > 0 {
                    let at = self.world.now + period;
                    self.world.at(at, Ev::Tick(w, gen_));
                }
                self.end_streams(w);
            }
            Ev::Arrive(w, tok, provider) => self.arrive(w, tok, provider),
            Ev::Response(token) => self.respond(token),
            Ev::Cancel(w, ctx) => {
                if let Some(r) = self.world.reqs.get_mut(&(w, ctx))
                    && !r.done
                {
                    r.cancelled = true;
                    self.world.log(|| format!("w{w} client of {ctx} gives up"));
                    self.workers[w].forget(ctx);
                    self.world.reqs.remove(&(w, ctx));
                }
            }
            Ev::Mode(m) => {
                self.world.mode = m;
                self.world.log(|| format!("server {m:?}"));
            }
            Ev::Delay(d) => {
                self.world.delay_ms = d;
                self.world.log(|| format!("server delay {d}"));
            }
            Ev::AddKey => {
                let k = format!("k{}", self.world.next_key);
                self.world.next_key += 1;
                self.world.log(|| format!("server adds {k}"));
                self.world.keys.push(k);
            }
            Ev::DropOldest => {
                if self.world.keys.len() > 1 {
                    let k = self.world.keys.remove(0);
                    self.world.log(|| format!("server drops {k}"));
                    self.world.dropped.push(k);
                }
            }
            Ev::Jump(ms) => {
                self.world.offset += ms;
                self.world.last_jump = Some(self.world.now);
                self.world.log(|| format!("clock jumps {ms} ms"));
            }
            Ev::ClockBroken(b) => {
                self.world.clock_broken = b;
                self.world.log(|| format!("clock broken: {b}"));
            }
        }
        let healthy = self.world.mode == Mode::Up
            && self
                .world
                .sources
                .iter()
                .all(|s| self.world.delay_ms < s.timeout_ms);
        match (healthy, self.world.healthy_since) {
            (true, None) => self.world.healthy_since = Some(self.world.now),
            (false, Some(_)) => self.world.healthy_since = None,
            _ => {}
        }
    }

    /// The invariants that hold between events.
    fn check(&mut self) {
        let now = self.world.now;
        let wall = self.world.wall();
        let max_timeout = self
            .world
            .sources
            .iter()
            .map(|s| s.timeout_ms)
            .max()
            .unwrap_or(0);
        // A paused request is answered by its deadline (checked at the busy tick).
        let late: Vec<String> = self
            .world
            .reqs
            .iter()
            .filter(|(_, r)| !r.done && !r.cancelled)
            .filter_map(|((w, c), r)| {
                let paused = r.paused_at?;
                let bound = paused + max_timeout + DEADLINE_MARGIN_MS + 2 * BUSY_TICK_MS + 2;
                (now > bound).then(|| format!("request {w}/{c} paused at {paused} still waits"))
            })
            .collect();
        for l in late {
            self.world.violation(l);
        }
        // At most one fetch per source in flight (a forward clock jump may end a lease early).
        for si in 0..self.world.sources.len() {
            let in_flight: Vec<u32> = self
                .world
                .callouts
                .iter()
                .filter(|(_, c)| {
                    c.source == Some(si)
                        && !c.delivered
                        && now < c.dispatched + c.timeout_ms
                        && self.world.last_jump.is_none_or(|j| j < c.dispatched)
                })
                .map(|(t, _)| *t)
                .collect();
            if in_flight.len() > 1 {
                self.world.violation(format!(
                    "source {si}: fetches {in_flight:?} in flight at once"
                ));
            }
        }
        // Every worker adopts a newer published record within a tick.
        for si in 0..self.world.sources.len() {
            let published = self.world.store_record(si).map_or(0, |r| r.generation);
            for w in 0..self.workers.len() {
                let own = self.workers[w].sources[si].record.generation;
                let slot = &mut self.world.behind_since[w][si];
                if own >= published {
                    *slot = None;
                    continue;
                }
                let since = *slot.get_or_insert(now);
                if now > since + IDLE_TICK_MS + 2 * BUSY_TICK_MS + 2 {
                    self.world.violation(format!(
                        "w{w} still at generation {own} of source {si}, {published} published at {since}"
                    ));
                    self.world.behind_since[w][si] = Some(now);
                }
            }
        }
        // After the server recovered, a due refresh succeeds within the backoff (and the lease
        // of a lost fetch): measured in real time from the failure's publication.
        for si in 0..self.world.sources.len() {
            let Some(r) = self.world.store_record(si) else {
                continue;
            };
            let published = match self.world.published.get(si) {
                Some(&(g, at)) if g == r.generation => at,
                _ => {
                    self.world.published[si] = (r.generation, now);
                    now
                }
            };
            let Some(healthy) = self.world.healthy_since else {
                continue;
            };
            let info = &self.world.sources[si];
            let bound = MAX_BACKOFF_MS
                + info.timeout_ms
                + DEADLINE_MARGIN_MS
                + IDLE_TICK_MS
                + self.world.delay_ms
                + 4 * BUSY_TICK_MS;
            let refresh_at = r
                .good_at_ms
                .saturating_add(info.cache_ms - (info.cache_ms / 10).min(30_000));
            let in_flight =
                self.world.callouts.values().any(|c| {
                    c.source == Some(si) && !c.delivered && now < c.dispatched + c.timeout_ms
                });
            if r.failures > 0
                && r.good_at_ms > 0
                && wall >= refresh_at
                && !in_flight
                && now > healthy.max(published) + bound
            {
                self.world.violation(format!(
                    "source {si}: server healthy since {healthy}, refresh due, the failure \
                     published at {published} not retried"
                ));
                self.world.published[si] = (r.generation, now);
            }
        }
        // Nothing grows without bound.
        for w in 0..self.workers.len() {
            let open = self
                .world
                .reqs
                .iter()
                .filter(|((rw, _), r)| *rw == w && r.paused_at.is_some() && !r.done)
                .count();
            let worker = &self.workers[w];
            if worker.waiters.len() > open {
                let n = worker.waiters.len();
                self.world
                    .violation(format!("w{w}: {n} waiters for {open} paused requests"));
            }
            if worker.callouts.len() > worker.sources.len() {
                let n = worker.callouts.len();
                self.world.violation(format!("w{w}: {n} callouts"));
            }
        }
        if self.world.store.len() > self.world.max_entries {
            let n = self.world.store.len();
            self.world.violation(format!("{n} shared entries"));
        }
    }

    /// Runs events until `until` (real ms).
    pub fn run_until(&mut self, until: u64) {
        while let Some(Reverse((time, seq))) = self.world.queue.peek().copied() {
            if time > until {
                break;
            }
            self.world.queue.pop();
            let Some(ev) = self.world.events.remove(&seq) else {
                continue;
            };
            self.world.now = time;
            self.world.steps += 1;
            self.step(ev);
            self.check();
            if self.world.violations.len() > 20 {
                return;
            }
        }
        self.world.now = self.world.now.max(until);
    }

    /// Every request answered, every worker quiet: the end of a schedule.
    pub fn drain(&mut self) {
        let now = self.world.now;
        self.world.at(now, Ev::ClockBroken(false));
        self.world.at(now, Ev::Mode(Mode::Up));
        self.world.at(now, Ev::Delay(5));
        self.run_until(now + 15_000);
        let open: Vec<(usize, u32)> = self
            .world
            .reqs
            .iter()
            .filter(|(_, r)| !r.done && !r.cancelled && r.paused_at.is_some())
            .map(|(k, _)| *k)
            .collect();
        if !open.is_empty() {
            self.world.violation(format!("never answered: {open:?}"));
        }
    }

    pub fn counter(&self, name: &str) -> u64 {
        let slot = NAMES.iter().position(|n| *n == name).unwrap();
        self.world.counters.iter().map(|c| c[slot]).sum()
    }

    pub fn statuses(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for a in &self.world.answers {
            *m.entry(format!("{} {}", a.status, a.body)).or_insert(0) += 1;
        }
        m
    }

    pub fn report(&self, name: &str) -> String {
        let last = self.world.answers.last();
        let tail: Vec<&String> = self.world.trace.iter().rev().take(400).collect();
        let mut out = format!(
            "{name}: {} violation(s), {} answers (last: {:?})\n",
            self.world.violations.len(),
            self.world.answers.len(),
            last.map(|a| (a.worker, a.status))
        );
        for v in &self.world.violations {
            out.push_str(v);
            out.push('\n');
        }
        out.push_str("--- trace (last 400 lines) ---\n");
        for l in tail.into_iter().rev() {
            out.push_str(l);
            out.push('\n');
        }
        out
    }

    pub fn assert_clean(&self, name: &str) {
        assert!(self.world.violations.is_empty(), "{}", self.report(name));
    }
}

// ------------------------------------------------------------------------------ random schedules

fn random_setup(rng: &mut Rng) -> Setup {
    let sources = if rng.chance(25) { 2 } else { 1 };
    let timeout = rng.range(100, 2_000);
    let cfgs = (0..sources)
        .map(|i| SourceCfg {
            // Two providers of one URL: another cache duration (and sometimes timeout).
            timeout_ms: if i > 0 && rng.chance(50) {
                rng.range(100, 2_000)
            } else {
                timeout
            },
            cache_ms: [500, 1_000, 3_000, 10_000, 30_000, 120_000][rng.below(6) as usize]
                + 100 * i as u64,
            async_fetch: rng.chance(20),
        })
        .collect();
    Setup {
        workers: rng.range(2, 4) as usize,
        sources: cfgs,
        max_stale_ms: [0, 1_000, 5_000, 20_000, 600_000][rng.below(5) as usize],
        initial_keys: rng.range(1, 2) as usize,
    }
}

/// A seeded schedule: arrivals, server changes, clock jumps and failures over `length` ms.
pub fn random_schedule(seed: u64, tracing: bool) -> Sim {
    let mut rng = Rng::new(seed);
    let setup = random_setup(&mut rng);
    let mut sim = Sim::new(&setup, seed.wrapping_mul(31));
    sim.world.tracing = tracing;
    let length = 20_000;
    let providers = setup.sources.len();
    let mut t = 0;
    while t < length {
        t += rng.range(1, 300);
        let w = rng.below(setup.workers as u64) as usize;
        let tok = match rng.below(100) {
            0..=49 => Tok::Current,
            50..=57 => Tok::Future,
            58..=62 => Tok::Old,
            63..=74 => Tok::UnknownKid,
            75..=84 => Tok::Forged,
            85..=91 => Tok::Expired,
            _ => Tok::Missing,
        };
        let provider = rng.below(providers as u64) as usize;
        sim.world.at(t, Ev::Arrive(w, tok, provider));
        if rng.chance(2) {
            // A flood: 30 unknown kids (or first requests) within 50 ms.
            let tok = if rng.chance(50) {
                Tok::UnknownKid
            } else {
                Tok::Current
            };
            for _ in 0..30 {
                let w = rng.below(setup.workers as u64) as usize;
                sim.world
                    .at(t + rng.below(50), Ev::Arrive(w, tok, provider));
            }
        }
    }
    // Clients giving up: a cancel at a random time for random context ids.
    for _ in 0..rng.range(0, 40) {
        let w = rng.below(setup.workers as u64) as usize;
        let ctx = 100 + rng.range(1, 300) as u32;
        sim.world.at(rng.below(length), Ev::Cancel(w, ctx));
    }
    let mut t = 0;
    while t < length {
        t += rng.range(500, 12_000);
        let ev = match rng.below(100) {
            0..=29 => Ev::Mode(Mode::Up),
            30..=39 => Ev::Mode(Mode::Unavailable),
            40..=45 => Ev::Mode(Mode::Reset),
            46..=51 => Ev::Mode(Mode::Never),
            52..=55 => Ev::Mode(Mode::BadBody),
            56..=58 => Ev::Mode(Mode::NoValidKeys),
            59..=72 => Ev::Delay(rng.range(0, 2_500)),
            73..=84 => Ev::AddKey,
            85..=92 => Ev::DropOldest,
            93..=96 => Ev::Jump(rng.range(100, 200_000)),
            _ => Ev::ClockBroken(true),
        };
        if matches!(ev, Ev::ClockBroken(true)) {
            sim.world
                .at(t + rng.range(10, 3_000), Ev::ClockBroken(false));
        }
        sim.world.at(t, ev);
    }
    sim.run_until(length);
    sim.drain();
    sim
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

#[test]
fn sim_random_schedules() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let sim = random_schedule(seed, true);
        if std::env::var("SIM_TRACE").is_ok() {
            eprintln!("{}", sim.report(&format!("seed {seed}")));
        }
        sim.assert_clean(&format!("SIM_SEED={seed}"));
        return;
    }
    let n = env_u64("SIM_SCHEDULES").unwrap_or(1_000);
    let base = env_u64("SIM_BASE").unwrap_or(0);
    let start = std::time::Instant::now();
    let mut requests = 0;
    let mut steps = 0;
    for seed in base..base + n {
        let sim = random_schedule(seed, false);
        requests += sim.world.answers.len();
        steps += sim.world.steps;
        if !sim.world.violations.is_empty() {
            let sim = random_schedule(seed, true); // the same schedule, with its trace
            panic!(
                "{}\nreplay: SIM_SEED={seed} cargo test sim_random",
                sim.report(&format!("SIM_SEED={seed}"))
            );
        }
    }
    eprintln!(
        "sim: {n} schedules, {requests} requests, {steps} events, {:.2?}",
        start.elapsed()
    );
}

// ------------------------------------------------------------------------------ named scenarios

fn one_source(workers: usize, timeout_ms: u64, cache_ms: u64, max_stale_ms: u64) -> Setup {
    Setup {
        workers,
        sources: vec![SourceCfg {
            timeout_ms,
            cache_ms,
            async_fetch: false,
        }],
        max_stale_ms,
        initial_keys: 1,
    }
}

fn scripted(setup: &Setup, events: Vec<(u64, Ev)>, until: u64) -> Sim {
    let mut sim = Sim::new(setup, 1);
    for (t, ev) in events {
        sim.world.at(t, ev);
    }
    sim.run_until(until);
    sim
}

/// Requests with a current-key token every `every` ms on rotating workers.
fn steady(from: u64, to: u64, every: u64, workers: usize, tok: Tok) -> Vec<(u64, Ev)> {
    (0..)
        .map(|i| (from + i * every, i as usize % workers))
        .take_while(|(t, _)| *t < to)
        .map(|(t, w)| (t, Ev::Arrive(w, tok, 0)))
        .collect()
}

fn answers_between(sim: &Sim, from: u64, to: u64) -> Vec<&Answer> {
    sim.world
        .answers
        .iter()
        .filter(|a| a.arrived >= from && a.arrived < to)
        .collect()
}

const FETCH_FAILED: &str = "Jwks remote fetch is failed";
const NO_KEY: &str = "Jwks doesn't have key to match kid or alg from Jwt";

#[test]
fn sim_cold_start_40_waiters_on_4_workers_share_one_fetch() {
    let setup = one_source(4, 2_000, 60_000, 600_000);
    let mut events = vec![(0, Ev::Delay(300))];
    events.extend((0..40).map(|i| (10 + i / 8, Ev::Arrive(i as usize % 4, Tok::Current, 0))));
    let sim = scripted(&setup, events, 5_000);
    sim.assert_clean("cold start");
    assert_eq!(sim.world.fetches[0].len(), 1, "{}", sim.report("fetches"));
    assert_eq!(sim.statuses(), BTreeMap::from([("200 ".to_string(), 40)]));
    assert_eq!(sim.counter("requests_paused"), 40);
    assert!(
        sim.world
            .answers
            .iter()
            .all(|a| a.at < 10 + 300 + IDLE_TICK_MS + 50)
    );
}

#[test]
fn sim_server_down_at_start_then_up() {
    let setup = one_source(3, 1_000, 60_000, 600_000);
    let mut events = vec![
        (0, Ev::Mode(Mode::Unavailable)),
        (8_000, Ev::Mode(Mode::Up)),
    ];
    events.extend(steady(10, 30_000, 150, 3, Tok::Current));
    let sim = scripted(&setup, events, 32_000);
    sim.assert_clean("down then up");
    assert!(
        answers_between(&sim, 0, 8_000)
            .iter()
            .all(|a| a.status == 401 && a.body == FETCH_FAILED)
    );
    // Up at 8 s: the next retry (at most 10 s after the last failure) succeeds.
    let after = answers_between(&sim, 8_000 + MAX_BACKOFF_MS + IDLE_TICK_MS, 30_000);
    assert!(!after.is_empty() && after.iter().all(|a| a.status == 200));
    assert!(sim.counter("jwks_fetch_success") >= 1);
}

#[test]
fn sim_lease_holders_callout_never_answered() {
    let setup = one_source(2, 1_000, 60_000, 600_000);
    let mut events = vec![(0, Ev::Mode(Mode::Never)), (100, Ev::Mode(Mode::Up))];
    events.extend((0..10).map(|i| (10 + i, Ev::Arrive(0, Tok::Current, 0))));
    events.extend((0..10).map(|i| (30 + i, Ev::Arrive(1, Tok::Current, 0))));
    events.extend(steady(4_000, 6_000, 100, 2, Tok::Current));
    let sim = scripted(&setup, events, 8_000);
    sim.assert_clean("never answered");
    let first = answers_between(&sim, 0, 100);
    assert_eq!(first.len(), 20);
    assert!(
        first
            .iter()
            .all(|a| a.status == 401 && a.body == FETCH_FAILED)
    );
    assert!(
        first
            .iter()
            .all(|a| a.at <= a.arrived + 1_000 + DEADLINE_MARGIN_MS + BUSY_TICK_MS)
    );
    let later = answers_between(&sim, 4_000, 6_000);
    assert!(!later.is_empty() && later.iter().all(|a| a.status == 200));
    assert!(
        sim.workers.iter().all(|w| w.callouts.is_empty()),
        "the lost callout is forgotten"
    );
    assert_eq!(sim.world.fetches[0].len(), 2);
}

#[test]
fn sim_rotation_during_a_refresh() {
    // Fresh for 10 s, refreshed from 9 s; the refresh is slow, and the issuer rotates (k1 in,
    // k0 out) while it is in flight: the refresh brings the new set.
    let setup = one_source(3, 2_000, 10_000, 600_000);
    let mut events = vec![
        (10, Ev::Arrive(0, Tok::Current, 0)),
        (8_000, Ev::Delay(1_500)),
        (9_500, Ev::AddKey),
        (9_500, Ev::DropOldest),
    ];
    events.extend(steady(100, 9_500, 200, 3, Tok::Current));
    for t in (9_600..16_000).step_by(100) {
        events.push((t, Ev::Arrive((t / 100) as usize % 3, Tok::Current, 0)));
        events.push((t + 1, Ev::Arrive((t / 100 + 1) as usize % 3, Tok::Old, 0)));
    }
    let sim = scripted(&setup, events, 20_000);
    sim.assert_clean("rotation during refresh");
    let settled = answers_between(&sim, 9_000 + 1_500 + IDLE_TICK_MS + 100, 16_000);
    for a in &settled {
        match a.kid.as_deref() {
            Some("k1") => assert_eq!(a.status, 200, "{a:?}"),
            Some("k0") => assert_eq!((a.status, a.body.as_str()), (401, NO_KEY), "{a:?}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(settled.iter().any(|a| a.kid.as_deref() == Some("k1")));
    assert!(
        answers_between(&sim, 0, 9_500)
            .iter()
            .all(|a| a.status == 200)
    );
}

#[test]
fn sim_clock_jump_forward_past_cache_duration() {
    let setup = one_source(3, 1_000, 5_000, 60_000);
    let mut events = vec![(2_000, Ev::Jump(7_000)), (10_000, Ev::Jump(120_000))];
    events.extend(steady(10, 20_000, 100, 3, Tok::Current));
    let sim = scripted(&setup, events, 22_000);
    sim.assert_clean("clock jump");
    // Past expiry (within the stale bound) the keys serve while the refresh runs; past the stale
    // bound requests wait for a fetch. Either way every request passes.
    assert!(
        sim.world.answers.iter().all(|a| a.status == 200),
        "{:?}",
        sim.statuses()
    );
    let f = &sim.world.fetches[0];
    assert!(
        f.iter()
            .any(|t| (2_000..2_000 + IDLE_TICK_MS + 50).contains(t)),
        "{f:?}"
    );
    assert!(f.iter().any(|t| (10_000..10_100).contains(t)), "{f:?}");
}

#[test]
fn sim_stale_bound_reached() {
    // Issue 11 item 8: fresh 1 s, stale at most 2 s more; the server fails after the first fetch.
    let setup = one_source(2, 500, 1_000, 2_000);
    let mut events = vec![
        (100, Ev::Mode(Mode::Unavailable)),
        (8_000, Ev::Mode(Mode::Up)),
    ];
    events.extend(steady(10, 20_000, 50, 2, Tok::Current));
    let sim = scripted(&setup, events, 21_000);
    sim.assert_clean("stale bound");
    let good_at = 10 + 5; // the first fetch (server delay 5 ms)
    assert!(
        answers_between(&sim, 0, good_at + 3_000 - 5)
            .iter()
            .all(|a| a.status == 200)
    );
    let past = answers_between(&sim, good_at + 3_000 + 5, 8_000);
    assert!(!past.is_empty());
    assert!(
        past.iter()
            .all(|a| a.status == 401 && a.body == FETCH_FAILED),
        "{:?}",
        sim.statuses()
    );
    let recovered = answers_between(&sim, 8_000 + MAX_BACKOFF_MS + IDLE_TICK_MS, 20_000);
    assert!(!recovered.is_empty() && recovered.iter().all(|a| a.status == 200));
}

#[test]
fn sim_unknown_kid_flood_fetches_at_most_once_per_interval() {
    let setup = one_source(4, 1_000, 300_000, 600_000);
    let mut events = vec![(10, Ev::Arrive(0, Tok::Current, 0))];
    for i in 0..2_000u64 {
        events.push((100 + i * 15, Ev::Arrive(i as usize % 4, Tok::UnknownKid, 0)));
    }
    let sim = scripted(&setup, events, 32_000);
    sim.assert_clean("flood");
    // 30 s of unknown kids: the first fetch, then one refetch per 10 s at most.
    assert!(
        sim.world.fetches[0].len() <= 4,
        "{:?}",
        sim.world.fetches[0]
    );
}

// Issue 11 item 12a: providers sharing a cluster and URL took the first one's timeout and cache
// duration.
#[test]
fn sim_providers_sharing_a_url_keep_their_own_timeout() {
    let setup = Setup {
        workers: 2,
        sources: vec![
            SourceCfg {
                timeout_ms: 300,
                cache_ms: 60_000,
                async_fetch: false,
            },
            SourceCfg {
                timeout_ms: 2_000,
                cache_ms: 5_000,
                async_fetch: false,
            },
        ],
        max_stale_ms: 600_000,
        initial_keys: 1,
    };
    let events = vec![
        (0, Ev::Mode(Mode::Never)),
        (10, Ev::Arrive(0, Tok::Current, 0)),
        (10, Ev::Arrive(1, Tok::Current, 1)),
    ];
    let sim = scripted(&setup, events, 5_000);
    sim.assert_clean("two sources");
    assert_eq!(sim.workers[0].sources.len(), 2);
    let at: Vec<(u32, u64)> = sim.world.answers.iter().map(|a| (a.status, a.at)).collect();
    assert_eq!(at.len(), 2);
    assert!(
        at.iter()
            .any(|&(s, t)| s == 401 && t <= 10 + 300 + 1_000 + 25),
        "{at:?}"
    );
    assert!(
        at.iter().any(|&(s, t)| s == 401 && t >= 10 + 2_000 + 1_000),
        "{at:?}"
    );
}

// Issue 11 item 5: a failing clock meant time 0: nothing expired.
#[test]
fn sim_a_broken_clock_refuses_governed_requests_and_dates_nothing_from_zero() {
    let setup = one_source(2, 1_000, 60_000, 600_000);
    let events = vec![
        (0, Ev::Delay(200)),
        (10, Ev::Arrive(0, Tok::Current, 0)),
        (100, Ev::ClockBroken(true)), // while the fetch is in flight
        (150, Ev::Arrive(1, Tok::Current, 0)),
        (150, Ev::Arrive(1, Tok::Missing, 0)),
        (2_000, Ev::ClockBroken(false)),
        (2_100, Ev::Arrive(1, Tok::Current, 0)),
    ];
    let sim = scripted(&setup, events, 4_000);
    sim.assert_clean("broken clock");
    let a = &sim.world.answers;
    assert_eq!(a.len(), 4, "{a:?}");
    assert!(
        a.iter()
            .take(3)
            .all(|a| a.status == 500 && a.body == "jwt policy filter cannot read the clock"),
        "{a:?}"
    );
    assert_eq!(a[3].status, 200);
    let r = sim.world.store_record(0).unwrap();
    assert!(r.good_at_ms >= EPOCH_MS, "keys dated {}", r.good_at_ms);
}

// Issue 11 item 12b: every busy tick copied the whole record to compare its version.
#[test]
fn sim_busy_ticks_read_only_the_small_version_entry() {
    let mut setup = one_source(2, 1_000, 300_000, 600_000);
    setup.initial_keys = 60; // a ~6 KiB JWKS
    let mut events = vec![(10, Ev::Arrive(0, Tok::Current, 0))];
    // Keep worker 1 busy (a paused request per 200 ms, for a key nobody has yet: refetch waits).
    events.push((11_000, Ev::Delay(900)));
    events.extend(
        steady(11_000, 13_000, 200, 1, Tok::Future)
            .into_iter()
            .map(|(t, _)| (t, Ev::Arrive(1, Tok::Future, 0))),
    );
    let mut sim = scripted(&setup, events, 10_000);
    let body = sim.world.store_record(0).unwrap().body.len() as u64;
    assert!(body > 5_000);
    let (bytes, reads) = (sim.world.shared_bytes_read, sim.world.shared_reads);
    sim.run_until(14_000);
    sim.assert_clean("busy ticks");
    let (bytes, reads) = (
        sim.world.shared_bytes_read - bytes,
        sim.world.shared_reads - reads,
    );
    // One refetch (a new record: copied once per worker); every other read is 8 or 16 bytes.
    assert!(reads > 40, "{reads} reads");
    assert!(
        bytes < 3 * body + 16 * reads,
        "{bytes} bytes in {reads} reads"
    );
}

// Found by the random schedules (main's flow too): a worker that had not yet adopted the keys
// another worker had just fetched denied valid tokens for the new key until its next tick.
#[test]
fn sim_a_worker_behind_on_keys_looks_before_denying() {
    let setup = one_source(2, 1_000, 5_000, 600_000);
    let mut events = vec![
        (10, Ev::Arrive(0, Tok::Key(0), 0)),
        (1_000, Ev::Arrive(1, Tok::Key(0), 0)),
        (3_000, Ev::AddKey), // k1: the refresh due at 4.5 s brings it
    ];
    for t in (4_400..6_500).step_by(3) {
        events.push((t, Ev::Arrive((t / 3) as usize % 2, Tok::Key(1), 0)));
    }
    let sim = scripted(&setup, events, 7_000);
    sim.assert_clean("behind");
    let refreshed = sim.world.fetches[0][1] + 5;
    let after = answers_between(&sim, refreshed + 1, 6_500);
    assert!(after.len() > 50);
    assert!(
        after.iter().all(|a| a.status == 200),
        "{:?}",
        sim.statuses()
    );
}
