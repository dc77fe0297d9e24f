// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// "llama.cpp-exact" kernels: the weight products and attention with ggml-cpu's float arithmetic,
// bit-identical to the TypeScript reference in src/kernels/js/ggml.ts, ggml-dot.ts and
// attention.ts (attentionGgml). Float32 SIMD lanes accumulate with fused multiply-adds, which
// wasm lacks: fma4 computes them in float64 (the product of two floats is exact there) and
// corrects the one case where rounding the sum to float64 first misleads the rounding to float32.

import { PACKED, blockStep, f16ToF32, f16x4ToF32x4, f32ToF16, rowAt } from "./common";
import { qhMaskHi, qhMaskLo } from "./matmul-q";

// ggml type ids (src/quant/format.ts)
const F32: i32 = 0;
const F16: i32 = 1;
const Q4_0: i32 = 2;
const Q4_1: i32 = 3;
const Q5_0: i32 = 6;
const Q5_1: i32 = 7;
const Q8_0: i32 = 8;
const Q2_K: i32 = 10;
const Q3_K: i32 = 11;
const Q4_K: i32 = 12;
const Q5_K: i32 = 13;
const Q6_K: i32 = 14;
const IQ4_NL: i32 = 20;

// ---- fused multiply-add in float32 ----

/** fmaf on two lanes of float values held as f64 (result float-valued, as f64) */
@inline function fma2(a: v128, b: v128, c: v128): v128 {
  const p = f64x2.mul(a, b);
  const s = f64x2.add(p, c);
  const r = f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(s));
  // s exactly halfway between two floats: the rounding error of p + c decides
  const mid = i64x2.eq(v128.and(s, i64x2.splat(0x1fffffff)), i64x2.splat(0x10000000));
  if (!v128.any_true(mid)) return r;
  return fmaFix(p, c, s, r, mid);
}

function fmaFix(p: v128, c: v128, s: v128, r: v128, mid: v128): v128 {
  const bb = f64x2.sub(s, p);
  const e = f64x2.add(f64x2.sub(p, f64x2.sub(s, bb)), f64x2.sub(c, bb));
  const fix = v128.and(mid, f64x2.ne(e, f64x2.splat(0)));
  // one double step towards the exact sum: +1 in the bits when e and s have the same sign
  const step = v128.or(i64x2.shr_s(v128.xor(e, s), 63), i64x2.splat(1));
  const s2 = i64x2.add(s, v128.and(step, fix));
  return v128.bitselect(f64x2.promote_low_f32x4(f32x4.demote_f64x2_zero(s2)), r, fix);
}

@inline function hi2(a: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(a, a, 2, 3, 2, 3));
}

/** fmaf(a, b, c) in each of four float lanes */
@inline function fma4(a: v128, b: v128, c: v128): v128 {
  const lo = fma2(f64x2.promote_low_f32x4(a), f64x2.promote_low_f32x4(b), f64x2.promote_low_f32x4(c));
  const hi = fma2(hi2(a), hi2(b), hi2(c));
  return i32x4.shuffle(f32x4.demote_f64x2_zero(lo), f32x4.demote_f64x2_zero(hi), 0, 1, 4, 5);
}

/** scalar fmaf */
function fmaf(a: f32, b: f32, c: f32): f32 {
  const p = <f64>a * <f64>b;
  const s = p + <f64>c;
  const bits = reinterpret<u64>(s);
  if ((bits & 0x1fffffff) != 0x10000000) return <f32>s;
  const bb = s - p;
  const e = (p - (s - bb)) + (<f64>c - bb);
  if (e == 0) return <f32>s;
  return <f32>reinterpret<f64>((e > 0) == (s > 0) ? bits + 1 : bits - 1);
}

// ---- lane reductions ----

/** _mm512_reduce_add_ps of 16 lanes given as four f32x4 (lanes 0-3, 4-7, 8-11, 12-15) */
@inline function reduce16(l0: v128, l1: v128, l2: v128, l3: v128): f32 {
  const u = f32x4.add(f32x4.add(l3, l1), f32x4.add(l2, l0));
  const w = f32x4.add(u, i32x4.shuffle(u, u, 2, 3, 2, 3));
  return f32x4.extract_lane(w, 0) + f32x4.extract_lane(w, 1);
}

/** hsum_float_8 of lanes 0-3 (a) and 4-7 (b) */
@inline function hsum8(a: v128, b: v128): f32 {
  const r = f32x4.add(b, a);
  const w = f32x4.add(r, i32x4.shuffle(r, r, 2, 3, 2, 3));
  return f32x4.extract_lane(w, 0) + f32x4.extract_lane(w, 1);
}

// ---- ggml_v_expf (AVX-512 variant), four lanes ----

@inline function vexpf4(x: v128): v128 {
  const R = f32x4.splat(12582912.0);
  const z = fma4(x, f32x4.splat(<f32>1.4426950216293335), R);
  const n = f32x4.sub(z, R);
  const nn = f32x4.neg(n);
  const b = fma4(nn, f32x4.splat(<f32>1.428606765330187e-6), fma4(nn, f32x4.splat(<f32>0.693145751953125), x));
  const u = f32x4.mul(b, b);
  const j = fma4(
    fma4(fma4(f32x4.splat(<f32>0.008247390389442444), b, f32x4.splat(<f32>0.04189976677298546)), u,
      fma4(f32x4.splat(<f32>0.16668395698070526), b, f32x4.splat(<f32>0.4999912679195404))),
    u, fma4(f32x4.splat(<f32>0.9999994039535522), b, f32x4.splat(1)));
  // j * 2^n with one rounding (n is an integer; 2^n may not be a float, so in f64)
  const ni = i32x4.trunc_sat_f32x4_s(n);
  const e0 = i64x2.shl(i64x2.add(i64x2.extend_low_i32x4_s(ni), i64x2.splat(1023)), 52);
  const e1 = i64x2.shl(i64x2.add(i64x2.extend_high_i32x4_s(ni), i64x2.splat(1023)), 52);
  const lo = f32x4.demote_f64x2_zero(f64x2.mul(f64x2.promote_low_f32x4(j), e0));
  const hi = f32x4.demote_f64x2_zero(f64x2.mul(hi2(j), e1));
  const res = i32x4.shuffle(lo, hi, 0, 1, 4, 5);
  const big = f32x4.gt(f32x4.abs(n), f32x4.splat(192));
  if (!v128.any_true(big)) return res;
  const alt = v128.bitselect(f32x4.splat(0), f32x4.splat(Infinity), f32x4.le(n, f32x4.splat(0)));
  return v128.bitselect(alt, res, big);
}

// ---- float dot products: tinyBLAS<16> (sgemm) and ggml_vec_dot_f32 / _f16 (AVX-512) ----

/** 4 float lanes of `f16 ? halves : floats` at p + 4*i elements */
@inline function load4(p: usize, i: i32, f16: bool): v128 {
  if (f16) return f16x4ToF32x4(i32x4.extend_low_i16x8_u(v128.load64_zero(p + (<usize>i << 1))));
  return v128.load(p + (<usize>i << 2));
}
@inline function load1(p: usize, i: i32, f16: bool): f32 {
  return f16 ? f16ToF32(load<u16>(p + (<usize>i << 1))) : load<f32>(p + (<usize>i << 2));
}

/** tinyBLAS<16, __m512>: 16 lanes over k (a multiple of 16), then reduce16 */
function dotGemm(a: usize, af16: bool, b: usize, bf16: bool, k: i32): f32 {
  let l0 = f32x4.splat(0), l1 = f32x4.splat(0), l2 = f32x4.splat(0), l3 = f32x4.splat(0);
  for (let s = 0; s < k; s += 16) {
    l0 = fma4(load4(a, s, af16), load4(b, s, bf16), l0);
    l1 = fma4(load4(a, s + 4, af16), load4(b, s + 4, bf16), l1);
    l2 = fma4(load4(a, s + 8, af16), load4(b, s + 8, bf16), l2);
    l3 = fma4(load4(a, s + 12, af16), load4(b, s + 12, bf16), l3);
  }
  return reduce16(l0, l1, l2, l3);
}

/** the 4 x 16 accumulators of ggml's AVX-512 vec_dot over the first np elements, reduced */
function vecSteps(x: usize, xf16: bool, y: usize, yf16: bool, np: i32, acc: usize): f32 {
  memory.fill(acc, 0, 256);
  for (let i = 0; i < np; i += 64) {
    for (let j = 0; j < 16; j++) {
      const o = acc + (<usize>j << 4);
      v128.store(o, fma4(load4(x, i + 4 * j, xf16), load4(y, i + 4 * j, yf16), v128.load(o)));
    }
  }
  // sum[0..1] += sum[2..3]; sum[0] += sum[1]; reduce
  for (let j = 0; j < 4; j++) {
    const o = acc + (<usize>j << 4);
    v128.store(o, f32x4.add(v128.load(o), v128.load(o, 128)));
    v128.store(o, f32x4.add(v128.load(o, 64), v128.load(o, 192)), 64);
  }
  for (let j = 0; j < 4; j++) {
    const o = acc + (<usize>j << 4);
    v128.store(o, f32x4.add(v128.load(o), v128.load(o, 64)));
  }
  return reduce16(v128.load(acc), v128.load(acc, 16), v128.load(acc, 32), v128.load(acc, 48));
}

/** ggml_vec_dot_f32 (leftovers in float) or ggml_vec_dot_f16 (leftovers in double) */
function dotVec(x: usize, xf16: bool, y: usize, yf16: bool, n: i32, leftF64: bool, acc: usize): f32 {
  const np = n & ~63;
  const s0: f32 = np > 0 ? vecSteps(x, xf16, y, yf16, np, acc) : 0;
  if (leftF64) {
    let s = <f64>s0;
    for (let i = np; i < n; i++) s += <f64>load1(x, i, xf16) * <f64>load1(y, i, yf16);
    return <f32>s;
  }
  let s = s0;
  for (let i = np; i < n; i++) s += load1(x, i, xf16) * load1(y, i, yf16);
  return s;
}

// ---- quantized blocks: integer weight factors (value times sub-block scale) as i16 ----

@inline function q32(wq: usize, e: i32, v: i32): void {
  store<i16>(wq + (<usize>e << 1), <i16>v);
}

/** 16 signed bytes of elements 0..15 (lo) and 16..31 (hi) into wq[0..32) as i16 */
@inline function store32(wq: usize, lo: v128, hi: v128): void {
  v128.store(wq, i16x8.extend_low_i8x16_s(lo));
  v128.store(wq, i16x8.extend_high_i8x16_s(lo), 16);
  v128.store(wq, i16x8.extend_low_i8x16_s(hi), 32);
  v128.store(wq, i16x8.extend_high_i8x16_s(hi), 48);
}

/** 32-element block at p into wq[0..32) (i16); returns the f16 scale d as f32 */
function decode32(type: i32, p: usize, wq: usize): f32 {
  const m15 = i8x16.splat(15), b16 = i8x16.splat(16);
  if (type == Q8_0) {
    store32(wq, v128.load(p, 2), v128.load(p, 18));
  } else if (type == Q4_0) {
    const q = v128.load(p, 2);
    store32(wq, i8x16.sub(v128.and(q, m15), i8x16.splat(8)), i8x16.sub(i8x16.shr_u(q, 4), i8x16.splat(8)));
  } else if (type == IQ4_NL) {
    const kv = i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    const q = v128.load(p, 2);
    store32(wq, i8x16.swizzle(kv, v128.and(q, m15)), i8x16.swizzle(kv, i8x16.shr_u(q, 4)));
  } else if (type == Q5_0) {
    const qh = i32x4.splat(load<u32>(p, 2)), q = v128.load(p, 6);
    store32(wq, i8x16.sub(v128.or(v128.and(q, m15), v128.and(qhMaskLo(qh), b16)), b16),
      i8x16.sub(v128.or(i8x16.shr_u(q, 4), v128.and(qhMaskHi(qh), b16)), b16));
  } else if (type == Q4_1) {
    const q = v128.load(p, 4);
    store32(wq, v128.and(q, m15), i8x16.shr_u(q, 4));
  } else { // Q5_1
    const qh = i32x4.splat(load<u32>(p, 4)), q = v128.load(p, 8);
    store32(wq, v128.or(v128.and(q, m15), v128.and(qhMaskLo(qh), b16)), v128.or(i8x16.shr_u(q, 4), v128.and(qhMaskHi(qh), b16)));
  }
  return f16ToF32(load<u16>(p));
}

/** the 8 ggml lanes (sums of elements 4i..4i+3) of 32 i16 weights at wq and 32 i8 activations at a: lanes 0-3, 4-7 */
@inline function lanes32(wq: usize, a: usize): v128 {
  const a0 = v128.load(a);
  const d0 = i32x4.dot_i16x8_s(v128.load(wq), i16x8.extend_low_i8x16_s(a0));
  const d1 = i32x4.dot_i16x8_s(v128.load(wq, 16), i16x8.extend_high_i8x16_s(a0));
  return i32x4.add(i32x4.shuffle(d0, d1, 0, 2, 4, 6), i32x4.shuffle(d0, d1, 1, 3, 5, 7));
}
@inline function lanes32hi(wq: usize, a: usize): v128 {
  const a1 = v128.load(a, 16);
  const d2 = i32x4.dot_i16x8_s(v128.load(wq, 32), i16x8.extend_low_i8x16_s(a1));
  const d3 = i32x4.dot_i16x8_s(v128.load(wq, 48), i16x8.extend_high_i8x16_s(a1));
  return i32x4.add(i32x4.shuffle(d2, d3, 0, 2, 4, 6), i32x4.shuffle(d2, d3, 1, 3, 5, 7));
}

/** Q2_K..Q6_K super-block at p into wq[0..256); writes the mins (Q2_K: 16, Q4_K/Q5_K: 8) as i16 at mins */
function decodeK(type: i32, p: usize, wq: usize, mins: usize): void {
  if (type == Q2_K) {
    for (let g = 0; g < 16; g++) store<i16>(mins + (<usize>g << 1), <i16>(load<u8>(p + g) >> 4));
    for (let j = 0; j < 2; j++) for (let s = 0; s < 4; s++) for (let l = 0; l < 32; l++) {
      const e = 128 * j + 32 * s + l;
      q32(wq, e, ((<i32>load<u8>(p + 16 + 32 * j + l) >> (2 * s)) & 3) * (<i32>load<u8>(p + (e >> 4)) & 15));
    }
  } else if (type == Q3_K) {
    // 16 signed 6-bit scales (minus 32) from the 12 bytes at 96
    for (let j = 0; j < 2; j++) for (let s = 0; s < 4; s++) {
      const m = 1 << (4 * j + s);
      for (let l = 0; l < 32; l++) {
        const e = 128 * j + 32 * s + l;
        const g = e >> 4;
        const low = g < 8 ? <i32>load<u8>(p + 96 + g) & 15 : <i32>load<u8>(p + 96 + g - 8) >> 4;
        const high = (<i32>load<u8>(p + 104 + (g & 3)) >> (2 * (g >> 2))) & 3;
        const sc = (low | (high << 4)) - 32;
        const q = ((<i32>load<u8>(p + 32 + 32 * j + l) >> (2 * s)) & 3) - ((<i32>load<u8>(p + l) & m) != 0 ? 0 : 4);
        q32(wq, e, q * sc);
      }
    }
  } else if (type == Q4_K || type == Q5_K) {
    const sp = p + 4;
    const qs = p + (type == Q4_K ? 16 : 48);
    for (let j = 0; j < 4; j++) {
      let sc0: i32, m0: i32, sc1: i32, m1: i32;
      const s0 = 2 * j, s1 = 2 * j + 1;
      if (s0 < 4) { sc0 = <i32>load<u8>(sp + s0) & 63; m0 = <i32>load<u8>(sp + s0 + 4) & 63; }
      else { sc0 = (<i32>load<u8>(sp + s0 + 4) & 15) | ((<i32>load<u8>(sp + s0 - 4) >> 6) << 4); m0 = (<i32>load<u8>(sp + s0 + 4) >> 4) | ((<i32>load<u8>(sp + s0) >> 6) << 4); }
      if (s1 < 4) { sc1 = <i32>load<u8>(sp + s1) & 63; m1 = <i32>load<u8>(sp + s1 + 4) & 63; }
      else { sc1 = (<i32>load<u8>(sp + s1 + 4) & 15) | ((<i32>load<u8>(sp + s1 - 4) >> 6) << 4); m1 = (<i32>load<u8>(sp + s1 + 4) >> 4) | ((<i32>load<u8>(sp + s1) >> 6) << 4); }
      store<i16>(mins + (<usize>s0 << 1), <i16>m0);
      store<i16>(mins + (<usize>s1 << 1), <i16>m1);
      for (let l = 0; l < 32; l++) {
        const v = <i32>load<u8>(qs + 32 * j + l);
        let lo = v & 15, hi = v >> 4;
        if (type == Q5_K) {
          const h = <i32>load<u8>(p + 16 + l);
          lo |= ((h >> (2 * j)) & 1) << 4;
          hi |= ((h >> (2 * j + 1)) & 1) << 4;
        }
        q32(wq, 64 * j + l, lo * sc0);
        q32(wq, 64 * j + 32 + l, hi * sc1);
      }
    }
  } else { // Q6_K
    for (let j = 0; j < 2; j++) {
      const ql = p + 64 * j, qh = p + 128 + 32 * j, e0 = 128 * j;
      for (let l = 0; l < 32; l++) {
        const lo = <i32>load<u8>(ql + l), hi = <i32>load<u8>(ql + l + 32), h = <i32>load<u8>(qh + l);
        const sc = p + 192;
        q32(wq, e0 + l, (((lo & 15) | ((h & 3) << 4)) - 32) * <i32>load<i8>(sc + ((e0 + l) >> 4)));
        q32(wq, e0 + l + 32, (((hi & 15) | (((h >> 2) & 3) << 4)) - 32) * <i32>load<i8>(sc + ((e0 + l + 32) >> 4)));
        q32(wq, e0 + l + 64, (((lo >> 4) | (((h >> 4) & 3) << 4)) - 32) * <i32>load<i8>(sc + ((e0 + l + 64) >> 4)));
        q32(wq, e0 + l + 96, (((hi >> 4) | (((h >> 6) & 3) << 4)) - 32) * <i32>load<i8>(sc + ((e0 + l + 96) >> 4)));
      }
    }
  }
}

@inline function blockBytes(type: i32): usize {
  switch (type) {
    case Q4_0: case IQ4_NL: return 18;
    case Q4_1: return 20;
    case Q5_0: return 22;
    case Q5_1: return 24;
    case Q8_0: return 34;
    case Q2_K: return 84;
    case Q3_K: return 110;
    case Q4_K: return 144;
    case Q5_K: return 176;
    case Q6_K: return 210;
    default: return 0;
  }
}

/** whether matmulGgml has this weight type */
export function matmulGgmlSupported(type: i32): i32 {
  return type == F32 || type == F16 || blockBytes(type) != 0 ? 1 : 0;
}

/** bytes of scratch one matmulGgml call needs for nTok activation rows */
export function matmulGgmlScratchBytes(nTok: i32): i32 {
  return 1024 + 256 + nTok * <i32>REC;
}

// per-token accumulator record: the 8 float lanes as f64 at 0; at 64 the second 8 lanes (IQ4_NL
// vec_dot) or the 4 min lanes (Q4_K), f64; at 128 a float sum (Q4_1/Q5_1/Q5_K) or the IQ4_NL odd block
const REC: usize = 144;

/** lanes at r (4 f64 lanes, float values) = fmaf(d, float(s), lanes) for the 4 i32 lanes of s (|s| < 2^24) */
@inline function fmaLanes(r: usize, d: v128, s: v128): void {
  v128.store(r, fma2(d, f64x2.convert_low_i32x4_s(s), v128.load(r)));
  v128.store(r, fma2(d, f64x2.convert_low_i32x4_s(i32x4.shuffle(s, s, 2, 3, 2, 3)), v128.load(r, 16)), 16);
}
/** the same with the i32 lanes first rounded to float (sums that may exceed 2^24) */
@inline function fmaLanesF(r: usize, d: v128, s: v128): void {
  const f = f32x4.convert_i32x4_s(s);
  v128.store(r, fma2(d, f64x2.promote_low_f32x4(f), v128.load(r)));
  v128.store(r, fma2(d, hi2(f), v128.load(r, 16)), 16);
}
/** 4 f64 lanes (float values) at r as f32x4 */
@inline function lanesF32(r: usize): v128 {
  return i32x4.shuffle(f32x4.demote_f64x2_zero(v128.load(r)), f32x4.demote_f64x2_zero(v128.load(r, 16)), 0, 1, 4, 5);
}

/**
 * out[t*outStride + r] = W row r . activation row t for r0 <= r < r1, t < nTok, with ggml-cpu's
 * arithmetic (src/kernels/js/matmul.ts matmulGgml). gemm: llamafile sgemm's kernel where the
 * caller decided llama.cpp would take it. scratch: matmulGgmlScratchBytes(nTok) bytes, 16-aligned.
 * Returns 0, or -1 for a type without a kernel here (nothing written).
 */
export function matmulGgml(
  type: i32, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32,
  act: usize, actRowBytes: i32, nTok: i32, out: usize, outStride: i32, gemm: i32, scratch: usize,
): i32 {
  const pk = (type & PACKED) != 0;
  type &= ~PACKED;
  if (matmulGgmlSupported(type) == 0) return -1;
  const rb = <usize>rowBytes, arb = <usize>actRowBytes;
  const wq = scratch;              // i16[256]
  const mins = scratch + 512;      // i16[16]
  const vacc = scratch + 1024;     // 256 bytes for vecSteps
  const acc = scratch + 1280;      // per-token records
  if (type == F32 || type == F16) {
    if (pk) return -1;
    const f16 = type == F16;
    for (let r = r0; r < r1; r++) {
      const wp = w + <usize>r * rb;
      for (let t = 0; t < nTok; t++) {
        const ap = act + <usize>t * arb;
        const v = gemm != 0 ? dotGemm(wp, f16, ap, f16, nIn) : dotVec(wp, f16, ap, f16, nIn, f16, vacc);
        store<f32>(out + ((<usize>t * <usize>outStride + <usize>r) << 2), v);
      }
    }
    return 0;
  }
  const bs = blockBytes(type);
  const isK = type == Q2_K || type == Q3_K || type == Q4_K || type == Q5_K || type == Q6_K;
  const nb = isK ? nIn >> 8 : nIn >> 5;
  const ab: usize = isK ? 292 : type == Q4_1 || type == Q5_1 ? 36 : 34;
  const pairs = type == IQ4_NL && gemm == 0;
  const q8_1 = type == Q4_1 || type == Q5_1;
  const st = blockStep(bs, pk);
  for (let r = r0; r < r1; r++) {
    const wp = rowAt(w, r, rb, bs, pk);
    memory.fill(acc, 0, <usize>nTok * REC);
    for (let b = 0; b < nb; b++) {
      const p = wp + <usize>b * st;
      if (isK) {
        decodeK(type, p, wq, mins);
        const d16 = type == Q6_K ? f16ToF32(load<u16>(p + 208)) : type == Q3_K ? f16ToF32(load<u16>(p + 108))
          : type == Q2_K ? f16ToF32(load<u16>(p + 80)) : f16ToF32(load<u16>(p));
        const m16 = type == Q2_K ? f16ToF32(load<u16>(p + 82)) : type == Q4_K || type == Q5_K ? f16ToF32(load<u16>(p + 2)) : 0;
        for (let t = 0; t < nTok; t++) {
          const a = act + <usize>t * arb + <usize>b * ab;
          const rec = acc + <usize>t * REC;
          const yd = load<f32>(a);
          const dmin: f32 = -yd * m16;
          if (type == Q2_K) {
            const dm = f64x2.splat(<f64>dmin);
            fmaLanes(rec, dm, i32x4.dot_i16x8_s(v128.load(mins), v128.load(a, 260)));
            fmaLanes(rec + 32, dm, i32x4.dot_i16x8_s(v128.load(mins, 16), v128.load(a, 276)));
          }
          let s0 = i32x4.splat(0), s1 = i32x4.splat(0);
          for (let g = 0; g < 8; g++) {
            const wg = wq + (<usize>g << 6), ag = a + 4 + (<usize>g << 5);
            s0 = i32x4.add(s0, lanes32(wg, ag));
            s1 = i32x4.add(s1, lanes32hi(wg, ag));
          }
          const d = f64x2.splat(<f64>(yd * d16));
          fmaLanesF(rec, d, s0);
          fmaLanesF(rec + 32, d, s1);
          if (type == Q4_K) {
            // min lanes: k = mins[2k]*(bsums[4k]+bsums[4k+1]) + mins[2k+1]*(bsums[4k+2]+bsums[4k+3])
            const q0 = i32x4.extadd_pairwise_i16x8_s(v128.load(a, 260));
            const q1 = i32x4.extadd_pairwise_i16x8_s(v128.load(a, 276));
            const m0 = i32x4.extend_low_i16x8_s(v128.load(mins));
            const m1 = i32x4.extend_high_i16x8_s(v128.load(mins));
            const pr0 = i32x4.mul(q0, m0), pr1 = i32x4.mul(q1, m1);
            fmaLanes(rec + 64, f64x2.splat(<f64>dmin), i32x4.add(i32x4.shuffle(pr0, pr1, 0, 2, 4, 6), i32x4.shuffle(pr0, pr1, 1, 3, 5, 7)));
          } else if (type == Q5_K) {
            let ms = 0;
            for (let k = 0; k < 8; k++) ms += <i32>load<i16>(mins + (<usize>k << 1)) * (<i32>load<i16>(a + 260 + 4 * k) + <i32>load<i16>(a + 262 + 4 * k));
            store<f32>(rec, load<f32>(rec, 128) + dmin * <f32>ms, 128);
          }
        }
      } else {
        const dw = decode32(type, p, wq);
        const mw: f32 = q8_1 ? f16ToF32(load<u16>(p + 2)) : 0;
        const tail = pairs && (nb & 1) != 0 && b == nb - 1;
        const second = pairs && (b & 1) != 0;
        for (let t = 0; t < nTok; t++) {
          const a = act + <usize>t * arb + <usize>b * ab;
          const rec = acc + <usize>t * REC;
          const aq = a + (q8_1 ? 4 : 2);
          const s0 = lanes32(wq, aq), s1 = lanes32hi(wq, aq);
          const d = dw * f16ToF32(load<u16>(a));
          if (tail) {
            const s = i32x4.add(s0, s1);
            store<f32>(rec, d * <f32>(i32x4.extract_lane(s, 0) + i32x4.extract_lane(s, 1) + i32x4.extract_lane(s, 2) + i32x4.extract_lane(s, 3)), 128);
            continue;
          }
          if (q8_1) store<f32>(rec, load<f32>(rec, 128) + mw * f16ToF32(load<u16>(a, 2)), 128);
          const o = second ? rec + 64 : rec;
          const dv = f64x2.splat(<f64>d);
          fmaLanes(o, dv, s0);
          fmaLanes(o + 32, dv, s1);
        }
      }
    }
    for (let t = 0; t < nTok; t++) {
      const rec = acc + <usize>t * REC;
      let v: f32;
      if (pairs) {
        v = hsum8(f32x4.add(lanesF32(rec), lanesF32(rec + 64)), f32x4.add(lanesF32(rec + 32), lanesF32(rec + 96)));
        if ((nb & 1) != 0) v = v + load<f32>(rec, 128);
      } else {
        v = hsum8(lanesF32(rec), lanesF32(rec + 32));
        if (type == Q4_K) {
          const m = lanesF32(rec + 64);
          const mm = f32x4.add(m, i32x4.shuffle(m, m, 2, 3, 2, 3));
          v = v + (f32x4.extract_lane(mm, 0) + f32x4.extract_lane(mm, 1));
        } else if (q8_1 || type == Q5_K) {
          v = v + load<f32>(rec, 128);
        }
      }
      store<f32>(out + ((<usize>t * <usize>outStride + <usize>r) << 2), v);
    }
  }
  return 0;
}

// ---- attention ----

/** reduce16 of 16 lane vectors at o, o + st, ..., o + 15 st, for four outputs at once */
@inline function reduceLanes(o: usize, st: usize): v128 {
  const ta0 = f32x4.add(v128.load(o + 8 * st), v128.load(o));
  const ta1 = f32x4.add(v128.load(o + 9 * st), v128.load(o + st));
  const ta2 = f32x4.add(v128.load(o + 10 * st), v128.load(o + 2 * st));
  const ta3 = f32x4.add(v128.load(o + 11 * st), v128.load(o + 3 * st));
  const tb0 = f32x4.add(v128.load(o + 12 * st), v128.load(o + 4 * st));
  const tb1 = f32x4.add(v128.load(o + 13 * st), v128.load(o + 5 * st));
  const tb2 = f32x4.add(v128.load(o + 14 * st), v128.load(o + 6 * st));
  const tb3 = f32x4.add(v128.load(o + 15 * st), v128.load(o + 7 * st));
  const u0 = f32x4.add(tb0, ta0), u1 = f32x4.add(tb1, ta1), u2 = f32x4.add(tb2, ta2), u3 = f32x4.add(tb3, ta3);
  return f32x4.add(f32x4.add(u0, u2), f32x4.add(u1, u3));
}

/** bytes of attentionGgml scratch for one thread */
export function attentionGgmlScratchBytes(headDim: i32, maxPos: i32): i32 {
  return headDim * 4 + (maxPos + 64) * 4 + 64 * headDim * 4 + 256 + 64;
}

/**
 * Attention as src/kernels/js/attention.ts attentionGgml: tokens t < nTok, heads h0 <= h < h1.
 * q/out [nTok][nHead*headDim] f32, pos int32[nTok], k/v caches with rows of nHeadKv*headDim (f32,
 * or f16 with kvF16 = 1). gemm: the batch has two or more tokens. scratch:
 * attentionGgmlScratchBytes(headDim, max pos) bytes, 16-aligned.
 */
export function attentionGgml(
  q: usize, nTok: i32, pos: usize, k: usize, v: usize, kvF16: i32,
  nHead: i32, nHeadKv: i32, headDim: i32, out: usize, scratch: usize, h0: i32, h1: i32, gemm: i32,
): void {
  const hd = headDim;
  const group = nHead / nHeadKv;
  const kvRow = <usize>(nHeadKv * hd);
  const f16 = kvF16 != 0;
  const es: usize = f16 ? 2 : 4;
  const scale = <f32>1.0 / <f32>Math.sqrt(<f64>hd);
  let maxPos = 0;
  for (let t = 0; t < nTok; t++) maxPos = max(maxPos, load<i32>(pos + (<usize>t << 2)));
  const qh = scratch;
  const wv = qh + (<usize>hd << 2);
  const acc = (wv + ((<usize>maxPos + 64) << 2) + 15) & ~<usize>15;
  const vacc = acc + (<usize>(64 * hd) << 2);
  for (let t = 0; t < nTok; t++) {
    const n = load<i32>(pos + (<usize>t << 2)) + 1;
    const nKv = gemm != 0 ? (n + 15) & ~15 : (n + 31) & ~31;
    for (let h = h0; h < h1; h++) {
      const qo = (<usize>t * <usize>nHead + <usize>h) * <usize>hd;
      const ko = <usize>(h / group) * <usize>hd;
      for (let d = 0; d < hd; d++) {
        const x = load<f32>(q + ((qo + <usize>d) << 2));
        store<f32>(qh + (<usize>d << 2), f16 ? f16ToF32(f32ToF16(x)) : x);
      }
      // scores
      let max: f32 = -Infinity;
      for (let j = 0; j < nKv; j++) {
        let sc: f32 = -Infinity;
        if (j < n) {
          const kp = k + (<usize>j * kvRow + ko) * es;
          const kq = !f16 ? dotVec(kp, false, qh, false, hd, false, vacc)
            : gemm != 0 && (hd & 15) == 0 ? dotGemm(kp, true, qh, false, hd) : dotVec(kp, true, qh, false, hd, true, vacc);
          sc = kq * scale;
        }
        store<f32>(wv + (<usize>j << 2), sc);
        if (sc > max) max = sc;
      }
      // softmax (nKv is a multiple of 16)
      let sum: f64 = 0;
      const mx = f32x4.splat(max);
      for (let j = 0; j < nKv; j += 16) {
        const o = wv + (<usize>j << 2);
        const e0 = vexpf4(f32x4.sub(v128.load(o), mx));
        const e1 = vexpf4(f32x4.sub(v128.load(o, 16), mx));
        const e2 = vexpf4(f32x4.sub(v128.load(o, 32), mx));
        const e3 = vexpf4(f32x4.sub(v128.load(o, 48), mx));
        v128.store(o, e0); v128.store(o, e1, 16); v128.store(o, e2, 32); v128.store(o, e3, 48);
        sum += <f64>reduce16(e0, e1, e2, e3);
      }
      const inv = f32x4.splat(<f32>(1.0 / sum));
      for (let j = 0; j < nKv; j += 4) {
        const o = wv + (<usize>j << 2);
        let pv = f32x4.mul(v128.load(o), inv);
        if (f16) {
          store<f32>(o, f16ToF32(f32ToF16(f32x4.extract_lane(pv, 0))));
          store<f32>(o, f16ToF32(f32ToF16(f32x4.extract_lane(pv, 1))), 4);
          store<f32>(o, f16ToF32(f32ToF16(f32x4.extract_lane(pv, 2))), 8);
          store<f32>(o, f16ToF32(f32ToF16(f32x4.extract_lane(pv, 3))), 12);
        } else {
          v128.store(o, pv);
        }
      }
      // V.p
      const op = out + (qo << 2);
      const vbase = v + ko * es;
      if (gemm != 0 && (hd & 3) == 0) {
        memory.fill(acc, 0, <usize>(16 * hd) << 2);
        for (let j = 0; j < nKv; j++) {
          const pj = f32x4.splat(load<f32>(wv + (<usize>j << 2)));
          const la = acc + (<usize>((j & 15) * hd) << 2);
          const vp = vbase + <usize>j * kvRow * es;
          const live = j <= maxPos;
          for (let d = 0; d < hd; d += 4) {
            const vv = live ? load4(vp, d, f16) : f32x4.splat(0);
            const o = la + (<usize>d << 2);
            v128.store(o, fma4(vv, pj, v128.load(o)));
          }
        }
        for (let d = 0; d < hd; d += 4) {
          const o = acc + (<usize>d << 2), st = <usize>hd << 2;
          v128.store(op + (<usize>d << 2), reduceLanes(o, st));
        }
      } else {
        // ggml_vec_dot over nKv cells: 64 lanes for the first np, then one by one
        const np = nKv & ~63;
        memory.fill(acc, 0, <usize>(64 * hd) << 2);
        for (let j = 0; j < np; j++) {
          const pj = f32x4.splat(load<f32>(wv + (<usize>j << 2)));
          const la = acc + (<usize>((j & 63) * hd) << 2);
          const vp = vbase + <usize>j * kvRow * es;
          const live = j <= maxPos;
          for (let d = 0; d < hd; d += 4) {
            const vv = live ? load4(vp, d, f16) : f32x4.splat(0);
            const o = la + (<usize>d << 2);
            v128.store(o, fma4(vv, pj, v128.load(o)));
          }
        }
        for (let d = 0; d < hd; d += 4) {
          const o = acc + (<usize>d << 2), st = <usize>hd << 2;
          let r = f32x4.splat(0);
          if (np > 0) {
            // lanes q += q + 32, q + 16 += q + 48 (q < 16); q += q + 16; then the reduce16 tree
            for (let i = 0; i < 16; i++) {
              const a0 = o + <usize>i * st, a1 = o + <usize>(i + 16) * st;
              v128.store(a0, f32x4.add(v128.load(a0), v128.load(o + <usize>(i + 32) * st)));
              v128.store(a1, f32x4.add(v128.load(a1), v128.load(o + <usize>(i + 48) * st)));
            }
            for (let i = 0; i < 16; i++) {
              const a0 = o + <usize>i * st;
              v128.store(a0, f32x4.add(v128.load(a0), v128.load(o + <usize>(i + 16) * st)));
            }
            r = reduceLanes(o, st);
          }
          if (f16) {
            let s0 = f64x2.promote_low_f32x4(r), s1 = hi2(r);
            for (let j = np; j < nKv; j++) {
              const pj = f32x4.splat(load<f32>(wv + (<usize>j << 2)));
              const vv = j <= maxPos ? load4(vbase + <usize>j * kvRow * es, d, true) : f32x4.splat(0);
              const pr = f32x4.mul(vv, pj);
              s0 = f64x2.add(s0, f64x2.promote_low_f32x4(pr));
              s1 = f64x2.add(s1, hi2(pr));
            }
            r = i32x4.shuffle(f32x4.demote_f64x2_zero(s0), f32x4.demote_f64x2_zero(s1), 0, 1, 4, 5);
          } else {
            for (let j = np; j < nKv; j++) {
              const pj = f32x4.splat(load<f32>(wv + (<usize>j << 2)));
              const vv = j <= maxPos ? load4(vbase + <usize>j * kvRow * es, d, false) : f32x4.splat(0);
              r = f32x4.add(r, f32x4.mul(vv, pj));
            }
          }
          v128.store(op + (<usize>d << 2), r);
        }
      }
    }
  }
}

// ---- SiLU ----

/**
 * ggml_vec_silu_f32's vectorized part in place: for each of nRows rows of n floats, the first
 * n & ~15 values become x / (1 + ggml_v_expf(-x)) (the caller does the scalar rest with glibc's expf).
 */
export function siluGgml(x: usize, nRows: i32, n: i32): void {
  const nv = n & ~15;
  const one = f32x4.splat(1);
  for (let r = 0; r < nRows; r++) {
    const row = x + ((<usize>r * <usize>n) << 2);
    for (let i = 0; i < nv; i += 4) {
      const o = row + (<usize>i << 2);
      const v = v128.load(o);
      v128.store(o, f32x4.div(v, f32x4.add(one, vexpf4(f32x4.neg(v)))));
    }
  }
}
