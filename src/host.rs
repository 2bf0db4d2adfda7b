//! What the core needs from its host ([`Host`]), and the request's route as
//! [`select::RouteInfo`] over the host's properties. `filter.rs` implements `Host` with
//! proxy-wasm hostcalls; the simulator (`sim/`, tests only) with N workers on one store.

use std::collections::BTreeMap;

use crate::authn::HeaderOp;
use crate::extract::Header;
use crate::metrics::Counter;
use crate::select::{self, RouteInfo};

/// A shared-data write that did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// The value changed since it was read (its cas differs).
    CasMismatch,
    Other,
}

/// A shared-data entry as read: its value and cas (`None` for both: no such entry).
pub type Shared = (Option<Vec<u8>>, Option<u32>);

/// The host could not read shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable;

/// What the worker needs from the host. Per-request calls act on the current request: the one
/// whose callback runs, or the paused one [`Host::enter`] selected.
pub trait Host {
    /// Wall-clock milliseconds since the epoch; `None` when the host cannot tell.
    fn now_ms(&mut self) -> Option<u64>;
    /// A shared-data entry and its cas (`None`, `None`: no such entry).
    fn get_shared(&mut self, key: &str) -> Result<Shared, Unreadable>;
    /// Writes an entry: with `cas`, only if the entry's cas still is that (Envoy's semantics:
    /// `None` always writes).
    fn set_shared(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), SetError>;
    /// Starts an HTTP callout; its token, or why not.
    fn dispatch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout_ms: u64,
    ) -> Result<u32, String>;
    /// In a callout response callback: the `:status` header.
    fn callout_status(&mut self) -> Option<Vec<u8>>;
    /// In a callout response callback: the body (`size` bytes).
    fn callout_body(&mut self, size: usize) -> Option<Vec<u8>>;
    /// The tick period (0: no tick); false when the host refused.
    fn set_tick(&mut self, ms: u64) -> bool;
    /// Makes a paused request the current one; false when it is gone.
    fn enter(&mut self, context_id: u32) -> bool;
    /// Lets the current (paused) request go on.
    fn resume(&mut self) -> bool;
    fn request_headers(&mut self) -> Option<Vec<Header>>;
    /// A property of the current request (`xds.route_name`, …).
    fn property(&mut self, path: &[&str]) -> Option<Vec<u8>>;
    fn apply(&mut self, op: &HeaderOp) -> bool;
    fn clear_route_cache(&mut self);
    /// Answers the current request locally.
    fn reply(&mut self, status: u32, headers: &[(&str, &str)], body: &str) -> bool;
    fn count(&mut self, counter: Counter, n: u64);
}

/// What the host does with the request after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Pause,
}

/// The request's route and upstream, each property read from the host at most once.
pub struct HostRoute<'h, 'n, H: Host> {
    host: &'h mut H,
    ns: &'n str,
    labels: Option<Option<BTreeMap<String, String>>>,
    namespace: Option<Option<String>>,
    name: Option<Option<String>>,
    cluster: Option<Option<String>>,
    services: Option<Option<Vec<(String, String)>>>,
    local: Option<Option<(String, String)>>,
}

impl<'h, 'n, H: Host> HostRoute<'h, 'n, H> {
    pub fn new(host: &'h mut H, ns: &'n str) -> Self {
        HostRoute {
            host,
            ns,
            labels: None,
            namespace: None,
            name: None,
            cluster: None,
            services: None,
            local: None,
        }
    }

    fn string(&mut self, path: &[&str]) -> Option<String> {
        self.host
            .property(path)
            .and_then(|b| String::from_utf8(b).ok())
    }
}

impl<H: Host> RouteInfo for HostRoute<'_, '_, H> {
    fn route_labels(&mut self) -> Option<&BTreeMap<String, String>> {
        if self.labels.is_none() {
            let path = [
                "xds",
                "route_metadata",
                "filter_metadata",
                self.ns,
                "labels",
            ];
            let labels = self
                .host
                .property(&path)
                .and_then(|b| select::decode_pairs(&b));
            self.labels = Some(labels);
        }
        self.labels.as_ref().and_then(Option::as_ref)
    }

    fn route_namespace(&mut self) -> Option<&str> {
        if self.namespace.is_none() {
            let ns = self.ns;
            let value = self.string(&["xds", "route_metadata", "filter_metadata", ns, "namespace"]);
            self.namespace = Some(value);
        }
        self.namespace.as_ref().and_then(Option::as_deref)
    }

    fn route_name(&mut self) -> Option<&str> {
        if self.name.is_none() {
            let value = self.string(&["xds", "route_name"]);
            self.name = Some(value);
        }
        self.name.as_ref().and_then(Option::as_deref)
    }

    fn cluster_name(&mut self) -> Option<&str> {
        if self.cluster.is_none() {
            let value = self.string(&["xds", "cluster_name"]);
            self.cluster = Some(value);
        }
        self.cluster.as_ref().and_then(Option::as_deref)
    }

    fn cluster_services(&mut self) -> Option<Vec<(String, String)>> {
        if self.services.is_none() {
            let value = self
                .host
                .property(&["xds", "cluster_metadata"])
                .and_then(|b| select::decode_istio_services(&b));
            self.services = Some(value);
        }
        self.services.clone().flatten()
    }

    fn local_service(&mut self) -> Option<(String, String)> {
        if self.local.is_none() {
            let mut read = || -> Option<(String, String)> {
                let namespace = self.string(&["xds", "node", "metadata", "NAMESPACE"])?;
                let labels = self
                    .host
                    .property(&["xds", "node", "metadata", "LABELS"])
                    .and_then(|b| select::decode_pairs(&b))?;
                let name = labels
                    .get("service.istio.io/canonical-name")
                    .or_else(|| labels.get("app"))?;
                Some((name.clone(), namespace))
            };
            let value = read();
            self.local = Some(value);
        }
        self.local.clone().flatten()
    }
}
