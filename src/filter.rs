//! The host glue, wasm only: [`ProxyHost`] implements the core's [`Host`] with the
//! `Result`-returning proxy-wasm hostcalls, and the root and HTTP contexts hand each callback to
//! the [`Worker`] (`worker.rs`, where every decision is). Nothing here decides anything, and
//! nothing here can panic on what a client, a JWKS server or a configuration sends.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use log::{error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType, MetricType, Status};

use crate::authn::HeaderOp;
use crate::config;
use crate::extract::Header;
use crate::host::{Flow, Host, SetError, Shared, Unreadable};
use crate::metrics::{Counter, Layout};
use crate::worker::Worker;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> {
        Box::new(Root { worker: None, host: ProxyHost::default() })
    });
}}

/// The proxy-wasm host: hostcalls, and the ids of the counters defined once per VM (the totals
/// and the configuration's per-policy and per-provider ones, by slot).
#[derive(Default, Clone)]
struct ProxyHost {
    metrics: Vec<Option<u32>>,
    layout: Layout,
}

impl ProxyHost {
    fn define_metrics(layout: &Layout) -> ProxyHost {
        let metrics = layout
            .all_names()
            .map(|name| {
                hostcalls::define_metric(MetricType::Counter, &format!("jwt_policy.{name}")).ok()
            })
            .collect();
        ProxyHost {
            metrics,
            layout: layout.clone(),
        }
    }
}

impl Host for ProxyHost {
    fn now_ms(&mut self) -> Option<u64> {
        let t = hostcalls::get_current_time().ok()?;
        let d = t.duration_since(UNIX_EPOCH).ok()?;
        u64::try_from(d.as_millis()).ok()
    }

    fn get_shared(&mut self, key: &str) -> Result<Shared, Unreadable> {
        hostcalls::get_shared_data(key).map_err(|_| Unreadable)
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|e| match e {
            Status::CasMismatch => SetError::CasMismatch,
            _ => SetError::Other,
        })
    }

    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, String> {
        hostcalls::dispatch_http_call(
            cluster,
            headers.to_vec(),
            None,
            vec![],
            Duration::from_millis(timeout_ms),
        )
        .map_err(|e| format!("{e:?}"))
    }

    fn callout_status(&mut self) -> Option<Vec<u8>> {
        hostcalls::get_map_value_bytes(MapType::HttpCallResponseHeaders, ":status")
            .ok()
            .flatten()
    }

    fn callout_body(&mut self, size: usize) -> Option<Vec<u8>> {
        hostcalls::get_buffer(BufferType::HttpCallResponseBody, 0, size)
            .ok()
            .map(Option::unwrap_or_default)
    }

    fn set_tick(&mut self, ms: u64) -> bool {
        hostcalls::set_tick_period(Duration::from_millis(ms)).is_ok()
    }

    fn enter(&mut self, context_id: u32) -> bool {
        hostcalls::set_effective_context(context_id).is_ok()
    }

    fn resume(&mut self) -> bool {
        hostcalls::resume_http_request().is_ok()
    }

    fn request_headers(&mut self) -> Option<Vec<Header>> {
        hostcalls::get_map_bytes(MapType::HttpRequestHeaders).ok()
    }

    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>> {
        hostcalls::get_property(path.to_vec()).ok().flatten()
    }

    fn apply(&mut self, op: &HeaderOp) -> bool {
        let map = MapType::HttpRequestHeaders;
        match op {
            HeaderOp::Remove(name) => hostcalls::set_map_value_bytes(map, name, None),
            HeaderOp::Set(name, value) => hostcalls::set_map_value(map, name, Some(value)),
            HeaderOp::Add(name, value) => hostcalls::add_map_value(map, name, value),
            HeaderOp::SetBytes(name, value) => {
                hostcalls::set_map_value_bytes(map, name, Some(value))
            }
            HeaderOp::SetPath(path) => hostcalls::set_map_value_bytes(map, ":path", Some(path)),
        }
        .is_ok()
    }

    fn clear_route_cache(&mut self) {
        let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
    }

    fn reply(&mut self, status: u32, headers: &[(&str, &str)], body: &str) -> bool {
        hostcalls::send_http_response(status, headers.to_vec(), Some(body.as_bytes())).is_ok()
    }

    fn count(&mut self, counter: Counter, n: u64) {
        if n == 0 {
            return;
        }
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let metrics = &self.metrics;
        self.layout.each_slot(counter, |slot| {
            if let Some(id) = metrics.get(slot).copied().flatten() {
                let _ = hostcalls::increment_metric(id, n);
            }
        });
    }
}

/// An Istio proxy (its node metadata names the Istio version, or its node id has Istio's
/// `sidecar~` / `router~` / `waypoint~` form) or a plain Envoy: it decides which selectors can be evaluated.
fn proxy_kind() -> config::Proxy {
    let property = |path: &[&str]| hostcalls::get_property(path.to_vec()).ok().flatten();
    let istio = property(&["xds", "node", "metadata", "ISTIO_VERSION"]).is_some()
        || property(&["xds", "node", "id"])
            .and_then(|id| String::from_utf8(id).ok())
            .is_some_and(|id| {
                ["sidecar~", "router~", "waypoint~"]
                    .iter()
                    .any(|kind| id.starts_with(kind))
            });
    if istio {
        config::Proxy::Istio
    } else {
        config::Proxy::Envoy
    }
}

fn flow(f: Flow) -> Action {
    match f {
        Flow::Continue => Action::Continue,
        Flow::Pause => Action::Pause,
    }
}

struct Root {
    worker: Option<Rc<RefCell<Worker>>>,
    host: ProxyHost,
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
            w.on_fetch_response(&mut self.host, token_id, num_headers, body_size);
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
        let config = match config::parse_on(&bytes, proxy_kind()) {
            Ok(config) => config,
            Err(e) => {
                error!("invalid configuration: {e}");
                return false;
            }
        };
        let mut worker = Worker::new(config);
        self.host = ProxyHost::define_metrics(worker.layout());
        worker.start(&mut self.host);
        let count = worker.policies();
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
            w.on_tick(&mut self.host);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            context_id,
            worker: self.worker.clone(),
            host: self.host.clone(),
        }))
    }
}

struct Request {
    context_id: u32,
    worker: Option<Rc<RefCell<Worker>>>,
    host: ProxyHost,
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
            Some(Ok(mut w)) => flow(w.on_request(&mut self.host, self.context_id)),
            _ => {
                let _ = hostcalls::send_http_response(
                    500,
                    vec![("content-type", "text/plain")],
                    Some(b"jwt policy filter is not configured"),
                );
                Action::Pause
            }
        }
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        match self.worker.as_ref().map(|w| w.try_borrow_mut()) {
            Some(Ok(mut w)) => flow(w.on_response(&mut self.host, self.context_id)),
            _ => Action::Continue,
        }
    }
}
