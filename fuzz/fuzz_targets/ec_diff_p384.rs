//! Differential: our P-384 ECDSA verification (what the filter runs) against RustCrypto's `p384`,
//! on keys, messages and signatures derived from the input (the body: ec_diff.inc.rs).
#![no_main]
use p384 as rc;
const LIMBS: usize = 14;
const CURVE_ID: jwt_policy_filter::crypto::ec::CurveId = jwt_policy_filter::crypto::ec::CurveId::P384;
#[allow(non_snake_case)]
fn CURVE() -> Option<&'static jwt_policy_filter::crypto::ec::Curve<LIMBS>> {
    jwt_policy_filter::crypto::ec::curves::p384()
}
type Hash = sha2::Sha384;
include!("ec_diff.inc.rs");
