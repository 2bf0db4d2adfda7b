//! Our ECDSA verification against Wycheproof and against RustCrypto (the reference): random
//! keys, messages and signatures, mutated signatures, and constructed edge cases (`u1`, `u2` at
//! 0, 1, n-1; sums at infinity; keys `±G`, `2^span·G` whose tables collide with `G`'s, so that the
//! interleaved additions meet `P == Q` and `P == -Q`).

use super::*;
use rsa::BigUint;
use sha2::Digest as _;

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn pad(v: &BigUint, len: usize) -> Vec<u8> {
    let b = v.to_bytes_be();
    assert!(b.len() <= len);
    [vec![0; len - b.len()], b].concat()
}

fn wycheproof(file: &str) -> serde_json::Value {
    let path = format!(
        "{}/../shared/conformance/wycheproof/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (the Wycheproof vectors are required)"));
    serde_json::from_str(&text).unwrap()
}

macro_rules! curve_tests {
    ($name:ident, $rc:ident, $hash:ty, $id:expr, $curve:expr, $file:literal) => {
        mod $name {
            use super::*;
            use ::$rc::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
            use ::$rc::ecdsa::{Signature, SigningKey, VerifyingKey};
            use ::$rc::elliptic_curve::PrimeField as _;
            use ::$rc::elliptic_curve::point::AffineCoordinates as _;

            fn curve() -> &'static Curve<{ curve_limbs() }> {
                $curve().unwrap()
            }

            const fn curve_limbs() -> usize {
                match $id {
                    CurveId::P256 => 9,
                    CurveId::P384 => 14,
                    CurveId::P521 => 18,
                }
            }

            fn n() -> BigUint {
                BigUint::from_bytes_be(&field::to_be_bytes(&curve().fnn.m, curve().bytes))
            }

            fn ours(vk: &VerifyingKey) -> PublicKey {
                public_key($id, vk.to_sec1_point(false).as_bytes()).unwrap()
            }

            /// Our verdict and RustCrypto's on a prehash and a P1363 signature.
            fn both(
                vk: &VerifyingKey,
                key: &PublicKey,
                prehash: &[u8],
                sig: &[u8],
            ) -> (bool, bool) {
                let theirs = Signature::from_slice(sig)
                    .is_ok_and(|s| vk.verify_prehash(prehash, &s).is_ok());
                (verify_p1363(key, prehash, sig), theirs)
            }

            fn key_of(d: &BigUint) -> (SigningKey, VerifyingKey) {
                let sk = SigningKey::from_slice(&pad(d, curve().bytes)).unwrap();
                let vk = *sk.verifying_key();
                (sk, vk)
            }

            /// x(k·G) mod n, or None for k ≡ 0.
            fn x_of_k_g(k: &BigUint) -> Option<BigUint> {
                let k = k % n();
                if k == BigUint::from(0u32) {
                    return None;
                }
                let repr = pad(&k, curve().bytes);
                let scalar = ::$rc::Scalar::from_repr(repr.as_slice().try_into().unwrap()).unwrap();
                let p = (::$rc::ProjectivePoint::GENERATOR * scalar).to_affine();
                Some(BigUint::from_bytes_be(&p.x()) % n())
            }

            /// A hash whose integer (its leftmost `bits` bits) is `e`.
            fn hash_of(e: &BigUint) -> Vec<u8> {
                let len = curve().bits.div_ceil(8);
                pad(&(e << (len * 8 - curve().bits)), len)
            }

            fn inv(a: &BigUint) -> BigUint {
                a.modpow(&(n() - 2u32), &n())
            }

            #[test]
            fn wycheproof_p1363_vectors() {
                let doc = wycheproof($file);
                let (mut valid, mut invalid) = (0, 0);
                for group in doc["testGroups"].as_array().unwrap() {
                    let sec1 = unhex(group["publicKey"]["uncompressed"].as_str().unwrap());
                    assert!(VerifyingKey::from_sec1_bytes(&sec1).is_ok());
                    let key = public_key($id, &sec1).unwrap();
                    for t in group["tests"].as_array().unwrap() {
                        let msg = unhex(t["msg"].as_str().unwrap());
                        let sig = unhex(t["sig"].as_str().unwrap());
                        let hash = <$hash>::digest(&msg);
                        let got = verify_p1363(&key, &hash, &sig);
                        let want = match t["result"].as_str().unwrap() {
                            "valid" => true,
                            "invalid" => false,
                            other => panic!("tcId {}: result {other}", t["tcId"]),
                        };
                        assert_eq!(got, want, "tcId {} ({})", t["tcId"], t["comment"]);
                        if want { valid += 1 } else { invalid += 1 }
                    }
                }
                let total = doc["numberOfTests"].as_u64().unwrap();
                assert_eq!(valid + invalid, total);
                eprintln!(
                    "{}: {valid} valid accepted, {invalid} invalid rejected",
                    $file
                );
            }

            #[test]
            fn agrees_with_rustcrypto_on_random_and_mutated_signatures() {
                let mut next = rng(0x5eed ^ curve().bits as u64);
                for _ in 0..6 {
                    let d: Vec<u8> = (0..curve().bytes).map(|_| next() as u8).collect();
                    let d = BigUint::from_bytes_be(&d) % n();
                    if d == BigUint::from(0u32) {
                        continue;
                    }
                    let (sk, vk) = key_of(&d);
                    let key = ours(&vk);
                    for _ in 0..4 {
                        let msg: Vec<u8> =
                            (0..(next() % 64) as usize).map(|_| next() as u8).collect();
                        let hash = <$hash>::digest(&msg);
                        let sig: Signature = sk.sign_prehash(&hash).unwrap();
                        let sig = sig.to_bytes().to_vec();
                        assert_eq!(both(&vk, &key, &hash, &sig), (true, true));
                        // One bit flipped anywhere, another hash, r and s swapped, s negated,
                        // random bytes, truncated.
                        let mut flipped = sig.clone();
                        let bit = (next() as usize) % (8 * sig.len());
                        flipped[bit / 8] ^= 1 << (bit % 8);
                        assert_eq!(both(&vk, &key, &hash, &flipped), (false, false));
                        let other = <$hash>::digest(b"other");
                        assert_eq!(both(&vk, &key, &other, &sig), (false, false));
                        let (r, s) = sig.split_at(curve().bytes);
                        let swapped = [s, r].concat::<u8>();
                        let (a, b) = both(&vk, &key, &hash, &swapped);
                        assert_eq!(a, b);
                        let neg_s = pad(&(n() - BigUint::from_bytes_be(s)), curve().bytes);
                        let negated = [r, &neg_s].concat();
                        assert_eq!(
                            both(&vk, &key, &hash, &negated),
                            (true, true),
                            "-s is valid too"
                        );
                        let random: Vec<u8> = (0..sig.len()).map(|_| next() as u8).collect();
                        let (a, b) = both(&vk, &key, &hash, &random);
                        assert_eq!(a, b);
                        assert!(!verify_p1363(&key, &hash, &sig[1..]));
                        assert!(!verify_p1363(&key, &hash, &[]));
                    }
                }
            }

            /// r, s out of [1, n-1], and r = n-1, s = n-1.
            #[test]
            fn scalars_out_of_range_are_refused() {
                let (sk, vk) = key_of(&BigUint::from(12345u32));
                let key = ours(&vk);
                let hash = <$hash>::digest(b"edge");
                let sig: Signature = sk.sign_prehash(&hash).unwrap();
                let sig = sig.to_bytes().to_vec();
                let (r, s) = sig.split_at(curve().bytes);
                let len = curve().bytes;
                let zero = vec![0u8; len];
                let nb = pad(&n(), len);
                let n1 = pad(&(n() + 1u32), len);
                let nm1 = pad(&(n() - 1u32), len);
                let ones = vec![0xffu8; len];
                // r + n: the same residue, out of range.
                let rn = pad(&(BigUint::from_bytes_be(r) + n()), len + 1);
                for (rr, ss) in [
                    (&zero[..], s),
                    (r, &zero[..]),
                    (&nb[..], s),
                    (r, &nb[..]),
                    (&n1[..], s),
                    (r, &n1[..]),
                    (&ones[..], s),
                    (r, &ones[..]),
                ] {
                    let bad = [rr, ss].concat();
                    assert_eq!(both(&vk, &key, &hash, &bad), (false, false));
                }
                if rn[0] == 0 {
                    let bad = [&rn[1..], s].concat();
                    assert_eq!(both(&vk, &key, &hash, &bad), (false, false));
                }
                for (rr, ss) in [(&nm1[..], s), (r, &nm1[..]), (&nm1[..], &nm1[..])] {
                    let sig = [rr, ss].concat();
                    let (a, b) = both(&vk, &key, &hash, &sig);
                    assert_eq!(a, b);
                }
            }

            /// Signatures made to give chosen `u1`, `u2` (we choose the hash too): for key `d`,
            /// `R = (u1 + u2·d)·G`, `r = x(R) mod n`, `s = r/u2`, `e = u1·s`.
            #[test]
            fn edge_scalars_and_colliding_tables() {
                let n = n();
                let one = BigUint::from(1u32);
                let span = point::span(curve().bits, PARTS);
                let mut next = rng(99);
                let mut random = || {
                    let v: Vec<u8> = (0..curve().bytes).map(|_| next() as u8).collect();
                    BigUint::from_bytes_be(&v) % &n
                };
                let keys = [
                    one.clone(),
                    BigUint::from(2u32),
                    BigUint::from(3u32),
                    &n - 1u32,
                    &n - 2u32,
                    one.clone() << span,
                    &n - (one.clone() << span),
                    one.clone() << (2 * span),
                    random(),
                ];
                let mut checked = 0;
                for d in &keys {
                    let (_, vk) = key_of(d);
                    let key = ours(&vk);
                    let r0 = random();
                    let mut pairs = vec![];
                    for u2 in [one.clone(), BigUint::from(2u32), &n - 1u32, random()] {
                        for u1 in [
                            BigUint::from(0u32),
                            one.clone(),
                            &n - 1u32,
                            u2.clone(),
                            &n - &u2,
                            (&u2 * d) % &n,                    // u1·G == u2·Q
                            (&n - (&u2 * d) % &n) % &n,        // u1·G == -u2·Q: the sum is infinity
                            (&n - (&u2 * d) % &n + 1u32) % &n, // the sum is G
                            random(),
                        ] {
                            pairs.push((u1, u2.clone()));
                        }
                    }
                    for (u1, u2) in pairs {
                        let k = (&u1 + &u2 * d) % &n;
                        let (r, expect) = match x_of_k_g(&k) {
                            Some(x) if x != BigUint::from(0u32) => (x, true),
                            _ => (r0.clone(), false), // R at infinity: never valid
                        };
                        let s = (&r * inv(&u2)) % &n;
                        let e = (&u1 * &s) % &n;
                        let sig = [pad(&r, curve().bytes), pad(&s, curve().bytes)].concat();
                        // RustCrypto reads a prehash as long as n's bytes by its low `bits`
                        // bits (SEC1 says the leftmost: P-521's 66 bytes differ); JWS hashes
                        // are never longer than n, where both read it whole.
                        let theirs = Signature::from_slice(&sig)
                            .is_ok_and(|s| vk.verify_prehash(&pad(&e, curve().bytes), &s).is_ok());
                        let got = (verify_p1363(&key, &hash_of(&e), &sig), theirs);
                        assert_eq!(got, (expect, expect), "d {d:x} u1 {u1:x} u2 {u2:x}");
                        checked += 1;
                    }
                }
                assert!(checked > 300);
            }

            #[test]
            fn generator_and_tables_are_right() {
                let c = curve();
                let g = ::$rc::ProjectivePoint::GENERATOR.to_affine();
                let gx = field::to_be_bytes(&c.fp.from_mont(&c.g.x), c.bytes);
                assert_eq!(gx.as_slice(), &g.x()[..]);
                let key = public_key(
                    $id,
                    &[
                        &[4u8][..],
                        &gx,
                        &field::to_be_bytes(&c.fp.from_mont(&c.g.y), c.bytes),
                    ]
                    .concat(),
                );
                assert!(key.is_some());
                // Not on the curve, infinity's encoding, compressed, wrong lengths.
                let mut bad = [&[4u8][..], &gx, &gx].concat();
                assert!(public_key($id, &bad).is_none());
                bad[0] = 0;
                assert!(public_key($id, &bad[..1]).is_none());
                assert!(public_key($id, &[&[2u8][..], &gx].concat()).is_none());
                assert!(public_key($id, &[]).is_none());
            }
        }
    };
}

curve_tests!(
    p256,
    p256,
    sha2::Sha256,
    CurveId::P256,
    curves::p256,
    "ecdsa_secp256r1_sha256_p1363_test.json"
);
curve_tests!(
    p384,
    p384,
    sha2::Sha384,
    CurveId::P384,
    curves::p384,
    "ecdsa_secp384r1_sha384_p1363_test.json"
);
curve_tests!(
    p521,
    p521,
    sha2::Sha512,
    CurveId::P521,
    curves::p521,
    "ecdsa_secp521r1_sha512_p1363_test.json"
);

#[test]
fn a_hash_longer_than_n_keeps_its_leftmost_bits() {
    let p256 = curves::p256().unwrap();
    let mut long = [0u8; 64];
    long[31] = 1; // leftmost 256 bits = 1
    long[63] = 0xff;
    assert_eq!(p256.hash_to_scalar(&long), Some(field::small(1)));
    let p521 = curves::p521().unwrap();
    let mut h66 = [0u8; 66];
    h66[65] = 0x80; // bit 7 of 528: the leftmost 521 bits are 1
    assert_eq!(p521.hash_to_scalar(&h66), Some(field::small(1)));
    h66[65] = 0x7f; // below bit 7: dropped
    assert_eq!(p521.hash_to_scalar(&h66), Some(field::small(0)));
    // SHA-512 under P-521: 512 bits, read whole.
    let mut h64 = [0u8; 64];
    h64[63] = 5;
    assert_eq!(p521.hash_to_scalar(&h64), Some(field::small(5)));
    // At or above n: reduced once.
    let n = field::to_be_bytes(&p256.fnn.m, 32);
    assert_eq!(p256.hash_to_scalar(&n), Some(field::small(0)));
}
