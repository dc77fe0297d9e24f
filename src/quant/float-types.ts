// The unquantized element types F32, F16 and BF16 (one element per "block").
// F32 weights take F32 activations, F16 weights F16 activations, BF16 weights BF16 activations, as
// ggml-cpu's vec_dot_type does; the F32 and BF16 dots accumulate the products in float64, the F16 dot
// (whose products are exact in float32) in float32 lanes, as llama.cpp does.
// Conversions are ggml's: round to nearest even (f16.ts). Not the conversion routines themselves.

import { F16_TABLE, bf16ToF32, f32ToBf16, f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF32, writeF32 } from "./bytes.js";
import type { TypeTraits } from "./traits.js";

const wViews = new ViewCache();
const aViews = new ViewCache();

// ---- F32 ----

export function dequantizeF32(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const abs = src.byteOffset + srcOff;
  if ((abs & 3) === 0) {
    dst.set(wViews.f32(src).subarray(abs >>> 2, (abs >>> 2) + n), dstOff);
  } else {
    for (let i = 0; i < n; i++) dst[dstOff + i] = readF32(src, srcOff + 4 * i);
  }
}

export function quantizeF32(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let i = 0; i < n; i++) writeF32(dst, dstOff + 4 * i, x[xOff + i]!);
}

export function vecDotF32(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const wa = w.byteOffset + wOff;
  const aa = act.byteOffset + aOff;
  let sum = 0;
  if (((wa | aa) & 3) === 0) {
    const wf = wViews.f32(w);
    const af = aViews.f32(act);
    const wi = wa >>> 2;
    const ai = aa >>> 2;
    for (let i = 0; i < n; i++) sum += wf[wi + i]! * af[ai + i]!;
  } else {
    for (let i = 0; i < n; i++) sum += readF32(w, wOff + 4 * i) * readF32(act, aOff + 4 * i);
  }
  return sum;
}

export const F32: TypeTraits = {
  type: GgmlType.F32,
  blockSize: 1,
  typeSize: 4,
  vecDotType: GgmlType.F32,
  dequantize: dequantizeF32,
  vecDot: vecDotF32,
  quantizeRef: quantizeF32,
  fromFloat: quantizeF32,
};

// ---- F16 ----

export function dequantizeF16(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const o = srcOff + 2 * i;
    dst[dstOff + i] = F16_TABLE[src[o]! | (src[o + 1]! << 8)]!;
  }
}

export function quantizeF16(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let i = 0; i < n; i++) {
    const h = f32ToF16(x[xOff + i]!);
    dst[dstOff + 2 * i] = h & 0xff;
    dst[dstOff + 2 * i + 1] = h >>> 8;
  }
}

/**
 * F16 · F16 (activations rounded to half, as ggml does). Every product of two halves is exact in
 * float32 (11-bit significands, exponents in range), so the sum is float32 throughout, as in
 * llama.cpp (there in its own lane order; here): element i goes into lane i mod 4 (each lane summed in element order), the lanes are then
 * added as (l0 + l2) + (l1 + l3), and the last n mod 4 products after them, in order. The
 * WebAssembly kernels (matmul-f.ts, tile-f.ts) compute exactly this, four lanes at a time.
 */
export function vecDotF16(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const t = F16_TABLE;
  const fr = Math.fround;
  const wa = w.byteOffset + wOff;
  const aa = act.byteOffset + aOff;
  const aligned = ((wa | aa) & 1) === 0;
  const wh = aligned ? wViews.u16(w) : undefined;
  const ah = aligned ? aViews.u16(act) : undefined;
  const wi = wa >>> 1, ai = aa >>> 1;
  // the product of element i (exact: a double holding a float32 value)
  const p = aligned
    ? (i: number) => t[wh![wi + i]!]! * t[ah![ai + i]!]!
    : (i: number) => t[w[wOff + 2 * i]! | (w[wOff + 2 * i + 1]! << 8)]! * t[act[aOff + 2 * i]! | (act[aOff + 2 * i + 1]! << 8)]!;
  let l0 = 0, l1 = 0, l2 = 0, l3 = 0;
  const n4 = n - (n % 4);
  for (let i = 0; i < n4; i += 4) {
    l0 = fr(l0 + p(i));
    l1 = fr(l1 + p(i + 1));
    l2 = fr(l2 + p(i + 2));
    l3 = fr(l3 + p(i + 3));
  }
  let sum = fr(fr(l0 + l2) + fr(l1 + l3));
  for (let i = n4; i < n; i++) sum = fr(sum + p(i));
  return sum;
}

export const F16: TypeTraits = {
  type: GgmlType.F16,
  blockSize: 1,
  typeSize: 2,
  vecDotType: GgmlType.F16,
  dequantize: dequantizeF16,
  vecDot: vecDotF16,
  quantizeRef: quantizeF16,
  fromFloat: quantizeF16,
};

// ---- BF16 ----

export function dequantizeBF16(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let i = 0; i < n; i++) {
    const o = srcOff + 2 * i;
    dst[dstOff + i] = bf16ToF32(src[o]! | (src[o + 1]! << 8));
  }
}

export function quantizeBF16(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let i = 0; i < n; i++) {
    const h = f32ToBf16(x[xOff + i]!);
    dst[dstOff + 2 * i] = h & 0xff;
    dst[dstOff + 2 * i + 1] = h >>> 8;
  }
}

const bfScratch = new Float32Array(2);
const bfBits = new Uint32Array(bfScratch.buffer);

export function vecDotBF16(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const wo = wOff + 2 * i;
    const ao = aOff + 2 * i;
    bfBits[0] = (w[wo]! << 16) | (w[wo + 1]! << 24);
    bfBits[1] = (act[ao]! << 16) | (act[ao + 1]! << 24);
    sum += bfScratch[0]! * bfScratch[1]!;
  }
  return sum;
}

export const BF16: TypeTraits = {
  type: GgmlType.BF16,
  blockSize: 1,
  typeSize: 2,
  vecDotType: GgmlType.BF16,
  dequantize: dequantizeBF16,
  vecDot: vecDotBF16,
  quantizeRef: quantizeBF16,
  fromFloat: quantizeBF16,
};
