// Q2_K: 256 weights per block (16 groups of 16), 84 bytes:
//   [0..16)   scales  u8[16]  group g: low nibble = scale, high nibble = min
//   [16..80)  qs      u8[64]  2-bit quants; element e = 128h + 32j + l lives in qs[32h + l] >> 2j
//   [80..82)  d       f16     super-block scale of the scales
//   [82..84)  dmin    f16     super-block scale of the mins
//   weight = d * (scale_g) * q - dmin * (min_g),  g = e / 16
// Matches ggml dequantize_row_q2_K, quantize_row_q2_K_ref and ggml_vec_dot_q2_K_q8_K (generic path).
// Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, nearestInt, readF16, readF32, readI16, writeU16 } from "./bytes.js";
import { importanceWeights, makeQkx2Quants, makeQkx3Quants, makeQpQuants, sumSquares } from "./quant-search.js";
import { QK_K, Q8_K_BSUMS, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const Q2_K_BYTES = 84;

const aViews = new ViewCache();

export function dequantizeQ2_K(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * Q2_K_BYTES;
    const d = readF16(src, o + 80);
    const min = readF16(src, o + 82);
    let y = dstOff + b * QK_K;
    let is = 0;
    for (let h = 0; h < 2; h++) {
      const q = o + 16 + 32 * h;
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j;
        for (let half = 0; half < 2; half++) {
          const sc = src[o + is++]!;
          const dl = Math.fround(d * (sc & 15));
          const ml = Math.fround(min * (sc >> 4));
          for (let l = 16 * half; l < 16 * half + 16; l++) {
            dst[y++] = Math.fround(dl * ((src[q + l]! >> shift) & 3)) - ml;
          }
        }
      }
    }
  }
}

/** Σ over blocks of d*d8 * Σ_g scale_g Σ q*q8 - dmin*d8 * Σ_g min_g * bsum_g. */
export function vecDotQ2_KQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * Q2_K_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let summs = 0;
    for (let g = 0; g < 16; g++) summs += readI16(act, ao + Q8_K_BSUMS + 2 * g) * (w[o + g]! >> 4);
    let isum = 0;
    let is = 0;
    let q8 = ab + ao + Q8_K_QS;
    for (let h = 0; h < 2; h++) {
      const q = o + 16 + 32 * h;
      for (let j = 0; j < 4; j++) {
        const shift = 2 * j;
        let s0 = 0;
        for (let l = 0; l < 16; l++) s0 += a8[q8 + l]! * ((w[q + l]! >> shift) & 3);
        let s1 = 0;
        for (let l = 16; l < 32; l++) s1 += a8[q8 + l]! * ((w[q + l]! >> shift) & 3);
        isum += (w[o + is]! & 15) * s0 + (w[o + is + 1]! & 15) * s1;
        is += 2;
        q8 += 32;
      }
    }
    const d8 = readF32(act, ao);
    sum += d8 * readF16(w, o + 80) * isum - d8 * readF16(w, o + 82) * summs;
  }
  return sum;
}

const f = Math.fround;
const Lq = new Uint8Array(QK_K);
const weights = new Float32Array(16);
const fit = new Float32Array(2);
const scales = new Float32Array(16);
const mins = new Float32Array(16);

/**
 * ggml quantize_row_q2_K_ref: a make_qkx2_quants fit (weights |x|, mean absolute error) per group
 * of 16, scales and mins quantized to 4 bits against max/15, then the quants redone with the
 * rounded scales (a group whose rounded scale is 0 keeps its first-pass quants).
 */
export function quantizeQ2_KRef(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  const q4scale = 15;
  for (let b = 0; b < n / QK_K; b++) {
    const xo = xOff + b * QK_K;
    const o = dstOff + b * Q2_K_BYTES;
    let maxScale = 0;
    let maxMin = 0;
    for (let g = 0; g < 16; g++) {
      for (let l = 0; l < 16; l++) weights[l] = Math.abs(x[xo + 16 * g + l]!);
      makeQkx2Quants(16, 3, x, xo + 16 * g, weights, Lq, 16 * g, f(-0.5), f(0.1), 15, true, fit);
      scales[g] = fit[0]!;
      mins[g] = fit[1]!;
      if (fit[0]! > maxScale) maxScale = fit[0]!;
      if (fit[1]! > maxMin) maxMin = fit[1]!;
    }
    dst.fill(0, o, o + Q2_K_BYTES);
    if (maxScale > 0) {
      const iscale = f(q4scale / maxScale);
      for (let g = 0; g < 16; g++) dst[o + g] = nearestInt(f(iscale * scales[g]!)) & 0xff;
      writeU16(dst, o + 80, f32ToF16(f(maxScale / q4scale)));
    }
    if (maxMin > 0) {
      const iscale = f(q4scale / maxMin);
      for (let g = 0; g < 16; g++) dst[o + g] |= (nearestInt(f(iscale * mins[g]!)) << 4) & 0xff;
      writeU16(dst, o + 82, f32ToF16(f(maxMin / q4scale)));
    }
    writeQ2Quants(x, xo, dst, o);
  }
}

const weight = new Float32Array(16);
const sw = new Float32Array(16);
const Ls = new Uint8Array(16);
const Lm = new Uint8Array(16);

/**
 * With an importance matrix (ggml quantize_row_q2_K_impl): per group of 16, weights
 * importance * sqrt(sigma2 + x²) (sigma2 = mean x² of the super-block) and a make_qkx3_quants fit;
 * the 16 scales and 16 mins are fitted to 4 bits by make_qp_quants, weighted by each group's total
 * weight; the quants are redone with the rounded scales.
 */
export function quantizeQ2_KWeighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = xOff + b * QK_K;
    const o = dstOff + b * Q2_K_BYTES;
    const sigma2 = f(sumSquares(x, xo, QK_K) / QK_K);
    for (let g = 0; g < 16; g++) {
      importanceWeights(x, xo + 16 * g, 16, importance, QK_K * b + 16 * g, sigma2, weight);
      let s = 0;
      for (let l = 0; l < 16; l++) s = f(s + weight[l]!);
      sw[g] = s;
      makeQkx3Quants(16, 3, x, xo + 16 * g, weight, 0, Lq, 16 * g, f(-0.9), f(0.05), 36, false, fit);
      scales[g] = fit[0]!;
      mins[g] = fit[1]!;
    }
    const dm = makeQpQuants(16, 15, scales, Ls, sw);
    const mm = makeQpQuants(16, 15, mins, Lm, sw);
    writeU16(dst, o + 80, f32ToF16(dm));
    writeU16(dst, o + 82, f32ToF16(mm));
    for (let g = 0; g < 16; g++) dst[o + g] = Ls[g]! | (Lm[g]! << 4);
    writeQ2Quants(x, xo, dst, o);
  }
}

/** The quants of a Q2_K block redone with its rounded scales and mins (already written), then packed. */
function writeQ2Quants(x: Float32Array, xo: number, dst: Uint8Array, o: number): void {
  const d0 = readF16(dst, o + 80);
  const dmin0 = readF16(dst, o + 82);
  for (let g = 0; g < 16; g++) {
    const d = f(d0 * (dst[o + g]! & 15));
    if (!d) continue;
    const dm = f(dmin0 * (dst[o + g]! >> 4));
    for (let i = 0; i < 16; i++) {
      const l = nearestInt(f(f(x[xo + 16 * g + i]! + dm) / d));
      Lq[16 * g + i] = Math.max(0, Math.min(3, l));
    }
  }
  for (let h = 0; h < 2; h++) {
    const L = 128 * h;
    for (let l = 0; l < 32; l++) {
      dst[o + 16 + 32 * h + l] = Lq[L + l]! | (Lq[L + l + 32]! << 2) | (Lq[L + l + 64]! << 4) | (Lq[L + l + 96]! << 6);
    }
  }
}

export const Q2_K: TypeTraits = {
  type: GgmlType.Q2_K,
  blockSize: QK_K,
  typeSize: Q2_K_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeQ2_K,
  vecDot: vecDotQ2_KQ8_K,
  quantizeRef: quantizeQ2_KRef,
  quantizeImatrix: rowsQuantizer(QK_K, Q2_K_BYTES, quantizeQ2_KRef, quantizeQ2_KWeighted),
};
