//! A JWT split and decoded, with the claims `jwt_authn` reads typed and checked, in the exact
//! order and with the exact statuses of google/jwt_verify_lib's `Jwt::parseFromString`.

use serde_json::{Map, Value};

use crate::b64;
use crate::status::Status;

/// Signature algorithms the filter implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    /// `Ed25519` is the fully-specified name of RFC 9864 for what JOSE calls `EdDSA` here.
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "EdDSA" | "Ed25519" => Alg::EdDSA,
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            _ => return None,
        })
    }
}

/// A token that parsed: every typed claim had the type `jwt_authn` requires.
#[derive(Debug, Clone)]
pub struct Jwt {
    pub alg: Alg,
    /// The `alg` header exactly as written (compared with a key's `alg`).
    pub alg_name: String,
    pub kid: Option<String>,
    /// `header.payload`, the bytes the signature covers.
    pub signed: String,
    /// The payload segment as received (base64url), for `outputPayloadToHeader`.
    pub payload_b64: String,
    pub signature: Vec<u8>,
    pub payload: Map<String, Value>,
    pub iss: Option<String>,
    pub exp: Option<u64>,
    pub nbf: Option<u64>,
    pub audiences: Vec<String>,
}

enum U64Claim {
    Absent,
    Value(u64),
    WrongType,
    OutOfRange,
}

fn u64_claim(payload: &Map<String, Value>, name: &str) -> U64Claim {
    match payload.get(name) {
        None => U64Claim::Absent,
        Some(Value::Number(n)) => {
            if let Some(v) = n.as_u64() {
                U64Claim::Value(v)
            } else if n.as_i64().is_some() {
                U64Claim::OutOfRange
            } else {
                match n.as_f64() {
                    // Same as jwt_verify_lib: a fractional value is truncated, a value outside
                    // 0..=u64::MAX is out of range.
                    Some(f) if (0.0..18_446_744_073_709_551_615.0).contains(&f) => {
                        U64Claim::Value(f as u64)
                    }
                    _ => U64Claim::OutOfRange,
                }
            }
        }
        Some(_) => U64Claim::WrongType,
    }
}

fn string_claim(map: &Map<String, Value>, name: &str) -> Result<Option<String>, ()> {
    match map.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

fn decode_json_object(
    segment: &str,
    bad_b64: Status,
    bad_json: Status,
) -> Result<Map<String, Value>, Status> {
    let bytes = b64::decode_url(segment).ok_or(bad_b64)?;
    match crate::json::parse_token_json(&bytes) {
        Some(Value::Object(map)) => Ok(map),
        _ => Err(bad_json),
    }
}

/// Splits and decodes a compact JWS. Checks, in order: form, header, payload, signature encoding.
pub fn parse(token: &str) -> Result<Jwt, Status> {
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::JwtBadFormat);
    };
    if header_b64.is_empty() || payload_b64.is_empty() || sig_b64.is_empty() {
        return Err(Status::JwtBadFormat);
    }

    let header = decode_json_object(
        header_b64,
        Status::JwtHeaderBadBase64,
        Status::JwtHeaderBadJson,
    )?;
    let alg_name = match header.get("alg") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Status::JwtHeaderBadAlg),
    };
    let alg = Alg::from_name(&alg_name).ok_or(Status::JwtHeaderNotImplementedAlg)?;
    let kid = string_claim(&header, "kid").map_err(|()| Status::JwtHeaderBadKid)?;

    let payload = decode_json_object(
        payload_b64,
        Status::JwtPayloadBadBase64,
        Status::JwtPayloadBadJson,
    )?;
    let iss = string_claim(&payload, "iss").map_err(|()| Status::JwtPayloadIssNotString)?;
    string_claim(&payload, "sub").map_err(|()| Status::JwtPayloadSubNotString)?;
    let checked = |name, wrong, range| match u64_claim(&payload, name) {
        U64Claim::Absent => Ok(None),
        U64Claim::Value(v) => Ok(Some(v)),
        U64Claim::WrongType => Err(wrong),
        U64Claim::OutOfRange => Err(range),
    };
    checked(
        "iat",
        Status::JwtPayloadIatNotInteger,
        Status::JwtPayloadIatOutOfRange,
    )?;
    let nbf = checked(
        "nbf",
        Status::JwtPayloadNbfNotInteger,
        Status::JwtPayloadNbfOutOfRange,
    )?;
    let exp = checked(
        "exp",
        Status::JwtPayloadExpNotInteger,
        Status::JwtPayloadExpOutOfRange,
    )?;
    string_claim(&payload, "jti").map_err(|()| Status::JwtPayloadJtiNotString)?;
    let audiences = match payload.get("aud") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(Status::JwtPayloadAudNotString)?,
        Some(_) => return Err(Status::JwtPayloadAudNotString),
    };

    let signature = b64::decode_url(sig_b64).ok_or(Status::JwtSignatureBadBase64)?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    Ok(Jwt {
        alg,
        alg_name,
        kid,
        signed: token.get(..signed_len).unwrap_or_default().to_owned(),
        payload_b64: payload_b64.to_owned(),
        signature,
        payload,
        iss,
        exp,
        nbf,
        audiences,
    })
}

impl Jwt {
    /// `nbf` then `exp`, each with `skew` seconds of leeway; saturating, so `nbf = 2^64-1` or
    /// `exp = 2^64-1` cannot overflow.
    pub fn check_time(&self, now: u64, skew: u64) -> Result<(), Status> {
        if let Some(nbf) = self.nbf
            && now.saturating_add(skew) < nbf
        {
            return Err(Status::JwtNotYetValid);
        }
        if let Some(exp) = self.exp
            && exp != 0
            && now > exp.saturating_add(skew)
        {
            return Err(Status::JwtExpired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(s: &str) -> String {
        b64::encode_url(s.as_bytes())
    }

    fn token(header: &str, payload: &str) -> String {
        format!("{}.{}.c2ln", enc(header), enc(payload))
    }

    fn status_of(t: &str) -> Status {
        parse(t).err().unwrap_or(Status::JwtMissing)
    }

    #[test]
    fn well_formed_token_parses_its_typed_claims() {
        let t = token(
            r#"{"alg":"RS256","kid":"k1"}"#,
            r#"{"iss":"https://i","exp":10,"nbf":5,"aud":["a","b"],"org":"x"}"#,
        );
        let jwt = parse(&t).unwrap();
        assert_eq!(jwt.alg, Alg::RS256);
        assert_eq!(jwt.kid.as_deref(), Some("k1"));
        assert_eq!(jwt.iss.as_deref(), Some("https://i"));
        assert_eq!((jwt.exp, jwt.nbf), (Some(10), Some(5)));
        assert_eq!(jwt.audiences, vec!["a", "b"]);
        assert_eq!(jwt.signature, b"sig");
        assert!(t.starts_with(&jwt.signed));
    }

    #[test]
    fn form_errors() {
        assert_eq!(status_of("a.b"), Status::JwtBadFormat);
        assert_eq!(status_of("a.b.c.d"), Status::JwtBadFormat);
        assert_eq!(status_of("a..c"), Status::JwtBadFormat);
        assert_eq!(status_of("a.b."), Status::JwtBadFormat);
    }

    #[test]
    fn header_errors_in_order() {
        assert_eq!(status_of("@@.e30.c2ln"), Status::JwtHeaderBadBase64);
        assert_eq!(status_of(&token("{", "{}")), Status::JwtHeaderBadJson);
        assert_eq!(status_of(&token("[]", "{}")), Status::JwtHeaderBadJson);
        assert_eq!(status_of(&token("{}", "{}")), Status::JwtHeaderBadAlg);
        assert_eq!(
            status_of(&token(r#"{"alg":1}"#, "{}")),
            Status::JwtHeaderBadAlg
        );
        assert_eq!(
            status_of(&token(r#"{"alg":"none"}"#, "{}")),
            Status::JwtHeaderNotImplementedAlg
        );
        assert_eq!(
            status_of(&token(r#"{"alg":"RS256","kid":3}"#, "{}")),
            Status::JwtHeaderBadKid
        );
    }

    #[test]
    fn payload_errors_in_order() {
        let h = r#"{"alg":"HS256"}"#;
        assert_eq!(
            status_of(&format!("{}.@@.c2ln", enc(h))),
            Status::JwtPayloadBadBase64
        );
        assert_eq!(status_of(&token(h, "nope")), Status::JwtPayloadBadJson);
        assert_eq!(
            status_of(&token(h, r#"{"iss":1}"#)),
            Status::JwtPayloadIssNotString
        );
        assert_eq!(
            status_of(&token(h, r#"{"sub":true}"#)),
            Status::JwtPayloadSubNotString
        );
        assert_eq!(
            status_of(&token(h, r#"{"iat":"1"}"#)),
            Status::JwtPayloadIatNotInteger
        );
        assert_eq!(
            status_of(&token(h, r#"{"nbf":-1}"#)),
            Status::JwtPayloadNbfOutOfRange
        );
        assert_eq!(
            status_of(&token(h, r#"{"exp":"123"}"#)),
            Status::JwtPayloadExpNotInteger
        );
        assert_eq!(
            status_of(&token(h, r#"{"exp":2.001e+206}"#)),
            Status::JwtPayloadExpOutOfRange
        );
        assert_eq!(
            status_of(&token(h, r#"{"jti":1}"#)),
            Status::JwtPayloadJtiNotString
        );
        assert_eq!(
            status_of(&token(h, r#"{"aud":[1]}"#)),
            Status::JwtPayloadAudNotString
        );
        let bad_sig = format!("{}.{}.@@", enc(h), enc("{}"));
        assert_eq!(status_of(&bad_sig), Status::JwtSignatureBadBase64);
    }

    #[test]
    fn ed25519_is_an_alias_of_eddsa() {
        let jwt = parse(&token(r#"{"alg":"Ed25519"}"#, "{}")).unwrap();
        assert_eq!(jwt.alg, Alg::EdDSA);
        assert_eq!(jwt.alg_name, "Ed25519");
    }

    #[test]
    fn time_checks_use_skew_and_never_overflow() {
        let mut jwt = parse(&token(r#"{"alg":"HS256"}"#, "{}")).unwrap();
        jwt.exp = Some(100);
        assert_eq!(jwt.check_time(160, 60), Ok(()));
        assert_eq!(jwt.check_time(161, 60), Err(Status::JwtExpired));
        jwt.exp = Some(u64::MAX);
        assert_eq!(jwt.check_time(u64::MAX, u64::MAX), Ok(()));
        jwt.exp = None;
        jwt.nbf = Some(200);
        assert_eq!(jwt.check_time(140, 60), Ok(()));
        assert_eq!(jwt.check_time(139, 60), Err(Status::JwtNotYetValid));
        jwt.nbf = Some(u64::MAX);
        assert_eq!(jwt.check_time(u64::MAX, 1), Ok(()));
        assert_eq!(jwt.check_time(0, 0), Err(Status::JwtNotYetValid));
    }
}
