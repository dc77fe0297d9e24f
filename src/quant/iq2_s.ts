// IQ2_S: 256 weights per block (32 groups of 8, a 4-bit scale per 16 weights), 82 bytes, 2.56 bits per weight:
//   [0..2)    d       f16     super-block scale
//   [2..34)   qs      u8[32]  low 8 bits of the 10-bit grid index of each group of 8
//   [34..66)  signs   u8[32]  the 8 sign bits of each group
//   [66..74)  qh      u8[8]   bits 2l, 2l+1 of qh[s]: bits 8, 9 of the index of group l of sub-block s
//   [74..82)  scales  u8[8]   sub-block s: groups 0, 1 use the low nibble of scales[s], groups 2, 3 the high one
//   weight = d * (0.5 + scale) / 4 * IQ2S_GRID[index][j] * (sign j ? -1 : 1)
// Matches ggml dequantize_row_iq2_s and ggml_vec_dot_iq2_s_q8_K. Activation: Q8_K. Read only: no
// quantizer here (llama-quantize's IQ2_S/IQ2_M mixes are not written by cmx).

import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32 } from "./bytes.js";
import { IQ2S_GRID } from "./iq-grids.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export const IQ2_S_BYTES = 82;

const aViews = new ViewCache();
const f = Math.fround;

/** byte offset in IQ2S_GRID of group g (0..31) of the block at o */
function gridOffset(b: Uint8Array, o: number, g: number): number {
  return 8 * (b[o + 2 + g]! | (((b[o + 66 + (g >> 2)]! >> (2 * (g & 3))) & 3) << 8));
}

/** the 4-bit scale of group g */
function scaleOf(b: Uint8Array, o: number, g: number): number {
  const sc = b[o + 74 + (g >> 2)]!;
  return g & 2 ? sc >> 4 : sc & 15;
}

export function dequantizeIQ2_S(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const grid = IQ2S_GRID;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * IQ2_S_BYTES;
    const d = readF16(src, o);
    let y = dstOff + b * QK_K;
    for (let g = 0; g < 32; g++) {
      const db = f(f(d * (0.5 + scaleOf(src, o, g))) * 0.25);
      const k = gridOffset(src, o, g);
      const signs = src[o + 34 + g]!;
      for (let j = 0; j < 8; j++) {
        const v = f(db * grid[k + j]!);
        dst[y++] = signs & (1 << j) ? -v : v;
      }
    }
  }
}

/** 0.125 · Σ over blocks of d·d8 · Σ_groups (2·scale + 1)·Σ ±grid·q8 */
export function vecDotIQ2_SQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const grid = IQ2S_GRID;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * IQ2_S_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let q8 = ab + ao + Q8_K_QS;
    let isum = 0;
    for (let h = 0; h < 16; h++) {
      // groups 2h, 2h+1 share a scale
      let si = 0;
      for (let g = 2 * h; g < 2 * h + 2; g++) {
        const k = gridOffset(w, o, g);
        const signs = w[o + 34 + g]!;
        for (let j = 0; j < 8; j++) si += (signs & (1 << j) ? -grid[k + j]! : grid[k + j]!) * a8[q8 + j]!;
        q8 += 8;
      }
      isum += (2 * scaleOf(w, o, 2 * h) + 1) * si;
    }
    sum += readF16(w, o) * readF32(act, ao) * isum;
  }
  return 0.125 * sum;
}

export const IQ2_S: TypeTraits = {
  type: GgmlType.IQ2_S,
  blockSize: QK_K,
  typeSize: IQ2_S_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeIQ2_S,
  vecDot: vecDotIQ2_SQ8_K,
};
