//! Route and destination selectors (`applyToRoutes`, `applyToDestinations`): what one proxy
//! can see of them, and what it cannot (refused rather than ignored).

use serde_json::Value;

use super::{Obj, Proxy, Result, as_u64, child, err};
use crate::policy::*;

/// Gloo fields that scope a selector to what one proxy cannot see (the multi-cluster `cluster`
/// and `workspace`, a port's `name`): ignored, they would widen the selector, and a widened
/// older policy governs requests meant for a younger one (only the oldest applies; review 6).
fn refuse_unseeable(o: &Obj<'_>, path: &str, keys: &[&str]) -> Result<()> {
    for key in keys {
        if o.string(key)?.is_some_and(|v| !v.is_empty()) {
            return err(
                &child(path, key),
                format!(
                    "a proxy cannot see a selector's `{key}`: ignored, it would widen this \
                     selector (and an older policy widened governs requests meant for a younger \
                     one); remove it, and give this proxy only the policies meant for it"
                ),
            );
        }
    }
    Ok(())
}

/// A Kubernetes name Istio puts in cluster names (an RFC 1123 label: lower case, digits, `-`,
/// at most 63 characters); any other can never match one there.
fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first() != Some(&b'-')
        && b.last() != Some(&b'-')
}

pub(super) fn parse_route_selector(v: &Value, path: &str, proxy: Proxy) -> Result<RouteSelector> {
    let o = Obj::new(v, path, &["route"])?;
    let Some((r, rp)) = o.get("route") else {
        return Ok(RouteSelector::default());
    };
    let r = Obj::new(
        r,
        &rp,
        &["labels", "name", "namespace", "cluster", "workspace"],
    )?;
    refuse_unseeable(&r, &rp, &["cluster", "workspace"])?;
    let selector = RouteSelector {
        labels: r.string_map("labels")?,
        name: r.string("name")?,
        namespace: r.string("namespace")?,
    };
    if proxy == Proxy::Istio {
        for (key, set) in [
            ("labels", !selector.labels.is_empty()),
            ("namespace", selector.namespace.is_some()),
        ] {
            if set {
                return err(
                    &child(&rp, key),
                    format!(
                        "Istio carries no route {key} into Envoy, so this selector would select \
                         nothing and leave the route unauthenticated: select the VirtualService \
                         http route by `name` instead"
                    ),
                );
            }
        }
    }
    Ok(selector)
}

pub(super) fn parse_destination_selector(
    v: &Value,
    path: &str,
    proxy: Proxy,
) -> Result<DestinationSelector> {
    let o = Obj::new(v, path, &["kind", "selector", "port"])?;
    match o.string("kind")?.as_deref() {
        None | Some("SERVICE") => {}
        // Their names are not in the cluster name the proxy sees (an external service's host,
        // a virtual destination's global hostname): matched as Services they would select
        // nothing, silently (review 4).
        Some(kind @ ("VIRTUAL_DESTINATION" | "EXTERNAL_SERVICE")) => {
            return err(
                &child(path, "kind"),
                format!(
                    "{kind}: a proxy cannot tell such a destination from its upstream cluster, so \
                     this selector would select nothing and leave it unauthenticated: select the \
                     route (applyToRoutes) or the Service (kind SERVICE) instead"
                ),
            );
        }
        Some(_) => {
            return err(
                &child(path, "kind"),
                "expected SERVICE (VIRTUAL_DESTINATION and EXTERNAL_SERVICE cannot be evaluated)",
            );
        }
    }
    let mut d = DestinationSelector::default();
    if let Some((s, sp)) = o.get("selector") {
        let s = Obj::new(
            s,
            &sp,
            &["name", "namespace", "labels", "cluster", "workspace"],
        )?;
        refuse_unseeable(&s, &sp, &["cluster", "workspace"])?;
        d.name = s.string("name")?;
        d.namespace = s.string("namespace")?;
        if proxy == Proxy::Istio {
            for (key, value) in [("name", &d.name), ("namespace", &d.namespace)] {
                if value.as_deref().is_some_and(|v| !is_dns_label(v)) {
                    return err(
                        &child(&sp, key),
                        "not a Kubernetes name (lower case letters, digits and `-`, at most 63): \
                         Istio's cluster names carry only those, so this selector would select \
                         nothing and leave the destination unauthenticated",
                    );
                }
            }
        }
        d.labels = s.string_map("labels")?;
        if !d.labels.is_empty() {
            return err(
                &child(&sp, "labels"),
                "a proxy cannot see its destinations' labels, so this selector would select \
                 nothing and leave the destination unauthenticated: select by `name` and \
                 `namespace` instead",
            );
        }
    }
    if let Some((p, pp)) = o.get("port") {
        let p = Obj::new(p, &pp, &["number", "name"])?;
        refuse_unseeable(&p, &pp, &["name"])?;
        d.port = p
            .get("number")
            .map(|(v, p)| {
                as_u64(v, &p).and_then(|n| {
                    u32::try_from(n)
                        .ok()
                        .filter(|n| *n <= 65535)
                        .ok_or(())
                        .or_else(|()| err(&p, "not a port number"))
                })
            })
            .transpose()?;
    }
    Ok(d)
}
