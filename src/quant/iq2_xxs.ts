// IQ2_XXS: 256 weights per block (8 sub-blocks of 32 = 4 groups of 8), 66 bytes, 2.06 bits per weight:
//   [0..2)   d   f16       super-block scale
//   [2..66)  qs  u32[16]   sub-block s: word 2s = the grid indices of its 4 groups (one byte each),
//                          word 2s+1 = 4 x 7 sign bits (group g at bit 7g) and a 4-bit scale (bits 28..31)
//   weight = d * (0.5 + scale) / 4 * IQ2XXS_GRID[index][j] * (sign bit j ? -1 : 1)
//   (7 sign bits per group; the eighth, KSIGNS_IQ2XS, makes the count of minus signs even)
// Matches ggml dequantize_row_iq2_xxs, quantize_iq2_xxs and ggml_vec_dot_iq2_xxs_q8_K. Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32, readU32, writeU16, writeU32 } from "./bytes.js";
import { IQ2XXS_GRID, KSIGNS_IQ2XS } from "./iq-grids.js";
import { elementWeights, F01, foldSigns, GROUP_MAX_EPS, Lattice, makeQpQuants, oddLevel, searchGrid } from "./iq-search.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export const IQ2_XXS_BYTES = 66;

const aViews = new ViewCache();
const f = Math.fround;

export function dequantizeIQ2_XXS(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const grid = IQ2XXS_GRID;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * IQ2_XXS_BYTES;
    const d = readF16(src, o);
    let y = dstOff + b * QK_K;
    for (let s = 0; s < 8; s++) {
      const q = o + 2 + 8 * s;
      const aux = readU32(src, q + 4);
      const db = f(f(d * (0.5 + (aux >>> 28))) * 0.25);
      for (let g = 0; g < 4; g++) {
        const k = 8 * src[q + g]!;
        const signs = KSIGNS_IQ2XS[(aux >>> (7 * g)) & 127]!;
        for (let j = 0; j < 8; j++) {
          const v = f(db * grid[k + j]!);
          dst[y++] = signs & (1 << j) ? -v : v;
        }
      }
    }
  }
}

/** 0.125 · Σ over blocks of d·d8 · Σ_s (2·scale_s + 1)·Σ ±grid·q8 */
export function vecDotIQ2_XXSQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const grid = IQ2XXS_GRID;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * IQ2_XXS_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let q8 = ab + ao + Q8_K_QS;
    let isum = 0;
    for (let s = 0; s < 8; s++) {
      const q = o + 2 + 8 * s;
      const aux = readU32(w, q + 4);
      let si = 0;
      for (let g = 0; g < 4; g++) {
        const k = 8 * w[q + g]!;
        const signs = KSIGNS_IQ2XS[(aux >>> (7 * g)) & 127]!;
        for (let j = 0; j < 8; j++) si += (signs & (1 << j) ? -grid[k + j]! : grid[k + j]!) * a8[q8 + j]!;
        q8 += 8;
      }
      isum += (2 * (aux >>> 28) + 1) * si;
    }
    sum += readF16(w, o) * readF32(act, ao) * isum;
  }
  return 0.125 * sum;
}

// ---- quantizer ----

let lattice: Lattice | undefined;
/** the IQ2_XXS grid as the quantizer sees it (levels 0..2 are the bytes 8, 25, 43; neighbours at the 2 nearest distances) */
export function iq2xxsLattice(): Lattice {
  return (lattice ??= new Lattice(IQ2XXS_GRID, 8, [8, 25, 43], 2, 2));
}

const K_MAX_Q = 3;
const scales = new Float32Array(8);
const weight = new Float32Array(32);
const waux = new Float32Array(32);
const xval = new Float32Array(32);
const L = new Int8Array(32);
const Lqp = new Uint8Array(32);
const signs = new Uint8Array(4);
const q2 = new Uint32Array(16);

/**
 * One super-block (ggml quantize_row_iq2_xxs_impl). Per sub-block of 32: fold the signs (foldSigns),
 * start from make_qp_quants' scale, try 13 scales around it mapping every group of 8 to the grid
 * (or its best neighbour) and keep the best weighted fit; redo the groups with the chosen scale and
 * refit. The 8 scales become 4-bit odd multiples of d = max_scale/31.
 * Weights: qw·sqrt(sigma2 + x²) with an importance row; without one, llama.cpp refuses (it asserts
 * that quant weights are given), and this falls back to x² as ggml's IQ3 quantizers do.
 */
function quantizeBlock(x: Float32Array, xo: number, qw: Float32Array | undefined, qwo: number, dst: Uint8Array, o: number): void {
  const lat = iq2xxsLattice();
  q2.fill(0);
  let maxScale = 0;
  let sumx2 = 0;
  for (let i = 0; i < QK_K; i++) sumx2 = f(sumx2 + f(x[xo + i]! * x[xo + i]!));
  const sigma2 = f(sumx2 / QK_K);
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    elementWeights(x, xb, 32, qw, qwo + 32 * ib, sigma2, weight);
    for (let i = 0; i < 32; i++) waux[i] = f(Math.sqrt(weight[i]!));
    for (let k = 0; k < 4; k++) signs[k] = foldSigns(x, xb + 8 * k, weight, 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 32; i++) max = xval[i]! > max ? xval[i]! : max;
    if (max < GROUP_MAX_EPS) {
      scales[ib] = 0;
      L.fill(0);
      continue;
    }
    let scale = makeQpQuants(32, K_MAX_Q + 1, xval, Lqp, weight);
    for (let i = 0; i < 32; i++) L[i] = Lqp[i]!; // ggml reads these uint8 quants back as int8
    const effMax = f(scale * K_MAX_Q);
    if (effMax <= 0) {
      scales[ib] = 0;
      L.fill(0);
      continue;
    }
    scale = searchGrid(lat, 32, K_MAX_Q, 6, F01, "always", xval, weight, waux, effMax, scale, L);
    if (scale < 0) {
      // never expected (ggml keeps the check): a positive scale with every sign flipped
      scale = -scale;
      for (let k = 0; k < 4; k++) signs[k] = ~signs[k]! & 127;
    }
    for (let k = 0; k < 4; k++) {
      const gi = lat.index(lat.pack(L, 8 * k));
      if (gi < 0) throw new Error(`IQ2_XXS: group of levels ${[...L.subarray(8 * k, 8 * k + 8)]} is not on the grid`);
      q2[2 * ib] = (q2[2 * ib]! | (gi << (8 * k))) >>> 0;
      q2[2 * ib + 1] = (q2[2 * ib + 1]! | (signs[k]! << (7 * k))) >>> 0;
    }
    scales[ib] = scale;
    maxScale = scale > maxScale ? scale : maxScale;
  }
  dst.fill(0, o, o + IQ2_XXS_BYTES);
  if (!maxScale) return;
  const d = f(maxScale / 31);
  writeU16(dst, o, f32ToF16(d));
  const id = f(1 / d);
  for (let ib = 0; ib < 8; ib++) {
    const l = Math.max(0, Math.min(15, oddLevel(id, scales[ib]!)));
    q2[2 * ib + 1] = (q2[2 * ib + 1]! | (l << 28)) >>> 0;
  }
  for (let i = 0; i < 16; i++) writeU32(dst, o + 2 + 4 * i, q2[i]!);
}

/** ggml quantize_iq2_xxs: rows of nPerRow; importance[nPerRow] (one weight per column) or the x² fallback. */
export function quantizeIQ2_XXS(x: Float32Array, xOff: number, nRows: number, nPerRow: number, dst: Uint8Array, dstOff: number, importance?: Float32Array): void {
  const nb = nPerRow / QK_K;
  for (let r = 0; r < nRows; r++) {
    for (let b = 0; b < nb; b++) {
      quantizeBlock(x, xOff + r * nPerRow + b * QK_K, importance, b * QK_K, dst, dstOff + (r * nb + b) * IQ2_XXS_BYTES);
    }
  }
}

export const IQ2_XXS: TypeTraits = {
  type: GgmlType.IQ2_XXS,
  blockSize: QK_K,
  typeSize: IQ2_XXS_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeIQ2_XXS,
  vecDot: vecDotIQ2_XXSQ8_K,
  quantizeImatrix: quantizeIQ2_XXS,
};
