//! Differential: our P-256 ECDSA verification (what the filter runs) against RustCrypto's `p256`,
//! on keys, messages and signatures derived from the input (the body: ec_diff.inc.rs).
#![no_main]
use p256 as rc;
const LIMBS: usize = 9;
const CURVE_ID: jwt_policy_filter::crypto::ec::CurveId = jwt_policy_filter::crypto::ec::CurveId::P256;
#[allow(non_snake_case)]
fn CURVE() -> Option<&'static jwt_policy_filter::crypto::ec::Curve<LIMBS>> {
    jwt_policy_filter::crypto::ec::curves::p256()
}
type Hash = sha2::Sha256;
include!("ec_diff.inc.rs");
