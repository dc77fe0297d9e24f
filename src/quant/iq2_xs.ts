// IQ2_XS: 256 weights per block (16 groups of 8, a 4-bit scale per 16 weights), 74 bytes, 2.31 bits per weight:
//   [0..2)    d       f16      super-block scale
//   [2..66)   qs      u16[32]  group g: a 9-bit grid index (bits 0..8) and 7 sign bits (bits 9..15)
//   [66..74)  scales  u8[8]    scale of groups 4s, 4s+1: low nibble of byte s; groups 4s+2, 4s+3: high nibble
//   weight = d * (0.5 + scale) / 4 * IQ2XS_GRID[index][j] * (sign j ? -1 : 1)   (8th sign: KSIGNS_IQ2XS)
// Matches ggml dequantize_row_iq2_xs, quantize_iq2_xs and ggml_vec_dot_iq2_xs_q8_K. Activation: Q8_K.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32, writeU16 } from "./bytes.js";
import { IQ2XS_GRID, KSIGNS_IQ2XS } from "./iq-grids.js";
import { elementWeights, F01, foldSigns, GROUP_MAX_EPS, Lattice, oddLevel, searchGrid } from "./iq-search.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export const IQ2_XS_BYTES = 74;

const aViews = new ViewCache();
const f = Math.fround;

export function dequantizeIQ2_XS(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const grid = IQ2XS_GRID;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * IQ2_XS_BYTES;
    const d = readF16(src, o);
    let y = dstOff + b * QK_K;
    for (let g = 0; g < 32; g++) {
      const sc = src[o + 66 + (g >> 2)]!;
      const db = f(f(d * (0.5 + ((g & 2) ? sc >> 4 : sc & 15))) * 0.25);
      const q = src[o + 2 + 2 * g]! | (src[o + 3 + 2 * g]! << 8);
      const k = 8 * (q & 511);
      const signs = KSIGNS_IQ2XS[q >> 9]!;
      for (let j = 0; j < 8; j++) {
        const v = f(db * grid[k + j]!);
        dst[y++] = signs & (1 << j) ? -v : v;
      }
    }
  }
}

/** 0.125 · Σ over blocks of d·d8 · Σ_groups (2·scale + 1)·Σ ±grid·q8 */
export function vecDotIQ2_XSQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const grid = IQ2XS_GRID;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * IQ2_XS_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let q8 = ab + ao + Q8_K_QS;
    let isum = 0;
    for (let h = 0; h < 16; h++) {
      // half h of sub-block h/2: groups 2h, 2h+1
      const sc = w[o + 66 + (h >> 1)]!;
      const ls = 2 * ((h & 1) ? sc >> 4 : sc & 15) + 1;
      let si = 0;
      for (let g = 2 * h; g < 2 * h + 2; g++) {
        const q = w[o + 2 + 2 * g]! | (w[o + 3 + 2 * g]! << 8);
        const k = 8 * (q & 511);
        const signs = KSIGNS_IQ2XS[q >> 9]!;
        for (let j = 0; j < 8; j++) si += (signs & (1 << j) ? -grid[k + j]! : grid[k + j]!) * a8[q8 + j]!;
        q8 += 8;
      }
      isum += ls * si;
    }
    sum += readF16(w, o) * readF32(act, ao) * isum;
  }
  return 0.125 * sum;
}

// ---- quantizer ----

let lattice: Lattice | undefined;
/** the IQ2_XS grid as the quantizer sees it (levels 0..2 are the bytes 8, 25, 43; neighbours at the 2 nearest distances) */
export function iq2xsLattice(): Lattice {
  return (lattice ??= new Lattice(IQ2XS_GRID, 8, [8, 25, 43], 2, 2));
}

const K_MAX_Q = 3;
const scales = new Float32Array(16);
const weight = new Float32Array(16);
const waux = new Float32Array(16);
const xval = new Float32Array(16);
const L = new Int8Array(16);
const signs = new Uint8Array(2);
const q2 = new Uint16Array(32);

/**
 * One super-block (ggml quantize_row_iq2_xs_impl). Per 16 weights (two groups of 8): fold the
 * signs, try 19 scales around max/5 mapping both groups to the grid (or the best neighbour) and keep
 * the best weighted fit; groups that were off the grid are redone with the chosen scale and the scale
 * refit. The 16 scales become 4-bit odd multiples of d = max_scale/31.
 * Weights: qw·sqrt(sigma2 + x²) with an importance row; without one, llama.cpp refuses (it asserts
 * that quant weights are given), and this falls back to x² as ggml's IQ3 quantizers do.
 */
function quantizeBlock(x: Float32Array, xo: number, qw: Float32Array | undefined, qwo: number, dst: Uint8Array, o: number): void {
  const lat = iq2xsLattice();
  q2.fill(0);
  dst.fill(0, o, o + IQ2_XS_BYTES);
  let maxScale = 0;
  let sumx2 = 0;
  for (let i = 0; i < QK_K; i++) sumx2 = f(sumx2 + f(x[xo + i]! * x[xo + i]!));
  const sigma2 = f(sumx2 / QK_K);
  for (let ib = 0; ib < 16; ib++) {
    const xb = xo + 16 * ib;
    elementWeights(x, xb, 16, qw, qwo + 16 * ib, sigma2, weight);
    for (let i = 0; i < 16; i++) waux[i] = f(Math.sqrt(weight[i]!));
    for (let k = 0; k < 2; k++) signs[k] = foldSigns(x, xb + 8 * k, weight, 8 * k, xval, 8 * k);
    let max = xval[0]!;
    for (let i = 1; i < 16; i++) max = xval[i]! > max ? xval[i]! : max;
    L.fill(0);
    if (max < GROUP_MAX_EPS) {
      scales[ib] = 0;
      continue;
    }
    const scale0 = f(max / (2 * K_MAX_Q - 1));
    let scale = searchGrid(lat, 16, K_MAX_Q, 9, F01, "off-grid", xval, weight, waux, max, scale0, L);
    if (scale < 0) {
      scale = -scale;
      for (let k = 0; k < 2; k++) signs[k] = ~signs[k]! & 127;
    }
    for (let k = 0; k < 2; k++) {
      const gi = lat.index(lat.pack(L, 8 * k));
      if (gi < 0) throw new Error(`IQ2_XS: group of levels ${[...L.subarray(8 * k, 8 * k + 8)]} is not on the grid`);
      q2[2 * ib + k] = gi | (signs[k]! << 9);
    }
    scales[ib] = scale;
    maxScale = scale > maxScale ? scale : maxScale;
  }
  if (!maxScale) return;
  const d = f(maxScale / 31);
  writeU16(dst, o, f32ToF16(d));
  const id = f(1 / d);
  for (let ib = 0; ib < 16; ib++) {
    const l = Math.max(0, Math.min(15, oddLevel(id, scales[ib]!)));
    dst[o + 66 + (ib >> 1)] |= l << (4 * (ib & 1));
  }
  for (let i = 0; i < 32; i++) writeU16(dst, o + 2 + 2 * i, q2[i]!);
}

/** ggml quantize_iq2_xs: rows of nPerRow; importance[nPerRow] (one weight per column) or the x² fallback. */
export function quantizeIQ2_XS(x: Float32Array, xOff: number, nRows: number, nPerRow: number, dst: Uint8Array, dstOff: number, importance?: Float32Array): void {
  const nb = nPerRow / QK_K;
  for (let r = 0; r < nRows; r++) {
    for (let b = 0; b < nb; b++) {
      quantizeBlock(x, xOff + r * nPerRow + b * QK_K, importance, b * QK_K, dst, dstOff + (r * nb + b) * IQ2_XS_BYTES);
    }
  }
}

export const IQ2_XS: TypeTraits = {
  type: GgmlType.IQ2_XS,
  blockSize: QK_K,
  typeSize: IQ2_XS_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeIQ2_XS,
  vecDot: vecDotIQ2_XSQ8_K,
  quantizeImatrix: quantizeIQ2_XS,
};
