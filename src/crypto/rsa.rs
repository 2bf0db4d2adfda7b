//! The RSA public operation (`s^e mod n`) and the two JWS paddings (PKCS#1 v1.5 for RS*, PSS
//! for PS*), fast enough for wasm.
//!
//! The `rsa` crate's generic big-number code costs about 2.6 ms per RS256 verification in wasm
//! (its 64-bit limbs need 128-bit products, which wasm lacks). Here: the Montgomery arithmetic
//! of [`crate::mont`], with the constants of each key computed once, when the key is parsed.
//! Only public values are involved (signature, key), so nothing needs to be constant-time. The
//! `rsa` crate still parses keys, and checks this code in the tests.

use sha2::{Digest, Sha256, Sha384, Sha512};

use crate::crypto::mont::Ctx;

/// An RSA public key ready for fast verification.
#[derive(Clone)]
pub struct RsaKey {
    /// The modulus' Montgomery constants.
    ctx: Ctx,
    /// The public exponent, big-endian bytes.
    e: Vec<u8>,
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

/// Why an RSA public key is refused (jwt_verify_lib's rules, for JWKS and PEM alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsaKeyError {
    /// `e` is neither 3 nor 65537 (with `e = 1` anyone could "sign": `s^1 = s`).
    Exponent,
    /// The modulus, leading zero bytes dropped, is not 1024 to 8192 bits long.
    ModulusSize(usize),
    /// An even modulus is not a product of two odd primes.
    EvenModulus,
}

impl std::fmt::Display for RsaKeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RsaKeyError::Exponent => f.write_str("RSA exponent [e] must be 3 or 65537"),
            RsaKeyError::ModulusSize(bits) => write!(
                f,
                "RSA modulus [n] is {bits} bits, not {MIN_BITS} to {MAX_BITS}"
            ),
            RsaKeyError::EvenModulus => f.write_str("RSA modulus [n] is even"),
        }
    }
}

/// The modulus sizes accepted, in bits (as jwt_verify_lib).
pub const MIN_BITS: usize = 1024;
pub const MAX_BITS: usize = 8192;

/// `bytes` without its leading zero bytes.
fn significant(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

impl RsaKey {
    /// From the big-endian modulus and exponent (leading zero bytes allowed, not counted): `e`
    /// must be 3 or 65537 and `n` odd, of 1024 to 8192 bits.
    pub fn new(n_be: &[u8], e_be: &[u8]) -> Result<RsaKey, RsaKeyError> {
        let e = significant(e_be);
        if e != [3] && e != [1, 0, 1] {
            return Err(RsaKeyError::Exponent);
        }
        let n_be = significant(n_be);
        let k = n_be.len();
        let top = n_be.first().copied().unwrap_or(0);
        let bits = (k * 8).saturating_sub(top.leading_zeros() as usize);
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(RsaKeyError::ModulusSize(bits));
        }
        if n_be.last().is_none_or(|&b| b & 1 == 0) {
            return Err(RsaKeyError::EvenModulus);
        }
        Ok(RsaKey {
            // Cannot fail for an odd modulus of at most 8192 bits.
            ctx: Ctx::new(n_be).ok_or(RsaKeyError::ModulusSize(bits))?,
            e: e.to_vec(),
            k,
            bits,
        })
    }

    /// `s^e mod n` as `k` big-endian bytes; `None` when the signature is not `k` bytes or not
    /// below `n`. Public for the differential fuzz target.
    pub fn public_op(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.k {
            return None;
        }
        let s = self.ctx.load(signature)?;
        Some(self.ctx.pow(&s, &self.e, self.k))
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

    /// RSASSA-PSS with MGF1 of the same hash (PS256/384/512) and a salt of any length, recovered
    /// from the encoded message as BoringSSL does for `jwt_authn` (salt length "auto", -2).
    pub fn verify_pss(&self, hash: Hash, msg: &[u8], signature: &[u8]) -> bool {
        let Some(em_full) = self.public_op(signature) else {
            return false;
        };
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        // `em_full` is k bytes; the encoded message is its last em_len bytes.
        let Some(skip) = self.k.checked_sub(em_len) else {
            return false;
        };
        match em_full.split_at_checked(skip) {
            Some((lead, em)) if lead.iter().all(|&b| b == 0) => {
                pss_encoding_verifies(hash, msg, em, em_bits)
            }
            _ => false,
        }
    }
}

/// EMSA-PSS-VERIFY (RFC 8017 §9.1.2) with MGF1 of `hash` and the salt length unknown: step 10
/// reads `DB = 00…00 || 01 || salt`, the salt being whatever follows the first non-zero byte of
/// DB, which must be 01 (BoringSSL's `RSA_PSS_SALTLEN_AUTO`). `em` is `ceil(em_bits/8)` bytes.
fn pss_encoding_verifies(hash: Hash, msg: &[u8], em: &[u8], em_bits: usize) -> bool {
    let h_len = hash.len();
    let em_len = em.len();
    // Step 3 with the shortest salt (0 bytes); step 4.
    if em_len != em_bits.div_ceil(8) || em_len < h_len + 2 || em.last() != Some(&0xbc) {
        return false;
    }
    let db_len = em_len - h_len - 1;
    let (Some(masked_db), Some(hh)) = (em.get(..db_len), em.get(db_len..em_len - 1)) else {
        return false;
    };
    // Step 6: the bits above em_bits are zero.
    let zero_bits = 8 * em_len - em_bits;
    let top_mask = 0xffu8.checked_shr(zero_bits as u32).unwrap_or(0);
    if masked_db.first().is_none_or(|&b| b & !top_mask != 0) {
        return false;
    }
    // Steps 7-9: DB = maskedDB xor MGF1(H, db_len), top bits cleared.
    let mut db = mgf1(hash, hh, db_len);
    for (d, m) in db.iter_mut().zip(masked_db) {
        *d ^= m;
    }
    if let Some(first) = db.first_mut() {
        *first &= top_mask;
    }
    // Step 10, salt length unknown: zero padding, then 01, then the salt (maybe empty).
    let Some(separator) = db.iter().position(|&b| b != 0) else {
        return false;
    };
    let (Some(&0x01), Some(salt)) = (db.get(separator), db.get(separator + 1..)) else {
        return false;
    };
    // Steps 12-14.
    let m_hash = hash.digest(&[msg]);
    hash.digest(&[&[0u8; 8], &m_hash, salt]) == hh
}

/// MGF1 with `hash`: `len` bytes from `seed`.
fn mgf1(hash: Hash, seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + hash.len());
    let mut counter: u32 = 0;
    while out.len() < len {
        out.extend(hash.digest(&[seed, &counter.to_be_bytes()]));
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
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
    fn pss_tokens_with_the_longest_salt_or_none_verify() {
        // Signed by Python's `cryptography` with `PSS.MAX_LENGTH` and with salt length 0.
        use rsa::pkcs8::DecodePublicKey;
        let k = RsaPublicKey::from_public_key_pem(&pem("rsa_pss")).unwrap();
        let key = RsaKey::new(&k.n().to_bytes_be(), &k.e().to_bytes_be()).unwrap();
        for (alg, hash) in [
            ("PS256", Hash::Sha256),
            ("PS384", Hash::Sha384),
            ("PS512", Hash::Sha512),
        ] {
            for salt in ["max", "0"] {
                let (msg, sig) = parts(&format!("{alg}_salt_{salt}"));
                assert!(key.verify_pss(hash, &msg, &sig), "{alg} salt {salt}");
                let mut other = msg.clone();
                other[3] ^= 1;
                assert!(
                    !key.verify_pss(hash, &other, &sig),
                    "{alg} salt {salt}, other message"
                );
                let mut bad = sig.clone();
                bad[100] ^= 1;
                assert!(
                    !key.verify_pss(hash, &msg, &bad),
                    "{alg} salt {salt}, bad signature"
                );
            }
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

    /// An odd modulus of exactly `bits` bits (top bit set), big-endian.
    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xa5; bits.div_ceil(8)];
        let top = (bits - 1) % 8;
        n[0] = (n[0] | 1 << top) & (0xff >> (7 - top));
        *n.last_mut().unwrap() |= 1;
        n
    }

    #[test]
    fn rejects_exponents_other_than_3_and_65537() {
        let n = modulus(2048);
        for e in [
            &[1u8][..],
            &[5],
            &[0],
            &[],
            &[1, 0, 0, 1],
            &[2],
            &[1, 0, 1, 0],
            &[0xff; 4],
        ] {
            assert_eq!(
                RsaKey::new(&n, e).err(),
                Some(RsaKeyError::Exponent),
                "e = {e:?}"
            );
        }
        for e in [&[3u8][..], &[1, 0, 1], &[0, 0, 3], &[0, 1, 0, 1]] {
            assert!(RsaKey::new(&n, e).is_ok(), "e = {e:?}");
        }
    }

    #[test]
    fn e_equal_to_1_key_is_refused() {
        // The forgery the exponent rule stops: with e = 1 the "signature" is the padded message
        // itself (s^1 = s), which anyone can write. The real key (e = 65537) refuses it.
        let (k, fast) = keys();
        let n = k.n().to_bytes_be();
        let (msg, _) = parts("RS256");
        let mut em = vec![0x00, 0x01];
        em.resize(256 - 19 - 32 - 1, 0xff);
        em.push(0);
        em.extend(Hash::Sha256.digest_info());
        em.extend(Sha256::digest(&msg));
        assert!(!fast.verify_pkcs1v15(Hash::Sha256, &msg, &em));
        assert_eq!(RsaKey::new(&n, &[1]).err(), Some(RsaKeyError::Exponent));
    }

    #[test]
    fn e_equal_to_3_verifies() {
        let n_be = modulus(2048);
        let key = RsaKey::new(&n_be, &[3]).unwrap();
        let n = rsa::BigUint::from_bytes_be(&n_be);
        let s = rsa::BigUint::from_bytes_be(&[0x5a; 255]);
        let expected = s.modpow(&rsa::BigUint::from(3u32), &n).to_bytes_be();
        let got = key.public_op(&[vec![0], s.to_bytes_be()].concat()).unwrap();
        assert_eq!(rsa::BigUint::from_bytes_be(&got).to_bytes_be(), expected);
    }

    #[test]
    fn modulus_of_1024_to_8192_bits_only() {
        for (bits, ok) in [
            (512, false),
            (1023, false),
            (1024, true),
            (2048, true),
            (4097, true),
            (8192, true),
            (8193, false),
        ] {
            let got = RsaKey::new(&modulus(bits), &[1, 0, 1]);
            assert_eq!(got.is_ok(), ok, "{bits} bits");
            if !ok {
                assert_eq!(got.err(), Some(RsaKeyError::ModulusSize(bits)));
            }
        }
    }

    #[test]
    fn leading_zero_bytes_do_not_count_in_the_modulus_size() {
        // A 1023-bit modulus padded to 1032 bits is still 1023 bits.
        let padded = [vec![0, 0], modulus(1023)].concat();
        assert_eq!(
            RsaKey::new(&padded, &[1, 0, 1]).err(),
            Some(RsaKeyError::ModulusSize(1023))
        );
        // An 8192-bit modulus with zero bytes in front (1027 bytes) is 8192 bits.
        let padded = [vec![0, 0, 0], modulus(8192)].concat();
        let key = RsaKey::new(&padded, &[1, 0, 1]).unwrap();
        assert_eq!((key.k, key.bits), (1024, 8192));
    }

    #[test]
    fn rejects_bad_moduli() {
        assert_eq!(
            RsaKey::new(&[0; 256], &[1, 0, 1]).err(),
            Some(RsaKeyError::ModulusSize(0))
        );
        assert!(RsaKey::new(&[0xff; 32], &[1, 0, 1]).is_err(), "too small");
        let mut even = vec![0xff; 256];
        even[255] = 0xfe;
        assert_eq!(
            RsaKey::new(&even, &[1, 0, 1]).err(),
            Some(RsaKeyError::EvenModulus)
        );
        assert!(RsaKey::new(&[0xff; 256], &[0]).is_err());
        assert_eq!(
            RsaKeyError::ModulusSize(1023).to_string(),
            "RSA modulus [n] is 1023 bits, not 1024 to 8192"
        );
    }

    /// EMSA-PSS-ENCODE (RFC 8017 §9.1.1) with any salt, and `tweak` applied to DB before masking.
    fn pss_encode(
        hash: Hash,
        msg: &[u8],
        salt: &[u8],
        em_bits: usize,
        tweak: impl Fn(&mut Vec<u8>),
    ) -> Vec<u8> {
        let em_len = em_bits.div_ceil(8);
        let h = hash.digest(&[&[0u8; 8], &hash.digest(&[msg]), salt]);
        let db_len = em_len - hash.len() - 1;
        let mut db = vec![0u8; db_len - salt.len() - 1];
        db.push(0x01);
        db.extend(salt);
        tweak(&mut db);
        let mask = mgf1(hash, &h, db_len);
        let mut em: Vec<u8> = db.iter().zip(&mask).map(|(d, m)| d ^ m).collect();
        em[0] &= 0xff >> (8 * em_len - em_bits);
        em.extend(&h);
        em.push(0xbc);
        em
    }

    #[test]
    fn pss_accepts_every_salt_length() {
        for (hash, em_bits) in [
            (Hash::Sha256, 2047usize),
            (Hash::Sha384, 3071),
            (Hash::Sha512, 4095),
            (Hash::Sha256, 2048),
        ] {
            let em_len = em_bits.div_ceil(8);
            let max = em_len - hash.len() - 2;
            for s_len in [
                0,
                1,
                20,
                hash.len() - 1,
                hash.len(),
                hash.len() + 1,
                max - 1,
                max,
            ] {
                let salt = vec![0x5a; s_len];
                let em = pss_encode(hash, b"msg", &salt, em_bits, |_| {});
                assert!(
                    pss_encoding_verifies(hash, b"msg", &em, em_bits),
                    "{hash:?} salt {s_len}"
                );
                assert!(
                    !pss_encoding_verifies(hash, b"other", &em, em_bits),
                    "{hash:?} salt {s_len}"
                );
            }
        }
    }

    #[test]
    fn pss_rejects_every_other_encoding() {
        let (hash, em_bits) = (Hash::Sha256, 2047);
        let ok = |em: &[u8]| pss_encoding_verifies(hash, b"msg", em, em_bits);
        let salt = [7u8; 32];
        // A separator other than 01, or missing (DB all zero: the 01 turned into 00).
        for sep in [0x00, 0x02, 0x03, 0x81, 0xff] {
            let em = pss_encode(hash, b"msg", &salt, em_bits, |db| {
                let i = db.len() - salt.len() - 1;
                db[i] = sep;
            });
            assert!(!ok(&em), "separator {sep:#x}");
        }
        let all_zero = pss_encode(hash, b"msg", &[], em_bits, |db| {
            db.iter_mut().for_each(|b| *b = 0)
        });
        assert!(!ok(&all_zero), "DB all zero");
        // A non-zero byte in the padding before the 01 (it would be read as a wrong separator).
        let em = pss_encode(hash, b"msg", &salt, em_bits, |db| db[3] = 0x01);
        assert!(
            !ok(&em),
            "an earlier 01 makes the salt longer: the hash no longer matches"
        );
        let em = pss_encode(hash, b"msg", &salt, em_bits, |db| db[3] = 0x10);
        assert!(!ok(&em), "non-zero padding");
        // The bit above em_bits set (in maskedDB), the trailer, the length.
        let good = pss_encode(hash, b"msg", &salt, em_bits, |_| {});
        assert!(ok(&good));
        let mut em = good.clone();
        em[0] |= 0x80;
        assert!(!ok(&em), "top bit set");
        let mut em = good.clone();
        *em.last_mut().unwrap() = 0xbd;
        assert!(!ok(&em), "trailer");
        assert!(!ok(&good[1..]), "short");
        assert!(!ok(&[good.clone(), vec![0]].concat()), "long");
        let mut em = good.clone();
        em[255 - 32] ^= 1;
        assert!(!ok(&em), "H changed");
        assert!(!pss_encoding_verifies(hash, b"msg", &[0xbc; 33], em_bits));
        assert!(!pss_encoding_verifies(hash, b"msg", &[], 0));
    }
}
