//! The RSA public operation (`s^e mod n`) and the two JWS paddings (PKCS#1 v1.5 for RS*, PSS
//! for PS*), fast enough for wasm.
//!
//! The `rsa` crate's generic big-number code costs about 2.6 ms per RS256 verification in wasm
//! (its 64-bit limbs need 128-bit products, which wasm lacks). Here: Montgomery multiplication
//! on 32-bit limbs with 64-bit products, and the constants of each key computed once, when the
//! key is parsed. Only public values are involved (signature, key), so nothing needs to be
//! constant-time. The `rsa` crate still parses keys, and checks this code in the tests.

use sha2::{Digest, Sha256, Sha384, Sha512};

/// An RSA public key ready for fast verification.
#[derive(Clone)]
pub struct RsaKey {
    /// The modulus, little-endian 32-bit limbs.
    n: Vec<u32>,
    /// The public exponent, big-endian bytes.
    e: Vec<u8>,
    /// `-n^-1 mod 2^32`.
    n0inv: u32,
    /// `R^2 mod n`, R = 2^(32·limbs), little-endian limbs.
    rr: Vec<u32>,
    /// Modulus size in bytes and bits.
    k: usize,
    bits: usize,
}

/// The hash of a JWS algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hash {
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Hash::Sha256 => run::<Sha256>(parts),
            Hash::Sha384 => run::<Sha384>(parts),
            Hash::Sha512 => run::<Sha512>(parts),
        }
    }

    fn len(self) -> usize {
        match self {
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }

    /// The DER `DigestInfo` prefix of PKCS#1 v1.5 signatures.
    fn digest_info(self) -> &'static [u8] {
        match self {
            Hash::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            Hash::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            Hash::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }
}

/// Big-endian bytes → little-endian limbs, exactly `limbs` long (`None` if it does not fit).
fn to_limbs(bytes: &[u8], limbs: usize) -> Option<Vec<u32>> {
    let mut out = vec![0u32; limbs];
    for (i, chunk) in bytes.rchunks(4).enumerate() {
        let v = chunk.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b));
        match out.get_mut(i) {
            Some(slot) => *slot = v,
            None if v == 0 => {}
            None => return None,
        }
    }
    Some(out)
}

/// Little-endian limbs → `len` big-endian bytes.
fn to_bytes(limbs: &[u32], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    for (i, byte) in out.iter_mut().rev().enumerate() {
        if let Some(limb) = limbs.get(i / 4) {
            *byte = (limb >> (8 * (i % 4))) as u8;
        }
    }
    out
}

/// `a >= b` for equal-length little-endian limbs.
fn ge(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a -= b`, returns the borrow.
fn sub_assign(a: &mut [u32], b: &[u32]) -> bool {
    let mut borrow = 0u64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = u64::from(*x)
            .wrapping_sub(u64::from(y))
            .wrapping_sub(borrow);
        *x = d as u32;
        borrow = (d >> 63) & 1;
    }
    borrow != 0
}

/// Montgomery product `t = a·b·R^-1 mod n`: multiplication and reduction interleaved in one
/// pass over the limbs (FIOS). All four slices have the modulus' length; `t` must not alias
/// `a` or `b`. Iterators only, so there is no bounds check in the inner loop, and no panic.
/// Inlined into [`mont_mul_fixed`], where the length is a constant the compiler unrolls for.
#[inline(always)]
fn mont_mul(t: &mut [u32], a: &[u32], b: &[u32], n: &[u32], n0inv: u32) {
    t.fill(0);
    let mut top = 0u64; // the words above t
    let (Some(&a0), Some(&n0)) = (a.first(), n.first()) else {
        return;
    };
    for &bi in b {
        let bi = u64::from(bi);
        let mut words = t.iter_mut();
        let Some(mut prev) = words.next() else { return };
        let v = u64::from(*prev) + u64::from(a0) * bi;
        let m = u64::from((v as u32).wrapping_mul(n0inv));
        let mut c1 = v >> 32;
        let mut c2 = (u64::from(v as u32) + m * u64::from(n0)) >> 32;
        for ((tj, &aj), &nj) in words.zip(a.iter().skip(1)).zip(n.iter().skip(1)) {
            let v = u64::from(*tj) + u64::from(aj) * bi + c1;
            c1 = v >> 32;
            let w = u64::from(v as u32) + m * u64::from(nj) + c2;
            c2 = w >> 32;
            *prev = w as u32;
            prev = tj;
        }
        let v = top + c1 + c2;
        *prev = v as u32;
        top = v >> 32;
    }
    if top != 0 || ge(t, n) {
        sub_assign(t, n);
    }
}

/// Montgomery square `t = a²·R^-1 mod n`, a quarter fewer multiplications than [`mont_mul`]:
/// the full square first (each cross product once, then doubled), then the reduction (SOS).
/// `wide` is scratch of twice the modulus' length plus one.
#[inline(always)]
fn mont_sqr(t: &mut [u32], a: &[u32], n: &[u32], n0inv: u32, wide: &mut [u32]) {
    wide.fill(0);
    // Cross products a[i]·a[j], j > i, at i + j.
    for (i, &ai) in a.iter().enumerate() {
        let ai = u64::from(ai);
        let Some(row) = wide.get_mut(2 * i + 1..) else {
            break;
        };
        let mut carry = 0u64;
        let mut words = row.iter_mut();
        // The finite iterator first: zip must not consume a word past the end of `a`.
        for (&aj, w) in a.iter().skip(i + 1).zip(words.by_ref()) {
            let v = u64::from(*w) + ai * u64::from(aj) + carry;
            *w = v as u32;
            carry = v >> 32;
        }
        if let Some(w) = words.next() {
            *w = carry as u32;
        }
    }
    // Double, and add the squares a[i]² at 2i.
    let mut shifted_out = 0u32;
    for w in wide.iter_mut() {
        let next = *w >> 31;
        *w = (*w << 1) | shifted_out;
        shifted_out = next;
    }
    let mut carry = 0u64;
    let mut words = wide.iter_mut();
    for &ai in a {
        let sq = u64::from(ai) * u64::from(ai);
        let (Some(lo), Some(hi)) = (words.next(), words.next()) else {
            break;
        };
        let v = u64::from(*lo) + (sq & 0xffff_ffff) + carry;
        *lo = v as u32;
        let v = u64::from(*hi) + (sq >> 32) + (v >> 32);
        *hi = v as u32;
        carry = v >> 32;
    }
    for w in words {
        let v = u64::from(*w) + carry;
        *w = v as u32;
        carry = v >> 32;
    }
    // Reduce: add m·n at word i so that word i becomes zero, for every i below the modulus length.
    let len = n.len();
    for i in 0..len {
        let Some(window) = wide.get_mut(i..) else {
            break;
        };
        let Some(&w0) = window.first() else { break };
        let m = u64::from(w0.wrapping_mul(n0inv));
        let mut carry = 0u64;
        let mut words = window.iter_mut();
        for (&nj, w) in n.iter().zip(words.by_ref()) {
            let v = u64::from(*w) + m * u64::from(nj) + carry;
            *w = v as u32;
            carry = v >> 32;
        }
        for w in words {
            if carry == 0 {
                break;
            }
            let v = u64::from(*w) + carry;
            *w = v as u32;
            carry = v >> 32;
        }
    }
    let Some(high) = wide.get(len..) else { return };
    t.iter_mut().zip(high).for_each(|(t, h)| *t = *h);
    let overflow = high.get(len).is_some_and(|&top| top != 0);
    if overflow || ge(t, n) {
        sub_assign(t, n);
    }
}

/// [`mont_mul`] for one key size known at compile time (2048, 3072 or 4096 bits).
fn mont_mul_fixed<const S: usize>(
    t: &mut [u32; S],
    a: &[u32; S],
    b: &[u32; S],
    n: &[u32; S],
    n0inv: u32,
) {
    mont_mul(t, a, b, n, n0inv);
}

/// Left-to-right square-and-multiply of `base` (Montgomery form) by the bits of `e`, then out of
/// the Montgomery domain. Generic over the limb buffer so fixed sizes keep their arrays.
fn exponentiate<B: Clone + AsRef<[u32]>>(
    e: &[u8],
    base: &B,
    one: &B,
    mul: impl Fn(&mut B, &B, &B),
    mut sqr: impl FnMut(&mut B, &B),
) -> B {
    let mut acc = base.clone();
    let mut scratch = base.clone();
    let mut started = false;
    for &byte in e {
        for bit in (0..8).rev() {
            if started {
                sqr(&mut scratch, &acc);
                std::mem::swap(&mut acc, &mut scratch);
            }
            if (byte >> bit) & 1 == 1 {
                if started {
                    mul(&mut scratch, &acc, base);
                    std::mem::swap(&mut acc, &mut scratch);
                }
                started = true;
            }
        }
    }
    mul(&mut scratch, &acc, one);
    scratch
}

impl RsaKey {
    /// From the big-endian modulus and exponent. `None` for an even, tiny or zero modulus.
    pub fn new(n_be: &[u8], e_be: &[u8]) -> Option<RsaKey> {
        let first = n_be.iter().position(|&b| b != 0)?;
        let n_be = n_be.get(first..)?;
        let k = n_be.len();
        let bits = k * 8 - n_be.first()?.leading_zeros() as usize;
        if bits < 512 || n_be.last()? & 1 == 0 {
            return None;
        }
        let e_first = e_be.iter().position(|&b| b != 0)?;
        let limbs = k.div_ceil(4);
        let n = to_limbs(n_be, limbs)?;
        // Newton's iteration for n0^-1 mod 2^32 (n0 odd).
        let n0 = *n.first()?;
        let mut inv: u32 = 1;
        for _ in 0..5 {
            inv = inv.wrapping_mul(2u32.wrapping_sub(n0.wrapping_mul(inv)));
        }
        // R^2 mod n by doubling 1, 2·32·limbs times, mod n.
        let mut rr = vec![0u32; limbs];
        *rr.first_mut()? = 1;
        for _ in 0..(64 * limbs) {
            let mut carry = 0u32;
            for limb in rr.iter_mut() {
                let next = *limb >> 31;
                *limb = (*limb << 1) | carry;
                carry = next;
            }
            if carry != 0 || ge(&rr, &n) {
                sub_assign(&mut rr, &n);
            }
        }
        Some(RsaKey {
            n,
            e: e_be.get(e_first..)?.to_vec(),
            n0inv: inv.wrapping_neg(),
            rr,
            k,
            bits,
        })
    }

    /// `s^e mod n` as `k` big-endian bytes; `None` when the signature is not `k` bytes or not
    /// below `n`.
    fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.k {
            return None;
        }
        let s = to_limbs(signature, self.n.len())?;
        if ge(&s, &self.n) {
            return None;
        }
        let limbs = match self.n.len() {
            64 => self.public_op_fixed::<64>(&s),
            96 => self.public_op_fixed::<96>(&s),
            128 => self.public_op_fixed::<128>(&s),
            _ => {
                let (n, inv) = (self.n.as_slice(), self.n0inv);
                let mul = |t: &mut Vec<u32>, a: &Vec<u32>, b: &Vec<u32>| mont_mul(t, a, b, n, inv);
                let mut base = vec![0u32; n.len()];
                mul(&mut base, &s, &self.rr);
                let mut one = vec![0u32; n.len()];
                *one.first_mut()? = 1;
                let mut wide = vec![0u32; 2 * n.len() + 1];
                let sqr = |t: &mut Vec<u32>, a: &Vec<u32>| mont_sqr(t, a, n, inv, &mut wide);
                Some(exponentiate(&self.e, &base, &one, mul, sqr))
            }
        }?;
        Some(to_bytes(&limbs, self.k))
    }

    fn public_op_fixed<const S: usize>(&self, s: &[u32]) -> Option<Vec<u32>> {
        let n: &[u32; S] = self.n.as_slice().try_into().ok()?;
        let rr: &[u32; S] = self.rr.as_slice().try_into().ok()?;
        let s: &[u32; S] = s.try_into().ok()?;
        let inv = self.n0inv;
        let mul = |t: &mut [u32; S], a: &[u32; S], b: &[u32; S]| mont_mul_fixed(t, a, b, n, inv);
        let mut base = [0u32; S];
        mul(&mut base, s, rr);
        let mut one = [0u32; S];
        *one.first_mut()? = 1;
        let mut wide = vec![0u32; 2 * S + 1];
        let sqr = |t: &mut [u32; S], a: &[u32; S]| mont_sqr(t, a, n, inv, &mut wide);
        Some(exponentiate(&self.e, &base, &one, mul, sqr).to_vec())
    }

    /// RSASSA-PKCS1-v1_5 (RS256/384/512).
    pub fn verify_pkcs1v15(&self, hash: Hash, msg: &[u8], signature: &[u8]) -> bool {
        let Some(em) = self.public_op(signature) else {
            return false;
        };
        let t = hash.digest_info();
        let h = hash.digest(&[msg]);
        let Some(ps_len) = self.k.checked_sub(3 + t.len() + h.len()) else {
            return false;
        };
        if ps_len < 8 {
            return false;
        }
        let mut expected = Vec::with_capacity(self.k);
        expected.extend([0x00, 0x01]);
        expected.resize(2 + ps_len, 0xff);
        expected.push(0x00);
        expected.extend(t);
        expected.extend(&h);
        em == expected
    }

    /// RSASSA-PSS with MGF1 of the same hash and a salt as long as the hash (PS256/384/512).
    pub fn verify_pss(&self, hash: Hash, msg: &[u8], signature: &[u8]) -> bool {
        let Some(em_full) = self.public_op(signature) else {
            return false;
        };
        let h_len = hash.len();
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        // `em_full` is k bytes; the encoded message is its last em_len bytes.
        let Some(skip) = self.k.checked_sub(em_len) else {
            return false;
        };
        if em_full
            .get(..skip)
            .is_none_or(|lead| lead.iter().any(|&b| b != 0))
        {
            return false;
        }
        let Some(em) = em_full.get(skip..) else {
            return false;
        };
        let s_len = h_len;
        if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
            return false;
        }
        let db_len = em_len - h_len - 1;
        let (Some(masked_db), Some(hh)) = (em.get(..db_len), em.get(db_len..em_len - 1)) else {
            return false;
        };
        let zero_bits = 8 * em_len - em_bits;
        let top_mask = 0xffu8.checked_shr(zero_bits as u32).unwrap_or(0);
        if masked_db.first().is_none_or(|&b| b & !top_mask != 0) {
            return false;
        }
        // MGF1(H, db_len)
        let mut db = Vec::with_capacity(db_len + h_len);
        let mut counter: u32 = 0;
        while db.len() < db_len {
            db.extend(hash.digest(&[hh, &counter.to_be_bytes()]));
            counter += 1;
        }
        db.truncate(db_len);
        for (d, m) in db.iter_mut().zip(masked_db) {
            *d ^= m;
        }
        if let Some(first) = db.first_mut() {
            *first &= top_mask;
        }
        let ps_len = em_len - h_len - s_len - 2;
        if db.get(..ps_len).is_none_or(|ps| ps.iter().any(|&b| b != 0))
            || db.get(ps_len) != Some(&0x01)
        {
            return false;
        }
        let Some(salt) = db.get(ps_len + 1..) else {
            return false;
        };
        let m_hash = hash.digest(&[msg]);
        hash.digest(&[&[0u8; 8], &m_hash, salt]) == hh
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::traits::PublicKeyParts;
    use rsa::{Pkcs1v15Sign, Pss, RsaPublicKey};

    use crate::testkit::{pem, token};

    fn keys() -> (RsaPublicKey, RsaKey) {
        use rsa::pkcs8::DecodePublicKey;
        let k = RsaPublicKey::from_public_key_pem(&pem("rsa")).unwrap();
        let fast = RsaKey::new(&k.n().to_bytes_be(), &k.e().to_bytes_be()).unwrap();
        (k, fast)
    }

    fn parts(name: &str) -> (Vec<u8>, Vec<u8>) {
        let t = token(name);
        let (signed, sig) = t.rsplit_once('.').unwrap();
        (
            signed.as_bytes().to_vec(),
            crate::b64::decode_url(sig).unwrap(),
        )
    }

    #[test]
    fn public_op_matches_the_rsa_crate() {
        let (k, fast) = keys();
        let (_, sig) = parts("RS256");
        let slow = rsa::BigUint::from_bytes_be(&sig).modpow(k.e(), k.n());
        assert_eq!(fast.public_op(&sig).unwrap(), {
            let b = slow.to_bytes_be();
            let mut v = vec![0; 256 - b.len()];
            v.extend(b);
            v
        });
    }

    #[test]
    fn every_rsa_algorithm_of_the_fixtures_verifies() {
        let (_, fast) = keys();
        for (name, pss, hash) in [
            ("RS256", false, Hash::Sha256),
            ("RS384", false, Hash::Sha384),
            ("RS512", false, Hash::Sha512),
            ("PS256", true, Hash::Sha256),
            ("PS384", true, Hash::Sha384),
            ("PS512", true, Hash::Sha512),
        ] {
            let (msg, sig) = parts(name);
            let ok = if pss {
                fast.verify_pss(hash, &msg, &sig)
            } else {
                fast.verify_pkcs1v15(hash, &msg, &sig)
            };
            assert!(ok, "{name}");
            let wrong_hash = if hash == Hash::Sha256 {
                Hash::Sha384
            } else {
                Hash::Sha256
            };
            let bad = if pss {
                fast.verify_pss(wrong_hash, &msg, &sig)
            } else {
                fast.verify_pkcs1v15(wrong_hash, &msg, &sig)
            };
            assert!(!bad, "{name} with another hash");
            let mut other = msg.clone();
            other[0] ^= 1;
            assert!(!fast.verify_pkcs1v15(hash, &other, &sig) || pss);
            assert!(!fast.verify_pss(hash, &other, &sig) || !pss);
        }
    }

    #[test]
    fn agrees_with_the_rsa_crate_on_mangled_signatures() {
        let (k, fast) = keys();
        let (msg, sig) = parts("RS256");
        let hashed = Sha256::digest(&msg);
        for i in 0..sig.len() {
            let mut s = sig.clone();
            s[i] ^= 0x55;
            let expected = k.verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, &s).is_ok();
            assert_eq!(
                fast.verify_pkcs1v15(Hash::Sha256, &msg, &s),
                expected,
                "byte {i}"
            );
        }
        let (msg, sig) = parts("PS256");
        let hashed = Sha256::digest(&msg);
        for i in (0..sig.len()).step_by(7) {
            let mut s = sig.clone();
            s[i] ^= 0x80;
            let expected = k.verify(Pss::new::<Sha256>(), &hashed, &s).is_ok();
            assert_eq!(
                fast.verify_pss(Hash::Sha256, &msg, &s),
                expected,
                "byte {i}"
            );
        }
        assert!(
            !fast.verify_pkcs1v15(Hash::Sha256, &msg, &sig[1..]),
            "short signature"
        );
        assert!(
            !fast.verify_pkcs1v15(Hash::Sha256, &msg, &[0xff; 256]),
            "signature above n"
        );
    }

    #[test]
    fn squaring_equals_multiplying_by_itself() {
        let (_, fast) = keys();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u32
        };
        let len = fast.n.len();
        let mut wide = vec![0u32; 2 * len + 1];
        for round in 0..200 {
            let mut a: Vec<u32> = (0..len).map(|_| next()).collect();
            if round % 3 == 0 {
                a.iter_mut().for_each(|w| *w = u32::MAX); // the largest inputs
            }
            while ge(&a, &fast.n) {
                sub_assign(&mut a, &fast.n);
            }
            let (mut by_mul, mut by_sqr) = (vec![0u32; len], vec![0u32; len]);
            mont_mul(&mut by_mul, &a, &a, &fast.n, fast.n0inv);
            mont_sqr(&mut by_sqr, &a, &fast.n, fast.n0inv, &mut wide);
            assert_eq!(by_mul, by_sqr, "round {round}");
        }
    }

    #[test]
    fn rejects_bad_moduli() {
        assert!(RsaKey::new(&[0; 256], &[1, 0, 1]).is_none());
        assert!(RsaKey::new(&[0xff; 32], &[1, 0, 1]).is_none(), "too small");
        let mut even = vec![0xff; 256];
        even[255] = 0xfe;
        assert!(RsaKey::new(&even, &[1, 0, 1]).is_none());
        assert!(RsaKey::new(&[0xff; 256], &[0]).is_none());
    }
}
