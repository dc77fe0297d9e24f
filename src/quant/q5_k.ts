// Q5_K: 256 weights per block (8 sub-blocks of 32), 176 bytes:
//   [0..2)     d       f16     super-block scale of the scales
//   [2..4)     dmin    f16     super-block scale of the mins
//   [4..16)    scales  u8[12]  8 x 6-bit scale + 8 x 6-bit min (packed as Q4_K)
//   [16..48)   qh      u8[32]  5th bit; element e = 64j + 32k + l uses bit (2j + k) of qh[l]
//   [48..176)  qs      u8[128] low 4 bits; element e is nibble k (0 = low) of qs[32j + l]
//   weight = d * scale_s * q - dmin * min_s,  s = e / 32, q in 0..31
// Matches ggml dequantize_row_q5_K, quantize_row_q5_K_ref and ggml_vec_dot_q5_K_q8_K (generic path).
// Activation: Q8_K.

import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32, readI16 } from "./bytes.js";
import { quantizeK4Scales, quantizeK4ScalesWeighted, unpackK4Scales } from "./q4_k.js";
import { QK_K, Q8_K_BSUMS, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const Q5_K_BYTES = 176;

const aViews = new ViewCache();
const sm = new Int32Array(16);

export function dequantizeQ5_K(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * Q5_K_BYTES;
    const d = readF16(src, o);
    const min = readF16(src, o + 2);
    unpackK4Scales(src, o + 4, sm);
    const qh = o + 16;
    let y = dstOff + b * QK_K;
    for (let j = 0; j < 4; j++) {
      const q = o + 48 + 32 * j;
      const u1 = 1 << (2 * j);
      const u2 = 2 << (2 * j);
      const d1 = Math.fround(d * sm[4 * j]!);
      const m1 = Math.fround(min * sm[4 * j + 1]!);
      const d2 = Math.fround(d * sm[4 * j + 2]!);
      const m2 = Math.fround(min * sm[4 * j + 3]!);
      for (let l = 0; l < 32; l++) dst[y++] = Math.fround(d1 * ((src[q + l]! & 15) + (src[qh + l]! & u1 ? 16 : 0))) - m1;
      for (let l = 0; l < 32; l++) dst[y++] = Math.fround(d2 * ((src[q + l]! >> 4) + (src[qh + l]! & u2 ? 16 : 0))) - m2;
    }
  }
}

/** Σ over blocks of d*d8 * Σ_s scale_s Σ q*q8 - dmin*d8 * Σ_g min_(g/2) * bsum_g. */
export function vecDotQ5_KQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * Q5_K_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    unpackK4Scales(w, o + 4, sm);
    let msum = 0;
    for (let g = 0; g < 16; g++) msum += readI16(act, ao + Q8_K_BSUMS + 2 * g) * sm[2 * (g >> 1) + 1]!;
    const qh = o + 16;
    let isum = 0;
    let q8 = ab + ao + Q8_K_QS;
    for (let j = 0; j < 4; j++) {
      const q = o + 48 + 32 * j;
      const u1 = 1 << (2 * j);
      const u2 = 2 << (2 * j);
      let s0 = 0;
      let s1 = 0;
      for (let l = 0; l < 32; l++) {
        const v = w[q + l]!;
        const h = w[qh + l]!;
        s0 += ((v & 15) + (h & u1 ? 16 : 0)) * a8[q8 + l]!;
        s1 += ((v >> 4) + (h & u2 ? 16 : 0)) * a8[q8 + 32 + l]!;
      }
      isum += sm[4 * j]! * s0 + sm[4 * j + 2]! * s1;
      q8 += 64;
    }
    const d8 = readF32(act, ao);
    sum += readF16(w, o) * d8 * isum - readF16(w, o + 2) * d8 * msum;
  }
  return sum;
}

const Lq = new Uint8Array(QK_K);

/** ggml quantize_row_q5_K_ref (what llama-quantize writes for Q5_K without an imatrix). */
export function quantizeQ5_KRef(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    quantizeK4Scales(x, xOff + b * QK_K, 31, Math.fround(-0.5), 15, dst, dstOff + b * Q5_K_BYTES, Lq);
    packQ5_K(dst, dstOff + b * Q5_K_BYTES);
  }
}

/** With an importance matrix (ggml quantize_row_q5_K_impl); see quantizeK4ScalesWeighted. */
export function quantizeQ5_KWeighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  for (let b = 0; b < n / QK_K; b++) {
    quantizeK4ScalesWeighted(x, xOff + b * QK_K, 31, importance, b * QK_K, true, dst, dstOff + b * Q5_K_BYTES, Lq);
    packQ5_K(dst, dstOff + b * Q5_K_BYTES);
  }
}

/** The 5-bit quants Lq[0..256) into the block at o: low nibbles in qs, fifth bits in qh. */
function packQ5_K(dst: Uint8Array, o: number): void {
  dst.fill(0, o + 16, o + 48);
  for (let j = 0; j < 4; j++) {
    const u1 = 1 << (2 * j);
    const u2 = 2 << (2 * j);
    for (let l = 0; l < 32; l++) {
      let l1 = Lq[64 * j + l]!;
      let l2 = Lq[64 * j + 32 + l]!;
      if (l1 > 15) {
        l1 -= 16;
        dst[o + 16 + l] |= u1;
      }
      if (l2 > 15) {
        l2 -= 16;
        dst[o + 16 + l] |= u2;
      }
      dst[o + 48 + 32 * j + l] = l1 | (l2 << 4);
    }
  }
}

export const Q5_K: TypeTraits = {
  type: GgmlType.Q5_K,
  blockSize: QK_K,
  typeSize: Q5_K_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeQ5_K,
  vecDot: vecDotQ5_KQ8_K,
  quantizeRef: quantizeQ5_KRef,
  quantizeImatrix: rowsQuantizer(QK_K, Q5_K_BYTES, quantizeQ5_KRef, quantizeQ5_KWeighted),
};
