// Q4_0: 32 weights per block, 18 bytes:
//   [0..2)   d   f16 scale
//   [2..18)  qs  u8[16]   weight[j] = ((qs[j] & 15) - 8) * d, weight[j+16] = ((qs[j] >> 4) - 8) * d
// Matches ggml dequantize_row_q4_0, quantize_row_q4_0_ref and vec_dot_q4_0_q8_0 (activation: Q8_0).

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, truncInt, writeU16 } from "./bytes.js";
import { makeQxQuants, sumSquares, importanceWeights } from "./quant-search.js";
import { Q8_0_BYTES } from "./q8_0.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const QK4_0 = 32;
export const Q4_0_BYTES = 18;

const aViews = new ViewCache();

export function dequantizeQ4_0(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK4_0; b++) {
    const o = srcOff + b * Q4_0_BYTES;
    const d = readF16(src, o);
    const y = dstOff + b * QK4_0;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j]!;
      dst[y + j] = ((q & 15) - 8) * d;
      dst[y + j + 16] = ((q >> 4) - 8) * d;
    }
  }
}

/** d = max/-8 (max = the value of largest magnitude, signed), q = min(15, trunc(x/d + 8.5)). */
export function quantizeQ4_0Ref(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK4_0; b++) {
    const xo = xOff + b * QK4_0;
    const o = dstOff + b * Q4_0_BYTES;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK4_0; j++) {
      const v = x[xo + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    writeU16(dst, o, f32ToF16(d));
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(x[xo + j]! * id);
      const x1 = Math.fround(x[xo + 16 + j]! * id);
      const q0 = Math.min(15, truncInt(Math.fround(x0 + 8.5)));
      const q1 = Math.min(15, truncInt(Math.fround(x1 + 8.5)));
      dst[o + 2 + j] = q0 | (q1 << 4);
    }
  }
}

const weight = new Float32Array(QK4_0);
const L = new Uint8Array(QK4_0);

/**
 * With an importance matrix (ggml quantize_row_q4_0_impl): per block, weights
 * importance * sqrt(sigma2 + x²) (sigma2 = mean x² of the row) and a make_qx_quants scale search.
 */
export function quantizeQ4_0Weighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  const sigma2 = Math.fround(sumSquares(x, xOff, n) / n);
  for (let b = 0; b < n / QK4_0; b++) {
    const xo = xOff + b * QK4_0;
    const o = dstOff + b * Q4_0_BYTES;
    importanceWeights(x, xo, QK4_0, importance, b * QK4_0, sigma2, weight);
    const d = makeQxQuants(QK4_0, 8, x, xo, L, 0, weight);
    writeU16(dst, o, f32ToF16(d));
    for (let j = 0; j < 16; j++) dst[o + 2 + j] = L[j]! | (L[j + 16]! << 4);
  }
}

/** Σ over blocks of d_w * d_a * Σ (q-8)*qa. */
export function vecDotQ4_0Q8_0(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK4_0; b++) {
    const wo = wOff + b * Q4_0_BYTES;
    const ao = aOff + b * Q8_0_BYTES;
    const aq = ab + ao + 2;
    let sumi = 0;
    for (let j = 0; j < 16; j++) {
      const q = w[wo + 2 + j]!;
      sumi += ((q & 15) - 8) * a8[aq + j]! + ((q >> 4) - 8) * a8[aq + j + 16]!;
    }
    sum += sumi * (readF16(w, wo) * readF16(act, ao));
  }
  return sum;
}

export const Q4_0: TypeTraits = {
  type: GgmlType.Q4_0,
  blockSize: QK4_0,
  typeSize: Q4_0_BYTES,
  vecDotType: GgmlType.Q8_0,
  dequantize: dequantizeQ4_0,
  vecDot: vecDotQ4_0Q8_0,
  quantizeRef: quantizeQ4_0Ref,
  quantizeImatrix: rowsQuantizer(QK4_0, Q4_0_BYTES, quantizeQ4_0Ref, quantizeQ4_0Weighted),
};
