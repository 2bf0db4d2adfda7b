//! `jwt-policy token`: a development token signed with a local key, to try policies with.

use std::time::{SystemTime, UNIX_EPOCH};

use p256::ecdsa::signature::Signer as _;
use rsa::Pkcs1v15Sign;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha384, Sha512};

use super::flags::parse_flags;
use crate::b64;
use crate::config;

enum Signing {
    Rsa(rsa::RsaPrivateKey),
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_compact::SecretKey),
    Hmac(Vec<u8>),
}

fn load_key(pem: &str) -> Result<Signing, String> {
    use p256::pkcs8::DecodePrivateKey as _;
    use rsa::pkcs1::DecodeRsaPrivateKey as _;
    if let Ok(k) = rsa::pkcs8::DecodePrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
    {
        return Ok(Signing::Rsa(k));
    }
    if let Ok(k) =
        p256::SecretKey::from_pkcs8_pem(pem).or_else(|_| p256::SecretKey::from_sec1_pem(pem))
    {
        return Ok(Signing::P256(k.into()));
    }
    if let Ok(k) =
        p384::SecretKey::from_pkcs8_pem(pem).or_else(|_| p384::SecretKey::from_sec1_pem(pem))
    {
        return Ok(Signing::P384(k.into()));
    }
    if let Ok(k) = ed25519_compact::KeyPair::from_pem(pem) {
        return Ok(Signing::Ed25519(k.sk));
    }
    Err("the key file is not an RSA, EC P-256/P-384 or Ed25519 private key in PEM".into())
}

fn sign(key: &Signing, alg: &str, msg: &[u8]) -> Result<Vec<u8>, String> {
    let rsa = |k: &rsa::RsaPrivateKey, scheme: Pkcs1v15Sign, hashed: &[u8]| {
        k.sign(scheme, hashed).map_err(|e| e.to_string())
    };
    match (key, alg) {
        (Signing::Rsa(k), "RS256") => rsa(k, Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(msg)),
        (Signing::Rsa(k), "RS384") => rsa(k, Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(msg)),
        (Signing::Rsa(k), "RS512") => rsa(k, Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(msg)),
        (Signing::P256(k), "ES256") => {
            let sig: p256::ecdsa::Signature = k.sign(msg);
            Ok(sig.to_bytes().to_vec())
        }
        (Signing::P384(k), "ES384") => {
            let sig: p384::ecdsa::Signature = k.sign(msg);
            Ok(sig.to_bytes().to_vec())
        }
        (Signing::Ed25519(k), "EdDSA" | "Ed25519") => Ok(k.sign(msg, None).to_vec()),
        (Signing::Hmac(s), "HS256") => Ok(hmac_sha256::HMAC::mac(msg, s).to_vec()),
        (Signing::Hmac(s), "HS384") => Ok(hmac_sha512::sha384::HMAC::mac(msg, s).to_vec()),
        (Signing::Hmac(s), "HS512") => Ok(hmac_sha512::HMAC::mac(msg, s).to_vec()),
        _ => Err(format!("this key cannot sign {alg}")),
    }
}

fn default_alg(key: &Signing) -> &'static str {
    match key {
        Signing::Rsa(_) => "RS256",
        Signing::P256(_) => "ES256",
        Signing::P384(_) => "ES384",
        Signing::Ed25519(_) => "EdDSA",
        Signing::Hmac(_) => "HS256",
    }
}

/// Signs a token from the command line flags; prints it.
pub fn token(args: &[String], out: &mut String) -> Result<bool, String> {
    let flags = parse_flags(
        args,
        &[
            "--key", "--secret", "--alg", "--kid", "--exp", "--claim", "--claims", "--iat",
        ],
    )?;
    let get = |name: &str| flags.value(name);
    let key = match (get("--key"), get("--secret")) {
        (Some(path), None) => {
            load_key(&std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?)?
        }
        (None, Some(secret)) => Signing::Hmac(secret.as_bytes().to_vec()),
        _ => return Err("token needs one of --key PEM_FILE or --secret TEXT".into()),
    };
    let alg = get("--alg").unwrap_or(default_alg(&key));
    let now = match get("--iat") {
        Some(t) => t
            .parse::<u64>()
            .map_err(|_| "--iat: want seconds since the epoch")?,
        None => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    let lifetime = config::parse_duration_ms(get("--exp").unwrap_or("1h"))
        .ok_or("--exp: want a duration such as 1h")?
        / 1000;
    let mut claims: Map<String, Value> = match get("--claims") {
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            _ => return Err("--claims: want a JSON object".into()),
        },
        None => Map::new(),
    };
    claims.entry("iat").or_insert(json!(now));
    claims
        .entry("exp")
        .or_insert(json!(now.saturating_add(lifetime)));
    for (flag, value) in &flags.values {
        if flag == "--claim" {
            let (name, v) = value.split_once('=').ok_or("--claim: want NAME=VALUE")?;
            claims.insert(
                name.to_owned(),
                serde_json::from_str(v).unwrap_or_else(|_| Value::String(v.to_owned())),
            );
        }
    }
    let mut header = json!({"alg": alg, "typ": "JWT"});
    if let Some(kid) = get("--kid")
        && let Some(h) = header.as_object_mut()
    {
        h.insert("kid".into(), json!(kid));
    }
    let signed = format!(
        "{}.{}",
        b64::encode_url(header.to_string().as_bytes()),
        b64::encode_url(Value::Object(claims).to_string().as_bytes())
    );
    let signature = sign(&key, alg, signed.as_bytes())?;
    out.push_str(&format!("{signed}.{}\n", b64::encode_url(&signature)));
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwks::parse_pem;
    use crate::jwt::parse;
    use crate::verify::verify_signature;

    #[test]
    fn a_minted_token_verifies_with_the_demo_public_key() {
        let args: Vec<String> = [
            "--key",
            "policies/demo-keys/demo-private-key.pem",
            "--claim",
            "org=solo.io",
            "--claim",
            "level=3",
            "--kid",
            "k1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut out = String::new();
        assert!(token(&args, &mut out).unwrap());
        let jwt = parse(out.trim()).unwrap();
        assert_eq!(jwt.payload["org"], "solo.io");
        assert_eq!(jwt.payload["level"], 3);
        assert_eq!(jwt.kid.as_deref(), Some("k1"));
        let keys =
            parse_pem(&std::fs::read_to_string("policies/demo-keys/demo-public-key.pem").unwrap())
                .unwrap();
        assert_eq!(verify_signature(&jwt, &keys), Ok(()));
    }

    #[test]
    fn hmac_tokens_and_bad_flags() {
        let mut out = String::new();
        let args: Vec<String> = ["--secret", "s3cret", "--alg", "HS384"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(token(&args, &mut out).unwrap());
        assert_eq!(parse(out.trim()).unwrap().alg_name, "HS384");
        let bad: Vec<String> = ["--secret", "s", "--alg", "RS256"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert!(token(&bad, &mut String::new()).is_err());
        assert!(token(&[], &mut String::new()).is_err());
    }
}
