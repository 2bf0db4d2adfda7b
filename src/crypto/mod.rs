//! Verification primitives we write ourselves (public inputs only: variable time is fine, wrong
//! answers never are): the Montgomery arithmetic and the RSA public operation on top of it.
//! Each is checked against Wycheproof, a differential fuzz target and signed tokens.

pub mod ec;
pub mod mont;
pub mod rsa;

#[cfg(test)]
mod wycheproof;
