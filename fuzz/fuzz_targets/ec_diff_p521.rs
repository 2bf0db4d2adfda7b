//! Differential: our P-521 ECDSA verification (what the filter runs) against RustCrypto's `p521`,
//! on keys, messages and signatures derived from the input (the body: ec_diff.inc.rs).
#![no_main]
use p521 as rc;
const LIMBS: usize = 18;
const CURVE_ID: jwt_policy_filter::crypto::ec::CurveId = jwt_policy_filter::crypto::ec::CurveId::P521;
#[allow(non_snake_case)]
fn CURVE() -> Option<&'static jwt_policy_filter::crypto::ec::Curve<LIMBS>> {
    jwt_policy_filter::crypto::ec::curves::p521()
}
type Hash = sha2::Sha512;
include!("ec_diff.inc.rs");
