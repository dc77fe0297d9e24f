// IQ1_S: 256 weights per block (8 sub-blocks of 32 = 4 groups of 8), 50 bytes, 1.56 bits per weight:
//   [0..2)    d    f16      super-block scale
//   [2..34)   qs   u8[32]   low 8 bits of the 11-bit grid index of each group of 8
//   [34..50)  qh   u16[8]   sub-block s: bits 3g..3g+2 = bits 8..10 of group g's index, bits 12..14 a
//                           3-bit scale, bit 15 the sign of the shift
//   weight = d * (2·scale + 1) * (IQ1S_GRID[index][j] + (bit 15 ? -IQ1S_DELTA : IQ1S_DELTA)),  grid values -1, 0, 1
// Matches ggml dequantize_row_iq1_s and ggml_vec_dot_iq1_s_q8_K. Activation: Q8_K. Read only: no
// quantizer here (llama-quantize's IQ1_S is not written by cmx).

import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32 } from "./bytes.js";
import { IQ1S_DELTA, IQ1S_GRID } from "./iq-grids.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export const IQ1_S_BYTES = 50;

const aViews = new ViewCache();
const f = Math.fround;

export function dequantizeIQ1_S(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const grid = IQ1S_GRID;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * IQ1_S_BYTES;
    const d = readF16(src, o);
    let y = dstOff + b * QK_K;
    for (let s = 0; s < 8; s++) {
      const qh = src[o + 34 + 2 * s]! | (src[o + 35 + 2 * s]! << 8);
      const dl = f(d * (2 * ((qh >> 12) & 7) + 1));
      const delta = qh & 0x8000 ? -IQ1S_DELTA : IQ1S_DELTA;
      for (let g = 0; g < 4; g++) {
        const k = 8 * (src[o + 2 + 4 * s + g]! | (((qh >> (3 * g)) & 7) << 8));
        for (let j = 0; j < 8; j++) dst[y++] = dl * (grid[k + j]! + delta);
      }
    }
  }
}

/**
 * 0.125 · Σ over blocks of d·d8 · Σ_s (2·scale_s + 1)·Σ (8·grid ± 1)·q8: ggml's
 * Σ ls·Σ grid·q8 + IQ1S_DELTA·Σ ls·(±1)·bsums, as one exact integer (times 8).
 */
export function vecDotIQ1_SQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const grid = IQ1S_GRID;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * IQ1_S_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let q8 = ab + ao + Q8_K_QS;
    let isum = 0;
    for (let s = 0; s < 8; s++) {
      const qh = w[o + 34 + 2 * s]! | (w[o + 35 + 2 * s]! << 8);
      const delta = qh & 0x8000 ? -1 : 1;
      let si = 0;
      for (let g = 0; g < 4; g++) {
        const k = 8 * (w[o + 2 + 4 * s + g]! | (((qh >> (3 * g)) & 7) << 8));
        for (let j = 0; j < 8; j++) si += (8 * grid[k + j]! + delta) * a8[q8 + j]!;
        q8 += 8;
      }
      isum += (2 * ((qh >> 12) & 7) + 1) * si;
    }
    sum += readF16(w, o) * readF32(act, ao) * isum;
  }
  return 0.125 * sum;
}

export const IQ1_S: TypeTraits = {
  type: GgmlType.IQ1_S,
  blockSize: QK_K,
  typeSize: IQ1_S_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeIQ1_S,
  vecDot: vecDotIQ1_SQ8_K,
};
