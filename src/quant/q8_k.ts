// Q8_K: 256 values per block, 292 bytes (activation-only type, for the K-quant weights):
//   [0..4)     d      f32 scale
//   [4..260)   qs     int8[256]     value[i] = d * qs[i]
//   [260..292) bsums  int16[16]     Σ qs over each group of 16 (the K-quants' min term uses them)
// Matches ggml quantize_row_q8_K_ref (which ggml-cpu uses as from_float on x86) and dequantize_row_q8_K.

import { GgmlType } from "./format.js";
import { ViewCache, nearestInt, readF32, writeF32 } from "./bytes.js";
import type { TypeTraits } from "./traits.js";

export const QK_K = 256;
export const Q8_K_BYTES = 292;
/** byte offsets inside a block */
export const Q8_K_QS = 4;
export const Q8_K_BSUMS = 260;

const views = new ViewCache();

export function dequantizeQ8_K(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const s8 = views.i8(src);
  const base = src.byteOffset;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * Q8_K_BYTES;
    const d = readF32(src, o);
    const q = base + o + Q8_K_QS;
    const y = dstOff + b * QK_K;
    for (let j = 0; j < QK_K; j++) dst[y + j] = s8[q + j]! * d;
  }
}

/**
 * iscale = -127/max where max is the signed value of largest magnitude, q = min(127, nearest_int(iscale*x)),
 * d = 1/iscale. An all-zero block gets d = 0, qs = 0 (and bsums = 0; ggml leaves them unwritten).
 */
export function quantizeQ8_KAct(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = xOff + b * QK_K;
    const o = dstOff + b * Q8_K_BYTES;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK_K; j++) {
      const v = x[xo + j]!;
      const ax = Math.abs(v);
      if (ax > amax) {
        amax = ax;
        max = v;
      }
    }
    if (amax === 0) {
      dst.fill(0, o, o + Q8_K_BYTES);
      continue;
    }
    const iscale = Math.fround(-127 / max);
    for (let g = 0; g < QK_K / 16; g++) {
      let sum = 0;
      for (let j = g * 16; j < g * 16 + 16; j++) {
        const q = Math.min(127, nearestInt(iscale * x[xo + j]!));
        sum += q;
        dst[o + Q8_K_QS + j] = q & 0xff;
      }
      dst[o + Q8_K_BSUMS + 2 * g] = sum & 0xff;
      dst[o + Q8_K_BSUMS + 2 * g + 1] = (sum >> 8) & 0xff;
    }
    writeF32(dst, o, 1 / iscale);
  }
}

export const Q8_K: TypeTraits = {
  type: GgmlType.Q8_K,
  blockSize: QK_K,
  typeSize: Q8_K_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeQ8_K,
  fromFloat: quantizeQ8_KAct,
};
