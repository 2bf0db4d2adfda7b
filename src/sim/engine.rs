//! The event loop: workers' callbacks on the simulated host, and the invariants checked after
//! every event.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use serde_json::json;

use crate::config;
use crate::extract::Header;
use crate::jwks_cache::{DEADLINE_MARGIN_MS, MAX_BACKOFF_MS, MIN_REFETCH_INTERVAL_MS};
use crate::metrics::NAMES;
use crate::worker::{BUSY_TICK_MS, Flow, IDLE_TICK_MS, Worker};

use super::world::{SimHost, snap_of};
use super::{
    EPOCH_MS, Ev, FAR_EXP, Mode, Req, Rng, Setup, Snap, SourceInfo, Tok, World, jwk, secret, sign,
};

pub struct Sim {
    pub world: World,
    pub workers: Vec<Worker>,
    /// Per source: the worker-side index of the source, by provider.
    pub provider_source: Vec<usize>,
    pub issuers: Vec<String>,
    pub rng: Rng,
}

pub fn duration(ms: u64) -> String {
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
    pub fn with_worker<R>(
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
    pub fn check_spacing(&mut self, si: usize, token: u32) {
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

    pub fn arrive(&mut self, w: usize, tok: Tok, provider: usize) {
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
    pub fn end_streams(&mut self, w: usize) {
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

    pub fn respond(&mut self, token: u32) {
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

    pub fn step(&mut self, ev: Ev) {
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
        // Healthy: the server answers in time, and the clock works (without it nothing is
        // fetched, by design).
        let healthy = self.world.mode == Mode::Up
            && !self.world.clock_broken
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
    pub fn check(&mut self) {
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
            // Measured from the latest of: healthy, the failure, the refresh due (in real time;
            // a clock jump counts as the moment it came due).
            let due = (refresh_at.saturating_sub(EPOCH_MS))
                .saturating_sub(self.world.offset)
                .max(self.world.last_jump.unwrap_or(0));
            if r.failures > 0
                && r.good_at_ms > 0
                && wall >= refresh_at
                && !in_flight
                && now > healthy.max(published).max(due) + bound
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
        let keep = if std::env::var("SIM_TRACE").is_ok() {
            usize::MAX
        } else {
            400
        };
        let tail: Vec<&String> = self.world.trace.iter().rev().take(keep).collect();
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
