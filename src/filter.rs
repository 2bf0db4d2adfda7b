//! The host glue: gathers the request view, asks the core, applies the decision; fetches remote
//! JWKS from the root context and parks/resumes the requests that wait for them. Every hostcall
//! goes through the `Result`-returning `hostcalls` functions, so nothing here can panic on what
//! a client, a JWKS server or a configuration sends.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::authn::{self, Decision, HeaderOp, Keys, RequestView};
use crate::config;
use crate::jwks_cache::{self, FetchError, Record, Source};
use crate::jwt_cache::TokenCache;
use crate::metrics::{Counter, Metrics};
use crate::policy::{Config, KeySource};
use crate::select::{self, RouteInfo};
use crate::status::Status;
use std::collections::BTreeMap;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { worker: None }) });
}}

/// Tick while requests wait or fetches run (deadline sweep, polling other workers' fetches).
const BUSY_TICK_MS: u64 = 20;
/// Tick otherwise, when remote keys exist (background refresh).
const IDLE_TICK_MS: u64 = 1_000;

fn now_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A request paused until its providers' keys are ready.
struct Waiter {
    context_id: u32,
    sources: Vec<usize>,
    deadline_ms: u64,
}

/// Everything one VM (one Envoy worker) knows, shared by its root and HTTP contexts.
struct Worker {
    config: Rc<Config>,
    /// Remote JWKS sources, deduplicated by cluster and URL.
    sources: Vec<Source>,
    /// `source_of[policy][provider]`: the provider's source (`None`: local keys).
    source_of: Vec<Vec<Option<usize>>>,
    waiters: Vec<Waiter>,
    /// Callouts in flight: (token, source).
    callouts: Vec<(u32, usize)>,
    /// The shared-data version of each source's record last adopted.
    seen_cas: Vec<Option<u32>>,
    metrics: Metrics,
    tick_ms: u64,
    /// Verified tokens (bounded).
    cache: TokenCache,
}

impl Worker {
    fn new(config: Config) -> Worker {
        let mut sources: Vec<Source> = Vec::new();
        let source_of = config
            .policies
            .iter()
            .map(|p| {
                p.providers
                    .iter()
                    .map(|pr| match &pr.keys {
                        KeySource::Local(_) => None,
                        KeySource::Remote(r) => Some(
                            sources
                                .iter()
                                .position(|s| {
                                    s.remote.cluster == r.cluster && s.remote.url == r.url
                                })
                                .unwrap_or_else(|| {
                                    sources.push(Source::new(
                                        r.clone(),
                                        config.settings.limits.max_jwks_bytes,
                                    ));
                                    sources.len() - 1
                                }),
                        ),
                    })
                    .collect()
            })
            .collect();
        let cache = TokenCache::new(config.settings.limits.max_cached_tokens);
        Worker {
            config: Rc::new(config),
            seen_cas: vec![None; sources.len()],
            sources,
            source_of,
            waiters: Vec::new(),
            callouts: Vec::new(),
            metrics: Metrics::define(),
            tick_ms: 0,
            cache,
        }
    }

    fn set_tick(&mut self, ms: u64) {
        if self.tick_ms != ms && hostcalls::set_tick_period(Duration::from_millis(ms)).is_ok() {
            self.tick_ms = ms;
        }
    }

    /// Adopts what another worker published for this source, if it changed since last seen.
    fn sync(&mut self, si: usize) {
        let (Some(source), Some(seen)) = (self.sources.get_mut(si), self.seen_cas.get_mut(si))
        else {
            return;
        };
        if let Ok((Some(bytes), cas)) = hostcalls::get_shared_data(&source.shared_key)
            && std::mem::replace(seen, cas) != cas
            && let Some(record) = Record::decode(&bytes)
            && record != source.record
        {
            source.adopt(record);
        }
    }

    /// Decides the request of the effective context; `Continue` lets it go on.
    /// `give_up`: keys still pending count as a failed fetch (a waiter past its deadline).
    fn process(&mut self, context_id: u32, give_up: bool) -> Action {
        let config = Rc::clone(&self.config);
        let mut route = HostRoute::new(&config.settings.route_labels_namespace);
        let Some(pi) = select::governing(&config, &mut route) else {
            return Action::Continue;
        };
        let Some(policy) = config.policies.get(pi) else {
            return Action::Continue;
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(e) => {
                error!("cannot read the request headers ({e:?})");
                return reply(500, None, "jwt policy filter cannot read the request");
            }
        };
        let routes = self.source_of.get(pi).cloned().unwrap_or_default();
        for si in routes.iter().flatten() {
            if matches!(
                self.sources.get(*si).map(|s| s.state(now_ms())),
                Some(Keys::Pending)
            ) {
                self.sync(*si);
            }
        }
        let now = now_ms();
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
        let decision = authn::decide(
            policy,
            &RequestView { headers: &headers },
            now / 1000,
            &keys,
            &mut self.cache,
        );
        let (hits, misses) = self.cache.take_counts();
        self.metrics.add(Counter::CacheHit, hits);
        self.metrics.add(Counter::CacheMiss, misses);
        match decision {
            Decision::Allow {
                ops,
                clear_route_cache,
            } => {
                for op in &ops {
                    if let Err(e) = apply(op) {
                        warn!("cannot change the request headers ({e:?})");
                    }
                }
                if clear_route_cache {
                    let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
                }
                self.metrics.inc(Counter::Allowed);
                Action::Continue
            }
            Decision::Deny {
                status,
                www_authenticate,
            } => {
                debug!("{} denied a request: {status}", policy.name);
                self.metrics.inc(Counter::Denied(status.family()));
                reply(status.http_code(), Some(&www_authenticate), status.as_str())
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
                    .saturating_add(jwks_cache::DEADLINE_MARGIN_MS);
                self.waiters.push(Waiter {
                    context_id,
                    sources: waiting,
                    deadline_ms,
                });
                self.metrics.inc(Counter::RequestsPaused);
                self.set_tick(1);
                Action::Pause
            }
        }
    }

    /// Takes the cross-worker lease on a source's fetch.
    fn take_lease(source: &Source, now: u64) -> bool {
        let key = format!("{}.lease", source.shared_key);
        let Ok((value, cas)) = hostcalls::get_shared_data(&key) else {
            return false;
        };
        let held_until = value
            .and_then(|v| {
                v.get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map(u64::from_le_bytes)
            })
            .unwrap_or(0);
        if held_until > now || cas.is_none() {
            return false;
        }
        let until = now
            .saturating_add(source.remote.timeout_ms)
            .saturating_add(jwks_cache::DEADLINE_MARGIN_MS);
        hostcalls::set_shared_data(&key, Some(&until.to_le_bytes()), cas).is_ok()
    }

    fn release_lease(source: &Source) {
        let _ = hostcalls::set_shared_data(
            &format!("{}.lease", source.shared_key),
            Some(&0u64.to_le_bytes()),
            None,
        );
    }

    /// Creates the lease entries so that taking one is always a compare-and-swap.
    fn prepare_leases(&self) {
        for s in &self.sources {
            let key = format!("{}.lease", s.shared_key);
            if let Ok((None, _)) = hostcalls::get_shared_data(&key) {
                let _ = hostcalls::set_shared_data(&key, Some(&0u64.to_le_bytes()), None);
            }
        }
    }

    fn on_tick(&mut self) {
        let now = now_ms();
        for si in 0..self.sources.len() {
            self.sync(si);
            let Some(source) = self.sources.get_mut(si) else {
                continue;
            };
            if source.expire_in_flight(now) {
                warn!("JWKS fetch from {} timed out", source.remote.url);
            }
            if !source.should_fetch(now) || !Self::take_lease(source, now) {
                continue;
            }
            let r = &source.remote;
            let headers = vec![
                (":method", "GET"),
                (":path", r.path.as_str()),
                (":authority", r.authority.as_str()),
                ("accept", "application/json"),
            ];
            match hostcalls::dispatch_http_call(
                &r.cluster,
                headers,
                None,
                vec![],
                Duration::from_millis(r.timeout_ms.max(1)),
            ) {
                Ok(token) => {
                    debug!("fetching JWKS {} from cluster {}", r.url, r.cluster);
                    source.fetch_started(now);
                    self.callouts.push((token, si));
                }
                Err(e) => {
                    warn!(
                        "cannot fetch JWKS {} from cluster {} ({e:?}): is the cluster defined?",
                        r.url, r.cluster
                    );
                    let failed = source.fetch_done(now, Err(FetchError::NoResponse)).is_err();
                    Self::publish(source);
                    Self::release_lease(source);
                    if failed {
                        self.metrics.inc(Counter::JwksFetchFailure);
                    }
                }
            }
        }
        self.resume_waiters(now);
    }

    fn publish(source: &Source) {
        let _ = hostcalls::set_shared_data(&source.shared_key, Some(&source.record.encode()), None);
    }

    fn on_fetch_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let Some(pos) = self.callouts.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let (_, si) = self.callouts.swap_remove(pos);
        let now = now_ms();
        let Some(source) = self.sources.get_mut(si) else {
            return;
        };
        let result = read_jwks_response(num_headers, body_size, source.max_body);
        match source.fetch_done(now, result) {
            Ok(_) => {
                info!("fetched JWKS {}", source.remote.url);
                self.metrics.inc(Counter::JwksFetchSuccess);
            }
            Err(e) => {
                warn!("JWKS fetch from {} failed: {e}", source.remote.url);
                self.metrics.inc(Counter::JwksFetchFailure);
            }
        }
        Self::publish(source);
        Self::release_lease(source);
        self.resume_waiters(now);
    }

    /// Answers every waiting request whose keys are settled, or whose deadline passed.
    fn resume_waiters(&mut self, now: u64) {
        let waiters = std::mem::take(&mut self.waiters);
        for w in waiters {
            let settled = w.sources.iter().all(|si| {
                !matches!(
                    self.sources.get(*si).map(|s| s.state(now)),
                    Some(Keys::Pending)
                )
            }) && w.sources.iter().all(|si| {
                self.sources.get(*si).is_some_and(|s| {
                    !s.wanted || s.in_flight_until.is_none() && !s.should_fetch(now)
                })
            });
            if !settled && now < w.deadline_ms {
                self.waiters.push(w);
                continue;
            }
            if hostcalls::set_effective_context(w.context_id).is_err() {
                continue; // the request is gone
            }
            if let Action::Continue = self.process(w.context_id, !settled)
                && let Err(e) = hostcalls::resume_http_request()
            {
                warn!("cannot resume a request ({e:?})");
            }
        }
        let busy = !self.waiters.is_empty() || !self.callouts.is_empty();
        self.set_tick(if busy {
            BUSY_TICK_MS
        } else if self.sources.is_empty() {
            0
        } else {
            IDLE_TICK_MS
        });
    }

    fn forget(&mut self, context_id: u32) {
        self.waiters.retain(|w| w.context_id != context_id);
    }
}

fn property(path: &[&str]) -> Option<Vec<u8>> {
    hostcalls::get_property(path.to_vec()).ok().flatten()
}

fn string_property(path: &[&str]) -> Option<String> {
    property(path).and_then(|b| String::from_utf8(b).ok())
}

/// The request's route and upstream, each property read from the host at most once.
struct HostRoute<'a> {
    ns: &'a str,
    labels: Option<Option<BTreeMap<String, String>>>,
    namespace: Option<Option<String>>,
    name: Option<Option<String>>,
    cluster: Option<Option<String>>,
}

impl<'a> HostRoute<'a> {
    fn new(ns: &'a str) -> Self {
        HostRoute {
            ns,
            labels: None,
            namespace: None,
            name: None,
            cluster: None,
        }
    }
}

impl RouteInfo for HostRoute<'_> {
    fn route_labels(&mut self) -> Option<&BTreeMap<String, String>> {
        let ns = self.ns;
        self.labels
            .get_or_insert_with(|| {
                property(&["xds", "route_metadata", "filter_metadata", ns, "labels"])
                    .and_then(|b| select::decode_pairs(&b))
            })
            .as_ref()
    }

    fn route_namespace(&mut self) -> Option<&str> {
        let ns = self.ns;
        self.namespace
            .get_or_insert_with(|| {
                string_property(&["xds", "route_metadata", "filter_metadata", ns, "namespace"])
            })
            .as_deref()
    }

    fn route_name(&mut self) -> Option<&str> {
        self.name
            .get_or_insert_with(|| string_property(&["xds", "route_name"]))
            .as_deref()
    }

    fn cluster_name(&mut self) -> Option<&str> {
        self.cluster
            .get_or_insert_with(|| string_property(&["xds", "cluster_name"]))
            .as_deref()
    }

    fn local_service(&mut self) -> Option<(String, String)> {
        let namespace = string_property(&["xds", "node", "metadata", "NAMESPACE"])?;
        let labels = property(&["xds", "node", "metadata", "LABELS"])
            .and_then(|b| select::decode_pairs(&b))?;
        let name = labels
            .get("service.istio.io/canonical-name")
            .or_else(|| labels.get("app"))?;
        Some((name.clone(), namespace))
    }
}

/// The body of a JWKS callout response, or why there is none.
fn read_jwks_response(
    num_headers: usize,
    body_size: usize,
    max_body: usize,
) -> Result<Vec<u8>, FetchError> {
    if num_headers == 0 {
        return Err(FetchError::NoResponse);
    }
    let status = hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
        .ok()
        .flatten()
        .unwrap_or_default();
    if status != b"200" {
        return Err(FetchError::Status(
            String::from_utf8_lossy(&status).into_owned(),
        ));
    }
    if body_size > max_body {
        return Err(FetchError::TooLarge(body_size));
    }
    match hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, body_size) {
        Ok(body) => Ok(body.unwrap_or_default()),
        Err(_) => Err(FetchError::NoResponse),
    }
}

fn apply(op: &HeaderOp) -> Result<(), proxy_wasm::types::Status> {
    let map = MapType::HttpRequestHeaders;
    match op {
        HeaderOp::Remove(name) => hostcalls::set_map_value_bytes(map, name, None),
        HeaderOp::Set(name, value) => hostcalls::set_map_value(map, name, Some(value)),
        HeaderOp::Add(name, value) => hostcalls::add_map_value(map, name, value),
        HeaderOp::SetBytes(name, value) => hostcalls::set_map_value_bytes(map, name, Some(value)),
        HeaderOp::SetPath(path) => hostcalls::set_map_value_bytes(map, ":path", Some(path)),
    }
}

fn reply(status: u32, www_authenticate: Option<&str>, body: &str) -> Action {
    let mut headers = vec![("content-type", "text/plain")];
    if let Some(value) = www_authenticate {
        headers.push(("www-authenticate", value));
    }
    if let Err(e) = hostcalls::send_http_response(status, headers, Some(body.as_bytes())) {
        warn!("cannot send the local reply ({e:?})");
    }
    Action::Pause
}

struct Root {
    worker: Option<Rc<RefCell<Worker>>>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token_id: u32,
        num_headers: usize,
        body_size: usize,
        _num_trailers: usize,
    ) {
        if let Some(mut w) = self.worker.as_ref().and_then(|w| w.try_borrow_mut().ok()) {
            w.on_fetch_response(token_id, num_headers, body_size);
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!("invalid configuration: configuration: cannot be read ({status:?})");
                return false;
            }
        };
        let config = match config::parse(&bytes) {
            Ok(config) => config,
            Err(e) => {
                error!("invalid configuration: {e}");
                return false;
            }
        };
        let count = config.policies.len();
        let mut worker = Worker::new(config);
        worker.prepare_leases();
        let eager = worker.sources.iter().any(|s| s.remote.async_fetch);
        worker.set_tick(if eager {
            1
        } else if worker.sources.is_empty() {
            0
        } else {
            IDLE_TICK_MS
        });
        info!(
            "configured: {count} polic{}, {} remote JWKS source(s)",
            if count == 1 { "y" } else { "ies" },
            worker.sources.len()
        );
        self.worker = Some(Rc::new(RefCell::new(worker)));
        true
    }

    fn on_tick(&mut self) {
        if let Some(mut w) = self.worker.as_ref().and_then(|w| w.try_borrow_mut().ok()) {
            w.on_tick();
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            context_id,
            worker: self.worker.clone(),
        }))
    }
}

struct Request {
    context_id: u32,
    worker: Option<Rc<RefCell<Worker>>>,
}

impl Context for Request {
    fn on_done(&mut self) -> bool {
        if let Some(mut w) = self.worker.as_ref().and_then(|w| w.try_borrow_mut().ok()) {
            w.forget(self.context_id);
        }
        true
    }
}

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.worker.as_ref().map(|w| w.try_borrow_mut()) {
            Some(Ok(mut w)) => w.process(self.context_id, false),
            _ => reply(500, None, "jwt policy filter is not configured"),
        }
    }
}
