//! Signature verification: choose the keys a token may use, then try them.
//!
//! Key choice is jwt_verify_lib's: a key is skipped when both it and the token carry a `kid` and
//! they differ, or when the key names an `alg` other than the token's. Every other key is tried;
//! a key only ever verifies its own family (an RSA key never verifies an HS256 MAC).

use sha2::Digest as _;

use crate::crypto::rsa::Hash;
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

/// Whether `key` may verify `jwt` (its `kid` and `alg` allow it).
pub fn selects(jwt: &Jwt, key: &Key) -> bool {
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
        (Material::Rsa(key), RS256) => key.verify_pkcs1v15(Hash::Sha256, msg, signature),
        (Material::Rsa(key), RS384) => key.verify_pkcs1v15(Hash::Sha384, msg, signature),
        (Material::Rsa(key), RS512) => key.verify_pkcs1v15(Hash::Sha512, msg, signature),
        (Material::Rsa(key), PS256) => key.verify_pss(Hash::Sha256, msg, signature),
        (Material::Rsa(key), PS384) => key.verify_pss(Hash::Sha384, msg, signature),
        (Material::Rsa(key), PS512) => key.verify_pss(Hash::Sha512, msg, signature),
        // Our ECDSA (src/crypto/ec/), RustCrypto's arithmetic being slow in wasm.
        (Material::P256(key), ES256) => key.verify(&sha2::Sha256::digest(msg), signature),
        (Material::P384(key), ES384) => key.verify(&sha2::Sha384::digest(msg), signature),
        (Material::P521(key), ES512) => key.verify(&sha2::Sha512::digest(msg), signature),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::parse_pem;
    use crate::jwt::parse;
    use crate::testkit::{jwk, jwks_of, pem, token};
    use serde_json::json;

    fn check(token_name: &str, jwks: &Jwks) -> Result<(), Status> {
        verify_signature(&parse(&token(token_name)).unwrap(), jwks)
    }

    #[test]
    fn every_algorithm_verifies_with_its_jwk() {
        let jwks = jwks_of(vec![
            jwk("rsa", json!({})),
            jwk("ec256", json!({})),
            jwk("ec384", json!({})),
            jwk("ec521", json!({})),
            jwk("ed25519", json!({})),
            jwk("hmac", json!({})),
        ]);
        for alg in [
            "RS256",
            "RS384",
            "RS512",
            "PS256",
            "PS384",
            "PS512",
            "ES256",
            "ES384",
            "ES512",
            "EdDSA",
            "Ed25519_alg_name",
            "HS256",
            "HS384",
            "HS512",
        ] {
            assert_eq!(check(alg, &jwks), Ok(()), "{alg}");
        }
    }

    #[test]
    fn pss_tokens_with_any_salt_length_verify_as_in_boringssl() {
        let jwks = jwks_of(vec![jwk("rsa_pss", json!({}))]);
        let pem_keys = parse_pem(&pem("rsa_pss")).unwrap();
        for alg in ["PS256", "PS384", "PS512"] {
            for salt in ["max", "0"] {
                let name = format!("{alg}_salt_{salt}");
                assert_eq!(check(&name, &jwks), Ok(()), "{name}");
                assert_eq!(check(&name, &pem_keys), Ok(()), "{name} with the PEM");
            }
        }
    }

    #[test]
    fn every_asymmetric_algorithm_verifies_with_its_pem() {
        for (key, algs) in [
            ("rsa", &["RS256", "PS512"][..]),
            ("ec256", &["ES256"]),
            ("ec384", &["ES384"]),
            ("ec521", &["ES512"]),
            ("ed25519", &["EdDSA"]),
        ] {
            let jwks = parse_pem(&pem(key)).unwrap();
            for alg in algs {
                assert_eq!(check(alg, &jwks), Ok(()), "{alg} with {key} PEM");
            }
        }
    }

    #[test]
    fn several_pem_blocks_make_several_keys() {
        let jwks = parse_pem(&format!("{}\n{}", pem("rsa_other"), pem("ec256"))).unwrap();
        assert_eq!(jwks.keys.len(), 2);
        assert_eq!(check("ES256", &jwks), Ok(()));
    }

    #[test]
    fn rsa_pem_never_verifies_an_hmac_keyed_with_its_own_text() {
        let jwks = parse_pem(&pem("rsa")).unwrap();
        assert_eq!(
            check("HS256_rsa_pem_secret", &jwks),
            Err(Status::JwtVerificationFail)
        );
    }

    #[test]
    fn kid_and_alg_select_keys() {
        let jwks = jwks_of(vec![jwk("rsa", json!({"alg": "RS256"}))]);
        assert_eq!(check("RS256", &jwks), Ok(()));
        assert_eq!(check("RS256_no_kid", &jwks), Ok(()));
        assert_eq!(
            check("RS256_unknown_kid", &jwks),
            Err(Status::JwksKidAlgMismatch)
        );
        assert_eq!(
            check("RS384", &jwks),
            Err(Status::JwksKidAlgMismatch),
            "key alg RS256 skips an RS384 token"
        );
        let eddsa = jwks_of(vec![jwk("ed25519", json!({"alg": "EdDSA"}))]);
        assert_eq!(
            check("Ed25519_alg_name", &eddsa),
            Ok(()),
            "EdDSA and Ed25519 name one algorithm"
        );
    }

    #[test]
    fn forged_tokens_fail() {
        let jwks = jwks_of(vec![jwk("rsa", json!({})), jwk("ec256", json!({}))]);
        assert_eq!(
            check("RS256_tampered", &jwks),
            Err(Status::JwtVerificationFail)
        );
        assert_eq!(
            check("RS256_other_key", &jwks),
            Err(Status::JwtVerificationFail)
        );
        let ec = jwks_of(vec![jwk("ec384", json!({}))]);
        assert_eq!(
            check("ES256_signed_as_ES384_curve", &ec),
            Err(Status::JwtVerificationFail)
        );
    }

    #[test]
    fn a_key_without_kid_is_tried_by_a_token_with_kid() {
        let mut no_kid = jwk("rsa", json!({}));
        no_kid.as_object_mut().unwrap().remove("kid");
        assert_eq!(check("RS256_unknown_kid", &jwks_of(vec![no_kid])), Ok(()));
    }

    #[test]
    fn constant_time_compare() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
