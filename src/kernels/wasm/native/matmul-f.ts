// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Dot products of four float weight rows (F32, F16, BF16) with an activation row of the same type.
// F32 and BF16: products are exact in float64, sums are float64 like the reference, only in a
// different order (two lanes, then the tail), so results agree to ~1e-15 relative. F16: float32, as
// the reference, bit for bit (below).

import { RELAXED, f16ToF32, f16x4ToF32x4, hi64, lo64, maddF, store4 } from "./common";

/** [Σx, Σy] of two f64x2 */
@inline function pairSum(x: v128, y: v128): v128 {
  return f64x2.add(i64x2.shuffle(x, y, 0, 2), i64x2.shuffle(x, y, 1, 3));
}

@inline function result(s01: v128, s23: v128): v128 {
  return i32x4.shuffle(f32x4.demote_f64x2_zero(s01), f32x4.demote_f64x2_zero(s23), 0, 1, 4, 5);
}

// ---- F32 ----

export function dot4F32(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, n: i32): v128 {
  let r0 = f64x2.splat(0), r1 = f64x2.splat(0), r2 = f64x2.splat(0), r3 = f64x2.splat(0);
  let u0 = f64x2.splat(0), u1 = f64x2.splat(0), u2 = f64x2.splat(0), u3 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const av = v128.load(a + o);
    const al = lo64(av);
    const ah = hi64(av);
    let w = v128.load(p0 + o);
    r0 = f64x2.add(r0, f64x2.mul(lo64(w), al));
    u0 = f64x2.add(u0, f64x2.mul(hi64(w), ah));
    w = v128.load(p1 + o);
    r1 = f64x2.add(r1, f64x2.mul(lo64(w), al));
    u1 = f64x2.add(u1, f64x2.mul(hi64(w), ah));
    w = v128.load(p2 + o);
    r2 = f64x2.add(r2, f64x2.mul(lo64(w), al));
    u2 = f64x2.add(u2, f64x2.mul(hi64(w), ah));
    w = v128.load(p3 + o);
    r3 = f64x2.add(r3, f64x2.mul(lo64(w), al));
    u3 = f64x2.add(u3, f64x2.mul(hi64(w), ah));
  }
  let s01 = pairSum(f64x2.add(r0, u0), f64x2.add(r1, u1));
  let s23 = pairSum(f64x2.add(r2, u2), f64x2.add(r3, u3));
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const av = f64x2.splat(<f64>load<f32>(a + o));
    s01 = f64x2.add(s01, f64x2.mul(f64x2.replace_lane(f64x2.splat(<f64>load<f32>(p0 + o)), 1, <f64>load<f32>(p1 + o)), av));
    s23 = f64x2.add(s23, f64x2.mul(f64x2.replace_lane(f64x2.splat(<f64>load<f32>(p2 + o)), 1, <f64>load<f32>(p3 + o)), av));
  }
  return result(s01, s23);
}

// ---- F16 (products of halves are exact in float32) ----
// The reference (src/quant/float-types.ts vecDotF16) sums in float32: element i into lane i mod 4,
// each lane in element order, then (l0 + l2) + (l1 + l3), then the last n mod 4 products in order.
// A product is exact, so a fused multiply-add (relaxed_madd) rounds as the separate add does.

@inline function f16lo(v: v128): v128 {
  return f16x4ToF32x4(i32x4.extend_low_i16x8_u(v));
}
@inline function f16hi(v: v128): v128 {
  return f16x4ToF32x4(i32x4.extend_high_i16x8_u(v));
}

/** (l0 + l2) + (l1 + l3) of an f32x4 */
@inline function lanesF16(c: v128): f32 {
  const t = f32x4.add(c, i32x4.shuffle(c, c, 2, 3, 0, 1));
  return f32x4.extract_lane(t, 0) + f32x4.extract_lane(t, 1);
}

/** four f32 results as one vector */
@inline function four(a: f32, b: f32, c: f32, d: f32): v128 {
  return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(a), 1, b), 2, c), 3, d);
}

/** the four-row kernel without a prepared activation row: exact conversions of both operands */
export function dot4F16(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, n: i32): v128 {
  let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 1;
    const av = v128.load(a + o);
    const al = f16lo(av), ah = f16hi(av);
    let w = v128.load(p0 + o);
    c0 = maddF(f16lo(w), al, c0);
    c0 = maddF(f16hi(w), ah, c0);
    w = v128.load(p1 + o);
    c1 = maddF(f16lo(w), al, c1);
    c1 = maddF(f16hi(w), ah, c1);
    w = v128.load(p2 + o);
    c2 = maddF(f16lo(w), al, c2);
    c2 = maddF(f16hi(w), ah, c2);
    w = v128.load(p3 + o);
    c3 = maddF(f16lo(w), al, c3);
    c3 = maddF(f16hi(w), ah, c3);
  }
  if (i + 4 <= n) {
    const o = <usize>i << 1;
    const al = f16lo(v128.load64_zero(a + o));
    c0 = maddF(f16lo(v128.load64_zero(p0 + o)), al, c0);
    c1 = maddF(f16lo(v128.load64_zero(p1 + o)), al, c1);
    c2 = maddF(f16lo(v128.load64_zero(p2 + o)), al, c2);
    c3 = maddF(f16lo(v128.load64_zero(p3 + o)), al, c3);
    i += 4;
  }
  let s0 = lanesF16(c0), s1 = lanesF16(c1), s2 = lanesF16(c2), s3 = lanesF16(c3);
  for (; i < n; i++) {
    const o = <usize>i << 1;
    const x = f16ToF32(load<u16>(a + o));
    s0 += f16ToF32(load<u16>(p0 + o)) * x;
    s1 += f16ToF32(load<u16>(p1 + o)) * x;
    s2 += f16ToF32(load<u16>(p2 + o)) * x;
    s3 += f16ToF32(load<u16>(p3 + o)) * x;
  }
  return four(s0, s1, s2, s3);
}

// One token against F16 weights, the activation row prepared once per call (prepF16: each half as
// f32 times 2^112). A weight half h, sign-extended to i32, shifted left by 13 and masked with
// 0x8fffffff, is the f32 of h times 2^-112 (sign, then the 5-bit exponent and 10-bit fraction in
// f32's places; halves' subnormals become f32 subnormals): three integer operations instead of an
// exact conversion's nine, and its product with the scaled activation is the product of the two
// halves, exactly. Not for infinite or NaN weights (exponent 31 becomes a finite 2^16 scale):
// the model loader refuses F16 matrices that hold them.

/** 2^112 */
const REBIAS: f32 = 5.192296858534828e33;

/** bytes prepF16 writes for n elements */
export function prepF16Bytes(n: i32): usize {
  return ((<usize>n << 2) + 63) & ~(<usize>63);
}

/** the F16 activation row at a (n halves) as f32 times 2^112 at dst */
export function prepF16(a: usize, n: i32, dst: usize): void {
  for (let i = 0; i < n; i++) store<f32>(dst + (<usize>i << 2), f16ToF32(load<u16>(a + (<usize>i << 1))) * REBIAS);
}

/** four sign-extended weight halves (i32 lanes) as f32 times 2^-112 */
@inline function wScaled(h: v128): v128 {
  return v128.and(i32x4.shl(h, 13), i32x4.splat(0x8fffffff));
}
@inline function wScaled1(h: u32): f32 {
  return reinterpret<f32>((<u32><i32><i16>h << 13) & 0x8fffffff);
}

/** F16 rows [r0, r1) (finite weights) against the activation row prepared at s (prepF16) */
export function oneF16(w: usize, rb: usize, n: i32, r0: i32, r1: i32, s: usize, out: usize): void {
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    const p0 = w + <usize>r * rb;
    const p1 = nv > 1 ? p0 + rb : p0;
    const p2 = nv > 2 ? p1 + rb : p1;
    const p3 = nv > 3 ? p2 + rb : p2;
    let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0;
    let i = 0;
    for (; i + 8 <= n; i += 8) {
      const o = <usize>i << 1;
      const ao = s + (<usize>i << 2);
      const al = v128.load(ao), ah = v128.load(ao, 16);
      let v = v128.load(p0 + o);
      c0 = maddF(wScaled(i32x4.extend_low_i16x8_s(v)), al, c0);
      c0 = maddF(wScaled(i32x4.extend_high_i16x8_s(v)), ah, c0);
      v = v128.load(p1 + o);
      c1 = maddF(wScaled(i32x4.extend_low_i16x8_s(v)), al, c1);
      c1 = maddF(wScaled(i32x4.extend_high_i16x8_s(v)), ah, c1);
      v = v128.load(p2 + o);
      c2 = maddF(wScaled(i32x4.extend_low_i16x8_s(v)), al, c2);
      c2 = maddF(wScaled(i32x4.extend_high_i16x8_s(v)), ah, c2);
      v = v128.load(p3 + o);
      c3 = maddF(wScaled(i32x4.extend_low_i16x8_s(v)), al, c3);
      c3 = maddF(wScaled(i32x4.extend_high_i16x8_s(v)), ah, c3);
    }
    if (i + 4 <= n) {
      const o = <usize>i << 1;
      const al = v128.load(s + (<usize>i << 2));
      c0 = maddF(wScaled(i32x4.extend_low_i16x8_s(v128.load64_zero(p0 + o))), al, c0);
      c1 = maddF(wScaled(i32x4.extend_low_i16x8_s(v128.load64_zero(p1 + o))), al, c1);
      c2 = maddF(wScaled(i32x4.extend_low_i16x8_s(v128.load64_zero(p2 + o))), al, c2);
      c3 = maddF(wScaled(i32x4.extend_low_i16x8_s(v128.load64_zero(p3 + o))), al, c3);
      i += 4;
    }
    let s0 = lanesF16(c0), s1 = lanesF16(c1), s2 = lanesF16(c2), s3 = lanesF16(c3);
    for (; i < n; i++) {
      const o = <usize>i << 1;
      const x = load<f32>(s + (<usize>i << 2));
      s0 += wScaled1(load<u16>(p0 + o)) * x;
      s1 += wScaled1(load<u16>(p1 + o)) * x;
      s2 += wScaled1(load<u16>(p2 + o)) * x;
      s3 += wScaled1(load<u16>(p3 + o)) * x;
    }
    store4(out + (<usize>r << 2), four(s0, s1, s2, s3), nv);
  }
}

// ---- BF16 (a bf16 is the top half of an f32; products in float64) ----

@inline function bflo(v: v128): v128 {
  return i32x4.shl(i32x4.extend_low_i16x8_u(v), 16);
}
@inline function bfhi(v: v128): v128 {
  return i32x4.shl(i32x4.extend_high_i16x8_u(v), 16);
}
@inline function bf16ToF64(h: u32): f64 {
  return <f64>reinterpret<f32>(h << 16);
}

/** Σ of the 8 products of one row's 8 bf16 weights with the activations (as 4 f64x2 halves) */
@inline function bfRow(w: v128, a0: v128, a1: v128, a2: v128, a3: v128): v128 {
  const wl = bflo(w);
  const wh = bfhi(w);
  return f64x2.add(
    f64x2.add(f64x2.mul(lo64(wl), a0), f64x2.mul(hi64(wl), a1)),
    f64x2.add(f64x2.mul(lo64(wh), a2), f64x2.mul(hi64(wh), a3)),
  );
}

export function dot4BF16(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, n: i32): v128 {
  let r0 = f64x2.splat(0), r1 = f64x2.splat(0), r2 = f64x2.splat(0), r3 = f64x2.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 1;
    const av = v128.load(a + o);
    const al = bflo(av);
    const ah = bfhi(av);
    const a0 = lo64(al), a1 = hi64(al), a2 = lo64(ah), a3 = hi64(ah);
    r0 = f64x2.add(r0, bfRow(v128.load(p0 + o), a0, a1, a2, a3));
    r1 = f64x2.add(r1, bfRow(v128.load(p1 + o), a0, a1, a2, a3));
    r2 = f64x2.add(r2, bfRow(v128.load(p2 + o), a0, a1, a2, a3));
    r3 = f64x2.add(r3, bfRow(v128.load(p3 + o), a0, a1, a2, a3));
  }
  let s01 = pairSum(r0, r1);
  let s23 = pairSum(r2, r3);
  for (; i < n; i++) {
    const o = <usize>i << 1;
    const av = f64x2.splat(bf16ToF64(load<u16>(a + o)));
    s01 = f64x2.add(s01, f64x2.mul(f64x2.replace_lane(f64x2.splat(bf16ToF64(load<u16>(p0 + o))), 1, bf16ToF64(load<u16>(p1 + o))), av));
    s23 = f64x2.add(s23, f64x2.mul(f64x2.replace_lane(f64x2.splat(bf16ToF64(load<u16>(p2 + o))), 1, bf16ToF64(load<u16>(p3 + o))), av));
  }
  return result(s01, s23);
}
