// Q6_K: 256 weights per block (16 groups of 16), 210 bytes:
//   [0..128)    ql      u8[128]  low 4 bits
//   [128..192)  qh      u8[64]   high 2 bits
//   [192..208)  scales  i8[16]   group scales
//   [208..210)  d       f16      super-block scale
//   element e = 128h + 32k + l (k = 0..3, l < 32): low = nibble (k >> 1) of ql[64h + 32(k & 1) + l],
//   high = (qh[32h + l] >> 2k) & 3, q = (low | high << 4) - 32, weight = d * scales[e / 16] * q
// Matches ggml dequantize_row_q6_K, quantize_row_q6_K_ref and ggml_vec_dot_q6_K_q8_K (generic path).
// Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, nearestInt, readF16, readF32, writeU16 } from "./bytes.js";
import { GROUP_MAX_EPS, makeQxQuants } from "./quant-search.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

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

const f = Math.fround;
const Lq = new Uint8Array(QK_K);
const scales = new Float32Array(16);

/**
 * ggml quantize_row_q6_K_ref: a make_qx_quants fit per group of 16, the 16 scales quantized to
 * int8 against d = max_scale/-128, then the quants redone with the rounded scales (a group whose
 * rounded scale is 0 keeps its first-pass quants).
 */
export function quantizeQ6_KRef(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  quantizeQ6_K(x, xOff, n, dst, dstOff);
}

/**
 * With an importance matrix (ggml quantize_row_q6_K_impl): the same, the group fits weighted by the
 * importance itself instead of x².
 */
export function quantizeQ6_KWeighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  quantizeQ6_K(x, xOff, n, dst, dstOff, importance);
}

function quantizeQ6_K(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance?: Float32Array): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = xOff + b * QK_K;
    const o = dstOff + b * Q6_K_BYTES;
    let maxScale = 0;
    let maxAbsScale = 0;
    for (let g = 0; g < 16; g++) {
      const scale = makeQxQuants(16, 32, x, xo + 16 * g, Lq, 16 * g, importance, QK_K * b + 16 * g);
      scales[g] = scale;
      if (Math.abs(scale) > maxAbsScale) {
        maxAbsScale = Math.abs(scale);
        maxScale = scale;
      }
    }
    dst.fill(0, o, o + Q6_K_BYTES);
    if (maxAbsScale < GROUP_MAX_EPS) continue; // all zero, d = +0
    const iscale = f(-128 / maxScale);
    writeU16(dst, o + 208, f32ToF16(f(1 / iscale)));
    for (let g = 0; g < 16; g++) dst[o + 192 + g] = Math.min(127, nearestInt(f(iscale * scales[g]!))) & 0xff;
    const d0 = readF16(dst, o + 208);
    for (let g = 0; g < 16; g++) {
      const d = f(d0 * ((dst[o + 192 + g]! << 24) >> 24));
      if (!d) continue;
      for (let i = 0; i < 16; i++) {
        const l = nearestInt(f(x[xo + 16 * g + i]! / d));
        Lq[16 * g + i] = Math.max(-32, Math.min(31, l)) + 32;
      }
    }
    for (let h = 0; h < 2; h++) {
      const L = 128 * h;
      for (let l = 0; l < 32; l++) {
        const q1 = Lq[L + l]!;
        const q2 = Lq[L + l + 32]!;
        const q3 = Lq[L + l + 64]!;
        const q4 = Lq[L + l + 96]!;
        dst[o + 64 * h + l] = (q1 & 15) | ((q3 & 15) << 4);
        dst[o + 64 * h + l + 32] = (q2 & 15) | ((q4 & 15) << 4);
        dst[o + 128 + 32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
}

export const Q6_K: TypeTraits = {
  type: GgmlType.Q6_K,
  blockSize: QK_K,
  typeSize: Q6_K_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeQ6_K,
  vecDot: vecDotQ6_KQ8_K,
  quantizeRef: quantizeQ6_KRef,
  quantizeImatrix: rowsQuantizer(QK_K, Q6_K_BYTES, quantizeQ6_KRef, quantizeQ6_KWeighted),
};
