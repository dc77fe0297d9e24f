// Q4_1: 32 weights per block, 20 bytes:
//   [0..2)   d   f16 scale
//   [2..4)   m   f16 min
//   [4..20)  qs  u8[16]   weight[j] = (qs[j] & 15) * d + m, weight[j+16] = (qs[j] >> 4) * d + m
// Matches ggml dequantize_row_q4_1, quantize_row_q4_1_ref and vec_dot_q4_1_q8_1 (activation: Q8_1).

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, truncInt, writeU16 } from "./bytes.js";
import { importanceWeights, makeQkx3Quants, sumSquares } from "./quant-search.js";
import { Q8_1_BYTES } from "./q8_1.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const QK4_1 = 32;
export const Q4_1_BYTES = 20;

const aViews = new ViewCache();

export function dequantizeQ4_1(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK4_1; b++) {
    const o = srcOff + b * Q4_1_BYTES;
    const d = readF16(src, o);
    const m = readF16(src, o + 2);
    const y = dstOff + b * QK4_1;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 4 + j]!;
      dst[y + j] = Math.fround((q & 15) * d) + m;
      dst[y + j + 16] = Math.fround((q >> 4) * d) + m;
    }
  }
}

/** Shared by Q4_1 and Q5_1: min and max of a block of 32. */
export function blockMinMax(x: Float32Array, xo: number, out: Float64Array): void {
  let min = Infinity;
  let max = -Infinity;
  for (let j = 0; j < 32; j++) {
    const v = x[xo + j]!;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  out[0] = min;
  out[1] = max;
}

const mm = new Float64Array(2);

/** d = (max-min)/15, m = min, q = min(15, trunc((x-min)/d + 0.5)). */
export function quantizeQ4_1Ref(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK4_1; b++) {
    const xo = xOff + b * QK4_1;
    const o = dstOff + b * Q4_1_BYTES;
    blockMinMax(x, xo, mm);
    const min = mm[0]!;
    const d = Math.fround(Math.fround(mm[1]! - min) / 15);
    const id = d ? Math.fround(1 / d) : 0;
    writeU16(dst, o, f32ToF16(d));
    writeU16(dst, o + 2, f32ToF16(min));
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(Math.fround(x[xo + j]! - min) * id);
      const x1 = Math.fround(Math.fround(x[xo + 16 + j]! - min) * id);
      const q0 = Math.min(15, truncInt(Math.fround(x0 + 0.5)));
      const q1 = Math.min(15, truncInt(Math.fround(x1 + 0.5)));
      dst[o + 4 + j] = q0 | (q1 << 4);
    }
  }
}

const weight = new Float32Array(QK4_1);
const L = new Uint8Array(QK4_1);
const fit = new Float32Array(2);

/**
 * With an importance matrix (ggml quantize_row_q4_1_impl): per block, weights
 * importance * sqrt(sigma2 + x²) (sigma2 = mean x² of the row) and a make_qkx3_quants fit.
 */
export function quantizeQ4_1Weighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  const sigma2 = Math.fround(sumSquares(x, xOff, n) / n);
  for (let b = 0; b < n / QK4_1; b++) {
    const xo = xOff + b * QK4_1;
    const o = dstOff + b * Q4_1_BYTES;
    importanceWeights(x, xo, QK4_1, importance, b * QK4_1, sigma2, weight);
    makeQkx3Quants(QK4_1, 15, x, xo, weight, 0, L, 0, Math.fround(-0.9), Math.fround(0.05), 36, false, fit);
    writeU16(dst, o, f32ToF16(fit[0]!));
    writeU16(dst, o + 2, f32ToF16(-fit[1]!));
    for (let j = 0; j < 16; j++) dst[o + 4 + j] = L[j]! | (L[j + 16]! << 4);
  }
}

/** Σ over blocks of d_w * d_a * Σ q*qa + m_w * s_a. */
export function vecDotQ4_1Q8_1(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK4_1; b++) {
    const wo = wOff + b * Q4_1_BYTES;
    const ao = aOff + b * Q8_1_BYTES;
    const aq = ab + ao + 4;
    let sumi = 0;
    for (let j = 0; j < 16; j++) {
      const q = w[wo + 4 + j]!;
      sumi += (q & 15) * a8[aq + j]! + (q >> 4) * a8[aq + j + 16]!;
    }
    sum += sumi * (readF16(w, wo) * readF16(act, ao)) + readF16(w, wo + 2) * readF16(act, ao + 2);
  }
  return sum;
}

export const Q4_1: TypeTraits = {
  type: GgmlType.Q4_1,
  blockSize: QK4_1,
  typeSize: Q4_1_BYTES,
  vecDotType: GgmlType.Q8_1,
  dequantize: dequantizeQ4_1,
  vecDot: vecDotQ4_1Q8_1,
  quantizeRef: quantizeQ4_1Ref,
  quantizeImatrix: rowsQuantizer(QK4_1, Q4_1_BYTES, quantizeQ4_1Ref, quantizeQ4_1Weighted),
};
