//! Montgomery arithmetic for the RSA public operation, shaped for wasm.
//!
//! Wasm has 64-bit integers but no 64×64→128 multiply, so a limb is at most 32 bits and every
//! product is one `i64.mul`. With full 32-bit limbs each product must be added with a carry
//! chain (one long serial dependency). Here limbs hold only `w` bits (28, or 26 for moduli
//! over 444 bytes), so a 64-bit accumulator takes a whole column of products without
//! overflowing: each product is a multiply and an add, the columns are plain dot products
//! (product scanning, Comba), and the carry moves once per column. Multiplication and
//! Montgomery reduction run interleaved, column by column (FIPS), and squaring computes each
//! cross product once.
//!
//! Bounds: a column sums at most `2L + 1` products below `2^(2w)` plus a carry below
//! `2^(64-w)`, which fits 64 bits when `2L + 1 <= 2^(64-2w)` (`L <= 127` for `w = 28`,
//! `L <= 2047` for `w = 26`). Results stay below `2n` (never fully reduced inside the
//! exponentiation: `4n <= R` makes that safe), and [`Ctx::pow`] reduces once at the end.
//! Only public values pass through here (signature, key), so nothing needs to be constant-time.

/// The constants of one modulus.
#[derive(Clone)]
pub struct Ctx {
    /// Bits per limb.
    w: u32,
    mask: u64,
    /// The modulus, `L` little-endian limbs of `w` bits.
    n: Vec<u32>,
    /// `-n^-1 mod 2^w`.
    n0inv: u64,
    /// The modulus reversed: `nrev[i] = n[L-1-i]`.
    nrev: Vec<u32>,
    /// `R^2 mod n`, R = 2^(w·L).
    rr: Vec<u32>,
}

/// Big-endian bytes → little-endian limbs of `w` bits, exactly `limbs` long (`None`: too big).
fn from_be_bytes(bytes: &[u8], w: u32, limbs: usize) -> Option<Vec<u32>> {
    let mut out = Vec::with_capacity(limbs);
    let (mut acc, mut have) = (0u64, 0u32);
    for &b in bytes.iter().rev() {
        acc |= u64::from(b) << have;
        have += 8;
        while have >= w {
            out.push((acc & ((1 << w) - 1)) as u32);
            acc >>= w;
            have -= w;
        }
    }
    if have > 0 {
        out.push(acc as u32);
    }
    while out.len() > limbs {
        if out.pop() != Some(0) {
            return None;
        }
    }
    out.resize(limbs, 0);
    Some(out)
}

/// Little-endian limbs of `w` bits → `len` big-endian bytes (higher bits dropped).
fn to_be_bytes(limbs: &[u32], w: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut bytes = out.iter_mut().rev();
    let (mut acc, mut have) = (0u64, 0u32);
    for &l in limbs {
        acc |= u64::from(l) << have;
        have += w;
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

/// `a >= b`, equal lengths, normalized limbs.
fn ge(a: &[u32], b: &[u32]) -> bool {
    for (x, y) in a.iter().rev().zip(b.iter().rev()) {
        if x != y {
            return x > y;
        }
    }
    true
}

/// `a -= b` for `a >= b`, equal lengths, normalized limbs.
fn sub_assign(a: &mut [u32], b: &[u32], w: u32) {
    let mut borrow = 0i64;
    for (x, &y) in a.iter_mut().zip(b) {
        let d = i64::from(*x) - i64::from(y) - borrow;
        borrow = i64::from(d < 0);
        *x = (d + (borrow << w)) as u32;
    }
}

/// `Σ x[i]·y[i]`: the products of one column (callers pass one operand reversed).
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
#[inline(always)]
fn dot(x: &[u32], y: &[u32]) -> u64 {
    x.iter().zip(y).fold(0u64, |s, (&a, &b)| {
        s.wrapping_add(u64::from(a) * u64::from(b))
    })
}

/// `Σ x[i]·y[i]`, four products per step: `i64x2.extmul_{low,high}_i32x4_u` give two 32×32→64
/// products each (a `pmuludq` and two shuffles in V8 on x86-64). Left alone, LLVM turns extmul
/// of freshly loaded lanes into zero-extending loads and `i64x2.mul`, which V8 emulates with
/// three multiplies: an `xor` with a zero it cannot see through keeps the extmul (measured in
/// V8: 65 µs against 95 µs per RS256 verification).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[inline(always)]
fn dot(x: &[u32], y: &[u32]) -> u64 {
    use core::arch::wasm32::{
        i64x2_add, u32x4, u32x4_splat, u64x2_extmul_high_u32x4, u64x2_extmul_low_u32x4,
        u64x2_extract_lane, u64x2_splat, v128_xor,
    };
    let (xs, ys) = (x.chunks_exact(4), y.chunks_exact(4));
    let tail = xs
        .remainder()
        .iter()
        .zip(ys.remainder())
        .fold(0u64, |s, (&a, &b)| {
            s.wrapping_add(u64::from(a) * u64::from(b))
        });
    let mut acc = u64x2_splat(0);
    let opaque = u32x4_splat(core::hint::black_box(0));
    for (a, b) in xs.zip(ys) {
        let (&[a0, a1, a2, a3], &[b0, b1, b2, b3]) = (a, b) else {
            continue;
        };
        let va = v128_xor(u32x4(a0, a1, a2, a3), opaque);
        let vb = v128_xor(u32x4(b0, b1, b2, b3), opaque);
        acc = i64x2_add(acc, u64x2_extmul_low_u32x4(va, vb));
        acc = i64x2_add(acc, u64x2_extmul_high_u32x4(va, vb));
    }
    tail.wrapping_add(u64x2_extract_lane::<0>(acc))
        .wrapping_add(u64x2_extract_lane::<1>(acc))
}

fn part(v: &[u32], from: usize, to: usize) -> &[u32] {
    v.get(from..to).unwrap_or_default()
}

/// `v` reversed, into `out`.
fn reverse_into(out: &mut [u32], v: &[u32]) {
    out.iter_mut()
        .zip(v.iter().rev())
        .for_each(|(o, &x)| *o = x);
}

/// Working space of one exponentiation: the reduction's multipliers and a reversed operand.
struct Scratch {
    m: Vec<u32>,
    rev: Vec<u32>,
}

impl Ctx {
    /// For an odd modulus `n` (big-endian bytes, no leading zero byte required).
    pub fn new(n_be: &[u8]) -> Option<Ctx> {
        // R = 2^(w·L) must be at least 4n for the results to stay below 2n: two spare bits
        // above the modulus' byte length (without them a 441-byte modulus on 28-bit limbs, or a
        // 520-byte one on 26-bit limbs, would fill its limbs exactly).
        let bits = n_be.len() * 8 + 2;
        let w = if bits.div_ceil(28) <= 127 { 28 } else { 26 };
        let limbs = bits.div_ceil(w as usize);
        if limbs > 2047 {
            return None;
        }
        let n = from_be_bytes(n_be, w, limbs)?;
        let n0 = u64::from(*n.first()?);
        if n0 & 1 == 0 {
            return None;
        }
        // Newton's iteration for n0^-1 mod 2^64, then negated and cut to w bits.
        let mut inv: u64 = 1;
        for _ in 0..6 {
            inv = inv.wrapping_mul(2u64.wrapping_sub(n0.wrapping_mul(inv)));
        }
        let mask = (1u64 << w) - 1;
        let mut nrev = vec![0u32; limbs];
        reverse_into(&mut nrev, &n);
        let mut ctx = Ctx {
            w,
            mask,
            n,
            nrev,
            n0inv: inv.wrapping_neg() & mask,
            rr: Vec::new(),
        };
        ctx.rr = ctx.r_squared()?;
        Some(ctx)
    }

    /// `x = 2x mod n` for `x < n`.
    fn double_mod(&self, x: &mut [u32]) {
        let mut carry = 0u32;
        for limb in x.iter_mut() {
            let v = (*limb << 1) | carry;
            carry = v >> self.w;
            *limb = v & self.mask as u32;
        }
        // With a carry out of the top limb, the subtraction's final borrow cancels it.
        if carry != 0 || ge(x, &self.n) {
            sub_assign(x, &self.n, self.w);
        }
    }

    /// `R^2 mod n`, R = 2^(w·L), from everything in `self` but `rr`. `R mod n` comes from the
    /// modulus' top bit doubled the few times up to `w·L` (`R` has at least two and at most
    /// `w + 16` bits more than `n`, plus 8 per leading zero byte), which doubled once more is `2·R mod n`, the Montgomery form
    /// of 2. Raising that to the power `w·L` in the Montgomery domain (about a dozen squarings
    /// and as many products) gives the form of `2^(w·L) = R`, which is `R·R mod n`. Doubling
    /// `1` all the `2·w·L` times instead costs about 25 products' worth at 2048 bits, in a
    /// serial loop (measured: 60% of an `rsa_mont_diff` execution, more than its three
    /// exponentiations together).
    fn r_squared(&self) -> Option<Vec<u32>> {
        let l = self.n.len();
        let top = self.n.iter().rposition(|&x| x != 0)?;
        let nbits = top * self.w as usize + (32 - self.n.get(top)?.leading_zeros()) as usize;
        let rbits = self.w as usize * l;
        // 2^(nbits-1) < n: n is odd and has nbits bits (n = 1 has no Montgomery form).
        if nbits < 2 {
            return None;
        }
        let mut two = vec![0u32; l];
        let (limb, bit) = ((nbits - 1) / self.w as usize, (nbits - 1) % self.w as usize);
        *two.get_mut(limb)? = 1 << bit;
        for _ in nbits - 1..=rbits {
            self.double_mod(&mut two); // ends at 2^(rbits+1) mod n = 2R mod n
        }
        let mut s = self.scratch();
        let (mut acc, mut tmp) = (two.clone(), vec![0u32; l]);
        let high = usize::BITS - rbits.leading_zeros();
        for i in (0..high.saturating_sub(1)).rev() {
            self.sqr(&mut tmp, &acc, &mut s);
            std::mem::swap(&mut acc, &mut tmp);
            if (rbits >> i) & 1 == 1 {
                self.mul(&mut tmp, &acc, &two, &mut s);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        // Below 2n from the products: reduce fully.
        if ge(&acc, &self.n) {
            sub_assign(&mut acc, &self.n, self.w);
        }
        Some(acc)
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            m: vec![0; self.n.len()],
            rev: vec![0; self.n.len()],
        }
    }

    /// Big-endian bytes → limbs, `None` unless below the modulus.
    pub fn load(&self, bytes: &[u8]) -> Option<Vec<u32>> {
        let v = from_be_bytes(bytes, self.w, self.n.len())?;
        (!ge(&v, &self.n)).then_some(v)
    }

    /// The column loop shared by multiplication and squaring: `column(k)` is the a·b part of
    /// column `k`; the reduction's multipliers go to `m`, the result to `t`. Column `k` pairs
    /// `x[i]` with `y[k-i]`, which is `yrev[L-1-k+i]`: reversed operands make every column a
    /// forward dot product.
    #[inline(always)]
    fn reduce_columns(&self, t: &mut [u32], m: &mut [u32], column: impl Fn(usize) -> u64) {
        let len = self.n.len();
        let (n, nrev, w, mask) = (&self.n, &self.nrev, self.w, self.mask);
        let n0 = u64::from(n.first().copied().unwrap_or(0));
        let mut acc = 0u64;
        for k in 0..len {
            // m[i]·n[k-i] for i < k: nrev from L-1-k.
            let start = len - 1 - k;
            acc = acc
                .wrapping_add(column(k))
                .wrapping_add(dot(part(m, 0, k), part(nrev, start, start + k)));
            let mk = (acc & mask).wrapping_mul(self.n0inv) & mask;
            if let Some(slot) = m.get_mut(k) {
                *slot = mk as u32;
            }
            acc = acc.wrapping_add(mk * n0) >> w;
        }
        for (k, out) in (len..2 * len).zip(t.iter_mut()) {
            let lo = k + 1 - len;
            acc = acc
                .wrapping_add(column(k))
                .wrapping_add(dot(part(m, lo, len), part(nrev, 0, len - lo)));
            *out = (acc & mask) as u32;
            acc >>= w;
        }
    }

    /// Montgomery product `t = a·b·R^-1 mod n`, below `2n` for inputs below `2n`.
    fn mul(&self, t: &mut [u32], a: &[u32], b: &[u32], s: &mut Scratch) {
        let len = self.n.len();
        reverse_into(&mut s.rev, b);
        let brev = &s.rev;
        self.reduce_columns(t, &mut s.m, |k| {
            let lo = (k + 1).saturating_sub(len);
            let hi = (k + 1).min(len);
            let start = len - 1 + lo - k;
            dot(part(a, lo, hi), part(brev, start, start + hi - lo))
        });
    }

    /// Montgomery square `t = a²·R^-1 mod n`: each cross product once, doubled.
    fn sqr(&self, t: &mut [u32], a: &[u32], s: &mut Scratch) {
        let len = self.n.len();
        reverse_into(&mut s.rev, a);
        let arev = &s.rev;
        self.reduce_columns(t, &mut s.m, |k| {
            let lo = (k + 1).saturating_sub(len);
            let half = k.div_ceil(2).max(lo);
            let start = len - 1 + lo - k;
            let cross = dot(part(a, lo, half), part(arev, start, start + half - lo));
            let square = if k % 2 == 0 {
                a.get(k / 2).map_or(0, |&x| u64::from(x) * u64::from(x))
            } else {
                0
            };
            (cross << 1).wrapping_add(square)
        });
    }

    /// `base^e mod n` for `base` below `n` (limbs) and a big-endian exponent, as `len`
    /// big-endian bytes.
    pub fn pow(&self, base: &[u32], e: &[u8], len: usize) -> Vec<u8> {
        let l = self.n.len();
        let mut s = self.scratch();
        let mut x = vec![0u32; l];
        self.mul(&mut x, base, &self.rr, &mut s); // to the Montgomery domain
        let mut acc = x.clone();
        let mut scratch = vec![0u32; l];
        let mut started = false;
        for &byte in e {
            for bit in (0..8).rev() {
                if started {
                    self.sqr(&mut scratch, &acc, &mut s);
                    std::mem::swap(&mut acc, &mut scratch);
                }
                if (byte >> bit) & 1 == 1 {
                    if started {
                        self.mul(&mut scratch, &acc, &x, &mut s);
                        std::mem::swap(&mut acc, &mut scratch);
                    }
                    started = true;
                }
            }
        }
        if !started {
            // e = 0: base^0 = 1, R mod n in the Montgomery domain.
            let mut one = vec![0u32; l];
            if let Some(first) = one.first_mut() {
                *first = 1;
            }
            self.mul(&mut acc, &one, &self.rr, &mut s);
        }
        // Out of the Montgomery domain: a·1·R^-1, the reduction alone (at most n).
        self.reduce_columns(&mut scratch, &mut s.m, |k| {
            acc.get(k).map_or(0, |&x| u64::from(x))
        });
        if ge(&scratch, &self.n) {
            sub_assign(&mut scratch, &self.n, self.w);
        }
        to_be_bytes(&scratch, self.w, len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::BigUint;

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    fn random_odd(bytes: usize, next: &mut impl FnMut() -> u64) -> Vec<u8> {
        let mut v: Vec<u8> = (0..bytes).map(|_| next() as u8).collect();
        v[0] |= 0x80;
        v[bytes - 1] |= 1;
        v
    }

    #[test]
    fn pow_matches_biguint_for_every_size_and_radix() {
        let mut next = rng(0x9e37_79b9_7f4a_7c15);
        // 2048 and 3072 use 28-bit limbs, 4096 and 8192 use 26-bit limbs; 441 and 520 bytes are
        // whole multiples of 28 and 26 bits (R must still exceed 4n); 444/445 straddle the radix
        // switch.
        for bytes in [64, 128, 256, 384, 441, 444, 445, 512, 520, 1024] {
            let n_be = random_odd(bytes, &mut next);
            let n = BigUint::from_bytes_be(&n_be);
            let ctx = Ctx::new(&n_be).unwrap();
            for round in 0..4 {
                let s = match round {
                    0 => n.clone() - 1u32, // the largest input
                    1 => BigUint::from(2u32),
                    _ => BigUint::from_bytes_be(&random_odd(bytes, &mut next)) % &n,
                };
                for e in [
                    &[1, 0, 1][..],
                    &[3],
                    &[1],
                    &[0xff, 0xff, 0xff, 0xff],
                    &[0],
                    &[],
                ] {
                    let expected = s.modpow(&BigUint::from_bytes_be(e), &n);
                    let base = ctx.load(&s.to_bytes_be()).unwrap();
                    let got = BigUint::from_bytes_be(&ctx.pow(&base, e, bytes));
                    assert_eq!(got, expected, "{bytes} bytes, round {round}, e {e:?}");
                }
            }
        }
    }

    #[test]
    fn squaring_equals_multiplying_by_itself_at_the_largest_inputs() {
        let mut next = rng(7);
        let n_be = random_odd(256, &mut next);
        let ctx = Ctx::new(&n_be).unwrap();
        let len = ctx.n.len();
        let mut m = ctx.scratch();
        // Inputs just below 2n, the largest the exponentiation produces.
        let n = BigUint::from_bytes_be(&n_be);
        for delta in [1u32, 2, 12345] {
            let big = ((n.clone() << 1) - delta).to_bytes_be();
            let a = from_be_bytes(&big, ctx.w, len).unwrap();
            let (mut by_mul, mut by_sqr) = (vec![0u32; len], vec![0u32; len]);
            ctx.mul(&mut by_mul, &a, &a, &mut m);
            ctx.sqr(&mut by_sqr, &a, &mut m);
            assert_eq!(by_mul, by_sqr);
            let as_int = BigUint::from_bytes_be(&to_be_bytes(&by_mul, ctx.w, 300));
            assert!(as_int < n.clone() << 1, "stays below 2n");
        }
    }

    #[test]
    fn limb_conversions_round_trip() {
        let mut next = rng(3);
        for w in [26, 28] {
            let bytes: Vec<u8> = (0..256).map(|_| next() as u8).collect();
            let limbs = from_be_bytes(&bytes, w, 2048usize.div_ceil(w as usize)).unwrap();
            assert!(limbs.iter().all(|&l| l < 1 << w));
            assert_eq!(to_be_bytes(&limbs, w, 256), bytes);
        }
        assert!(from_be_bytes(&[0xff; 9], 28, 2).is_none(), "too big");
    }
}
