// Q6_K: 256 weights per block (16 groups of 16), 210 bytes:
//   [0..128)    ql      u8[128]  low 4 bits
//   [128..192)  qh      u8[64]   high 2 bits
//   [192..208)  scales  i8[16]   group scales
//   [208..210)  d       f16      super-block scale
//   element e = 128h + 32k + l (k = 0..3, l < 32): low = nibble (k >> 1) of ql[64h + 32(k & 1) + l],
//   high = (qh[32h + l] >> 2k) & 3, q = (low | high << 4) - 32, weight = d * scales[e / 16] * q
// Matches ggml dequantize_row_q6_K and ggml_vec_dot_q6_K_q8_K (generic path). Activation: Q8_K.

import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32 } from "./bytes.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export const Q6_K_BYTES = 210;

const wViews = new ViewCache();
const aViews = new ViewCache();

export function dequantizeQ6_K(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const s8 = wViews.i8(src);
  const base = src.byteOffset;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * Q6_K_BYTES;
    const d = readF16(src, o + 208);
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h;
      const qh = o + 128 + 32 * h;
      const sc = base + o + 192 + 8 * h;
      const y = dstOff + b * QK_K + 128 * h;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = src[qh + l]!;
        const q1 = ((src[ql + l]! & 15) | ((hb & 3) << 4)) - 32;
        const q2 = ((src[ql + l + 32]! & 15) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((src[ql + l]! >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((src[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        dst[y + l] = Math.fround(d * s8[sc + is]!) * q1;
        dst[y + l + 32] = Math.fround(d * s8[sc + is + 2]!) * q2;
        dst[y + l + 64] = Math.fround(d * s8[sc + is + 4]!) * q3;
        dst[y + l + 96] = Math.fround(d * s8[sc + is + 6]!) * q4;
      }
    }
  }
}

/** Σ over blocks of d*d8 * Σ_g scale_g Σ q*q8. */
export function vecDotQ6_KQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const w8 = wViews.i8(w);
  const a8 = aViews.i8(act);
  const wb = w.byteOffset;
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * Q6_K_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let isum = 0;
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h;
      const qh = o + 128 + 32 * h;
      const sc = wb + o + 192 + 8 * h;
      const q8 = ab + ao + Q8_K_QS + 128 * h;
      for (let g = 0; g < 2; g++) {
        // l in [16g, 16g+16): the four groups of 16 that share scale index g (+0, +2, +4, +6)
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let s4 = 0;
        for (let l = 16 * g; l < 16 * g + 16; l++) {
          const hb = w[qh + l]!;
          s1 += (((w[ql + l]! & 15) | ((hb & 3) << 4)) - 32) * a8[q8 + l]!;
          s2 += (((w[ql + l + 32]! & 15) | (((hb >> 2) & 3) << 4)) - 32) * a8[q8 + l + 32]!;
          s3 += (((w[ql + l]! >> 4) | (((hb >> 4) & 3) << 4)) - 32) * a8[q8 + l + 64]!;
          s4 += (((w[ql + l + 32]! >> 4) | (((hb >> 6) & 3) << 4)) - 32) * a8[q8 + l + 96]!;
        }
        isum += w8[sc + g]! * s1 + w8[sc + g + 2]! * s2 + w8[sc + g + 4]! * s3 + w8[sc + g + 6]! * s4;
      }
    }
    sum += readF16(w, o + 208) * readF32(act, ao) * isum;
  }
  return sum;
}

export const Q6_K: TypeTraits = {
  type: GgmlType.Q6_K,
  blockSize: QK_K,
  typeSize: Q6_K_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeQ6_K,
  vecDot: vecDotQ6_KQ8_K,
};
