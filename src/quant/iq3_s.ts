// IQ3_S: 256 weights per block (8 sub-blocks of 32 = 8 grid points of 4), 110 bytes, 3.44 bits per weight:
//   [0..2)     d       f16      super-block scale
//   [2..66)    qs      u8[64]   low 8 bits of the 9-bit grid indices, one per 4 weights (sub-block s: qs[8s .. 8s+7])
//   [66..74)   qh      u8[8]    bit k of qh[s]: bit 8 of the index of point k of sub-block s
//   [74..106)  signs   u8[32]   one sign bit per weight (byte 4s + g: the 8 weights of group g of sub-block s)
//   [106..110) scales  u8[4]    4-bit scales: sub-block s in nibble s%2 of byte s/2
//   weight = d * (1 + 2·scale) * IQ3S_GRID[index][j] * (sign ? -1 : 1)
// Matches ggml dequantize_row_iq3_s, quantize_iq3_s (with or without an imatrix) and
// ggml_vec_dot_iq3_s_q8_K. Activation: Q8_K. Written here for llama-quantize's IQ3_XXS mixes,
// which put token_embd and some attention tensors in IQ3_S.

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, readF32, writeU16 } from "./bytes.js";
import { IQ3S_GRID } from "./iq-grids.js";
import { elementWeights, F02, Lattice, oddLevel, searchGrid } from "./iq-search.js";
import { QK_K, Q8_K_BYTES, Q8_K_QS } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export const IQ3_S_BYTES = 110;

const aViews = new ViewCache();
const f = Math.fround;

/** byte offset in IQ3S_GRID of point k (0..7) of sub-block s of the block at o */
function gridOffset(b: Uint8Array, o: number, s: number, k: number): number {
  return 4 * (b[o + 2 + 8 * s + k]! | (((b[o + 66 + s]! >> k) & 1) << 8));
}

export function dequantizeIQ3_S(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const grid = IQ3S_GRID;
  for (let b = 0; b < n / QK_K; b++) {
    const o = srcOff + b * IQ3_S_BYTES;
    const d = readF16(src, o);
    let y = dstOff + b * QK_K;
    for (let s = 0; s < 8; s++) {
      const db = f(d * (1 + 2 * ((src[o + 106 + (s >> 1)]! >> (4 * (s & 1))) & 15)));
      for (let k = 0; k < 8; k++) {
        const g = gridOffset(src, o, s, k);
        const signs = src[o + 74 + 4 * s + (k >> 1)]!;
        for (let j = 0; j < 4; j++) {
          const v = f(db * grid[g + j]!);
          dst[y++] = signs & (1 << (4 * (k & 1) + j)) ? -v : v;
        }
      }
    }
  }
}

/** Σ over blocks of d·d8 · Σ_s (2·scale_s + 1)·Σ ±grid·q8 */
export function vecDotIQ3_SQ8_K(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const grid = IQ3S_GRID;
  let sum = 0;
  for (let b = 0; b < n / QK_K; b++) {
    const o = wOff + b * IQ3_S_BYTES;
    const ao = aOff + b * Q8_K_BYTES;
    let q8 = ab + ao + Q8_K_QS;
    let isum = 0;
    for (let s = 0; s < 8; s++) {
      let si = 0;
      for (let k = 0; k < 8; k++) {
        const g = gridOffset(w, o, s, k);
        const signs = w[o + 74 + 4 * s + (k >> 1)]!;
        for (let j = 0; j < 4; j++) {
          const v = grid[g + j]!;
          si += (signs & (1 << (4 * (k & 1) + j)) ? -v : v) * a8[q8 + j]!;
        }
        q8 += 4;
      }
      isum += (2 * ((w[o + 106 + (s >> 1)]! >> (4 * (s & 1))) & 15) + 1) * si;
    }
    sum += readF16(w, o) * readF32(act, ao) * isum;
  }
  return sum;
}

// ---- quantizer ----

let lattice: Lattice | undefined;
/** the IQ3_S grid as the quantizer sees it (levels 0..7 are the bytes 1, 3, .., 15; neighbours at the 3 nearest distances) */
export function iq3sLattice(): Lattice {
  return (lattice ??= new Lattice(IQ3S_GRID, 4, [1, 3, 5, 7, 9, 11, 13, 15], 3, 3));
}

const K_MAX_Q = 8;
const scales = new Float32Array(8);
const weight = new Float32Array(32);
const waux = new Float32Array(32);
const xval = new Float32Array(32);
const L = new Int8Array(32);

/**
 * One super-block (ggml quantize_row_iq3_s_impl, block 32). Per sub-block: xval = |x| with all 8
 * signs stored, 19 trial scales around max/15 (grid or best neighbour per 4 weights), then, unless
 * the best trial was all on the grid, every group redone with its scale and the scale refit. The
 * scales become 4-bit odd multiples of d = max_scale/31, stored as d·1.033 (ggml's fudge factor).
 * As in ggml, an all-zero sub-block does not advance the qs and signs write positions, so the
 * sub-blocks after it are written one slot early (llama-quantize's files have this too).
 * Weights: qw·sqrt(sigma2 + x²) with an importance row, else x² (as ggml).
 */
function quantizeBlock(x: Float32Array, xo: number, qw: Float32Array | undefined, qwo: number, dst: Uint8Array, o: number): void {
  const lat = iq3sLattice();
  dst.fill(0, o, o + IQ3_S_BYTES);
  let qs = o + 2;
  let sg = o + 74;
  let maxScale = 0;
  let sumx2 = 0;
  for (let i = 0; i < QK_K; i++) sumx2 = f(sumx2 + f(x[xo + i]! * x[xo + i]!));
  const sigma2 = f(f(2 * sumx2) / QK_K);
  for (let ib = 0; ib < 8; ib++) {
    const xb = xo + 32 * ib;
    elementWeights(x, xb, 32, qw, qwo + 32 * ib, sigma2, weight);
    for (let i = 0; i < 32; i++) waux[i] = f(Math.sqrt(weight[i]!));
    let max = 0;
    for (let i = 0; i < 32; i++) {
      const xi = x[xb + i]!;
      xval[i] = xi >= 0 ? xi : -xi;
      if (i === 0 || xval[i]! > max) max = xval[i]!;
    }
    L.fill(0);
    if (!max) {
      scales[ib] = 0;
      continue;
    }
    let scale = searchGrid(lat, 32, K_MAX_Q, 9, F02, "all-if-any-off-grid", xval, weight, waux, max, f(max / (2 * K_MAX_Q - 1)), L);
    let flip = 0;
    if (scale < 0) {
      // never expected (ggml keeps the check): a positive scale with the signs flipped
      scale = -scale;
      flip = 255;
    }
    for (let k = 0; k < 8; k++) {
      const gi = lat.index(lat.pack(L, 4 * k));
      if (gi < 0) throw new Error(`IQ3_S: group of levels ${[...L.subarray(4 * k, 4 * k + 4)]} is not on the grid`);
      dst[qs + k] = gi & 255;
      dst[o + 66 + ib] |= (gi >> 8) << k;
    }
    qs += 8;
    for (let k = 0; k < 4; k++) {
      let s = 0;
      for (let i = 0; i < 8; i++) if (x[xb + 8 * k + i]! < 0) s |= 1 << i;
      dst[sg + k] = s ^ flip;
    }
    sg += 4;
    scales[ib] = scale;
    maxScale = scale > maxScale ? scale : maxScale;
  }
  if (!maxScale) return;
  const d = f(maxScale / 31);
  writeU16(dst, o, f32ToF16(f(d * f(1.033))));
  const id = f(1 / d);
  for (let ib = 0; ib < 8; ib += 2) {
    const l1 = Math.max(0, Math.min(15, oddLevel(id, scales[ib]!)));
    const l2 = Math.max(0, Math.min(15, oddLevel(id, scales[ib + 1]!)));
    dst[o + 106 + ib / 2] = l1 | (l2 << 4);
  }
}

/** ggml quantize_iq3_s: rows of nPerRow, importance[nPerRow] (one weight per column) optional. */
export function quantizeIQ3_S(x: Float32Array, xOff: number, nRows: number, nPerRow: number, dst: Uint8Array, dstOff: number, importance?: Float32Array): void {
  const nb = nPerRow / QK_K;
  for (let r = 0; r < nRows; r++) {
    for (let b = 0; b < nb; b++) {
      quantizeBlock(x, xOff + r * nPerRow + b * QK_K, importance, b * QK_K, dst, dstOff + (r * nb + b) * IQ3_S_BYTES);
    }
  }
}

export const IQ3_S: TypeTraits = {
  type: GgmlType.IQ3_S,
  blockSize: QK_K,
  typeSize: IQ3_S_BYTES,
  vecDotType: GgmlType.Q8_K,
  dequantize: dequantizeIQ3_S,
  vecDot: vecDotIQ3_SQ8_K,
  quantizeRef: (x, xOff, n, dst, dstOff) => quantizeIQ3_S(x, xOff, 1, n, dst, dstOff),
  quantizeImatrix: quantizeIQ3_S,
};
