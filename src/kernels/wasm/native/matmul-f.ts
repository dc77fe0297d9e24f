// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Dot products of four float weight rows (F32, F16, BF16) with an activation row of the same type.
// Products are exact in float64 (F16 x F16 even in float32), sums are float64 like the reference,
// only in a different order (two lanes, then the tail), so results agree to ~1e-15 relative.

import { f16ToF32, f16x4ToF32x4, hi64, lo64 } from "./common";

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

@inline function f16lo(v: v128): v128 {
  return f16x4ToF32x4(i32x4.extend_low_i16x8_u(v));
}
@inline function f16hi(v: v128): v128 {
  return f16x4ToF32x4(i32x4.extend_high_i16x8_u(v));
}

export function dot4F16(p0: usize, p1: usize, p2: usize, p3: usize, a: usize, n: i32): v128 {
  let r0 = f64x2.splat(0), r1 = f64x2.splat(0), r2 = f64x2.splat(0), r3 = f64x2.splat(0);
  let u0 = f64x2.splat(0), u1 = f64x2.splat(0), u2 = f64x2.splat(0), u3 = f64x2.splat(0);
  let i = 0;
  for (; i + 8 <= n; i += 8) {
    const o = <usize>i << 1;
    const av = v128.load(a + o);
    const al = f16lo(av);
    const ah = f16hi(av);
    let w = v128.load(p0 + o);
    let pl = f32x4.mul(f16lo(w), al);
    let ph = f32x4.mul(f16hi(w), ah);
    r0 = f64x2.add(r0, f64x2.add(lo64(pl), lo64(ph)));
    u0 = f64x2.add(u0, f64x2.add(hi64(pl), hi64(ph)));
    w = v128.load(p1 + o);
    pl = f32x4.mul(f16lo(w), al);
    ph = f32x4.mul(f16hi(w), ah);
    r1 = f64x2.add(r1, f64x2.add(lo64(pl), lo64(ph)));
    u1 = f64x2.add(u1, f64x2.add(hi64(pl), hi64(ph)));
    w = v128.load(p2 + o);
    pl = f32x4.mul(f16lo(w), al);
    ph = f32x4.mul(f16hi(w), ah);
    r2 = f64x2.add(r2, f64x2.add(lo64(pl), lo64(ph)));
    u2 = f64x2.add(u2, f64x2.add(hi64(pl), hi64(ph)));
    w = v128.load(p3 + o);
    pl = f32x4.mul(f16lo(w), al);
    ph = f32x4.mul(f16hi(w), ah);
    r3 = f64x2.add(r3, f64x2.add(lo64(pl), lo64(ph)));
    u3 = f64x2.add(u3, f64x2.add(hi64(pl), hi64(ph)));
  }
  let s01 = pairSum(f64x2.add(r0, u0), f64x2.add(r1, u1));
  let s23 = pairSum(f64x2.add(r2, u2), f64x2.add(r3, u3));
  for (; i < n; i++) {
    const o = <usize>i << 1;
    const av = f64x2.splat(<f64>f16ToF32(load<u16>(a + o)));
    s01 = f64x2.add(s01, f64x2.mul(f64x2.replace_lane(f64x2.splat(<f64>f16ToF32(load<u16>(p0 + o))), 1, <f64>f16ToF32(load<u16>(p1 + o))), av));
    s23 = f64x2.add(s23, f64x2.mul(f64x2.replace_lane(f64x2.splat(<f64>f16ToF32(load<u16>(p2 + o))), 1, <f64>f16ToF32(load<u16>(p3 + o))), av));
  }
  return result(s01, s23);
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
