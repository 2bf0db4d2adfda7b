//! jwt-policy-filter: Gloo-Mesh-style JWT policies enforced inside Envoy by a Proxy-Wasm filter.
//!
//! The request path reads as the file list: [`config`] (JSON → [`policy`]) → [`select`] (which
//! policy governs) → [`extract`] (where tokens are) → [`jwt`] + [`verify`] with [`jwks`] keys →
//! [`claims`] (headers, rules) → [`authn`] (the decision) → [`worker`] (the request flow and the
//! fetch cycle of remote JWKS; [`shared`]: the protocol between workers over shared data) over a
//! [`host::Host`] → `filter` (the only module that talks to the host: the proxy-wasm `Host`;
//! built for wasm32 only). `sim` (tests only) runs many workers against a simulated host.

pub mod authn;
pub mod b64;
pub mod claims;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod crypto;
pub mod extract;
pub mod host;
pub mod json;
pub mod jwks;
pub mod jwks_cache;
pub mod jwt;
pub mod jwt_cache;
pub mod metrics;
pub mod policy;
pub mod select;
pub mod shared;
pub mod status;
pub mod verify;
pub mod worker;

#[cfg(all(target_arch = "wasm32", not(feature = "vmbench")))]
mod filter;
#[cfg(test)]
mod review10_tests;
#[cfg(test)]
mod review11_tests;
#[cfg(test)]
mod sim;
#[cfg(test)]
mod testkit;
/// `make vm-bench`: a module that only times the verification primitives inside Envoy's V8.
#[cfg(all(target_arch = "wasm32", feature = "vmbench"))]
mod vmbench;
