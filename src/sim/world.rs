//! The simulated host: one shared-data store, the JWKS server's callouts, the requests, and the
//! oracle that checks every answer against what the proxy held.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::authn::HeaderOp;
use crate::extract::Header;
use crate::host::{Host, SetError, Shared, Unreadable};
use crate::jwks_cache::Record;
use crate::metrics::{Counter, NAMES};

use super::{Answer, Callout, EPOCH_MS, Ev, Mode, Req, Snap, SourceInfo, kids_of};

/// Everything but the workers: the host the workers share.
pub struct World {
    pub now: u64,
    pub offset: u64,
    pub clock_broken: bool,
    pub last_jump: Option<u64>,
    pub store: BTreeMap<String, (Vec<u8>, u32)>,
    pub next_cas: u32,
    pub keys: Vec<String>,
    pub next_key: usize,
    pub dropped: Vec<String>,
    pub mode: Mode,
    pub delay_ms: u64,
    pub healthy_since: Option<u64>,
    pub callouts: BTreeMap<u32, Callout>,
    pub next_token: u32,
    pub reqs: BTreeMap<(usize, u32), Req>,
    pub next_ctx: u32,
    pub queue: BinaryHeap<Reverse<(u64, u64)>>,
    pub events: BTreeMap<u64, Ev>,
    pub seq: u64,
    pub ticks: Vec<(u64, u64)>,
    pub trace: Vec<String>,
    pub violations: Vec<String>,
    pub counters: Vec<[u64; NAMES.len()]>,
    pub snaps: Vec<Vec<Snap>>,
    pub sources: Vec<SourceInfo>,
    /// Per source: dispatch times (real).
    pub fetches: Vec<Vec<u64>>,
    pub behind_since: Vec<Vec<Option<u64>>>,
    /// Bytes copied out of shared data, and how many reads.
    pub shared_bytes_read: u64,
    pub shared_reads: u64,
    /// Every answer, in order.
    pub answers: Vec<Answer>,
    pub max_entries: usize,
    pub steps: u64,
    /// Per source: the generation in the store and when (real) it appeared.
    pub published: Vec<(u64, u64)>,
    /// Keep a trace (off in batch runs: a failing seed is replayed with it on).
    pub tracing: bool,
    pub tokens: BTreeMap<(String, bool, String, String, u64), String>,
    pub snap_cache: BTreeMap<(usize, u64), Snap>,
}

impl World {
    pub fn wall(&self) -> u64 {
        EPOCH_MS + self.now + self.offset
    }

    pub fn log(&mut self, line: impl FnOnce() -> String) {
        if self.tracing {
            let line = format!("{:>7} {}", self.now, line());
            self.trace.push(line);
        }
    }

    pub fn violation(&mut self, what: String) {
        let line = format!("t={} VIOLATION {what}", self.now);
        self.trace.push(line.clone());
        self.violations.push(line);
    }

    pub fn at(&mut self, time: u64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((time, self.seq)));
        self.events.insert(self.seq, ev);
    }

    pub fn record_snap(&mut self, si: usize) -> Snap {
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

    pub fn store_record(&self, si: usize) -> Option<Record> {
        let info = self.sources.get(si)?;
        self.store
            .get(&info.shared_key)
            .and_then(|(bytes, _)| Record::decode(bytes))
    }

    /// A request got its answer: check it against what the proxy held.
    pub fn answer(&mut self, w: usize, ctx: u32, allowed: bool, status: u32, body: &str) {
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

pub fn snap_of(record: &Record, info: &SourceInfo) -> Snap {
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
pub struct SimHost<'a> {
    pub world: &'a mut World,
    pub w: usize,
    pub current: Option<u32>,
    pub response: Option<(Vec<u8>, Vec<u8>)>,
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
