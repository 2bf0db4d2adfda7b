//! Signature verification: choose the keys a token may use, then try them.
//!
//! Key choice is jwt_verify_lib's: a key is skipped when both it and the token carry a `kid` and
//! they differ, or when the key names an `alg` other than the token's. Every other key is tried;
//! a key only ever verifies its own family (an RSA key never verifies an HS256 MAC).

use p256::ecdsa::signature::Verifier as _;
use rsa::{Pkcs1v15Sign, Pss};
use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::jwks::{Jwks, Key, Material};
use crate::jwt::{Alg, Jwt};
use crate::status::Status;

/// Verifies the token's signature with one of the keys.
pub fn verify_signature(jwt: &Jwt, jwks: &Jwks) -> Result<(), Status> {
    let mut tried = false;
    for key in &jwks.keys {
        if !selects(jwt, key) {
            continue;
        }
        tried = true;
        if verifies(
            &key.material,
            jwt.alg,
            jwt.signed.as_bytes(),
            &jwt.signature,
        ) {
            return Ok(());
        }
    }
    Err(if tried {
        Status::JwtVerificationFail
    } else {
        Status::JwksKidAlgMismatch
    })
}

fn selects(jwt: &Jwt, key: &Key) -> bool {
    if let (Some(token_kid), Some(key_kid)) = (&jwt.kid, &key.kid)
        && token_kid != key_kid
    {
        return false;
    }
    match &key.alg {
        Some(key_alg) => Alg::from_name(key_alg) == Some(jwt.alg),
        None => true,
    }
}

/// True when `signature` is `material`'s signature of `msg` under `alg`.
pub fn verifies(material: &Material, alg: Alg, msg: &[u8], signature: &[u8]) -> bool {
    use Alg::*;
    match (material, alg) {
        (Material::Rsa(key), RS256) => key
            .verify(
                Pkcs1v15Sign::new::<Sha256>(),
                &Sha256::digest(msg),
                signature,
            )
            .is_ok(),
        (Material::Rsa(key), RS384) => key
            .verify(
                Pkcs1v15Sign::new::<Sha384>(),
                &Sha384::digest(msg),
                signature,
            )
            .is_ok(),
        (Material::Rsa(key), RS512) => key
            .verify(
                Pkcs1v15Sign::new::<Sha512>(),
                &Sha512::digest(msg),
                signature,
            )
            .is_ok(),
        (Material::Rsa(key), PS256) => key
            .verify(Pss::new::<Sha256>(), &Sha256::digest(msg), signature)
            .is_ok(),
        (Material::Rsa(key), PS384) => key
            .verify(Pss::new::<Sha384>(), &Sha384::digest(msg), signature)
            .is_ok(),
        (Material::Rsa(key), PS512) => key
            .verify(Pss::new::<Sha512>(), &Sha512::digest(msg), signature)
            .is_ok(),
        (Material::P256(key), ES256) => p256::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|sig| key.verify(msg, &sig).is_ok()),
        (Material::P384(key), ES384) => p384::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|sig| key.verify(msg, &sig).is_ok()),
        (Material::P521(key), ES512) => p521::ecdsa::Signature::from_slice(signature)
            .is_ok_and(|sig| key.verify(msg, &sig).is_ok()),
        (Material::Ed25519(key), EdDSA) => ed25519_compact::Signature::from_slice(signature)
            .is_ok_and(|sig| key.verify(msg, &sig).is_ok()),
        (Material::Hmac(secret), HS256) => ct_eq(&hmac_sha256::HMAC::mac(msg, secret), signature),
        (Material::Hmac(secret), HS384) => {
            ct_eq(&hmac_sha512::sha384::HMAC::mac(msg, secret), signature)
        }
        (Material::Hmac(secret), HS512) => ct_eq(&hmac_sha512::HMAC::mac(msg, secret), signature),
        _ => false,
    }
}

/// Constant-time comparison (the length is not secret).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
