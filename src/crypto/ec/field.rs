//! Arithmetic modulo an odd prime of at most 522 bits (the NIST curves' fields and group orders),
//! shaped for wasm.
//!
//! Wasm has 64-bit integers but no 64×64→128 multiply, so a limb holds 29 bits and every product
//! of two limbs is one `i64.mul`. A column of the Montgomery product (at most `2L` products below
//! `2^58`, plus a carry below `2^35`) then adds up in a 64-bit accumulator without carries as
//! long as `2L <= 63`: 9 limbs for P-256, 14 for P-384, 18 for P-521 (522 bits). Multiplication
//! and Montgomery reduction run interleaved, column by column (product scanning), and squaring
//! computes each cross product once. P-256's prime reduces by shifts instead of products (its
//! special form, [`Field::reduce_p256`]) and P-521's by folding. Every result is fully reduced
//! (below the modulus), so equality is equality of limbs. Only public values pass through here:
//! nothing is constant-time.

/// Bits per limb.
pub const W: u32 = 29;
const MASK: u64 = (1 << W) - 1;

/// A residue as `L` little-endian limbs of [`W`] bits (in the Montgomery domain, `a·R mod m`
/// with `R = 2^(29·L)`, unless a function says otherwise).
pub type Fe<const L: usize> = [u32; L];

/// The constants of one modulus `m`.
#[derive(Clone, Debug)]
pub struct Field<const L: usize> {
    /// The modulus, plain limbs.
    pub m: Fe<L>,
    /// `-m^-1 mod 2^29`.
    minv: u64,
    /// `R^2 mod m`, to enter the Montgomery domain.
    r2: Fe<L>,
    /// `R mod m`: one, in the Montgomery domain.
    pub one: Fe<L>,
    /// `m = 2^(29L-1) - 1` (P-521's prime): reduced by folding, without Montgomery (`R = 1`).
    mersenne: bool,
    /// `m` is P-256's prime: Montgomery reduction by shifts ([`Field::reduce_p256`]).
    p256: bool,
}

/// P-256's prime `2^256 - 2^224 + 2^192 + 2^96 - 1`, 29-bit limbs.
const P256_M: [u32; 9] = [
    0x1fff_ffff,
    0x1fff_ffff,
    0x1fff_ffff,
    0x1ff,
    0,
    0,
    0x4_0000,
    0x1fe0_0000,
    0xff_ffff,
];

/// Columns of a product (`2L - 1 <= 35` used) and one for the last carry.
const WIDE: usize = 36;
type Wide = [u64; WIDE];

/// Columns `i..i+L`, as an array (a constant trip count: the loops over it unroll).
#[inline(always)]
fn row<const L: usize>(t: &mut Wide, i: usize) -> Option<&mut [u64; L]> {
    t.get_mut(i..i + L)
        .and_then(|s| <&mut [u64; L]>::try_from(s).ok())
}

#[inline(always)]
fn limb<const L: usize>(a: &Fe<L>, i: usize) -> u64 {
    a.get(i).map_or(0, |&x| u64::from(x))
}

/// Big-endian bytes → plain limbs; `None` when the value needs more than `29·L` bits.
pub fn from_be_bytes<const L: usize>(bytes: &[u8]) -> Option<Fe<L>> {
    let mut out = [0u32; L];
    let mut limbs = out.iter_mut();
    let (mut acc, mut have) = (0u64, 0u32);
    for &b in bytes.iter().rev() {
        acc |= u64::from(b) << have;
        have += 8;
        if have >= W {
            let bits = (acc & MASK) as u32;
            match limbs.next() {
                Some(l) => *l = bits,
                None if bits == 0 => {}
                None => return None,
            }
            acc >>= W;
            have -= W;
        }
    }
    match limbs.next() {
        Some(l) => *l = acc as u32,
        None if acc == 0 => {}
        None => return None,
    }
    Some(out)
}

/// Plain limbs → `len` big-endian bytes (higher bits dropped).
pub fn to_be_bytes<const L: usize>(a: &Fe<L>, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut bytes = out.iter_mut().rev();
    let (mut acc, mut have) = (0u64, 0u32);
    for &l in a {
        acc |= u64::from(l) << have;
        have += W;
        while have >= 8 {
            let Some(b) = bytes.next() else { return out };
            *b = acc as u8;
            acc >>= 8;
            have -= 8;
        }
    }
    if let Some(b) = bytes.next() {
        *b = acc as u8;
    }
    out
}

/// `a >= b` (normalized limbs).
pub fn ge<const L: usize>(a: &Fe<L>, b: &Fe<L>) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a + b` limb by limb with the carries moved (the caller knows it fits `29·L` bits).
#[inline(always)]
pub fn add_plain<const L: usize>(a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
    let mut out = [0u32; L];
    let mut carry = 0u32;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let s = x + y + carry;
        *o = s & MASK as u32;
        carry = s >> W;
    }
    out
}

/// `a - b` and whether it borrowed (then the limbs hold `a - b + 2^(29·L)`).
#[inline(always)]
pub fn sub_plain<const L: usize>(a: &Fe<L>, b: &Fe<L>) -> (Fe<L>, bool) {
    let mut out = [0u32; L];
    let mut borrow = 0u32;
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        let d = x.wrapping_sub(y).wrapping_sub(borrow);
        borrow = d >> 31;
        *o = d & MASK as u32;
    }
    (out, borrow != 0)
}

/// `a >> 1`.
pub fn shr1<const L: usize>(a: &mut Fe<L>) {
    let mut high = 0u32;
    for l in a.iter_mut().rev() {
        let low = *l & 1;
        *l = (*l >> 1) | (high << (W - 1));
        high = low;
    }
}

fn is_one<const L: usize>(a: &Fe<L>) -> bool {
    let mut it = a.iter();
    it.next() == Some(&1) && it.all(|&x| x == 0)
}

pub fn is_zero<const L: usize>(a: &Fe<L>) -> bool {
    a.iter().all(|&x| x == 0)
}

/// A small integer as plain limbs.
pub fn small<const L: usize>(v: u32) -> Fe<L> {
    let mut out = [0u32; L];
    if let Some(l) = out.first_mut() {
        *l = v;
    }
    out
}

impl<const L: usize> Field<L> {
    /// For an odd modulus `m` (big-endian), with `2m < 2^(29·L)`.
    pub fn new(m_be: &[u8]) -> Option<Field<L>> {
        let m = from_be_bytes::<L>(m_be)?;
        let top = limb(&m, L - 1);
        let m0 = limb(&m, 0);
        if m0 & 1 == 0 || top >> (W - 1) != 0 || top == 0 || 2 * L > 36 {
            return None;
        }
        // Newton's iteration for m0^-1 mod 2^64, then negated and cut to 29 bits.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(m0.wrapping_mul(inv)));
        }
        // R mod m and R^2 mod m: 1 doubled 29·L (then 2·29·L) times, reduced at each step.
        let mut acc = small::<L>(1);
        let mut one = acc;
        for i in 0..2 * W as usize * L {
            acc = add_plain(&acc, &acc);
            if ge(&acc, &m) {
                acc = sub_plain(&acc, &m).0;
            }
            if i + 1 == W as usize * L {
                one = acc;
            }
        }
        let bits = W as usize * L - 1;
        let mersenne = (0..W as usize * L).all(|i| {
            let bit = (limb(&m, i / W as usize) >> (i % W as usize)) & 1;
            bit == u64::from(i < bits)
        });
        if mersenne {
            let one = small::<L>(1);
            return Some(Field {
                m,
                minv: 0,
                r2: one,
                one,
                mersenne,
                p256: false,
            });
        }
        Some(Field {
            m,
            minv: inv.wrapping_neg() & MASK,
            r2: acc,
            one,
            mersenne,
            p256: m.as_slice() == P256_M.as_slice(),
        })
    }

    /// `t` below `2m` → below `m`.
    #[inline(always)]
    fn reduce_once(&self, t: Fe<L>) -> Fe<L> {
        let (d, borrow) = sub_plain(&t, &self.m);
        if borrow { t } else { d }
    }

    /// Plain limbs below `m` (big-endian bytes), or `None`.
    pub fn from_bytes(&self, bytes: &[u8]) -> Option<Fe<L>> {
        let v = from_be_bytes::<L>(bytes)?;
        (!ge(&v, &self.m)).then_some(v)
    }

    /// `t` (columns of a product, `2L - 1` of them, each below `2^63.2`) reduced: Montgomery
    /// (`t·R^-1 mod m`) or, for `m = 2^(29L-1) - 1`, Mersenne (`t mod m`).
    #[inline(always)]
    fn reduce(&self, mut t: Wide) -> Fe<L> {
        if self.mersenne {
            return self.reduce_mersenne(&t);
        }
        // `L == 9` first: the other curves' code is compiled without this branch.
        if L == 9 && self.p256 {
            return self.reduce_p256(&t);
        }
        // Row by row: add q·m so that column i is divisible by 2^29, carry it into column i+1.
        // A column then holds at most 2L products below 2^58 and a carry below 2^36.
        for i in 0..L {
            let Some(r) = row::<L>(&mut t, i) else {
                continue;
            };
            let q = ((r.first().copied().unwrap_or(0) & MASK) * self.minv) & MASK;
            for (s, &y) in r.iter_mut().zip(&self.m) {
                *s = s.wrapping_add(q * u64::from(y));
            }
            let carry = r.first().copied().unwrap_or(0) >> W;
            if let Some(s) = r.get_mut(1) {
                *s = s.wrapping_add(carry);
            } else if let Some(s) = t.get_mut(i + 1) {
                *s = s.wrapping_add(carry);
            }
        }
        let mut out = [0u32; L];
        let mut carry = 0u64;
        for (o, &v) in out.iter_mut().zip(t.iter().skip(L)) {
            let s = v.wrapping_add(carry);
            *o = (s & MASK) as u32;
            carry = s >> W;
        }
        // Below 2m (inputs below m, R > m): one subtraction at most.
        self.reduce_once(out)
    }

    /// Montgomery reduction modulo P-256's prime `p` (`L = 9`, `R = 2^261`): `p ≡ -1 mod 2^29`, so
    /// the multiplier of row `i` is column `i`'s low 29 bits `q` (`-p^-1 ≡ 1`), and adding `q·p =
    /// q·(p + 1) - q` clears them (`- q`) and adds `q` at bits 96, 192, 256 and subtracts it at bit
    /// 224 of the row: columns `i+3`, `i+6`, `i+8` shifted by 9, 18, 24 bits, column `i+7` by 21.
    /// Four shifted adds instead of nine products. Columns are signed (the subtraction may take one
    /// below zero) and the carries arithmetic; the result is the generic reduction's, `t·R^-1 mod p`.
    #[inline(always)]
    fn reduce_p256(&self, t: &Wide) -> Fe<L> {
        let mut c = [0i64; 18];
        for (d, &s) in c.iter_mut().zip(t) {
            *d = s as i64; // below 2^62: at most 9 products below 2^58 each
        }
        fn at(c: &mut [i64; 18], k: usize, v: i64) {
            if let Some(x) = c.get_mut(k) {
                *x = x.wrapping_add(v);
            }
        }
        for i in 0..9 {
            let ti = c.get(i).copied().unwrap_or(0);
            let q = ti & MASK as i64;
            at(&mut c, i + 1, ti.wrapping_sub(q) >> W);
            at(&mut c, i + 3, q << 9);
            at(&mut c, i + 6, q << 18);
            at(&mut c, i + 7, (q << 21).wrapping_neg());
            at(&mut c, i + 8, q << 24);
        }
        // (t + Q·p) / R is below 2p: whatever the signs on the way, the last carry is 0.
        let mut out = [0u32; L];
        let mut carry = 0i64;
        for (o, &v) in out.iter_mut().zip(c.iter().skip(9)) {
            let s = v.wrapping_add(carry);
            *o = (s & MASK as i64) as u32;
            carry = s >> W;
        }
        self.reduce_once(out)
    }

    /// `t mod m` for `m = 2^(29L-1) - 1`: `2^(29L) ≡ 2`, so column `k + L` folds into column
    /// `k` doubled (at most 3L products below 2^58 per column).
    #[inline(always)]
    fn reduce_mersenne(&self, t: &Wide) -> Fe<L> {
        let mut out = [0u32; L];
        let mut carry = 0u64;
        for (k, o) in out.iter_mut().enumerate() {
            let v = t
                .get(k)
                .copied()
                .unwrap_or(0)
                .wrapping_add(t.get(k + L).copied().unwrap_or(0) << 1)
                .wrapping_add(carry);
            *o = (v & MASK) as u32;
            carry = v >> W;
        }
        // What is left above 2^(29L), doubled, until nothing is (twice at most).
        while carry != 0 {
            let mut c = carry << 1;
            for o in out.iter_mut() {
                let v = u64::from(*o) + c;
                *o = (v & MASK) as u32;
                c = v >> W;
            }
            carry = c;
        }
        // Now below 2^(29L) = 2m + 2: fold the top bit (2^(29L-1) ≡ 1) twice, then subtract.
        for _ in 0..2 {
            let top = out.last().map_or(0, |&x| x >> (W - 1));
            if let Some(l) = out.last_mut() {
                *l &= (1 << (W - 1)) - 1;
            }
            let mut c = top;
            for o in out.iter_mut() {
                if c == 0 {
                    break;
                }
                let v = *o + c;
                *o = v & MASK as u32;
                c = v >> W;
            }
        }
        self.reduce_once(out)
    }

    /// `a·b·R^-1 mod m` (inputs below `m`; `R = 1` for a Mersenne modulus).
    pub fn mul(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        // Operand scanning into 64-bit columns: no carries (a column sums at most L products).
        let mut t: Wide = [0; WIDE];
        for (i, &x) in a.iter().enumerate() {
            let x = u64::from(x);
            if let Some(r) = row::<L>(&mut t, i) {
                for (s, &y) in r.iter_mut().zip(b) {
                    *s = s.wrapping_add(x * u64::from(y));
                }
            }
        }
        self.reduce(t)
    }

    /// `a²·R^-1 mod m`: each cross product once, doubled.
    pub fn sqr(&self, a: &Fe<L>) -> Fe<L> {
        let mut t: Wide = [0; WIDE];
        for (i, &x) in a.iter().enumerate() {
            let x = u64::from(x);
            if let Some(s) = t.get_mut(2 * i) {
                *s = s.wrapping_add(x * x);
            }
            let x2 = x << 1;
            for (s, &y) in t.iter_mut().skip(2 * i + 1).zip(a.iter().skip(i + 1)) {
                *s = s.wrapping_add(x2 * u64::from(y));
            }
        }
        self.reduce(t)
    }

    pub fn add(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        self.reduce_once(add_plain(a, b))
    }

    pub fn sub(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        let (d, borrow) = sub_plain(a, b);
        if borrow { add_plain(&d, &self.m) } else { d }
    }

    pub fn neg(&self, a: &Fe<L>) -> Fe<L> {
        self.sub(&[0; L], a)
    }

    /// Plain → Montgomery domain.
    pub fn to_mont(&self, a: &Fe<L>) -> Fe<L> {
        self.mul(a, &self.r2)
    }

    /// Montgomery domain → plain.
    pub fn from_mont(&self, a: &Fe<L>) -> Fe<L> {
        self.mul(a, &small(1))
    }

    /// The product of two plain residues, plain: `(a·b·R^-1)·R^2·R^-1`.
    pub fn mul_plain(&self, a: &Fe<L>, b: &Fe<L>) -> Fe<L> {
        self.mul(&self.mul(a, b), &self.r2)
    }

    /// `a^-1 mod m` of a plain residue, plain (binary extended Euclid, variable time);
    /// `None` for zero.
    pub fn inv_plain(&self, a: &Fe<L>) -> Option<Fe<L>> {
        if is_zero(a) || ge(a, &self.m) {
            return None;
        }
        let half = |x: &mut Fe<L>| {
            if limb(x, 0) & 1 == 1 {
                *x = add_plain(x, &self.m); // below 2m, which fits
            }
            shr1(x);
        };
        // Invariants: x1·a ≡ u and x2·a ≡ v (mod m); gcd(u, v) = gcd(a, m) = 1.
        let (mut u, mut v) = (*a, self.m);
        let (mut x1, mut x2) = (small::<L>(1), [0u32; L]);
        while !is_one(&u) && !is_one(&v) {
            while limb(&u, 0) & 1 == 0 {
                shr1(&mut u);
                half(&mut x1);
            }
            while limb(&v, 0) & 1 == 0 {
                shr1(&mut v);
                half(&mut x2);
            }
            if ge(&u, &v) {
                u = sub_plain(&u, &v).0;
                x1 = self.sub(&x1, &x2);
            } else {
                v = sub_plain(&v, &u).0;
                x2 = self.sub(&x2, &x1);
            }
            if is_zero(&u) || is_zero(&v) {
                return None; // m not prime
            }
        }
        Some(if is_one(&u) { x1 } else { x2 })
    }

    /// `a^-1` in the Montgomery domain; `None` for zero.
    pub fn inv(&self, a: &Fe<L>) -> Option<Fe<L>> {
        self.inv_plain(&self.from_mont(a)).map(|x| self.to_mont(&x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::BigUint;

    const P256: &str = "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff";
    const P384: &str = "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffff";
    const N256: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn p521() -> Vec<u8> {
        let mut v = vec![0xffu8; 66];
        v[0] = 0x01;
        v
    }

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn big<const L: usize>(a: &Fe<L>) -> BigUint {
        BigUint::from_bytes_be(&to_be_bytes(a, 4 * L))
    }

    fn fe<const L: usize>(v: &BigUint) -> Fe<L> {
        from_be_bytes::<L>(&v.to_bytes_be()).unwrap()
    }

    /// Extreme residues: 0, 1, 2, m-1, m-2, 2^k-1 and 2^k below m, all-ones limbs, random.
    fn inputs(m: &BigUint, next: &mut impl FnMut() -> u64) -> Vec<BigUint> {
        let bits = m.bits();
        let mut v: Vec<BigUint> = vec![
            0u32.into(),
            1u32.into(),
            2u32.into(),
            m - 1u32,
            m - 2u32,
            (m - 1u32) >> 1,
        ];
        for k in [28usize, 29, 30, 58, 64, 96, 128, 192, 224, 255] {
            if k < bits {
                v.push((BigUint::from(1u32) << k) - 1u32);
                v.push(BigUint::from(1u32) << k);
            }
        }
        // Every limb all ones, as far as it stays below m.
        let limbs = bits.div_ceil(29);
        let ones = (0..limbs).fold(BigUint::from(0u32), |acc, i| {
            acc + (BigUint::from((1u32 << 29) - 1) << (29 * i))
        });
        v.push(ones % m);
        for _ in 0..40 {
            let bytes: Vec<u8> = (0..bits.div_ceil(8) + 8).map(|_| next() as u8).collect();
            v.push(BigUint::from_bytes_be(&bytes) % m);
        }
        v
    }

    fn check_field<const L: usize>(m_be: &[u8], seed: u64) {
        let f = Field::<L>::new(m_be).unwrap();
        let m = BigUint::from_bytes_be(m_be);
        let r = if f.mersenne {
            BigUint::from(1u32)
        } else {
            BigUint::from(1u32) << (29 * L)
        };
        assert_eq!(big(&f.one), &r % &m);
        assert_eq!(big(&f.r2), (&r * &r) % &m);
        let mut next = rng(seed);
        let vals = inputs(&m, &mut next);
        let rinv = r.modpow(&(&m - 2u32), &m);
        for a in &vals {
            let (fa, ma) = (fe::<L>(a), f.to_mont(&fe::<L>(a)));
            assert_eq!(big(&ma), (a * &r) % &m, "to_mont");
            assert_eq!(f.from_mont(&ma), fa, "round trip");
            assert_eq!(big(&f.sqr(&fa)), (a * a * &rinv) % &m, "sqr {a:x}");
            assert_eq!(f.sqr(&fa), f.mul(&fa, &fa));
            assert_eq!(big(&f.neg(&fa)), (&m - a) % &m, "neg");
            if *a != BigUint::from(0u32) {
                let inv = f.inv_plain(&fa).unwrap();
                assert_eq!((big(&inv) * a) % &m, 1u32.into(), "inv {a:x}");
                assert_eq!(f.from_mont(&f.mul(&f.inv(&ma).unwrap(), &ma)), small(1));
            } else {
                assert!(f.inv_plain(&fa).is_none());
            }
            for b in vals.iter().step_by(3) {
                let fb = fe::<L>(b);
                assert_eq!(
                    big(&f.mul(&fa, &fb)),
                    (a * b * &rinv) % &m,
                    "mul {a:x} {b:x}"
                );
                assert_eq!(big(&f.mul_plain(&fa, &fb)), (a * b) % &m);
                assert_eq!(big(&f.add(&fa, &fb)), (a + b) % &m, "add");
                assert_eq!(big(&f.sub(&fa, &fb)), (a + &m - b) % &m, "sub");
            }
        }
    }

    #[test]
    fn p256_field_matches_biguint_at_extreme_inputs() {
        check_field::<9>(&hex(P256), 1);
    }

    #[test]
    fn p256_order_matches_biguint_at_extreme_inputs() {
        check_field::<9>(&hex(N256), 2);
    }

    #[test]
    fn p384_field_matches_biguint_at_extreme_inputs() {
        check_field::<14>(&hex(P384), 3);
    }

    #[test]
    fn p521_field_matches_biguint_at_extreme_inputs() {
        check_field::<18>(&p521(), 4);
    }

    #[test]
    fn only_p256s_prime_takes_the_shift_reduction() {
        assert!(Field::<9>::new(&hex(P256)).unwrap().p256);
        assert!(!Field::<9>::new(&hex(N256)).unwrap().p256);
        assert!(!Field::<14>::new(&hex(P384)).unwrap().p256);
        assert!(!Field::<18>::new(&p521()).unwrap().p256);
        assert_eq!(from_be_bytes::<9>(&hex(P256)).unwrap(), P256_M);
    }

    #[test]
    fn p256_shift_reduction_equals_the_generic_montgomery_one() {
        let f = Field::<9>::new(&hex(P256)).unwrap();
        let mut generic = f.clone();
        generic.p256 = false;
        let m = BigUint::from_bytes_be(&hex(P256));
        let mut next = rng(5);
        let mut vals = inputs(&m, &mut next);
        for _ in 0..2000 {
            let bytes: Vec<u8> = (0..40).map(|_| next() as u8).collect();
            vals.push(BigUint::from_bytes_be(&bytes) % &m);
        }
        // Limbs of extreme shapes (0, 1, MASK, MASK-1, 2^28, p's own limbs: review 5), p-1-k,
        // and sums and differences of p's special powers.
        for _ in 0..3000 {
            let limbs: Fe<9> = std::array::from_fn(|i| match next() % 7 {
                0 => 0,
                1 => 1,
                2 => MASK as u32,
                3 => MASK as u32 - 1,
                4 => 1 << 28,
                5 => P256_M[i],
                _ => (next() & MASK) as u32,
            });
            vals.push(big(&limbs) % &m);
        }
        for k in 0..64u32 {
            vals.push(&m - 1u32 - k);
        }
        for a in [0usize, 96, 192, 224, 256] {
            for b in [0usize, 96, 192, 224, 256] {
                let v = ((BigUint::from(1u32) << a) + (BigUint::from(1u32) << b)) % &m;
                vals.push((&m + &m - &v) % &m);
                vals.push(v);
            }
        }
        let vals: Vec<Fe<9>> = vals.iter().map(fe::<9>).collect();
        let normalized = |x: &Fe<9>| x.iter().all(|&l| u64::from(l) <= MASK) && !ge(x, &P256_M);
        for (i, a) in vals.iter().enumerate() {
            let s = f.sqr(a);
            assert!(s == generic.sqr(a) && normalized(&s), "sqr {a:x?}");
            for b in vals.iter().skip(i % 7).step_by(7) {
                let p = f.mul(a, b);
                assert!(
                    p == generic.mul(a, b) && normalized(&p),
                    "mul {a:x?} {b:x?}"
                );
            }
        }
    }

    #[test]
    fn bytes_round_trip_and_refuse_what_does_not_fit() {
        let m = hex(P256);
        let a = from_be_bytes::<9>(&m).unwrap();
        assert_eq!(to_be_bytes(&a, 32), m);
        assert!(from_be_bytes::<9>(&[0xff; 33]).is_none(), "264 bits in 261");
        assert!(from_be_bytes::<9>(&[&[0u8; 10][..], &[0xff; 32]].concat()).is_some());
        let f = Field::<9>::new(&m).unwrap();
        assert!(f.from_bytes(&m).is_none(), "p itself is not a residue");
        assert!(Field::<9>::new(&[0xff; 33]).is_none());
        assert!(Field::<9>::new(&[0x02]).is_none(), "even");
    }
}
