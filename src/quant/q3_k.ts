// Q3_K: 256 weights per block (16 groups of 16), 110 bytes:
//   [0..32)    hmask   u8[32]  high bit; element e = 128h + 32j + l uses bit (4h + j) of hmask[l]
//   [32..96)   qs      u8[64]  low 2 bits; element e lives in qs[32h + l] >> 2j
//   [96..108)  scales  u8[12]  16 x 6-bit scales (see unpackQ3Scales), stored biased by 32
//   [108..110) d       f16     super-block scale
//   weight = d * (scale_g - 32) * (q2 - (high bit ? 0 : 4)),  g = e / 16
// Matches ggml dequantize_row_q3_K, quantize_row_q3_K_ref and ggml_vec_dot_q3_K_q8_K (generic path).
// Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, nearestInt, readF16, readF32, writeU16 } from "./bytes.js";
import { importanceWeights, makeQ3Quants, makeQxQuants, sumSquares } from "./quant-search.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const Q3_K_BYTES = 110;

const aViews = new ViewCache();
const scales = new Int32Array(16);

/**
 * 12 bytes -> 16 signed scales (already minus 32). Scale k: low 4 bits are the low nibble of byte k
 * (k < 8) or the high nibble of byte k-8; high 2 bits are bits 2*(k/4).. of byte 8 + k%4.
 */
export function unpackQ3Scales(b: Uint8Array, o: number, out: Int32Array): void {
  for (let k = 0; k < 16; k++) {
    const low = k < 8 ? b[o + k]! & 15 : b[o + k - 8]! >> 4;
    const high = (b[o + 8 + (k & 3)]! >> (2 * (k >> 2))) & 3;
    out[k] = (low | (high << 4)) - 32;
  }
}

export function dequantizeQ3_K(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * Q3_K_BYTES;
    const d = readF16(src, o + 108);
    unpackQ3Scales(src, o + 96, scales);
    let y = dstOff + b * QK_K;
    let is = 0;
    for (let h = 0; h < 2; h++) {
      const q = o + 32 + 32 * h;
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j;
        const m = 1 << (4 * h + j);
        for (let half = 0; half < 2; half++) {
          const dl = Math.fround(d * scales[is++]!);
          for (let l = 16 * half; l < 16 * half + 16; l++) {
            const v = ((src[q + l]! >> shift) & 3) - (src[o + l]! & m ? 0 : 4);
            dst[y++] = dl * v;
          }
        }
      }
    }
  }
}

/** Σ over blocks of d*d8 * Σ_g (scale_g - 32) * Σ q*q8. */
export function vecDotQ3_KQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * Q3_K_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    unpackQ3Scales(w, o + 96, scales);
    let isum = 0;
    let is = 0;
    let q8 = ab + ao + Q8_K_QS;
    for (let h = 0; h < 2; h++) {
      const q = o + 32 + 32 * h;
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j;
        const m = 1 << (4 * h + j);
        let s0 = 0;
        for (let l = 0; l < 16; l++) s0 += a8[q8 + l]! * (((w[q + l]! >> shift) & 3) - (w[o + l]! & m ? 0 : 4));
        let s1 = 0;
        for (let l = 16; l < 32; l++) s1 += a8[q8 + l]! * (((w[q + l]! >> shift) & 3) - (w[o + l]! & m ? 0 : 4));
        isum += scales[is]! * s0 + scales[is + 1]! * s1;
        is += 2;
        q8 += 32;
      }
    }
    sum += readF16(w, o + 108) * readF32(act, ao) * isum;
  }
  return sum;
}

const f = Math.fround;
const Lq = new Uint8Array(QK_K);
const groupScales = new Float32Array(16);

/**
 * ggml quantize_row_q3_K_ref: a make_q3_quants fit per group of 16, the 16 scales quantized to
 * 6 bits against d = max_scale/-32, then the quants redone with the rounded scales (a group whose
 * rounded scale is 0 keeps its first-pass quants).
 */
export function quantizeQ3_KRef(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = xOff + b * QK_K;
    const o = dstOff + b * Q3_K_BYTES;
    let maxScale = 0;
    let amax = 0;
    for (let g = 0; g < 16; g++) {
      const s = makeQ3Quants(16, 4, x, xo + 16 * g, Lq, 16 * g);
      groupScales[g] = s;
      if (Math.abs(s) > amax) {
        amax = Math.abs(s);
        maxScale = s;
      }
    }
    dst.fill(0, o, o + Q3_K_BYTES);
    const sc = o + 96;
    if (maxScale) {
      const iscale = f(-32 / maxScale);
      for (let g = 0; g < 16; g++) {
        const l8 = (nearestInt(f(iscale * groupScales[g]!)) << 24) >> 24; // C int8_t
        const l = Math.max(-32, Math.min(31, l8)) + 32;
        if (g < 8) dst[sc + g] = l & 15;
        else dst[sc + g - 8] |= (l & 15) << 4;
        dst[sc + 8 + (g & 3)] |= (l >> 4) << (2 * (g >> 2));
      }
      writeU16(dst, o + 108, f32ToF16(f(1 / iscale)));
    }
    writeQ3Quants(x, xo, dst, o);
  }
}

const weight = new Float32Array(16);
const groupWeights = new Float32Array(16);
const Ls = new Uint8Array(16);

/**
 * With an importance matrix (ggml quantize_row_q3_K_impl): per group of 16, weights
 * importance * sqrt(sigma2 + x²) (sigma2 = 2 * mean x² of the super-block) and a weighted
 * make_qx_quants fit; the 16 scales are fitted to 6 bits by make_qx_quants weighted by each
 * group's total weight, then the quants are redone with the rounded scales.
 */
export function quantizeQ3_KWeighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = xOff + b * QK_K;
    const o = dstOff + b * Q3_K_BYTES;
    const sigma2 = f(f(2 * sumSquares(x, xo, QK_K)) / QK_K);
    for (let g = 0; g < 16; g++) {
      importanceWeights(x, xo + 16 * g, 16, importance, QK_K * b + 16 * g, sigma2, weight);
      let sumw = 0;
      for (let l = 0; l < 16; l++) sumw = f(sumw + weight[l]!);
      groupWeights[g] = sumw;
      groupScales[g] = makeQxQuants(16, 4, x, xo + 16 * g, Lq, 16 * g, weight);
    }
    dst.fill(0, o, o + Q3_K_BYTES);
    const sc = o + 96;
    const dBlock = makeQxQuants(16, 32, groupScales, 0, Ls, 0, groupWeights);
    for (let g = 0; g < 16; g++) {
      const l = Ls[g]!;
      if (g < 8) dst[sc + g] = l & 15;
      else dst[sc + g - 8] |= (l & 15) << 4;
      dst[sc + 8 + (g & 3)] |= (l >> 4) << (2 * (g >> 2));
    }
    writeU16(dst, o + 108, f32ToF16(dBlock));
    writeQ3Quants(x, xo, dst, o);
  }
}

/** The quants of a Q3_K block redone with its rounded scales (d and scales already written), then packed. */
function writeQ3Quants(x: Float32Array, xo: number, dst: Uint8Array, o: number): void {
  const sc = o + 96;
  unpackQ3Scales(dst, sc, scales);
  const d0 = readF16(dst, o + 108);
  for (let g = 0; g < 16; g++) {
    const d = f(d0 * scales[g]!);
    if (!d) continue;
    for (let i = 0; i < 16; i++) {
      const l = nearestInt(f(x[xo + 16 * g + i]! / d));
      Lq[16 * g + i] = Math.max(-4, Math.min(3, l)) + 4;
    }
  }
  // high bit of element e goes to bit e/32 of hmask[e % 32]
  for (let e = 0; e < QK_K; e++) {
    if (Lq[e]! > 3) {
      dst[o + (e & 31)] |= 1 << (e >> 5);
      Lq[e] -= 4;
    }
  }
  for (let h = 0; h < 2; h++) {
    const L = 128 * h;
    for (let l = 0; l < 32; l++) {
      dst[o + 32 + 32 * h + l] = Lq[L + l]! | (Lq[L + l + 32]! << 2) | (Lq[L + l + 64]! << 4) | (Lq[L + l + 96]! << 6);
    }
  }
}

export const Q3_K: TypeTraits = {
  type: GgmlType.Q3_K,
  blockSize: QK_K,
  typeSize: Q3_K_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeQ3_K,
  vecDot: vecDotQ3_KQ8_K,
  quantizeRef: quantizeQ3_KRef,
  quantizeImatrix: rowsQuantizer(QK_K, Q3_K_BYTES, quantizeQ3_KRef, quantizeQ3_KWeighted),
};
