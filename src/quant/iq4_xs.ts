// IQ4_XS: 256 weights per block (8 sub-blocks of 32), 136 bytes; the IQ4_NL values with a 6-bit
// scale per sub-block:
//   [0..2)    d         f16     super-block scale
//   [2..4)    scales_h  u16     high 2 bits of the 8 sub-block scales (bits 2s, 2s+1)
//   [4..8)    scales_l  u8[4]   low 4 bits (sub-block s: nibble s%2 of byte s/2)
//   [8..136)  qs        u8[128] sub-block s: bytes 16s..16s+15; element j is the low nibble of byte j, j+16 the high one
//   weight = d * (scale_s - 32) * IQ4_NL_VALUES[nibble]
// Matches ggml dequantize_row_iq4_xs, quantize_iq4_xs (quantize_row_iq4_nl_impl with a 256 super-block,
// with or without an imatrix) and ggml_vec_dot_iq4_xs_q8_K. Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, nearestInt, readF16, readF32, writeU16 } from "./bytes.js";
import { elementWeights, GROUP_MAX_EPS } from "./iq-search.js";
import { IQ4_NL_VALUES } from "./iq4_nl.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import { bestIndexInt8 } from "./quant-search.js";
import type { TypeTraits } from "./traits.js";

export const IQ4_XS_BYTES = 136;

/** the 6-bit scale of sub-block s (0..7), still biased by 32 */
export function iq4xsScale(b: Uint8Array, o: number, s: number): number {
  const h = b[o + 2]! | (b[o + 3]! << 8);
  return ((b[o + 4 + (s >> 1)]! >> (4 * (s & 1))) & 15) | (((h >> (2 * s)) & 3) << 4);
}

const aViews = new ViewCache();

export function dequantizeIQ4_XS(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const kv = IQ4_NL_VALUES;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * IQ4_XS_BYTES;
    const d = readF16(src, o);
    for (let s = 0; s < 8; s++) {
      const dl = Math.fround(d * (iq4xsScale(src, o, s) - 32));
      const q = o + 8 + 16 * s;
      const y = dstOff + b * QK_K + 32 * s;
      for (let j = 0; j < 16; j++) {
        dst[y + j] = dl * kv[src[q + j]! & 15]!;
        dst[y + j + 16] = dl * kv[src[q + j]! >> 4]!;
      }
    }
  }
}

/** Σ over blocks of d·d8 · Σ_s (scale_s - 32)·Σ KVALUES[q]·q8 (ggml adds per sub-block in float; here exact integers per block) */
export function vecDotIQ4_XSQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const kv = IQ4_NL_VALUES;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * IQ4_XS_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let isum = 0;
    for (let s = 0; s < 8; s++) {
      const q = o + 8 + 16 * s;
      const q8 = ab + ao + Q8_K_QS + 32 * s;
      let si = 0;
      for (let j = 0; j < 16; j++) si += kv[w[q + j]! & 15]! * a8[q8 + j]! + kv[w[q + j]! >> 4]! * a8[q8 + j + 16]!;
      isum += (iq4xsScale(w, o, s) - 32) * si;
    }
    sum += readF16(w, o) * readF32(act, ao) * isum;
  }
  return sum;
}

// ---- quantizer ----

const f = Math.fround;
const NTRY = 7;
const weight = new Float32Array(32);
const scales = new Float32Array(8);
const L = new Uint8Array(QK_K);

/**
 * One super-block (ggml quantize_row_iq4_nl_impl, super-block 256, block 32, ntry 7): per
 * sub-block the best weighted least-squares scale over 15 trial scales (as IQ4_NL), then the 8
 * scales quantized to 6 bits against d = -max_scale/32 and the quants re-chosen for each rounded
 * scale. Weights: qw·sqrt(sigma2 + x²) with an importance row qw, else x².
 */
function quantizeBlock(x: Float32Array, xo: number, qw: Float32Array | undefined, qwo: number, dst: Uint8Array, o: number): void {
  const kv = IQ4_NL_VALUES;
  let sigma2 = 0;
  for (let j = 0; j < QK_K; j++) sigma2 = f(sigma2 + f(x[xo + j]! * x[xo + j]!));
  sigma2 = f(sigma2 * f(2 / QK_K));
  dst.fill(0, o, o + IQ4_XS_BYTES);
  let maxScale = 0;
  let amaxScale = 0;
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    elementWeights(x, xb, 32, qw, qwo + 32 * ib, sigma2, weight);
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const ax = Math.abs(x[xb + j]!);
      if (ax > amax) {
        amax = ax;
        max = x[xb + j]!;
      }
    }
    if (amax < GROUP_MAX_EPS) {
      scales[ib] = 0;
      continue;
    }
    let d = f(-max / kv[0]!);
    let id = f(1 / d);
    let sumqx = 0;
    let sumq2 = 0;
    for (let j = 0; j < 32; j++) {
      const xj = x[xb + j]!;
      const q = kv[bestIndexInt8(kv, f(id * xj))]!;
      sumqx = f(sumqx + f(f(weight[j]! * q) * xj));
      sumq2 = f(sumq2 + f(f(weight[j]! * q) * q));
    }
    d = sumq2 > 0 ? f(sumqx / sumq2) : 0;
    let best = f(d * sumqx);
    for (let itry = -NTRY; itry <= NTRY; itry++) {
      id = f((itry + kv[0]!) / max);
      sumqx = 0;
      sumq2 = 0;
      for (let j = 0; j < 32; j++) {
        const xj = x[xb + j]!;
        const q = kv[bestIndexInt8(kv, f(id * xj))]!;
        sumqx = f(sumqx + f(f(weight[j]! * q) * xj));
        sumq2 = f(sumq2 + f(f(weight[j]! * q) * q));
      }
      if (sumq2 > 0 && f(sumqx * sumqx) > f(best * sumq2)) {
        d = f(sumqx / sumq2);
        best = f(d * sumqx);
      }
    }
    scales[ib] = d;
    if (Math.abs(d) > amaxScale) {
      amaxScale = Math.abs(d);
      maxScale = d;
    }
  }
  const d = f(-maxScale / 32);
  writeU16(dst, o, f32ToF16(d));
  const id = d ? f(1 / d) : 0;
  let scalesH = 0;
  for (let ib = 0; ib < 8; ib++) {
    const l = Math.max(-32, Math.min(31, nearestInt(f(id * scales[ib]!))));
    const dl = f(d * l);
    const idl = dl ? f(1 / dl) : 0;
    for (let j = 0; j < 32; j++) L[32 * ib + j] = bestIndexInt8(kv, f(idl * x[xo + 32 * ib + j]!));
    const lb = l + 32;
    dst[o + 4 + (ib >> 1)] |= (lb & 15) << (4 * (ib & 1));
    scalesH |= (lb >> 4) << (2 * ib);
  }
  writeU16(dst, o + 2, scalesH);
  for (let i = 0; i < 8; i++) {
    for (let j = 0; j < 16; j++) dst[o + 8 + 16 * i + j] = L[32 * i + j]! | (L[32 * i + 16 + j]! << 4);
  }
}

/** ggml quantize_iq4_xs: rows of nPerRow, importance[nPerRow] (one weight per column) optional. */
export function quantizeIQ4_XS(x: Float32Array, xOff: number, nRows: number, nPerRow: number, dst: Uint8Array, dstOff: number, importance?: Float32Array): void {
  const nb = nPerRow / QK_K;
  for (let r = 0; r < nRows; r++) {
    for (let b = 0; b < nb; b++) {
      quantizeBlock(x, xOff + r * nPerRow + b * QK_K, importance, b * QK_K, dst, dstOff + (r * nb + b) * IQ4_XS_BYTES);
    }
  }
}

export const IQ4_XS: TypeTraits = {
  type: GgmlType.IQ4_XS,
  blockSize: QK_K,
  typeSize: IQ4_XS_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeIQ4_XS,
  vecDot: vecDotIQ4_XSQ8_K,
  quantizeRef: (x, xOff, n, dst, dstOff) => quantizeIQ4_XS(x, xOff, 1, n, dst, dstOff),
  quantizeImatrix: quantizeIQ4_XS,
};
