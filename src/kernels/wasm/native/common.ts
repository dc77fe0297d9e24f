// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Shared helpers for the kernels: half-float conversions (scalar and 4 lanes at a time), the
// 4-way horizontal sum and the f64 per-block accumulation used by every quantized matmul.

/** 2^112: multiplying the f32 whose bits are (half & 0x7fff) << 13 by it rebiases the exponent. */
const F16_REBIAS: f32 = 5.192296858534828e33;

/** IEEE half bits (low 16 bits of h) to f32, exact (subnormals, inf and NaN included). */
@inline export function f16ToF32(h: u32): f32 {
  const em = h & 0x7fff;
  let bits = reinterpret<u32>(reinterpret<f32>(em << 13) * F16_REBIAS);
  if (em >= 0x7c00) bits |= 0x7f800000;
  return reinterpret<f32>(bits | ((h & 0x8000) << 16));
}

/** Four halves (in the low 16 bits of each i32 lane) to four f32 lanes, exact. */
@inline export function f16x4ToF32x4(h: v128): v128 {
  const em = v128.and(h, i32x4.splat(0x7fff));
  let f = f32x4.mul(i32x4.shl(em, 13), f32x4.splat(F16_REBIAS));
  f = v128.or(f, v128.and(i32x4.ge_s(em, i32x4.splat(0x7c00)), i32x4.splat(0x7f800000)));
  return v128.or(f, i32x4.shl(v128.and(h, i32x4.splat(0x8000)), 16));
}

/** The f16 scales at byte `off` of four rows, as f32x4 (row k in lane k). */
@inline export function loadF16x4(p0: usize, p1: usize, p2: usize, p3: usize, off: usize): v128 {
  let v = i32x4.splat(0);
  v = i32x4.replace_lane(v, 0, <i32>load<u16>(p0 + off));
  v = i32x4.replace_lane(v, 1, <i32>load<u16>(p1 + off));
  v = i32x4.replace_lane(v, 2, <i32>load<u16>(p2 + off));
  v = i32x4.replace_lane(v, 3, <i32>load<u16>(p3 + off));
  return f16x4ToF32x4(v);
}

/** float32 -> half bits, round to nearest even; NaN -> quiet NaN keeping the sign (as f16.ts). */
export function f32ToF16(x: f32): u32 {
  const f = reinterpret<u32>(x);
  const sign = (f >>> 16) & 0x8000;
  const exp = <i32>((f >>> 23) & 0xff);
  let mant = f & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (mant != 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = <u32>(14 - e);
    let h = mant >>> shift;
    const rem = mant & ((<u32>1 << shift) - 1);
    const half = <u32>1 << (shift - 1);
    if (rem > half || (rem == half && (h & 1) != 0)) h++;
    return sign | h;
  }
  let h = (<u32>e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1) != 0)) h++;
  return sign | h;
}

/** float32 -> bfloat16 bits, round to nearest even; NaN stays a quiet NaN (as f16.ts). */
export function f32ToBf16(x: f32): u32 {
  const u = reinterpret<u32>(x);
  if ((u & 0x7fffffff) > 0x7f800000) return ((u >>> 16) | 64) & 0xffff;
  return ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16) & 0xffff;
}

// ---- packed weights ----
// A matrix of a 32-element block type or a K-quant may be stored "packed" (src/kernels/wasm-backend.ts
// packs at load time; the caller says so with PACKED in the type argument): its rows interleaved
// four at a time, block by block, so that the four rows a kernel walks together are one stream in
// memory. Block b of row r is then at w + (r & ~3)·rowBytes + (4b + (r & 3))·blockBytes (a group of
// four rows takes the same 4·rowBytes bytes as before). Only matrices with a multiple of four rows
// are packed. Measured one thread, one token, 14336x4096 from memory: Q4_0 4.9 -> 2.3 ms, Q8_0
// 6.9 -> 3.4, Q6_K 6.5 -> 3.4, Q5_K 5.3 -> 3.3, Q4_K 2.4 -> 2.3.

/** the flag in a matmul type argument that says the weight rows are packed */
export const PACKED: i32 = 0x100;

/** where row r of a (packed or plain) matrix at w starts */
@inline export function rowAt(w: usize, r: i32, rb: usize, tb: usize, pk: bool): usize {
  return pk ? w + <usize>(r & ~3) * rb + <usize>(r & 3) * tb : w + <usize>r * rb;
}

/** bytes from one block of a row to its next */
@inline export function blockStep(tb: usize, pk: bool): usize {
  return pk ? tb << 2 : tb;
}

/** [Σa, Σb, Σc, Σd] of four i32x4 vectors. */
@inline export function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = i32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = i32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return i32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** Σ of the four i32 lanes. */
@inline export function hsum(a: v128): i32 {
  const b = i32x4.add(a, i32x4.shuffle(a, a, 2, 3, 0, 1));
  return i32x4.extract_lane(b, 0) + i32x4.extract_lane(b, 1);
}

/** f64x2 lanes 0,1 of an f32x4 */
@inline export function lo64(f: v128): v128 {
  return f64x2.promote_low_f32x4(f);
}
/** f64x2 lanes 2,3 of an f32x4 */
@inline export function hi64(f: v128): v128 {
  return f64x2.promote_low_f32x4(i32x4.shuffle(f, f, 2, 3, 2, 3));
}
/** f64x2 of i32 lanes 0,1 / 2,3 */
@inline export function ilo64(i: v128): v128 {
  return f64x2.convert_low_i32x4_s(i);
}
@inline export function ihi64(i: v128): v128 {
  return f64x2.convert_low_i32x4_s(i32x4.shuffle(i, i, 2, 3, 2, 3));
}

// ---- relaxed SIMD (the kernels-relaxed.wasm build: asc --enable relaxed-simd) ----

/** whether this build may use relaxed SIMD (a compile-time constant: the other branch is not compiled) */
export const RELAXED: bool = ASC_FEATURE_RELAXED_SIMD;

/**
 * i16x8.relaxed_dot_i8x16_i7x16_s: lane i = a[2i]·b[2i] + a[2i+1]·b[2i+1], a signed bytes, b bytes
 * below 128 (then every engine gives the same, exact result: |lane| <= 2·128·127 fits i16).
 * Only called under `if (RELAXED)`. (Not the i32x4 ..._add_s form: Node 20's V8 computes that one
 * wrongly in its baseline compiler, Liftoff: twice the dot product and no accumulator.)
 */
@inline export function rdot(a: v128, b: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return i16x8.relaxed_dot_i8x16_i7x16_s(a, b);
  return unreachable();
}

/** Σ over 16 bytes a (i8) times b (0..127) as i32x4 partial sums */
@inline export function rdot16(a: v128, b: v128): v128 {
  return i32x4.extadd_pairwise_i16x8_s(rdot(a, b));
}

/** Σ over 32 bytes a0, a1 (i8) times b0, b1 (0..63, so that the i16 sum cannot overflow) as i32x4 partial sums */
@inline export function rdot32(a0: v128, b0: v128, a1: v128, b1: v128): v128 {
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(rdot(a0, b0), rdot(a1, b1)));
}

/** c + a·b in float32 where a·b is exact (a product of two halves): fused (relaxed build) or not, the same */
@inline export function maddF(a: v128, b: v128, c: v128): v128 {
  if (RELAXED) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/** store the nv (1..4) f32 lanes of res at o: the results of a four-row pass with a tail of rows */
@inline export function store4(o: usize, res: v128, nv: i32): void {
  if (nv == 4) {
    v128.store(o, res);
  } else {
    store<f32>(o, f32x4.extract_lane(res, 0));
    if (nv > 1) store<f32>(o, f32x4.extract_lane(res, 1), 4);
    if (nv > 2) store<f32>(o, f32x4.extract_lane(res, 2), 8);
  }
}
