//! Public keys: a JWKS or PEM document turned into verifying keys, parsed once.
//!
//! Like jwt_verify_lib, a JWKS keeps its valid keys and drops the invalid ones; a document with
//! no valid key at all is an error.

use std::sync::{Arc, OnceLock};

use crate::crypto::ec;
use serde_json::{Map, Value};

use crate::b64;
use crate::crypto::rsa::RsaKey;

/// The material of one key, ready to verify.
#[derive(Clone)]
pub enum Material {
    Rsa(RsaKey),
    P256(EcKey),
    P384(EcKey),
    P521(EcKey),
    Ed25519(ed25519_compact::PublicKey),
    Hmac(Vec<u8>),
}

impl std::fmt::Debug for Material {
    // Never print key material (an HMAC secret above all).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Material::Rsa(_) => "Rsa(..)",
            Material::P256(_) => "P256(..)",
            Material::P384(_) => "P384(..)",
            Material::P521(_) => "P521(..)",
            Material::Ed25519(_) => "Ed25519(..)",
            Material::Hmac(_) => "Hmac(redacted)",
        })
    }
}

/// An EC public key that RustCrypto parsed and checked (a point of the curve, not infinity),
/// kept as SEC1 `04 || x || y`. Our verifier's tables for it (`crate::crypto::ec`) are built at
/// its first use, once per key version, and shared by its clones.
#[derive(Clone)]
pub struct EcKey {
    curve: ec::CurveId,
    sec1: Vec<u8>,
    tables: Arc<OnceLock<Option<ec::PublicKey>>>,
}

impl EcKey {
    fn new(curve: ec::CurveId, sec1: &[u8]) -> EcKey {
        EcKey {
            curve,
            sec1: sec1.to_vec(),
            tables: Arc::default(),
        }
    }

    /// The point, SEC1 uncompressed.
    pub fn sec1(&self) -> &[u8] {
        &self.sec1
    }

    /// True when `signature` (P1363 `r || s`) signs `hash` (the message's SHA-256/384/512).
    pub fn verify(&self, hash: &[u8], signature: &[u8]) -> bool {
        self.tables
            .get_or_init(|| ec::public_key(self.curve, &self.sec1))
            .as_ref()
            .is_some_and(|key| ec::verify_p1363(key, hash, signature))
    }
}

/// One key with the metadata that selects it.
#[derive(Debug, Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub alg: Option<String>,
    pub material: Material,
}

/// A set of keys, as one provider holds them.
#[derive(Debug, Clone, Default)]
pub struct Jwks {
    pub keys: Vec<Key>,
}

/// Why a key document was refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksError {
    InvalidJson,
    NoKeysField,
    KeysNotArray,
    NoValidKeys(String),
    BadPem(String),
}

impl std::fmt::Display for JwksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwksError::InvalidJson => f.write_str("Jwks is an invalid JSON"),
            JwksError::NoKeysField => f.write_str("Jwks does not have [keys] field"),
            JwksError::KeysNotArray => f.write_str("[keys] in Jwks is not an array"),
            JwksError::NoValidKeys(why) => {
                write!(f, "Jwks doesn't have any valid public key ({why})")
            }
            JwksError::BadPem(why) => write!(f, "not a PEM public key: {why}"),
        }
    }
}

/// A JWKS JSON document (starts with `{`) or one or more PEM public keys.
pub fn parse_inline(text: &str) -> Result<Jwks, JwksError> {
    if text.trim_start().starts_with('{') {
        parse_jwks(text.as_bytes())
    } else {
        parse_pem(text)
    }
}

/// Parses a JWKS document, keeping the valid keys.
pub fn parse_jwks(doc: &[u8]) -> Result<Jwks, JwksError> {
    let value: Value = crate::json::parse_lenient(doc).ok_or(JwksError::InvalidJson)?;
    let Value::Object(root) = value else {
        return Err(JwksError::InvalidJson);
    };
    let keys = match root.get("keys") {
        None => return Err(JwksError::NoKeysField),
        Some(Value::Array(keys)) => keys,
        Some(_) => return Err(JwksError::KeysNotArray),
    };
    let mut out = Jwks::default();
    let mut last_error = String::from("empty [keys]");
    for (i, jwk) in keys.iter().enumerate() {
        match parse_jwk(jwk) {
            Ok(key) => out.keys.push(key),
            Err(why) => last_error = format!("keys[{i}]: {why}"),
        }
    }
    if out.keys.is_empty() {
        return Err(JwksError::NoValidKeys(last_error));
    }
    Ok(out)
}

fn str_field<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, String> {
    match jwk.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("[{name}] is not a string")),
    }
}

fn b64_field(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = str_field(jwk, name)?.ok_or_else(|| format!("[{name}] is missing"))?;
    let bytes = b64::decode_url(text).ok_or_else(|| format!("[{name}] is not base64url"))?;
    if bytes.is_empty() {
        return Err(format!("[{name}] is empty"));
    }
    Ok(bytes)
}

fn parse_jwk(jwk: &Value) -> Result<Key, String> {
    let Value::Object(jwk) = jwk else {
        return Err("not an object".into());
    };
    let kty = str_field(jwk, "kty")?.ok_or("[kty] is missing")?;
    if let Some(usage) = str_field(jwk, "use")?
        && usage != "sig"
    {
        return Err(format!("[use] is {usage:?}, not \"sig\""));
    }
    // As jwt_verify_lib: a `kid` or `alg` that is not a string counts as absent.
    let alg = jwk.get("alg").and_then(Value::as_str).map(str::to_owned);
    let kid = jwk.get("kid").and_then(Value::as_str).map(str::to_owned);
    let material = match kty {
        "RSA" => {
            let (n, e) = (b64_field(jwk, "n")?, b64_field(jwk, "e")?);
            Material::Rsa(RsaKey::new(&n, &e).map_err(|why| why.to_string())?)
        }
        "EC" => {
            // As jwt_verify_lib: without `crv` the curve is `alg`'s (P-256 when neither is
            // set), and an `alg` of another curve drops the key.
            let of_alg = match alg.as_deref() {
                Some("ES256") => Some("P-256"),
                Some("ES384") => Some("P-384"),
                Some("ES512") => Some("P-521"),
                _ => None,
            };
            let crv = match (str_field(jwk, "crv")?, of_alg) {
                (Some(crv), Some(wanted)) if crv != wanted => {
                    return Err(format!(
                        "[alg] {:?} does not go with [crv] {crv:?}",
                        alg.as_deref().unwrap_or_default()
                    ));
                }
                (Some(crv), _) => crv,
                (None, Some(wanted)) => wanted,
                (None, None) if alg.is_none() => "P-256",
                (None, None) => return Err("[crv] is missing".into()),
            };
            let size = match crv {
                "P-256" => 32,
                "P-384" => 48,
                "P-521" => 66,
                other => return Err(format!("EC curve {other:?} is not supported")),
            };
            let mut point = vec![0x04];
            point.extend(coordinate(&b64_field(jwk, "x")?, size).ok_or("[x] is too long")?);
            point.extend(coordinate(&b64_field(jwk, "y")?, size).ok_or("[y] is too long")?);
            ec_from_sec1(crv, &point)?
        }
        "OKP" => {
            let crv = str_field(jwk, "crv")?.ok_or("[crv] is missing")?;
            if crv != "Ed25519" {
                return Err(format!("OKP curve {crv:?} is not supported"));
            }
            let x = b64_field(jwk, "x")?;
            Material::Ed25519(
                ed25519_compact::PublicKey::from_slice(&x).map_err(|_| "bad Ed25519 key")?,
            )
        }
        "oct" => Material::Hmac(b64_field(jwk, "k")?),
        other => return Err(format!("[kty] {other:?} is not supported")),
    };
    Ok(Key { kid, alg, material })
}

/// An EC coordinate as exactly `size` big-endian bytes: issuers often drop leading zero bytes
/// (jwt_verify_lib reads coordinates as numbers, so it accepts that too).
fn coordinate(bytes: &[u8], size: usize) -> Option<Vec<u8>> {
    let significant = bytes.get(bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len())..)?;
    let pad = size.checked_sub(significant.len())?;
    let mut out = vec![0; pad];
    out.extend(significant);
    Some(out)
}

fn ec_from_sec1(crv: &str, point: &[u8]) -> Result<Material, String> {
    let bad = |_| format!("bad {crv} point");
    Ok(match crv {
        "P-256" => {
            let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?;
            p256_material(&key)
        }
        "P-384" => {
            let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?;
            p384_material(&key)
        }
        "P-521" => {
            let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(point).map_err(bad)?;
            p521_material(&key)
        }
        other => return Err(format!("EC curve {other:?} is not supported")),
    })
}

// RustCrypto's checked points, re-encoded uncompressed for our verifier.
fn p256_material(key: &p256::ecdsa::VerifyingKey) -> Material {
    Material::P256(EcKey::new(
        ec::CurveId::P256,
        key.to_sec1_point(false).as_bytes(),
    ))
}

fn p384_material(key: &p384::ecdsa::VerifyingKey) -> Material {
    Material::P384(EcKey::new(
        ec::CurveId::P384,
        key.to_sec1_point(false).as_bytes(),
    ))
}

fn p521_material(key: &p521::ecdsa::VerifyingKey) -> Material {
    Material::P521(EcKey::new(
        ec::CurveId::P521,
        key.to_sec1_point(false).as_bytes(),
    ))
}

/// One or more PEM blocks: `PUBLIC KEY` (SPKI: RSA, EC P-256/384/521, Ed25519) or
/// `RSA PUBLIC KEY` (PKCS#1).
pub fn parse_pem(text: &str) -> Result<Jwks, JwksError> {
    let mut out = Jwks::default();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = rest.get(start..).unwrap_or_default();
        let end_marker = "-----END ";
        let Some(end) = block.find(end_marker) else {
            return Err(JwksError::BadPem(
                "a BEGIN line without its END line".into(),
            ));
        };
        let after_end = block.get(end + end_marker.len()..).unwrap_or_default();
        let close = after_end
            .find("-----")
            .map(|i| i + 5)
            .unwrap_or(after_end.len());
        let block_len = end + end_marker.len() + close;
        let pem = block.get(..block_len).unwrap_or_default();
        out.keys.push(Key {
            kid: None,
            alg: None,
            material: pem_block(pem)?,
        });
        rest = block.get(block_len..).unwrap_or_default();
    }
    if out.keys.is_empty() {
        return Err(JwksError::BadPem(
            "no -----BEGIN PUBLIC KEY----- block".into(),
        ));
    }
    Ok(out)
}

/// An RSA key from PKCS#1 `RSAPublicKey` DER, under the same rules as a JWK (`e` 3 or 65537,
/// 1024 to 8192 bits). Parsed here rather than by the `rsa` crate, whose keys stop at 4096 bits.
fn rsa_material(pkcs1_der: &[u8]) -> Result<Material, JwksError> {
    let key = rsa::pkcs1::RsaPublicKey::try_from(pkcs1_der)
        .map_err(|e| JwksError::BadPem(format!("bad RSA public key: {e}")))?;
    RsaKey::new(key.modulus.as_bytes(), key.public_exponent.as_bytes())
        .map(Material::Rsa)
        .map_err(|why| JwksError::BadPem(why.to_string()))
}

/// The PKCS#1 key inside an SPKI, `None` when the SPKI is not an RSA key.
fn rsa_spki(spki_der: &[u8]) -> Option<Result<&[u8], JwksError>> {
    use rsa::pkcs8::der::asn1::{AnyRef, Null};
    let spki = rsa::pkcs8::SubjectPublicKeyInfoRef::try_from(spki_der).ok()?;
    if spki.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return None;
    }
    let bad = || JwksError::BadPem("bad RSA public key".into());
    // Parameters must be NULL (RFC 3279), as the `rsa` crate requires.
    if spki.algorithm.parameters != Some(AnyRef::from(Null)) {
        return Some(Err(bad()));
    }
    Some(spki.subject_public_key.as_bytes().ok_or_else(bad))
}

fn pem_block(pem: &str) -> Result<Material, JwksError> {
    use p256::pkcs8::DecodePublicKey as _;

    if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        let (_, der) = rsa::pkcs8::der::pem::decode_vec(pem.as_bytes())
            .map_err(|e| JwksError::BadPem(format!("bad PKCS#1 RSA key: {e}")))?;
        return rsa_material(&der);
    }
    if !pem.starts_with("-----BEGIN PUBLIC KEY-----") {
        let label = pem.lines().next().unwrap_or_default();
        return Err(JwksError::BadPem(format!(
            "{label} is not a public key (want -----BEGIN PUBLIC KEY-----)"
        )));
    }
    if let Ok((_, der)) = rsa::pkcs8::der::pem::decode_vec(pem.as_bytes())
        && let Some(pkcs1) = rsa_spki(&der)
    {
        return rsa_material(pkcs1?);
    }
    if let Ok(k) = p256::PublicKey::from_public_key_pem(pem) {
        return Ok(p256_material(&k.into()));
    }
    if let Ok(k) = p384::PublicKey::from_public_key_pem(pem) {
        return Ok(p384_material(&k.into()));
    }
    if let Ok(k) = p521::PublicKey::from_public_key_pem(pem) {
        return Ok(p521_material(&p521::ecdsa::VerifyingKey::from(k)));
    }
    if let Ok(k) = ed25519_compact::PublicKey::from_pem(pem) {
        return Ok(Material::Ed25519(k));
    }
    Err(JwksError::BadPem(
        "not an RSA, EC P-256/P-384/P-521 or Ed25519 public key".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jwks_document_errors() {
        assert_eq!(parse_jwks(b"nope").unwrap_err(), JwksError::InvalidJson);
        assert_eq!(parse_jwks(b"[]").unwrap_err(), JwksError::InvalidJson);
        assert_eq!(parse_jwks(b"{}").unwrap_err(), JwksError::NoKeysField);
        assert_eq!(
            parse_jwks(br#"{"keys":5}"#).unwrap_err(),
            JwksError::KeysNotArray
        );
        assert!(matches!(
            parse_jwks(br#"{"keys":[]}"#),
            Err(JwksError::NoValidKeys(_))
        ));
    }

    #[test]
    fn invalid_keys_are_dropped_valid_ones_kept() {
        let doc = br#"{"keys":[
            {"kty":"oct","k":"c2VjcmV0","kid":"h","alg":"HS256"},
            {"kty":"RSA","n":"!!","e":"AQAB"},
            {"kty":"EC","crv":"P-256","x":"AA","y":"AA"},
            {"kty":"oct","k":"c2VjcmV0","use":"enc"},
            {"kty":"XYZ"}
        ]}"#;
        let jwks = parse_jwks(doc).unwrap();
        assert_eq!(jwks.keys.len(), 1);
        assert_eq!(jwks.keys[0].kid.as_deref(), Some("h"));
        assert!(format!("{:?}", jwks.keys[0]).contains("redacted"));
    }

    #[test]
    fn no_valid_key_names_the_last_reason() {
        let err =
            parse_jwks(br#"{"keys":[{"kty":"EC","crv":"P-999","x":"AA","y":"AA"}]}"#).unwrap_err();
        assert!(err.to_string().contains("keys[0]"), "{err}");
    }

    #[test]
    fn ec_keys_read_crv_alg_and_kid_as_jwt_verify_lib() {
        use crate::testkit::{jwk, jwks_doc};
        use serde_json::json;
        let parse = |k: Value| parse_jwks(jwks_doc(vec![k]).as_bytes());
        let with = |name: &str, extra: Value, drop: &[&str]| {
            let mut k = jwk(name, extra);
            if let Some(o) = k.as_object_mut() {
                for f in drop {
                    o.remove(*f);
                }
            }
            k
        };
        // Without `crv`: `alg`'s curve, or P-256 when neither is set.
        let k = parse(with("ec384", json!({"alg": "ES384"}), &["crv"])).unwrap();
        assert!(matches!(
            k.keys.first().map(|k| &k.material),
            Some(Material::P384(_))
        ));
        let k = parse(with("ec256", json!({}), &["crv", "alg"])).unwrap();
        assert!(matches!(
            k.keys.first().map(|k| &k.material),
            Some(Material::P256(_))
        ));
        assert!(
            parse(with("ec384", json!({}), &["crv", "alg"])).is_err(),
            "not a P-256 point"
        );
        // An `alg` of another curve drops the key.
        assert!(parse(with("ec384", json!({"alg": "ES256"}), &[])).is_err());
        // A `kid` or `alg` that is not a string counts as absent.
        let k = parse(with("ec256", json!({"kid": 5, "alg": 7}), &[])).unwrap();
        let first = k.keys.first().unwrap();
        assert_eq!((first.kid.as_deref(), first.alg.as_deref()), (None, None));
    }

    #[test]
    fn ec_coordinates_with_leading_zeros_dropped_are_padded() {
        assert_eq!(coordinate(&[1, 2], 4), Some(vec![0, 0, 1, 2]));
        assert_eq!(coordinate(&[0, 0, 0, 1, 2], 4), Some(vec![0, 0, 1, 2]));
        assert_eq!(coordinate(&[1, 2, 3, 4, 5], 4), None);
    }

    #[test]
    fn trailing_commas_are_accepted_as_envoy_does() {
        let doc = br#"{"keys": [{"kty": "oct", "k": "c2VjcmV0",},
        ]}"#;
        assert_eq!(parse_jwks(doc).unwrap().keys.len(), 1);
    }

    #[test]
    fn pem_errors() {
        assert!(matches!(parse_pem("hello"), Err(JwksError::BadPem(_))));
        assert!(matches!(
            parse_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
            Err(JwksError::BadPem(_))
        ));
        assert!(matches!(
            parse_pem("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"),
            Err(JwksError::BadPem(_))
        ));
    }

    #[test]
    fn inline_detects_jwks_or_pem() {
        assert_eq!(
            parse_inline(" {\"keys\": 1}").unwrap_err(),
            JwksError::KeysNotArray
        );
        assert!(matches!(
            parse_inline("-----BEGIN"),
            Err(JwksError::BadPem(_))
        ));
    }

    /// DER length and value of one TLV.
    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = value.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend(value);
        out
    }

    fn der_uint(bytes: &[u8]) -> Vec<u8> {
        let bytes = significant(bytes);
        let mut v = if bytes.first().is_some_and(|&b| b & 0x80 != 0) {
            vec![0]
        } else {
            vec![]
        };
        v.extend(bytes);
        tlv(0x02, &v)
    }

    fn significant(bytes: &[u8]) -> &[u8] {
        &bytes[bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len())..]
    }

    /// (SPKI PEM, PKCS#1 PEM) of an RSA public key with these numbers.
    fn rsa_pems(n: &[u8], e: &[u8]) -> (String, String) {
        use rsa::pkcs8::der::pem::{LineEnding, encode_string};
        let pkcs1 = tlv(0x30, &[der_uint(n), der_uint(e)].concat());
        let alg = tlv(
            0x30,
            &[
                tlv(
                    0x06,
                    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01],
                ),
                vec![0x05, 0x00],
            ]
            .concat(),
        );
        let spki = tlv(
            0x30,
            &[alg, tlv(0x03, &[vec![0], pkcs1.clone()].concat())].concat(),
        );
        (
            encode_string("PUBLIC KEY", LineEnding::LF, &spki).unwrap(),
            encode_string("RSA PUBLIC KEY", LineEnding::LF, &pkcs1).unwrap(),
        )
    }

    /// An odd modulus of exactly `bits` bits.
    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xc3; bits.div_ceil(8)];
        let top = (bits - 1) % 8;
        n[0] = (n[0] | 1 << top) & (0xff >> (7 - top));
        *n.last_mut().unwrap() |= 1;
        n
    }

    fn rsa_jwk(n: &[u8], e: &[u8], kid: &str) -> String {
        format!(
            r#"{{"kty":"RSA","kid":"{kid}","n":"{}","e":"{}"}}"#,
            b64::encode_url(n),
            b64::encode_url(e)
        )
    }

    #[test]
    fn jwks_drops_rsa_keys_with_a_bad_exponent_or_size_and_keeps_the_others() {
        let good = rsa_jwk(&modulus(2048), &[1, 0, 1], "good");
        let e3 = rsa_jwk(&modulus(2048), &[3], "e3");
        let bad = [
            rsa_jwk(&modulus(2048), &[1], "e1"),
            rsa_jwk(&modulus(2048), &[5], "e5"),
            rsa_jwk(&modulus(1023), &[1, 0, 1], "small"),
            rsa_jwk(
                &[vec![0; 4], modulus(1023)].concat(),
                &[1, 0, 1],
                "padded-small",
            ),
            rsa_jwk(&modulus(8193), &[1, 0, 1], "big"),
        ];
        let doc = format!(r#"{{"keys":[{},{good},{e3}]}}"#, bad.join(","));
        let jwks = parse_jwks(doc.as_bytes()).unwrap();
        let kids: Vec<_> = jwks
            .keys
            .iter()
            .map(|k| k.kid.as_deref().unwrap())
            .collect();
        assert_eq!(kids, ["good", "e3"]);
        for (jwk, why) in bad.iter().zip([
            "RSA exponent [e] must be 3 or 65537",
            "RSA exponent [e] must be 3 or 65537",
            "RSA modulus [n] is 1023 bits, not 1024 to 8192",
            "RSA modulus [n] is 1023 bits, not 1024 to 8192",
            "RSA modulus [n] is 8193 bits, not 1024 to 8192",
        ]) {
            let err = parse_jwks(format!(r#"{{"keys":[{jwk}]}}"#).as_bytes()).unwrap_err();
            assert_eq!(err, JwksError::NoValidKeys(format!("keys[0]: {why}")));
            assert!(
                err.to_string()
                    .starts_with("Jwks doesn't have any valid public key")
            );
        }
    }

    #[test]
    fn jwks_modulus_with_leading_zero_bytes_is_judged_by_its_real_size() {
        for bits in [1024, 8192] {
            let jwk = rsa_jwk(&[vec![0; 3], modulus(bits)].concat(), &[0, 1, 0, 1], "k");
            assert!(
                parse_jwks(format!(r#"{{"keys":[{jwk}]}}"#).as_bytes()).is_ok(),
                "{bits}"
            );
        }
    }

    #[test]
    fn pem_rsa_keys_follow_the_jwks_rules() {
        for (bits, e, why) in [
            (
                2048,
                &[1u8][..],
                Some("RSA exponent [e] must be 3 or 65537"),
            ),
            (2048, &[5], Some("RSA exponent [e] must be 3 or 65537")),
            (
                1023,
                &[1, 0, 1],
                Some("RSA modulus [n] is 1023 bits, not 1024 to 8192"),
            ),
            (
                8193,
                &[1, 0, 1],
                Some("RSA modulus [n] is 8193 bits, not 1024 to 8192"),
            ),
            (1024, &[1, 0, 1], None),
            (2048, &[3], None),
            (8192, &[1, 0, 1], None), // the `rsa` crate alone stops at 4096
        ] {
            let (spki, pkcs1) = rsa_pems(&modulus(bits), e);
            for pem in [spki, pkcs1] {
                let got = parse_pem(&pem);
                match why {
                    Some(why) => assert_eq!(got.unwrap_err(), JwksError::BadPem(why.into())),
                    None => assert!(
                        matches!(got.unwrap().keys[0].material, Material::Rsa(_)),
                        "{bits} bits, e {e:?}"
                    ),
                }
            }
        }
    }

    #[test]
    fn pem_of_the_fixture_rsa_key_still_parses() {
        let jwks = parse_pem(&crate::testkit::pem("rsa")).unwrap();
        assert!(matches!(jwks.keys[0].material, Material::Rsa(_)));
    }
}
