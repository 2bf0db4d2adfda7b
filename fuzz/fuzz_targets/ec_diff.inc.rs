// The body of the differential fuzz targets ec_diff_p256/p384/p521 (included by each): our ECDSA
// verification (`crypto::ec`, what the filter runs) against RustCrypto's, which must agree on
// every input. Keys: 16 fixed ones (d = 1, 2, 3, n-1, n-2, 2^span, -2^span, 2^2span, 2^3span,
// ... whose tables collide with G's) or one derived from the input. Signatures: made by
// RustCrypto then mutated, raw input bytes, edge values of r and s, made for chosen u1, u2
// (0, 1, n-1, ±u2·d: sums and intermediate additions at infinity or doubling), and r + n.
use jwt_policy_filter::crypto::ec::{self, PublicKey, field, point};
use libfuzzer_sys::fuzz_target;
use rc::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
use rc::ecdsa::{Signature, SigningKey, VerifyingKey};
use rc::elliptic_curve::PrimeField as _;
use rc::elliptic_curve::point::AffineCoordinates as _;
use sha2::Digest as _;
use std::sync::OnceLock;

type Fe = field::Fe<LIMBS>;

struct Key {
    sk: SigningKey,
    vk: VerifyingKey,
    ours: PublicKey,
    d: Fe,
}

fn curve() -> &'static ec::Curve<LIMBS> {
    CURVE().unwrap_or_else(|| std::process::abort())
}

fn n() -> Fe {
    curve().fnn.m
}

fn bytes_of(v: &Fe) -> Vec<u8> {
    field::to_be_bytes(v, curve().bytes)
}

/// Input bytes as a scalar below n (reduced by subtraction; at most `bytes` of them).
fn scalar(b: &[u8]) -> Fe {
    let len = curve().bytes;
    let mut raw = vec![0u8; len];
    let take = b.len().min(len);
    raw[len - take..].copy_from_slice(&b[..take]);
    if let Some(first) = raw.first_mut() {
        // At most the bits of n, then at most one subtraction.
        let extra = (len * 8 - curve().bits) as u32;
        *first &= 0xffu8.checked_shr(extra).unwrap_or(0);
    }
    let v = field::from_be_bytes::<LIMBS>(&raw).unwrap_or([0; LIMBS]);
    if field::ge(&v, &n()) { field::sub_plain(&v, &n()).0 } else { v }
}

fn make_key(d: &Fe) -> Option<Key> {
    let sk = SigningKey::from_slice(&bytes_of(d)).ok()?;
    let vk = *sk.verifying_key();
    let ours = ec::public_key(CURVE_ID, vk.to_sec1_point(false).as_bytes())?;
    Some(Key { sk, vk, ours, d: *d })
}

fn fixed_keys() -> &'static Vec<Key> {
    static KEYS: OnceLock<Vec<Key>> = OnceLock::new();
    KEYS.get_or_init(|| {
        let f = &curve().fnn;
        let span = point::span(curve().bits, ec::PARTS);
        let pow2 = |k: usize| {
            let mut v = field::small::<LIMBS>(1);
            for _ in 0..k {
                v = f.add(&v, &v);
            }
            v
        };
        let one = field::small::<LIMBS>(1);
        let mut ds = vec![
            one,
            field::small(2),
            field::small(3),
            f.neg(&one),
            f.neg(&field::small(2)),
            pow2(span),
            f.neg(&pow2(span)),
            pow2(2 * span),
            pow2(3 * span),
            f.add(&pow2(span), &one),
            pow2(curve().bits - 1),
        ];
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        while ds.len() < 16 {
            let b: Vec<u8> = (0..curve().bytes).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x as u8 }).collect();
            ds.push(scalar(&b));
        }
        ds.iter().filter_map(make_key).collect()
    })
}

/// The prehash each side reads as the integer `e` (below n): RustCrypto reads a prehash as long
/// as n's bytes by its low bits, SEC1 (and we) by its leftmost: they differ only for P-521's 66
/// bytes, never for a JWS hash (SHA-512 is 64 bytes).
fn prehashes(e: &Fe) -> (Vec<u8>, Vec<u8>) {
    let len = curve().bits.div_ceil(8);
    let theirs = bytes_of(e);
    let shift = (len * 8 - curve().bits) as u32;
    let mut ours = theirs.clone();
    if shift > 0 {
        let mut carry = 0u8;
        for b in ours.iter_mut().rev() {
            let next = *b >> (8 - shift);
            *b = (*b << shift) | carry;
            carry = next;
        }
    }
    (ours, theirs)
}

fn theirs(key: &Key, prehash: &[u8], sig: &[u8]) -> bool {
    Signature::from_slice(sig).is_ok_and(|s| key.vk.verify_prehash(prehash, &s).is_ok())
}

fn check(key: &Key, ours_hash: &[u8], their_hash: &[u8], sig: &[u8], what: &str) -> bool {
    let ours = ec::verify_p1363(&key.ours, ours_hash, sig);
    let reference = theirs(key, their_hash, sig);
    if ours != reference {
        panic!("{what}: ours {ours}, RustCrypto {reference}; sig {sig:02x?} hash {ours_hash:02x?}");
    }
    ours
}

/// x(k·G) mod n, or None for k = 0.
fn x_of(k: &Fe) -> Option<Fe> {
    if field::is_zero(k) {
        return None;
    }
    let repr = bytes_of(k);
    let s = Option::<rc::Scalar>::from(rc::Scalar::from_repr(repr.as_slice().try_into().ok()?))?;
    let p = (rc::ProjectivePoint::GENERATOR * s).to_affine();
    let x = field::from_be_bytes::<LIMBS>(&p.x())?;
    Some(if field::ge(&x, &n()) { field::sub_plain(&x, &n()).0 } else { x })
}

fn edge(sel: u8, random: &Fe) -> Fe {
    let f = &curve().fnn;
    match sel % 10 {
        0 => [0; LIMBS],
        1 => field::small(1),
        2 => field::small(2),
        3 => f.neg(&field::small(1)),
        4 => n(),
        5 => field::add_plain(&n(), &field::small(1)),
        6 => curve().fp.m,
        7 => field::from_be_bytes::<LIMBS>(&vec![0xff; curve().bytes]).unwrap_or([0; LIMBS]),
        _ => *random,
    }
}

fn run(data: &[u8]) {
    let (Some(&mode), Some(&which)) = (data.first(), data.get(1)) else { return };
    let rest = &data[2..];
    let bytes = curve().bytes;
    let fresh;
    let key = if which < 0xf0 {
        let keys = fixed_keys();
        &keys[usize::from(which) % keys.len()]
    } else {
        let d = scalar(rest.get(..bytes.min(rest.len())).unwrap_or_default());
        match make_key(&d) {
            Some(k) => {
                fresh = k;
                &fresh
            }
            None => return,
        }
    };
    let f = &curve().fnn;
    let msg = rest;
    let hash = Hash::digest(msg);
    match mode % 6 {
        // RustCrypto's signature, valid, then one bit flipped (where the input says).
        0 => {
            let sig: Signature = match key.sk.sign_prehash(&hash) {
                Ok(s) => s,
                Err(_) => return,
            };
            let mut sig = sig.to_bytes().to_vec();
            assert!(check(key, &hash, &hash, &sig, "valid"));
            let bit = rest.get(..2).map_or(0, |b| usize::from(b[0]) << 8 | usize::from(b.get(1).copied().unwrap_or(0)));
            let bit = bit % (8 * sig.len());
            sig[bit / 8] ^= 1 << (bit % 8);
            check(key, &hash, &hash, &sig, "flipped");
        }
        // Raw bytes as r || s (any length).
        1 => {
            let len = rest.first().map_or(0, |&l| usize::from(l) % (2 * bytes + 3));
            let sig = rest.get(1..1 + len).unwrap_or(rest);
            check(key, &hash, &hash, sig, "raw");
        }
        // Edge values of r and s.
        2 => {
            let sel = rest.first().copied().unwrap_or(0);
            let random = scalar(rest.get(1..).unwrap_or_default());
            let r = edge(sel, &random);
            let s = edge(sel / 10, &f.add(&random, &field::small(1)));
            let sig = [field::to_be_bytes(&r, bytes), field::to_be_bytes(&s, bytes)].concat();
            check(key, &hash, &hash, &sig, "edge r, s");
        }
        // A signature made for chosen u1, u2: R = (u1 + u2·d)·G, r = x(R), s = r/u2, e = u1·s.
        3 => {
            let sel = rest.first().copied().unwrap_or(0);
            let half = rest.len() / 2;
            let a = scalar(rest.get(1..half.max(1)).unwrap_or_default());
            let mut u2 = scalar(rest.get(half.max(1)..).unwrap_or_default());
            if field::is_zero(&u2) || sel & 0x80 != 0 {
                u2 = [field::small(1), field::small(2), f.neg(&field::small(1)), u2][usize::from(sel >> 5) & 3];
                if field::is_zero(&u2) {
                    u2 = field::small(1);
                }
            }
            let u2d = f.mul_plain(&u2, &key.d);
            let u1 = match sel % 10 {
                0 => [0; LIMBS],
                1 => field::small(1),
                2 => f.neg(&field::small(1)),
                3 => u2,
                4 => f.neg(&u2),
                5 => u2d,
                6 => f.neg(&u2d),                        // the sum is infinity
                7 => f.add(&f.neg(&u2d), &field::small(1)), // the sum is G
                _ => a,
            };
            let k = f.add(&u1, &u2d);
            let (r, valid) = match x_of(&k) {
                Some(x) if !field::is_zero(&x) => (x, true),
                _ => (f.add(&a, &field::small(1)), false),
            };
            let Some(w) = f.inv_plain(&u2) else { return };
            let s = f.mul_plain(&r, &w);
            let e = f.mul_plain(&u1, &s);
            let (ours_h, their_h) = prehashes(&e);
            let sig = [field::to_be_bytes(&r, bytes), field::to_be_bytes(&s, bytes)].concat();
            let got = check(key, &ours_h, &their_h, &sig, "chosen u1, u2");
            assert_eq!(got, valid, "chosen u1, u2: expected {valid}");
        }
        // Any prehash of a JWS hash's length, a raw signature.
        4 => {
            let hlen = Hash::output_size();
            let prehash: Vec<u8> = (0..hlen).map(|i| rest.get(i).copied().unwrap_or(0)).collect();
            let sig: Vec<u8> = (0..2 * bytes).map(|i| rest.get(hlen + i).copied().unwrap_or(0)).collect();
            check(key, &prehash, &prehash, &sig, "raw prehash");
        }
        // A valid signature with r + n (refused: out of range), or -s (valid too).
        _ => {
            let sig: Signature = match key.sk.sign_prehash(&hash) {
                Ok(s) => s,
                Err(_) => return,
            };
            let sig = sig.to_bytes().to_vec();
            let r = field::from_be_bytes::<LIMBS>(&sig[..bytes]).unwrap_or([0; LIMBS]);
            let s = field::from_be_bytes::<LIMBS>(&sig[bytes..]).unwrap_or([0; LIMBS]);
            let rn = field::add_plain(&r, &n());
            let with_rn = [field::to_be_bytes(&rn, bytes), sig[bytes..].to_vec()].concat();
            if field::from_be_bytes::<LIMBS>(&with_rn[..bytes]) == Some(rn) {
                assert!(!check(key, &hash, &hash, &with_rn, "r + n"));
            }
            let neg = [sig[..bytes].to_vec(), field::to_be_bytes(&f.neg(&s), bytes)].concat();
            assert!(check(key, &hash, &hash, &neg, "-s"));
        }
    }
}

fuzz_target!(|data: &[u8]| run(data));
