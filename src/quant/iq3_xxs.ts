// IQ3_XXS: 256 weights per block (8 sub-blocks of 32 = 8 grid points of 4), 98 bytes, 3.06 bits per weight:
//   [0..2)    d     f16      super-block scale
//   [2..66)   qs    u8[64]   grid indices: sub-block s uses qs[8s .. 8s+7], one per 4 weights
//   [66..98)  sas   u32[8]   sub-block s: 4 x 7 sign bits (group of 8 g at bit 7g) and a 4-bit scale (bits 28..31)
//   weight = d * (0.5 + scale) / 2 * IQ3XXS_GRID[index][j] * (sign ? -1 : 1)   (8th sign: KSIGNS_IQ2XS)
// Matches ggml dequantize_row_iq3_xxs, quantize_iq3_xxs (quantize_row_iq3_xxs_impl, grid 256, with or
// without an imatrix) and ggml_vec_dot_iq3_xxs_q8_K. Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32, readU32, writeU16, writeU32 } from "./bytes.js";
import { IQ3XXS_GRID, KSIGNS_IQ2XS } from "./iq-grids.js";
import { elementWeights, F02, foldSigns, GROUP_MAX_EPS_IQ3_XXS, Lattice, oddLevel, searchGrid } from "./iq-search.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export const IQ3_XXS_BYTES = 98;

const aViews = new ViewCache();
const f = Math.fround;

export function dequantizeIQ3_XXS(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const grid = IQ3XXS_GRID;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * IQ3_XXS_BYTES;
    const d = readF16(src, o);
    let y = dstOff + b * QK_K;
    for (let s = 0; s < 8; s++) {
      const aux = readU32(src, o + 66 + 4 * s);
      const db = f(f(d * (0.5 + (aux >>> 28))) * 0.5);
      for (let g = 0; g < 4; g++) {
        const signs = KSIGNS_IQ2XS[(aux >>> (7 * g)) & 127]!;
        const k1 = 4 * src[o + 2 + 8 * s + 2 * g]!, k2 = 4 * src[o + 3 + 8 * s + 2 * g]!;
        for (let j = 0; j < 8; j++) {
          const v = f(db * grid[j < 4 ? k1 + j : k2 + j - 4]!);
          dst[y++] = signs & (1 << j) ? -v : v;
        }
      }
    }
  }
}

/** 0.25 · Σ over blocks of d·d8 · Σ_s (2·scale_s + 1)·Σ ±grid·q8 */
export function vecDotIQ3_XXSQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const grid = IQ3XXS_GRID;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * IQ3_XXS_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let q8 = ab + ao + Q8_K_QS;
    let isum = 0;
    for (let s = 0; s < 8; s++) {
      const aux = readU32(w, o + 66 + 4 * s);
      let si = 0;
      for (let g = 0; g < 4; g++) {
        const signs = KSIGNS_IQ2XS[(aux >>> (7 * g)) & 127]!;
        const k1 = 4 * w[o + 2 + 8 * s + 2 * g]!, k2 = 4 * w[o + 3 + 8 * s + 2 * g]!;
        for (let j = 0; j < 8; j++) {
          const v = grid[j < 4 ? k1 + j : k2 + j - 4]!;
          si += (signs & (1 << j) ? -v : v) * a8[q8 + j]!;
        }
        q8 += 8;
      }
      isum += (2 * (aux >>> 28) + 1) * si;
    }
    sum += readF16(w, o) * readF32(act, ao) * isum;
  }
  return 0.25 * sum;
}

// ---- quantizer ----

let lattice: Lattice | undefined;
/** the IQ3_XXS grid as the quantizer sees it (levels 0..7 are the bytes 4, 12, .., 52, 62; neighbours at the 2 nearest distances) */
export function iq3xxsLattice(): Lattice {
  return (lattice ??= new Lattice(IQ3XXS_GRID, 4, [4, 12, 20, 28, 36, 44, 52, 62], 3, 2));
}

const K_MAX_Q = 8;
const scales = new Float32Array(8);
const weight = new Float32Array(32);
const waux = new Float32Array(32);
const xval = new Float32Array(32);
const L = new Int8Array(32);
const signs = new Uint8Array(4);
const sas = new Uint32Array(8);

/**
 * One super-block (ggml quantize_row_iq3_xxs_impl, grid 256). Per sub-block of 32: fold the signs
 * per 8 (foldSigns), try 31 scales around max/15 mapping every 4 weights to the grid (or the best
 * neighbour), keep the best weighted fit, redo the off-grid groups with that scale and refit. The 8
 * scales become 4-bit odd multiples of d = max_scale/31, stored as d·1.0125 (ggml's fudge factor).
 * Weights: qw·sqrt(sigma2 + x²) with an importance row, else x² (as ggml).
 */
function quantizeBlock(x: Float32Array, xo: number, qw: Float32Array | undefined, qwo: number, dst: Uint8Array, o: number): void {
  const lat = iq3xxsLattice();
  dst.fill(0, o, o + IQ3_XXS_BYTES);
  sas.fill(0);
  let maxScale = 0;
  let sumx2 = 0;
  for (let i = 0; i < QK_K; i++) sumx2 = f(sumx2 + f(x[xo + i]! * x[xo + i]!));
  const sigma2 = f(f(2 * sumx2) / QK_K);
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    elementWeights(x, xb, 32, qw, qwo + 32 * ib, sigma2, weight);
    for (let i = 0; i < 32; i++) waux[i] = f(Math.sqrt(weight[i]!));
    for (let k = 0; k < 4; k++) signs[k] = foldSigns(x, xb + 8 * k, weight, 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 32; i++) max = xval[i]! > max ? xval[i]! : max;
    L.fill(0);
    if (max < GROUP_MAX_EPS_IQ3_XXS) {
      scales[ib] = 0;
      continue;
    }
    let scale = searchGrid(lat, 32, K_MAX_Q, 15, F02, "off-grid", xval, weight, waux, max, f(max / (2 * K_MAX_Q - 1)), L);
    if (scale < 0) {
      // never expected (ggml keeps the check): a positive scale with the signs flipped
      scale = -scale;
      for (let k = 0; k < 4; k++) signs[k] = ~signs[k]! & 127;
    }
    for (let k = 0; k < 8; k++) {
      const gi = lat.index(lat.pack(L, 4 * k));
      if (gi < 0) throw new Error(`IQ3_XXS: group of levels ${[...L.subarray(4 * k, 4 * k + 4)]} is not on the grid`);
      dst[o + 2 + 8 * ib + k] = gi;
    }
    sas[ib] = signs[0]! | (signs[1]! << 7) | (signs[2]! << 14) | (signs[3]! << 21);
    scales[ib] = scale;
    maxScale = scale > maxScale ? scale : maxScale;
  }
  if (!maxScale) {
    dst.fill(0, o + 2, o + IQ3_XXS_BYTES);
    return;
  }
  const d = f(maxScale / 31);
  writeU16(dst, o, f32ToF16(f(d * f(1.0125))));
  const id = f(1 / d);
  for (let ib = 0; ib < 8; ib++) {
    const l = Math.max(0, Math.min(15, oddLevel(id, scales[ib]!)));
    writeU32(dst, o + 66 + 4 * ib, (sas[ib]! | (l << 28)) >>> 0);
  }
}

/** ggml quantize_iq3_xxs: rows of nPerRow, importance[nPerRow] (one weight per column) optional. */
export function quantizeIQ3_XXS(x: Float32Array, xOff: number, nRows: number, nPerRow: number, dst: Uint8Array, dstOff: number, importance?: Float32Array): void {
  const nb = nPerRow / QK_K;
  for (let r = 0; r < nRows; r++) {
    for (let b = 0; b < nb; b++) {
      quantizeBlock(x, xOff + r * nPerRow + b * QK_K, importance, b * QK_K, dst, dstOff + (r * nb + b) * IQ3_XXS_BYTES);
    }
  }
}

export const IQ3_XXS: TypeTraits = {
  type: GgmlType.IQ3_XXS,
  blockSize: QK_K,
  typeSize: IQ3_XXS_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeIQ3_XXS,
  vecDot: vecDotIQ3_XXSQ8_K,
  quantizeRef: (x, xOff, n, dst, dstOff) => quantizeIQ3_XXS(x, xOff, 1, n, dst, dstOff),
  quantizeImatrix: quantizeIQ3_XXS,
};
