// Q5_0: 32 weights per block, 22 bytes:
//   [0..2)   d   f16 scale
//   [2..6)   qh  u32 LE, bit j = the 5th bit of weight j
//   [6..22)  qs  u8[16], low nibble = weight j, high nibble = weight j+16 (4 low bits)
//   weight = (q - 16) * d with q in 0..31
// Matches ggml dequantize_row_q5_0, quantize_row_q5_0_ref and vec_dot_q5_0_q8_0 (activation: Q8_0).

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, readU32, truncInt, writeU16, writeU32 } from "./bytes.js";
import { importanceWeights, makeQxQuants, sumSquares } from "./quant-search.js";
import { Q8_0_BYTES } from "./q8_0.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const QK5_0 = 32;
export const Q5_0_BYTES = 22;

const aViews = new ViewCache();

export function dequantizeQ5_0(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK5_0; b++) {
    const o = srcOff + b * Q5_0_BYTES;
    const d = readF16(src, o);
    const qh = readU32(src, o + 2);
    const y = dstOff + b * QK5_0;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 6 + j]!;
      const q0 = (q & 15) | (((qh >>> j) & 1) << 4);
      const q1 = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      dst[y + j] = (q0 - 16) * d;
      dst[y + j + 16] = (q1 - 16) * d;
    }
  }
}

/** d = max/-16 (max = the value of largest magnitude, signed), q = min(31, trunc(x/d + 16.5)). */
export function quantizeQ5_0Ref(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK5_0; b++) {
    const xo = xOff + b * QK5_0;
    const o = dstOff + b * Q5_0_BYTES;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK5_0; j++) {
      const v = x[xo + j]!;
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -16);
    const id = d ? Math.fround(1 / d) : 0;
    writeU16(dst, o, f32ToF16(d));
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const x0 = Math.fround(x[xo + j]! * id);
      const x1 = Math.fround(x[xo + 16 + j]! * id);
      const q0 = Math.min(31, truncInt(Math.fround(x0 + 16.5)));
      const q1 = Math.min(31, truncInt(Math.fround(x1 + 16.5)));
      dst[o + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= ((q0 >> 4) << j) | ((q1 >> 4) << (j + 16));
    }
    writeU32(dst, o + 2, qh >>> 0);
  }
}

const weight = new Float32Array(QK5_0);
const L = new Uint8Array(QK5_0);

/** With an importance matrix (ggml quantize_row_q5_0_impl): as Q4_0's, with 5-bit quants. */
export function quantizeQ5_0Weighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  const sigma2 = Math.fround(sumSquares(x, xOff, n) / n);
  for (let b = 0; b < n / QK5_0; b++) {
    const xo = xOff + b * QK5_0;
    const o = dstOff + b * Q5_0_BYTES;
    importanceWeights(x, xo, QK5_0, importance, b * QK5_0, sigma2, weight);
    const d = makeQxQuants(QK5_0, 16, x, xo, L, 0, weight);
    writeU16(dst, o, f32ToF16(d));
    let qh = 0;
    for (let j = 0; j < 16; j++) {
      const q0 = L[j]!, q1 = L[j + 16]!;
      dst[o + 6 + j] = (q0 & 15) | ((q1 & 15) << 4);
      qh |= (((q0 & 0x10) >> 4) << j) | (((q1 & 0x10) >> 4) << (j + 16));
    }
    writeU32(dst, o + 2, qh >>> 0);
  }
}

/** Σ over blocks of d_w * d_a * Σ (q-16)*qa. */
export function vecDotQ5_0Q8_0(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK5_0; b++) {
    const wo = wOff + b * Q5_0_BYTES;
    const ao = aOff + b * Q8_0_BYTES;
    const aq = ab + ao + 2;
    const qh = readU32(w, wo + 2);
    let sumi = 0;
    for (let j = 0; j < 16; j++) {
      const q = w[wo + 6 + j]!;
      const q0 = (q & 15) | (((qh >>> j) & 1) << 4);
      const q1 = (q >> 4) | (((qh >>> (j + 16)) & 1) << 4);
      sumi += (q0 - 16) * a8[aq + j]! + (q1 - 16) * a8[aq + j + 16]!;
    }
    sum += sumi * (readF16(w, wo) * readF16(act, ao));
  }
  return sum;
}

export const Q5_0: TypeTraits = {
  type: GgmlType.Q5_0,
  blockSize: QK5_0,
  typeSize: Q5_0_BYTES,
  vecDotType: GgmlType.Q8_0,
  dequantize: dequantizeQ5_0,
  vecDot: vecDotQ5_0Q8_0,
  quantizeRef: quantizeQ5_0Ref,
  quantizeImatrix: rowsQuantizer(QK5_0, Q5_0_BYTES, quantizeQ5_0Ref, quantizeQ5_0Weighted),
};
