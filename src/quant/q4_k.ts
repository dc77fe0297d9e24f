// Q4_K: 256 weights per block (8 sub-blocks of 32), 144 bytes:
//   [0..2)    d       f16     super-block scale of the scales
//   [2..4)    dmin    f16     super-block scale of the mins
//   [4..16)   scales  u8[12]  8 x 6-bit scale + 8 x 6-bit min (see scaleMinK4)
//   [16..144) qs      u8[128] element e = 64j + 32k + l is nibble k (0 = low) of qs[32j + l]
//   weight = d * scale_s * q - dmin * min_s,  s = e / 32
// Matches ggml dequantize_row_q4_K, quantize_row_q4_K_ref and ggml_vec_dot_q4_K_q8_K (generic path).
// Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, nearestInt, readF16, readF32, readI16, writeU16 } from "./bytes.js";
import { importanceWeights, makeQkx2Quants, makeQkx3Quants, makeQpQuants, sumSquares } from "./quant-search.js";
import { QK_K, Q8_K_BSUMS, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import { rowsQuantizer, type TypeTraits } from "./traits.js";

export const Q4_K_BYTES = 144;

/**
 * ggml get_scale_min_k4: sub-block j (0..7) of the 12-byte scales at b[o..]. Writes scale to out[0],
 * min to out[1]. j < 4: low 6 bits of bytes j and j+4; j >= 4: a nibble of byte j+4 plus the top
 * 2 bits of bytes j-4 (scale) and j (min).
 */
export function scaleMinK4(j: number, b: Uint8Array, o: number, out: Int32Array, at: number): void {
  if (j < 4) {
    out[at] = b[o + j]! & 63;
    out[at + 1] = b[o + j + 4]! & 63;
  } else {
    out[at] = (b[o + j + 4]! & 0xf) | ((b[o + j - 4]! >> 6) << 4);
    out[at + 1] = (b[o + j + 4]! >> 4) | ((b[o + j]! >> 6) << 4);
  }
}

/** out[2s] = scale, out[2s+1] = min for the 8 sub-blocks. */
export function unpackK4Scales(b: Uint8Array, o: number, out: Int32Array): void {
  for (let s = 0; s < 8; s++) scaleMinK4(s, b, o, out, 2 * s);
}

const aViews = new ViewCache();
const sm = new Int32Array(16);

export function dequantizeQ4_K(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * Q4_K_BYTES;
    const d = readF16(src, o);
    const min = readF16(src, o + 2);
    unpackK4Scales(src, o + 4, sm);
    let y = dstOff + b * QK_K;
    for (let j = 0; j < 4; j++) {
      const q = o + 16 + 32 * j;
      const d1 = Math.fround(d * sm[4 * j]!);
      const m1 = Math.fround(min * sm[4 * j + 1]!);
      const d2 = Math.fround(d * sm[4 * j + 2]!);
      const m2 = Math.fround(min * sm[4 * j + 3]!);
      for (let l = 0; l < 32; l++) dst[y++] = Math.fround(d1 * (src[q + l]! & 15)) - m1;
      for (let l = 0; l < 32; l++) dst[y++] = Math.fround(d2 * (src[q + l]! >> 4)) - m2;
    }
  }
}

/** Σ over blocks of d*d8 * Σ_s scale_s Σ q*q8 - dmin*d8 * Σ_g min_(g/2) * bsum_g. */
export function vecDotQ4_KQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * Q4_K_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    unpackK4Scales(w, o + 4, sm);
    let msum = 0;
    for (let g = 0; g < 16; g++) msum += readI16(act, ao + Q8_K_BSUMS + 2 * g) * sm[2 * (g >> 1) + 1]!;
    let isum = 0;
    let q8 = ab + ao + Q8_K_QS;
    for (let j = 0; j < 4; j++) {
      const q = o + 16 + 32 * j;
      let s0 = 0;
      let s1 = 0;
      for (let l = 0; l < 32; l++) {
        const v = w[q + l]!;
        s0 += (v & 15) * a8[q8 + l]!;
        s1 += (v >> 4) * a8[q8 + 32 + l]!;
      }
      isum += sm[4 * j]! * s0 + sm[4 * j + 2]! * s1;
      q8 += 64;
    }
    const d8 = readF32(act, ao);
    sum += readF16(w, o) * d8 * isum - readF16(w, o + 2) * d8 * msum;
  }
  return sum;
}

const f = Math.fround;

/**
 * Shared by Q4_K and Q5_K (ggml quantize_row_q4_K_ref / q5_K_ref): per sub-block of 32, weights
 * av|x| + |x| and a make_qkx2_quants fit; the 8 scales and 8 mins are then quantized to 6 bits
 * against d = max_scale/63 and dmin = max_min/63, and the quants redone with the rounded scales.
 * Writes d, dmin and the 12 scale bytes at block offset o, the quants (0..nmax) to L[0..256).
 */
export function quantizeK4Scales(
  x: Float32Array, xo: number, nmax: number, rmin: number, nstep: number, dst: Uint8Array, o: number, L: Uint8Array,
): void {
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < 8; j++) {
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) {
      const v = x[xo + 32 * j + l]!;
      sumX2 = f(sumX2 + f(v * v));
    }
    const avX = f(Math.sqrt(f(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = f(avX + Math.abs(x[xo + 32 * j + l]!));
    makeQkx2Quants(32, nmax, x, xo + 32 * j, weights, L, 32 * j, rmin, f(0.1), nstep, false, fit);
    scales[j] = fit[0]!;
    mins[j] = fit[1]!;
    if (fit[0]! > maxScale) maxScale = fit[0]!;
    if (fit[1]! > maxMin) maxMin = fit[1]!;
  }
  const invScale = maxScale > 0 ? f(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? f(63 / maxMin) : 0;
  for (let j = 0; j < 8; j++) {
    Ls[j] = Math.min(63, nearestInt(f(invScale * scales[j]!)) & 0xff);
    Lm[j] = Math.min(63, nearestInt(f(invMin * mins[j]!)) & 0xff);
  }
  writeK4Block(x, xo, nmax, Ls, Lm, f(maxScale / 63), f(maxMin / 63), dst, o, L);
}

const sw = new Float32Array(8);
const Ls = new Uint8Array(8);
const Lm = new Uint8Array(8);

/**
 * The importance-matrix variant for Q4_K and Q5_K (ggml quantize_row_q4_K_impl / q5_K_impl): per
 * sub-block of 32, weights importance * sqrt(sigma2 + x²) (sigma2 = 2 * mean x² of the super-block)
 * and a make_qkx3_quants fit; the 8 scales and 8 mins are fitted to 6 bits by make_qp_quants,
 * weighted by each sub-block's total weight; the quants are redone with the rounded scales.
 * Q5_K clamps the 6-bit values to 63, Q4_K does not (as in ggml).
 */
export function quantizeK4ScalesWeighted(
  x: Float32Array, xo: number, nmax: number, importance: Float32Array, io: number, clamp63: boolean, dst: Uint8Array, o: number, L: Uint8Array,
): void {
  const sigma2 = f(f(2 * sumSquares(x, xo, QK_K)) / QK_K);
  for (let j = 0; j < 8; j++) {
    importanceWeights(x, xo + 32 * j, 32, importance, io + 32 * j, sigma2, weights);
    let sumw = 0;
    for (let l = 0; l < 32; l++) sumw = f(sumw + weights[l]!);
    sw[j] = sumw;
    makeQkx3Quants(32, nmax, x, xo + 32 * j, weights, 0, L, 32 * j, f(-0.9), f(0.05), 36, false, fit);
    scales[j] = fit[0]!;
    mins[j] = fit[1]!;
  }
  const dBlock = makeQpQuants(8, 63, scales, Ls, sw);
  const mBlock = makeQpQuants(8, 63, mins, Lm, sw);
  if (clamp63) {
    for (let j = 0; j < 8; j++) {
      Ls[j] = Math.min(63, Ls[j]!);
      Lm[j] = Math.min(63, Lm[j]!);
    }
  }
  writeK4Block(x, xo, nmax, Ls, Lm, dBlock, mBlock, dst, o, L);
}

/**
 * Packs 8 six-bit scales and mins (bytes as C's uint8_t: values over 63 keep their extra bits where
 * ggml's packing leaves them), writes d and dmin as f16, and redoes the quants (0..nmax) of the
 * block with the rounded scales into L[0..256).
 */
function writeK4Block(
  x: Float32Array, xo: number, nmax: number, Ls: Uint8Array, Lm: Uint8Array, d: number, dmin: number, dst: Uint8Array, o: number, L: Uint8Array,
): void {
  const sc = o + 4;
  dst.fill(0, sc, sc + 12);
  for (let j = 0; j < 8; j++) {
    const ls = Ls[j]!;
    const lm = Lm[j]!;
    if (j < 4) {
      dst[sc + j] = ls;
      dst[sc + j + 4] = lm;
    } else {
      dst[sc + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
      dst[sc + j - 4] |= (ls >> 4) << 6;
      dst[sc + j] |= (lm >> 4) << 6;
    }
  }
  writeU16(dst, o, f32ToF16(d));
  writeU16(dst, o + 2, f32ToF16(dmin));
  const d0 = readF16(dst, o);
  const dmin0 = readF16(dst, o + 2);
  unpackK4Scales(dst, sc, sm);
  for (let j = 0; j < 8; j++) {
    const d = f(d0 * sm[2 * j]!);
    if (!d) continue;
    const dm = f(dmin0 * sm[2 * j + 1]!);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(f(f(x[xo + 32 * j + ii]! + dm) / d));
      L[32 * j + ii] = Math.max(0, Math.min(nmax, l));
    }
  }
}

const weights = new Float32Array(32);
const fit = new Float32Array(2);
const scales = new Float32Array(8);
const mins = new Float32Array(8);
const Lq = new Uint8Array(QK_K);

/** With an importance matrix (ggml quantize_row_q4_K_impl); see quantizeK4ScalesWeighted. */
export function quantizeQ4_KWeighted(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array): void {
  for (let b = 0; b < n / QK_K; b++) {
    const o = dstOff + b * Q4_K_BYTES;
    quantizeK4ScalesWeighted(x, xOff + b * QK_K, 15, importance, b * QK_K, false, dst, o, Lq);
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) dst[o + 16 + 32 * j + l] = Lq[64 * j + l]! | (Lq[64 * j + 32 + l]! << 4);
    }
  }
}

/** ggml quantize_row_q4_K_ref (what llama-quantize writes for Q4_K without an imatrix). */
export function quantizeQ4_KRef(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK_K; b++) {
    const xo = xOff + b * QK_K;
    const o = dstOff + b * Q4_K_BYTES;
    quantizeK4Scales(x, xo, 15, -1, 20, dst, o, Lq);
    for (let j = 0; j < 4; j++) {
      for (let l = 0; l < 32; l++) dst[o + 16 + 32 * j + l] = Lq[64 * j + l]! | (Lq[64 * j + 32 + l]! << 4);
    }
  }
}

export const Q4_K: TypeTraits = {
  type: GgmlType.Q4_K,
  blockSize: QK_K,
  typeSize: Q4_K_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeQ4_K,
  vecDot: vecDotQ4_KQ8_K,
  quantizeRef: quantizeQ4_KRef,
  quantizeImatrix: rowsQuantizer(QK_K, Q4_K_BYTES, quantizeQ4_KRef, quantizeQ4_KWeighted),
};
