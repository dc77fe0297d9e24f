// Q8_0: 32 weights per block, 34 bytes:
//   [0..2)   d   f16 scale
//   [2..34)  qs  int8[32]        value[i] = d * qs[i]
// Also the activation type for Q4_0/Q5_0/Q8_0/IQ4_NL weights. Matches ggml dequantize_row_q8_0,
// quantize_row_q8_0_ref (weights), ggml-cpu quantize_row_q8_0 (x86 SIMD, activations), vec_dot_q8_0_q8_0.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, roundHalfAway, roundHalfEven, writeU16 } from "./bytes.js";
import type { TypeTraits } from "./traits.js";

export const QK8_0 = 32;
export const Q8_0_BYTES = 34;

const wViews = new ViewCache();
const aViews = new ViewCache();

export function dequantizeQ8_0(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const s8 = wViews.i8(src);
  const base = src.byteOffset;
  for (let b = 0; b < n / QK8_0; b++) {
    const o = srcOff + b * Q8_0_BYTES;
    const d = readF16(src, o);
    const q = base + o + 2;
    const y = dstOff + b * QK8_0;
    for (let j = 0; j < QK8_0; j++) dst[y + j] = s8[q + j]! * d;
  }
}

/** amax of x[xo .. xo+32) */
function blockAmax(x: Float32Array, xo: number): number {
  let amax = 0;
  for (let j = 0; j < QK8_0; j++) {
    const v = Math.abs(x[xo + j]!);
    if (v > amax) amax = v;
  }
  return amax;
}

/** Reference weight quantizer: d = amax/127, q = roundf(x * (1/d)). */
export function quantizeQ8_0Ref(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK8_0; b++) {
    const xo = xOff + b * QK8_0;
    const o = dstOff + b * Q8_0_BYTES;
    const amax = blockAmax(x, xo);
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    writeU16(dst, o, f32ToF16(d));
    for (let j = 0; j < QK8_0; j++) dst[o + 2 + j] = roundHalfAway(Math.fround(x[xo + j]! * id)) & 0xff;
  }
}

/** ggml-cpu activation quantizer (AVX2 path): q = round-half-even(x * (127/amax)), d = amax/127. */
export function quantizeQ8_0Act(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK8_0; b++) {
    const xo = xOff + b * QK8_0;
    const o = dstOff + b * Q8_0_BYTES;
    const amax = blockAmax(x, xo);
    const d = Math.fround(amax / 127);
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    writeU16(dst, o, f32ToF16(d));
    for (let j = 0; j < QK8_0; j++) dst[o + 2 + j] = roundHalfEven(Math.fround(x[xo + j]! * id)) & 0xff;
  }
}

/** Σ over blocks of d_w * d_a * Σ qw*qa. */
export function vecDotQ8_0Q8_0(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const w8 = wViews.i8(w);
  const a8 = aViews.i8(act);
  const wb = w.byteOffset;
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK8_0; b++) {
    const wo = wOff + b * Q8_0_BYTES;
    const ao = aOff + b * Q8_0_BYTES;
    const wq = wb + wo + 2;
    const aq = ab + ao + 2;
    let sumi = 0;
    for (let j = 0; j < QK8_0; j++) sumi += w8[wq + j]! * a8[aq + j]!;
    sum += sumi * (readF16(w, wo) * readF16(act, ao));
  }
  return sum;
}

export const Q8_0: TypeTraits = {
  type: GgmlType.Q8_0,
  blockSize: QK8_0,
  typeSize: Q8_0_BYTES,
  vecDotType: GgmlType.Q8_0,
  dequantize: dequantizeQ8_0,
  vecDot: vecDotQ8_0Q8_0,
  quantizeRef: quantizeQ8_0Ref,
  fromFloat: quantizeQ8_0Act,
};
