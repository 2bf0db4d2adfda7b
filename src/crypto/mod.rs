//! Verification primitives we write ourselves (public inputs only: variable time is fine, wrong
//! answers never are): the Montgomery arithmetic and the RSA public operation on top of it, and
//! ECDSA on P-256, P-384 and P-521 (`ec`). Each is checked against Wycheproof (`wycheproof`,
//! through `verify::verifies`), a differential fuzz target (`rsa_mont_diff`, `ec_diff_*`) and
//! tokens signed by Python's `cryptography`.

pub mod ec;
pub mod mont;
pub mod rsa;

#[cfg(test)]
mod wycheproof;
