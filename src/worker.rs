//! One worker (one Envoy worker thread, one wasm VM), host-agnostic: the request flow around
//! [`authn::decide`] (gather the view, decide, apply; park the requests that wait for keys and
//! answer them by their deadline) and the fetch cycle of each remote source (tick: adopt, give
//! up overdue fetches, take the lease, dispatch; response: apply, publish, resume). The
//! shared-data protocol is `shared.rs`; everything from the host goes through [`Host`]
//! (`host.rs`): `filter.rs` implements it with proxy-wasm hostcalls, the simulator (`sim/`,
//! tests only) with N workers, one store and a scripted JWKS server.
//!
//! Time comes from [`Host::now_ms`], never earlier than a time it told before; when the host
//! cannot tell, a governed request is answered 500 (nothing is dated from 0) and the tick only
//! answers the paused requests.

use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use log::{debug, error, info, warn};

use crate::authn::{self, Decision, Keys, RequestView};
use crate::host::HostRoute;
pub use crate::host::{Flow, Host};
use crate::jwks_cache::{self, FetchError, Source};
use crate::jwt_cache::TokenCache;
use crate::metrics::{Counter, Layout};
use crate::policy::{Config, KeySource, Policy};
use crate::select;
use crate::shared::{self, release_lease, take_lease, take_worker_id};
use crate::status::{Family, Status};

/// Tick while requests wait or fetches run (deadline sweep, polling other workers' fetches).
pub const BUSY_TICK_MS: u64 = 20;
/// Tick otherwise, when remote keys exist (background refresh, adopting other workers' keys).
pub const IDLE_TICK_MS: u64 = 1_000;

/// A request paused until its providers' keys are ready.
#[derive(Debug)]
pub struct Waiter {
    pub context_id: u32,
    pub sources: Vec<usize>,
    pub deadline_ms: u64,
}

/// Everything one worker knows, shared by its root and HTTP contexts.
pub struct Worker {
    config: Rc<Config>,
    /// Remote JWKS sources: one per distinct (cluster, URL, timeout, cache duration, mode).
    pub sources: Vec<Source>,
    /// `source_of[policy][provider]`: the provider's source (`None`: local keys).
    source_of: Vec<Vec<Option<usize>>>,
    /// Requests paused for keys, by context id (review 10: a `Vec` made each pause and each
    /// request's end a scan of every paused request, O(N²) for N paused). Ordered, so a
    /// simulation run resumes them in the same order every time.
    pub waiters: BTreeMap<u32, Waiter>,
    /// Callouts in flight: (token, source).
    pub callouts: Vec<(u32, usize)>,
    tick_ms: u64,
    /// Verified tokens (bounded).
    cache: TokenCache,
    /// The latest time the host told (the clock never goes back for this worker).
    last_now: Option<u64>,
    /// This worker's lease-holder id (unique across the workers that share data).
    id: u64,
    /// The per-policy and per-provider counters of this configuration.
    layout: Layout,
    /// Requests whose headers the filter changed, and the policy that governed them then: Envoy
    /// picks the route again after such a change, out of the filter's sight ([`Worker::on_response`]).
    /// Only with more than one policy (with one, no other policy can govern the new route).
    moved: HashMap<u32, select::Selection>,
}

/// A fetch of source `si` ended: the total counter and every provider's that uses the source.
fn count_fetch(host: &mut impl Host, si: usize, ok: bool) {
    let total = if ok {
        Counter::JwksFetchSuccess
    } else {
        Counter::JwksFetchFailure
    };
    host.count(total, 1);
    host.count(Counter::SourceFetch { source: si, ok }, 1);
}

impl Worker {
    pub fn new(config: Config) -> Worker {
        let mut sources: Vec<Source> = Vec::new();
        let settings = &config.settings;
        let source_of: Vec<Vec<Option<usize>>> = config
            .policies
            .iter()
            .map(|p| {
                p.providers
                    .iter()
                    .map(|pr| match &pr.keys {
                        KeySource::Local(_) => None,
                        KeySource::Remote(r) => {
                            Some(sources.iter().position(|s| s.serves(r)).unwrap_or_else(|| {
                                sources.push(Source::new(
                                    r.clone(),
                                    settings.limits.max_jwks_bytes,
                                    settings.max_stale_ms,
                                ));
                                sources.len() - 1
                            }))
                        }
                    })
                    .collect()
            })
            .collect();
        let cache = TokenCache::new(
            settings.limits.max_cached_tokens,
            settings.limits.max_cache_bytes,
        );
        let layout = Layout::new(&config, &source_of);
        Worker {
            config: Rc::new(config),
            sources,
            source_of,
            waiters: BTreeMap::new(),
            callouts: Vec::new(),
            tick_ms: 0,
            cache,
            last_now: None,
            id: 0,
            layout,
            moved: HashMap::new(),
        }
    }

    /// The counters the host defines for this configuration.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// After configuration: takes a worker id, creates the lease entries, starts the tick.
    pub fn start(&mut self, host: &mut impl Host) {
        self.id = take_worker_id(host).unwrap_or_else(|| host.now_ms().unwrap_or(1));
        for s in &self.sources {
            let key = &s.lease_key;
            if let Ok((None, _)) = host.get_shared(key) {
                let _ = host.set_shared(key, &shared::encode_lease(0, 0), None);
            }
        }
        let eager = self.sources.iter().any(|s| s.remote.async_fetch);
        self.set_tick(
            host,
            if eager {
                1
            } else if self.sources.is_empty() {
                0
            } else {
                IDLE_TICK_MS
            },
        );
    }

    pub fn policies(&self) -> usize {
        self.config.policies.len()
    }

    /// The host's time, never earlier than a time it told before; `None` when it cannot tell.
    fn now(&mut self, host: &mut impl Host) -> Option<u64> {
        let now = host.now_ms()?.max(self.last_now.unwrap_or(0));
        self.last_now = Some(now);
        Some(now)
    }

    fn set_tick(&mut self, host: &mut impl Host, ms: u64) {
        if self.tick_ms != ms && host.set_tick(ms) {
            self.tick_ms = ms;
        }
    }

    /// Adopts what another worker published for this source, if newer (see `shared.rs`).
    fn sync(&mut self, host: &mut impl Host, si: usize) -> bool {
        self.sources
            .get_mut(si)
            .is_some_and(|source| shared::sync(host, source))
    }

    /// A new request (its headers arrived).
    pub fn on_request(&mut self, host: &mut impl Host, context_id: u32) -> Flow {
        self.process(host, context_id, false, None)
    }

    /// Decides the current request; `Continue` lets it go on. `give_up`: keys still pending
    /// count as a failed fetch (a waiter past its deadline). `deadline`: the request already
    /// waited with this deadline (waiting again never moves it later).
    fn process(
        &mut self,
        host: &mut impl Host,
        context_id: u32,
        give_up: bool,
        deadline: Option<u64>,
    ) -> Flow {
        let config = Rc::clone(&self.config);
        let selection = match selection(&config, host) {
            Ok(s) => s,
            Err(u) => return unevaluable(host, &config, &u),
        };
        let who = select::for_phase(&config, selection.who);
        // The dry runs whose claim headers this instance removes before the deciding policy's
        // (a later one's) runs: those of an earlier phase (none without dry runs).
        let early: Vec<usize> = (selection.stripped.iter().copied())
            .filter(|d| select::strips_here(&config, selection.who, *d))
            .collect();
        // The enforcing policy decides; with none, the dry-run one (it never denies). A dry-run
        // policy beside an enforcing one is decided as well, only to be counted and logged.
        let (primary, shadow) = match (who.enforce, who.shadow) {
            (Some(e), s) => (e, s),
            (None, Some(s)) => (s, None),
            // Another instance's policy decides (later: this one removes first), or none does.
            (None, None) if early.is_empty() => return Flow::Continue,
            (None, None) => {
                let Some(headers) = host.request_headers() else {
                    error!("cannot read the request headers");
                    return reply(host, 500, None, "jwt policy filter cannot read the request");
                };
                let view = RequestView { headers: &headers };
                // The deciding policy (a later instance's) has not read its tokens yet: a header
                // it reads them from is left for that instance, which removes it after deciding.
                let deciding = selection.who.enforce.or(selection.who.shadow);
                let keep = (deciding.and_then(|i| config.policies.get(i)))
                    .map(Policy::token_headers)
                    .unwrap_or_default();
                if strip(host, &config, &early, &view, &keep) {
                    self.headers_changed(context_id, &selection);
                }
                return Flow::Continue;
            }
        };
        let Some((pi, policy)) = config.policies.get(primary).map(|p| (primary, p)) else {
            return Flow::Continue;
        };
        let Some(headers) = host.request_headers() else {
            error!("cannot read the request headers");
            return reply(host, 500, None, "jwt policy filter cannot read the request");
        };
        let Some(now) = self.now(host) else {
            // Fail closed: without the time neither `exp`/`nbf` nor the keys' freshness can be
            // checked. A host fault, not the client's: 500, not a 401 that blames the token.
            error!("cannot read the clock: request refused");
            return reply(host, 500, None, "jwt policy filter cannot read the clock");
        };
        let routes = self.source_of.get(pi).cloned().unwrap_or_default();
        let view = RequestView { headers: &headers };
        let mut decision = self.decide(policy, &routes, &view, now, give_up);
        // Refused or waiting for keys: another worker may hold newer ones (a rotated kid, keys
        // after an outage) that this one adopts only at its next tick. One 8-byte read per
        // remote source tells; decide again if so. (Other denials, a bad signature or an expired
        // token, do not depend on which keys are newest: they cost no shared read.)
        let keys_matter = match &decision {
            Decision::WaitForKeys(_) => true,
            Decision::Deny { status, .. } => status.family() == Family::Jwks,
            Decision::Allow { .. } | Decision::WouldDeny { .. } => false,
        };
        if keys_matter {
            let mut adopted = false;
            for si in routes.iter().flatten() {
                adopted |= self.sync(host, *si);
            }
            if adopted {
                decision = self.decide(policy, &routes, &view, now, give_up);
            }
        }
        // Beside a request the enforcing policy lets through (a denied or waiting one costs no
        // second decision: one failed verification per request, as before).
        let passes = matches!(
            decision,
            Decision::Allow { .. } | Decision::WouldDeny { .. }
        );
        if let (Some(si), true) = (shadow, passes) {
            self.shadow(host, &config, si, &view, now);
        }
        // Nothing from the client is trusted that the dry runs would write either (the shadow's
        // headers among them), removed before the deciding policy writes its own: all of them
        // here, whatever an earlier instance removed (it kept this policy's token headers).
        if passes && strip(host, &config, &selection.stripped, &view, &[]) {
            self.headers_changed(context_id, &selection);
        }
        let (hits, misses) = self.cache.take_counts();
        host.count(Counter::CacheHit, hits);
        host.count(Counter::CacheMiss, misses);
        match decision {
            Decision::Allow {
                ops,
                clear_route_cache,
            } => {
                for op in &ops {
                    if !host.apply(op) {
                        warn!("cannot change the request headers");
                    }
                }
                // Envoy's wasm host clears the route cache itself whenever a filter changes the
                // request headers (every op here does): the filter's own call (a foreign
                // function, 0.9 µs, `make vm-bench` with `--hostcalls`) is needed only when it
                // changed none, as when `clearRouteCache: TRUE` accepts a token it strips nothing of.
                if clear_route_cache && ops.is_empty() {
                    host.clear_route_cache();
                }
                if !ops.is_empty() || clear_route_cache {
                    self.headers_changed(context_id, &selection);
                }
                host.count(Counter::Allowed, 1);
                host.count(Counter::PolicyAllowed(pi), 1);
                Flow::Continue
            }
            Decision::WouldDeny { status, ops } => {
                // Dry run: the request goes on with only the claim headers' sanitizing.
                for op in &ops {
                    if !host.apply(op) {
                        warn!("cannot change the request headers");
                    }
                }
                if !ops.is_empty() {
                    self.headers_changed(context_id, &selection);
                }
                info!(
                    "{} (dry run) would have denied a request: {status}",
                    policy.name
                );
                host.count(Counter::DryRunDenied(status.family()), 1);
                host.count(Counter::PolicyDryRunDenied(pi), 1);
                Flow::Continue
            }
            Decision::Deny {
                status,
                www_authenticate,
                provider,
            } => {
                debug!("{} denied a request: {status}", policy.name);
                host.count(Counter::Denied(status.family()), 1);
                host.count(Counter::PolicyDenied(pi), 1);
                if let Some(provider) = provider {
                    host.count(
                        Counter::ProviderDenied {
                            policy: pi,
                            provider,
                            family: status.family(),
                        },
                        1,
                    );
                }
                reply(
                    host,
                    status.http_code(),
                    Some(&www_authenticate),
                    status.as_str(),
                )
            }
            Decision::WaitForKeys(providers) => {
                let waiting: Vec<usize> = providers
                    .iter()
                    .filter_map(|i| routes.get(*i).copied().flatten())
                    .collect();
                let mut timeout = 0;
                for si in &waiting {
                    if let Some(s) = self.sources.get_mut(*si) {
                        s.wanted = true;
                        timeout = timeout.max(s.remote.timeout_ms);
                    }
                }
                let deadline_ms = now
                    .saturating_add(timeout)
                    .saturating_add(jwks_cache::DEADLINE_MARGIN_MS)
                    .min(deadline.unwrap_or(u64::MAX));
                self.waiters.insert(
                    context_id,
                    Waiter {
                        context_id,
                        sources: waiting,
                        deadline_ms,
                    },
                );
                host.count(Counter::RequestsPaused, 1);
                self.set_tick(host, 1);
                Flow::Pause
            }
        }
    }

    /// A dry-run policy older than the enforcing one that governs the request: decided too,
    /// without waiting for keys (a source it lacks is fetched for later requests), its would-be
    /// denial counted and logged; of it only the removal of its claim headers reaches the
    /// request (the caller's part).
    fn shadow(
        &mut self,
        host: &mut impl Host,
        config: &Config,
        si: usize,
        view: &RequestView<'_>,
        now: u64,
    ) {
        let Some(policy) = config.policies.get(si) else {
            return;
        };
        let routes = self.source_of.get(si).cloned().unwrap_or_default();
        let mut fetch = false;
        for source in routes.iter().flatten() {
            if let Some(s) = self.sources.get_mut(*source)
                && matches!(s.state(now), Keys::Pending)
            {
                s.wanted = true;
                fetch = true;
            }
        }
        if fetch {
            self.set_tick(host, 1);
        }
        match self.decide(policy, &routes, view, now, true) {
            Decision::WouldDeny { status, .. } => {
                info!(
                    "{} (dry run) would have denied a request: {status}",
                    policy.name
                );
                host.count(Counter::DryRunDenied(status.family()), 1);
                host.count(Counter::PolicyDryRunDenied(si), 1);
            }
            Decision::Allow { .. } => host.count(Counter::PolicyAllowed(si), 1),
            Decision::Deny { .. } | Decision::WaitForKeys(_) => {}
        }
    }

    fn decide(
        &mut self,
        policy: &crate::policy::Policy,
        routes: &[Option<usize>],
        view: &RequestView<'_>,
        now: u64,
        give_up: bool,
    ) -> Decision {
        let sources = &self.sources;
        let keys =
            |i: usize| match (
                policy.providers.get(i).map(|p| &p.keys),
                routes.get(i).copied().flatten(),
            ) {
                (Some(KeySource::Local(jwks)), _) => Keys::local(jwks),
                (_, Some(si)) => sources
                    .get(si)
                    .map_or(Keys::Failed(Status::JwksFetchFail), |s| {
                        match s.state(now) {
                            Keys::Pending if give_up => Keys::Failed(Status::JwksFetchFail),
                            Keys::Ready { jwks, version, .. } if give_up => Keys::Ready {
                                jwks,
                                version,
                                may_refetch: false,
                            },
                            keys => keys,
                        }
                    }),
                _ => Keys::Failed(Status::JwksFetchFail),
            };
        authn::decide(policy, view, now / 1000, &keys, &mut self.cache)
    }

    /// The tick: adopt other workers' records, give up overdue fetches, start due ones, answer
    /// the paused requests that can be answered.
    pub fn on_tick(&mut self, host: &mut impl Host) {
        for si in 0..self.sources.len() {
            self.sync(host, si);
        }
        let Some(now) = self.now(host) else {
            // No time: nothing can be dated; every paused request is answered (500) now
            // rather than kept past a deadline nobody can check.
            self.resume_waiters(host, None);
            return;
        };
        for si in 0..self.sources.len() {
            self.tick_source(host, si, now);
        }
        self.resume_waiters(host, Some(now));
    }

    fn tick_source(&mut self, host: &mut impl Host, si: usize, now: u64) {
        let Some(source) = self.sources.get_mut(si) else {
            return;
        };
        if source.expire_in_flight(now) {
            warn!("JWKS fetch from {} timed out", source.remote.url);
            // A late answer, if the host ever sends one, is ignored.
            self.callouts.retain(|(_, s)| *s != si);
            count_fetch(host, si, false);
            self.publish(host, si);
        }
        let Some(source) = self.sources.get(si) else {
            return;
        };
        if !source.should_fetch(now) || !take_lease(host, source, self.id, now) {
            return;
        }
        // Another worker may have published between our look and the lease: look again.
        if self.sync(host, si) && self.sources.get(si).is_some_and(|s| !s.should_fetch(now)) {
            if let Some(source) = self.sources.get(si) {
                release_lease(host, source, self.id);
            }
            return;
        }
        let Some(source) = self.sources.get_mut(si) else {
            return;
        };
        let r = &source.remote;
        let headers = [
            (":method", "GET"),
            (":path", r.path.as_str()),
            (":authority", r.authority.as_str()),
            ("accept", "application/json"),
        ];
        match host.dispatch(&r.cluster, &headers, r.timeout_ms.max(1)) {
            Ok(token) => {
                debug!("fetching JWKS {} from cluster {}", r.url, r.cluster);
                source.fetch_started(now);
                self.callouts.push((token, si));
            }
            Err(e) => {
                warn!(
                    "cannot fetch JWKS {} from cluster {} ({e}): is the cluster defined?",
                    r.url, r.cluster
                );
                let failed = source.fetch_done(now, Err(FetchError::NoResponse)).is_err();
                if failed {
                    count_fetch(host, si, false);
                }
                self.publish(host, si);
            }
        }
    }

    /// Shares this worker's record of a source (after a fetch ended) and releases the lease.
    pub(crate) fn publish(&mut self, host: &mut impl Host, si: usize) {
        if let Some(source) = self.sources.get_mut(si) {
            shared::publish(host, source, self.id);
        }
    }

    /// A callout ended (`num_headers == 0`: no response: timeout, reset, no such cluster).
    pub fn on_fetch_response(
        &mut self,
        host: &mut impl Host,
        token: u32,
        num_headers: usize,
        body_size: usize,
    ) {
        let Some(pos) = self.callouts.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let (_, si) = self.callouts.swap_remove(pos);
        // Without the clock, the result is dated by the latest time known (never 0: a fetch
        // was only started with a time); keys look older than they are, never younger.
        let now = self.now(host).or(self.last_now);
        let Some((source, now)) = self.sources.get_mut(si).zip(now) else {
            return;
        };
        let result = read_jwks_response(host, num_headers, body_size, source.max_body);
        match source.fetch_done(now, result) {
            Ok(_) => {
                info!("fetched JWKS {}", source.remote.url);
                count_fetch(host, si, true);
            }
            Err(e) => {
                warn!("JWKS fetch from {} failed: {e}", source.remote.url);
                count_fetch(host, si, false);
            }
        }
        self.publish(host, si);
        let now = self.now(host);
        self.resume_waiters(host, now);
    }

    /// Whether a waiter's keys are settled: none pending, none wanted with a fetch to come.
    fn settled(&self, w: &Waiter, now: u64) -> bool {
        w.sources.iter().all(|si| {
            self.sources.get(*si).is_some_and(|s| {
                !matches!(s.state(now), Keys::Pending)
                    && (!s.wanted || s.in_flight_until.is_none() && !s.should_fetch(now))
            })
        })
    }

    /// Answers every waiting request whose keys are settled, or whose deadline passed (every
    /// one when the time is unknown).
    fn resume_waiters(&mut self, host: &mut impl Host, now: Option<u64>) {
        let waiters = std::mem::take(&mut self.waiters);
        for (id, w) in waiters {
            let (settled, due) = match now {
                Some(now) => (self.settled(&w, now), now >= w.deadline_ms),
                None => (false, true),
            };
            if !settled && !due {
                self.waiters.insert(id, w);
                continue;
            }
            if !host.enter(w.context_id) {
                continue; // the request is gone
            }
            let flow = self.process(host, w.context_id, !settled, Some(w.deadline_ms));
            if flow == Flow::Continue && !host.resume() {
                warn!("cannot resume a request");
            }
        }
        let busy = !self.waiters.is_empty() || !self.callouts.is_empty();
        let tick = if busy {
            BUSY_TICK_MS
        } else if self.sources.is_empty() {
            0
        } else {
            IDLE_TICK_MS
        };
        self.set_tick(host, tick);
    }

    /// The policies `who` selected let the request on with changed headers: remembered for
    /// [`Worker::on_response`] when other policies could select the route Envoy picks next.
    fn headers_changed(&mut self, context_id: u32, selection: &select::Selection) {
        if self.config.policies.len() > 1 {
            self.moved.insert(context_id, selection.clone());
        }
    }

    /// The request ended (answered, or the client went away).
    pub fn forget(&mut self, context_id: u32) {
        self.waiters.remove(&context_id);
        self.moved.remove(&context_id);
    }

    /// The response's headers arrived. If the filter changed the request's headers, Envoy picked
    /// its route again when the router ran, where the filter could not see it (the route it
    /// reports during the request callback is the old one until then). Now it can: a request
    /// that went to a route another policy governs never had that policy run, and its response
    /// is replaced by a 500 (fail closed for what the client sees; the upstream did get the
    /// request: SECURITY.md says which route tables avoid this).
    pub fn on_response(&mut self, host: &mut impl Host, context_id: u32) -> Flow {
        let Some(before) = self.moved.remove(&context_id) else {
            return Flow::Continue;
        };
        let config = Rc::clone(&self.config);
        // Whatever its phase: with per-phase instances (as `render --istio` deploys them) the
        // final route's policy may be another instance's, which saw only the old route. A
        // dry-run policy there that did not run on the request counts too: the client's copies
        // of the headers it writes were never removed.
        let mut route = HostRoute::new(host, &config.settings.route_labels_namespace);
        let name = |i: Option<usize>| {
            i.and_then(|i| config.policies.get(i))
                .map_or("none", |p| p.name.as_str())
        };
        match select::selection(&config, &mut route) {
            Err(u) => unevaluable(host, &config, &u),
            Ok(now)
                if now
                    .who
                    .enforce
                    .is_some_and(|e| before.who.enforce != Some(e))
                    || now.who.shadow.is_some_and(|s| before.who.shadow != Some(s))
                    || now.stripped.iter().any(|d| !before.stripped.contains(d)) =>
            {
                let (before, now) = (&before.who, &now.who);
                error!(
                    "a request authenticated under {} (dry run {}) went to a route that {} (dry \
                     run {}) governs, or where another dry run's claim headers are never taken \
                     from the client (the route changed with the filter's header changes): its \
                     response is refused",
                    name(before.enforce.or(before.shadow)),
                    name(before.shadow),
                    name(now.enforce),
                    name(now.shadow)
                );
                reply(
                    host,
                    500,
                    None,
                    "jwt policy filter: the request changed route after authentication",
                )
            }
            _ => Flow::Continue,
        }
    }
}

/// What the policies do with the request on the route the host reports now, whatever the
/// phases ([`select::selection`]).
fn selection(
    config: &Config,
    host: &mut impl Host,
) -> Result<select::Selection, select::Unevaluable> {
    let mut route = HostRoute::new(host, &config.settings.route_labels_namespace);
    select::selection(config, &mut route)
}

/// Removes the client's copies of the claim headers `dry_runs` would write
/// ([`select::stripped`]), before the deciding policy's own header changes; but not those named
/// in `keep` (a later instance's deciding policy reads its tokens from them). Whether it
/// changed the request.
fn strip(
    host: &mut impl Host,
    config: &Config,
    dry_runs: &[usize],
    view: &RequestView<'_>,
    keep: &[&str],
) -> bool {
    let mut changed = false;
    for p in dry_runs.iter().filter_map(|i| config.policies.get(*i)) {
        for op in authn::sanitize(p, view) {
            if matches!(&op, authn::HeaderOp::Remove(h) if keep.contains(&h.as_str())) {
                continue;
            }
            if !host.apply(&op) {
                warn!("cannot change the request headers");
            }
            changed = true;
        }
    }
    changed
}

/// A policy older than the one that would govern cannot be evaluated here (a configuration
/// that does not fit this proxy): 500, never the request untouched.
fn unevaluable(host: &mut impl Host, config: &Config, u: &select::Unevaluable) -> Flow {
    let name = config
        .policies
        .get(u.policy)
        .map_or("?", |p| p.name.as_str());
    error!(
        "policy {name} cannot be evaluated for this request ({}): request refused",
        u.why
    );
    reply(
        host,
        500,
        None,
        "jwt policy filter: a policy's selector cannot be evaluated on this proxy",
    )
}

/// The body of a JWKS callout response, or why there is none.
fn read_jwks_response(
    host: &mut impl Host,
    num_headers: usize,
    body_size: usize,
    max_body: usize,
) -> Result<Vec<u8>, FetchError> {
    if num_headers == 0 {
        return Err(FetchError::NoResponse);
    }
    let status = host.callout_status().unwrap_or_default();
    if status != b"200" {
        return Err(FetchError::Status(
            String::from_utf8_lossy(&status).into_owned(),
        ));
    }
    if body_size > max_body {
        return Err(FetchError::TooLarge(body_size));
    }
    host.callout_body(body_size).ok_or(FetchError::NoResponse)
}

fn reply(host: &mut impl Host, status: u32, www_authenticate: Option<&str>, body: &str) -> Flow {
    let mut headers = vec![("content-type", "text/plain")];
    if let Some(value) = www_authenticate {
        headers.push(("www-authenticate", value));
    }
    if !host.reply(status, &headers, body) {
        warn!("cannot send the local reply");
    }
    Flow::Pause
}

#[cfg(test)]
mod route_change_tests {
    //! The response-time look at a route Envoy picked again after the filter's header changes.
    use super::*;
    use crate::authn::HeaderOp;
    use crate::host::{SetError, Shared, Unreadable};
    use crate::testkit::{pem, token};
    use serde_json::json;

    /// A host with one request whose route name the test sets; header changes, replies and
    /// counters recorded.
    #[derive(Default)]
    pub(super) struct OneRequest {
        pub(super) route: String,
        /// `xds.cluster_name`, when the test sets one.
        pub(super) cluster: Option<String>,
        pub(super) headers: Vec<crate::extract::Header>,
        pub(super) ops: Vec<HeaderOp>,
        pub(super) replies: Vec<(u32, String)>,
        pub(super) counts: Vec<(Counter, u64)>,
    }

    impl OneRequest {
        pub(super) fn count_of(&self, c: Counter) -> u64 {
            self.counts
                .iter()
                .filter(|(k, _)| *k == c)
                .map(|(_, n)| n)
                .sum()
        }
    }

    impl Host for OneRequest {
        fn now_ms(&mut self) -> Option<u64> {
            Some(crate::testkit::NOW * 1000)
        }
        fn get_shared(&mut self, _key: &str) -> Result<Shared, Unreadable> {
            Ok((None, None))
        }
        fn set_shared(&mut self, _k: &str, _v: &[u8], _c: Option<u32>) -> Result<(), SetError> {
            Ok(())
        }
        fn dispatch(&mut self, _: &str, _: &[(&str, &str)], _: u64) -> Result<u32, String> {
            Err("no callouts here".into())
        }
        fn callout_status(&mut self) -> Option<Vec<u8>> {
            None
        }
        fn callout_body(&mut self, _size: usize) -> Option<Vec<u8>> {
            None
        }
        fn set_tick(&mut self, _ms: u64) -> bool {
            true
        }
        fn enter(&mut self, _context_id: u32) -> bool {
            true
        }
        fn resume(&mut self) -> bool {
            true
        }
        fn request_headers(&mut self) -> Option<Vec<crate::extract::Header>> {
            Some(self.headers.clone())
        }
        fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
            match path {
                ["xds", "route_name"] => Some(self.route.clone().into_bytes()),
                ["xds", "cluster_name"] => self.cluster.clone().map(String::into_bytes),
                _ => None,
            }
        }
        fn apply(&mut self, op: &HeaderOp) -> bool {
            self.ops.push(op.clone());
            true
        }
        fn clear_route_cache(&mut self) {}
        fn reply(&mut self, status: u32, _headers: &[(&str, &str)], body: &str) -> bool {
            self.replies.push((status, body.to_string()));
            true
        }
        fn count(&mut self, counter: Counter, n: u64) {
            self.counts.push((counter, n));
        }
    }

    fn worker(route_names: &[&str]) -> Worker {
        phased_worker(route_names, &[], None)
    }

    /// Policy `i` on route `route_names[i]`, of phase `phases[i]` (preAuthz when absent), in an
    /// instance serving `instance_phase` (every phase when `None`).
    fn phased_worker(
        route_names: &[&str],
        phases: &[&str],
        instance_phase: Option<&str>,
    ) -> Worker {
        let policies: Vec<_> = route_names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let phase = phases.get(i).copied().unwrap_or("preAuthz");
                json!({"metadata": {"name": format!("p{i}"), "creationTimestamp": format!("2024-01-0{}T00:00:00Z", i + 1)},
                    "spec": {"applyToRoutes": [{"route": {"name": name}}], "config": {
                    "phase": {phase: {}},
                    "providers": {"p": {
                    "local": {"inline": pem("rsa")},
                    "claimsToHeaders": [{"claim": "sub", "header": "x-sub"}]}}}}})
            })
            .collect();
        let mut plugin = json!({"policies": policies});
        if let Some(phase) = instance_phase {
            plugin["settings"] = json!({"phase": phase});
        }
        let config = crate::config::parse(plugin.to_string().as_bytes());
        Worker::new(config.unwrap())
    }

    #[test]
    fn a_request_moved_to_a_route_another_phases_instance_governs_gets_a_500_too() {
        // Per-phase instances, as `render --istio` deploys them: each carries both policies.
        // The preAuthz one changed the headers under p0; the router then picked route b, whose
        // postAuthz policy p1 the postAuthz instance never ran (it saw route a).
        let mut pre = phased_worker(&["a", "b"], &["preAuthz", "postAuthz"], Some("preAuthz"));
        let mut host = request("a");
        assert_eq!(pre.on_request(&mut host, 7), Flow::Continue);
        host.route = "b".into();
        assert_eq!(pre.on_response(&mut host, 7), Flow::Pause);
        assert_eq!(host.replies.first().map(|r| r.0), Some(500));
        // And the other way: the postAuthz instance's changes moved a request onto a preAuthz
        // policy's route.
        let mut post = phased_worker(&["a", "b"], &["preAuthz", "postAuthz"], Some("postAuthz"));
        let mut host = request("b");
        assert_eq!(post.on_request(&mut host, 8), Flow::Continue);
        host.route = "a".into();
        assert_eq!(post.on_response(&mut host, 8), Flow::Pause);
        assert_eq!(host.replies.first().map(|r| r.0), Some(500));
        // The instance of the other phase changed nothing, remembered nothing: no answer replaced.
        let mut host = request("a");
        assert_eq!(post.on_request(&mut host, 9), Flow::Continue);
        host.route = "b".into();
        assert_eq!(post.on_response(&mut host, 9), Flow::Continue);
    }

    fn request(route: &str) -> OneRequest {
        OneRequest {
            route: route.into(),
            headers: vec![
                (":path".into(), b"/".to_vec()),
                (
                    "authorization".into(),
                    format!("Bearer {}", token("RS256")).into_bytes(),
                ),
            ],
            ..OneRequest::default()
        }
    }

    #[test]
    fn a_request_moved_to_another_policys_route_gets_a_500_with_the_response() {
        let mut w = worker(&["a", "b"]);
        let mut host = request("a");
        assert_eq!(w.on_request(&mut host, 7), Flow::Continue);
        host.route = "b".into(); // the router picked again after x-sub was written
        assert_eq!(w.on_response(&mut host, 7), Flow::Pause);
        assert_eq!(host.replies.first().map(|r| r.0), Some(500));
        // Looked at once: the entry is gone.
        assert_eq!(w.on_response(&mut host, 7), Flow::Continue);
    }

    #[test]
    fn a_request_that_stays_or_goes_ungoverned_keeps_its_answer() {
        for end in ["a", "elsewhere"] {
            let mut w = worker(&["a", "b"]);
            let mut host = request("a");
            assert_eq!(w.on_request(&mut host, 7), Flow::Continue);
            host.route = end.into();
            assert_eq!(w.on_response(&mut host, 7), Flow::Continue, "{end}");
            assert!(host.replies.is_empty());
        }
        // With one policy nothing is remembered (no other policy can govern the new route).
        let mut w = worker(&["a"]);
        let mut host = request("a");
        assert_eq!(w.on_request(&mut host, 7), Flow::Continue);
        assert!(w.moved.is_empty());
        // A stream that ends early leaves nothing behind.
        let mut w = worker(&["a", "b"]);
        let mut host = request("a");
        assert_eq!(w.on_request(&mut host, 9), Flow::Continue);
        w.forget(9);
        assert!(w.moved.is_empty());
    }
}

#[cfg(test)]
mod review7_tests {
    //! Review 7: the dry-run "shadow" beside an enforcing policy.
    use super::route_change_tests::OneRequest as Rec;
    use super::*;
    use crate::authn::HeaderOp;
    use crate::testkit::{pem, token};
    use serde_json::{Value, json};

    /// A policy `name` created on day `day`, over `routes` (route names), of `phase`; its one
    /// provider takes the token from `from` with key `key`, writing claim `claim` to `header`.
    #[allow(clippy::too_many_arguments)]
    fn policy(
        name: &str,
        day: u32,
        dry: bool,
        routes: &[&str],
        phase: &str,
        key: &str,
        from: &str,
        claim: &str,
        header: &str,
    ) -> Value {
        let routes: Vec<Value> = routes
            .iter()
            .map(|r| json!({"route": {"name": r}}))
            .collect();
        let mut r = json!({"metadata": {"name": name, "creationTimestamp": format!("2024-01-{day:02}T00:00:00Z")},
            "spec": {"applyToRoutes": routes, "config": {
                "phase": {phase: {}},
                "providers": {"p": {
                    "local": {"inline": pem(key)},
                    "tokenSource": {"headers": [{"name": from, "prefix": "Bearer "}]},
                    "claimsToHeaders": [{"claim": claim, "header": header}]}}}}});
        if dry {
            r["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
        }
        r
    }

    /// The younger enforcing policy of these tests (preAuthz): token from `authorization`
    /// (rsa), `sub` → `x-user`.
    fn enforced(routes: &[&str]) -> Value {
        policy(
            "enforced",
            2,
            false,
            routes,
            "preAuthz",
            "rsa",
            "authorization",
            "sub",
            "x-user",
        )
    }

    fn worker(policies: Vec<Value>, phase: Option<&str>) -> Worker {
        let mut plugin = json!({"policies": policies});
        if let Some(phase) = phase {
            plugin["settings"] = json!({"phase": phase});
        }
        Worker::new(crate::config::parse(plugin.to_string().as_bytes()).unwrap())
    }

    fn req(route: &str, headers: &[(&str, String)]) -> Rec {
        let mut h: Vec<crate::extract::Header> = vec![(":path".into(), b"/".to_vec())];
        h.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone().into_bytes())),
        );
        Rec {
            route: route.into(),
            headers: h,
            ..Rec::default()
        }
    }

    pub(super) fn sets(ops: &[HeaderOp], header: &str) -> Vec<String> {
        ops.iter()
            .filter_map(|op| match op {
                HeaderOp::Set(h, v) | HeaderOp::Add(h, v) if h == header => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    /// Review 7, finding 1. Per-phase instances (`render --istio`): an older dry run of
    /// postAuthz beside a younger enforcing policy of preAuthz. In the preAuthz instance the
    /// enforcing policy decides (and writes `x-user` = sub); in the postAuthz instance no
    /// enforcing policy is "of this phase", so the dry run is taken as deciding alone: it writes
    /// ITS claim headers (here over the enforcing policy's `x-user`, from a token only the dry
    /// run's provider verified), where a single instance removes them. And since it changed the
    /// headers, `on_response` then sees the enforcing policy govern and answers 500: every
    /// request with a token the dry run accepts.
    #[test]
    fn review7_per_phase_dry_run_beside_an_enforcing_policy_of_another_phase_writes_claims() {
        let policies = vec![
            // Older, dry run, postAuthz: token from x-dev-token (ec256), email → x-user.
            policy(
                "rollout",
                1,
                true,
                &["a"],
                "postAuthz",
                "ec256",
                "x-dev-token",
                "email",
                "x-user",
            ),
            // Younger, enforcing, preAuthz: token from authorization (rsa), sub → x-user.
            enforced(&["a"]),
        ];
        let headers = [
            ("authorization", format!("Bearer {}", token("RS256"))),
            ("x-dev-token", format!("Bearer {}", token("ES256"))),
        ];
        // One instance for every phase: the dry run's x-user is only removed; enforced's wins.
        let mut all = worker(policies.clone(), None);
        let mut host = req("a", &headers);
        assert_eq!(all.on_request(&mut host, 1), Flow::Continue);
        assert_eq!(sets(&host.ops, "x-user"), vec!["dev1".to_string()]);
        assert_eq!(all.on_response(&mut host, 1), Flow::Continue);

        // Per phase: the preAuthz instance ran `enforced` (x-user: dev1); the postAuthz one
        // sees that header on the request.
        let mut post = worker(policies, Some("postAuthz"));
        let mut seen = headers.to_vec();
        seen.push(("x-user", "dev1".into()));
        let mut host = req("a", &seen);
        assert_eq!(post.on_request(&mut host, 2), Flow::Continue);
        assert!(
            sets(&host.ops, "x-user").is_empty(),
            "a dry run beside an enforcing policy wrote its claim header: {:?}",
            host.ops
        );
        assert_eq!(
            post.on_response(&mut host, 2),
            Flow::Continue,
            "every accepted request's response replaced by a 500"
        );
    }

    /// Review 7, finding 2. The response-time route-change check compares only the oldest
    /// ENFORCING policy. A request on route `a` (only `enforced`) whose header changes move it
    /// to route `b`, where an older dry run `rollout` also selects: `rollout` never ran on it,
    /// so the client-sent `x-dev-sub` it writes (on `b` removed as a shadow, or written when
    /// alone) reaches `b`'s upstream, and the answer is kept. Before the shadow change the
    /// dry run counted for the check (500).
    #[test]
    fn review7_a_request_moved_onto_a_dry_runs_route_keeps_client_claim_headers() {
        let mut kept = Vec::new();
        for enforced_routes in [&["a", "b"][..], &["a"][..]] {
            let policies = vec![
                policy(
                    "rollout",
                    1,
                    true,
                    &["b"],
                    "preAuthz",
                    "ec256",
                    "x-dev-token",
                    "sub",
                    "x-dev-sub",
                ),
                enforced(enforced_routes),
            ];
            let mut w = worker(policies, None);
            let mut host = req(
                "a",
                &[
                    ("authorization", format!("Bearer {}", token("RS256"))),
                    ("x-dev-sub", "admin".into()),
                ],
            );
            assert_eq!(w.on_request(&mut host, 1), Flow::Continue);
            assert!(
                !host
                    .ops
                    .iter()
                    .any(|op| matches!(op, HeaderOp::Remove(h) if h == "x-dev-sub")),
                "route a: nothing there writes x-dev-sub"
            );
            host.route = "b".into(); // the router picked again after x-user was written
            if w.on_response(&mut host, 1) != Flow::Pause {
                kept.push(format!("{enforced_routes:?}"));
            }
        }
        assert!(
            kept.is_empty(),
            "enforced on {kept:?}: the forged x-dev-sub went to route b unremoved and the answer was kept"
        );
    }

    /// Review 7, finding 3 (cost). A forged token (bad signature) on a request an enforcing
    /// policy denies is verified again by the older dry run beside it, although the request is
    /// denied anyway: two failed signature checks where one was paid before (and one per
    /// policy of the chain the brief bounds at "one failed verification").
    #[test]
    fn review7_a_denied_forged_token_costs_one_signature_check() {
        let policies = vec![
            policy(
                "rollout",
                1,
                true,
                &["a"],
                "preAuthz",
                "rsa",
                "authorization",
                "sub",
                "x-dev-sub",
            ),
            enforced(&["a"]),
        ];
        let mut w = worker(policies, None);
        let mut host = req(
            "a",
            &[(
                "authorization",
                format!("Bearer {}", token("RS256_tampered")),
            )],
        );
        assert_eq!(w.on_request(&mut host, 1), Flow::Pause);
        assert_eq!(
            host.replies.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![401]
        );
        assert_eq!(
            host.count_of(Counter::CacheMiss),
            1,
            "signature checks for one denied forged token"
        );
    }
    /// A dry run this proxy cannot evaluate for the request (a route-name selector on an Istio
    /// sidecar's inbound side, where the routes are Istio's `default`): whether it was meant
    /// for the request is unknown, so the client's copies of its claim headers are removed, by
    /// the enforcing policy's instance, before its sets; and with no enforcing policy as well.
    /// Nothing is refused (a dry run never denies).
    #[test]
    fn a_dry_run_in_doubt_has_the_clients_copies_of_its_claim_headers_removed() {
        let rollout = |phase: &str| {
            policy(
                "rollout",
                1,
                true,
                &["checkout"],
                phase,
                "ec256",
                "x-dev-token",
                "sub",
                "x-dev-sub",
            )
        };
        let istio = |policies: Vec<Value>, phase: Option<&str>| {
            let mut plugin = json!({"policies": policies});
            if let Some(phase) = phase {
                plugin["settings"] = json!({"phase": phase});
            }
            let c =
                crate::config::parse_on(plugin.to_string().as_bytes(), crate::config::Proxy::Istio);
            Worker::new(c.unwrap())
        };
        let inbound = |headers: &[(&str, String)]| {
            let mut host = req("default", headers);
            host.cluster = Some("inbound|8080||".into());
            host
        };
        let removed = |host: &Rec| {
            host.ops
                .iter()
                .position(|op| matches!(op, HeaderOp::Remove(h) if h == "x-dev-sub"))
        };
        let forged = ("x-dev-sub", "admin".to_string());
        let bearer = ("authorization", format!("Bearer {}", token("RS256")));

        // Beside a younger enforcing policy for every route: removed first, then x-user set.
        let mut everywhere = enforced(&[]);
        everywhere["spec"]["applyToRoutes"] = json!([]);
        let mut w = istio(vec![rollout("preAuthz"), everywhere.clone()], None);
        let mut host = inbound(&[bearer.clone(), forged.clone()]);
        assert_eq!(w.on_request(&mut host, 1), Flow::Continue);
        let at = removed(&host).expect("the client's x-dev-sub removed");
        let set = host
            .ops
            .iter()
            .position(|op| matches!(op, HeaderOp::Set(h, _) if h == "x-user"));
        assert!(set.is_some_and(|s| at < s), "{:?}", host.ops);
        assert!(host.replies.is_empty());

        // Alone: the request passes, without the client's x-dev-sub.
        let mut w = istio(vec![rollout("preAuthz")], None);
        let mut host = inbound(std::slice::from_ref(&forged));
        assert_eq!(w.on_request(&mut host, 2), Flow::Continue);
        assert!(removed(&host).is_some());
        assert!(host.replies.is_empty());

        // Per-phase instances: the enforcing policy's instance removes it, before its own sets,
        // whatever the dry run's phase; the other instance changes nothing. Here the dry run
        // writes the enforcing policy's own `x-user`: the postAuthz instance, which runs after
        // the preAuthz one set it, must not remove it.
        let mut same = policy(
            "rollout",
            1,
            true,
            &["checkout"],
            "postAuthz",
            "ec256",
            "x-dev-token",
            "sub",
            "x-user",
        );
        same["spec"]["config"]["providers"]["p"]["claimsToHeaders"]
            .as_array_mut()
            .unwrap()
            .push(json!({"claim": "email", "header": "x-dev-sub"}));
        let both = vec![same, everywhere];
        let mut pre = istio(both.clone(), Some("preAuthz"));
        let spoofed = ("x-user", "root".to_string());
        let mut host = inbound(&[bearer.clone(), forged.clone(), spoofed]);
        assert_eq!(pre.on_request(&mut host, 3), Flow::Continue);
        let at = removed(&host).expect("the client's x-dev-sub removed by the preAuthz instance");
        let last = |host: &Rec, h: &str| {
            host.ops.iter().rposition(|op| match op {
                HeaderOp::Remove(x) | HeaderOp::Set(x, _) | HeaderOp::Add(x, _) => x == h,
                HeaderOp::SetBytes(x, _) => x == h,
                HeaderOp::SetPath(_) => false,
            })
        };
        assert!(
            matches!(last(&host, "x-user").and_then(|i| host.ops.get(i)), Some(HeaderOp::Set(_, v)) if v == "dev1"),
            "{:?}",
            host.ops
        );
        assert!(at < last(&host, "x-user").unwrap_or(0));
        let mut post = istio(both, Some("postAuthz"));
        let mut host = inbound(&[bearer, ("x-user", "dev1".into())]);
        assert_eq!(post.on_request(&mut host, 4), Flow::Continue);
        assert!(host.ops.is_empty(), "{:?}", host.ops);

        // Without the header on the request nothing is changed.
        let mut w = istio(vec![rollout("preAuthz")], None);
        let mut host = inbound(&[]);
        assert_eq!(w.on_request(&mut host, 5), Flow::Continue);
        assert!(host.ops.is_empty());
    }
}

#[cfg(test)]
mod review8_tests {
    //! Review 8: an independent attack on the "dry run in doubt" change (session 8).
    use super::route_change_tests::OneRequest as Rec;
    use super::*;
    use crate::authn::HeaderOp;
    use crate::testkit::{pem, token};
    use serde_json::{Value, json};

    /// A policy `name` created on day `day`; its one provider takes the token from `from`
    /// (key `key`) and writes claim `claim` to `header`. `select` is the spec's selector part.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn policy(
        name: &str,
        day: u32,
        dry: bool,
        select: Value,
        phase: &str,
        key: &str,
        from: &str,
        claim: &str,
        header: &str,
    ) -> Value {
        let mut spec = json!({"config": {
            "phase": {phase: {}},
            "providers": {"p": {
                "local": {"inline": pem(key)},
                "tokenSource": {"headers": [{"name": from, "prefix": "Bearer "}]},
                "claimsToHeaders": [{"claim": claim, "header": header}]}}}});
        if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), select) {
            s.extend(e);
        }
        let mut r = json!({"metadata": {"name": name,
            "creationTimestamp": format!("2024-01-{day:02}T00:00:00Z")}, "spec": spec});
        if dry {
            r["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
        }
        r
    }

    /// The dry run `rollout` of these tests (day 1, its token in `x-dev-token`, ec256 key), over
    /// `select`, of `phase`, writing `sub` to `header`.
    fn rollout(select: Value, phase: &str, header: &str) -> Value {
        policy(
            "rollout",
            1,
            true,
            select,
            phase,
            "ec256",
            "x-dev-token",
            "sub",
            header,
        )
    }

    /// The enforcing policy of these tests (day 2, its token in `authorization`, rsa key), over
    /// every route, of `phase`, writing `sub` to `header`.
    fn enforced(phase: &str, header: &str) -> Value {
        policy(
            "enforced",
            2,
            false,
            json!({"applyToRoutes": []}),
            phase,
            "rsa",
            "authorization",
            "sub",
            header,
        )
    }

    fn routes(names: &[&str]) -> Value {
        let list: Vec<Value> = names
            .iter()
            .map(|r| json!({"route": {"name": r}}))
            .collect();
        json!({ "applyToRoutes": list })
    }

    fn istio(policies: Vec<Value>, phase: Option<&str>) -> Worker {
        let mut plugin = json!({"policies": policies});
        if let Some(phase) = phase {
            plugin["settings"] = json!({"phase": phase});
        }
        let c = crate::config::parse_on(plugin.to_string().as_bytes(), crate::config::Proxy::Istio);
        Worker::new(c.unwrap())
    }

    fn req(route: &str, cluster: &str, headers: &[(&str, String)]) -> Rec {
        let mut h: Vec<crate::extract::Header> = vec![(":path".into(), b"/".to_vec())];
        h.extend(
            headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone().into_bytes())),
        );
        Rec {
            route: route.into(),
            cluster: Some(cluster.into()),
            headers: h,
            ..Rec::default()
        }
    }

    fn removes(host: &Rec, header: &str) -> bool {
        host.ops
            .iter()
            .any(|op| matches!(op, HeaderOp::Remove(h) if h == header))
    }

    fn sets(host: &Rec, header: &str) -> Vec<String> {
        super::review7_tests::sets(&host.ops, header)
    }

    /// Finding 1. Per-phase instances (`render --istio`): an older postAuthz dry run with a
    /// route-name selector (in doubt on the inbound side) and a younger preAuthz enforcing policy
    /// for every route, both writing `x-user`. The preAuthz instance (AUTHZ) verifies the token
    /// and sets `x-user`; the postAuthz instance (STATS) runs later, sees that header on the
    /// request, takes it for the client's copy of the dry run's header and removes it: the
    /// enforcing policy's own verified claim never reaches the upstream.
    #[test]
    fn review8_the_dry_runs_later_phase_removes_the_enforcing_policys_fresh_header() {
        let policies = vec![
            rollout(routes(&["checkout"]), "postAuthz", "x-user"),
            enforced("preAuthz", "x-user"),
        ];
        let inbound = "inbound|8080||";
        let bearer = ("authorization", format!("Bearer {}", token("RS256")));
        let mut pre = istio(policies.clone(), Some("preAuthz"));
        let mut host = req("default", inbound, std::slice::from_ref(&bearer));
        assert_eq!(pre.on_request(&mut host, 1), Flow::Continue);
        let written = sets(&host, "x-user");
        assert_eq!(written.len(), 1, "{:?}", host.ops);
        // What the postAuthz instance sees: the request as the preAuthz instance left it.
        let mut post = istio(policies, Some("postAuthz"));
        let mut host = req(
            "default",
            inbound,
            &[bearer, ("x-user", written[0].clone())],
        );
        assert_eq!(post.on_request(&mut host, 1), Flow::Continue);
        assert!(
            !removes(&host, "x-user"),
            "the postAuthz instance removed the x-user the enforcing policy had just set: {:?}",
            host.ops
        );
    }

    /// Finding 2. Per-phase instances: an older preAuthz dry run that SELECTS the request (the
    /// shadow) beside a younger postAuthz enforcing policy. The shadow's claim header is removed
    /// only in the enforcing policy's instance (postAuthz = STATS), after Istio's authorization
    /// (AUTHZ) has read the request: an AuthorizationPolicy prepared for the rollout (x-org)
    /// sees the client's own copy, the exact case session 8 fixed for dry runs in doubt by
    /// removing in the dry run's own phase.
    #[test]
    fn review8_a_preauthz_shadow_beside_a_postauthz_policy_is_stripped_only_after_authz() {
        let policies = vec![
            policy(
                "rollout",
                1,
                true,
                routes(&["a"]),
                "preAuthz",
                "ec256",
                "x-dev-token",
                "org",
                "x-org",
            ),
            policy(
                "enforced",
                2,
                false,
                routes(&["a"]),
                "postAuthz",
                "rsa",
                "authorization",
                "sub",
                "x-user",
            ),
        ];
        let cluster = "outbound|80||a.shop.svc.cluster.local";
        let mut pre = istio(policies, Some("preAuthz"));
        let mut host = req("a", cluster, &[("x-org", "solo.io".into())]);
        assert_eq!(pre.on_request(&mut host, 1), Flow::Continue);
        assert!(
            removes(&host, "x-org"),
            "the client's x-org passed the preAuthz (AUTHZ) instance untouched: {:?}",
            host.ops
        );
    }

    /// Finding 3. Two dry runs older than the enforcing policy, both selecting the request: only
    /// the OLDEST (the shadow) has the client's copies of its claim headers removed. The second
    /// one, which would govern were it the one enforced, keeps the client's `x-team`; a dry run
    /// in doubt at the same place would have had it removed (every older one is).
    #[test]
    fn review8_a_second_older_dry_run_that_selects_keeps_the_clients_headers() {
        let policies = vec![
            policy(
                "rollout-a",
                1,
                true,
                routes(&["a"]),
                "preAuthz",
                "ec256",
                "x-dev-token",
                "sub",
                "x-dev-sub",
            ),
            policy(
                "rollout-b",
                2,
                true,
                routes(&["a"]),
                "preAuthz",
                "ec256",
                "x-dev-token",
                "team",
                "x-team",
            ),
            policy(
                "enforced",
                3,
                false,
                routes(&["a"]),
                "preAuthz",
                "rsa",
                "authorization",
                "sub",
                "x-user",
            ),
        ];
        let cluster = "outbound|80||a.shop.svc.cluster.local";
        for with_enforcing in [true, false] {
            let mut p = policies.clone();
            if !with_enforcing {
                p.pop();
            }
            let mut w = istio(p, None);
            let mut host = req(
                "a",
                cluster,
                &[
                    ("authorization", format!("Bearer {}", token("RS256"))),
                    ("x-team", "admins".into()),
                ],
            );
            assert_eq!(w.on_request(&mut host, 1), Flow::Continue);
            assert!(
                removes(&host, "x-team"),
                "enforcing policy present: {with_enforcing}: the client's x-team reached the \
                 upstream: {:?}",
                host.ops
            );
        }
    }

    /// Finding 4. Route change: a request whose headers the enforcing policy changed is routed
    /// again by Envoy onto a cluster where an older dry run is in doubt (a destination selector
    /// on `PassthroughCluster`). The dry run never had the client's copies of its headers
    /// removed, and `on_response` compares only the enforcing and shadow policies: the
    /// response is kept (review 7's analogous case for a shadow answers 500).
    #[test]
    fn review8_a_request_moved_onto_a_cluster_where_a_dry_run_is_in_doubt_is_kept() {
        let policies = vec![
            rollout(
                json!({"applyToDestinations": [{"selector": {"name": "httpbin", "namespace": "httpbin"}}]}),
                "preAuthz",
                "x-dev-sub",
            ),
            policy(
                "enforced",
                2,
                false,
                json!({}),
                "preAuthz",
                "rsa",
                "authorization",
                "sub",
                "x-user",
            ),
        ];
        let mut w = istio(policies, None);
        let mut host = req(
            "a",
            "outbound|80||other.shop.svc.cluster.local",
            &[
                ("authorization", format!("Bearer {}", token("RS256"))),
                ("x-dev-sub", "admin".into()),
            ],
        );
        assert_eq!(w.on_request(&mut host, 1), Flow::Continue);
        assert!(
            !removes(&host, "x-dev-sub"),
            "not in doubt on a Service cluster"
        );
        // The router picks again after x-user was written: a Host no route knows.
        host.cluster = Some("PassthroughCluster".into());
        assert_eq!(
            w.on_response(&mut host, 1),
            Flow::Pause,
            "the client's x-dev-sub went unremoved to a cluster where the dry run is in doubt"
        );
    }

    // ---- what held ----

    /// Single instance: the removal comes before the enforcing policy's set of the same
    /// header; a CORS preflight and a denied request behave.
    #[test]
    fn review8_held_single_instance_shared_header_order_preflight_and_denial() {
        let policies = vec![
            rollout(routes(&["checkout"]), "preAuthz", "x-user"),
            enforced("preAuthz", "x-user"),
        ];
        let inbound = "inbound|8080||";
        let mut w = istio(policies.clone(), None);
        let mut host = req(
            "default",
            inbound,
            &[
                ("authorization", format!("Bearer {}", token("RS256"))),
                ("x-user", "admin".into()),
            ],
        );
        assert_eq!(w.on_request(&mut host, 1), Flow::Continue);
        let last_remove = host
            .ops
            .iter()
            .rposition(|op| matches!(op, HeaderOp::Remove(h) if h == "x-user"));
        let set = host
            .ops
            .iter()
            .position(|op| matches!(op, HeaderOp::Set(h, _) if h == "x-user"));
        assert!(
            last_remove.zip(set).is_some_and(|(r, s)| r < s),
            "{:?}",
            host.ops
        );
        // CORS preflight: passes, the client's x-user removed.
        let mut host = req(
            "default",
            inbound,
            &[
                (":method", "OPTIONS".into()),
                ("origin", "https://a.example".into()),
                ("access-control-request-method", "GET".into()),
                ("x-user", "admin".into()),
            ],
        );
        assert_eq!(w.on_request(&mut host, 2), Flow::Continue);
        assert!(removes(&host, "x-user"), "{:?}", host.ops);
        // Denied (no token): 401, nothing forwarded.
        let mut host = req("default", inbound, &[("x-user", "admin".into())]);
        assert_eq!(w.on_request(&mut host, 3), Flow::Pause);
        assert_eq!(host.replies.first().map(|r| r.0), Some(401));
        // Reverse phases (dry run preAuthz, enforcing postAuthz): the preAuthz instance
        // removes, the postAuthz one sets after it.
        let mut p = policies;
        p[1]["spec"]["config"]["phase"] = json!({"postAuthz": {}});
        let mut pre = istio(p.clone(), Some("preAuthz"));
        let mut host = req("default", inbound, &[("x-user", "admin".into())]);
        assert_eq!(pre.on_request(&mut host, 4), Flow::Continue);
        assert!(removes(&host, "x-user"));
    }
}

#[cfg(test)]
mod review9_tests {
    //! Review 9: an independent attack on the dry-run header removal across phases.
    use super::route_change_tests::OneRequest as Rec;
    use super::*;
    use crate::authn::HeaderOp;
    use crate::testkit::token;
    use serde_json::{Value, json};

    use super::review8_tests::policy;

    fn istio(policies: Vec<Value>, phase: Option<&str>) -> Worker {
        let mut plugin = json!({"policies": policies});
        if let Some(phase) = phase {
            plugin["settings"] = json!({"phase": phase});
        }
        let c = crate::config::parse_on(plugin.to_string().as_bytes(), crate::config::Proxy::Istio);
        Worker::new(c.unwrap())
    }

    fn req(headers: &[(String, Vec<u8>)]) -> Rec {
        let mut h: Vec<crate::extract::Header> = vec![(":path".into(), b"/".to_vec())];
        h.extend(headers.iter().cloned());
        Rec {
            route: "a".into(),
            cluster: Some("outbound|80||a.shop.svc.cluster.local".into()),
            headers: h,
            ..Rec::default()
        }
    }

    /// The request as an instance left it: its header changes applied.
    fn after(host: &Rec) -> Vec<(String, Vec<u8>)> {
        let mut h: Vec<(String, Vec<u8>)> = host
            .headers
            .iter()
            .filter(|(n, _)| n != ":path")
            .cloned()
            .collect();
        for op in &host.ops {
            match op {
                HeaderOp::Remove(n) => h.retain(|(x, _)| x != n),
                HeaderOp::Set(n, v) => {
                    h.retain(|(x, _)| x != n);
                    h.push((n.clone(), v.clone().into_bytes()));
                }
                HeaderOp::Add(n, v) => h.push((n.clone(), v.clone().into_bytes())),
                _ => {}
            }
        }
        h
    }

    /// Finding 4. An older preAuthz dry run whose claim header is the header a younger
    /// postAuthz enforcing policy reads its token from (`x-jwt`). With one instance the
    /// enforcing policy decides first and the removal follows: a valid token passes. With
    /// per-phase instances (`render --istio`) the removal is the preAuthz instance's (the
    /// earlier phase), before the postAuthz instance has read the token: every request with a
    /// valid token is refused 401 (and under ALLOW_MISSING passes with no claims at all). The
    /// two deployments of the same policies disagree.
    #[test]
    fn review9_an_earlier_instance_removes_the_deciding_policys_token() {
        let policies = vec![
            policy(
                "rollout",
                1,
                true,
                json!({}),
                "preAuthz",
                "ec256",
                "x-dev-token",
                "sub",
                "x-jwt",
            ),
            policy(
                "enforced",
                2,
                false,
                json!({}),
                "postAuthz",
                "rsa",
                "x-jwt",
                "sub",
                "x-user",
            ),
        ];
        let bearer = vec![(
            "x-jwt".to_string(),
            format!("Bearer {}", token("RS256")).into_bytes(),
        )];
        // One instance: allowed.
        let mut one = istio(policies.clone(), None);
        let mut host = req(&bearer);
        assert_eq!(one.on_request(&mut host, 1), Flow::Continue);
        assert!(host.replies.is_empty(), "{:?}", host.replies);
        // Per-phase instances: preAuthz first, then postAuthz on what it left.
        let mut pre = istio(policies.clone(), Some("preAuthz"));
        let mut host = req(&bearer);
        assert_eq!(pre.on_request(&mut host, 1), Flow::Continue);
        let left = after(&host);
        let pre_ops = host.ops.clone();
        let mut post = istio(policies, Some("postAuthz"));
        let mut host = req(&left);
        let flow = post.on_request(&mut host, 1);
        assert!(
            flow == Flow::Continue && host.replies.is_empty(),
            "the preAuthz instance removed the enforcing policy's token ({pre_ops:?}); the \
             postAuthz instance answered {:?}",
            host.replies
        );
    }
}
