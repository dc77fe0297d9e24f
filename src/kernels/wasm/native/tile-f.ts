// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Register-tiled float matmul for several activation rows (prompt processing): F16, BF16 and F32
// weights with activations of the same type.
//
// WebAssembly has no half-float instruction: converting 8 halves to f32 costs ~20 SIMD operations,
// more than the products themselves. The one-token kernel (matmul-f.ts dot4F16) converts each
// weight again for every token; here each call converts its activations to float64 once (a row of
// nIn f64 per token in the scratch slot, or windows of them for long rows) and, per group of four
// weight rows, a chunk of KC elements of those rows once into an f64 panel (element k: the four
// rows' weights, 32 bytes), which then meets every token of the call. The tile is 4 rows x 4
// tokens: per element, two f64x2 loads of the panel (rows 0,1 and 2,3) and one f64 splat per
// token, 8 f64x2 accumulators (wider tiles spill registers in V8 and ran slower).
//
// Results are bit-identical to the reference (src/quant/float-types.ts vecDot*): the products of two
// bfloat16 or two float32 are exact in float64, and each (row, token) sum is float64 in element
// order, as the reference sums. (The relaxed build's f64x2.relaxed_madd may fuse or not: with an
// exact product both round the same.) F16 sums in float32 lanes as its reference does (the
// products of two halves are exact in float32), with its own, wider tile: see the end of the file.

import { RELAXED, f16ToF32, f16x4ToF32x4, maddF, store4 } from "./common";
import { slotBytes } from "./tile";

// ggml type ids (as matmul.ts)
const F32: i32 = 0;
const F16: i32 = 1;
const BF16: i32 = 30;

/** elements of the weight panel (per group of four rows) */
const KC: i32 = 256;
/** most tokens per chunk */
const TMAX: i32 = 64;
/** rows per block while the activations come in windows */
const RB: i32 = 64;
/** slot layout: the weight panel (KC x 4 f64), the accumulators (RB rows x TMAX tokens f64), the activations */
const PANEL: usize = 0;
const ACCF: usize = <usize>KC * 32;
const ACTF: usize = ACCF + <usize>(RB * TMAX) * 8;

/** whether the type has the float tile */
@inline export function isFloatTile(type: i32): bool {
  return type == F16 || type == F32 || type == BF16;
}

/** four elements (from element i) of a row at p, as f32x4 */
@inline function cvt4(type: i32, p: usize, i: i32): v128 {
  if (type == F32) return v128.load(p + (<usize>i << 2));
  const h = i32x4.extend_low_i16x8_u(v128.load64_zero(p + (<usize>i << 1)));
  if (type == F16) return f16x4ToF32x4(h);
  return i32x4.shl(h, 16);
}

/** element i of a row at p as f64 */
@inline function cvt1(type: i32, p: usize, i: i32): f64 {
  if (type == F32) return <f64>load<f32>(p + (<usize>i << 2));
  const h = <u32>load<u16>(p + (<usize>i << 1));
  if (type == F16) return <f64>f16ToF32(h);
  return <f64>reinterpret<f32>(h << 16);
}

/** n elements of a row at p as f64 at dst */
@inline function actRow(type: i32, p: usize, n: i32, dst: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const f = cvt4(type, p, i);
    const o = dst + (<usize>i << 3);
    v128.store(o, f64x2.promote_low_f32x4(f));
    v128.store(o, f64x2.promote_low_f32x4(i32x4.shuffle(f, f, 2, 3, 2, 3)), 16);
  }
  for (; i < n; i++) store<f64>(dst + (<usize>i << 3), cvt1(type, p, i));
}

/** elements [k0, k0+n) of four rows as the f64 panel at dst (element k: rows 0..3, 32 bytes) */
@inline function panel(type: i32, p0: usize, p1: usize, p2: usize, p3: usize, k0: i32, n: i32, dst: usize): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = cvt4(type, p0, k0 + i), b = cvt4(type, p1, k0 + i), c = cvt4(type, p2, k0 + i), d = cvt4(type, p3, k0 + i);
    const ab0 = i32x4.shuffle(a, b, 0, 4, 1, 5), ab1 = i32x4.shuffle(a, b, 2, 6, 3, 7);
    const cd0 = i32x4.shuffle(c, d, 0, 4, 1, 5), cd1 = i32x4.shuffle(c, d, 2, 6, 3, 7);
    const o = dst + (<usize>i << 5);
    v128.store(o, f64x2.promote_low_f32x4(ab0));
    v128.store(o, f64x2.promote_low_f32x4(cd0), 16);
    v128.store(o, f64x2.promote_low_f32x4(i32x4.shuffle(ab0, ab0, 2, 3, 2, 3)), 32);
    v128.store(o, f64x2.promote_low_f32x4(i32x4.shuffle(cd0, cd0, 2, 3, 2, 3)), 48);
    v128.store(o, f64x2.promote_low_f32x4(ab1), 64);
    v128.store(o, f64x2.promote_low_f32x4(cd1), 80);
    v128.store(o, f64x2.promote_low_f32x4(i32x4.shuffle(ab1, ab1, 2, 3, 2, 3)), 96);
    v128.store(o, f64x2.promote_low_f32x4(i32x4.shuffle(cd1, cd1, 2, 3, 2, 3)), 112);
  }
  for (; i < n; i++) {
    const o = dst + (<usize>i << 5);
    const k = k0 + i;
    store<f64>(o, cvt1(type, p0, k));
    store<f64>(o, cvt1(type, p1, k), 8);
    store<f64>(o, cvt1(type, p2, k), 16);
    store<f64>(o, cvt1(type, p3, k), 24);
  }
}

/** c + a·b (a·b exact here, so fused or not gives the same) */
@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (RELAXED) return f64x2.relaxed_madd(a, b, c);
  return f64x2.add(c, f64x2.mul(a, b));
}

/**
 * G (1..4) tokens, activations at a (token j at a + j·ast, already at the chunk's first element),
 * over the n panel elements; accumulators (rows 0,1 and 2,3 per token) at acc.
 */
@inline function tile(G: i32, pan: usize, n: i32, a: usize, ast: usize, acc: usize): void {
  const a1 = a + ast, a2 = a1 + ast, a3 = a2 + ast;
  let c00 = v128.load(acc), c01 = v128.load(acc, 16);
  let c10 = c00, c11 = c01, c20 = c00, c21 = c01, c30 = c00, c31 = c01;
  if (G > 1) { c10 = v128.load(acc, 32); c11 = v128.load(acc, 48); }
  if (G > 2) { c20 = v128.load(acc, 64); c21 = v128.load(acc, 80); }
  if (G > 3) { c30 = v128.load(acc, 96); c31 = v128.load(acc, 112); }
  for (let k = 0; k < n; k++) {
    const pk = pan + (<usize>k << 5);
    const ak = <usize>k << 3;
    const w01 = v128.load(pk), w23 = v128.load(pk, 16);
    const x0 = v128.load64_splat(a + ak);
    c00 = madd(w01, x0, c00);
    c01 = madd(w23, x0, c01);
    if (G > 1) {
      const x1 = v128.load64_splat(a1 + ak);
      c10 = madd(w01, x1, c10);
      c11 = madd(w23, x1, c11);
    }
    if (G > 2) {
      const x2 = v128.load64_splat(a2 + ak);
      c20 = madd(w01, x2, c20);
      c21 = madd(w23, x2, c21);
    }
    if (G > 3) {
      const x3 = v128.load64_splat(a3 + ak);
      c30 = madd(w01, x3, c30);
      c31 = madd(w23, x3, c31);
    }
  }
  v128.store(acc, c00); v128.store(acc, c01, 16);
  if (G > 1) { v128.store(acc, c10, 32); v128.store(acc, c11, 48); }
  if (G > 2) { v128.store(acc, c20, 64); v128.store(acc, c21, 80); }
  if (G > 3) { v128.store(acc, c30, 96); v128.store(acc, c31, 112); }
}


// ---- F16: float32, four lanes per (row, token) ----
// The reference (vecDotF16) puts element i into lane i mod 4 of a float32 sum per (row, token),
// then adds (l0 + l2) + (l1 + l3) and the last nIn mod 4 products. Here the activations of a chunk
// are converted to f32 once, four weight rows a chunk of KC elements at a time into an f32 panel
// (row j's elements contiguous), and a tile of 4 rows x 2 tokens keeps 8 f32x4 accumulators: per
// 4 elements, 4 panel loads, and per token one activation load and 4 multiply-adds (4 elements
// each, twice the f64 tile's width). The accumulators of a block of RB16 rows stay in the slot.

/** rows per block (4 rows x 4 lanes x f32 per token: RB16 x TMAX x 16 bytes fit the accumulator area) */
const RB16: i32 = 32;

/** n (a multiple of 4) halves at p as exact f32 at dst */
@inline function actRowF16(p: usize, n: i32, dst: usize): void {
  for (let i = 0; i < n; i += 4) v128.store(dst + (<usize>i << 2), cvt4(F16, p, i));
}

/** elements [k0, k0+n) (n a multiple of 4) of four rows as f32 at dst: row j at dst + j·KC·4 */
@inline function panelF16(p0: usize, p1: usize, p2: usize, p3: usize, k0: i32, n: i32, dst: usize): void {
  const rs = <usize>KC << 2;
  for (let i = 0; i < n; i += 4) {
    const o = dst + (<usize>i << 2);
    v128.store(o, cvt4(F16, p0, k0 + i));
    v128.store(o + rs, cvt4(F16, p1, k0 + i));
    v128.store(o + 2 * rs, cvt4(F16, p2, k0 + i));
    v128.store(o + 3 * rs, cvt4(F16, p3, k0 + i));
  }
}

/** G (1, 2) tokens (token j's f32 activations at a + j·ast) over n panel elements; token j's rows at acc + 64j */
@inline function tileF16(G: i32, pan: usize, n: i32, a: usize, ast: usize, acc: usize): void {
  const rs = <usize>KC << 2;
  let c00 = v128.load(acc), c01 = v128.load(acc, 16), c02 = v128.load(acc, 32), c03 = v128.load(acc, 48);
  let c10 = c00, c11 = c01, c12 = c02, c13 = c03;
  if (G > 1) { c10 = v128.load(acc, 64); c11 = v128.load(acc, 80); c12 = v128.load(acc, 96); c13 = v128.load(acc, 112); }
  const a1 = a + ast;
  for (let k = 0; k < n; k += 4) {
    const o = <usize>k << 2;
    const w0 = v128.load(pan + o), w1 = v128.load(pan + rs + o), w2 = v128.load(pan + 2 * rs + o), w3 = v128.load(pan + 3 * rs + o);
    const x0 = v128.load(a + o);
    c00 = maddF(w0, x0, c00);
    c01 = maddF(w1, x0, c01);
    c02 = maddF(w2, x0, c02);
    c03 = maddF(w3, x0, c03);
    if (G > 1) {
      const x1 = v128.load(a1 + o);
      c10 = maddF(w0, x1, c10);
      c11 = maddF(w1, x1, c11);
      c12 = maddF(w2, x1, c12);
      c13 = maddF(w3, x1, c13);
    }
  }
  v128.store(acc, c00); v128.store(acc, c01, 16); v128.store(acc, c02, 32); v128.store(acc, c03, 48);
  if (G > 1) { v128.store(acc, c10, 64); v128.store(acc, c11, 80); v128.store(acc, c12, 96); v128.store(acc, c13, 112); }
}


// ---- the driver, for the three types: F16 with f32 lanes (tileF16), BF16 and F32 with f64 (tile) ----

/** log2 of the bytes of one converted activation or panel element: f32 (F16) or f64 */
@inline function elemShift(type: i32): usize {
  return type == F16 ? 2 : 3;
}

/** log2 of the accumulator bytes of four rows and one token: 4 f32x4 lanes (F16) or 4 f64 */
@inline function accShift(type: i32): usize {
  return type == F16 ? 6 : 5;
}

/** the elements the tiles take: all of them, or for F16 a multiple of 4 (the rest after the lanes) */
@inline function tileElems(type: i32, nIn: i32): i32 {
  return type == F16 ? nIn & ~3 : nIn;
}

/** converted activations of tokens t0 .. t0+tc-1, elements [k0, k0+n), at af (token t at af + t·ast) */
@inline function actWindow(type: i32, act: usize, arb: usize, t0: i32, tc: i32, k0: i32, n: i32, af: usize, ast: usize): void {
  const off = <usize>k0 << (type == F32 ? 2 : 1);
  for (let t = 0; t < tc; t++) {
    const p = act + <usize>(t0 + t) * arb + off, dst = af + <usize>t * ast;
    if (type == F16) actRowF16(p, n, dst);
    else actRow(type, p, n, dst);
  }
}

/** the tiles of tc tokens over n panel elements (token t's activations at ak + t·ast, accumulators at ag + t << accShift) */
@inline function tiles(type: i32, pan: usize, n: i32, ak: usize, ast: usize, ag: usize, tc: i32): void {
  let t = 0;
  if (type == F16) {
    for (; t + 2 <= tc; t += 2) tileF16(2, pan, n, ak + <usize>t * ast, ast, ag + (<usize>t << 6));
    if (t < tc) tileF16(1, pan, n, ak + <usize>t * ast, ast, ag + (<usize>t << 6));
    return;
  }
  for (; t + 4 <= tc; t += 4) tile(4, pan, n, ak + <usize>t * ast, ast, ag + (<usize>t << 5));
  const rest = tc - t;
  if (rest == 3) tile(3, pan, n, ak + <usize>t * ast, ast, ag + (<usize>t << 5));
  else if (rest == 2) tile(2, pan, n, ak + <usize>t * ast, ast, ag + (<usize>t << 5));
  else if (rest == 1) tile(1, pan, n, ak + <usize>t * ast, ast, ag + (<usize>t << 5));
}

/**
 * The results of rows [r, r + nv) for tokens t0 .. t0+tc-1 from their accumulators at ag: f64
 * rounded to f32; F16 adds its lanes (l0 + l2) + (l1 + l3), then the tail elements in order.
 */
@inline function results(type: i32, w: usize, rb: usize, nIn: i32, r: i32, nv: i32, ag: usize, act: usize, arb: usize,
  tc: i32, out: usize, outStride: i32, t0: i32): void {
  for (let t = 0; t < tc; t++) {
    const o = out + ((<usize>(t0 + t) * <usize>outStride + <usize>r) << 2);
    if (type != F16) {
      const s = ag + (<usize>t << 5);
      const lo = f32x4.demote_f64x2_zero(v128.load(s)), hi = f32x4.demote_f64x2_zero(v128.load(s, 16));
      store4(o, i32x4.shuffle(lo, hi, 0, 1, 4, 5), nv);
      continue;
    }
    const ap = act + <usize>(t0 + t) * arb;
    for (let j = 0; j < nv; j++) {
      const c = v128.load(ag + (<usize>t << 6) + (<usize>j << 4));
      const h = f32x4.add(c, i32x4.shuffle(c, c, 2, 3, 0, 1));
      let sum: f32 = f32x4.extract_lane(h, 0) + f32x4.extract_lane(h, 1);
      const wr = w + <usize>(r + j) * rb;
      for (let i = nIn & ~3; i < nIn; i++) {
        sum += f16ToF32(load<u16>(wr + (<usize>i << 1))) * f16ToF32(load<u16>(ap + (<usize>i << 1)));
      }
      store<f32>(o + (<usize>j << 2), sum);
    }
  }
}

/**
 * rows [r0, r1) for tokens t0 .. t0+tc-1. With kw >= tileElems the converted activations of whole
 * rows are at af already; else they are converted a window of kw elements at a time, per block of
 * rows (the accumulators of a block's rows stay in the slot across the windows).
 */
@inline function rowsF(type: i32, w: usize, rb: usize, nIn: i32, r0: i32, r1: i32, slot: usize, act: usize, arb: usize,
  af: usize, ast: usize, kw: i32, tc: i32, out: usize, outStride: i32, t0: i32): void {
  const pan = slot + PANEL;
  const acc = slot + ACCF;
  const nK = tileElems(type, nIn);
  const full = kw >= nK;
  const gb = <usize>tc << accShift(type);
  const rbk = type == F16 ? RB16 : RB;
  const z = i32x4.splat(0);
  for (let b0 = r0; b0 < r1; b0 += rbk) {
    const b1 = min(r1, b0 + rbk);
    const accEnd = <usize>((b1 - b0 + 3) >> 2) * gb;
    for (let i: usize = 0; i < accEnd; i += 16) v128.store(acc + i, z);
    for (let w0 = 0; w0 < nK; w0 += kw) {
      const nw = min(kw, nK - w0);
      if (!full) actWindow(type, act, arb, t0, tc, w0, nw, af, ast);
      let ag = acc;
      for (let r = b0; r < b1; r += 4) {
        const nv = min(4, b1 - r);
        const p0 = w + <usize>r * rb;
        const p1 = nv > 1 ? p0 + rb : p0;
        const p2 = nv > 2 ? p1 + rb : p1;
        const p3 = nv > 3 ? p2 + rb : p2;
        for (let k0 = w0; k0 < w0 + nw; k0 += KC) {
          const n = min(KC, w0 + nw - k0);
          if (type == F16) panelF16(p0, p1, p2, p3, k0, n, pan);
          else panel(type, p0, p1, p2, p3, k0, n, pan);
          tiles(type, pan, n, af + (<usize>(k0 - w0) << elemShift(type)), ast, ag, tc);
        }
        ag += gb;
      }
    }
    let ag = acc;
    for (let r = b0; r < b1; r += 4) {
      results(type, w, rb, nIn, r, min(4, b1 - r), ag, act, arb, tc, out, outStride, t0);
      ag += gb;
    }
  }
}

/**
 * The multi-token float matmul (arguments as matmul's, and a claimed scratch slot): tokens [0, done)
 * for rows [r0, r1); returns done, 0 when it does not apply (not a float type, fewer than minTok
 * tokens, a slot too small). Tokens are taken in chunks of equal size, up to 64; the converted
 * activations of a chunk are converted once when whole rows of them fit in the slot, else in
 * windows of elements (once per block of rows).
 */
export function matmulTiledF(
  slot: usize, type: i32, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32,
  act: usize, actRowBytes: i32, nTok: i32, out: usize, outStride: i32, minTok: i32,
): i32 {
  if (!isFloatTile(type) || nTok < minTok || nTok < 1 || r1 <= r0 || nIn <= 0) return 0;
  if (slotBytes() < ACTF + <usize>TMAX * (<usize>(KC << 3) + 64)) return 0;
  switch (type) {
    case F16: return chunksF(F16, slot, w, rowBytes, nIn, r0, r1, act, actRowBytes, nTok, out, outStride, minTok);
    case BF16: return chunksF(BF16, slot, w, rowBytes, nIn, r0, r1, act, actRowBytes, nTok, out, outStride, minTok);
    default: return chunksF(F32, slot, w, rowBytes, nIn, r0, r1, act, actRowBytes, nTok, out, outStride, minTok);
  }
}

@inline function chunksF(
  type: i32, slot: usize, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32,
  act: usize, actRowBytes: i32, nTok: i32, out: usize, outStride: i32, minTok: i32,
): i32 {
  const room = slotBytes() - ACTF;
  const arb = <usize>actRowBytes;
  const af = slot + ACTF;
  const es = elemShift(type);
  const nK = tileElems(type, nIn);
  let t0 = 0;
  while (nTok - t0 >= minTok && t0 < nTok) {
    // chunks of equal size (70 tokens: 35 and 35, not 64 and 6)
    const rem = nTok - t0;
    const nc = (rem + TMAX - 1) / TMAX;
    const tc = (rem + nc - 1) / nc;
    // activation rows (or windows), padded so that the tokens do not all fall on the same cache sets
    let ast = (((<usize>nIn << es) + 63) & ~(<usize>63)) + 64;
    let kw = nK;
    if (<usize>tc * ast > room) {
      kw = <i32>(((room / <usize>tc - 64) >> es) & ~(<usize>(KC - 1)));
      ast = (<usize>kw << es) + 64;
    }
    if (kw >= nK) actWindow(type, act, arb, t0, tc, 0, nK, af, ast);
    rowsF(type, w, <usize>rowBytes, nIn, r0, r1, slot, act, arb, af, ast, kw, tc, out, outStride, t0);
    t0 += tc;
  }
  return t0;
}
