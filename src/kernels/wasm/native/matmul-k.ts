// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Dot products of four weight rows with one Q8_K activation row for the K-quants (Q2_K..Q6_K).
// Q8_K block (292 bytes): f32 d at 0, i8 qs[256] at 4, i16 bsums[16] at 260.
// Per super-block the integer sums (isum, and msum for the types with mins) are exact, and the
// float64 terms are the reference's (src/quant/q*_k.ts), so results are bit-identical to vecDot.

import { hsum4, ihi64, ilo64, hi64, lo64, loadF16x4 } from "./common";

/** Σ of 16 products (w small, a i8) as i16x8 */
@inline function prod16(w: v128, a: v128): v128 {
  return i16x8.add(i16x8.extmul_low_i8x16_s(w, a), i16x8.extmul_high_i8x16_s(w, a));
}

/** Σ of 32 products (|w| <= 31, a i8) as i16x8 */
@inline function prod32(w0: v128, w1: v128, a0: v128, a1: v128): v128 {
  return i16x8.add(prod16(w0, a0), prod16(w1, a1));
}

/** sum += (dw*d8)*isum - (dm*d8)*msum for rows 0,1 (lo) or 2,3 (hi), as f64x2 */
@inline function kTerm(dw: v128, dm: v128, d8: v128, isum: v128, msum: v128): v128 {
  return f64x2.sub(f64x2.mul(f64x2.mul(dw, d8), isum), f64x2.mul(f64x2.mul(dm, d8), msum));
}

// ---- Q4_K / Q5_K scales: 12 bytes at block offset 4 -> u8 lanes 0..7 = scales, 8..15 = mins ----

@inline export function k4Scales(p: usize): v128 {
  const b = v128.load(p, 4);
  const x = i8x16.swizzle(b, i8x16(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  const lowMask = i8x16(-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0);
  let r = v128.bitselect(x, i8x16.shr_u(x, 4), lowMask);
  r = v128.and(r, i8x16(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 15, 15, 15, 15));
  const y = i8x16.swizzle(b, i8x16(-128, -128, -128, -128, 0, 1, 2, 3, -128, -128, -128, -128, 4, 5, 6, 7));
  return v128.or(r, v128.and(i8x16.shr_u(y, 2), i8x16.splat(0x30)));
}

/** msum partials: Σ_g bsum_g * min_(g/2), exact in i32 (mins as u8 lanes 8..15 of sm) */
@inline function k4Mins(sm: v128, a: usize): v128 {
  const mn = i16x8.extend_high_i8x16_u(sm);
  const lo = i16x8.shuffle(mn, mn, 0, 0, 1, 1, 2, 2, 3, 3);
  const hi = i16x8.shuffle(mn, mn, 4, 4, 5, 5, 6, 6, 7, 7);
  return i32x4.add(i32x4.dot_i16x8_s(v128.load(a, 260), lo), i32x4.dot_i16x8_s(v128.load(a, 276), hi));
}

// ---- Q4_K (144 bytes: f16 d, f16 dmin, scales[12], qs[128]) ----
// Per 64 elements (two sub-blocks) the activations are widened to i16 once for all four rows;
// each row widens its 32 bytes of nibbles, and i32x4.dot_i16x8_s does the products.

/** i32 lane splat of i16 lane k of v (k not a constant) */
@inline function splat32of16(v: v128, k: i32): v128 {
  return i8x16.swizzle(v, i32x4.splat(0x80800100 + 0x0202 * k));
}

/** row contribution of one 64-element pair of sub-blocks: scale[lo]·Σ(low nibbles·a) + scale[hi]·Σ(high nibbles·a) */
@inline function pairQ4_K(
  q0: v128, q1: v128, a0: v128, a1: v128, a2: v128, a3: v128, a4: v128, a5: v128, a6: v128, a7: v128,
  scLo: v128, scHi: v128,
): v128 {
  const x0 = i16x8.extend_low_i8x16_u(q0);
  const x1 = i16x8.extend_high_i8x16_u(q0);
  const x2 = i16x8.extend_low_i8x16_u(q1);
  const x3 = i16x8.extend_high_i8x16_u(q1);
  const m = i16x8.splat(15);
  const lo = i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(x0, m), a0), i32x4.dot_i16x8_s(v128.and(x1, m), a1)),
    i32x4.add(i32x4.dot_i16x8_s(v128.and(x2, m), a2), i32x4.dot_i16x8_s(v128.and(x3, m), a3)),
  );
  const hi = i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(x0, 4), a4), i32x4.dot_i16x8_s(i16x8.shr_u(x1, 4), a5)),
    i32x4.add(i32x4.dot_i16x8_s(i16x8.shr_u(x2, 4), a6), i32x4.dot_i16x8_s(i16x8.shr_u(x3, 4), a7)),
  );
  return i32x4.add(i32x4.mul(lo, scLo), i32x4.mul(hi, scHi));
}

export function dot4Q4_K(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const s0 = k4Scales(p0);
    const s1 = k4Scales(p1);
    const s2 = k4Scales(p2);
    const s3 = k4Scales(p3);
    const c0 = i16x8.extend_low_i8x16_u(s0);
    const c1 = i16x8.extend_low_i8x16_u(s1);
    const c2 = i16x8.extend_low_i8x16_u(s2);
    const c3 = i16x8.extend_low_i8x16_u(s3);
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    for (let j = 0; j < 4; j++) {
      const qa = a + 4 + 64 * j;
      const l0 = v128.load(qa, 0), l1 = v128.load(qa, 16), l2 = v128.load(qa, 32), l3 = v128.load(qa, 48);
      const a0 = i16x8.extend_low_i8x16_s(l0), a1 = i16x8.extend_high_i8x16_s(l0);
      const a2 = i16x8.extend_low_i8x16_s(l1), a3 = i16x8.extend_high_i8x16_s(l1);
      const a4 = i16x8.extend_low_i8x16_s(l2), a5 = i16x8.extend_high_i8x16_s(l2);
      const a6 = i16x8.extend_low_i8x16_s(l3), a7 = i16x8.extend_high_i8x16_s(l3);
      const qo = <usize>(16 + 32 * j);
      i0 = i32x4.add(i0, pairQ4_K(v128.load(p0 + qo), v128.load(p0 + qo, 16), a0, a1, a2, a3, a4, a5, a6, a7, splat32of16(c0, 2 * j), splat32of16(c0, 2 * j + 1)));
      i1 = i32x4.add(i1, pairQ4_K(v128.load(p1 + qo), v128.load(p1 + qo, 16), a0, a1, a2, a3, a4, a5, a6, a7, splat32of16(c1, 2 * j), splat32of16(c1, 2 * j + 1)));
      i2 = i32x4.add(i2, pairQ4_K(v128.load(p2 + qo), v128.load(p2 + qo, 16), a0, a1, a2, a3, a4, a5, a6, a7, splat32of16(c2, 2 * j), splat32of16(c2, 2 * j + 1)));
      i3 = i32x4.add(i3, pairQ4_K(v128.load(p3 + qo), v128.load(p3 + qo, 16), a0, a1, a2, a3, a4, a5, a6, a7, splat32of16(c3, 2 * j), splat32of16(c3, 2 * j + 1)));
    }
    const isum = hsum4(i0, i1, i2, i3);
    const msum = hsum4(k4Mins(s0, a), k4Mins(s1, a), k4Mins(s2, a), k4Mins(s3, a));
    const d8 = f64x2.splat(<f64>load<f32>(a));
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const dm = loadF16x4(p0, p1, p2, p3, 2);
    acc01 = f64x2.add(acc01, kTerm(lo64(dw), lo64(dm), d8, ilo64(isum), ilo64(msum)));
    acc23 = f64x2.add(acc23, kTerm(hi64(dw), hi64(dm), d8, ihi64(isum), ihi64(msum)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 292;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- Q5_K (176 bytes: f16 d, f16 dmin, scales[12], qh[32], qs[128]) ----

@inline function rowQ5_K(p: usize, q8: usize, sm: v128): v128 {
  const sc = i16x8.extend_low_i8x16_u(sm);
  const m4 = i8x16.splat(15);
  const b16 = i8x16.splat(16);
  const h0 = v128.load(p, 16);
  const h1 = v128.load(p, 32);
  // sub-blocks 0,1: bits 0,1 of qh
  let q0 = v128.load(p, 48);
  let q1 = v128.load(p, 64);
  let acc = i32x4.dot_i16x8_s(prod32(
    v128.or(v128.and(q0, m4), v128.and(i8x16.shl(h0, 4), b16)),
    v128.or(v128.and(q1, m4), v128.and(i8x16.shl(h1, 4), b16)), v128.load(q8, 0), v128.load(q8, 16)), i16x8.shuffle(sc, sc, 0, 0, 0, 0, 0, 0, 0, 0));
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(prod32(
    v128.or(i8x16.shr_u(q0, 4), v128.and(i8x16.shl(h0, 3), b16)),
    v128.or(i8x16.shr_u(q1, 4), v128.and(i8x16.shl(h1, 3), b16)), v128.load(q8, 32), v128.load(q8, 48)), i16x8.shuffle(sc, sc, 1, 1, 1, 1, 1, 1, 1, 1)));
  // sub-blocks 2,3: bits 2,3
  q0 = v128.load(p, 80);
  q1 = v128.load(p, 96);
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(prod32(
    v128.or(v128.and(q0, m4), v128.and(i8x16.shl(h0, 2), b16)),
    v128.or(v128.and(q1, m4), v128.and(i8x16.shl(h1, 2), b16)), v128.load(q8, 64), v128.load(q8, 80)), i16x8.shuffle(sc, sc, 2, 2, 2, 2, 2, 2, 2, 2)));
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(prod32(
    v128.or(i8x16.shr_u(q0, 4), v128.and(i8x16.shl(h0, 1), b16)),
    v128.or(i8x16.shr_u(q1, 4), v128.and(i8x16.shl(h1, 1), b16)), v128.load(q8, 96), v128.load(q8, 112)), i16x8.shuffle(sc, sc, 3, 3, 3, 3, 3, 3, 3, 3)));
  // sub-blocks 4,5: bits 4,5
  q0 = v128.load(p, 112);
  q1 = v128.load(p, 128);
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(prod32(
    v128.or(v128.and(q0, m4), v128.and(h0, b16)),
    v128.or(v128.and(q1, m4), v128.and(h1, b16)), v128.load(q8, 128), v128.load(q8, 144)), i16x8.shuffle(sc, sc, 4, 4, 4, 4, 4, 4, 4, 4)));
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(prod32(
    v128.or(i8x16.shr_u(q0, 4), v128.and(i8x16.shr_u(h0, 1), b16)),
    v128.or(i8x16.shr_u(q1, 4), v128.and(i8x16.shr_u(h1, 1), b16)), v128.load(q8, 160), v128.load(q8, 176)), i16x8.shuffle(sc, sc, 5, 5, 5, 5, 5, 5, 5, 5)));
  // sub-blocks 6,7: bits 6,7
  q0 = v128.load(p, 144);
  q1 = v128.load(p, 160);
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(prod32(
    v128.or(v128.and(q0, m4), v128.and(i8x16.shr_u(h0, 2), b16)),
    v128.or(v128.and(q1, m4), v128.and(i8x16.shr_u(h1, 2), b16)), v128.load(q8, 192), v128.load(q8, 208)), i16x8.shuffle(sc, sc, 6, 6, 6, 6, 6, 6, 6, 6)));
  acc = i32x4.add(acc, i32x4.dot_i16x8_s(prod32(
    v128.or(i8x16.shr_u(q0, 4), v128.and(i8x16.shr_u(h0, 3), b16)),
    v128.or(i8x16.shr_u(q1, 4), v128.and(i8x16.shr_u(h1, 3), b16)), v128.load(q8, 224), v128.load(q8, 240)), i16x8.shuffle(sc, sc, 7, 7, 7, 7, 7, 7, 7, 7)));
  return acc;
}

export function dot4Q5_K(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const q8 = a + 4;
    const s0 = k4Scales(p0);
    const s1 = k4Scales(p1);
    const s2 = k4Scales(p2);
    const s3 = k4Scales(p3);
    const isum = hsum4(rowQ5_K(p0, q8, s0), rowQ5_K(p1, q8, s1), rowQ5_K(p2, q8, s2), rowQ5_K(p3, q8, s3));
    const msum = hsum4(k4Mins(s0, a), k4Mins(s1, a), k4Mins(s2, a), k4Mins(s3, a));
    const d8 = f64x2.splat(<f64>load<f32>(a));
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const dm = loadF16x4(p0, p1, p2, p3, 2);
    acc01 = f64x2.add(acc01, kTerm(lo64(dw), lo64(dm), d8, ilo64(isum), ilo64(msum)));
    acc23 = f64x2.add(acc23, kTerm(hi64(dw), hi64(dm), d8, ihi64(isum), ihi64(msum)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 292;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- Q6_K (210 bytes: ql[128], qh[64], i8 scales[16], f16 d) ----
// q - 32 is split as Σ sc·(q-32)·a = Σ sc·q·a - 32·Σ_g sc_g·bsum_g (the Q8_K block sums), so the
// 6-bit values stay unsigned; per 32 elements the activations are widened to i16 once for four rows.

/** i32 lane splat of the sign-extended i16 lane k of v (its high byte is the sign fill) */
@inline function splat32of16s(v: v128, k: i32): v128 {
  return i8x16.swizzle(v, i32x4.splat(0x01010100 + 0x02020202 * k));
}

/** one row's Σ over elements 128h + 32k + [0, 32) of sc·q·a (k, h constants after inlining) */
@inline function kQ6_K(p: usize, h: i32, k: i32, a0: v128, a1: v128, a2: v128, a3: v128, sc: v128): v128 {
  const ql = p + <usize>(64 * h + 32 * (k & 1));
  const qh = p + <usize>(128 + 32 * h);
  const m4 = i8x16.splat(15);
  const m30 = i8x16.splat(0x30);
  let l0 = v128.load(ql);
  let l1 = v128.load(ql, 16);
  if (k >= 2) {
    l0 = i8x16.shr_u(l0, 4);
    l1 = i8x16.shr_u(l1, 4);
  } else {
    l0 = v128.and(l0, m4);
    l1 = v128.and(l1, m4);
  }
  let h0 = v128.load(qh);
  let h1 = v128.load(qh, 16);
  if (k == 0) {
    h0 = i8x16.shl(h0, 4);
    h1 = i8x16.shl(h1, 4);
  } else if (k == 1) {
    h0 = i8x16.shl(h0, 2);
    h1 = i8x16.shl(h1, 2);
  } else if (k == 3) {
    h0 = i8x16.shr_u(h0, 2);
    h1 = i8x16.shr_u(h1, 2);
  }
  const v0 = v128.or(l0, v128.and(h0, m30));
  const v1 = v128.or(l1, v128.and(h1, m30));
  const g0 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(v0), a0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(v0), a1));
  const g1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(v1), a2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(v1), a3));
  return i32x4.add(i32x4.mul(g0, splat32of16s(sc, 2 * k)), i32x4.mul(g1, splat32of16s(sc, 2 * k + 1)));
}

export function dot4Q6_K(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    for (let h = 0; h < 2; h++) {
      const c0 = h == 0 ? i16x8.extend_low_i8x16_s(v128.load(p0, 192)) : i16x8.extend_high_i8x16_s(v128.load(p0, 192));
      const c1 = h == 0 ? i16x8.extend_low_i8x16_s(v128.load(p1, 192)) : i16x8.extend_high_i8x16_s(v128.load(p1, 192));
      const c2 = h == 0 ? i16x8.extend_low_i8x16_s(v128.load(p2, 192)) : i16x8.extend_high_i8x16_s(v128.load(p2, 192));
      const c3 = h == 0 ? i16x8.extend_low_i8x16_s(v128.load(p3, 192)) : i16x8.extend_high_i8x16_s(v128.load(p3, 192));
      const q8 = a + 4 + 128 * h;
      let l = v128.load(q8, 0), m = v128.load(q8, 16);
      let a0 = i16x8.extend_low_i8x16_s(l), a1 = i16x8.extend_high_i8x16_s(l), a2 = i16x8.extend_low_i8x16_s(m), a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, kQ6_K(p0, h, 0, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, kQ6_K(p1, h, 0, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, kQ6_K(p2, h, 0, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, kQ6_K(p3, h, 0, a0, a1, a2, a3, c3));
      l = v128.load(q8, 32); m = v128.load(q8, 48);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, kQ6_K(p0, h, 1, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, kQ6_K(p1, h, 1, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, kQ6_K(p2, h, 1, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, kQ6_K(p3, h, 1, a0, a1, a2, a3, c3));
      l = v128.load(q8, 64); m = v128.load(q8, 80);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, kQ6_K(p0, h, 2, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, kQ6_K(p1, h, 2, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, kQ6_K(p2, h, 2, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, kQ6_K(p3, h, 2, a0, a1, a2, a3, c3));
      l = v128.load(q8, 96); m = v128.load(q8, 112);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, kQ6_K(p0, h, 3, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, kQ6_K(p1, h, 3, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, kQ6_K(p2, h, 3, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, kQ6_K(p3, h, 3, a0, a1, a2, a3, c3));
    }
    const bias = hsum4(biasK(v128.load(p0, 192), a), biasK(v128.load(p1, 192), a), biasK(v128.load(p2, 192), a), biasK(v128.load(p3, 192), a));
    const isum = i32x4.sub(hsum4(i0, i1, i2, i3), i32x4.shl(bias, 5));
    const d8 = f64x2.splat(<f64>load<f32>(a));
    const dw = loadF16x4(p0, p1, p2, p3, 208);
    // sum += d * d8 * isum
    acc01 = f64x2.add(acc01, f64x2.mul(f64x2.mul(lo64(dw), d8), ilo64(isum)));
    acc23 = f64x2.add(acc23, f64x2.mul(f64x2.mul(hi64(dw), d8), ihi64(isum)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 292;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- Q3_K (110 bytes: hmask[32], qs[64], scales[12], f16 d) ----
// q = q2 + 4·hbit - 4 is split as Σ sc·(q2 + 4·hbit)·a - 4·Σ_g sc_g·bsum_g, so the values stay
// unsigned; per 32 elements the activations are widened to i16 once for the four rows.

/** the 16 six-bit scales minus 32, as i8 lanes */
@inline export function q3Scales(p: usize): v128 {
  const b = v128.load(p, 94); // b[2 + i] = scale byte i (the block ends at 110)
  const x = i8x16.swizzle(b, i8x16(2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5, 6, 7, 8, 9));
  const low = v128.bitselect(v128.and(x, i8x16.splat(15)), i8x16.shr_u(x, 4), i8x16(-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0));
  const y = i8x16.swizzle(b, i8x16(10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13, 10, 11, 12, 13));
  // quad k>>2 takes bits 2*(k>>2)..: shift the four quads by 0, 2, 4, 6
  const y01 = i8x16.shuffle(y, i8x16.shr_u(y, 2), 0, 1, 2, 3, 20, 21, 22, 23, 8, 9, 10, 11, 12, 13, 14, 15);
  const y23 = i8x16.shuffle(i8x16.shr_u(y, 4), i8x16.shr_u(y, 6), 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 28, 29, 30, 31);
  const hi = i8x16.shuffle(y01, y23, 0, 1, 2, 3, 4, 5, 6, 7, 24, 25, 26, 27, 28, 29, 30, 31);
  return i8x16.sub(v128.or(low, v128.and(i8x16.shl(hi, 4), i8x16.splat(0x30))), i8x16.splat(32));
}

/** Σ of two groups of 16 (u8 weights w0, w1; widened activations a0..a3) times their i32 scales */
@inline function groups2(w0: v128, w1: v128, a0: v128, a1: v128, a2: v128, a3: v128, s0: v128, s1: v128): v128 {
  const g0 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(w0), a0), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(w0), a1));
  const g1 = i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(w1), a2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(w1), a3));
  return i32x4.add(i32x4.mul(g0, s0), i32x4.mul(g1, s1));
}

/** one row, elements 128h + 32j + [0, 32): Σ sc·(q2 + 4·hbit)·a; j constant, bit = 1 << (4h + j) splat */
@inline function jQ3_K(p: usize, qs: usize, j: i32, bit: v128, a0: v128, a1: v128, a2: v128, a3: v128, sc: v128): v128 {
  const m3 = i8x16.splat(3);
  const m4 = i8x16.splat(4);
  const w0 = v128.or(v128.and(i8x16.shr_u(v128.load(p + qs), 2 * j), m3), v128.and(i8x16.eq(v128.and(v128.load(p), bit), bit), m4));
  const w1 = v128.or(v128.and(i8x16.shr_u(v128.load(p + qs, 16), 2 * j), m3), v128.and(i8x16.eq(v128.and(v128.load(p, 16), bit), bit), m4));
  return groups2(w0, w1, a0, a1, a2, a3, splat32of16s(sc, 2 * j), splat32of16s(sc, 2 * j + 1));
}

/** Σ_g sc_g·bsum_g of one row (sv: the 16 scales as i8), as i32 partials */
@inline function biasK(sv: v128, a: usize): v128 {
  return i32x4.add(
    i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(sv), v128.load(a, 260)),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(sv), v128.load(a, 276)),
  );
}

export function dot4Q3_K(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    const v0 = q3Scales(p0), v1 = q3Scales(p1), v2 = q3Scales(p2), v3 = q3Scales(p3);
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    for (let h = 0; h < 2; h++) {
      const c0 = h == 0 ? i16x8.extend_low_i8x16_s(v0) : i16x8.extend_high_i8x16_s(v0);
      const c1 = h == 0 ? i16x8.extend_low_i8x16_s(v1) : i16x8.extend_high_i8x16_s(v1);
      const c2 = h == 0 ? i16x8.extend_low_i8x16_s(v2) : i16x8.extend_high_i8x16_s(v2);
      const c3 = h == 0 ? i16x8.extend_low_i8x16_s(v3) : i16x8.extend_high_i8x16_s(v3);
      const qs = <usize>(32 + 32 * h);
      const q8 = a + 4 + 128 * h;
      let l = v128.load(q8, 0), m = v128.load(q8, 16);
      let a0 = i16x8.extend_low_i8x16_s(l), a1 = i16x8.extend_high_i8x16_s(l), a2 = i16x8.extend_low_i8x16_s(m), a3 = i16x8.extend_high_i8x16_s(m);
      let bit = i8x16.splat(<i8>(<i32>1 << (4 * h)));
      i0 = i32x4.add(i0, jQ3_K(p0, qs, 0, bit, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ3_K(p1, qs, 0, bit, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ3_K(p2, qs, 0, bit, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ3_K(p3, qs, 0, bit, a0, a1, a2, a3, c3));
      l = v128.load(q8, 32); m = v128.load(q8, 48);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      bit = i8x16.splat(<i8>(<i32>2 << (4 * h)));
      i0 = i32x4.add(i0, jQ3_K(p0, qs, 1, bit, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ3_K(p1, qs, 1, bit, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ3_K(p2, qs, 1, bit, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ3_K(p3, qs, 1, bit, a0, a1, a2, a3, c3));
      l = v128.load(q8, 64); m = v128.load(q8, 80);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      bit = i8x16.splat(<i8>(<i32>4 << (4 * h)));
      i0 = i32x4.add(i0, jQ3_K(p0, qs, 2, bit, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ3_K(p1, qs, 2, bit, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ3_K(p2, qs, 2, bit, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ3_K(p3, qs, 2, bit, a0, a1, a2, a3, c3));
      l = v128.load(q8, 96); m = v128.load(q8, 112);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      bit = i8x16.splat(<i8>(<i32>8 << (4 * h)));
      i0 = i32x4.add(i0, jQ3_K(p0, qs, 3, bit, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ3_K(p1, qs, 3, bit, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ3_K(p2, qs, 3, bit, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ3_K(p3, qs, 3, bit, a0, a1, a2, a3, c3));
    }
    const bias = hsum4(biasK(v0, a), biasK(v1, a), biasK(v2, a), biasK(v3, a));
    const isum = i32x4.sub(hsum4(i0, i1, i2, i3), i32x4.shl(bias, 2));
    const d8 = f64x2.splat(<f64>load<f32>(a));
    const dw = loadF16x4(p0, p1, p2, p3, 108);
    // sum += d * d8 * isum
    acc01 = f64x2.add(acc01, f64x2.mul(f64x2.mul(lo64(dw), d8), ilo64(isum)));
    acc23 = f64x2.add(acc23, f64x2.mul(f64x2.mul(hi64(dw), d8), ihi64(isum)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 292;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}

// ---- Q2_K (84 bytes: scales[16] (lo nibble scale, hi nibble min), qs[64], f16 d, f16 dmin) ----

/** one row, elements 128h + 32j + [0, 32): Σ sc·q·a (j constant) */
@inline function jQ2_K(p: usize, qs: usize, j: i32, a0: v128, a1: v128, a2: v128, a3: v128, sc: v128): v128 {
  const m3 = i8x16.splat(3);
  const w0 = v128.and(i8x16.shr_u(v128.load(p + qs), 2 * j), m3);
  const w1 = v128.and(i8x16.shr_u(v128.load(p + qs, 16), 2 * j), m3);
  return groups2(w0, w1, a0, a1, a2, a3, splat32of16(sc, 2 * j), splat32of16(sc, 2 * j + 1));
}

/** Σ_g bsum_g * min_g */
@inline function minsQ2_K(p: usize, a: usize): v128 {
  const mn = i8x16.shr_u(v128.load(p, 0), 4);
  return i32x4.add(
    i32x4.dot_i16x8_s(v128.load(a, 260), i16x8.extend_low_i8x16_u(mn)),
    i32x4.dot_i16x8_s(v128.load(a, 276), i16x8.extend_high_i8x16_u(mn)),
  );
}

export function dot4Q2_K(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  const m15 = i8x16.splat(15);
  for (let b = 0; b < nb; b++) {
    const v0 = v128.and(v128.load(p0), m15), v1 = v128.and(v128.load(p1), m15);
    const v2 = v128.and(v128.load(p2), m15), v3 = v128.and(v128.load(p3), m15);
    let i0 = i32x4.splat(0), i1 = i32x4.splat(0), i2 = i32x4.splat(0), i3 = i32x4.splat(0);
    for (let h = 0; h < 2; h++) {
      const c0 = h == 0 ? i16x8.extend_low_i8x16_u(v0) : i16x8.extend_high_i8x16_u(v0);
      const c1 = h == 0 ? i16x8.extend_low_i8x16_u(v1) : i16x8.extend_high_i8x16_u(v1);
      const c2 = h == 0 ? i16x8.extend_low_i8x16_u(v2) : i16x8.extend_high_i8x16_u(v2);
      const c3 = h == 0 ? i16x8.extend_low_i8x16_u(v3) : i16x8.extend_high_i8x16_u(v3);
      const qs = <usize>(16 + 32 * h);
      const q8 = a + 4 + 128 * h;
      let l = v128.load(q8, 0), m = v128.load(q8, 16);
      let a0 = i16x8.extend_low_i8x16_s(l), a1 = i16x8.extend_high_i8x16_s(l), a2 = i16x8.extend_low_i8x16_s(m), a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, jQ2_K(p0, qs, 0, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ2_K(p1, qs, 0, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ2_K(p2, qs, 0, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ2_K(p3, qs, 0, a0, a1, a2, a3, c3));
      l = v128.load(q8, 32); m = v128.load(q8, 48);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, jQ2_K(p0, qs, 1, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ2_K(p1, qs, 1, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ2_K(p2, qs, 1, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ2_K(p3, qs, 1, a0, a1, a2, a3, c3));
      l = v128.load(q8, 64); m = v128.load(q8, 80);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, jQ2_K(p0, qs, 2, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ2_K(p1, qs, 2, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ2_K(p2, qs, 2, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ2_K(p3, qs, 2, a0, a1, a2, a3, c3));
      l = v128.load(q8, 96); m = v128.load(q8, 112);
      a0 = i16x8.extend_low_i8x16_s(l); a1 = i16x8.extend_high_i8x16_s(l); a2 = i16x8.extend_low_i8x16_s(m); a3 = i16x8.extend_high_i8x16_s(m);
      i0 = i32x4.add(i0, jQ2_K(p0, qs, 3, a0, a1, a2, a3, c0));
      i1 = i32x4.add(i1, jQ2_K(p1, qs, 3, a0, a1, a2, a3, c1));
      i2 = i32x4.add(i2, jQ2_K(p2, qs, 3, a0, a1, a2, a3, c2));
      i3 = i32x4.add(i3, jQ2_K(p3, qs, 3, a0, a1, a2, a3, c3));
    }
    const isum = hsum4(i0, i1, i2, i3);
    const msum = hsum4(minsQ2_K(p0, a), minsQ2_K(p1, a), minsQ2_K(p2, a), minsQ2_K(p3, a));
    const d8 = f64x2.splat(<f64>load<f32>(a));
    const dw = loadF16x4(p0, p1, p2, p3, 80);
    const dm = loadF16x4(p0, p1, p2, p3, 82);
    // sum += d8*d*isum - d8*dmin*msum (the products commute exactly)
    acc01 = f64x2.add(acc01, kTerm(lo64(dw), lo64(dm), d8, ilo64(isum), ilo64(msum)));
    acc23 = f64x2.add(acc23, kTerm(hi64(dw), hi64(dm), d8, ihi64(isum), ihi64(msum)));
    p0 += st; p1 += st; p2 += st; p3 += st; a += 292;
  }
  return i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5);
}
