// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Dot products of four weight rows with one activation row for the 32-element block types
// (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL). The activations of a block are widened to i16 once for
// the four rows; each block's integer sum is exact (i32x4.dot_i16x8_s), and the float64 accumulation is the reference's (src/quant/*.ts) term for term, so the
// results are bit-identical to vecDot. Row k of the four is at pk, its blocks st bytes apart
// (packed rows: common.ts); `a` is the activation row.

import { f16ToF32, hsum4, ihi64, ilo64, hi64, lo64, loadF16x4 } from "./common";

/** Σ of 32 products (two halves of 16) of i8 weights with i8 activations, via i16 lanes and dot. */
@inline function dot32(w0: v128, w1: v128, a0l: v128, a0h: v128, a1l: v128, a1h: v128): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w0), a0l), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w0), a0h)),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w1), a1l), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w1), a1h)),
  );
}

// ---- Q8_0 (34 bytes: f16 d, i8 qs[32]) x Q8_0 ----

@inline function rowQ8_0(p: usize, a0l: v128, a0h: v128, a1l: v128, a1h: v128): v128 {
  return dot32(v128.load(p, 2), v128.load(p, 18), a0l, a0h, a1l, a1h);
}

export function dot4Q8_0(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const a0 = v128.load(a, 2);
    const a1 = v128.load(a, 18);
    const a0l = i16x8.extend_low_i8x16_s(a0);
    const a0h = i16x8.extend_high_i8x16_s(a0);
    const a1l = i16x8.extend_low_i8x16_s(a1);
    const a1h = i16x8.extend_high_i8x16_s(a1);
    const isum = hsum4(rowQ8_0(p0, a0l, a0h, a1l, a1h), rowQ8_0(p1, a0l, a0h, a1l, a1h), rowQ8_0(p2, a0l, a0h, a1l, a1h), rowQ8_0(p3, a0l, a0h, a1l, a1h));
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const da = f64x2.splat(<f64>f16ToF32(load<u16>(a)));
    acc01 = f64x2.add(acc01, f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da)));
    acc23 = f64x2.add(acc23, f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 34;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- Q4_0 (18 bytes: f16 d, u8 qs[16], q - 8) x Q8_0 ----
// Nibbles are widened to i16 lanes (shifts are cheap there) and multiplied with the widened
// activations by i32x4.dot_i16x8_s; Σ(q-8)·a = Σq·a - 8·Σa, with Σa computed once per block.

/** Σ of 32 products: nibbles of the 16 bytes at p (low = elements 0..15, high = 16..31) with a */
@inline function nib32(q: v128, a0l: v128, a0h: v128, a1l: v128, a1h: v128): v128 {
  const ql = i16x8.extend_low_i8x16_u(q);
  const qh = i16x8.extend_high_i8x16_u(q);
  const m = i16x8.splat(15);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(ql, m), a0l), i32x4.dot_i16x8_s(v128.and(qh, m), a0h)),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(ql, 4), a1l), i32x4.dot_i16x8_s(i16x8.shr_u(qh, 4), a1h)),
  );
}

export function dot4Q4_0(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const a0 = v128.load(a, 2);
    const a1 = v128.load(a, 18);
    const a0l = i16x8.extend_low_i8x16_s(a0);
    const a0h = i16x8.extend_high_i8x16_s(a0);
    const a1l = i16x8.extend_low_i8x16_s(a1);
    const a1h = i16x8.extend_high_i8x16_s(a1);
    // 8·Σa as four i32 partials (|Σ| <= 4·128 per i16 lane before widening)
    const bias = i32x4.shl(i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(a0l, a0h), i16x8.add(a1l, a1h))), 3);
    const isum = hsum4(
      i32x4.sub(nib32(v128.load(p0, 2), a0l, a0h, a1l, a1h), bias),
      i32x4.sub(nib32(v128.load(p1, 2), a0l, a0h, a1l, a1h), bias),
      i32x4.sub(nib32(v128.load(p2, 2), a0l, a0h, a1l, a1h), bias),
      i32x4.sub(nib32(v128.load(p3, 2), a0l, a0h, a1l, a1h), bias),
    );
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const da = f64x2.splat(<f64>f16ToF32(load<u16>(a)));
    acc01 = f64x2.add(acc01, f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da)));
    acc23 = f64x2.add(acc23, f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 34;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- IQ4_NL (18 bytes: f16 d, u8 qs[16], kvalues[q]) x Q8_0 ----

@inline function rowIQ4_NL(p: usize, a0l: v128, a0h: v128, a1l: v128, a1h: v128): v128 {
  const q = v128.load(p, 2);
  const kv = i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
  return dot32(i8x16.swizzle(kv, v128.and(q, i8x16.splat(15))), i8x16.swizzle(kv, i8x16.shr_u(q, 4)), a0l, a0h, a1l, a1h);
}

export function dot4IQ4_NL(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const a0 = v128.load(a, 2);
    const a1 = v128.load(a, 18);
    const a0l = i16x8.extend_low_i8x16_s(a0);
    const a0h = i16x8.extend_high_i8x16_s(a0);
    const a1l = i16x8.extend_low_i8x16_s(a1);
    const a1h = i16x8.extend_high_i8x16_s(a1);
    const isum = hsum4(rowIQ4_NL(p0, a0l, a0h, a1l, a1h), rowIQ4_NL(p1, a0l, a0h, a1l, a1h), rowIQ4_NL(p2, a0l, a0h, a1l, a1h), rowIQ4_NL(p3, a0l, a0h, a1l, a1h));
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const da = f64x2.splat(<f64>f16ToF32(load<u16>(a)));
    acc01 = f64x2.add(acc01, f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da)));
    acc23 = f64x2.add(acc23, f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 34;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- the fifth bit of Q5_0 / Q5_1: qh (u32, bit j = element j) -> 0xff / 0x00 per byte ----

/** lanes j of the result are all-ones where bit j (lo) or bit j+16 (hi) of qh is set */
@inline export function qhMaskLo(qh: v128): v128 {
  const bits = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return i8x16.eq(v128.and(i8x16.swizzle(qh, i8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)), bits), bits);
}
@inline export function qhMaskHi(qh: v128): v128 {
  const bits = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return i8x16.eq(v128.and(i8x16.swizzle(qh, i8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3)), bits), bits);
}

// ---- Q5_0 (22 bytes: f16 d, u32 qh, u8 qs[16], q - 16) x Q8_0 ----
// As Q4_0: the 5-bit values stay unsigned and Σ(q-16)·a = Σq·a - 16·Σa.

/** the 32 five-bit values of a Q5_0/Q5_1 block as two u8 vectors (elements 0..15, 16..31), widened and dotted */
@inline function row5(qh: v128, q: v128, a0l: v128, a0h: v128, a1l: v128, a1h: v128): v128 {
  const b16 = i8x16.splat(16);
  const lo = v128.or(v128.and(q, i8x16.splat(15)), v128.and(qhMaskLo(qh), b16));
  const hi = v128.or(i8x16.shr_u(q, 4), v128.and(qhMaskHi(qh), b16));
  return dot32(lo, hi, a0l, a0h, a1l, a1h);
}

@inline function rowQ5_0(p: usize, bias: v128, a0l: v128, a0h: v128, a1l: v128, a1h: v128): v128 {
  return i32x4.sub(row5(i32x4.splat(load<u32>(p, 2)), v128.load(p, 6), a0l, a0h, a1l, a1h), bias);
}

export function dot4Q5_0(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const a0 = v128.load(a, 2);
    const a1 = v128.load(a, 18);
    const a0l = i16x8.extend_low_i8x16_s(a0);
    const a0h = i16x8.extend_high_i8x16_s(a0);
    const a1l = i16x8.extend_low_i8x16_s(a1);
    const a1h = i16x8.extend_high_i8x16_s(a1);
    const bias = i32x4.shl(i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(a0l, a0h), i16x8.add(a1l, a1h))), 4);
    const isum = hsum4(
      rowQ5_0(p0, bias, a0l, a0h, a1l, a1h), rowQ5_0(p1, bias, a0l, a0h, a1l, a1h),
      rowQ5_0(p2, bias, a0l, a0h, a1l, a1h), rowQ5_0(p3, bias, a0l, a0h, a1l, a1h),
    );
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const da = f64x2.splat(<f64>f16ToF32(load<u16>(a)));
    acc01 = f64x2.add(acc01, f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da)));
    acc23 = f64x2.add(acc23, f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 34;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- Q4_1 (20 bytes: f16 d, f16 m, u8 qs[16]) x Q8_1 (36 bytes: f16 d, f16 s, i8 qs[32]) ----

export function dot4Q4_1(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const a0 = v128.load(a, 4);
    const a1 = v128.load(a, 20);
    const a0l = i16x8.extend_low_i8x16_s(a0);
    const a0h = i16x8.extend_high_i8x16_s(a0);
    const a1l = i16x8.extend_low_i8x16_s(a1);
    const a1h = i16x8.extend_high_i8x16_s(a1);
    const isum = hsum4(
      nib32(v128.load(p0, 4), a0l, a0h, a1l, a1h), nib32(v128.load(p1, 4), a0l, a0h, a1l, a1h),
      nib32(v128.load(p2, 4), a0l, a0h, a1l, a1h), nib32(v128.load(p3, 4), a0l, a0h, a1l, a1h),
    );
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const mw = loadF16x4(p0, p1, p2, p3, 2);
    const da = f64x2.splat(<f64>f16ToF32(load<u16>(a)));
    const sa = f64x2.splat(<f64>f16ToF32(load<u16>(a, 2)));
    // sum += isum * (d_w * d_a) + m_w * s_a
    acc01 = f64x2.add(acc01, f64x2.add(f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da)), f64x2.mul(lo64(mw), sa)));
    acc23 = f64x2.add(acc23, f64x2.add(f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da)), f64x2.mul(hi64(mw), sa)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 36;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- Q5_1 (24 bytes: f16 d, f16 m, u32 qh, u8 qs[16]) x Q8_1 ----

export function dot4Q5_1(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const a0 = v128.load(a, 4);
    const a1 = v128.load(a, 20);
    const a0l = i16x8.extend_low_i8x16_s(a0);
    const a0h = i16x8.extend_high_i8x16_s(a0);
    const a1l = i16x8.extend_low_i8x16_s(a1);
    const a1h = i16x8.extend_high_i8x16_s(a1);
    const isum = hsum4(
      row5(i32x4.splat(load<u32>(p0, 4)), v128.load(p0, 8), a0l, a0h, a1l, a1h),
      row5(i32x4.splat(load<u32>(p1, 4)), v128.load(p1, 8), a0l, a0h, a1l, a1h),
      row5(i32x4.splat(load<u32>(p2, 4)), v128.load(p2, 8), a0l, a0h, a1l, a1h),
      row5(i32x4.splat(load<u32>(p3, 4)), v128.load(p3, 8), a0l, a0h, a1l, a1h),
    );
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const mw = loadF16x4(p0, p1, p2, p3, 2);
    const da = f64x2.splat(<f64>f16ToF32(load<u16>(a)));
    const sa = f64x2.splat(<f64>f16ToF32(load<u16>(a, 2)));
    acc01 = f64x2.add(acc01, f64x2.add(f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da)), f64x2.mul(lo64(mw), sa)));
    acc23 = f64x2.add(acc23, f64x2.add(f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da)), f64x2.mul(hi64(mw), sa)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 36;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}
