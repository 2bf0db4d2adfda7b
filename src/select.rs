//! Which policy governs a request: the oldest whose route or destination selectors match,
//! whatever its phase or priority (an instance serving one phase enforces it only when it is of
//! that phase). Request properties are read lazily through
//! [`RouteInfo`], each at most once, and only when some policy needs it.

use std::collections::BTreeMap;

use crate::policy::{Config, DestinationSelector, Policy, RouteSelector};

/// What the host knows about the request's route and upstream.
pub trait RouteInfo {
    /// The route's labels (route metadata `filter_metadata.<ns>.labels`).
    fn route_labels(&mut self) -> Option<&BTreeMap<String, String>>;
    /// The route's namespace (route metadata `filter_metadata.<ns>.namespace`).
    fn route_namespace(&mut self) -> Option<&str>;
    /// The route's name (`xds.route_name`).
    fn route_name(&mut self) -> Option<&str>;
    /// The upstream cluster's name (`xds.cluster_name`).
    fn cluster_name(&mut self) -> Option<&str>;
    /// This workload's service `(name, namespace)`, for Istio `inbound|PORT||` clusters (node
    /// metadata `LABELS["service.istio.io/canonical-name"]` or `LABELS["app"]`, and `NAMESPACE`).
    /// The canonical name is the pod's, which is not always its Service's: only the fallback
    /// when the cluster's own metadata lists no Service.
    fn local_service(&mut self) -> Option<(String, String)>;
    /// The Services `(name, namespace)` Istio lists on the upstream cluster (cluster metadata
    /// `filter_metadata.istio.services`: on an inbound cluster, every Service of this workload
    /// on that port); `None` when there is no such list.
    fn cluster_services(&mut self) -> Option<Vec<(String, String)>>;
}

/// What kind of upstream a cluster name describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    /// A Service and the Service port: Istio's `outbound|PORT|SUBSET|HOST` (a sidecar's or a
    /// gateway's upstream) and an ambient waypoint's `inbound-vip|PORT|SUBSET|HOST`.
    Service,
    /// This workload, seen from its own sidecar's inbound side: `inbound|PORT||…` (the target
    /// port) and `InboundPassthroughCluster…` (a port the Service does not declare: none).
    Workload,
    /// Any other name: a plain Envoy cluster, matched by its name.
    Plain,
    /// An Istio-shaped name (`|`-separated) of a form not read here, such as a waypoint's
    /// `inbound-pod|…`: which destination it is cannot be told.
    Unreadable,
}

/// A destination as an upstream cluster name describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub name: String,
    pub namespace: Option<String>,
    pub port: Option<u32>,
    pub kind: ClusterKind,
}

/// A Kubernetes Service's host `NAME.NAMESPACE.svc.DOMAIN` as `(NAME, NAMESPACE)`; any other
/// host (a ServiceEntry's `api.example.com`) is its whole self with no namespace, so a selector
/// for the Service `api` in the namespace `example` never takes it.
fn service_host(host: &str) -> (String, Option<String>) {
    let mut labels = host.splitn(4, '.');
    match (labels.next(), labels.next(), labels.next()) {
        (Some(name), Some(namespace), Some("svc")) if !name.is_empty() && !namespace.is_empty() => {
            (name.to_owned(), Some(namespace.to_owned()))
        }
        _ => (host.to_owned(), None),
    }
}

/// `outbound|PORT|SUBSET|HOST`, `inbound-vip|PORT|SUBSET|HOST`, `inbound|PORT||…`, or a plain
/// Envoy cluster name (matched as the destination's name). On an Istio proxy (`istio`) also
/// `InboundPassthroughCluster…` (this workload, a port its Service does not declare), and every
/// other `|`-separated name and `PassthroughCluster` (a caller's request whose Host no route
/// knows, sent on to the address it was for: a Service's or a pod's) are
/// [`ClusterKind::Unreadable`]. A plain Envoy's names are its own: `|` in them (Open Service
/// Mesh's `NAMESPACE/SERVICE|PORT`) is just a character.
pub fn parse_cluster_name(cluster: &str, istio: bool) -> Destination {
    let parts: Vec<&str> = cluster.split('|').collect();
    let plain = || Destination {
        name: cluster.to_owned(),
        namespace: None,
        port: None,
        kind: ClusterKind::Plain,
    };
    let unreadable = || Destination {
        kind: ClusterKind::Unreadable,
        ..plain()
    };
    let workload = |port| Destination {
        name: String::new(),
        namespace: None,
        port,
        kind: ClusterKind::Workload,
    };
    match parts.as_slice() {
        [
            direction @ ("outbound" | "inbound-vip" | "inbound"),
            port,
            _subset,
            host,
        ] => match port.parse() {
            Ok(port) if *direction == "inbound" => workload(Some(port)),
            Ok(port) => {
                let (name, namespace) = service_host(host);
                Destination {
                    name,
                    namespace,
                    port: Some(port),
                    kind: ClusterKind::Service,
                }
            }
            Err(_) if istio => unreadable(),
            Err(_) => plain(),
        },
        _ if !istio => plain(),
        [_] if cluster.starts_with("InboundPassthroughCluster") => workload(None),
        [_] if cluster == "PassthroughCluster" => unreadable(),
        [_] => plain(),
        _ => unreadable(),
    }
}

pub fn route_selector_matches(sel: &RouteSelector, info: &mut dyn RouteInfo) -> bool {
    if !sel.labels.is_empty() {
        let Some(labels) = info.route_labels() else {
            return false;
        };
        if !sel.labels.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    if let Some(name) = &sel.name
        && info.route_name() != Some(name.as_str())
    {
        return false;
    }
    if let Some(ns) = &sel.namespace
        && info.route_namespace() != Some(ns.as_str())
    {
        return false;
    }
    true
}

pub fn destination_selector_matches(
    sel: &DestinationSelector,
    istio: bool,
    info: &mut dyn RouteInfo,
) -> bool {
    let everything = sel.name.is_none()
        && sel.namespace.is_none()
        && sel.port.is_none()
        && sel.labels.is_empty();
    if everything {
        return true;
    }
    if !sel.labels.is_empty() {
        // A proxy does not know its destinations' labels (the configuration refuses such a
        // selector; this only keeps the function total).
        return false;
    }
    let Some(cluster) = info.cluster_name() else {
        return false;
    };
    let dest = parse_cluster_name(cluster, istio);
    if sel.port.is_some_and(|p| dest.port != Some(p)) {
        return false;
    }
    let names = |name: &str, namespace: Option<&str>| names_service(sel, name, namespace);
    match dest.kind {
        ClusterKind::Service | ClusterKind::Plain => names(&dest.name, dest.namespace.as_deref()),
        // This workload: its Services as the cluster lists them, else the node metadata's.
        ClusterKind::Workload => match workload_services(info) {
            Some((services, _)) => services.iter().any(|(n, ns)| names(n, Some(ns))),
            None => false,
        },
        // Nothing can be told of it: see `cannot_evaluate`.
        ClusterKind::Unreadable => false,
    }
}

/// The selector's `name` and `namespace` (each when it has one) are the Service's.
fn names_service(sel: &DestinationSelector, name: &str, namespace: Option<&str>) -> bool {
    sel.name.as_ref().is_none_or(|n| n == name)
        && sel
            .namespace
            .as_ref()
            .is_none_or(|ns| namespace == Some(ns.as_str()))
}

/// This workload's Services, and whether they are the cluster's own list (`true`) or only the
/// node metadata's canonical name (`false`, which need not be its Service's name).
fn workload_services(info: &mut dyn RouteInfo) -> Option<(Vec<(String, String)>, bool)> {
    match info.cluster_services() {
        Some(list) if !list.is_empty() => Some((list, true)),
        _ => info.local_service().map(|one| (vec![one], false)),
    }
}

/// True when `policy` selects the request.
pub fn selects(policy: &Policy, istio: bool, info: &mut dyn RouteInfo) -> bool {
    let by_routes = |info: &mut dyn RouteInfo| match &policy.routes {
        Some(list) => list.iter().any(|s| route_selector_matches(s, info)),
        None => false,
    };
    let by_destinations = |info: &mut dyn RouteInfo| match &policy.destinations {
        Some(list) => list
            .iter()
            .any(|s| destination_selector_matches(s, istio, info)),
        None => false,
    };
    match (&policy.routes, &policy.destinations) {
        (None, None) => true,
        _ => by_routes(info) || by_destinations(info),
    }
}

/// A policy older than any that selects the request has a selector this proxy cannot evaluate
/// for it: whether that policy governs is unknown, so the request is refused (fail closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unevaluable {
    /// The policy's index.
    pub policy: usize,
    pub why: &'static str,
}

/// Why `policy`, which did not select the request, may have been meant to: a selector that
/// cannot match where the request is, whatever it says.
/// - On an Istio sidecar's inbound side (`inbound|PORT||`, `InboundPassthroughCluster`) the
///   routes are Istio's own (`default`), not the VirtualService's named ones; the cluster
///   carries the workload's target port (or none), not the Service port a destination `port`
///   names; and which Service this workload is comes from the node metadata, which may lack it.
/// - An Istio-shaped cluster name of a form not read here (a waypoint's `inbound-pod|…`) tells
///   no destination at all.
pub fn cannot_evaluate(
    policy: &Policy,
    istio: bool,
    info: &mut dyn RouteInfo,
) -> Option<&'static str> {
    let route_names = istio && policy.names_routes();
    let specific =
        |d: &&DestinationSelector| d.name.is_some() || d.namespace.is_some() || d.port.is_some();
    let destinations = policy.destinations.iter().flatten().any(|d| specific(&d));
    if !route_names && !destinations {
        return None;
    }
    let kind = parse_cluster_name(info.cluster_name()?, istio).kind;
    match kind {
        ClusterKind::Service | ClusterKind::Plain => None,
        ClusterKind::Unreadable if destinations => Some(
            "a destination selector on an upstream cluster that names no Service this filter can \
             read (Istio's outbound|, inbound|, inbound-vip| and InboundPassthroughCluster names \
             are read; PassthroughCluster and other forms are not)",
        ),
        ClusterKind::Unreadable => None,
        ClusterKind::Workload if route_names => Some(
            "a route selected by name on an Istio sidecar's inbound side, where Istio's routes \
             are its own (`default`): route names exist in the client's sidecar (WasmPlugin \
             match CLIENT) and in gateways",
        ),
        ClusterKind::Workload => {
            let Some((services, listed)) = workload_services(info) else {
                return Some(
                    "a destination selector on an Istio inbound cluster, but neither the \
                     cluster's metadata (istio.services) nor the node metadata (LABELS app or \
                     service.istio.io/canonical-name, and NAMESPACE) names this workload's Service",
                );
            };
            // A selector for this workload: its name among the Services (or none), its
            // namespace theirs (or none). A port selector for another workload was not meant
            // for this request whatever its port: only one for this workload is in doubt.
            let here = |d: &DestinationSelector| {
                services
                    .iter()
                    .any(|(name, namespace)| names_service(d, name, Some(namespace)))
            };
            let in_namespace = |d: &DestinationSelector| {
                d.namespace
                    .as_ref()
                    .is_none_or(|ns| services.iter().any(|(_, namespace)| ns == namespace))
            };
            let selectors = || policy.destinations.iter().flatten().filter(|d| specific(d));
            if selectors().any(|d| d.port.is_some() && here(d)) {
                Some(
                    "a destination port on an Istio inbound cluster, which carries the \
                     workload's target port (or none: a port the Service does not declare), not \
                     the Service port the policy names: select by name and namespace",
                )
            } else if !listed && selectors().any(|d| d.name.is_some() && in_namespace(d)) {
                // Only the pod's canonical name is known, and a Service of another name in its
                // namespace may be this workload's (a chart's `web-nginx` in front of pods
                // named `nginx`).
                Some(
                    "a destination selector naming a Service in this workload's namespace, but \
                     the inbound cluster lists no Services (istio.services) and the node \
                     metadata's canonical name need not be the Service's",
                )
            } else {
                None
            }
        }
    }
}

/// Which policies this instance runs on a request: the one it enforces and the dry-run one it
/// reports on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Governing {
    /// The oldest enforcing (not dry-run) policy that selects the request, when it is of this
    /// instance's phase.
    pub enforce: Option<usize>,
    /// The oldest dry-run policy that selects the request and is older than every enforcing
    /// one that does (the one that would govern were it enforced), when it is of this
    /// instance's phase. It never displaces the enforcing one: it is decided beside it, and
    /// only counted and logged (a shadow, as Istio's dry-run AuthorizationPolicy), and the
    /// claim headers it would write are removed from the request; with no enforcing policy its
    /// decision is the request's (it never denies).
    pub shadow: Option<usize>,
}

/// The index of the policy this instance enforces on the request, if any: the oldest enforcing
/// policy that selects it (`config.policies` is in age order) governs, whatever its phase or
/// priority; an instance serving one phase (`settings.phase`) enforces it only when it is of
/// that phase, so per-phase instances that see the same policies always agree on the governing
/// one.
pub fn governing(config: &Config, info: &mut dyn RouteInfo) -> Result<Option<usize>, Unevaluable> {
    Ok(governing_and_shadow(config, info)?.enforce)
}

/// [`Governing`]: the enforcing policy and the dry-run one of this instance for the request.
/// Both are decided in the instance of the enforcing policy's phase, whatever the dry run's
/// own (per-phase instances see the same policies, so they agree on that); a dry run decides
/// alone, in its own phase's instance, only when no enforcing policy selects the request.
pub fn governing_and_shadow(
    config: &Config,
    info: &mut dyn RouteInfo,
) -> Result<Governing, Unevaluable> {
    Ok(for_phase(config, selecting(config, info)?))
}

/// What of [`selecting`]'s answer this instance runs (see [`governing_and_shadow`]).
pub fn for_phase(config: &Config, who: Governing) -> Governing {
    let here = |i: usize| serves(config, i);
    match who {
        Governing {
            enforce: Some(e), ..
        } if here(e) => who,
        Governing {
            enforce: None,
            shadow: Some(s),
        } if here(s) => who,
        _ => Governing::default(),
    }
}

/// Whether this instance serves policy `i`'s phase (every phase with no `settings.phase`).
pub fn serves(config: &Config, i: usize) -> bool {
    config
        .policies
        .get(i)
        .is_some_and(|p| config.settings.phase.is_none_or(|phase| p.phase == phase))
}

/// [`Governing`] whatever the phases: the oldest enforcing policy that selects the request, and
/// the oldest dry-run one older than it. Two requests (or one request before and after its route
/// changed) are governed alike only when both are the same.
pub fn selecting(config: &Config, info: &mut dyn RouteInfo) -> Result<Governing, Unevaluable> {
    let enforce = oldest_selecting(config, info)?;
    let before = enforce.unwrap_or(config.policies.len());
    let shadow = config
        .policies
        .iter()
        .take(before)
        .position(|p| p.dry_run && selects(p, config.settings.istio, info));
    Ok(Governing { enforce, shadow })
}

/// What the policies do with a request, whatever the phases: who decides it ([`selecting`]) and
/// whose claim headers are removed besides ([`stripped`]). Two requests (or one before and after
/// its route changed) are treated alike only when both are the same.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub who: Governing,
    pub stripped: Vec<usize>,
}

/// [`Selection`] of the request.
pub fn selection(config: &Config, info: &mut dyn RouteInfo) -> Result<Selection, Unevaluable> {
    let who = selecting(config, info)?;
    let stripped = stripped(config, who, info);
    Ok(Selection { who, stripped })
}

/// The dry-run policies whose claim headers are never taken from the client on this request,
/// whatever the phases: every dry run older than the enforcing policy that selects it (every
/// dry run, with none) that selects the request or that this proxy cannot evaluate for it
/// ([`cannot_evaluate`]: whether it was meant for the request is unknown), except the one
/// deciding alone (its own decision removes them). Each would write its headers once enforced
/// (an older dry run would govern), so an upstream or an AuthorizationPolicy rolled out with it
/// may already read them. A dry run never denies: nothing else of these reaches the request.
/// Which instance removes them: [`strips_here`]. Empty (no allocation) without dry runs.
pub fn stripped(config: &Config, who: Governing, info: &mut dyn RouteInfo) -> Vec<usize> {
    let istio = config.settings.istio;
    let alone = who.enforce.is_none().then_some(who.shadow).flatten();
    let mut out = Vec::new();
    for (i, p) in config.policies.iter().enumerate() {
        if who.enforce.is_some_and(|e| i >= e) {
            break;
        }
        if p.dry_run
            && !p.spoofable_headers.is_empty()
            && alone != Some(i)
            && (selects(p, istio, info) || cannot_evaluate(p, istio, info).is_some())
        {
            out.push(i);
        }
    }
    out
}

/// Whether this instance is the one that removes the client's copies of dry run `d`'s claim
/// headers ([`stripped`]) first: the instance of the earlier of its phase and the deciding
/// policy's (the enforcing one, else the dry run deciding alone; preAuthz runs first), so that
/// they are gone before an AuthorizationPolicy between the phases reads them and no instance
/// removes a header an earlier one wrote; with no policy deciding, its own phase's. (The
/// deciding policy's instance removes them all again before its own sets: an earlier instance
/// leaves the headers the deciding policy reads its tokens from.)
pub fn strips_here(config: &Config, who: Governing, d: usize) -> bool {
    let phase = |i: usize| config.policies.get(i).map(|p| p.phase);
    let Some(own) = phase(d) else {
        return false;
    };
    let at = match who.enforce.or(who.shadow).and_then(phase) {
        Some(deciding) => own.min(deciding),
        None => own,
    };
    config.settings.phase.is_none_or(|here| here == at)
}

/// The index of the oldest enforcing policy that selects the request, whatever its phase: the
/// one that governs it in whichever instance serves that phase. Dry-run policies never govern
/// (see [`Governing::shadow`]), and whether one was meant to does not matter either.
pub fn oldest_selecting(
    config: &Config,
    info: &mut dyn RouteInfo,
) -> Result<Option<usize>, Unevaluable> {
    for (i, p) in config.policies.iter().enumerate() {
        if p.dry_run {
            continue;
        }
        if selects(p, config.settings.istio, info) {
            return Ok(Some(i));
        }
        if let Some(why) = cannot_evaluate(p, config.settings.istio, info) {
            return Err(Unevaluable { policy: i, why });
        }
    }
    Ok(None)
}

/// The Services Istio lists on a cluster: `(name, namespace)` of each entry of
/// `filter_metadata.istio.services` in the cluster's metadata as the host serializes it (an
/// `envoy.config.core.v3.Metadata` message: protobuf wire format). `None` when malformed or
/// when there is no such list. Bounded by the input: every length is checked, nesting is fixed.
pub fn decode_istio_services(metadata: &[u8]) -> Option<Vec<(String, String)>> {
    // Metadata.filter_metadata (1): map entries {key (1), Struct (2)}.
    let istio = map_entry(metadata, 1, "istio")??;
    // Struct.fields (1): map entries {key (1), Value (2)}.
    let services = map_entry(istio, 1, "services")??;
    // Value.list_value (6) → ListValue.values (1) → Value.struct_value (5) → Struct.fields.
    let list = field(services, 6)?.unwrap_or_default();
    let mut out = Vec::new();
    for item in fields(list)? {
        let (1, value) = item else { continue };
        let value = value?;
        // An entry that is not a Service with a name and a namespace makes the list unreadable
        // as a whole (a partial list would be taken for the workload's complete one).
        let entry = field(value, 5)??;
        let text = |key| -> Option<String> {
            // Value.string_value (3).
            let v = map_entry(entry, 1, key)??;
            String::from_utf8(field(v, 3)??.to_vec())
                .ok()
                .filter(|t| !t.is_empty())
        };
        out.push((text("name")?, text("namespace")?));
    }
    Some(out)
}

/// One protobuf field: its number, and its bytes when it is length-delimited.
type Field<'a> = (u64, Option<&'a [u8]>);

/// The protobuf fields of `msg` as `(number, Some(bytes))` for length-delimited ones and
/// `(number, None)` for others; `None` when malformed.
fn fields(mut msg: &[u8]) -> Option<Vec<Field<'_>>> {
    fn varint(b: &mut &[u8]) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = b.split_first()?;
            *b = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !msg.is_empty() {
        let tag = varint(&mut msg)?;
        let skip = match tag & 7 {
            0 => {
                varint(&mut msg)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = usize::try_from(varint(&mut msg)?).ok()?;
                let (bytes, rest) = (msg.get(..len)?, msg.get(len..)?);
                out.push((tag >> 3, Some(bytes)));
                msg = rest;
                continue;
            }
            _ => return None,
        };
        msg = msg.get(skip..)?;
        out.push((tag >> 3, None));
    }
    Some(out)
}

/// The length-delimited field `number` of `msg`, which must occur at most once (protobuf would
/// merge two occurrences of a message; Envoy never writes them, so they are refused, `None`).
fn field(msg: &[u8], number: u64) -> Option<Option<&[u8]>> {
    let mut found = None;
    for (n, b) in fields(msg)? {
        if n == number {
            if found.is_some() {
                return None;
            }
            found = Some(b?);
        }
    }
    Some(found)
}

/// The value (2) of the map entry (field `number`: {key (1), value (2)}) whose key is `key`.
fn map_entry<'a>(msg: &'a [u8], number: u64, key: &str) -> Option<Option<&'a [u8]>> {
    let mut found = None;
    for (n, entry) in fields(msg)? {
        let (true, Some(entry)) = (n == number, entry) else {
            continue;
        };
        if field(entry, 1)? == Some(key.as_bytes()) {
            found = Some(field(entry, 2)?.unwrap_or_default());
        }
    }
    Some(found)
}

/// Decodes a proxy-wasm pairs map (`u32` count, `u32` sizes, NUL-terminated keys and values),
/// as the host serializes a metadata struct; `None` when malformed. Non-UTF-8 entries are skipped.
pub fn decode_pairs(bytes: &[u8]) -> Option<BTreeMap<String, String>> {
    let u32_at = |i: usize| {
        bytes
            .get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .map(|v| v as usize)
    };
    let count = u32_at(0)?;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    let mut out = BTreeMap::new();
    for n in 0..count {
        let (klen, vlen) = (u32_at(4 + n * 8)?, u32_at(8 + n * 8)?);
        let key = bytes.get(data..data.checked_add(klen)?)?;
        data = data.checked_add(klen)?.checked_add(1)?;
        let value = bytes.get(data..data.checked_add(vlen)?)?;
        data = data.checked_add(vlen)?.checked_add(1)?;
        if let (Ok(k), Ok(v)) = (std::str::from_utf8(key), std::str::from_utf8(value)) {
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use serde_json::{Value, json};

    #[derive(Default)]
    struct Info {
        labels: Option<BTreeMap<String, String>>,
        namespace: Option<String>,
        name: Option<String>,
        cluster: Option<String>,
        local: Option<(String, String)>,
        services: Option<Vec<(String, String)>>,
        reads: Vec<&'static str>,
    }

    impl RouteInfo for Info {
        fn route_labels(&mut self) -> Option<&BTreeMap<String, String>> {
            self.reads.push("labels");
            self.labels.as_ref()
        }
        fn route_namespace(&mut self) -> Option<&str> {
            self.reads.push("namespace");
            self.namespace.as_deref()
        }
        fn route_name(&mut self) -> Option<&str> {
            self.reads.push("name");
            self.name.as_deref()
        }
        fn cluster_name(&mut self) -> Option<&str> {
            self.reads.push("cluster");
            self.cluster.as_deref()
        }
        fn local_service(&mut self) -> Option<(String, String)> {
            self.local.clone()
        }
        fn cluster_services(&mut self) -> Option<Vec<(String, String)>> {
            self.services.clone()
        }
    }

    fn labelled(pairs: &[(&str, &str)]) -> Info {
        Info {
            labels: Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Info::default()
        }
    }

    fn resource(name: &str, created: &str, spec_extra: Value) -> Value {
        let mut spec = json!({"config": {"providers": {"p": {"local": {"inline": crate::testkit::pem("ec256")}}}}});
        if let (Some(s), Value::Object(e)) = (spec.as_object_mut(), spec_extra) {
            s.extend(e);
        }
        json!({"kind": "JWTPolicy", "metadata": {"name": name, "creationTimestamp": created}, "spec": spec})
    }

    fn config_of(policies: Vec<Value>) -> Config {
        config::parse(json!({"policies": policies}).to_string().as_bytes()).unwrap()
    }

    fn at_cluster(cluster: &str, route: Option<&str>) -> Info {
        Info {
            cluster: Some(cluster.into()),
            name: route.map(str::to_owned),
            local: Some(("httpbin".into(), "httpbin".into())),
            ..Info::default()
        }
    }

    #[test]
    fn a_route_name_on_an_istio_inbound_side_or_a_port_on_an_inbound_cluster_refuses_the_request() {
        // Review 4: `render --istio`'s default SERVER plugin with the VirtualService route's
        // name, and a destination's Service port against the inbound cluster's target port,
        // selected nothing and let every request through.
        let named = || {
            resource(
                "named",
                "2024-01-01T00:00:00Z",
                json!({"applyToRoutes": [{"route": {"name": "httpbin-mesh"}}]}),
            )
        };
        let istio = |items: Vec<Value>| {
            config::parse_on(
                json!({"policies": items}).to_string().as_bytes(),
                config::Proxy::Istio,
            )
            .unwrap()
        };
        let c = istio(vec![named()]);
        let e = governing(&c, &mut at_cluster("inbound|8080||", Some("default"))).unwrap_err();
        assert_eq!(e.policy, 0);
        assert!(e.why.contains("inbound side"), "{}", e.why);
        // The client's sidecar, where the VirtualService's routes are: evaluated as before.
        let out = "outbound|8000||httpbin.httpbin.svc.cluster.local";
        assert_eq!(
            governing(&c, &mut at_cluster(out, Some("httpbin-mesh"))),
            Ok(Some(0))
        );
        assert_eq!(
            governing(&c, &mut at_cluster(out, Some("httpbin-default"))),
            Ok(None)
        );
        // A plain Envoy names its own routes, whatever its clusters are called.
        let plain = config_of(vec![named()]);
        assert_eq!(
            governing(&plain, &mut at_cluster("inbound|8080||", Some("default"))),
            Ok(None)
        );

        let port = resource(
            "port",
            "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": [{"selector": {"name": "httpbin", "namespace": "httpbin"},
                "port": {"number": 8000}}]}),
        );
        for c in [config_of(vec![port.clone()]), istio(vec![port.clone()])] {
            let e = governing(&c, &mut at_cluster("inbound|8080||", None)).unwrap_err();
            assert!(e.why.contains("target port"), "{}", e.why);
            assert_eq!(
                governing(&c, &mut at_cluster("inbound|8000||", None)),
                Ok(Some(0))
            );
            let other = "outbound|9000||httpbin.httpbin.svc.cluster.local";
            assert_eq!(governing(&c, &mut at_cluster(other, None)), Ok(None));
        }
        // A port policy for another workload (review 5): not in doubt here, whatever its port.
        let reviews = resource(
            "reviews",
            "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": [{"selector": {"name": "reviews", "namespace": "bookinfo"},
                "port": {"number": 9080}}]}),
        );
        let c = istio(vec![reviews]);
        assert_eq!(
            governing(&c, &mut at_cluster("inbound|8080||", None)),
            Ok(None)
        );
        // A dry-run policy never denies, evaluable or not (review 5).
        let mut rollout = named();
        rollout["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
        let c = istio(vec![rollout]);
        assert!(c.policies[0].dry_run);
        assert_eq!(
            governing(&c, &mut at_cluster("inbound|8080||", Some("default"))),
            Ok(None)
        );
        // Only a policy older than the one that selects matters.
        let all = resource("all", "2023-01-01T00:00:00Z", json!({}));
        let c = istio(vec![named(), all.clone()]);
        assert_eq!(
            governing(&c, &mut at_cluster("inbound|8080||", None)),
            Ok(Some(0))
        );
        assert_eq!(c.policies[0].name, "all");
        let younger_all = resource("all", "2025-01-01T00:00:00Z", json!({}));
        let c = istio(vec![named(), younger_all]);
        assert!(governing(&c, &mut at_cluster("inbound|8080||", None)).is_err());
    }

    #[test]
    fn a_waypoint_cluster_is_a_service_and_cluster_forms_not_read_refuse_the_request() {
        let httpbin = |port: Option<u32>| {
            let mut d = json!({"selector": {"name": "httpbin", "namespace": "httpbin"}});
            if let Some(p) = port {
                d["port"] = json!({"number": p});
            }
            istio_config(vec![resource(
                "httpbin",
                "2024-01-01T00:00:00Z",
                json!({"applyToDestinations": [d]}),
            )])
        };
        let (named, ported) = (httpbin(None), httpbin(Some(8000)));
        // An ambient waypoint's upstream: the Service and the Service port, as outbound.
        let vip = "inbound-vip|8000|http|httpbin.httpbin.svc.cluster.local";
        assert_eq!(governing(&ported, &mut at_cluster(vip, None)), Ok(Some(0)));
        let subset = "inbound-vip|8000|http/v1|httpbin.httpbin.svc.cluster.local";
        assert_eq!(
            governing(&ported, &mut at_cluster(subset, None)),
            Ok(Some(0))
        );
        let other_port = "inbound-vip|9000|http|httpbin.httpbin.svc.cluster.local";
        assert_eq!(
            governing(&ported, &mut at_cluster(other_port, None)),
            Ok(None)
        );
        let other = "inbound-vip|8000|http|reviews.bookinfo.svc.cluster.local";
        assert_eq!(governing(&named, &mut at_cluster(other, None)), Ok(None));
        // A form not read here tells no Service: a destination policy is in doubt (fail
        // closed); one for every destination still selects.
        for cluster in [
            "inbound-pod|8080||10.0.0.5",
            "outbound|http||httpbin.httpbin.svc.cluster.local",
            "a|b",
            "PassthroughCluster",
        ] {
            let e = governing(&named, &mut at_cluster(cluster, None)).unwrap_err();
            assert!(e.why.contains("names no Service"), "{cluster}: {}", e.why);
        }
        let everything = istio_config(vec![resource(
            "all",
            "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": [{}]}),
        )]);
        assert_eq!(
            governing(
                &everything,
                &mut at_cluster("inbound-pod|8080||10.0.0.5", None)
            ),
            Ok(Some(0))
        );
        // A ServiceEntry's host is no Service `api` in the namespace `example`.
        let api = istio_config(vec![resource(
            "api",
            "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": [{"selector": {"name": "api", "namespace": "example"}}]}),
        )]);
        assert_eq!(
            governing(&api, &mut at_cluster("outbound|443||api.example.com", None)),
            Ok(None)
        );
        assert_eq!(
            governing(
                &api,
                &mut at_cluster("outbound|443||api.example.svc.cluster.local", None)
            ),
            Ok(Some(0))
        );
        // A port the Service does not declare reaches the workload through the passthrough
        // cluster: this workload by name, and no port to compare.
        let pass = "InboundPassthroughClusterIpv4";
        assert_eq!(governing(&named, &mut at_cluster(pass, None)), Ok(Some(0)));
        let e = governing(&ported, &mut at_cluster(pass, None)).unwrap_err();
        assert!(e.why.contains("target port"), "{}", e.why);
        // No Service for this workload in the node metadata: a destination policy is in doubt.
        let mut bare = at_cluster("inbound|8080||", None);
        bare.local = None;
        let e = governing(&named, &mut bare).unwrap_err();
        assert!(e.why.contains("node metadata"), "{}", e.why);
    }

    fn governing_name(c: &Config, info: &mut Info) -> Option<String> {
        governing(c, info)
            .unwrap()
            .map(|i| c.policies[i].name.clone())
    }

    #[test]
    fn route_labels_select_and_omitted_selectors_select_everything() {
        let c = config_of(vec![resource(
            "labelled",
            "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [{"route": {"labels": {"route": "httpbin"}}}]}),
        )]);
        assert_eq!(
            governing_name(&c, &mut labelled(&[("route", "httpbin"), ("x", "y")])).as_deref(),
            Some("labelled")
        );
        assert_eq!(
            governing_name(&c, &mut labelled(&[("route", "other")])),
            None
        );
        assert_eq!(governing_name(&c, &mut Info::default()), None);
        let all = config_of(vec![resource("all", "2024-01-01T00:00:00Z", json!({}))]);
        assert_eq!(
            governing_name(&all, &mut Info::default()).as_deref(),
            Some("all")
        );
        let empty = config_of(vec![resource(
            "empty",
            "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [{}]}),
        )]);
        assert_eq!(
            governing_name(&empty, &mut Info::default()).as_deref(),
            Some("empty")
        );
        let none = config_of(vec![resource(
            "none",
            "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": []}),
        )]);
        assert_eq!(
            governing_name(&none, &mut Info::default()).as_deref(),
            Some("none")
        );
    }

    #[test]
    fn the_oldest_policy_governs_a_conflict() {
        let sel = json!({"applyToRoutes": [{"route": {"labels": {"route": "httpbin"}}}]});
        let c = config_of(vec![
            resource("newer", "2024-06-01T00:00:00Z", sel.clone()),
            resource("older", "2024-01-01T00:00:00Z", sel),
        ]);
        assert_eq!(
            governing_name(&c, &mut labelled(&[("route", "httpbin")])).as_deref(),
            Some("older")
        );
    }

    #[test]
    fn the_oldest_policy_governs_whatever_its_phase_and_priority() {
        let old = resource("old-strict", "2024-01-01T00:00:00Z", json!({}));
        let mut newer = resource("new-lenient", "2024-06-01T00:00:00Z", json!({}));
        newer["spec"]["config"]["phase"] = json!({"preAuthz": {"priority": -5}});
        newer["spec"]["config"]["validationPolicy"] = json!("ALLOW_MISSING_OR_FAILED");
        let c = config_of(vec![newer.clone(), old.clone()]);
        assert_eq!(
            governing_name(&c, &mut Info::default()).as_deref(),
            Some("old-strict"),
            "a newer policy with a lower priority never overrides an older one"
        );
        let mut post = resource("post", "2023-01-01T00:00:00Z", json!({}));
        post["spec"]["config"]["phase"] = json!({"postAuthz": {}});
        let c = config_of(vec![old.clone(), newer.clone(), post.clone()]);
        assert_eq!(
            governing_name(&c, &mut Info::default()).as_deref(),
            Some("post")
        );
        // Per-phase instances see every policy and agree on the governing one: only the
        // instance of its phase enforces it, the other enforces nothing.
        let instance = |phase: &str| {
            config::parse(
                json!({"policies": [old, newer, post], "settings": {"phase": phase}})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap()
        };
        assert_eq!(
            governing_name(&instance("postAuthz"), &mut Info::default()).as_deref(),
            Some("post")
        );
        assert_eq!(
            governing_name(&instance("preAuthz"), &mut Info::default()),
            None
        );
    }

    #[test]
    fn empty_selector_lists_are_omitted_ones() {
        let c = config_of(vec![resource(
            "dests-empty",
            "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": []}),
        )]);
        assert_eq!(
            governing_name(&c, &mut Info::default()).as_deref(),
            Some("dests-empty"),
            "`applyToDestinations: []` must not turn authentication off"
        );
        let c = config_of(vec![resource(
            "both-empty",
            "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [], "applyToDestinations": []}),
        )]);
        assert!(governing(&c, &mut Info::default()).unwrap().is_some());
        let c = config_of(vec![resource(
            "routes-empty",
            "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [], "applyToDestinations": [{"selector": {"name": "httpbin"}}]}),
        )]);
        let at = |cluster: &str| {
            governing(
                &c,
                &mut Info {
                    cluster: Some(cluster.into()),
                    ..Info::default()
                },
            )
            .unwrap()
            .is_some()
        };
        assert!(at("httpbin"));
        assert!(!at("other"), "the empty route list adds nothing");
    }

    #[test]
    fn selectors_a_proxy_cannot_evaluate_are_refused() {
        let dest = json!({"policies": [resource("d", "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": [{"selector": {"labels": {"app": "httpbin"}}}]}))]});
        let e = config::parse(dest.to_string().as_bytes()).unwrap_err();
        assert_eq!(
            e.path,
            "policies[0].spec.applyToDestinations[0].selector.labels"
        );
        let routes = json!({"policies": [resource("r", "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [{"route": {"labels": {"route": "httpbin"}}}]}))]});
        assert!(config::parse(routes.to_string().as_bytes()).is_ok());
        let e = config::parse_on(routes.to_string().as_bytes(), config::Proxy::Istio).unwrap_err();
        assert_eq!(e.path, "policies[0].spec.applyToRoutes[0].route.labels");
        assert!(e.reason.contains("by `name`"), "{}", e.reason);
        let ns = json!({"policies": [resource("n", "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [{"route": {"namespace": "httpbin"}}]}))]});
        assert!(config::parse_on(ns.to_string().as_bytes(), config::Proxy::Istio).is_err());
        let named = json!({"policies": [resource("n", "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [{"route": {"name": "httpbin-mesh"}}]}))]});
        assert!(config::parse_on(named.to_string().as_bytes(), config::Proxy::Istio).is_ok());
    }

    #[test]
    fn route_name_and_namespace() {
        let c = config_of(vec![resource(
            "named",
            "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [{"route": {"name": "httpbin-mesh", "namespace": "httpbin"}}]}),
        )]);
        let mut info = Info {
            name: Some("httpbin-mesh".into()),
            namespace: Some("httpbin".into()),
            ..Info::default()
        };
        assert!(governing(&c, &mut info).unwrap().is_some());
        info.namespace = Some("other".into());
        assert!(governing(&c, &mut info).unwrap().is_none());
    }

    #[test]
    fn destinations_match_istio_and_plain_cluster_names() {
        let c = config_of(vec![resource(
            "dest",
            "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": [{"selector": {"name": "httpbin", "namespace": "httpbin"}, "port": {"number": 8000}}]}),
        )]);
        let at = |cluster: &str| {
            governing(
                &c,
                &mut Info {
                    cluster: Some(cluster.into()),
                    local: Some(("httpbin".into(), "httpbin".into())),
                    ..Info::default()
                },
            )
            .unwrap()
            .is_some()
        };
        assert!(at("outbound|8000||httpbin.httpbin.svc.cluster.local"));
        assert!(at("outbound|8000|v1|httpbin.httpbin.svc.cluster.local"));
        assert!(!at("outbound|9000||httpbin.httpbin.svc.cluster.local"));
        assert!(!at("outbound|8000||httpbin.other.svc.cluster.local"));
        assert!(at("inbound|8000||"));
        assert!(!at("httpbin"), "a plain cluster has no namespace or port");
        let plain = config_of(vec![resource(
            "plain",
            "2024-01-01T00:00:00Z",
            json!({"applyToDestinations": [{"selector": {"name": "httpbin"}}]}),
        )]);
        assert!(
            governing(
                &plain,
                &mut Info {
                    cluster: Some("httpbin".into()),
                    ..Info::default()
                }
            )
            .unwrap()
            .is_some()
        );
        assert!(
            governing(
                &plain,
                &mut Info {
                    cluster: Some("echo".into()),
                    ..Info::default()
                }
            )
            .unwrap()
            .is_none()
        );
        assert_eq!(
            parse_cluster_name("outbound|80||a.b.svc.cluster.local", false),
            Destination {
                name: "a".into(),
                namespace: Some("b".into()),
                port: Some(80),
                kind: ClusterKind::Service,
            }
        );
    }

    #[test]
    fn only_needed_properties_are_read() {
        let c = config_of(vec![resource(
            "labelled",
            "2024-01-01T00:00:00Z",
            json!({"applyToRoutes": [{"route": {"labels": {"a": "b"}}}]}),
        )]);
        let mut info = labelled(&[("a", "b")]);
        governing(&c, &mut info).unwrap();
        assert_eq!(info.reads, vec!["labels"]);
        let all = config_of(vec![resource("all", "2024-01-01T00:00:00Z", json!({}))]);
        let mut info = labelled(&[("a", "b")]);
        assert_eq!(governing(&all, &mut info), Ok(Some(0)));
        assert!(info.reads.is_empty(), "{:?}", info.reads);
    }

    #[test]
    fn pairs_maps_decode_and_malformed_ones_do_not_panic() {
        let mut b = Vec::new();
        b.extend(2u32.to_le_bytes());
        for (k, v) in [("route", "httpbin"), ("tier", "gold")] {
            b.extend((k.len() as u32).to_le_bytes());
            b.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in [("route", "httpbin"), ("tier", "gold")] {
            b.extend(k.as_bytes());
            b.push(0);
            b.extend(v.as_bytes());
            b.push(0);
        }
        let m = decode_pairs(&b).unwrap();
        assert_eq!(m.get("route").map(String::as_str), Some("httpbin"));
        assert_eq!(m.len(), 2);
        for cut in 0..b.len() {
            let _ = decode_pairs(&b[..cut]);
        }
        assert_eq!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]), None);
    }

    /// What Envoy 1.40's `get_property(["xds", "cluster_metadata"])` gave for a cluster with
    /// `filter_metadata.istio.services` of two entries (`scripts`: the vm-bench `property` op).
    const ENVOY_CLUSTER_METADATA: &str = "0ac5010a05697374696f12bb010ab8010a08736572766963657312ab0132a8010a562a540a130a046e616d65120b1a097765622d6e67696e780a120a096e616d65737061636512051a037765620a290a04686f737412211a1f7765622d6e67696e782e7765622e7376632e636c75737465722e6c6f63616c0a4e2a4c0a250a04686f7374121d1a1b6f746865722e7765622e7376632e636c75737465722e6c6f63616c0a0f0a046e616d6512071a056f746865720a120a096e616d65737061636512051a03776562";

    fn unhex(h: &str) -> Vec<u8> {
        (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn istio_services_decode_from_the_cluster_metadata_envoy_gives() {
        let b = unhex(ENVOY_CLUSTER_METADATA);
        assert_eq!(
            decode_istio_services(&b),
            Some(vec![
                ("web-nginx".into(), "web".into()),
                ("other".into(), "web".into())
            ])
        );
        // No `istio` entry, or an empty message: no list.
        assert_eq!(decode_istio_services(&[]), None);
        // Every truncation and every one-byte change decodes or fails, never panics.
        for cut in 0..b.len() {
            let _ = decode_istio_services(&b[..cut]);
        }
        for i in 0..b.len() {
            for v in [0x00, 0x7f, 0x80, 0xff] {
                let mut m = b.clone();
                m[i] = v;
                let _ = decode_istio_services(&m);
            }
        }
    }

    #[test]
    fn the_inbound_clusters_own_service_list_decides_and_only_the_canonical_name_is_in_doubt() {
        let web = istio_config(vec![destination_policy(
            "web",
            "2024-01-01T00:00:00Z",
            json!({"selector": {"name": "web-nginx", "namespace": "web"}}),
            false,
        )]);
        let at = |services: Option<Vec<(&str, &str)>>| {
            let mut info = at_cluster("inbound|8080||", Some("default"));
            info.local = Some(("nginx".into(), "web".into()));
            info.services = services.map(|l| {
                l.into_iter()
                    .map(|(n, ns)| (n.to_owned(), ns.to_owned()))
                    .collect()
            });
            info
        };
        // The cluster lists the workload's Services: the policy's is one of them.
        let listed = Some(vec![("web-nginx", "web"), ("web-admin", "web")]);
        assert_eq!(governing(&web, &mut at(listed)), Ok(Some(0)));
        // It lists others only: not this policy's workload, not in doubt.
        assert_eq!(
            governing(&web, &mut at(Some(vec![("nginx", "web")]))),
            Ok(None)
        );
        // No list (or an empty one): the canonical name `nginx` may not be the Service's name.
        for none in [None, Some(vec![])] {
            let e = governing(&web, &mut at(none)).unwrap_err();
            assert!(e.why.contains("canonical name"), "{}", e.why);
        }
        // Another namespace's Service is not this workload's, whatever the list.
        let other = istio_config(vec![destination_policy(
            "other",
            "2024-01-01T00:00:00Z",
            json!({"selector": {"name": "web-nginx", "namespace": "shop"}}),
            false,
        )]);
        assert_eq!(governing(&other, &mut at(None)), Ok(None));
    }

    #[test]
    fn a_dry_run_policy_never_displaces_an_enforcing_one() {
        let all = |name: &str, created: &str, dry: bool| {
            let mut r = resource(name, created, json!({}));
            if dry {
                r["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
            }
            r
        };
        let who = |policies: Vec<Value>| {
            let c = config_of(policies);
            let g = governing_and_shadow(&c, &mut Info::default()).unwrap();
            let name = |i: Option<usize>| i.map(|i| c.policies[i].name.clone());
            (name(g.enforce), name(g.shadow))
        };
        let (old_dry, young) = (
            all("rollout", "2023-01-01T00:00:00Z", true),
            all("enforced", "2024-01-01T00:00:00Z", false),
        );
        // The older dry run is decided beside the enforcing policy, which governs.
        assert_eq!(
            who(vec![young.clone(), old_dry.clone()]),
            (Some("enforced".into()), Some("rollout".into()))
        );
        // Alone, it decides (and never denies).
        assert_eq!(who(vec![old_dry]), (None, Some("rollout".into())));
        // A younger dry run would never govern once enforced: not decided at all.
        let young_dry = all("later", "2025-01-01T00:00:00Z", true);
        assert_eq!(
            who(vec![young.clone(), young_dry]),
            (Some("enforced".into()), None)
        );
    }

    #[test]
    fn dry_runs_older_than_the_enforcing_policy_that_select_or_are_in_doubt_are_stripped() {
        // On an Istio sidecar's inbound side: a route-name selector cannot be evaluated.
        let named = |name: &str, created: &str, dry: bool, headers: bool, route: Value| {
            let mut config =
                json!({"providers": {"p": {"local": {"inline": crate::testkit::pem("ec256")}}}});
            if headers {
                config["providers"]["p"]["claimsToHeaders"] =
                    json!([{"claim": "sub", "header": "x-sub"}]);
            }
            let mut r = resource(
                name,
                created,
                json!({"applyToRoutes": [route], "config": config}),
            );
            if dry {
                r["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
            }
            r
        };
        let checkout = json!({"route": {"name": "checkout"}});
        let every = json!({});
        let c = istio_config(vec![
            named(
                "rollout",
                "2024-01-01T00:00:00Z",
                true,
                true,
                checkout.clone(),
            ),
            named(
                "quiet",
                "2024-02-01T00:00:00Z",
                true,
                false,
                checkout.clone(),
            ),
            named("second", "2024-03-01T00:00:00Z", true, true, every.clone()),
            resource("all", "2024-06-01T00:00:00Z", json!({})),
            named("later", "2025-01-01T00:00:00Z", true, true, checkout),
        ]);
        let inbound = || at_cluster("inbound|8080||", Some("default"));
        let who = governing_and_shadow(&c, &mut inbound()).unwrap();
        assert_eq!((who.enforce, who.shadow), (Some(3), Some(2)));
        // `rollout` is older and in doubt; `second` selects (the shadow); `quiet` writes
        // nothing; `later` is younger than the enforcing policy (it would never govern).
        assert_eq!(stripped(&c, who, &mut inbound()), vec![0, 2]);
        // With no enforcing policy, every dry run but the one deciding alone.
        let alone = Governing {
            enforce: None,
            shadow: Some(2),
        };
        assert_eq!(stripped(&c, alone, &mut inbound()), vec![0, 4]);
        // Where route names are Istio's (outbound side), only the selecting ones.
        let outbound = || {
            at_cluster(
                "outbound|80||checkout.shop.svc.cluster.local",
                Some("checkout"),
            )
        };
        assert_eq!(stripped(&c, who, &mut outbound()), vec![0, 2]);
        let elsewhere = || at_cluster("outbound|80||other.shop.svc.cluster.local", Some("other"));
        assert_eq!(stripped(&c, who, &mut elsewhere()), vec![2]);
        // With one enforcing policy nothing is read beyond its own selection.
        let one = config_of(vec![resource("all", "2024-06-01T00:00:00Z", json!({}))]);
        let mut info = inbound();
        let who = Governing {
            enforce: Some(0),
            shadow: None,
        };
        assert!(stripped(&one, who, &mut info).is_empty());
        assert!(info.reads.is_empty());
    }

    #[test]
    fn a_dry_runs_headers_are_stripped_in_the_earlier_of_its_phase_and_the_deciding_ones() {
        let phased = |phase: &str, dry: bool, created: &str| {
            let mut r = resource(
                if dry { "dry" } else { "enforced" },
                created,
                json!({"config": {"phase": {phase: {}}, "providers": {"p": {
                    "local": {"inline": crate::testkit::pem("ec256")}}}}}),
            );
            if dry {
                r["metadata"]["annotations"] = json!({"jwt-policy/dry-run": "true"});
            }
            r
        };
        let instance = |policies: Vec<Value>, phase: &str| {
            config::parse(
                json!({"policies": policies, "settings": {"phase": phase}})
                    .to_string()
                    .as_bytes(),
            )
            .unwrap()
        };
        let who = Governing {
            enforce: Some(1),
            shadow: Some(0),
        };
        for (dry, enforced, at) in [
            ("preAuthz", "postAuthz", "preAuthz"),
            ("postAuthz", "preAuthz", "preAuthz"),
            ("postAuthz", "postAuthz", "postAuthz"),
        ] {
            let policies = vec![
                phased(dry, true, "2024-01-01T00:00:00Z"),
                phased(enforced, false, "2024-02-01T00:00:00Z"),
            ];
            // (An instance of a phase no policy has is refused.)
            for here in [dry, enforced] {
                let c = instance(policies.clone(), here);
                assert_eq!(
                    strips_here(&c, who, 0),
                    here == at,
                    "{dry} {enforced} in {here}"
                );
            }
        }
        // No policy deciding: the dry run's own phase.
        let policies = vec![
            phased("postAuthz", true, "2024-01-01T00:00:00Z"),
            phased("preAuthz", false, "2024-02-01T00:00:00Z"),
        ];
        let none = Governing::default();
        assert!(!strips_here(
            &instance(policies.clone(), "preAuthz"),
            none,
            0
        ));
        assert!(strips_here(&instance(policies, "postAuthz"), none, 0));
    }

    // ---- review 6 ----

    fn istio_config(policies: Vec<Value>) -> Config {
        config::parse_on(
            json!({"policies": policies}).to_string().as_bytes(),
            config::Proxy::Istio,
        )
        .unwrap()
    }

    fn destination_policy(name: &str, created: &str, dest: Value, lenient: bool) -> Value {
        let mut config =
            json!({"providers": {"p": {"local": {"inline": crate::testkit::pem("ec256")}}}});
        if lenient {
            config["validationPolicy"] = json!("ALLOW_MISSING_OR_FAILED");
        }
        resource(
            name,
            created,
            json!({"applyToDestinations": [dest], "config": config}),
        )
    }

    /// Review 6, finding 1. In a caller's sidecar (WasmPlugin match CLIENT) a request whose
    /// Host matches no virtual host of the port's route configuration takes Istio's `allow_any`
    /// route to `PassthroughCluster` (outboundTrafficPolicy ALLOW_ANY, the default), and goes
    /// to the original destination: the Service's ClusterIP, or a pod IP. The cluster name
    /// tells no Service, yet it is read as a plain name, so a destination policy for httpbin
    /// does not govern it and it passes untouched, client claim headers kept.
    #[test]
    fn review6_passthrough_cluster_on_istio_is_not_a_plain_destination() {
        let c = istio_config(vec![destination_policy(
            "httpbin",
            "2024-01-01T00:00:00Z",
            json!({"selector": {"name": "httpbin", "namespace": "httpbin"}}),
            false,
        )]);
        let mut info = at_cluster("PassthroughCluster", Some("allow_any"));
        let g = governing(&c, &mut info);
        assert_ne!(
            g,
            Ok(None),
            "a request that may be for httpbin passed untouched"
        );
    }

    /// Review 6, finding 2. On a sidecar's inbound side the workload's "Service" is its pod's
    /// `service.istio.io/canonical-name` (injected from `app.kubernetes.io/name`, `app`, or
    /// the Deployment's name), not the Kubernetes Service's name. A chart's Service
    /// `web-nginx` in front of pods labelled `app.kubernetes.io/name: nginx`, and a policy
    /// naming the Service (as it must for the callers' outbound clusters): every request into
    /// the workload passes untouched, no 500.
    #[test]
    fn review6_inbound_service_name_is_not_the_canonical_name() {
        let c = istio_config(vec![destination_policy(
            "web",
            "2024-01-01T00:00:00Z",
            json!({"selector": {"name": "web-nginx", "namespace": "web"}}),
            false,
        )]);
        // The callers' side: governed.
        let out = "outbound|80||web-nginx.web.svc.cluster.local";
        assert_eq!(governing(&c, &mut at_cluster(out, None)), Ok(Some(0)));
        // The workload's own inbound side (same namespace, another name): untouched.
        let mut info = at_cluster("inbound|8080||", Some("default"));
        info.local = Some(("nginx".into(), "web".into()));
        assert_ne!(
            governing(&c, &mut info),
            Ok(None),
            "a request into the Service web-nginx passed untouched on its own sidecar"
        );
    }

    /// Review 6, finding 3. `port.name`, `selector.cluster` and `selector.workspace` were
    /// accepted and ignored ("ignoring them only widens what is governed"), but widening an
    /// OLDER policy makes it govern requests a younger, stricter policy was meant to govern
    /// (only the oldest applies): here the older, lenient policy for httpbin's `metrics` port
    /// only, read as "all of httpbin", took the `http` port from the strict one. Now each is
    /// refused with its path, on every proxy (a route's `cluster`/`workspace` too).
    #[test]
    fn review6_ignored_selector_fields_widen_an_older_lenient_policy_over_a_strict_one() {
        for (narrowing, path) in [
            (
                json!({"selector": {"name": "httpbin", "namespace": "httpbin"}, "port": {"name": "metrics"}}),
                "port.name",
            ),
            (
                json!({"selector": {"name": "httpbin", "namespace": "httpbin", "cluster": "other-cluster"}}),
                "selector.cluster",
            ),
            (
                json!({"selector": {"name": "httpbin", "namespace": "httpbin", "workspace": "other-ws"}}),
                "selector.workspace",
            ),
        ] {
            let policies = vec![
                destination_policy("metrics", "2023-01-01T00:00:00Z", narrowing.clone(), true),
                destination_policy(
                    "strict",
                    "2024-01-01T00:00:00Z",
                    json!({"selector": {"name": "httpbin", "namespace": "httpbin"}}),
                    false,
                ),
            ];
            for proxy in [config::Proxy::Istio, config::Proxy::Envoy] {
                let e =
                    config::parse_on(json!({"policies": policies}).to_string().as_bytes(), proxy)
                        .unwrap_err();
                assert_eq!(
                    e.path,
                    format!("policies[0].spec.applyToDestinations[0].{path}")
                );
            }
        }
        for key in ["cluster", "workspace"] {
            let route = resource(
                "r",
                "2023-01-01T00:00:00Z",
                json!({"applyToRoutes": [{"route": {"name": "a", key: "x"}}]}),
            );
            let e = config::parse_on(
                json!({"policies": [route]}).to_string().as_bytes(),
                config::Proxy::Envoy,
            )
            .unwrap_err();
            assert_eq!(
                e.path,
                format!("policies[0].spec.applyToRoutes[0].route.{key}")
            );
        }
    }

    /// Review 6, finding 4 (wrong refusal). On a plain Envoy, a cluster whose name holds `|`
    /// (Open Service Mesh names them `NAMESPACE/SERVICE|PORT`) used to be matched by name; it
    /// is now "unreadable": a policy naming it exactly no longer selects it, and every request
    /// to it gets a 500.
    #[test]
    fn review6_plain_envoy_cluster_names_with_a_bar_still_select_by_name() {
        let cluster = "bookstore/bookstore-v1|14001";
        let c = config_of(vec![destination_policy(
            "osm",
            "2024-01-01T00:00:00Z",
            json!({"selector": {"name": cluster}}),
            false,
        )]);
        assert_eq!(governing(&c, &mut at_cluster(cluster, None)), Ok(Some(0)));
    }

    /// Review 6, finding 7 (minor). Kubernetes Service and namespace names are lower-case DNS
    /// labels and Istio's cluster names carry them so; a selector written `HttpBin` can never
    /// match one, and the configuration loads: the policy silently selects nothing.
    #[test]
    fn review6_a_destination_name_no_istio_cluster_can_carry_is_refused() {
        let policy = destination_policy(
            "upper",
            "2024-01-01T00:00:00Z",
            json!({"selector": {"name": "HttpBin", "namespace": "httpbin"}}),
            false,
        );
        let loaded = config::parse_on(
            json!({"policies": [policy]}).to_string().as_bytes(),
            config::Proxy::Istio,
        );
        if let Ok(c) = loaded {
            let out = "outbound|8000||httpbin.httpbin.svc.cluster.local";
            assert_ne!(
                governing(&c, &mut at_cluster(out, None)),
                Ok(None),
                "loaded, and selects nothing"
            );
        }
    }

    // ---- review 7 ----

    fn pb_varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// A length-delimited field.
    fn ld(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        pb_varint(number << 3 | 2, &mut out);
        pb_varint(bytes.len() as u64, &mut out);
        out.extend_from_slice(bytes);
        out
    }

    /// A `Struct.fields` / `Metadata.filter_metadata` map entry.
    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        ld(1, &[ld(1, key.as_bytes()), ld(2, value)].concat())
    }

    /// `Value{struct_value: {name, namespace}}` (either left out when `None`), raw bytes.
    fn service(name: Option<&[u8]>, namespace: Option<&[u8]>) -> Vec<u8> {
        let mut fields = Vec::new();
        for (k, v) in [("name", name), ("namespace", namespace)] {
            if let Some(v) = v {
                fields.extend(entry(k, &ld(3, v)));
            }
        }
        ld(5, &fields)
    }

    /// `Metadata{filter_metadata: {istio: {services: Value{list_value: ...}}}}` with the
    /// `list_value` field given whole (one or more occurrences).
    fn metadata(list_value_fields: &[u8]) -> Vec<u8> {
        entry("istio", &entry("services", list_value_fields))
    }

    /// Review 7, finding 4 (low: control-plane input, and Envoy serializes canonically). A
    /// singular embedded message that occurs twice is MERGED by protobuf (its repeated
    /// `values` concatenate), not replaced: `field` kept only the last occurrence, so the
    /// first Service was lost, and the list still counted as the workload's own: a policy
    /// naming that Service did not govern and was not in doubt (passed untouched). Now refused.
    #[test]
    fn review7_a_split_list_value_is_merged_as_protobuf_does() {
        let a = ld(6, &ld(1, &service(Some(b"web-nginx"), Some(b"web"))));
        let b = ld(6, &ld(1, &service(Some(b"other"), Some(b"web"))));
        let got = decode_istio_services(&metadata(&[a, b].concat()));
        // Refused rather than merged (Envoy never writes it): no list, so the canonical-name
        // fallback and its 500s apply.
        assert_eq!(got, None);
    }

    /// Review 7, finding 5 (low). An entry the decoder cannot read (no namespace, a name that
    /// is not UTF-8) is skipped, and the rest still counts as the workload's complete list: a
    /// selector for the skipped Service is neither matched nor in doubt. Fail closed: a list
    /// with an unreadable entry is no list (then the canonical-name fallback and its 500s).
    #[test]
    fn review7_an_unreadable_service_entry_does_not_leave_an_authoritative_partial_list() {
        for bad in [
            service(Some(b"web-nginx"), None),
            service(Some(b"web-\xffnginx"), Some(b"web")),
            service(None, Some(b"web")),
        ] {
            let list = ld(
                6,
                &[ld(1, &bad), ld(1, &service(Some(b"other"), Some(b"web")))].concat(),
            );
            let got = decode_istio_services(&metadata(&list));
            assert!(
                got.as_ref().is_none_or(|l| l.is_empty()),
                "a partial list taken as the workload's Services: {got:?}"
            );
        }
    }

    /// Held: random nestings of valid and broken fields never panic or hang.
    #[test]
    fn review7_decoder_random_inputs_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let base = metadata(&ld(6, &ld(1, &service(Some(b"a"), Some(b"b")))));
        for _ in 0..200_000 {
            let mut m = base.clone();
            for _ in 0..(rnd() % 4 + 1) {
                let i = (rnd() as usize) % (m.len() + 1);
                match rnd() % 4 {
                    0 if i < m.len() => m[i] = rnd() as u8,
                    1 => m.insert(i, rnd() as u8),
                    2 if i < m.len() => {
                        m.remove(i);
                    }
                    _ => {
                        let wrapped = ld(rnd() % 8, &m[i..]);
                        m.truncate(i);
                        m.extend(wrapped);
                    }
                }
            }
            let _ = decode_istio_services(&m);
        }
        // Huge lengths and over-long varints.
        let _ = decode_istio_services(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        let _ = decode_istio_services(&[0x08; 64]);
        let _ = decode_istio_services(&[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ]);
    }
}
