// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Activation quantizers (ggml-cpu from_float), bit-exact with src/quant/q8_0.ts, q8_1.ts, q8_K.ts
// and float-types.ts, including their JavaScript corner cases: a NaN or infinite rounded value
// stores as byte 0 (ToInt32), NaN never becomes the block maximum, -0 stays -0 before storing.

import { f32ToBf16, f32ToF16 } from "./common";
import { BF16, F16, F32, Q8_0, Q8_1, Q8_K } from "./matmul";

/** bytes of one activation row of n values, 0 for a type that is not an activation type here */
export function actRowBytes(type: i32, n: i32): i32 {
  switch (type) {
    case Q8_0: return (n >> 5) * 34;
    case Q8_1: return (n >> 5) * 36;
    case Q8_K: return (n >> 8) * 292;
    case F16: case BF16: return n * 2;
    case F32: return n * 4;
    default: return 0;
  }
}

/** JS `if (v > m) m = v` over |lanes| (NaN never wins), then over the four lanes */
@inline function laneMax(m: v128): f32 {
  let r: f32 = 0;
  const l0 = f32x4.extract_lane(m, 0);
  const l1 = f32x4.extract_lane(m, 1);
  const l2 = f32x4.extract_lane(m, 2);
  const l3 = f32x4.extract_lane(m, 3);
  if (l0 > r) r = l0;
  if (l1 > r) r = l1;
  if (l2 > r) r = l2;
  if (l3 > r) r = l3;
  return r;
}

/** ToInt32 of rounded lanes whose finite values are small: NaN and ±Inf become 0 */
@inline function toInt(r: v128): v128 {
  return i32x4.trunc_sat_f32x4_s(v128.and(r, f32x4.lt(f32x4.abs(r), f32x4.splat(1e9))));
}

/** 16 i32 lanes (four vectors) -> 16 bytes (values in i8 range) */
@inline function packBytes(a: v128, b: v128, c: v128, d: v128): v128 {
  return i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(a, b), i16x8.narrow_i32x4_s(c, d));
}

/** Σ of the four f32 lanes (exact for the small integers summed here) */
@inline function laneSum(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/**
 * Q8_0 (qOff = 2) and Q8_1 (qOff = 4, with s = f16(d * Σq) at 2): d = amax/127,
 * q = round-half-even(x * (127/amax)).
 */
function quantRowQ8(x: usize, n: i32, y: usize, q81: bool): void {
  const bytes: usize = q81 ? 36 : 34;
  const qo: usize = q81 ? 4 : 2;
  for (let b = 0; b < (n >> 5); b++) {
    const v0 = v128.load(x, 0), v1 = v128.load(x, 16), v2 = v128.load(x, 32), v3 = v128.load(x, 48);
    const v4 = v128.load(x, 64), v5 = v128.load(x, 80), v6 = v128.load(x, 96), v7 = v128.load(x, 112);
    let m = f32x4.splat(0);
    m = f32x4.pmax(m, f32x4.abs(v0)); m = f32x4.pmax(m, f32x4.abs(v1));
    m = f32x4.pmax(m, f32x4.abs(v2)); m = f32x4.pmax(m, f32x4.abs(v3));
    m = f32x4.pmax(m, f32x4.abs(v4)); m = f32x4.pmax(m, f32x4.abs(v5));
    m = f32x4.pmax(m, f32x4.abs(v6)); m = f32x4.pmax(m, f32x4.abs(v7));
    const amax = laneMax(m);
    const d: f32 = amax / 127;
    const idv = f32x4.splat(amax != 0 ? <f32>127 / amax : 0);
    store<u16>(y, <u16>f32ToF16(d));
    const r0 = f32x4.nearest(f32x4.mul(v0, idv)), r1 = f32x4.nearest(f32x4.mul(v1, idv));
    const r2 = f32x4.nearest(f32x4.mul(v2, idv)), r3 = f32x4.nearest(f32x4.mul(v3, idv));
    const r4 = f32x4.nearest(f32x4.mul(v4, idv)), r5 = f32x4.nearest(f32x4.mul(v5, idv));
    const r6 = f32x4.nearest(f32x4.mul(v6, idv)), r7 = f32x4.nearest(f32x4.mul(v7, idv));
    v128.store(y + qo, packBytes(toInt(r0), toInt(r1), toInt(r2), toInt(r3)));
    v128.store(y + qo + 16, packBytes(toInt(r4), toInt(r5), toInt(r6), toInt(r7)));
    if (q81) {
      const s = f32x4.add(f32x4.add(f32x4.add(r0, r1), f32x4.add(r2, r3)), f32x4.add(f32x4.add(r4, r5), f32x4.add(r6, r7)));
      store<u16>(y, <u16>f32ToF16(d * laneSum(s)), 2);
    }
    x += 128;
    y += bytes;
  }
}

/**
 * Q8_K: max = the value of largest magnitude (first one), iscale = -127/max,
 * q = min(127, round-half-even(iscale * x)), d = 1/iscale, bsums = Σq per 16.
 */
function quantRowQ8_K(x: usize, n: i32, y: usize): void {
  for (let b = 0; b < (n >> 8); b++) {
    let m = f32x4.splat(0);
    for (let i = 0; i < 64; i++) m = f32x4.pmax(m, f32x4.abs(v128.load(x + (<usize>i << 4))));
    const amax = laneMax(m);
    if (amax == 0) {
      memory.fill(y, 0, 292);
    } else {
      let j = 0;
      while (Mathf.abs(load<f32>(x + (<usize>j << 2))) != amax) j++;
      const iscale: f32 = <f32>-127 / load<f32>(x + (<usize>j << 2));
      const isv = f32x4.splat(iscale);
      const c127 = f32x4.splat(127);
      for (let g = 0; g < 16; g++) {
        const xg = x + (<usize>g << 6);
        const r0 = f32x4.min(c127, f32x4.nearest(f32x4.mul(isv, v128.load(xg, 0))));
        const r1 = f32x4.min(c127, f32x4.nearest(f32x4.mul(isv, v128.load(xg, 16))));
        const r2 = f32x4.min(c127, f32x4.nearest(f32x4.mul(isv, v128.load(xg, 32))));
        const r3 = f32x4.min(c127, f32x4.nearest(f32x4.mul(isv, v128.load(xg, 48))));
        v128.store(y + 4 + (<usize>g << 4), packBytes(toInt(r0), toInt(r1), toInt(r2), toInt(r3)));
        const s = laneSum(f32x4.add(f32x4.add(r0, r1), f32x4.add(r2, r3)));
        store<i16>(y + 260 + (<usize>g << 1), <i16>i32x4.extract_lane(toInt(f32x4.splat(s)), 0));
      }
      store<f32>(y, <f32>1 / iscale);
    }
    x += 1024;
    y += 292;
  }
}

/** quantize nRows rows of n floats at x into `type` rows (actRowBytes each) at out; -1 if unknown */
export function quantizeRows(type: i32, x: usize, nRows: i32, n: i32, out: usize): i32 {
  const rb = <usize>actRowBytes(type, n);
  if (rb == 0 && n != 0) return -1;
  for (let r = 0; r < nRows; r++) {
    const xr = x + ((<usize>r * <usize>n) << 2);
    const yr = out + <usize>r * rb;
    switch (type) {
      case Q8_0: quantRowQ8(xr, n, yr, false); break;
      case Q8_1: quantRowQ8(xr, n, yr, true); break;
      case Q8_K: quantRowQ8_K(xr, n, yr); break;
      case F16: {
        for (let i = 0; i < n; i++) store<u16>(yr + (<usize>i << 1), <u16>f32ToF16(load<f32>(xr + (<usize>i << 2))));
        break;
      }
      case BF16: {
        for (let i = 0; i < n; i++) store<u16>(yr + (<usize>i << 1), <u16>f32ToBf16(load<f32>(xr + (<usize>i << 2))));
        break;
      }
      case F32: memory.copy(yr, xr, <usize>n << 2); break;
    }
  }
  return 0;
}
