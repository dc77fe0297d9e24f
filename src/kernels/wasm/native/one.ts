// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// One-token (generation) and few-token matmul kernels that use a scratch slot (tile.ts): each
// activation row is widened to i16 once per call, in an element order that matches how the weights
// unpack most cheaply, with its per-block scale as f64 and its block sums, so the four-row loop
// does only the weight work. Half-float weight scales come from a 64K-entry f16 -> f32 table.
// TurboFan keeps loads in program order but schedules arithmetic as late as it can, so a long
// stretch of loads would all come first and spill; dummy stores between rows or sub-blocks pin
// the order (and constants are loaded once before them, as the stores force reloads).
//
// Element order of a 32-element block (both operands): a 16-byte vector read as i16x8 holds in
// lane i the bytes 2i (low) and 2i+1 (high). For nibble weights (byte j: element j in the low
// nibble, j+16 in the high one) lane i's four nibbles are the elements 2i, 2i+16, 2i+1, 2i+17,
// taken by `q & 15`, `(q >> 4) & 15`, `(q >> 8) & 15` and `q >> 12`; the activation vectors
// A0..A3 hold those elements of the token in that lane order (the K-quants: even and odd elements
// of each group of 16). Block sums are exact (i32; the K-quants' group sums are transposed into
// lanes, then scaled) and the float64 accumulation is the reference's, term for term, so results
// are bit-identical.

import { RELAXED, blockStep, hi64, ihi64, ilo64, lo64, rdot16, rdot32, rowAt } from "./common";
import { qhMaskHi, qhMaskLo } from "./matmul-q";
import { k4Scales, q3Scales } from "./matmul-k";
import { hsum4, store4 } from "./common";
import { f16Table, slotBytes } from "./tile";
import { oneF16, prepF16, prepF16Bytes } from "./matmul-f";

const F16: i32 = 1;
const Q4_0: i32 = 2;
const Q4_1: i32 = 3;
const Q5_0: i32 = 6;
const Q5_1: i32 = 7;
const Q8_0: i32 = 8;
const IQ4_NL: i32 = 20;
const Q4_K: i32 = 12;
const Q5_K: i32 = 13;
const Q6_K: i32 = 14;
const Q2_K: i32 = 10;
const Q3_K: i32 = 11;

/**
 * The prepared rows start this far into the slot. Before them: [0, 32) takes dummy stores that pin
 * V8's instruction order (two rows, then the next two), [32, 160) holds constants the kernels load
 * (V8 would otherwise rebuild a vector constant in every loop iteration): i16 0x000f, u8 0x0f, the
 * IQ4_NL values, i16 0x00ff, u8 0x30, 0x10, 0x03, 0x04; [160, 240) holds the two-token K-quant
 * kernel's unpacked scales and one accumulator (K4_SM, K4_ACC); [240, 576) is free.
 */
const PREP: usize = 576;
const K4_SM: usize = 160;
const K4_ACC: usize = 224;
const C_M16: usize = 32;
const C_M8: usize = 48;
const C_KV: usize = 64;
const C_MFF: usize = 80;
const C_M30: usize = 96;
const C_M10: usize = 112;
const C_M03: usize = 128;
const C_M04: usize = 144;

/**
 * A Q8_0 (q81 false) or Q8_1 activation row at a (nb blocks) to dst: per block A0..A3 (i16x8 each,
 * 64 bytes), or with raw the 32 bytes as they are (32 bytes: the relaxed kernels), then d as f64
 * per block, then per block Σq (i32, Q8_0) or s as f64 (Q8_1).
 */
function prep32(a: usize, nb: i32, dst: usize, q81: bool, raw: bool): void {
  if (RELAXED && raw) {
    prep32Raw(a, nb, dst, q81);
    return;
  }
  const dd = dst + (<usize>nb << 6), xd = dd + (<usize>nb << 3);
  const tab = f16Table();
  const qo: usize = q81 ? 4 : 2;
  const bytes: usize = q81 ? 36 : 34;
  for (let b = 0; b < nb; b++) {
    const v0 = v128.load(a + qo), v1 = v128.load(a + qo, 16);
    const e0 = i16x8.shr_s(i16x8.shl(v0, 8), 8), o0 = i16x8.shr_s(v0, 8);
    const e1 = i16x8.shr_s(i16x8.shl(v1, 8), 8), o1 = i16x8.shr_s(v1, 8);
    const o = dst + (<usize>b << 6);
    v128.store(o, e0);
    v128.store(o, e1, 16);
    v128.store(o, o0, 32);
    v128.store(o, o1, 48);
    store<f64>(dd + (<usize>b << 3), <f64>load<f32>(tab + (<usize>load<u16>(a) << 2)));
    if (q81) {
      store<f64>(xd + (<usize>b << 3), <f64>load<f32>(tab + (<usize>load<u16>(a, 2) << 2)));
    } else {
      const s = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.add(e0, e1), i16x8.add(o0, o1)));
      const t = i32x4.add(s, i32x4.shuffle(s, s, 2, 3, 0, 1));
      store<i32>(xd + (<usize>b << 2), i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1));
    }
    a += bytes;
  }
}

/** prep32 with raw: the bytes as they are, 32 per block */
function prep32Raw(a: usize, nb: i32, dst: usize, q81: bool): void {
  const dd = dst + (<usize>nb << 5), xd = dd + (<usize>nb << 3);
  const tab = f16Table();
  const qo: usize = q81 ? 4 : 2;
  const bytes: usize = q81 ? 36 : 34;
  for (let b = 0; b < nb; b++) {
    const v0 = v128.load(a + qo), v1 = v128.load(a + qo, 16);
    const o = dst + (<usize>b << 5);
    v128.store(o, v0);
    v128.store(o, v1, 16);
    store<f64>(dd + (<usize>b << 3), <f64>load<f32>(tab + (<usize>load<u16>(a) << 2)));
    if (q81) {
      store<f64>(xd + (<usize>b << 3), <f64>load<f32>(tab + (<usize>load<u16>(a, 2) << 2)));
    } else {
      const s = i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(v0), i16x8.extadd_pairwise_i8x16_s(v1)));
      const t = i32x4.add(s, i32x4.shuffle(s, s, 2, 3, 0, 1));
      store<i32>(xd + (<usize>b << 2), i32x4.extract_lane(t, 0) + i32x4.extract_lane(t, 1));
    }
    a += bytes;
  }
}

/** whether the relaxed kernels take a 32-element block type: unsigned weights below 128 (not Q8_0, IQ4_NL) */
@inline export function rx32(kind: i32): bool {
  return RELAXED && (kind == Q4_0 || kind == Q4_1 || kind == Q5_0 || kind == Q5_1);
}

/** log2 of a prepared block's bytes: 32 raw bytes (relaxed) or 64 widened */
@inline function abShift(kind: i32): usize {
  return rx32(kind) ? 5 : 6;
}

// The weight bytes of a Q4_0/Q4_1/Q5_0/Q5_1 block in element order for the relaxed dot with the
// raw activation bytes: wLo elements 0..15, wHi 16..31 (0..15, or 0..31 with the fifth bits), from
// the block's nibbles (wq) and for Q5 its fifth bits (wqh).
@inline function wq(kind: i32, p: usize): v128 {
  return v128.load(p + <usize>(kind == Q4_0 ? 2 : kind == Q5_0 ? 6 : kind == Q4_1 ? 4 : 8));
}
@inline function wqh(kind: i32, p: usize): v128 {
  return kind == Q5_0 || kind == Q5_1 ? i32x4.splat(load<u32>(p + <usize>(kind == Q5_0 ? 2 : 4))) : i32x4.splat(0);
}
@inline function wLo(kind: i32, q: v128, qh: v128, c: usize): v128 {
  const x = v128.and(q, v128.load(c, C_M8));
  return kind == Q5_0 || kind == Q5_1 ? v128.or(x, v128.and(qhMaskLo(qh), v128.load(c, C_M10))) : x;
}
@inline function wHi(kind: i32, q: v128, qh: v128, c: usize): v128 {
  const x = v128.and(i16x8.shr_u(q, 4), v128.load(c, C_M8));
  return kind == Q5_0 || kind == Q5_1 ? v128.or(x, v128.and(qhMaskHi(qh), v128.load(c, C_M10))) : x;
}

/** the f16 scales at byte off of four rows as f32x4, via the table */
@inline function scales4(tab: usize, p0: usize, p1: usize, p2: usize, p3: usize, off: usize): v128 {
  let v = v128.load32_zero(tab + (<usize>load<u16>(p0 + off) << 2));
  v = v128.load32_lane(tab + (<usize>load<u16>(p1 + off) << 2), v, 1);
  v = v128.load32_lane(tab + (<usize>load<u16>(p2 + off) << 2), v, 2);
  v = v128.load32_lane(tab + (<usize>load<u16>(p3 + off) << 2), v, 3);
  return v;
}

/** [Σ pairs of lanes] of two rows: a0+a1, b0+b1, a2+a3, b2+b3 (hsum4's first stage) */
@inline function hsum2(a: v128, b: v128): v128 {
  return i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
}

/** Σ over a block of the i16 lanes x (elements 2i | 2i+1 << 8, as u8 or i8 pairs) and y (2i+16 | 2i+17 << 8) */
@inline function dotBytes(x: v128, y: v128, a: usize, signed: bool, m16: v128): v128 {
  const x0 = signed ? i16x8.shr_s(i16x8.shl(x, 8), 8) : v128.and(x, m16);
  const y0 = signed ? i16x8.shr_s(i16x8.shl(y, 8), 8) : v128.and(y, m16);
  const x1 = signed ? i16x8.shr_s(x, 8) : i16x8.shr_u(x, 8);
  const y1 = signed ? i16x8.shr_s(y, 8) : i16x8.shr_u(y, 8);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(x0, v128.load(a)), i32x4.dot_i16x8_s(y0, v128.load(a, 16))),
    i32x4.add(i32x4.dot_i16x8_s(x1, v128.load(a, 32)), i32x4.dot_i16x8_s(y1, v128.load(a, 48))),
  );
}

/** one row's integer block sum (before the Q4_0/Q5_0 offset), kind a constant (not rx32: multi32 takes those); c: the constants */
@inline function row32(kind: i32, p: usize, a: usize, c: usize): v128 {
  if (kind == Q4_0 || kind == Q4_1) {
    const q = v128.load(p + <usize>(kind == Q4_0 ? 2 : 4));
    const m = v128.load(c, C_M16);
    return i32x4.add(
      i32x4.add(i32x4.dot_i16x8_s(v128.and(q, m), v128.load(a)), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(q, 4), m), v128.load(a, 16))),
      i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(q, 8), m), v128.load(a, 32)), i32x4.dot_i16x8_s(i16x8.shr_u(q, 12), v128.load(a, 48))),
    );
  } else if (kind == Q8_0) {
    return dotBytes(v128.load(p, 2), v128.load(p, 18), a, true, i16x8.splat(0));
  } else if (kind == IQ4_NL) {
    const q = v128.load(p, 2);
    const m8 = v128.load(c, C_M8);
    const kv = v128.load(c, C_KV);
    return dotBytes(i8x16.swizzle(kv, v128.and(q, m8)), i8x16.swizzle(kv, v128.and(i16x8.shr_u(q, 4), m8)), a, true, i16x8.splat(0));
  } else {
    // Q5_0 / Q5_1: the fifth bits as 0x10 in each element's byte
    const o: usize = kind == Q5_0 ? 2 : 4;
    const qh = i32x4.splat(load<u32>(p + o));
    const q = v128.load(p + o, 4);
    const m8 = v128.load(c, C_M8);
    const b16 = i8x16.splat(16);
    const x = v128.or(v128.and(q, m8), v128.and(qhMaskLo(qh), b16));
    const y = v128.or(v128.and(i16x8.shr_u(q, 4), m8), v128.and(qhMaskHi(qh), b16));
    return dotBytes(x, y, a, false, v128.load(c, C_MFF));
  }
}

/** 32-element block types but the relaxed build's rx32 ones (multi32), one token: rows [r0, r1), prepared activation row at s */
@inline function one32(kind: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, out: usize, c: usize): void {
  const tab = f16Table();
  const q81 = kind == Q4_1 || kind == Q5_1;
  const tb: usize = kind == Q8_0 ? 34 : kind == Q5_0 ? 22 : kind == Q4_1 ? 20 : kind == Q5_1 ? 24 : 18;
  const dd = s + (<usize>nb << abShift(kind)), xd = dd + (<usize>nb << 3);
  const step = blockStep(tb, pk);
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    let p0 = rowAt(w, r, rb, tb, pk);
    let p1 = nv > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    let p2 = nv > 2 ? rowAt(w, r + 2, rb, tb, pk) : p1;
    let p3 = nv > 3 ? rowAt(w, r + 3, rb, tb, pk) : p2;
    let acc01 = f64x2.splat(0);
    let acc23 = f64x2.splat(0);
    let a = s;
    for (let b = 0; b < nb; b++) {
      // rows in pairs; a store after each pair keeps V8 from interleaving (and spilling) the four
      // rows' temporaries
      const ab2 = hsum2(row32(kind, p0, a, c), row32(kind, p1, a, c));
      v128.store(c, ab2);
      const cd2 = hsum2(row32(kind, p2, a, c), row32(kind, p3, a, c));
      v128.store(c, cd2, 16);
      let isum = i32x4.add(i32x4.shuffle(ab2, cd2, 0, 1, 4, 5), i32x4.shuffle(ab2, cd2, 2, 3, 6, 7));
      // Σ(q-8)·a = Σq·a - 8·Σa (Q4_0), Σ(q-16)·a = Σq·a - 16·Σa (Q5_0)
      if (kind == Q4_0) isum = i32x4.sub(isum, i32x4.shl(v128.load32_splat(xd + (<usize>b << 2)), 3));
      if (kind == Q5_0) isum = i32x4.sub(isum, i32x4.shl(v128.load32_splat(xd + (<usize>b << 2)), 4));
      const dw = scales4(tab, p0, p1, p2, p3, 0);
      const da = v128.load64_splat(dd + (<usize>b << 3));
      // sum += isum·(d_w·d_a) [+ m_w·s_a]
      let t01 = f64x2.mul(ilo64(isum), f64x2.mul(lo64(dw), da));
      let t23 = f64x2.mul(ihi64(isum), f64x2.mul(hi64(dw), da));
      if (q81) {
        const mw = scales4(tab, p0, p1, p2, p3, 2);
        const sa = v128.load64_splat(xd + (<usize>b << 3));
        t01 = f64x2.add(t01, f64x2.mul(lo64(mw), sa));
        t23 = f64x2.add(t23, f64x2.mul(hi64(mw), sa));
      }
      acc01 = f64x2.add(acc01, t01);
      acc23 = f64x2.add(acc23, t23);
      p0 += step; p1 += step; p2 += step; p3 += step; a += <usize>1 << abShift(kind);
    }
    store4(out + (<usize>r << 2), i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5), nv);
  }
}

/** the four rows' integer block sums for the prepared block at a (weights l0..l3 / h0..h3 unpacked), offset applied */
@inline function quad32(kind: i32, l0: v128, h0: v128, l1: v128, h1: v128, l2: v128, h2: v128, l3: v128, h3: v128,
  a: usize, xd: usize, b: i32, c: usize): v128 {
  const x = v128.load(a), y = v128.load(a, 16);
  const ab = fence(c, hsum2(rdot32(x, l0, y, h0), rdot32(x, l1, y, h1)));
  const cd = fence(c + 16, hsum2(rdot32(x, l2, y, h2), rdot32(x, l3, y, h3)));
  let i = i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
  if (kind == Q4_0) i = i32x4.sub(i, i32x4.shl(v128.load32_splat(xd + (<usize>b << 2)), 3));
  if (kind == Q5_0) i = i32x4.sub(i, i32x4.shl(v128.load32_splat(xd + (<usize>b << 2)), 4));
  return i;
}

/**
 * Relaxed-build 32-element types (rx32), T (1..4) tokens (prepared rows at s + t·P, outputs at
 * out + 4·t·outStride): four rows at a time, each block's weights unpacked once for all tokens
 * (the few-token kernel walks one row at a time and, at two to four tokens, cost more than
 * one-token passes). With one token it is the one-token kernel of these types.
 */
@inline function multi32(kind: i32, T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, outStride: usize, c: usize): void {
  const tab = f16Table();
  const q81 = kind == Q4_1 || kind == Q5_1;
  const tb: usize = kind == Q5_0 ? 22 : kind == Q4_1 ? 20 : kind == Q5_1 ? 24 : 18;
  const dd = s + (<usize>nb << 5), xd = dd + (<usize>nb << 3);
  const step = blockStep(tb, pk);
  const o1 = outStride << 2;
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    let p0 = rowAt(w, r, rb, tb, pk);
    let p1 = nv > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    let p2 = nv > 2 ? rowAt(w, r + 2, rb, tb, pk) : p1;
    let p3 = nv > 3 ? rowAt(w, r + 3, rb, tb, pk) : p2;
    let a01 = f64x2.splat(0), a23 = a01, b01 = a01, b23 = a01, c01 = a01, c23 = a01, d01 = a01, d23 = a01;
    let a = s;
    for (let b = 0; b < nb; b++) {
      let q = wq(kind, p0), qh = wqh(kind, p0);
      const l0 = wLo(kind, q, qh, c), h0 = wHi(kind, q, qh, c);
      q = wq(kind, p1); qh = wqh(kind, p1);
      const l1 = wLo(kind, q, qh, c), h1 = wHi(kind, q, qh, c);
      q = wq(kind, p2); qh = wqh(kind, p2);
      const l2 = wLo(kind, q, qh, c), h2 = wHi(kind, q, qh, c);
      q = wq(kind, p3); qh = wqh(kind, p3);
      const l3 = wLo(kind, q, qh, c), h3 = wHi(kind, q, qh, c);
      // token by token (stores after each pair of rows pin the order)
      const i0 = quad32(kind, l0, h0, l1, h1, l2, h2, l3, h3, a, xd, b, c);
      const i1 = T > 1 ? quad32(kind, l0, h0, l1, h1, l2, h2, l3, h3, a + P, xd + P, b, c) : i0;
      const i2 = T > 2 ? quad32(kind, l0, h0, l1, h1, l2, h2, l3, h3, a + 2 * P, xd + 2 * P, b, c) : i1;
      const i3 = T > 3 ? quad32(kind, l0, h0, l1, h1, l2, h2, l3, h3, a + 3 * P, xd + 3 * P, b, c) : i1;
      const dw = scales4(tab, p0, p1, p2, p3, 0);
      const dlo = lo64(dw), dhi = hi64(dw);
      const mw = q81 ? scales4(tab, p0, p1, p2, p3, 2) : dw;
      const mlo = lo64(mw), mhi = hi64(mw);
      const bo = <usize>b << 3;
      a01 = f64x2.add(a01, multiLo(i0, dlo, mlo, dd + bo, xd + bo, q81));
      a23 = f64x2.add(a23, multiHi(i0, dhi, mhi, dd + bo, xd + bo, q81));
      if (T > 1) {
        b01 = f64x2.add(b01, multiLo(i1, dlo, mlo, dd + P + bo, xd + P + bo, q81));
        b23 = f64x2.add(b23, multiHi(i1, dhi, mhi, dd + P + bo, xd + P + bo, q81));
      }
      if (T > 2) {
        c01 = f64x2.add(c01, multiLo(i2, dlo, mlo, dd + 2 * P + bo, xd + 2 * P + bo, q81));
        c23 = f64x2.add(c23, multiHi(i2, dhi, mhi, dd + 2 * P + bo, xd + 2 * P + bo, q81));
      }
      if (T > 3) {
        d01 = f64x2.add(d01, multiLo(i3, dlo, mlo, dd + 3 * P + bo, xd + 3 * P + bo, q81));
        d23 = f64x2.add(d23, multiHi(i3, dhi, mhi, dd + 3 * P + bo, xd + 3 * P + bo, q81));
      }
      p0 += step; p1 += step; p2 += step; p3 += step; a += 32;
    }
    const o = out + (<usize>r << 2);
    store4(o, i32x4.shuffle(f32x4.demote_f64x2_zero(a01), f32x4.demote_f64x2_zero(a23), 0, 1, 4, 5), nv);
    if (T > 1) store4(o + o1, i32x4.shuffle(f32x4.demote_f64x2_zero(b01), f32x4.demote_f64x2_zero(b23), 0, 1, 4, 5), nv);
    if (T > 2) store4(o + 2 * o1, i32x4.shuffle(f32x4.demote_f64x2_zero(c01), f32x4.demote_f64x2_zero(c23), 0, 1, 4, 5), nv);
    if (T > 3) store4(o + 3 * o1, i32x4.shuffle(f32x4.demote_f64x2_zero(d01), f32x4.demote_f64x2_zero(d23), 0, 1, 4, 5), nv);
  }
}

/** rows 0,1 of one token's block: isum·(d_w·d_a) [+ m_w·s_a] (d_a at da, s_a at sa) */
@inline function multiLo(i: v128, dlo: v128, mlo: v128, da: usize, sa: usize, q81: bool): v128 {
  let t = f64x2.mul(ilo64(i), f64x2.mul(dlo, v128.load64_splat(da)));
  if (q81) t = f64x2.add(t, f64x2.mul(mlo, v128.load64_splat(sa)));
  return t;
}
/** rows 2,3 */
@inline function multiHi(i: v128, dhi: v128, mhi: v128, da: usize, sa: usize, q81: bool): v128 {
  let t = f64x2.mul(ihi64(i), f64x2.mul(dhi, v128.load64_splat(da)));
  if (q81) t = f64x2.add(t, f64x2.mul(mhi, v128.load64_splat(sa)));
  return t;
}

/** bytes of one prepared 32-block row (64-byte aligned) */
@inline function prep32Bytes(nb: i32): usize {
  return ((<usize>nb * 80) + 63) & ~63;
}

// ---- few tokens (2..8), 32-element block types: the weights unpacked in registers once per
// block for all tokens; the tokens' block sums gathered into the lanes of one vector, so the float
// work of a block (offset, scale, float64 accumulation) is done for two or four tokens at once ----

/** per (block, token group of four): d_a (4 f64), the offset correction (i32x4), s_a (4 f64, Q8_1) */
const FSIDE: usize = 96;

/**
 * The side table of T tokens' prepared rows (prep32 at s + t·P) at side: per block b and group g
 * (tokens [0, T0), then [T0, T)) at side + (b·NG + g)·FSIDE; absent tokens get zeros.
 */
function fewSide(kind: i32, T: i32, T0: i32, s: usize, P: usize, nb: i32, side: usize): void {
  const ng = T > T0 ? 2 : 1;
  const ddo = <usize>nb << abShift(kind), xdo = ddo + (<usize>nb << 3);
  const q81 = kind == Q4_1 || kind == Q5_1;
  const sh = kind == Q4_0 ? 3 : kind == Q5_0 ? 4 : 0;
  for (let b = 0; b < nb; b++) {
    for (let g = 0; g < ng; g++) {
      const sd = side + (<usize>b * <usize>ng + <usize>g) * FSIDE;
      for (let l = 0; l < 4; l++) {
        const t = g == 0 ? l : T0 + l;
        const st = s + <usize>t * P;
        const li = <usize>l;
        if (g == 0 ? l < T0 : t < T) {
          store<f64>(sd + (li << 3), load<f64>(st + ddo + (<usize>b << 3)));
          store<i32>(sd + 32 + (li << 2), sh == 0 ? 0 : load<i32>(st + xdo + (<usize>b << 2)) << sh);
          store<f64>(sd + 48 + (li << 3), q81 ? load<f64>(st + xdo + (<usize>b << 3)) : 0);
        } else {
          store<f64>(sd + (li << 3), 0);
          store<i32>(sd + 32 + (li << 2), 0);
          store<f64>(sd + 48 + (li << 3), 0);
        }
      }
    }
  }
}

/** Σ over a block of the unpacked weights w0..w3 times the prepared block at at (i32x4 partial sums) */
@inline function fewDot(w0: v128, w1: v128, w2: v128, w3: v128, at: usize): v128 {
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(w0, v128.load(at)), i32x4.dot_i16x8_s(w1, v128.load(at, 16))),
    i32x4.add(i32x4.dot_i16x8_s(w2, v128.load(at, 32)), i32x4.dot_i16x8_s(w3, v128.load(at, 48))),
  );
}

/** acc (two f64x2: tokens 0,1 and 2,3 of a group) += isum·(d_w·d_a) [+ m_w·s_a]; returns the new low half, stores nothing */
@inline function fewLo(isum: v128, dw: v128, mw: v128, sd: usize, q81: bool): v128 {
  let t = f64x2.mul(f64x2.convert_low_i32x4_s(isum), f64x2.mul(dw, v128.load(sd)));
  if (q81) t = f64x2.add(t, f64x2.mul(mw, v128.load(sd, 48)));
  return t;
}
@inline function fewHi(isum: v128, dw: v128, mw: v128, sd: usize, q81: bool): v128 {
  let t = f64x2.mul(f64x2.convert_low_i32x4_s(i32x4.shuffle(isum, isum, 2, 3, 2, 3)), f64x2.mul(dw, v128.load(sd, 16)));
  if (q81) t = f64x2.add(t, f64x2.mul(mw, v128.load(sd, 64)));
  return t;
}

/** the T (<= 4) block sums of group tokens at a, a + P, ... as i32 lanes (offset correction applied) */
@inline function groupSums(kind: i32, T: i32, p: usize, a: usize, P: usize, c: usize, sd: usize): v128 {
  if (rx32(kind)) return groupSumsRelaxed(kind, T, p, a, P, c, sd);
  let w0 = i32x4.splat(0), w1 = w0, w2 = w0, w3 = w0;
  if (kind == Q4_0 || kind == Q4_1) {
    const q = v128.load(p + <usize>(kind == Q4_0 ? 2 : 4));
    const m = v128.load(c, C_M16);
    w0 = v128.and(q, m);
    w1 = v128.and(i16x8.shr_u(q, 4), m);
    w2 = v128.and(i16x8.shr_u(q, 8), m);
    w3 = i16x8.shr_u(q, 12);
  } else if (kind == Q8_0 || kind == IQ4_NL) {
    let x = v128.load(p, 2), y = v128.load(p, 18);
    if (kind == IQ4_NL) {
      const m8 = v128.load(c, C_M8);
      const kv = v128.load(c, C_KV);
      y = i8x16.swizzle(kv, v128.and(i16x8.shr_u(x, 4), m8));
      x = i8x16.swizzle(kv, v128.and(x, m8));
    }
    w0 = i16x8.shr_s(i16x8.shl(x, 8), 8);
    w1 = i16x8.shr_s(i16x8.shl(y, 8), 8);
    w2 = i16x8.shr_s(x, 8);
    w3 = i16x8.shr_s(y, 8);
  } else {
    const o: usize = kind == Q5_0 ? 2 : 4;
    const qh = i32x4.splat(load<u32>(p + o));
    const q = v128.load(p + o, 4);
    const m8 = v128.load(c, C_M8);
    const mff = v128.load(c, C_MFF);
    const b16 = i8x16.splat(16);
    const x = v128.or(v128.and(q, m8), v128.and(qhMaskLo(qh), b16));
    const y = v128.or(v128.and(i16x8.shr_u(q, 4), m8), v128.and(qhMaskHi(qh), b16));
    w0 = v128.and(x, mff);
    w1 = v128.and(y, mff);
    w2 = i16x8.shr_u(x, 8);
    w3 = i16x8.shr_u(y, 8);
  }
  // (the stores after each token keep V8 from loading every token's activations first)
  let r = i32x4.splat(0);
  if (T == 2) {
    // two tokens: lanes 0, 1 (2, 3 hold the same sums again)
    const x0 = fence(c, fewDot(w0, w1, w2, w3, a)), x1 = fence(c, fewDot(w0, w1, w2, w3, a + P));
    const t = i32x4.add(i32x4.shuffle(x0, x1, 0, 4, 1, 5), i32x4.shuffle(x0, x1, 2, 6, 3, 7));
    r = i32x4.add(t, i32x4.shuffle(t, t, 2, 3, 0, 1));
  } else {
    const x0 = fence(c, fewDot(w0, w1, w2, w3, a)), x1 = fence(c, fewDot(w0, w1, w2, w3, a + P)), x2 = fence(c, fewDot(w0, w1, w2, w3, a + 2 * P));
    const x3 = T > 3 ? fence(c, fewDot(w0, w1, w2, w3, a + 3 * P)) : i32x4.splat(0);
    r = hsum4(x0, x1, x2, x3);
  }
  if (kind == Q4_0 || kind == Q5_0) r = i32x4.sub(r, v128.load(sd, 32));
  return r;
}

/** groupSums of the relaxed kernels: the weight bytes as they are, raw activation bytes */
@inline function groupSumsRelaxed(kind: i32, T: i32, p: usize, a: usize, P: usize, c: usize, sd: usize): v128 {
  const q = wq(kind, p), qh = wqh(kind, p);
  const lo = wLo(kind, q, qh, c), hi = wHi(kind, q, qh, c);
  let r = i32x4.splat(0);
  if (T == 2) {
    const x0 = fence(c, rdot32(v128.load(a), lo, v128.load(a, 16), hi));
    const x1 = fence(c, rdot32(v128.load(a + P), lo, v128.load(a + P, 16), hi));
    const t = i32x4.add(i32x4.shuffle(x0, x1, 0, 4, 1, 5), i32x4.shuffle(x0, x1, 2, 6, 3, 7));
    r = i32x4.add(t, i32x4.shuffle(t, t, 2, 3, 0, 1));
  } else {
    const x0 = fence(c, rdot32(v128.load(a), lo, v128.load(a, 16), hi));
    const x1 = fence(c, rdot32(v128.load(a + P), lo, v128.load(a + P, 16), hi));
    const x2 = fence(c, rdot32(v128.load(a + 2 * P), lo, v128.load(a + 2 * P, 16), hi));
    const x3 = T > 3 ? fence(c, rdot32(v128.load(a + 3 * P), lo, v128.load(a + 3 * P, 16), hi)) : i32x4.splat(0);
    r = hsum4(x0, x1, x2, x3);
  }
  if (kind == Q4_0 || kind == Q5_0) r = i32x4.sub(r, v128.load(sd, 32));
  return r;
}

/**
 * 32-element block types, T0 + T1 (2..8) tokens, one row at a time: token t's prepared row at
 * s + t·P, its outputs at out + 4·t·outStride. Tokens [0, T0) form the first group (2..4), the
 * next T1 (0, 2..4) the second.
 */
@inline function few32(kind: i32, T0: i32, T1: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, outStride: usize): void {
  const tab = f16Table();
  const c = s - PREP;
  const q81 = kind == Q4_1 || kind == Q5_1;
  const tb: usize = kind == Q8_0 ? 34 : kind == Q5_0 ? 22 : kind == Q4_1 ? 20 : kind == Q5_1 ? 24 : 18;
  const ng: usize = T1 > 0 ? 2 : 1;
  const sstep = ng * FSIDE;
  const s1 = <usize>T0 * P;
  const step = blockStep(tb, pk);
  for (let r = r0; r < r1; r++) {
    let p = rowAt(w, r, rb, tb, pk);
    let acc0 = f64x2.splat(0), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    let a = s;
    let sd = side;
    for (let b = 0; b < nb; b++) {
      const dw = f64x2.splat(<f64>load<f32>(tab + (<usize>load<u16>(p) << 2)));
      const mw = q81 ? f64x2.splat(<f64>load<f32>(tab + (<usize>load<u16>(p, 2) << 2))) : dw;
      const i0 = groupSums(kind, T0, p, a, P, c, sd);
      acc0 = f64x2.add(acc0, fewLo(i0, dw, mw, sd, q81));
      if (T0 > 2) acc1 = f64x2.add(acc1, fewHi(i0, dw, mw, sd, q81));
      if (T1 > 0) {
        const i1 = groupSums(kind, T1, p, a + s1, P, c, sd + FSIDE);
        acc2 = f64x2.add(acc2, fewLo(i1, dw, mw, sd + FSIDE, q81));
        if (T1 > 2) acc3 = f64x2.add(acc3, fewHi(i1, dw, mw, sd + FSIDE, q81));
      }
      p += step; a += <usize>1 << abShift(kind); sd += sstep;
    }
    const o = out + (<usize>r << 2);
    const os = outStride << 2;
    store<f32>(o, <f32>f64x2.extract_lane(acc0, 0));
    store<f32>(o + os, <f32>f64x2.extract_lane(acc0, 1));
    if (T0 > 2) store<f32>(o + 2 * os, <f32>f64x2.extract_lane(acc1, 0));
    if (T0 > 3) store<f32>(o + 3 * os, <f32>f64x2.extract_lane(acc1, 1));
    const o1 = o + <usize>T0 * os;
    if (T1 > 0) store<f32>(o1, <f32>f64x2.extract_lane(acc2, 0));
    if (T1 > 1) store<f32>(o1 + os, <f32>f64x2.extract_lane(acc2, 1));
    if (T1 > 2) store<f32>(o1 + 2 * os, <f32>f64x2.extract_lane(acc3, 0));
    if (T1 > 3) store<f32>(o1 + 3 * os, <f32>f64x2.extract_lane(acc3, 1));
  }
}

@inline function fewT(kind: i32, T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, outStride: usize): void {
  switch (T) {
    case 2: few32(kind, 2, 0, pk, w, rb, nb, r0, r1, s, P, side, out, outStride); break;
    case 3: few32(kind, 3, 0, pk, w, rb, nb, r0, r1, s, P, side, out, outStride); break;
    case 4: few32(kind, 4, 0, pk, w, rb, nb, r0, r1, s, P, side, out, outStride); break;
    case 5: few32(kind, 3, 2, pk, w, rb, nb, r0, r1, s, P, side, out, outStride); break;
    case 6: few32(kind, 4, 2, pk, w, rb, nb, r0, r1, s, P, side, out, outStride); break;
    case 7: few32(kind, 4, 3, pk, w, rb, nb, r0, r1, s, P, side, out, outStride); break;
    default: few32(kind, 4, 4, pk, w, rb, nb, r0, r1, s, P, side, out, outStride); break;
  }
}

// Each type's kernels live in a function of their own: inlined together into matmulFew, the loops
// of all types made one function so large that V8 compiled them worse (the two-token kernel: 3.8
// -> 6.7 ms, 14336x4096, one thread).

/** multi32 for a T (2..4) known at run time */
function multiT(type: i32, T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, os: usize, c: usize): void {
  switch (type) {
    case Q4_0: multiQ4_0(T, pk, w, rb, nb, r0, r1, s, P, out, os, c); break;
    case Q5_0: multiQ5_0(T, pk, w, rb, nb, r0, r1, s, P, out, os, c); break;
    case Q4_1: multiQ4_1(T, pk, w, rb, nb, r0, r1, s, P, out, os, c); break;
    default: multiQ5_1(T, pk, w, rb, nb, r0, r1, s, P, out, os, c); break;
  }
}
function multiQ4_0(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, os: usize, c: usize): void {
  multiK(Q4_0, T, pk, w, rb, nb, r0, r1, s, P, out, os, c);
}
function multiQ5_0(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, os: usize, c: usize): void {
  multiK(Q5_0, T, pk, w, rb, nb, r0, r1, s, P, out, os, c);
}
function multiQ4_1(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, os: usize, c: usize): void {
  multiK(Q4_1, T, pk, w, rb, nb, r0, r1, s, P, out, os, c);
}
function multiQ5_1(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, os: usize, c: usize): void {
  multiK(Q5_1, T, pk, w, rb, nb, r0, r1, s, P, out, os, c);
}
@inline function multiK(kind: i32, T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, os: usize, c: usize): void {
  switch (T) {
    case 2: multi32(kind, 2, pk, w, rb, nb, r0, r1, s, P, out, os, c); break;
    case 3: multi32(kind, 3, pk, w, rb, nb, r0, r1, s, P, out, os, c); break;
    default: multi32(kind, 4, pk, w, rb, nb, r0, r1, s, P, out, os, c); break;
  }
}

/** few32 per type, each in a function of its own (as multiT) */
function fewQ4_0(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, os: usize): void {
  fewT(Q4_0, T, pk, w, rb, nb, r0, r1, s, P, side, out, os);
}
function fewQ8_0(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, os: usize): void {
  fewT(Q8_0, T, pk, w, rb, nb, r0, r1, s, P, side, out, os);
}
function fewIQ4_NL(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, os: usize): void {
  fewT(IQ4_NL, T, pk, w, rb, nb, r0, r1, s, P, side, out, os);
}
function fewQ5_0(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, os: usize): void {
  fewT(Q5_0, T, pk, w, rb, nb, r0, r1, s, P, side, out, os);
}
function fewQ4_1(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, os: usize): void {
  fewT(Q4_1, T, pk, w, rb, nb, r0, r1, s, P, side, out, os);
}
function fewQ5_1(T: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, P: usize, side: usize, out: usize, os: usize): void {
  fewT(Q5_1, T, pk, w, rb, nb, r0, r1, s, P, side, out, os);
}

/** oneK4 for one or two Q4_K tokens, in a function of its own (as multiT) */
function fewQ4_K(T: i32, pk: bool, w: usize, rb: usize, nbK: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, os: usize, c: usize): void {
  if (T > 1) oneK4(Q4_K, 2, pk, w, rb, nbK, r0, r1, s, P, out, os, c);
  else oneK4(Q4_K, 1, pk, w, rb, nbK, r0, r1, s, P, out, os, c);
}

/** most tokens matmulFew takes at once */
export const FEW_MAX: i32 = 8;

/**
 * Tokens [0, T) (2 <= T <= FEW_MAX) for rows [r0, r1) with the weights unpacked once per block for
 * all of them (32-element block types); out/act as matmul's. False (nothing written) when it does
 * not apply (another type, or the slot too small).
 */
export function matmulFew(slot: usize, type: i32, pk: bool, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32,
  act: usize, actRowBytes: i32, T: i32, out: usize, outStride: i32): bool {
  if (T < 2 || T > FEW_MAX) return false;
  switch (type) {
    case Q4_0: case IQ4_NL: case Q5_0: case Q4_1: case Q5_1: break;
    case Q4_K: {
      // two tokens at a time through oneK4, an odd last one alone (measured, 14336x4096, one thread:
      // 2 tokens 5.0 -> 4.5 ms; Q5_K gained nothing clear and takes one-token passes)
      const nbK = nIn >> 8;
      const PK = (<usize>nbK * (KSB + 8) + 63) & ~(<usize>63);
      if (PREP + <usize>T * PK > slotBytes()) return false;
      const s = slot + PREP;
      for (let t = 0; t < T; t++) prepK(act + <usize>t * <usize>actRowBytes, nbK, s + <usize>t * PK);
      consts(slot);
      for (let t = 0; t < T; t += 2) {
        const n = min(2, T - t);
        const o = out + ((<usize>t * <usize>outStride) << 2);
        fewQ4_K(n, pk, w, <usize>rowBytes, nbK, r0, r1, s + <usize>t * PK, PK, o, <usize>outStride, slot);
      }
      return true;
    }
    // Q8_0: one-token passes are faster (measured, 14336x4096, one thread: 2 tokens 6.4 ms against
    // 8.3, 3: 9.6 against 12.5, 4: 12.8 against 15.0)
    default: return false;
  }
  const nb = nIn >> 5;
  const P = prep32Bytes(nb);
  const side = PREP + <usize>T * P;
  if (side + <usize>nb * 2 * FSIDE > slotBytes()) return false;
  const s = slot + PREP;
  const q81 = type == Q4_1 || type == Q5_1;
  const raw = RELAXED && type != Q8_0 && type != IQ4_NL;
  for (let t = 0; t < T; t++) prep32(act + <usize>t * <usize>actRowBytes, nb, s + <usize>t * P, q81, raw);
  consts(slot);
  const rb = <usize>rowBytes, os = <usize>outStride, sd = slot + side;
  if (rx32(type)) {
    // the relaxed Q4_0/Q5_0/Q4_1/Q5_1: multi32's four-row walk for up to four tokens at once (measured,
    // 14336x4096 packed, one thread: 3 tokens 8.2 -> 5.4 ms, 4: 9.1 -> 6.8), more in two groups
    const T0 = T <= 4 ? T : (T + 1) >> 1;
    multiT(type, T0, pk, w, rb, nb, r0, r1, s, P, out, os, slot);
    if (T > T0) multiT(type, T - T0, pk, w, rb, nb, r0, r1, s + <usize>T0 * P, P, out + ((<usize>T0 * os) << 2), os, slot);
    return true;
  }
  fewSide(type, T, T == 5 ? 3 : min(T, 4), s, P, nb, slot + side);
  switch (type) {
    case Q4_0: fewQ4_0(T, pk, w, rb, nb, r0, r1, s, P, sd, out, os); break;
    case Q8_0: fewQ8_0(T, pk, w, rb, nb, r0, r1, s, P, sd, out, os); break;
    case IQ4_NL: fewIQ4_NL(T, pk, w, rb, nb, r0, r1, s, P, sd, out, os); break;
    case Q5_0: fewQ5_0(T, pk, w, rb, nb, r0, r1, s, P, sd, out, os); break;
    case Q4_1: fewQ4_1(T, pk, w, rb, nb, r0, r1, s, P, sd, out, os); break;
    case Q5_1: fewQ5_1(T, pk, w, rb, nb, r0, r1, s, P, sd, out, os); break;
  }
  return true;
}

/** the constants the kernels load, before the prepared rows */
function consts(slot: usize): void {
  v128.store(slot, i16x8.splat(15), C_M16);
  v128.store(slot, i8x16.splat(15), C_M8);
  v128.store(slot, i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113), C_KV);
  v128.store(slot, i16x8.splat(0xff), C_MFF);
  v128.store(slot, i8x16.splat(0x30), C_M30);
  v128.store(slot, i8x16.splat(0x10), C_M10);
  v128.store(slot, i8x16.splat(0x03), C_M03);
  v128.store(slot, i8x16.splat(0x04), C_M04);
}

// ---- K-quants (256-element super-blocks, Q8_K activations) ----
// Prepared super-block (KSB bytes): for each group g of 16 elements (g = 0..15) the even elements
// (lanes i = element 16g + 2i) at 32g and the odd ones at 32g + 16, as i16; then the Q8_K block
// sums of pairs of groups (bsum[2p] + bsum[2p+1], i16x8) at 512 and the 16 block sums at 528.
// d (f64) per super-block follows all super-blocks. The relaxed build (every K-quant's weights are
// unsigned and below 128) keeps the 256 activation bytes as they are at [0, 256) instead of the
// groups' even and odd elements.

const KSB: usize = 576;

function prepK(a: usize, nbK: i32, dst: usize): void {
  const dd = dst + <usize>nbK * KSB;
  for (let B = 0; B < nbK; B++) {
    const o = dst + <usize>B * KSB;
    if (RELAXED) {
      for (let g: usize = 0; g < 256; g += 16) v128.store(o + g, v128.load(a + 4 + g));
    } else {
      for (let g: usize = 0; g < 16; g++) {
        const v = v128.load(a + 4 + (g << 4));
        v128.store(o + (g << 5), i16x8.shr_s(i16x8.shl(v, 8), 8));
        v128.store(o + (g << 5), i16x8.shr_s(v, 8), 16);
      }
    }
    const b0 = v128.load(a, 260), b1 = v128.load(a, 276);
    // pairwise sums of the 16 i16 sums (|sum| <= 4096: no overflow)
    v128.store(o, i16x8.add(i16x8.shuffle(b0, b1, 0, 2, 4, 6, 8, 10, 12, 14), i16x8.shuffle(b0, b1, 1, 3, 5, 7, 9, 11, 13, 15)), 512);
    v128.store(o, b0, 528);
    v128.store(o, b1, 544);
    store<f64>(dd + (<usize>B << 3), <f64>load<f32>(a));
    a += 292;
  }
}

/** Σ of nibble sub-block 2j (lo) of a Q4_K row: bytes 32j..32j+31 of qs, low nibbles */
@inline function q4kLo(p: usize, j: i32, a: usize, m: v128): v128 {
  const v0 = v128.load(p + <usize>(16 + 32 * j)), v1 = v128.load(p + <usize>(32 + 32 * j));
  if (RELAXED) {
    // m: u8 0x0f here; elements 64j .. 64j+31
    const g = a + <usize>(64 * j);
    return rdot32(v128.load(g), v128.and(v0, m), v128.load(g, 16), v128.and(v1, m));
  }
  const g = a + <usize>(128 * j);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(v0, m), v128.load(g)), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v0, 8), m), v128.load(g, 16))),
    i32x4.add(i32x4.dot_i16x8_s(v128.and(v1, m), v128.load(g, 32)), i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v1, 8), m), v128.load(g, 48))),
  );
}
/** the high nibbles: sub-block 2j+1 */
@inline function q4kHi(p: usize, j: i32, a: usize, m: v128): v128 {
  const v0 = v128.load(p + <usize>(16 + 32 * j)), v1 = v128.load(p + <usize>(32 + 32 * j));
  if (RELAXED) {
    // elements 64j+32 .. 64j+63
    const g = a + <usize>(64 * j + 32);
    return rdot32(v128.load(g), v128.and(i16x8.shr_u(v0, 4), m), v128.load(g, 16), v128.and(i16x8.shr_u(v1, 4), m));
  }
  const g = a + <usize>(128 * j + 64);
  return i32x4.add(
    i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v0, 4), m), v128.load(g)), i32x4.dot_i16x8_s(i16x8.shr_u(v0, 12), v128.load(g, 16))),
    i32x4.add(i32x4.dot_i16x8_s(v128.and(i16x8.shr_u(v1, 4), m), v128.load(g, 32)), i32x4.dot_i16x8_s(i16x8.shr_u(v1, 12), v128.load(g, 48))),
  );
}

/**
 * v, after storing it at c: V8 keeps loads in program order but schedules arithmetic as late as
 * it can, so without stores in between, a row's 40 loads would all come first (and spill)
 */
@inline function fence(c: usize, v: v128): v128 {
  v128.store(c, v);
  return v;
}

/** Σ_j scale_j·Σ(sub-block j) of one Q4_K row as i32 partials (sm: k4Scales) */
@inline function rowQ4_K(p: usize, sm: v128, a: usize, m: v128, c: usize): v128 {
  const t0 = hsum4(fence(c, q4kLo(p, 0, a, m)), fence(c, q4kHi(p, 0, a, m)), fence(c, q4kLo(p, 1, a, m)), fence(c, q4kHi(p, 1, a, m)));
  const t1 = hsum4(fence(c, q4kLo(p, 2, a, m)), fence(c, q4kHi(p, 2, a, m)), fence(c, q4kLo(p, 3, a, m)), fence(c, q4kHi(p, 3, a, m)));
  const sc = i16x8.extend_low_i8x16_u(sm);
  return i32x4.add(i32x4.mul(t0, i32x4.extend_low_i16x8_u(sc)), i32x4.mul(t1, i32x4.extend_high_i16x8_u(sc)));
}

/** Σ of sub-block 2j + hi of a Q5_K row: nibbles of qs bytes 32j.., fifth bits from qh (j, hi constants) */
@inline function q5kSub(p: usize, j: i32, hi: bool, a: usize, m8: v128, b10: v128, mff: v128): v128 {
  if (RELAXED) {
    // elements 64j (+32 for hi) .. +31: both halves (u) summed in i16 (0..31 values: no overflow)
    const g = a + <usize>(64 * j + (hi ? 32 : 0));
    return rdot32(v128.load(g), q5kBytes(p, j, hi, 0, m8, b10), v128.load(g, 16), q5kBytes(p, j, hi, 1, m8, b10));
  }
  const g = a + <usize>(128 * j + (hi ? 64 : 0));
  let sum = i32x4.splat(0);
  for (let u = 0; u < 2; u++) {
    const v = v128.load(p + <usize>(48 + 32 * j + 16 * u));
    const h = v128.load(p + <usize>(16 + 16 * u));
    // qh bit 2j (lo) or 2j+1 (hi) of each byte moved to bit 4 (one i16 shift; the mask drops what
    // crosses bytes)
    const k = hi ? 2 * j + 1 : 2 * j;
    const hb = v128.and(k <= 4 ? i16x8.shl(h, 4 - k) : i16x8.shr_u(h, k - 4), b10);
    const x = v128.or(v128.and(hi ? i16x8.shr_u(v, 4) : v, m8), hb);
    const gu = g + <usize>(32 * u);
    sum = i32x4.add(sum, i32x4.add(i32x4.dot_i16x8_s(v128.and(x, mff), v128.load(gu)), i32x4.dot_i16x8_s(i16x8.shr_u(x, 8), v128.load(gu, 16))));
  }
  return sum;
}

/** the 16 five-bit values (half u) of sub-block 2j + hi of a Q5_K row, in element order */
@inline function q5kBytes(p: usize, j: i32, hi: bool, u: i32, m8: v128, b10: v128): v128 {
  const v = v128.load(p + <usize>(48 + 32 * j + 16 * u));
  const h = v128.load(p + <usize>(16 + 16 * u));
  const k = hi ? 2 * j + 1 : 2 * j;
  const hb = v128.and(k <= 4 ? i16x8.shl(h, 4 - k) : i16x8.shr_u(h, k - 4), b10);
  return v128.or(v128.and(hi ? i16x8.shr_u(v, 4) : v, m8), hb);
}

/** Σ_j scale_j·Σ(sub-block j) of one Q5_K row as i32 partials (sm: k4Scales) */
@inline function rowQ5_K(p: usize, sm: v128, a: usize, c: usize): v128 {
  const m8 = v128.load(c, C_M8), b10 = v128.load(c, C_M10), mff = v128.load(c, C_MFF);
  const t0 = hsum4(fence(c, q5kSub(p, 0, false, a, m8, b10, mff)), fence(c, q5kSub(p, 0, true, a, m8, b10, mff)), fence(c, q5kSub(p, 1, false, a, m8, b10, mff)), fence(c, q5kSub(p, 1, true, a, m8, b10, mff)));
  const t1 = hsum4(fence(c, q5kSub(p, 2, false, a, m8, b10, mff)), fence(c, q5kSub(p, 2, true, a, m8, b10, mff)), fence(c, q5kSub(p, 3, false, a, m8, b10, mff)), fence(c, q5kSub(p, 3, true, a, m8, b10, mff)));
  const sc = i16x8.extend_low_i8x16_u(sm);
  return i32x4.add(i32x4.mul(t0, i32x4.extend_low_i16x8_u(sc)), i32x4.mul(t1, i32x4.extend_high_i16x8_u(sc)));
}

/** group 8h + 2j + u of a Q2_K / Q3_K row (kind): 2-bit quants (plus the Q3_K high bit as 4) */
@inline function q23Group(kind: i32, p: usize, h: i32, u: i32, j: i32, a: usize, m03: v128, m04: v128, mff: v128): v128 {
  const qs: usize = kind == Q2_K ? 16 : 32;
  const v = v128.load(p + qs + <usize>(32 * h + 16 * u));
  // (q >> 2j) & 3 per byte (one i16 shift; the mask drops what crosses bytes)
  let x = v128.and(j == 0 ? v : i16x8.shr_u(v, 2 * j), m03);
  if (kind == Q3_K) {
    const hm = v128.load(p + <usize>(16 * u));
    const k = 4 * h + j;
    x = v128.or(x, v128.and(k <= 2 ? i16x8.shl(hm, 2 - k) : i16x8.shr_u(hm, k - 2), m04));
  }
  return groupSum(x, a, 8 * h + 2 * j + u, mff);
}

/** Σ_g sc_g·Σ(q·a over group g) of one Q2_K / Q3_K row (Q3_K: minus 4·Σ_g sc_g·bsum_g), i32 partials */
@inline function rowQ23_K(kind: i32, p: usize, a: usize, c: usize): v128 {
  const m03 = v128.load(c, C_M03), m04 = v128.load(c, C_M04), mff = v128.load(c, C_MFF);
  const t0 = hsum4(fence(c, q23Group(kind, p, 0, 0, 0, a, m03, m04, mff)), fence(c, q23Group(kind, p, 0, 1, 0, a, m03, m04, mff)), fence(c, q23Group(kind, p, 0, 0, 1, a, m03, m04, mff)), fence(c, q23Group(kind, p, 0, 1, 1, a, m03, m04, mff)));
  const t1 = hsum4(fence(c, q23Group(kind, p, 0, 0, 2, a, m03, m04, mff)), fence(c, q23Group(kind, p, 0, 1, 2, a, m03, m04, mff)), fence(c, q23Group(kind, p, 0, 0, 3, a, m03, m04, mff)), fence(c, q23Group(kind, p, 0, 1, 3, a, m03, m04, mff)));
  const t2 = hsum4(fence(c, q23Group(kind, p, 1, 0, 0, a, m03, m04, mff)), fence(c, q23Group(kind, p, 1, 1, 0, a, m03, m04, mff)), fence(c, q23Group(kind, p, 1, 0, 1, a, m03, m04, mff)), fence(c, q23Group(kind, p, 1, 1, 1, a, m03, m04, mff)));
  const t3 = hsum4(fence(c, q23Group(kind, p, 1, 0, 2, a, m03, m04, mff)), fence(c, q23Group(kind, p, 1, 1, 2, a, m03, m04, mff)), fence(c, q23Group(kind, p, 1, 0, 3, a, m03, m04, mff)), fence(c, q23Group(kind, p, 1, 1, 3, a, m03, m04, mff)));
  // the 16 group scales as i16: Q2_K low nibbles (unsigned), Q3_K six bits minus 32 (signed)
  let s0 = i32x4.splat(0), s1 = s0;
  if (kind == Q2_K) {
    const sc = v128.and(v128.load(p), v128.load(c, C_M8));
    s0 = i16x8.extend_low_i8x16_u(sc);
    s1 = i16x8.extend_high_i8x16_u(sc);
  } else {
    const sc = q3Scales(p);
    s0 = i16x8.extend_low_i8x16_s(sc);
    s1 = i16x8.extend_high_i8x16_s(sc);
  }
  const v = i32x4.add(
    i32x4.add(i32x4.mul(t0, i32x4.extend_low_i16x8_s(s0)), i32x4.mul(t1, i32x4.extend_high_i16x8_s(s0))),
    i32x4.add(i32x4.mul(t2, i32x4.extend_low_i16x8_s(s1)), i32x4.mul(t3, i32x4.extend_high_i16x8_s(s1))),
  );
  if (kind == Q2_K) return v;
  const bias = i32x4.add(i32x4.dot_i16x8_s(s0, v128.load(a, 528)), i32x4.dot_i16x8_s(s1, v128.load(a, 544)));
  return i32x4.sub(v, i32x4.shl(bias, 2));
}

/** Σ_g min_g·bsum_g of one Q2_K row (mins: the high nibbles of the scale bytes), i32 partials */
@inline function minsQ2_K(p: usize, a: usize, c: usize): v128 {
  const mn = v128.and(i16x8.shr_u(v128.load(p), 4), v128.load(c, C_M8));
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_u(mn), v128.load(a, 528)), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(mn), v128.load(a, 544)));
}

/** Q2_K and Q3_K (kind), one token */
@inline function oneK23(kind: i32, pk: bool, w: usize, rb: usize, nbK: i32, r0: i32, r1: i32, s: usize, out: usize): void {
  const tab = f16Table();
  const c = s - PREP;
  const dd = s + <usize>nbK * KSB;
  const tb: usize = kind == Q2_K ? 84 : 110;
  const step = blockStep(tb, pk);
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    let p0 = rowAt(w, r, rb, tb, pk);
    let p1 = nv > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    let p2 = nv > 2 ? rowAt(w, r + 2, rb, tb, pk) : p1;
    let p3 = nv > 3 ? rowAt(w, r + 3, rb, tb, pk) : p2;
    let acc01 = f64x2.splat(0);
    let acc23 = f64x2.splat(0);
    let a = s;
    for (let B = 0; B < nbK; B++) {
      const v0 = rowQ23_K(kind, p0, a, c);
      v128.store(c, v0);
      const v1 = rowQ23_K(kind, p1, a, c);
      v128.store(c, v1, 16);
      const v2 = rowQ23_K(kind, p2, a, c);
      v128.store(c, v2);
      const v3 = rowQ23_K(kind, p3, a, c);
      v128.store(c, v3, 16);
      const isum = hsum4(v0, v1, v2, v3);
      const d8 = v128.load64_splat(dd + (<usize>B << 3));
      if (kind == Q2_K) {
        const msum = hsum4(minsQ2_K(p0, a, c), minsQ2_K(p1, a, c), minsQ2_K(p2, a, c), minsQ2_K(p3, a, c));
        const dw = scales4(tab, p0, p1, p2, p3, 80);
        const dm = scales4(tab, p0, p1, p2, p3, 82);
        // sum += d8·d·isum - d8·dmin·msum
        acc01 = f64x2.add(acc01, f64x2.sub(f64x2.mul(f64x2.mul(d8, lo64(dw)), ilo64(isum)), f64x2.mul(f64x2.mul(d8, lo64(dm)), ilo64(msum))));
        acc23 = f64x2.add(acc23, f64x2.sub(f64x2.mul(f64x2.mul(d8, hi64(dw)), ihi64(isum)), f64x2.mul(f64x2.mul(d8, hi64(dm)), ihi64(msum))));
      } else {
        const dw = scales4(tab, p0, p1, p2, p3, 108);
        // sum += d·d8·isum
        acc01 = f64x2.add(acc01, f64x2.mul(f64x2.mul(lo64(dw), d8), ilo64(isum)));
        acc23 = f64x2.add(acc23, f64x2.mul(f64x2.mul(hi64(dw), d8), ihi64(isum)));
      }
      p0 += step; p1 += step; p2 += step; p3 += step; a += KSB;
    }
    store4(out + (<usize>r << 2), i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5), nv);
  }
}

/** the Q6_K bytes (6-bit values) of group k of a 16-byte slice: k = 0, 1 low nibbles of ql, 2, 3 high */
@inline function q6kBytes(ql: v128, qh: v128, k: i32, m8: v128, m30: v128): v128 {
  if (k == 0) return v128.or(v128.and(ql, m8), v128.and(i16x8.shl(qh, 4), m30));
  if (k == 1) return v128.or(v128.and(ql, m8), v128.and(i16x8.shl(qh, 2), m30));
  if (k == 2) return v128.or(v128.and(i16x8.shr_u(ql, 4), m8), v128.and(qh, m30));
  return v128.or(v128.and(i16x8.shr_u(ql, 4), m8), v128.and(i16x8.shr_u(qh, 2), m30));
}

/** Σ of one 16-element group: bytes b (elements 2i | 2i+1 << 8, unsigned) with the prepared group at g */
@inline function group16(b: v128, g: usize, mff: v128): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(v128.and(b, mff), v128.load(g)), i32x4.dot_i16x8_s(i16x8.shr_u(b, 8), v128.load(g, 16)));
}

/** Σ of group g (0..15) of a prepared super-block at a times the 16 weight bytes b (element order, 0..127) */
@inline function groupSum(b: v128, a: usize, g: i32, mff: v128): v128 {
  if (RELAXED) return rdot16(v128.load(a + <usize>(g << 4)), b);
  return group16(b, a + <usize>(g << 5), mff);
}

/** group 8h + 2k + u of a Q6_K row (slice (h, u), k = 0..3) */
@inline function q6kSlice(p: usize, h: i32, u: i32, a: usize, k: i32, m8: v128, m30: v128, mff: v128): v128 {
  const ql = v128.load(p + <usize>(64 * h + 32 * (k & 1) + 16 * u));
  const qh = v128.load(p + <usize>(128 + 32 * h + 16 * u));
  return groupSum(q6kBytes(ql, qh, k, m8, m30), a, 8 * h + 2 * k + u, mff);
}

/** Σ_g sc_g·Σ(q·a over group g) - 32·Σ_g sc_g·bsum_g of one Q6_K row, as i32 partials */
@inline function rowQ6_K(p: usize, a: usize, c: usize): v128 {
  // constants loaded once: after the dummy stores V8 would have to load them again
  const m8 = v128.load(c, C_M8), m30 = v128.load(c, C_M30), mff = v128.load(c, C_MFF);
  // groups in scale order g = 8h + 2k + u
  const t0 = hsum4(fence(c, q6kSlice(p, 0, 0, a, 0, m8, m30, mff)), fence(c, q6kSlice(p, 0, 1, a, 0, m8, m30, mff)), fence(c, q6kSlice(p, 0, 0, a, 1, m8, m30, mff)), fence(c, q6kSlice(p, 0, 1, a, 1, m8, m30, mff)));
  const t1 = hsum4(fence(c, q6kSlice(p, 0, 0, a, 2, m8, m30, mff)), fence(c, q6kSlice(p, 0, 1, a, 2, m8, m30, mff)), fence(c, q6kSlice(p, 0, 0, a, 3, m8, m30, mff)), fence(c, q6kSlice(p, 0, 1, a, 3, m8, m30, mff)));
  const t2 = hsum4(fence(c, q6kSlice(p, 1, 0, a, 0, m8, m30, mff)), fence(c, q6kSlice(p, 1, 1, a, 0, m8, m30, mff)), fence(c, q6kSlice(p, 1, 0, a, 1, m8, m30, mff)), fence(c, q6kSlice(p, 1, 1, a, 1, m8, m30, mff)));
  const t3 = hsum4(fence(c, q6kSlice(p, 1, 0, a, 2, m8, m30, mff)), fence(c, q6kSlice(p, 1, 1, a, 2, m8, m30, mff)), fence(c, q6kSlice(p, 1, 0, a, 3, m8, m30, mff)), fence(c, q6kSlice(p, 1, 1, a, 3, m8, m30, mff)));
  const sv = v128.load(p, 192);
  const s0 = i16x8.extend_low_i8x16_s(sv), s1 = i16x8.extend_high_i8x16_s(sv);
  let v = i32x4.add(
    i32x4.add(i32x4.mul(t0, i32x4.extend_low_i16x8_s(s0)), i32x4.mul(t1, i32x4.extend_high_i16x8_s(s0))),
    i32x4.add(i32x4.mul(t2, i32x4.extend_low_i16x8_s(s1)), i32x4.mul(t3, i32x4.extend_high_i16x8_s(s1))),
  );
  const bias = i32x4.add(i32x4.dot_i16x8_s(s0, v128.load(a, 528)), i32x4.dot_i16x8_s(s1, v128.load(a, 544)));
  return i32x4.sub(v, i32x4.shl(bias, 5));
}

/**
 * Q4_K and Q5_K (kind), T (1, 2) tokens: prepared rows (prepK) at s and s + P, outputs at out and
 * out + 4·outStride; c: the slot (its constants and scratch). Two tokens share each row's scale unpacking and half-float scales, and read
 * the weights from L1 the second time.
 */
@inline function oneK4(kind: i32, T: i32, pk: bool, w: usize, rb: usize, nbK: i32, r0: i32, r1: i32, s: usize, P: usize, out: usize, outStride: usize, c: usize): void {
  const tb: usize = kind == Q4_K ? 144 : 176;
  const tab = f16Table();
  const dd = s + <usize>nbK * KSB;
  const step = blockStep(tb, pk);
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    let p0 = rowAt(w, r, rb, tb, pk);
    let p1 = nv > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    let p2 = nv > 2 ? rowAt(w, r + 2, rb, tb, pk) : p1;
    let p3 = nv > 3 ? rowAt(w, r + 3, rb, tb, pk) : p2;
    let acc01 = f64x2.splat(0), acc23 = acc01, bcc01 = acc01, bcc23 = acc01;
    let a = s;
    for (let B = 0; B < nbK; B++) {
      const m = v128.load(c, RELAXED ? C_M8 : C_M16);
      // one row at a time; a store after each keeps V8 from interleaving (and spilling) rows
      const sm0 = k4Scales(p0), sm1 = k4Scales(p1), sm2 = k4Scales(p2), sm3 = k4Scales(p3);
      // (two tokens: the second reloads the unpacked scales rather than keep them in registers)
      if (T > 1) { v128.store(c + K4_SM, sm0); v128.store(c + K4_SM, sm1, 16); v128.store(c + K4_SM, sm2, 32); v128.store(c + K4_SM, sm3, 48); }
      const dw = scales4(tab, p0, p1, p2, p3, 0);
      const dm = scales4(tab, p0, p1, p2, p3, 2);
      acc01 = f64x2.add(acc01, k4Lo(kind, p0, p1, p2, p3, sm0, sm1, sm2, sm3, c, a, m, dd + (<usize>B << 3), dw, dm, acc23));
      acc23 = v128.load(c + K4_ACC);
      if (T > 1) {
        const m1 = v128.load(c + K4_SM), n1 = v128.load(c + K4_SM, 16), m2 = v128.load(c + K4_SM, 32), n2 = v128.load(c + K4_SM, 48);
        bcc01 = f64x2.add(bcc01, k4Lo(kind, p0, p1, p2, p3, m1, n1, m2, n2, c, a + P, m, dd + P + (<usize>B << 3), dw, dm, bcc23));
        bcc23 = v128.load(c + K4_ACC);
      }
      p0 += step; p1 += step; p2 += step; p3 += step; a += KSB;
    }
    store4(out + (<usize>r << 2), i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5), nv);
    if (T > 1) store4(out + ((<usize>outStride + <usize>r) << 2), i32x4.shuffle(f32x4.demote_f64x2_zero(bcc01), f32x4.demote_f64x2_zero(bcc23), 0, 1, 4, 5), nv);
  }
}

/**
 * One token's super-block of four Q4_K/Q5_K rows (sm0..sm3: k4Scales): returns rows
 * 0,1's term d·d8·isum - dmin·d8·msum; rows 2,3's accumulator acc23 plus their term is stored at c + K4_ACC.
 */
@inline function k4Lo(kind: i32, p0: usize, p1: usize, p2: usize, p3: usize, sm0: v128, sm1: v128, sm2: v128, sm3: v128,
  c: usize, a: usize, m: v128, d8p: usize, dw: v128, dm: v128, acc23: v128): v128 {
  const bs2 = v128.load(a, 512);
  const v0 = (kind == Q4_K ? rowQ4_K(p0, sm0, a, m, c) : rowQ5_K(p0, sm0, a, c));
  v128.store(c, v0);
  const v1 = (kind == Q4_K ? rowQ4_K(p1, sm1, a, m, c) : rowQ5_K(p1, sm1, a, c));
  v128.store(c, v1, 16);
  const v2 = (kind == Q4_K ? rowQ4_K(p2, sm2, a, m, c) : rowQ5_K(p2, sm2, a, c));
  v128.store(c, v2);
  const v3 = (kind == Q4_K ? rowQ4_K(p3, sm3, a, m, c) : rowQ5_K(p3, sm3, a, c));
  v128.store(c, v3, 16);
  const isum = hsum4(v0, v1, v2, v3);
  // Σ_g bsum_g·min_(g/2) = Σ_p (bsum_2p + bsum_2p+1)·min_p
  const msum = hsum4(
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm0), bs2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm1), bs2),
    i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm2), bs2), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_u(sm3), bs2),
  );
  const d8 = v128.load64_splat(d8p);
  // sum += d·d8·isum - dmin·d8·msum
  v128.store(c + K4_ACC, f64x2.add(acc23, f64x2.sub(f64x2.mul(f64x2.mul(hi64(dw), d8), ihi64(isum)), f64x2.mul(f64x2.mul(hi64(dm), d8), ihi64(msum)))));
  return f64x2.sub(f64x2.mul(f64x2.mul(lo64(dw), d8), ilo64(isum)), f64x2.mul(f64x2.mul(lo64(dm), d8), ilo64(msum)));
}

function oneQ6_K(pk: bool, w: usize, rb: usize, nbK: i32, r0: i32, r1: i32, s: usize, out: usize): void {
  const tab = f16Table();
  const c = s - PREP;
  const dd = s + <usize>nbK * KSB;
  const tb: usize = 210;
  const step = blockStep(tb, pk);
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    let p0 = rowAt(w, r, rb, tb, pk);
    let p1 = nv > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    let p2 = nv > 2 ? rowAt(w, r + 2, rb, tb, pk) : p1;
    let p3 = nv > 3 ? rowAt(w, r + 3, rb, tb, pk) : p2;
    let acc01 = f64x2.splat(0);
    let acc23 = f64x2.splat(0);
    let a = s;
    for (let B = 0; B < nbK; B++) {
      const v0 = rowQ6_K(p0, a, c);
      v128.store(c, v0);
      const v1 = rowQ6_K(p1, a, c);
      v128.store(c, v1, 16);
      const v2 = rowQ6_K(p2, a, c);
      v128.store(c, v2);
      const v3 = rowQ6_K(p3, a, c);
      v128.store(c, v3, 16);
      const isum = hsum4(v0, v1, v2, v3);
      const d8 = v128.load64_splat(dd + (<usize>B << 3));
      const dw = scales4(tab, p0, p1, p2, p3, 208);
      // sum += d·d8·isum
      acc01 = f64x2.add(acc01, f64x2.mul(f64x2.mul(lo64(dw), d8), ilo64(isum)));
      acc23 = f64x2.add(acc23, f64x2.mul(f64x2.mul(hi64(dw), d8), ihi64(isum)));
      p0 += step; p1 += step; p2 += step; p3 += step; a += KSB;
    }
    store4(out + (<usize>r << 2), i32x4.shuffle(f32x4.demote_f64x2_zero(acc01), f32x4.demote_f64x2_zero(acc23), 0, 1, 4, 5), nv);
  }
}

/** the one-token product of a 32-element block type: multi32 with one token for the relaxed build's rx32 types, else one32 */
@inline function oneTok32(kind: i32, pk: bool, w: usize, rb: usize, nb: i32, r0: i32, r1: i32, s: usize, out: usize, c: usize): void {
  if (rx32(kind)) multi32(kind, 1, pk, w, rb, nb, r0, r1, s, 0, out, 0, c);
  else one32(kind, pk, w, rb, nb, r0, r1, s, out, c);
}

/**
 * out[r] = W row r . the activation row at act, rows [r0, r1), using scratch slot `slot` (with
 * oneBytes(type, nIn) bytes). Returns false (nothing written) for a type without a kernel here.
 */
export function matmulOne(slot: usize, type: i32, pk: bool, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32, act: usize, out: usize): bool {
  const s = slot + PREP;
  const rb = <usize>rowBytes;
  const nb = nIn >> 5;
  switch (type) {
    case F16: {
      // F16 weights (never packed): the activation row as scaled f32 (matmul-f.ts)
      if (pk) return false;
      prepF16(act, nIn, s);
      oneF16(w, rb, nIn, r0, r1, s, out);
      return true;
    }
    case Q4_0: case Q8_0: case IQ4_NL: case Q5_0: case Q4_1: case Q5_1: {
      prep32(act, nb, s, type == Q4_1 || type == Q5_1, RELAXED && type != Q8_0 && type != IQ4_NL);
      consts(slot);
      break;
    }
    case Q2_K: case Q3_K: case Q4_K: case Q5_K: case Q6_K: {
      prepK(act, nIn >> 8, s);
      consts(slot);
      switch (type) {
        case Q2_K: oneK23(Q2_K, pk, w, rb, nIn >> 8, r0, r1, s, out); break;
        case Q3_K: oneK23(Q3_K, pk, w, rb, nIn >> 8, r0, r1, s, out); break;
        case Q4_K: oneK4(Q4_K, 1, pk, w, rb, nIn >> 8, r0, r1, s, 0, out, 0, slot); break;
        case Q5_K: oneK4(Q5_K, 1, pk, w, rb, nIn >> 8, r0, r1, s, 0, out, 0, slot); break;
        default: oneQ6_K(pk, w, rb, nIn >> 8, r0, r1, s, out); break;
      }
      return true;
    }
    default: return false;
  }
  switch (type) {
    case Q4_0: oneTok32(Q4_0, pk, w, rb, nb, r0, r1, s, out, slot); break;
    case Q8_0: oneTok32(Q8_0, pk, w, rb, nb, r0, r1, s, out, slot); break;
    case IQ4_NL: oneTok32(IQ4_NL, pk, w, rb, nb, r0, r1, s, out, slot); break;
    case Q5_0: oneTok32(Q5_0, pk, w, rb, nb, r0, r1, s, out, slot); break;
    case Q4_1: oneTok32(Q4_1, pk, w, rb, nb, r0, r1, s, out, slot); break;
    case Q5_1: oneTok32(Q5_1, pk, w, rb, nb, r0, r1, s, out, slot); break;
  }
  return true;
}

/** bytes matmulOne needs in its slot for a row of nIn */
export function oneBytes(type: i32, nIn: i32): usize {
  if (type >= Q2_K && type <= Q6_K) return PREP + <usize>(nIn >> 8) * (KSB + 8);
  if (type == F16) return PREP + prepF16Bytes(nIn);
  return PREP + (<usize>(nIn >> 5) << 6) + (<usize>(nIn >> 5) << 4);
}
