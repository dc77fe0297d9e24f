// Q5_1: 32 weights per block, 24 bytes:
//   [0..2)   d   f16 scale
//   [2..4)   m   f16 min
//   [4..8)   qh  u32 LE, bit j = the 5th bit of weight j
//   [8..24)  qs  u8[16], low nibble = weight j, high nibble = weight j+16 (4 low bits)
//   weight = q * d + m with q in 0..31
// Matches ggml dequantize_row_q5_1, quantize_row_q5_1_ref and vec_dot_q5_1_q8_1 (activation: Q8_1).

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, readU32, truncInt, writeU16, writeU32 } from "./bytes.js";
import { blockMinMax } from "./q4_1.js";
import { importanceWeights, makeQkx3Quants, sumSquares } from "./quant-search.js";
import { Q8_1_BYTES } from "./q8_1.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const QK5_1 = 32;
export const Q5_1_BYTES = 24;

const aViews = new ViewCache();
const mm = new Float64Array(2);

export function dequantizeQ5_1(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK5_1; b++) {
    const o = srcOff + b * Q5_1_BYTES;
    const d = readF16(src, o);
    const m = readF16(src, o + 2);
    const qh = readU32(src, o + 4);
    const y = dstOff + b * QK5_1;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 8 + j]!;
      const q0 = (q & 15) | (((qh >>> j) & 1) << 4);
      const q1 = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      dst[y + j] = Math.fround(q0 * d) + m;
      dst[y + j + 16] = Math.fround(q1 * d) + m;
    }
  }
}

/** d = (max-min)/31, m = min, q = trunc((x-min)/d + 0.5) (no clamp, as in ggml). */
export function quantizeQ5_1Ref(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK5_1; b++) {
    const xo = xOff + b * QK5_1;
    const o = dstOff + b * Q5_1_BYTES;
    blockMinMax(x, xo, mm);
    const min = mm[0]!;
    const d = Math.fround(Math.fround(mm[1]! - min) / 31);
    const id = d ? Math.fround(1 / d) : 0;
    writeU16(dst, o, f32ToF16(d));
    writeU16(dst, o + 2, f32ToF16(min));
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(Math.fround(x[xo + j]! - min) * id);
      const x1 = Math.fround(Math.fround(x[xo + 16 + j]! - min) * id);
      const q0 = truncInt(Math.fround(x0 + 0.5)) & 0xff;
      const q1 = truncInt(Math.fround(x1 + 0.5)) & 0xff;
      dst[o + 8 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= (((q0 & 0x10) >> 4) << j) | (((q1 & 0x10) >> 4) << (j + 16));
    }
    writeU32(dst, o + 4, qh >>> 0);
  }
}

const weight = new Float32Array(QK5_1);
const L = new Uint8Array(QK5_1);
const fit = new Float32Array(2);

/** With an importance matrix (ggml quantize_row_q5_1_impl): as Q4_1's, with 5-bit quants. */
export function quantizeQ5_1Weighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  const sigma2 = Math.fround(sumSquares(x, xOff, n) / n);
  for (let b = 0; b < n / QK5_1; b++) {
    const xo = xOff + b * QK5_1;
    const o = dstOff + b * Q5_1_BYTES;
    importanceWeights(x, xo, QK5_1, importance, b * QK5_1, sigma2, weight);
    makeQkx3Quants(QK5_1, 31, x, xo, weight, 0, L, 0, Math.fround(-0.9), Math.fround(0.05), 36, false, fit);
    writeU16(dst, o, f32ToF16(fit[0]!));
    writeU16(dst, o + 2, f32ToF16(-fit[1]!));
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = L[j]!, q1 = L[j + 16]!;
      dst[o + 8 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= (((q0 & 0x10) >> 4) << j) | (((q1 & 0x10) >> 4) << (j + 16));
    }
    writeU32(dst, o + 4, qh >>> 0);
  }
}

/** Σ over blocks of d_w * d_a * Σ q*qa + m_w * s_a. */
export function vecDotQ5_1Q8_1(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK5_1; b++) {
    const wo = wOff + b * Q5_1_BYTES;
    const ao = aOff + b * Q8_1_BYTES;
    const aq = ab + ao + 4;
    const qh = readU32(w, wo + 4);
    let sumi = 0;
    for (let j = 0; j < 16; j++) {
      const q = w[wo + 8 + j]!;
      const q0 = (q & 15) | (((qh >>> j) & 1) << 4);
      const q1 = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      sumi += q0 * a8[aq + j]! + q1 * a8[aq + j + 16]!;
    }
    sum += sumi * (readF16(w, wo) * readF16(act, ao)) + readF16(w, wo + 2) * readF16(act, ao + 2);
  }
  return sum;
}

export const Q5_1: TypeTraits = {
  type: GgmlType.Q5_1,
  blockSize: QK5_1,
  typeSize: Q5_1_BYTES,
  vecDotType: GgmlType.Q8_1,
  dequantize: dequantizeQ5_1,
  vecDot: vecDotQ5_1Q8_1,
  quantizeRef: quantizeQ5_1Ref,
  quantizeImatrix: rowsQuantizer(QK5_1, Q5_1_BYTES, quantizeQ5_1Ref, quantizeQ5_1Weighted),
};
