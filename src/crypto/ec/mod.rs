//! ECDSA verification on P-256, P-384 and P-521, shaped for wasm (the RustCrypto crates' 64-bit
//! limbs need the 128-bit products wasm lacks: 0.7 ms per P-256 verification in V8).
//!
//! [`field`]: Montgomery arithmetic on 29-bit limbs (a column of products adds up in 64 bits);
//! [`point`]: Jacobian points, mixed addition, `a = -3` doubling, tables and the interleaved
//! double-scalar multiplication; [`curves`]: the three curves' constants and their `G` tables,
//! built once per VM. RustCrypto still parses and checks the keys (SEC1, JWK, PEM) and is the
//! reference our tests compare with. Public inputs only: variable time.

pub mod curves;
pub mod field;
pub mod point;

use field::{Fe, Field, add_plain, ge, is_zero};
use point::{Affine, Tables};

/// Spans per scalar (the loop doubles `bits / PARTS` times).
pub const PARTS: usize = 8;
/// NAF width for `G` (tables built once per VM: `PARTS · 2^(G_W-2)` points).
pub const G_W: u32 = 7;
/// NAF width for a public key (tables built once per key: `PARTS · 2^(Q_W-2)` points).
pub const Q_W: u32 = 5;

/// One curve `y² = x³ - 3x + b` of prime order `n` over the prime field of `p`, with its
/// generator's tables.
#[derive(Debug)]
pub struct Curve<const L: usize> {
    pub fp: Field<L>,
    /// Arithmetic modulo the group order `n`.
    pub fnn: Field<L>,
    /// `b`, Montgomery domain.
    b: Fe<L>,
    pub g: Affine<L>,
    g_tables: Tables<L>,
    /// Bytes of a coordinate and of each signature half.
    pub bytes: usize,
    /// Bits of `n`.
    pub bits: usize,
}

impl<const L: usize> Curve<L> {
    /// From big-endian `p`, `n`, `b`, `G`'s coordinates; `None` if anything does not fit or `G`
    /// is not on the curve.
    pub fn new(p: &[u8], n: &[u8], b: &[u8], gx: &[u8], gy: &[u8], bytes: usize) -> Option<Self> {
        let fp = Field::<L>::new(p)?;
        let fnn = Field::<L>::new(n)?;
        let bits = n.iter().position(|&x| x != 0).map_or(0, |i| {
            (n.len() - i) * 8 - n.get(i).map_or(0, |x| x.leading_zeros()) as usize
        });
        let b = fp.to_mont(&fp.from_bytes(b)?);
        let g = Affine {
            x: fp.to_mont(&fp.from_bytes(gx)?),
            y: fp.to_mont(&fp.from_bytes(gy)?),
        };
        let mut curve = Curve {
            g_tables: Tables::new(&fp, &g, G_W, bits, PARTS)?,
            fp,
            fnn,
            b,
            g,
            bytes,
            bits,
        };
        if !curve.on_curve(&curve.g) || ge(&curve.fnn.m, &curve.fp.m) {
            return None;
        }
        curve.g_tables.shrink();
        Some(curve)
    }

    pub fn on_curve(&self, pt: &Affine<L>) -> bool {
        let f = &self.fp;
        let x3 = f.mul(&f.sqr(&pt.x), &pt.x);
        let three_x = f.add(&f.add(&pt.x, &pt.x), &pt.x);
        f.sqr(&pt.y) == f.add(&f.sub(&x3, &three_x), &self.b)
    }

    /// The tables of a public key given as SEC1 uncompressed `04 || x || y`; `None` unless it is
    /// a point of the curve (so not infinity, which has no such encoding).
    pub fn public_key(&self, sec1: &[u8]) -> Option<Tables<L>> {
        let (&tag, xy) = sec1.split_first()?;
        if tag != 4 || xy.len() != 2 * self.bytes {
            return None;
        }
        let (x, y) = xy.split_at(self.bytes);
        let f = &self.fp;
        let q = Affine {
            x: f.to_mont(&f.from_bytes(x)?),
            y: f.to_mont(&f.from_bytes(y)?),
        };
        if !self.on_curve(&q) {
            return None;
        }
        Tables::new(f, &q, Q_W, self.bits, PARTS)
    }

    /// The hash as an integer modulo `n` (SEC1 4.1.4: its leftmost `bits` bits).
    fn hash_to_scalar(&self, hash: &[u8]) -> Option<Fe<L>> {
        let keep = hash.len().min(self.bits.div_ceil(8));
        let kept = hash.get(..keep)?;
        let e = if hash.len() * 8 > self.bits {
            // Drop the low `shift` bits of the kept bytes (shift < 8).
            let shift = (keep * 8 - self.bits) as u32;
            let shifted: Vec<u8> = kept
                .iter()
                .scan(0u8, |prev, &b| {
                    let out = (b >> shift) | ((u16::from(*prev) << (8 - shift)) as u8);
                    *prev = b;
                    Some(out)
                })
                .collect();
            field::from_be_bytes::<L>(&shifted)?
        } else {
            field::from_be_bytes::<L>(kept)?
        };
        // Below 2^bits < 2n: at most one subtraction.
        Some(if ge(&e, &self.fnn.m) {
            field::sub_plain(&e, &self.fnn.m).0
        } else {
            e
        })
    }

    /// True when `(r, s)` (big-endian, `bytes` each) is a valid signature of `hash` by the key
    /// of `q` (from [`Curve::public_key`]).
    pub fn verify(&self, q: &Tables<L>, hash: &[u8], r: &[u8], s: &[u8]) -> bool {
        self.verify_inner(q, hash, r, s).unwrap_or(false)
    }

    fn verify_inner(&self, q: &Tables<L>, hash: &[u8], r: &[u8], s: &[u8]) -> Option<bool> {
        let (fp, fnn) = (&self.fp, &self.fnn);
        if r.len() != self.bytes || s.len() != self.bytes {
            return Some(false);
        }
        // 1 <= r, s <= n-1.
        let r = fnn.from_bytes(r)?;
        let s = fnn.from_bytes(s)?;
        if is_zero(&r) || is_zero(&s) {
            return Some(false);
        }
        let e = self.hash_to_scalar(hash)?;
        let w = fnn.inv_plain(&s)?;
        let u1 = fnn.mul_plain(&e, &w);
        let u2 = fnn.mul_plain(&r, &w);
        let sum = point::mul2(fp, &self.g_tables, &u1, q, &u2, self.bits)?;
        if sum.is_infinity() {
            return Some(false);
        }
        // x(sum) mod n == r, with x(sum) = X/Z² in [0, p): X == r·Z², or X == (r+n)·Z² when
        // r + n < p (p < 2n for these curves, so no other candidate).
        let z2 = fp.sqr(&sum.z);
        if fp.mul(&fp.to_mont(&r), &z2) == sum.x {
            return Some(true);
        }
        let rn = add_plain(&r, &fnn.m);
        Some(!ge(&rn, &fp.m) && fp.mul(&fp.to_mont(&rn), &z2) == sum.x)
    }
}

/// The curves we verify on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CurveId {
    P256,
    P384,
    P521,
}

/// A public key's tables, for its curve.
#[derive(Clone, Debug)]
pub enum PublicKey {
    P256(Tables<9>),
    P384(Tables<14>),
    P521(Tables<18>),
}

/// The tables of a SEC1 uncompressed public key (`04 || x || y`), or `None` if it is not a
/// point of the curve.
pub fn public_key(curve: CurveId, sec1: &[u8]) -> Option<PublicKey> {
    Some(match curve {
        CurveId::P256 => PublicKey::P256(curves::p256()?.public_key(sec1)?),
        CurveId::P384 => PublicKey::P384(curves::p384()?.public_key(sec1)?),
        CurveId::P521 => PublicKey::P521(curves::p521()?.public_key(sec1)?),
    })
}

/// ECDSA verification of `(r, s)` over an already computed `hash` (SHA-256/384/512 of the
/// message for ES256/384/512).
pub fn verify(key: &PublicKey, hash: &[u8], r: &[u8], s: &[u8]) -> bool {
    match key {
        PublicKey::P256(q) => curves::p256().is_some_and(|c| c.verify(q, hash, r, s)),
        PublicKey::P384(q) => curves::p384().is_some_and(|c| c.verify(q, hash, r, s)),
        PublicKey::P521(q) => curves::p521().is_some_and(|c| c.verify(q, hash, r, s)),
    }
}

/// ECDSA verification of an IEEE P1363 signature `r || s` (the JWS form).
pub fn verify_p1363(key: &PublicKey, hash: &[u8], sig: &[u8]) -> bool {
    if !sig.len().is_multiple_of(2) {
        return false;
    }
    let (r, s) = sig.split_at(sig.len() / 2);
    verify(key, hash, r, s)
}

#[cfg(test)]
mod tests;
