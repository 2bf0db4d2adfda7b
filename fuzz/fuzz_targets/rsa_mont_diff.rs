//! Differential: the RSA public operation (`crypto::rsa::RsaKey::public_op` for e = 3 and 65537,
//! `crypto::mont::Ctx::pow` for any exponent) against an independent bignum, `num_bigint`:
//! left-to-right square-and-multiply on its schoolbook/Karatsuba products and long division (no
//! Montgomery arithmetic at all, so nothing shared with the code under test), on odd moduli of
//! every accepted size (1024 to 8192 bits). `BigUint::modpow` would do the same job five times
//! slower for these exponents: it runs a fixed 4-bit window over all 64 bits of each exponent
//! word (about 97 Montgomery products for e = 65537, against 17 steps here).
//!
//! The input only seeds choices: its first bytes pick the modulus size and shape, the rest (and a
//! PRNG seeded from all of it, so a short input still makes an 8192-bit modulus) the modulus,
//! bases and exponent. Any difference panics (a finding); nothing else may.
#![no_main]
use jwt_policy_filter::crypto::mont::Ctx;
use jwt_policy_filter::crypto::rsa::RsaKey;
use libfuzzer_sys::fuzz_target;
use num_bigint::BigUint;

/// splitmix64, seeded from the whole input.
struct Rng(u64);

impl Rng {
    fn new(data: &[u8]) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(h)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Input bytes first, then the PRNG.
struct Source<'a> {
    data: &'a [u8],
    rng: Rng,
}

impl Source<'_> {
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => self.rng.next() as u8,
        }
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let take = len.min(self.data.len());
        let (head, rest) = self.data.split_at(take);
        self.data = rest;
        let mut v = head.to_vec();
        v.extend(self.rng.bytes(len - take));
        v
    }
}

/// `b^e mod n`, big-endian exponent bytes, by square-and-multiply with `*` and `%`.
fn reference_pow(b: &BigUint, e: &[u8], n: &BigUint) -> BigUint {
    let mut acc = BigUint::from(1u32) % n;
    for &byte in e {
        for bit in (0..8).rev() {
            acc = &acc * &acc % n;
            if (byte >> bit) & 1 == 1 {
                acc = acc * b % n;
            }
        }
    }
    acc
}

/// `v` as exactly `len` big-endian bytes (`v` fits).
fn be(v: &BigUint, len: usize) -> Vec<u8> {
    let b = v.to_bytes_be();
    let mut out = vec![0u8; len.saturating_sub(b.len())];
    out.extend(b);
    out
}

/// What one execution checks: one modulus, one operation on it, one base.
enum Op {
    /// `RsaKey::public_op` (the filter's path), e = 3 or 65537, `n` maybe with leading zeros.
    Key(RsaKey, u32),
    /// `Ctx::load` + `Ctx::pow` with any exponent of up to 3 bytes (0 and 1 included).
    Pow(Ctx, Vec<u8>),
}

fuzz_target!(|data: &[u8]| {
    let mut src = Source {
        data,
        rng: Rng::new(data),
    };
    let size = u16::from_be_bytes([src.byte(), src.byte()]);
    let bits = 1024 + usize::from(size) % (8192 - 1024 + 1);
    let shape = src.byte();
    let k = bits.div_ceil(8);
    let mut n_be = match shape % 4 {
        0 => vec![0xff; k], // 2^bits - 1
        1 => vec![0; k],    // 2^(bits-1) + 1
        _ => src.bytes(k),  // random
    };
    let top = (bits - 1) % 8;
    if let Some(first) = n_be.first_mut() {
        *first = (*first | 1 << top) & (0xff >> (7 - top));
    }
    if let Some(last) = n_be.last_mut() {
        *last |= 1;
    }
    let n = BigUint::from_bytes_be(&n_be);
    let op = match (shape >> 2) % 3 {
        which @ (0 | 1) => {
            let e = if which == 0 { 65537 } else { 3 };
            // Leading zero bytes must change nothing (a JWK `n` may carry some).
            let padded = [vec![0; usize::from(shape >> 6)], n_be.clone()].concat();
            let Ok(key) = RsaKey::new(&padded, &BigUint::from(e).to_bytes_be()) else {
                panic!("RsaKey::new refused an odd {bits}-bit modulus with e = {e}");
            };
            Op::Key(key, e)
        }
        _ => {
            let Some(ctx) = Ctx::new(&n_be) else {
                panic!("Ctx::new refused an odd {bits}-bit modulus");
            };
            let e_len = usize::from(src.byte() % 4);
            Op::Pow(ctx, src.bytes(e_len))
        }
    };
    // One base per execution, so that the 10 M executions asked for are 10 M moduli in the
    // time this machine has (three bases per modulus took twice as long per execution).
    let one = BigUint::from(1u32);
    let b = match src.byte() % 16 {
        0 => BigUint::from(0u32),
        1 => one.clone(),
        2 => BigUint::from(2u32),
        3 => &n - &one,
        4 => &n - 2u32,
        5 => n.clone(), // never accepted
        6 => &n + &one, // never accepted
        7 => {
            let len = usize::from(src.byte()) % 64 + 1;
            BigUint::from_bytes_be(&src.bytes(len))
        }
        8..=13 => BigUint::from_bytes_be(&src.bytes(k)) % &n,
        _ => BigUint::from_bytes_be(&src.bytes(k)), // at or above n about half the time
    };
    {
        let base = be(&b, k);
        let below = b < n;
        match &op {
            Op::Key(key, e) => {
                let want = below.then(|| be(&reference_pow(&b, &e.to_be_bytes(), &n), k));
                assert_eq!(
                    key.public_op(&base),
                    want,
                    "RsaKey::public_op, e = {e}, {bits} bits"
                );
            }
            Op::Pow(ctx, e) => {
                let loaded = ctx.load(&base);
                assert_eq!(
                    loaded.is_some(),
                    below,
                    "load accepts exactly the values below n"
                );
                if let Some(limbs) = loaded {
                    let want = be(&reference_pow(&b, e, &n), k);
                    assert_eq!(
                        ctx.pow(&limbs, e, k),
                        want,
                        "Ctx::pow, e = {e:02x?}, {bits} bits"
                    );
                }
            }
        }
    }
});
