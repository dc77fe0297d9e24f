// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// The matmul driver: out[t*outStride + r] = W row r . act row t for r in [r0, r1), t < nTok.
// Four weight rows per pass (a tail of 1-3 rows repeats the last row and stores only the valid
// results); for each group the activation rows are walked in order, so the four weight rows stay
// in cache while every token uses them.

import { dot4IQ4_NL, dot4Q4_0, dot4Q4_1, dot4Q5_0, dot4Q5_1, dot4Q8_0 } from "./matmul-q";
import { dot4Q2_K, dot4Q3_K, dot4Q4_K, dot4Q5_K, dot4Q6_K } from "./matmul-k";
import { dot4BF16, dot4F16, dot4F32 } from "./matmul-f";
import { claimSlot, matmulTiled, releaseSlot, slotBytes } from "./tile";
import { isFloatTile, matmulTiledF } from "./tile-f";
import { FEW_MAX, matmulFew, matmulOne, oneBytes, rx32 } from "./one";
import { dot4IQ, iqTables, isIQ } from "./matmul-iq";
import { PACKED, blockStep, rowAt, store4 } from "./common";

// ggml type ids (src/quant/format.ts)
export const F32: i32 = 0;
export const F16: i32 = 1;
export const Q4_0: i32 = 2;
export const Q4_1: i32 = 3;
export const Q5_0: i32 = 6;
export const Q5_1: i32 = 7;
export const Q8_0: i32 = 8;
export const Q8_1: i32 = 9;
export const Q2_K: i32 = 10;
export const Q3_K: i32 = 11;
export const Q4_K: i32 = 12;
export const Q5_K: i32 = 13;
export const Q6_K: i32 = 14;
export const Q8_K: i32 = 15;
export const IQ4_NL: i32 = 20;
export const BF16: i32 = 30;

/**
 * from this many tokens on the float types take the tiled kernel (tile-f.ts; measured with
 * speed.js: F16 gains x1.3 at 2 tokens, BF16 and F32, whose conversion is cheap, from 3)
 */
@inline function floatMinTok(type: i32): i32 {
  return type == F16 ? 2 : 3;
}

/** whether matrices of this type may be packed (common.ts): the 32-element block types and the K-quants */
@inline function packable(type: i32): bool {
  switch (type) {
    case Q4_0: case Q4_1: case Q5_0: case Q5_1: case Q8_0: case IQ4_NL:
    case Q2_K: case Q3_K: case Q4_K: case Q5_K: case Q6_K: return true;
    default: return false;
  }
}

/** elements per block of a weight type with a kernel here, 0 when there is none */
export function matmulBlock(type: i32): i32 {
  switch (type) {
    case F32: case F16: case BF16: return 1;
    case Q4_0: case Q4_1: case Q5_0: case Q5_1: case Q8_0: case IQ4_NL: return 32;
    case Q2_K: case Q3_K: case Q4_K: case Q5_K: case Q6_K: return 256;
    default: return isIQ(type) && iqTables() != 0 ? 256 : 0;
  }
}

@inline function dot4(type: i32, p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32, st: usize): v128 {
  switch (type) {
    case Q8_0: return dot4Q8_0(p0, p1, p2, p3, a, nb, st);
    case Q4_0: return dot4Q4_0(p0, p1, p2, p3, a, nb, st);
    case Q4_K: return dot4Q4_K(p0, p1, p2, p3, a, nb, st);
    case Q6_K: return dot4Q6_K(p0, p1, p2, p3, a, nb, st);
    case F32: return dot4F32(p0, p1, p2, p3, a, nb);
    case F16: return dot4F16(p0, p1, p2, p3, a, nb);
    case Q5_0: return dot4Q5_0(p0, p1, p2, p3, a, nb, st);
    case Q5_1: return dot4Q5_1(p0, p1, p2, p3, a, nb, st);
    case Q4_1: return dot4Q4_1(p0, p1, p2, p3, a, nb, st);
    case Q5_K: return dot4Q5_K(p0, p1, p2, p3, a, nb, st);
    case Q3_K: return dot4Q3_K(p0, p1, p2, p3, a, nb, st);
    case Q2_K: return dot4Q2_K(p0, p1, p2, p3, a, nb, st);
    case IQ4_NL: return dot4IQ4_NL(p0, p1, p2, p3, a, nb, st);
    case BF16: return dot4BF16(p0, p1, p2, p3, a, nb);
    default: return isIQ(type) ? dot4IQ(type, p0, p1, p2, p3, a, nb) : f32x4.splat(NaN);
  }
}

/**
 * out[t*outStride + r] = Σ W[r] . act[t] for rows r0 <= r < r1 and tokens t < nTok. W row r starts
 * at w + r*rowBytes, activation row t (quantized to the type's dot type) at act + t*actRowBytes.
 * PACKED in type: the rows are packed (common.ts; 32-element block types, a multiple of 4 rows).
 * Returns 0, or -1 when the type has no kernel here (nothing written).
 */
export function matmul(
  type: i32, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32,
  act: usize, actRowBytes: i32, nTok: i32, out: usize, outStride: i32,
): i32 {
  const pk = (type & PACKED) != 0;
  type &= ~PACKED;
  const bs = matmulBlock(type);
  if (bs == 0 || (pk && !packable(type))) return -1;
  const nb = nIn / bs;
  const rb = <usize>rowBytes;
  const tb = <usize>rowBytes / <usize>nb;
  // with a scratch slot: eight tokens or more go to the register-tiled kernels (tile.ts) in chunks
  // of up to 16, the rest to the few-token and one-token kernels (one.ts) where the type has them;
  // whatever remains runs through the four-row kernels below
  let done = 0;
  const slot = claimSlot();
  if (slot != 0) {
    // below a handful of tokens (per type, measured) the few-token and one-token kernels are faster
    // where there are some: the tiled kernels' fixed cost per weight row is then too large a share
    // (the relaxed Q4_0/Q4_1 up to 11 tokens, Q5_0/Q5_1 up to 9, go through one.ts's four-token
    // multi32: measured, 14336x4096, one thread, Q4_0 9 tokens 15.9 ms against the tile's 21.9, 12
    // tokens 22.2 against 21.2; Q5_0 8 tokens 19.3 against 19.0-19.9, 12 tokens 27.8 against 24.1)
    const minTok = type == Q3_K ? 4 : type == Q6_K || type == Q5_K || type == Q2_K ? 5 : type == Q4_K ? 6
      : rx32(type) ? (type == Q4_0 || type == Q4_1 ? 12 : 10) : 8;
    // the float types (F16, BF16, F32): weights converted to f64 once for all tokens (tile-f.ts)
    if (isFloatTile(type)) done = matmulTiledF(slot, type, w, rowBytes, nIn, r0, r1, act, actRowBytes, nTok, out, outStride, floatMinTok(type));
    else done = matmulTiled(slot, type, pk, w, rowBytes, nIn, r0, r1, act, actRowBytes, nTok, out, outStride, minTok);
    // 2..8 tokens at a time: weights unpacked once for all of them (32-element block types)
    while (nTok - done >= 2) {
      const n = min(FEW_MAX, nTok - done);
      if (!matmulFew(slot, type, pk, w, rowBytes, nIn, r0, r1, act + <usize>done * <usize>actRowBytes, actRowBytes, n,
        out + ((<usize>done * <usize>outStride) << 2), outStride)) break;
      done += n;
    }
    if (oneBytes(type, nIn) <= slotBytes()) {
      while (done < nTok && matmulOne(slot, type, pk, w, rowBytes, nIn, r0, r1, act + <usize>done * <usize>actRowBytes,
        out + ((<usize>done * <usize>outStride) << 2))) done++;
    }
    releaseSlot(slot);
  }
  if (done >= nTok) return 0;
  for (let r = r0; r < r1; r += 4) {
    const nv = min(4, r1 - r);
    const p0 = rowAt(w, r, rb, tb, pk);
    const p1 = nv > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    const p2 = nv > 2 ? rowAt(w, r + 2, rb, tb, pk) : p1;
    const p3 = nv > 3 ? rowAt(w, r + 3, rb, tb, pk) : p2;
    for (let t = done; t < nTok; t++) {
      const res = dot4(type, p0, p1, p2, p3, act + <usize>t * <usize>actRowBytes, nb, blockStep(tb, pk));
      store4(out + ((<usize>t * <usize>outStride + <usize>r) << 2), res, nv);
    }
  }
  return 0;
}

/**
 * Pack the rows of a matrix in place (the layout in common.ts), or with unpack undo it: nRows (a
 * multiple of 4) rows of rowBytes bytes, blocks of blockBytes bytes; tmp: 4·rowBytes bytes of
 * scratch. Returns 0, or -1 when the arguments do not describe whole groups of whole blocks.
 */
export function packRows(w: usize, nRows: i32, rowBytes: i32, blockBytes: i32, tmp: usize, unpack: i32): i32 {
  if ((nRows & 3) != 0 || blockBytes <= 0 || rowBytes % blockBytes != 0) return -1;
  const rb = <usize>rowBytes, tb = <usize>blockBytes;
  const nb = rb / tb;
  for (let r = 0; r < nRows; r += 4) {
    const g = w + <usize>r * rb;
    memory.copy(tmp, g, rb << 2);
    for (let k: usize = 0; k < 4; k++) {
      for (let b: usize = 0; b < nb; b++) {
        const plain = k * rb + b * tb, packed = ((b << 2) + k) * tb;
        if (unpack != 0) memory.copy(g + plain, tmp + packed, tb);
        else memory.copy(g + packed, tmp + plain, tb);
      }
    }
  }
  return 0;
}
