//! Test fixtures: the named keys and tokens of `tests/fixtures/tokens.json` (signed by Python's
//! `cryptography`, see `scripts/make-fixtures.py`), and small builders for policies and requests.

use serde_json::Value;

use crate::jwks::{self, Jwks};

const FIXTURES: &str = include_str!("../tests/fixtures/tokens.json");

fn fixtures() -> Value {
    serde_json::from_str(FIXTURES).unwrap()
}

/// The token named `name` (e.g. `"RS256"`, `"alg_none"`).
pub fn token(name: &str) -> String {
    fixtures()["tokens"][name]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token {name}"))
        .to_owned()
}

/// The public PEM of key `name` (e.g. `"rsa"`, `"ec521"`).
pub fn pem(name: &str) -> String {
    fixtures()["keys"][name]["pem"]
        .as_str()
        .unwrap_or_else(|| panic!("no pem {name}"))
        .to_owned()
}

/// The public JWK of key `name`, with extra members merged in.
pub fn jwk(name: &str, extra: Value) -> Value {
    let mut jwk = fixtures()["keys"][name]["jwk"].clone();
    if let (Value::Object(j), Value::Object(e)) = (&mut jwk, extra) {
        j.extend(e);
    }
    jwk
}

/// A JWKS document holding these JWKs.
pub fn jwks_doc(keys: Vec<Value>) -> String {
    serde_json::json!({ "keys": keys }).to_string()
}

pub fn jwks_of(keys: Vec<Value>) -> Jwks {
    jwks::parse_jwks(jwks_doc(keys).as_bytes()).unwrap()
}

/// A time at which the fixture tokens are valid (they expire in 2100).
pub const NOW: u64 = 1_800_000_000;
