//! Wycheproof signature vectors (`../shared/conformance/wycheproof/`, see its SOURCES.md) run
//! through the filter's own verification: keys parsed by [`jwks::parse_jwks`] from the group's
//! JWK (or by [`jwks::parse_pem`] from its PEM when a group has no JWK; HMAC keys as a
//! `kty: oct` JWK), signatures checked by [`verify::verifies`], the function
//! `verify_signature` calls for each key it tries.
//!
//! Expected: every `valid` vector accepted, every `invalid` one rejected, except the RSA-PSS
//! vectors commented `s_len changed to …`: genuine signatures with another salt length, which
//! PS256/384/512 accept as BoringSSL (so `jwt_authn`) does. `acceptable` vectors (only "Missing
//! NULL in the ASN encoding", RSA PKCS#1 v1.5: a DigestInfo without the NULL parameters) are
//! rejected, as BoringSSL does (it compares the whole encoding with the one it builds, NULL
//! included), so a token `jwt_authn` refuses is never let through here. A group whose key the
//! filter refuses counts each of its vectors as rejected. The vectors' directory must exist
//! (CI always has `../shared`): a missing one fails the test, it is never skipped.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{Value, json};

use crate::jwks::{self, Material};
use crate::jwt::Alg;
use crate::verify::verifies;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/wycheproof")
}

fn hex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn load(file: &str) -> Value {
    let path = dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Wycheproof vectors missing: {} ({e}); they live in ../shared/conformance/wycheproof",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The key of one group as the filter parses it: `None` when the filter refuses the key.
fn keys_of(group: &Value, alg: Alg) -> (Option<Material>, Option<Material>) {
    let first = |r: Result<jwks::Jwks, jwks::JwksError>| {
        r.ok()
            .and_then(|j| j.keys.into_iter().next())
            .map(|k| k.material)
    };
    if matches!(alg, Alg::HS256 | Alg::HS384 | Alg::HS512) {
        return (None, None); // per test, below
    }
    let jwk = group.get("publicKeyJwk").or_else(|| group.get("keyJwk"));
    let from_jwk = jwk.map(|jwk| {
        first(jwks::parse_jwks(
            json!({ "keys": [jwk] }).to_string().as_bytes(),
        ))
    });
    let from_pem = group["publicKeyPem"]
        .as_str()
        .map(|pem| first(jwks::parse_pem(pem)));
    match from_jwk {
        Some(k) => (k, from_pem.flatten()),
        None => (from_pem.flatten(), None),
    }
}

#[derive(Default, Debug)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    s_len_changed: usize,
    not_applicable: usize,
}

/// Runs one file; returns its counts and every vector that went the wrong way.
fn run(file: &str, alg: Alg) -> (Counts, Vec<String>) {
    let doc = load(file);
    let mut counts = Counts::default();
    let mut wrong = Vec::new();
    let hash_bits = match alg {
        Alg::HS256 => 256,
        Alg::HS384 => 384,
        Alg::HS512 => 512,
        _ => 0,
    };
    for group in doc["testGroups"].as_array().unwrap() {
        let tests = group["tests"].as_array().unwrap();
        if hash_bits != 0 && group["tagSize"].as_u64() != Some(hash_bits) {
            // A truncated tag is no JWS HMAC (SOURCES.md): not applicable.
            counts.not_applicable += tests.len();
            continue;
        }
        let (key, pem_key) = keys_of(group, alg);
        for t in tests {
            let msg = hex(t["msg"].as_str().unwrap());
            let sig = hex(t["sig"].as_str().or(t["tag"].as_str()).unwrap());
            let comment = t["comment"].as_str().unwrap_or_default();
            let hmac_key;
            let key = if hash_bits != 0 {
                let k = crate::b64::encode_url(&hex(t["key"].as_str().unwrap()));
                let doc = json!({"keys": [{"kty": "oct", "k": k}]}).to_string();
                hmac_key = jwks::parse_jwks(doc.as_bytes())
                    .ok()
                    .and_then(|j| j.keys.into_iter().next())
                    .map(|k| k.material);
                &hmac_key
            } else {
                &key
            };
            let accepted = key.as_ref().is_some_and(|k| verifies(k, alg, &msg, &sig));
            let s_len_changed = comment.starts_with("s_len changed to ");
            let expected = match t["result"].as_str().unwrap() {
                "valid" => {
                    counts.valid += 1;
                    true
                }
                "invalid" if s_len_changed => {
                    counts.s_len_changed += 1;
                    true
                }
                "invalid" => {
                    counts.invalid += 1;
                    false
                }
                "acceptable" => {
                    counts.acceptable += 1;
                    false
                }
                other => panic!("{file}: result {other:?}"),
            };
            if accepted != expected {
                wrong.push(format!(
                    "{file} tcId {} ({}, {comment:?}, flags {}): {}",
                    t["tcId"],
                    t["result"],
                    t["flags"],
                    if accepted { "ACCEPTED" } else { "rejected" }
                ));
            }
            // The same key from its PEM accepts the genuine signatures too.
            if expected
                && let Some(pem_key) = &pem_key
                && !verifies(pem_key, alg, &msg, &sig)
            {
                wrong.push(format!(
                    "{file} tcId {}: rejected with the PEM key",
                    t["tcId"]
                ));
            }
        }
    }
    (counts, wrong)
}

/// Runs the files of one family, prints a line per file and a total, fails on any vector that
/// went the wrong way.
fn family(name: &str, files: &[(&str, Alg)]) {
    let (mut total, mut wrong, mut report) = (Counts::default(), Vec::new(), String::new());
    for &(file, alg) in files {
        let (c, w) = run(file, alg);
        writeln!(
            report,
            "wycheproof {file} ({alg:?}): {} valid accepted, {} invalid rejected, {} \"s_len changed\" accepted, {} acceptable rejected, {} not applicable, {} wrong",
            c.valid, c.invalid, c.s_len_changed, c.acceptable, c.not_applicable, w.len()
        )
        .unwrap();
        total.valid += c.valid;
        total.invalid += c.invalid;
        total.s_len_changed += c.s_len_changed;
        total.acceptable += c.acceptable;
        total.not_applicable += c.not_applicable;
        wrong.extend(w);
    }
    println!(
        "{report}wycheproof {name}: {} files, {} valid, {} invalid ({} of them \"s_len changed\", accepted), {} acceptable, {} not applicable, {} wrong",
        files.len(),
        total.valid,
        total.invalid + total.s_len_changed,
        total.s_len_changed,
        total.acceptable,
        total.not_applicable,
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "{name}: {} vectors went the wrong way:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

const ECDSA: &[(&str, Alg)] = &[
    ("ecdsa_secp256r1_sha256_p1363_test.json", Alg::ES256),
    ("ecdsa_secp384r1_sha384_p1363_test.json", Alg::ES384),
    ("ecdsa_secp521r1_sha512_p1363_test.json", Alg::ES512),
];
const ED25519: &[(&str, Alg)] = &[("ed25519_test.json", Alg::EdDSA)];
const HMAC: &[(&str, Alg)] = &[
    ("hmac_sha256_test.json", Alg::HS256),
    ("hmac_sha384_test.json", Alg::HS384),
    ("hmac_sha512_test.json", Alg::HS512),
];
const RSA_PKCS1: &[(&str, Alg)] = &[
    ("rsa_signature_2048_sha256_test.json", Alg::RS256),
    ("rsa_signature_2048_sha384_test.json", Alg::RS384),
    ("rsa_signature_2048_sha512_test.json", Alg::RS512),
    ("rsa_signature_3072_sha256_test.json", Alg::RS256),
    ("rsa_signature_3072_sha384_test.json", Alg::RS384),
    ("rsa_signature_3072_sha512_test.json", Alg::RS512),
    ("rsa_signature_4096_sha256_test.json", Alg::RS256),
    ("rsa_signature_4096_sha384_test.json", Alg::RS384),
    ("rsa_signature_4096_sha512_test.json", Alg::RS512),
];
const RSA_PSS: &[(&str, Alg)] = &[
    ("rsa_pss_2048_sha256_mgf1_0_test.json", Alg::PS256),
    ("rsa_pss_2048_sha256_mgf1_32_test.json", Alg::PS256),
    ("rsa_pss_2048_sha384_mgf1_48_test.json", Alg::PS384),
    ("rsa_pss_3072_sha256_mgf1_32_test.json", Alg::PS256),
    ("rsa_pss_4096_sha256_mgf1_32_test.json", Alg::PS256),
    ("rsa_pss_4096_sha384_mgf1_48_test.json", Alg::PS384),
    ("rsa_pss_4096_sha512_mgf1_64_test.json", Alg::PS512),
];

#[test]
fn every_vector_file_is_run() {
    let mut on_disk: Vec<String> = std::fs::read_dir(dir())
        .unwrap_or_else(|e| panic!("Wycheproof vectors missing: {} ({e})", dir().display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    on_disk.sort();
    let mut run: Vec<String> = [ECDSA, ED25519, HMAC, RSA_PKCS1, RSA_PSS]
        .concat()
        .iter()
        .map(|(f, _)| f.to_string())
        .collect();
    run.sort();
    assert_eq!(on_disk, run);
}

#[test]
fn ecdsa_p1363() {
    family("ECDSA P-256/384/521 (ES256/384/512)", ECDSA);
}

#[test]
fn ed25519() {
    family("Ed25519 (EdDSA)", ED25519);
}

#[test]
fn hmac() {
    family("HMAC-SHA256/384/512 (HS256/384/512)", HMAC);
}

#[test]
fn rsa_pkcs1v15() {
    family("RSA PKCS#1 v1.5 (RS256/384/512)", RSA_PKCS1);
}

#[test]
fn rsa_pss() {
    family("RSA-PSS (PS256/384/512)", RSA_PSS);
}

#[test]
fn pss_checks_its_group_parameters() {
    // The files run as PS* use MGF1 with the signature's own hash, as JWS does.
    for &(file, alg) in RSA_PSS {
        let sha = match alg {
            Alg::PS256 => "SHA-256",
            Alg::PS384 => "SHA-384",
            _ => "SHA-512",
        };
        for g in load(file)["testGroups"].as_array().unwrap() {
            assert_eq!(
                (g["sha"].as_str(), g["mgf"].as_str(), g["mgfSha"].as_str()),
                (Some(sha), Some("MGF1"), Some(sha)),
                "{file}"
            );
        }
    }
}
