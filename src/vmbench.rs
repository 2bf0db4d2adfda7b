//! `make vm-bench` (`--features vmbench`, never the product's build): instead of the filter, a
//! root context that, when configured, times the signature check of each fixture token inside
//! the engine that runs the filter: Envoy's own V8, not Node's (their versions differ, and so
//! does the code their compilers make of the field arithmetic). Configuration: `{"runs":
//! {"RS256": 4000, "ES256": 2000, "p256-mul": 100000, ...}, "rounds": 5}` (`p256-mul`, `-sqr`,
//! `-add`, `-sub`, `-inv`: one P-256 field operation; `miss-RS256` etc.: the core's whole
//! decision for a token not seen before; `hit-RS256`: for a cached one); one log line per algorithm with the
//! median over the rounds: `VMBENCH <alg> median <value> …`.
//!
//! It also answers every request itself, after timing in that request's context the host call
//! named by its `x-bench-op` header `x-bench-n` times (`headers`: read the whole request header
//! map; `add-remove`: add a header and remove it again; `remove-absent`: remove a header the
//! request does not carry; `clear-route-cache`: the foreign function; `time`: read the clock;
//! `metric`: increment a counter; `route-labels`, `route-name`: read those properties; `none`:
//! nothing), the answer's body `ns per call`; or, for `x-bench-op: property`, the bytes of the
//! property named by `x-bench-path` (dot-separated, e.g. `xds.cluster_metadata`) in hex: what
//! the host hands the module, so a new property read is written against real bytes.

use std::collections::BTreeMap;

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType, MetricType};

use crate::config;
use crate::policy::KeySource;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Bench) });
}}

struct Bench;

impl Context for Bench {}

const FIXTURES: &str = include_str!("../tests/fixtures/tokens.json");

fn fixture_key(alg: &str) -> &'static str {
    match alg {
        "ES256" => "ec256",
        "ES384" => "ec384",
        "ES512" => "ec521",
        "EdDSA" => "ed25519",
        _ => "rsa",
    }
}

impl Bench {
    /// Nanoseconds per P-256 field operation (`mul`, `sqr`, `add`, `sub`, `inv_plain` mod n),
    /// each `runs` times in a dependent chain.
    fn field(&self, op: &str, runs: usize) -> Result<f64, String> {
        use crate::crypto::ec::{curves, field};
        let c = curves::p256().ok_or("no curve")?;
        let (f, n) = (&c.fp, &c.fnn);
        let mut a = c.g.x;
        let b = c.g.y;
        let t0 = self.get_current_time();
        for _ in 0..runs {
            a = match op {
                "mul" => f.mul(&a, &b),
                "sqr" => f.sqr(&a),
                "add" => f.add(&a, &b),
                "sub" => f.sub(&a, &b),
                _ => n
                    .inv_plain(&field::add_plain(&field::small(1), &n.sub(&a, &b)))
                    .unwrap_or(a),
            };
        }
        let elapsed = self
            .get_current_time()
            .duration_since(t0)
            .unwrap_or_default();
        if a == b {
            return Err("unlikely".into());
        }
        Ok(elapsed.as_secs_f64() * 1e9 / runs.max(1) as f64)
    }

    /// Microseconds per verification of the fixture token `alg`, or why not.
    fn time(&self, fixtures: &serde_json::Value, alg: &str, runs: usize) -> Result<f64, String> {
        if let Some(op) = alg.strip_prefix("p256-") {
            return self.field(op, runs);
        }
        // `miss-ALG`: a cache of no entries; `hit-ALG`: the token cached by the warm-up.
        let (whole, alg) = match (alg.strip_prefix("miss-"), alg.strip_prefix("hit-")) {
            (Some(a), _) => (Some(0), a),
            (_, Some(a)) => (Some(16), a),
            _ => (None, alg),
        };
        let pem = fixtures
            .pointer(&format!("/keys/{}/pem", fixture_key(alg)))
            .and_then(serde_json::Value::as_str)
            .ok_or("no fixture key")?;
        let token = fixtures
            .pointer(&format!("/tokens/{alg}/token"))
            .and_then(serde_json::Value::as_str)
            .ok_or("no fixture token")?;
        let spec = serde_json::json!({"config": {"providers": {"p": {"local": {"inline": pem},
            "claimsToHeaders": [{"claim": "sub", "header": "x-sub"}]}}}});
        let mut cfg = config::parse(spec.to_string().as_bytes()).map_err(|e| format!("{e:?}"))?;
        let policy = cfg.policies.pop().ok_or("no policy")?;
        let Some(KeySource::Local(jwks)) = policy.providers.first().map(|p| &p.keys) else {
            return Err("no local keys".into());
        };
        if let Some(capacity) = whole {
            return self.whole_decision(&policy, jwks, token, runs, capacity);
        }
        let jwt = crate::jwt::parse(token).map_err(|e| format!("{e:?}"))?;
        self.timed(runs, || crate::verify::verify_signature(&jwt, jwks).is_ok())
    }

    /// µs per call of `once` over `runs` calls after 20 of warm-up (the key's tables, the
    /// curve's `G` tables, the tier-up), or an error unless every call succeeded.
    fn timed(&self, runs: usize, mut once: impl FnMut() -> bool) -> Result<f64, String> {
        for _ in 0..20 {
            once();
        }
        let t0 = self.get_current_time();
        let ok = (0..runs).filter(|_| once()).count();
        let elapsed = self
            .get_current_time()
            .duration_since(t0)
            .unwrap_or_default();
        if ok != runs {
            return Err(format!("{ok}/{runs} succeeded"));
        }
        Ok(elapsed.as_secs_f64() * 1e6 / runs.max(1) as f64)
    }
}

impl Bench {
    /// `miss-ALG`: the core's whole decision for a token it has not seen (a cache of zero
    /// entries: extraction, parsing, SHA, the signature, the claims, the header changes);
    /// `hit-ALG` (`capacity` > 0): for the token the warm-up cached (extraction, the cache
    /// lookup, the claims, the header changes). µs per request.
    fn whole_decision(
        &self,
        policy: &crate::policy::Policy,
        jwks: &crate::jwks::Jwks,
        token: &str,
        runs: usize,
        capacity: usize,
    ) -> Result<f64, String> {
        use crate::authn::{Decision, Keys, RequestView, decide};
        let headers = vec![
            (":method".to_string(), b"GET".to_vec()),
            (":path".to_string(), b"/get".to_vec()),
            (":authority".to_string(), b"api.example".to_vec()),
            (
                "authorization".to_string(),
                format!("Bearer {token}").into_bytes(),
            ),
            ("user-agent".to_string(), b"wrk".to_vec()),
        ];
        let keys = |_: usize| Keys::local(jwks);
        let mut cache = crate::jwt_cache::TokenCache::new(capacity, usize::MAX);
        let view = RequestView { headers: &headers };
        self.timed(runs, || {
            matches!(
                decide(policy, &view, 1_800_000_000, &keys, &mut cache),
                Decision::Allow { .. }
            )
        })
    }
}

struct HostcallTimer;

fn property_len(path: &[&str]) -> usize {
    hostcalls::get_property(path.to_vec())
        .ok()
        .flatten()
        .map_or(0, |v| v.len())
}

impl Context for HostcallTimer {}

impl HttpContext for HostcallTimer {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        let op = self
            .get_http_request_header("x-bench-op")
            .unwrap_or_default();
        let n: u32 = self
            .get_http_request_header("x-bench-n")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        let metric = hostcalls::define_metric(MetricType::Counter, "vmbench_calls").unwrap_or(0);
        let map = MapType::HttpRequestHeaders;
        let t0 = self.get_current_time();
        let mut sink = 0usize;
        for _ in 0..n {
            match op.as_str() {
                "headers" => {
                    sink += hostcalls::get_map_bytes(map).map_or(0, |h| h.len());
                }
                "add-remove" => {
                    let _ = hostcalls::add_map_value(map, "x-bench-claim", "value");
                    let _ = hostcalls::set_map_value_bytes(map, "x-bench-claim", None);
                }
                "remove-absent" => {
                    let _ = hostcalls::set_map_value_bytes(map, "x-bench-absent", None);
                }
                "clear-route-cache" => {
                    let _ = hostcalls::call_foreign_function("clear_route_cache", Some(&[]));
                }
                "time" => {
                    sink += usize::from(hostcalls::get_current_time().is_ok());
                }
                "metric" => {
                    let _ = hostcalls::increment_metric(metric, 1);
                }
                // The properties a route or destination selector reads (the bench's route carries
                // labels under the default namespace, as the guide's routes do).
                "route-labels" => {
                    sink += property_len(&[
                        "xds",
                        "route_metadata",
                        "filter_metadata",
                        "jwt_policy",
                        "labels",
                    ]);
                }
                "route-name" => sink += property_len(&["xds", "route_name"]),
                // A property's bytes as the host gives them (`x-bench-path`: dot-separated),
                // hex in the answer: what a new property read must decode.
                "property" => {
                    let path = self
                        .get_http_request_header("x-bench-path")
                        .unwrap_or_default();
                    let bytes = hostcalls::get_property(path.split('.').collect())
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                    self.send_http_response(200, vec![], Some(hex.as_bytes()));
                    return Action::Pause;
                }
                _ => {}
            }
        }
        let elapsed = self
            .get_current_time()
            .duration_since(t0)
            .unwrap_or_default();
        let ns = elapsed.as_secs_f64() * 1e9 / f64::from(n.max(1));
        self.send_http_response(
            200,
            vec![],
            Some(format!("{op} {ns:.0} ns per call ({sink})\n").as_bytes()),
        );
        Action::Pause
    }
}

impl RootContext for Bench {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(HostcallTimer))
    }

    fn on_configure(&mut self, _: usize) -> bool {
        let conf: serde_json::Value = self
            .get_plugin_configuration()
            .and_then(|c| serde_json::from_slice(&c).ok())
            .unwrap_or_default();
        let runs: BTreeMap<String, usize> = conf
            .get("runs")
            .and_then(|r| serde_json::from_value(r.clone()).ok())
            .unwrap_or_default();
        let rounds = conf
            .get("rounds")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1);
        let fixtures: serde_json::Value = serde_json::from_str(FIXTURES).unwrap_or_default();
        // Rounds interleave the algorithms; the medians are what to read on a shared machine.
        let mut all: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for _ in 0..rounds {
            for (alg, &n) in &runs {
                match self.time(&fixtures, alg, n) {
                    Ok(us) => all.entry(alg.as_str()).or_default().push(us),
                    Err(e) => log::error!("VMBENCH {alg}: {e}"),
                }
            }
        }
        for (alg, mut v) in all {
            v.sort_by(f64::total_cmp);
            let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
            let (lo, hi) = (
                v.first().copied().unwrap_or(0.0),
                v.last().copied().unwrap_or(0.0),
            );
            let unit = if alg.starts_with("p256-") {
                "ns per operation"
            } else if alg.starts_with("miss-") {
                "µs per decision"
            } else {
                "µs per verification"
            };
            log::warn!(
                "VMBENCH {alg} median {median:.1} {unit} ({} rounds of {}: {lo:.1}–{hi:.1})",
                v.len(),
                runs.get(alg).copied().unwrap_or(0)
            );
        }
        true
    }
}
