//! The host glue: gathers the request view, asks the core, applies the decision. Every hostcall
//! goes through the `Result`-returning `hostcalls` functions, so nothing here can panic on what
//! a client or a configuration sends.

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use log::{debug, error, info, warn};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, LogLevel, MapType};

use crate::authn::{self, Decision, HeaderOp, Keys, RequestView};
use crate::config;
use crate::policy::{Config, KeySource};
use crate::select;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { config: None }) });
}}

struct Root {
    config: Option<Rc<Config>>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => Vec::new(),
            Err(status) => {
                error!("invalid configuration: configuration: cannot be read ({status:?})");
                return false;
            }
        };
        match config::parse(&bytes) {
            Ok(config) => {
                info!(
                    "configured: {} polic{}",
                    config.policies.len(),
                    if config.policies.len() == 1 {
                        "y"
                    } else {
                        "ies"
                    }
                );
                self.config = Some(Rc::new(config));
                true
            }
            Err(e) => {
                error!("invalid configuration: {e}");
                false
            }
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Request {
            config: self.config.clone(),
        }))
    }
}

struct Request {
    config: Option<Rc<Config>>,
}

impl Context for Request {}

fn now_seconds() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

fn apply(op: &HeaderOp) -> Result<(), proxy_wasm::types::Status> {
    let map = MapType::HttpRequestHeaders;
    match op {
        HeaderOp::Remove(name) => hostcalls::set_map_value_bytes(map, name, None),
        HeaderOp::Set(name, value) => hostcalls::set_map_value(map, name, Some(value)),
        HeaderOp::Add(name, value) => hostcalls::add_map_value(map, name, value),
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

impl HttpContext for Request {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(config) = self.config.clone() else {
            return reply(500, None, "jwt policy filter is not configured");
        };
        let Some(policy) = select::governing(&config) else {
            return Action::Continue;
        };
        let headers = match hostcalls::get_map_bytes(MapType::HttpRequestHeaders) {
            Ok(headers) => headers,
            Err(e) => {
                error!("cannot read the request headers ({e:?})");
                return reply(500, None, "jwt policy filter cannot read the request");
            }
        };
        let view = RequestView { headers: &headers };
        let keys = |i: usize| match policy.providers.get(i).map(|p| &p.keys) {
            Some(KeySource::Local(jwks)) => Keys::Ready(jwks),
            _ => Keys::Failed,
        };
        match authn::decide(policy, &view, now_seconds(), &keys) {
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
                Action::Continue
            }
            Decision::Deny {
                status,
                www_authenticate,
            } => {
                debug!("denied by {}: {}", policy.name, status);
                reply(status.http_code(), Some(&www_authenticate), status.as_str())
            }
            Decision::WaitForKeys(_) => {
                let status = crate::status::Status::JwksFetchFail;
                reply(status.http_code(), None, status.as_str())
            }
        }
    }
}
