//! Points of a short Weierstrass curve `y² = x³ - 3x + b` (the NIST curves), coordinates in the
//! Montgomery domain of [`Field`], and the double-scalar multiplication of ECDSA verification.
//!
//! Sums run in Jacobian coordinates (`x = X/Z²`, `y = Y/Z³`; `Z = 0` is the point at infinity),
//! always adding an affine point from a precomputed table ("mixed" addition, 8M+3S), and doubling
//! with the `a = -3` formula (dbl-2001-b, 3M+5S). The addition handles its exceptional cases
//! exactly: either operand at infinity, `P == Q` (it doubles) and `P == -Q` (infinity).
//!
//! `u1·G + u2·Q` is one interleaved loop over width-w NAF digits. Each scalar's digits are cut
//! into `parts` spans of `span` digits, and the tables hold the odd multiples of
//! `2^(j·span)·G` and `2^(j·span)·Q` for each span `j`, so the loop doubles only `span` times
//! (a quarter of the bits for four parts) and adds one table point per non-zero digit.

use super::field::{Fe, Field, W, is_zero};

/// An affine point (never infinity).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Affine<const L: usize> {
    pub x: Fe<L>,
    pub y: Fe<L>,
}

/// A point in Jacobian coordinates.
#[derive(Clone, Copy, Debug)]
pub struct Jacobian<const L: usize> {
    pub x: Fe<L>,
    pub y: Fe<L>,
    pub z: Fe<L>,
}

impl<const L: usize> Jacobian<L> {
    pub fn infinity(f: &Field<L>) -> Self {
        Jacobian {
            x: f.one,
            y: f.one,
            z: [0; L],
        }
    }

    pub fn from_affine(f: &Field<L>, p: &Affine<L>) -> Self {
        Jacobian {
            x: p.x,
            y: p.y,
            z: f.one,
        }
    }

    pub fn is_infinity(&self) -> bool {
        is_zero(&self.z)
    }
}

/// `2P` (dbl-2001-b, for `a = -3`).
pub fn double<const L: usize>(f: &Field<L>, p: &Jacobian<L>) -> Jacobian<L> {
    if p.is_infinity() {
        return *p;
    }
    let delta = f.sqr(&p.z);
    let gamma = f.sqr(&p.y);
    let beta = f.mul(&p.x, &gamma);
    let t = f.mul(&f.sub(&p.x, &delta), &f.add(&p.x, &delta));
    let alpha = f.add(&f.add(&t, &t), &t);
    let beta2 = f.add(&beta, &beta);
    let beta4 = f.add(&beta2, &beta2);
    let beta8 = f.add(&beta4, &beta4);
    let x3 = f.sub(&f.sqr(&alpha), &beta8);
    let yz = f.add(&p.y, &p.z);
    let z3 = f.sub(&f.sub(&f.sqr(&yz), &gamma), &delta);
    let gamma2 = f.sqr(&gamma);
    let g2 = f.add(&gamma2, &gamma2);
    let g4 = f.add(&g2, &g2);
    let g8 = f.add(&g4, &g4);
    let y3 = f.sub(&f.mul(&alpha, &f.sub(&beta4, &x3)), &g8);
    Jacobian {
        x: x3,
        y: y3,
        z: z3,
    }
}

/// `P + Q` (or `P - Q` when `negate`) for an affine `Q`.
pub fn add_affine<const L: usize>(
    f: &Field<L>,
    p: &Jacobian<L>,
    q: &Affine<L>,
    negate: bool,
) -> Jacobian<L> {
    let qy = if negate { f.neg(&q.y) } else { q.y };
    if p.is_infinity() {
        return Jacobian {
            x: q.x,
            y: qy,
            z: f.one,
        };
    }
    let z1z1 = f.sqr(&p.z);
    let u2 = f.mul(&q.x, &z1z1);
    let s2 = f.mul(&qy, &f.mul(&p.z, &z1z1));
    let h = f.sub(&u2, &p.x);
    let r = f.sub(&s2, &p.y);
    if is_zero(&h) {
        // Same x: the same point (double it) or its negation (the sum is infinity).
        return if is_zero(&r) {
            double(f, p)
        } else {
            Jacobian::infinity(f)
        };
    }
    let hh = f.sqr(&h);
    let hhh = f.mul(&h, &hh);
    let v = f.mul(&p.x, &hh);
    let x3 = f.sub(&f.sub(&f.sqr(&r), &hhh), &f.add(&v, &v));
    let y3 = f.sub(&f.mul(&r, &f.sub(&v, &x3)), &f.mul(&p.y, &hhh));
    let z3 = f.mul(&p.z, &h);
    Jacobian {
        x: x3,
        y: y3,
        z: z3,
    }
}

/// Jacobian → affine for several points with one inversion (Montgomery's trick); `None` if
/// any of them is infinity.
pub fn to_affine_all<const L: usize>(f: &Field<L>, pts: &[Jacobian<L>]) -> Option<Vec<Affine<L>>> {
    // prefix[i] = z_0·…·z_i
    let mut prefix = Vec::with_capacity(pts.len());
    let mut acc = f.one;
    for p in pts {
        if p.is_infinity() {
            return None;
        }
        acc = f.mul(&acc, &p.z);
        prefix.push(acc);
    }
    let mut inv = f.inv(&acc)?; // (z_0·…·z_i)^-1, i from the end
    let mut out = vec![
        Affine {
            x: [0; L],
            y: [0; L]
        };
        pts.len()
    ];
    for (i, (p, o)) in pts.iter().zip(out.iter_mut()).enumerate().rev() {
        let zinv = match i.checked_sub(1).and_then(|j| prefix.get(j)) {
            Some(before) => f.mul(&inv, before),
            None => inv,
        };
        inv = f.mul(&inv, &p.z);
        let zinv2 = f.sqr(&zinv);
        o.x = f.mul(&p.x, &zinv2);
        o.y = f.mul(&p.y, &f.mul(&zinv2, &zinv));
    }
    Some(out)
}

/// The precomputed odd multiples of one point's spans.
#[derive(Clone, Debug)]
pub struct Tables<const L: usize> {
    /// NAF width.
    pub w: u32,
    /// `spans[j][i] = (2i+1)·2^(j·span)·P`, `i < 2^(w-2)`.
    spans: Vec<Vec<Affine<L>>>,
}

impl<const L: usize> Tables<L> {
    /// The tables of `p` for scalars of `bits` bits cut into `parts` spans; `None` if a multiple
    /// is infinity (impossible for a point of large prime order).
    pub fn new(f: &Field<L>, p: &Affine<L>, w: u32, bits: usize, parts: usize) -> Option<Self> {
        let span = span(bits, parts);
        let count = 1usize << (w - 2);
        let mut all = Vec::with_capacity(parts * count);
        let mut base = Jacobian::from_affine(f, p);
        for j in 0..parts {
            if j > 0 {
                for _ in 0..span {
                    base = double(f, &base);
                }
            }
            // 2·base as an affine point, then base, 3·base, 5·base, … by repeated addition.
            let twice = to_affine_all(f, &[double(f, &base)])?;
            let twice = twice.first()?;
            let mut m = base;
            for i in 0..count {
                if i > 0 {
                    m = add_affine(f, &m, twice, false);
                }
                all.push(m);
            }
        }
        let affine = to_affine_all(f, &all)?;
        Some(Tables {
            w,
            spans: affine.chunks(count).map(<[_]>::to_vec).collect(),
        })
    }

    fn parts(&self) -> usize {
        self.spans.len()
    }

    pub fn shrink(&mut self) {
        self.spans.shrink_to_fit();
    }

    /// Bytes of point data held.
    pub fn bytes(&self) -> usize {
        self.spans.iter().map(|s| s.len() * 2 * 4 * L).sum()
    }
}

/// Digits per span for `bits`-bit scalars in `parts` spans (the NAF has at most `bits + 1`).
pub fn span(bits: usize, parts: usize) -> usize {
    (bits + 1).div_ceil(parts.max(1))
}

/// The width-`w` NAF of plain limbs `k`: `len` digits, least significant first, each zero or
/// odd with `|d| < 2^(w-1)`, non-zero digits at least `w` apart, `Σ d_i·2^i = k`. `None` if `k`
/// needs more than `len` digits.
pub fn wnaf<const L: usize>(k: &Fe<L>, w: u32, len: usize) -> Option<Vec<i8>> {
    let limb = |i: usize| k.get(i).map_or(0, |&x| u64::from(x));
    // The `w` bits of k from bit `i` (w <= 8 < 29, so two limbs hold them).
    let window = |i: usize| {
        let (q, r) = (i / W as usize, i as u32 % W);
        ((limb(q) | (limb(q + 1) << W)) >> r) & ((1 << w) - 1)
    };
    // With at most `len - 1` bits, every carry is resolved by digit `len - 1`.
    let bitlen = k.iter().rposition(|&x| x != 0).map_or(0, |h| {
        h * W as usize + (32 - k.get(h).map_or(0, |x| x.leading_zeros())) as usize
    });
    if bitlen >= len || !(2..=8).contains(&w) {
        return None;
    }
    let mut out = vec![0i8; len];
    // What is left to represent is (k >> i) + carry.
    let (mut i, mut carry) = (0usize, 0u64);
    while i < len {
        let x = window(i) + carry;
        if x & 1 == 0 {
            i += 1; // (bit + carry) even: digit 0, the carry stays
            continue;
        }
        let mut d = x as i64;
        carry = 0;
        if d >= 1 << (w - 1) {
            d -= 1 << w;
            carry = 1;
        }
        if let Some(slot) = out.get_mut(i) {
            *slot = d as i8;
        }
        i += w as usize;
    }
    (carry == 0).then_some(out)
}

/// `u1·G + u2·Q` for plain scalars of at most `bits` bits and the tables of `G` and `Q` (the same
/// number of parts); `None` if a scalar is too long.
pub fn mul2<const L: usize>(
    f: &Field<L>,
    g: &Tables<L>,
    u1: &Fe<L>,
    q: &Tables<L>,
    u2: &Fe<L>,
    bits: usize,
) -> Option<Jacobian<L>> {
    if g.parts() != q.parts() {
        return None;
    }
    let span = span(bits, g.parts());
    let len = span * g.parts();
    let d1 = wnaf(u1, g.w, len)?;
    let d2 = wnaf(u2, q.w, len)?;
    let mut acc = Jacobian::infinity(f);
    for t in (0..span).rev() {
        acc = double(f, &acc);
        for (digits, tables) in [(&d1, g), (&d2, q)] {
            for (j, points) in tables.spans.iter().enumerate() {
                let d = digits.get(j * span + t).copied().unwrap_or(0);
                if d != 0 {
                    let pt = points.get((usize::from(d.unsigned_abs()) - 1) / 2)?;
                    acc = add_affine(f, &acc, pt, d < 0);
                }
            }
        }
    }
    Some(acc)
}
