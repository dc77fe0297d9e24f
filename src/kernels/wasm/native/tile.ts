// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Register-tiled quantized matmul for several activation rows (prompt processing).
//
// Layout trick: the vector lanes are tokens, not elements. Per call (per thread) the quantized
// activations of up to 16 tokens are widened to i16 once and interleaved in a scratch slot so that
// vector k of a 32-element block and a group of four tokens holds the element pair (2k, 2k+1) of
// each token ("A4"). Each weight row is unpacked once per 256 elements to i16 values (with the
// offset, and for the K-quants the sub-block scale, already applied: all products and sums stay
// exact in i32), and a pair of weights broadcast to all lanes (v128.load32_splat) meets four tokens
// in one i32x4.dot_i16x8_s. The i32 lanes then are one (row, token) sum each: no horizontal sums,
// and the float work of a block is vectorized over four tokens. Two rows and up to four token
// groups (8 i32x4 accumulators) are live at once.
//
// Results are bit-identical to the reference: each block's integer sum is exact, the scale product
// is formed as the reference does (or is exact either way, e.g. f16*f16 in f64), and the float64
// accumulation per (row, token) is in block order, term for term.
//
// Scratch: JavaScript gives the module one region per memory (setMatmulScratch, called by the
// WasmKernels constructor): an f16 -> f32 table and slots; every matmul call claims a free slot
// with an atomic compare-exchange and releases it at the end, so any number of threads and
// instances may share a memory. The descriptor lives at a fixed address below the module's memory
// base (1024), which no data segment and no allocation ever touches. Without a descriptor or a
// free slot the caller runs the plain four-row kernels instead (same results).

import { RELAXED, blockStep, f16ToF32, f16x4ToF32x4, hsum4, rdot, rowAt } from "./common";
import { k4Scales, q3Scales } from "./matmul-k";
import { qhMaskHi, qhMaskLo } from "./matmul-q";
import { iqBytes, isIQ, unpackIQ } from "./matmul-iq";

// ggml type ids (as matmul.ts)
const Q4_0: i32 = 2;
const Q4_1: i32 = 3;
const Q5_0: i32 = 6;
const Q5_1: i32 = 7;
const Q8_0: i32 = 8;
const Q2_K: i32 = 10;
const Q3_K: i32 = 11;
const Q4_K: i32 = 12;
const Q5_K: i32 = 13;
const Q6_K: i32 = 14;
const IQ4_NL: i32 = 20;

/** descriptor: u32 magic, flags ptr, first slot, slot bytes, slot count, f16 table (address < __heap_base) */
const DESC: usize = 960;
const MAGIC: u32 = 0x4c49_5431;

// slot layout
/** float64 accumulators [2 rows][16 tokens] */
const ACC: usize = 0;
/** unpacked weights of the two rows: i16[256] each, then per-row scales */
const WS: usize = 512;
const WROW: usize = 1024;
/** bytes of zeros standing in for the activation rows of absent tokens */
const ZERO: usize = 2560;
/** activation side tables and A4 start here */
const HDR: usize = 4096;

/** bytes of the f16 -> f32 table at the start of the scratch region */
const TABLE_BYTES: usize = 65536 * 4;

/** bytes setMatmulScratch needs for nSlots slots of slotBytes */
export function matmulScratchBytes(nSlots: i32, slotBytes: i32): i32 {
  return <i32>TABLE_BYTES + 64 + (((nSlots << 2) + 63) & ~63) + nSlots * (slotBytes & ~63);
}

/**
 * Hand the module a region of matmulScratchBytes(nSlots, slotBytes) bytes at ptr (64-byte
 * aligned) for the kernels of every instance over this memory: an f16 -> f32 table, then the slot
 * flags and the slots. ptr 0 turns the scratch kernels off. Call it before any matmul runs on the
 * memory (the region must stay reserved afterwards).
 */
export function setMatmulScratch(ptr: usize, nSlots: i32, slotBytes: i32): void {
  atomic.store<u32>(DESC, 0);
  if (ptr == 0 || nSlots <= 0 || slotBytes < <i32>HDR + 4096) return;
  for (let h: u32 = 0; h < 65536; h++) store<f32>(ptr + (<usize>h << 2), f16ToF32(h));
  const flags = ptr + TABLE_BYTES;
  memory.fill(flags, 0, 64 + ((<usize>(nSlots << 2) + 63) & ~63));
  store<u32>(DESC, <u32>flags, 4);
  store<u32>(DESC, <u32>(flags + 64 + ((<usize>(nSlots << 2) + 63) & ~63)), 8);
  store<u32>(DESC, <u32>(slotBytes & ~63), 12);
  store<u32>(DESC, <u32>nSlots, 16);
  store<u32>(DESC, <u32>ptr, 20);
  atomic.store<u32>(DESC, MAGIC);
}

/** a free scratch slot, claimed (its address; 0 when there is none) */
export function claimSlot(): usize {
  if (atomic.load<u32>(DESC) != MAGIC) return 0;
  const flags = <usize>load<u32>(DESC, 4);
  const n = <i32>load<u32>(DESC, 16);
  for (let i = 0; i < n; i++) {
    if (atomic.cmpxchg<u32>(flags + (<usize>i << 2), 0, 1) == 0) {
      return <usize>load<u32>(DESC, 8) + <usize>i * <usize>load<u32>(DESC, 12);
    }
  }
  return 0;
}

/** give a slot from claimSlot back */
export function releaseSlot(slot: usize): void {
  const i = (slot - <usize>load<u32>(DESC, 8)) / <usize>load<u32>(DESC, 12);
  atomic.store<u32>(<usize>load<u32>(DESC, 4) + (i << 2), 0);
}

/** bytes of a slot */
@inline export function slotBytes(): usize {
  return <usize>load<u32>(DESC, 12);
}

/** the f16 -> f32 table (f32 at table + 4*h) */
@inline export function f16Table(): usize {
  return <usize>load<u32>(DESC, 20);
}

// ---- activations: A4 and the per-block scales of a group of four tokens ----

/** store the 4x4 transpose of i32 lanes of a..d at dst (vector l = lane l of a, b, c, d) */
@inline function transposeStore(a: v128, b: v128, c: v128, d: v128, dst: usize): void {
  const t0 = i32x4.shuffle(a, b, 0, 4, 1, 5);
  const t1 = i32x4.shuffle(a, b, 2, 6, 3, 7);
  const t2 = i32x4.shuffle(c, d, 0, 4, 1, 5);
  const t3 = i32x4.shuffle(c, d, 2, 6, 3, 7);
  v128.store(dst, i32x4.shuffle(t0, t2, 0, 1, 4, 5));
  v128.store(dst, i32x4.shuffle(t0, t2, 2, 3, 6, 7), 16);
  v128.store(dst, i32x4.shuffle(t1, t3, 0, 1, 4, 5), 32);
  v128.store(dst, i32x4.shuffle(t1, t3, 2, 3, 6, 7), 48);
}

/** 32 i8 activations of four tokens (at q0..q3) as the 16 pair vectors of A4 at dst */
@inline function prepBlock(q0: usize, q1: usize, q2: usize, q3: usize, dst: usize): void {
  let a = v128.load(q0), b = v128.load(q1), c = v128.load(q2), d = v128.load(q3);
  transposeStore(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_s(b), i16x8.extend_low_i8x16_s(c), i16x8.extend_low_i8x16_s(d), dst);
  transposeStore(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_s(b), i16x8.extend_high_i8x16_s(c), i16x8.extend_high_i8x16_s(d), dst + 64);
  a = v128.load(q0, 16); b = v128.load(q1, 16); c = v128.load(q2, 16); d = v128.load(q3, 16);
  transposeStore(i16x8.extend_low_i8x16_s(a), i16x8.extend_low_i8x16_s(b), i16x8.extend_low_i8x16_s(c), i16x8.extend_low_i8x16_s(d), dst + 128);
  transposeStore(i16x8.extend_high_i8x16_s(a), i16x8.extend_high_i8x16_s(b), i16x8.extend_high_i8x16_s(c), i16x8.extend_high_i8x16_s(d), dst + 192);
}

@inline function halves4(p0: usize, p1: usize, p2: usize, p3: usize, off: usize): v128 {
  let v = i32x4.splat(0);
  v = i32x4.replace_lane(v, 0, <i32>load<u16>(p0 + off));
  v = i32x4.replace_lane(v, 1, <i32>load<u16>(p1 + off));
  v = i32x4.replace_lane(v, 2, <i32>load<u16>(p2 + off));
  v = i32x4.replace_lane(v, 3, <i32>load<u16>(p3 + off));
  return f16x4ToF32x4(v);
}

/**
 * The relaxed kernels' A4 of a 32-element block: vector k (0..7) holds the element quad
 * 4k..4k+3 of each of the four tokens (i8, as they are); 128 bytes. Returns the four tokens' Σq.
 */
@inline function prepBlockR(q0: usize, q1: usize, q2: usize, q3: usize, dst: usize): v128 {
  const a0 = v128.load(q0), b0 = v128.load(q1), c0 = v128.load(q2), d0 = v128.load(q3);
  transposeStore(a0, b0, c0, d0, dst);
  const a1 = v128.load(q0, 16), b1 = v128.load(q1, 16), c1 = v128.load(q2, 16), d1 = v128.load(q3, 16);
  transposeStore(a1, b1, c1, d1, dst + 64);
  return hsum4(bsum32(a0, a1), bsum32(b0, b1), bsum32(c0, c1), bsum32(d0, d1));
}

/** Σ of the 32 i8 lanes of x and y as i32x4 partial sums */
@inline function bsum32(x: v128, y: v128): v128 {
  return i32x4.extadd_pairwise_i16x8_s(i16x8.add(i16x8.extadd_pairwise_i8x16_s(x), i16x8.extadd_pairwise_i8x16_s(y)));
}

/**
 * Group g (of G) of a token chunk: tokens t0 .. t0+nv-1 (nv <= 4; absent lanes read zeros).
 * fam 0: Q8_0 rows (side: d as 2 f64x2), 1: Q8_1 (d, then s), 2: Q8_K (d as f32x4, then the block
 * sums as 8 pair vectors). rx: the relaxed kernels' A4 (prepBlockR, 128 bytes a block), and for
 * fam 0 the offset correction Σq << sh (i32x4) after d.
 */
function prepGroup(fam: i32, rx: bool, sh: i32, act: usize, arb: usize, t0: i32, nv: i32, nIn: i32, G: i32, g: i32, a4: usize, side: usize, zero: usize): void {
  const p0 = act + <usize>t0 * arb;
  let p1 = zero, p2 = zero, p3 = zero;
  let i1: usize = 0, i2: usize = 0, i3: usize = 0;
  const bytes: usize = fam == 0 ? 34 : fam == 1 ? 36 : 292;
  if (nv > 1) { p1 = p0 + arb; i1 = bytes; }
  if (nv > 2) { p2 = p1 + arb; i2 = bytes; }
  if (nv > 3) { p3 = p2 + arb; i3 = bytes; }
  let q0 = p0, q1 = p1, q2 = p2, q3 = p3;
  const gu = <usize>G, gi = <usize>g;
  if (fam == 2) {
    const nbK = nIn >> 8;
    for (let B = 0; B < nbK; B++) {
      for (let s = 0; s < 8; s++) {
        const o = <usize>(4 + 32 * s);
        if (RELAXED && rx) prepBlockR(q0 + o, q1 + o, q2 + o, q3 + o, a4 + (((<usize>(8 * B + s)) * gu + gi) << 7));
        else prepBlock(q0 + o, q1 + o, q2 + o, q3 + o, a4 + (((<usize>(8 * B + s)) * gu + gi) << 8));
      }
      const sd = side + (<usize>B * gu + gi) * 144;
      let d = f32x4.splat(0);
      d = f32x4.replace_lane(d, 0, load<f32>(q0));
      d = f32x4.replace_lane(d, 1, load<f32>(q1));
      d = f32x4.replace_lane(d, 2, load<f32>(q2));
      d = f32x4.replace_lane(d, 3, load<f32>(q3));
      v128.store(sd, d);
      transposeStore(v128.load(q0, 260), v128.load(q1, 260), v128.load(q2, 260), v128.load(q3, 260), sd + 16);
      transposeStore(v128.load(q0, 276), v128.load(q1, 276), v128.load(q2, 276), v128.load(q3, 276), sd + 80);
      q0 += bytes; q1 += i1; q2 += i2; q3 += i3;
    }
  } else {
    const nb = nIn >> 5;
    const qo: usize = fam == 1 ? 4 : 2;
    const sb: usize = fam == 1 ? 64 : RELAXED && rx ? 48 : 32;
    for (let b = 0; b < nb; b++) {
      const bg = <usize>b * gu + gi;
      if (RELAXED && rx) {
        const sums = prepBlockR(q0 + qo, q1 + qo, q2 + qo, q3 + qo, a4 + (bg << 7));
        if (fam == 0) v128.store(side + bg * sb, i32x4.shl(sums, sh), 32);
      } else {
        prepBlock(q0 + qo, q1 + qo, q2 + qo, q3 + qo, a4 + (bg << 8));
      }
      const d = halves4(q0, q1, q2, q3, 0);
      v128.store(side + bg * sb, f64x2.promote_low_f32x4(d));
      v128.store(side + bg * sb, f64x2.promote_low_f32x4(i32x4.shuffle(d, d, 2, 3, 2, 3)), 16);
      if (fam == 1) {
        const m = halves4(q0, q1, q2, q3, 2);
        v128.store(side + bg * sb, f64x2.promote_low_f32x4(m), 32);
        v128.store(side + bg * sb, f64x2.promote_low_f32x4(i32x4.shuffle(m, m, 2, 3, 2, 3)), 48);
      }
      q0 += bytes; q1 += i1; q2 += i2; q3 += i3;
    }
  }
}

// ---- weights: one row's blocks unpacked to i16 (offset and sub-block scales applied) ----

/** the f16 at byte off of p as f32, from the table */
@inline function h2f(p: usize, off: usize = 0): f32 {
  return load<f32>(f16Table() + (<usize>load<u16>(p + off) << 2));
}

/** elements 0..15 (lo) and 16..31 (hi) of a block, i8 values, stored widened at o */
@inline function store32(o: usize, lo: v128, hi: v128): void {
  v128.store(o, i16x8.extend_low_i8x16_s(lo));
  v128.store(o, i16x8.extend_high_i8x16_s(lo), 16);
  v128.store(o, i16x8.extend_low_i8x16_s(hi), 32);
  v128.store(o, i16x8.extend_high_i8x16_s(hi), 48);
}

/** n (<= 8) blocks of 32 at p (st bytes apart) to i16[32n] at dst; f32 d at dst+512+4s, m (Q4_1/Q5_1) at dst+544+4s */
function unpack32(type: i32, p: usize, n: i32, dst: usize, st: usize): void {
  const m4 = i8x16.splat(15);
  switch (type) {
    case Q8_0: {
      for (let s = 0; s < n; s++) {
        store32(dst + (<usize>s << 6), v128.load(p, 2), v128.load(p, 18));
        store<f32>(dst + (<usize>s << 2), h2f(p), 512);
        p += st;
      }
      break;
    }
    case Q4_0: {
      const b8 = i8x16.splat(8);
      for (let s = 0; s < n; s++) {
        const q = v128.load(p, 2);
        store32(dst + (<usize>s << 6), i8x16.sub(v128.and(q, m4), b8), i8x16.sub(i8x16.shr_u(q, 4), b8));
        store<f32>(dst + (<usize>s << 2), h2f(p), 512);
        p += st;
      }
      break;
    }
    case IQ4_NL: {
      const kv = i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
      for (let s = 0; s < n; s++) {
        const q = v128.load(p, 2);
        store32(dst + (<usize>s << 6), i8x16.swizzle(kv, v128.and(q, m4)), i8x16.swizzle(kv, i8x16.shr_u(q, 4)));
        store<f32>(dst + (<usize>s << 2), h2f(p), 512);
        p += st;
      }
      break;
    }
    case Q5_0: {
      const b16 = i8x16.splat(16);
      for (let s = 0; s < n; s++) {
        const qh = i32x4.splat(load<u32>(p, 2));
        const q = v128.load(p, 6);
        const lo = v128.or(v128.and(q, m4), v128.and(qhMaskLo(qh), b16));
        const hi = v128.or(i8x16.shr_u(q, 4), v128.and(qhMaskHi(qh), b16));
        store32(dst + (<usize>s << 6), i8x16.sub(lo, b16), i8x16.sub(hi, b16));
        store<f32>(dst + (<usize>s << 2), h2f(p), 512);
        p += st;
      }
      break;
    }
    case Q4_1: {
      for (let s = 0; s < n; s++) {
        const q = v128.load(p, 4);
        store32(dst + (<usize>s << 6), v128.and(q, m4), i8x16.shr_u(q, 4));
        store<f32>(dst + (<usize>s << 2), h2f(p), 512);
        store<f32>(dst + (<usize>s << 2), h2f(p, 2), 544);
        p += st;
      }
      break;
    }
    case Q5_1: {
      const b16 = i8x16.splat(16);
      for (let s = 0; s < n; s++) {
        const qh = i32x4.splat(load<u32>(p, 4));
        const q = v128.load(p, 8);
        const lo = v128.or(v128.and(q, m4), v128.and(qhMaskLo(qh), b16));
        const hi = v128.or(i8x16.shr_u(q, 4), v128.and(qhMaskHi(qh), b16));
        store32(dst + (<usize>s << 6), lo, hi);
        store<f32>(dst + (<usize>s << 2), h2f(p), 512);
        store<f32>(dst + (<usize>s << 2), h2f(p, 2), 544);
        p += st;
      }
      break;
    }
  }
}

/** i16x8 splat of i16 lane k of v (k need not be constant) */
@inline function splat16(v: v128, k: i32): v128 {
  return i8x16.swizzle(v, i16x8.splat(<i16>(0x0100 + 0x0202 * k)));
}

/** 16 u8/i8 values (as i8 lanes) widened and multiplied by scale vector sc, at o */
@inline function store16s(o: usize, v: v128, sc: v128): void {
  v128.store(o, i16x8.mul(i16x8.extend_low_i8x16_s(v), sc));
  v128.store(o, i16x8.mul(i16x8.extend_high_i8x16_s(v), sc), 16);
}
@inline function store16u(o: usize, v: v128, sc: v128): void {
  v128.store(o, i16x8.mul(i16x8.extend_low_i8x16_u(v), sc));
  v128.store(o, i16x8.mul(i16x8.extend_high_i8x16_u(v), sc), 16);
}

/**
 * One K-quant super-block at p to i16[256] = scale·q at dst; f32 d at dst+512, dmin at dst+516,
 * the min pairs of the 8 block-sum pairs as i16x2 at dst+528 (Q4_K, Q5_K, Q2_K).
 */
function unpackK(type: i32, p: usize, dst: usize): void {
  const m4 = i8x16.splat(15);
  switch (type) {
    case Q4_K: {
      const sm = k4Scales(p);
      const sc = i16x8.extend_low_i8x16_u(sm);
      const mn = i16x8.extend_high_i8x16_u(sm);
      for (let j = 0; j < 4; j++) {
        const v0 = v128.load(p + <usize>(32 * j), 16);
        const v1 = v128.load(p + <usize>(32 * j), 32);
        const o = dst + <usize>(128 * j);
        const s0 = splat16(sc, 2 * j), s1 = splat16(sc, 2 * j + 1);
        store16u(o, v128.and(v0, m4), s0);
        store16u(o + 32, v128.and(v1, m4), s0);
        store16u(o + 64, i8x16.shr_u(v0, 4), s1);
        store16u(o + 96, i8x16.shr_u(v1, 4), s1);
      }
      store<f32>(dst, h2f(p), 512);
      store<f32>(dst, h2f(p, 2), 516);
      v128.store(dst, i16x8.shuffle(mn, mn, 0, 0, 1, 1, 2, 2, 3, 3), 528);
      v128.store(dst, i16x8.shuffle(mn, mn, 4, 4, 5, 5, 6, 6, 7, 7), 544);
      break;
    }
    case Q5_K: {
      const sm = k4Scales(p);
      const sc = i16x8.extend_low_i8x16_u(sm);
      const mn = i16x8.extend_high_i8x16_u(sm);
      const h0 = v128.load(p, 16);
      const h1 = v128.load(p, 32);
      const b16 = i8x16.splat(16);
      for (let j = 0; j < 4; j++) {
        const v0 = v128.load(p + <usize>(32 * j), 48);
        const v1 = v128.load(p + <usize>(32 * j), 64);
        const u1 = i8x16.splat(<i8>(<i32>1 << (2 * j)));
        const u2 = i8x16.splat(<i8>(<i32>2 << (2 * j)));
        const o = dst + <usize>(128 * j);
        const s0 = splat16(sc, 2 * j), s1 = splat16(sc, 2 * j + 1);
        store16u(o, v128.or(v128.and(v0, m4), v128.and(i8x16.eq(v128.and(h0, u1), u1), b16)), s0);
        store16u(o + 32, v128.or(v128.and(v1, m4), v128.and(i8x16.eq(v128.and(h1, u1), u1), b16)), s0);
        store16u(o + 64, v128.or(i8x16.shr_u(v0, 4), v128.and(i8x16.eq(v128.and(h0, u2), u2), b16)), s1);
        store16u(o + 96, v128.or(i8x16.shr_u(v1, 4), v128.and(i8x16.eq(v128.and(h1, u2), u2), b16)), s1);
      }
      store<f32>(dst, h2f(p), 512);
      store<f32>(dst, h2f(p, 2), 516);
      v128.store(dst, i16x8.shuffle(mn, mn, 0, 0, 1, 1, 2, 2, 3, 3), 528);
      v128.store(dst, i16x8.shuffle(mn, mn, 4, 4, 5, 5, 6, 6, 7, 7), 544);
      break;
    }
    case Q6_K: {
      const scv = v128.load(p, 192);
      const b32 = i8x16.splat(32);
      const m30 = i8x16.splat(0x30);
      for (let h = 0; h < 2; h++) {
        const sc = h == 0 ? i16x8.extend_low_i8x16_s(scv) : i16x8.extend_high_i8x16_s(scv);
        const hq0 = v128.load(p + <usize>(32 * h), 128);
        const hq1 = v128.load(p + <usize>(32 * h), 144);
        for (let k = 0; k < 4; k++) {
          const ql = p + <usize>(64 * h + 32 * (k & 1));
          let l0 = v128.load(ql), l1 = v128.load(ql, 16);
          if (k >= 2) { l0 = i8x16.shr_u(l0, 4); l1 = i8x16.shr_u(l1, 4); } else { l0 = v128.and(l0, m4); l1 = v128.and(l1, m4); }
          const v0 = v128.or(l0, v128.and(i8x16.shl(i8x16.shr_u(hq0, 2 * k), 4), m30));
          const v1 = v128.or(l1, v128.and(i8x16.shl(i8x16.shr_u(hq1, 2 * k), 4), m30));
          const o = dst + <usize>(256 * h + 64 * k);
          store16s(o, i8x16.sub(v0, b32), splat16(sc, 2 * k));
          store16s(o + 32, i8x16.sub(v1, b32), splat16(sc, 2 * k + 1));
        }
      }
      store<f32>(dst, h2f(p, 208), 512);
      break;
    }
    case Q3_K: {
      const scv = q3Scales(p);
      const m3 = i8x16.splat(3);
      const b4 = i8x16.splat(4);
      const hm0 = v128.load(p), hm1 = v128.load(p, 16);
      for (let h = 0; h < 2; h++) {
        const sc = h == 0 ? i16x8.extend_low_i8x16_s(scv) : i16x8.extend_high_i8x16_s(scv);
        const qs0 = v128.load(p + <usize>(32 * h), 32);
        const qs1 = v128.load(p + <usize>(32 * h), 48);
        for (let j = 0; j < 4; j++) {
          const bit = i8x16.splat(<i8>(<i32>1 << (4 * h + j)));
          const v0 = v128.or(v128.and(i8x16.shr_u(qs0, 2 * j), m3), v128.and(i8x16.eq(v128.and(hm0, bit), bit), b4));
          const v1 = v128.or(v128.and(i8x16.shr_u(qs1, 2 * j), m3), v128.and(i8x16.eq(v128.and(hm1, bit), bit), b4));
          const o = dst + <usize>(256 * h + 64 * j);
          store16s(o, i8x16.sub(v0, b4), splat16(sc, 2 * j));
          store16s(o + 32, i8x16.sub(v1, b4), splat16(sc, 2 * j + 1));
        }
      }
      store<f32>(dst, h2f(p, 108), 512);
      break;
    }
    case Q2_K: {
      const sb = v128.load(p);
      const scv = v128.and(sb, m4);
      const mnv = i8x16.shr_u(sb, 4);
      const m3 = i8x16.splat(3);
      for (let h = 0; h < 2; h++) {
        const sc = h == 0 ? i16x8.extend_low_i8x16_u(scv) : i16x8.extend_high_i8x16_u(scv);
        const qs0 = v128.load(p + <usize>(32 * h), 16);
        const qs1 = v128.load(p + <usize>(32 * h), 32);
        for (let j = 0; j < 4; j++) {
          const o = dst + <usize>(256 * h + 64 * j);
          store16u(o, v128.and(i8x16.shr_u(qs0, 2 * j), m3), splat16(sc, 2 * j));
          store16u(o + 32, v128.and(i8x16.shr_u(qs1, 2 * j), m3), splat16(sc, 2 * j + 1));
        }
      }
      store<f32>(dst, h2f(p, 80), 512);
      store<f32>(dst, h2f(p, 82), 516);
      v128.store(dst, i16x8.extend_low_i8x16_u(mnv), 528);
      v128.store(dst, i16x8.extend_high_i8x16_u(mnv), 544);
      break;
    }
    default: unpackIQ(type, p, dst); // the IQ types (matmul-iq.ts), no mins
  }
}

// ---- the tile: 2 rows x G groups of 4 tokens ----

/** acc[0..3] (f64, four tokens at acc) += isum·(d_w·d_a) [+ m_w·s_a] per lane, 32-element blocks (dw, mw: f64x2 splats) */
@inline function float32(acc: usize, c: v128, dw: v128, sd: usize, q81: bool, mw: v128): void {
  // f16·f16 products: exact in f64, as in the reference
  let lo = f64x2.mul(f64x2.convert_low_i32x4_s(c), f64x2.mul(dw, v128.load(sd)));
  let hi = f64x2.mul(f64x2.convert_low_i32x4_s(i32x4.shuffle(c, c, 2, 3, 2, 3)), f64x2.mul(dw, v128.load(sd, 16)));
  if (q81) {
    lo = f64x2.add(lo, f64x2.mul(mw, v128.load(sd, 32)));
    hi = f64x2.add(hi, f64x2.mul(mw, v128.load(sd, 48)));
  }
  v128.store(acc, f64x2.add(v128.load(acc), lo));
  v128.store(acc, f64x2.add(v128.load(acc, 16), hi), 16);
}

/** acc += (d·d8)·isum [- (dmin·d8)·msum] per lane, K-quant super-blocks */
@inline function floatK(acc: usize, c: v128, m: v128, dw: f32, dm: f32, sd: usize, hasMin: bool): void {
  const d8 = v128.load(sd);
  const d8lo = f64x2.promote_low_f32x4(d8);
  const d8hi = f64x2.promote_low_f32x4(i32x4.shuffle(d8, d8, 2, 3, 2, 3));
  const wd = f64x2.splat(<f64>dw);
  let lo = f64x2.mul(f64x2.mul(wd, d8lo), f64x2.convert_low_i32x4_s(c));
  let hi = f64x2.mul(f64x2.mul(wd, d8hi), f64x2.convert_low_i32x4_s(i32x4.shuffle(c, c, 2, 3, 2, 3)));
  if (hasMin) {
    const md = f64x2.splat(<f64>dm);
    lo = f64x2.sub(lo, f64x2.mul(f64x2.mul(md, d8lo), f64x2.convert_low_i32x4_s(m)));
    hi = f64x2.sub(hi, f64x2.mul(f64x2.mul(md, d8hi), f64x2.convert_low_i32x4_s(i32x4.shuffle(m, m, 2, 3, 2, 3))));
  }
  v128.store(acc, f64x2.add(v128.load(acc), lo));
  v128.store(acc, f64x2.add(v128.load(acc, 16), hi), 16);
}

/**
 * Σ over the 16 pairs of one 32-element block: weights of row 0 / row 1 at w0 / w1 (i16[32]),
 * A4 of group g at ab + 256g. Adds into the accumulators c<row><group>.
 */
// (written inline in the passes below: AssemblyScript functions return one value)

/** out rows r, r+1 (nr = 1 or 2 valid) for tokens t0..t0+tc-1 from the f64 accumulators */
@inline function storeOut(acc: usize, out: usize, outStride: i32, r: i32, nr: i32, t0: i32, tc: i32): void {
  for (let t = 0; t < tc; t++) {
    const o = out + ((<usize>(t0 + t) * <usize>outStride + <usize>r) << 2);
    store<f32>(o, <f32>load<f64>(acc + (<usize>t << 3)));
    if (nr > 1) store<f32>(o, <f32>load<f64>(acc + (<usize>t << 3), 128), 4);
  }
}

@inline function zeroAcc(acc: usize): void {
  const z = f64x2.splat(0);
  for (let i: usize = 0; i < 256; i += 16) v128.store(acc + i, z);
}

/**
 * 32-element block types: rows [r0, r1) for one token chunk of G groups. RX (the relaxed build's
 * Q4_0, Q4_1, Q5_0, Q5_1): four weight bytes broadcast meet the element quads of four tokens
 * (prepBlockR) in one i16x8.relaxed_dot_i8x16_i7x16_s; the i16 sums of 16 elements (8 products a
 * lane, |sum| <= 8·31·128) are widened to i32, the offset of Q4_0/Q5_0 is subtracted with the
 * tokens' block sums. Otherwise the weights come widened to i16 and meet the tokens in
 * i32x4.dot_i16x8_s.
 */
@inline function rows32(RX: bool, G: i32, q81: bool, type: i32, pk: bool, w: usize, rb: usize, tb: usize, nb: i32, r0: i32, r1: i32,
  slot: usize, a4: usize, side: usize, out: usize, outStride: i32, t0: i32, tc: i32): void {
  const ws0 = slot + WS, ws1 = ws0 + WROW;
  const acc = slot + ACC;
  const sb: usize = q81 ? 64 : RX ? 48 : 32;
  const bias = RX && (type == Q4_0 || type == Q5_0);
  const gu = <usize>G;
  const st = blockStep(tb, pk);
  for (let r = r0; r < r1; r += 2) {
    const nr = min(2, r1 - r);
    const p0 = rowAt(w, r, rb, tb, pk);
    const p1 = nr > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    zeroAcc(acc);
    for (let c = 0; c < nb; c += 8) {
      const n = min(8, nb - c);
      if (RX) {
        unpack32R(type, p0 + <usize>c * st, n, ws0, st);
        unpack32R(type, p1 + <usize>c * st, n, ws1, st);
      } else {
        unpack32(type, p0 + <usize>c * st, n, ws0, st);
        unpack32(type, p1 + <usize>c * st, n, ws1, st);
      }
      for (let s = 0; s < n; s++) {
        const b = c + s;
        const ab = a4 + ((<usize>b * gu) << (RX ? 7 : 8));
        const w0 = ws0 + (<usize>s << (RX ? 5 : 6)), w1 = ws1 + (<usize>s << (RX ? 5 : 6));
        let c00 = i32x4.splat(0), c01 = i32x4.splat(0), c02 = i32x4.splat(0), c03 = i32x4.splat(0);
        let c10 = i32x4.splat(0), c11 = i32x4.splat(0), c12 = i32x4.splat(0), c13 = i32x4.splat(0);
        if (RX) {
          for (let h: usize = 0; h < 32; h += 16) {
            let s00 = i16x8.splat(0), s01 = s00, s02 = s00, s03 = s00;
            let s10 = s00, s11 = s00, s12 = s00, s13 = s00;
            for (let k: usize = h; k < h + 16; k += 4) {
              const y0 = v128.load32_splat(w0 + k), y1 = v128.load32_splat(w1 + k);
              const x0 = v128.load(ab + (k << 2));
              s00 = i16x8.add(s00, rdot(x0, y0));
              s10 = i16x8.add(s10, rdot(x0, y1));
              if (G > 1) {
                const x1 = v128.load(ab + (k << 2), 128);
                s01 = i16x8.add(s01, rdot(x1, y0));
                s11 = i16x8.add(s11, rdot(x1, y1));
              }
              if (G > 2) {
                const x2 = v128.load(ab + (k << 2), 256);
                s02 = i16x8.add(s02, rdot(x2, y0));
                s12 = i16x8.add(s12, rdot(x2, y1));
              }
              if (G > 3) {
                const x3 = v128.load(ab + (k << 2), 384);
                s03 = i16x8.add(s03, rdot(x3, y0));
                s13 = i16x8.add(s13, rdot(x3, y1));
              }
            }
            c00 = i32x4.add(c00, i32x4.extadd_pairwise_i16x8_s(s00));
            c10 = i32x4.add(c10, i32x4.extadd_pairwise_i16x8_s(s10));
            if (G > 1) { c01 = i32x4.add(c01, i32x4.extadd_pairwise_i16x8_s(s01)); c11 = i32x4.add(c11, i32x4.extadd_pairwise_i16x8_s(s11)); }
            if (G > 2) { c02 = i32x4.add(c02, i32x4.extadd_pairwise_i16x8_s(s02)); c12 = i32x4.add(c12, i32x4.extadd_pairwise_i16x8_s(s12)); }
            if (G > 3) { c03 = i32x4.add(c03, i32x4.extadd_pairwise_i16x8_s(s03)); c13 = i32x4.add(c13, i32x4.extadd_pairwise_i16x8_s(s13)); }
          }
        } else {
          for (let k: usize = 0; k < 64; k += 4) {
            const y0 = v128.load32_splat(w0 + k), y1 = v128.load32_splat(w1 + k);
            const x0 = v128.load(ab + (k << 2));
            c00 = i32x4.add(c00, i32x4.dot_i16x8_s(y0, x0));
            c10 = i32x4.add(c10, i32x4.dot_i16x8_s(y1, x0));
            if (G > 1) {
              const x1 = v128.load(ab + (k << 2), 256);
              c01 = i32x4.add(c01, i32x4.dot_i16x8_s(y0, x1));
              c11 = i32x4.add(c11, i32x4.dot_i16x8_s(y1, x1));
            }
            if (G > 2) {
              const x2 = v128.load(ab + (k << 2), 512);
              c02 = i32x4.add(c02, i32x4.dot_i16x8_s(y0, x2));
              c12 = i32x4.add(c12, i32x4.dot_i16x8_s(y1, x2));
            }
            if (G > 3) {
              const x3 = v128.load(ab + (k << 2), 768);
              c03 = i32x4.add(c03, i32x4.dot_i16x8_s(y0, x3));
              c13 = i32x4.add(c13, i32x4.dot_i16x8_s(y1, x3));
            }
          }
        }
        const sd = side + <usize>b * gu * sb;
        if (bias) {
          const o0 = v128.load(sd, 32);
          c00 = i32x4.sub(c00, o0); c10 = i32x4.sub(c10, o0);
          if (G > 1) { const o1 = v128.load(sd + sb, 32); c01 = i32x4.sub(c01, o1); c11 = i32x4.sub(c11, o1); }
          if (G > 2) { const o2 = v128.load(sd + 2 * sb, 32); c02 = i32x4.sub(c02, o2); c12 = i32x4.sub(c12, o2); }
          if (G > 3) { const o3 = v128.load(sd + 3 * sb, 32); c03 = i32x4.sub(c03, o3); c13 = i32x4.sub(c13, o3); }
        }
        const so = <usize>s << 2;
        const dw0 = f64x2.splat(<f64>load<f32>(ws0 + so, 512)), dw1 = f64x2.splat(<f64>load<f32>(ws1 + so, 512));
        const mw0 = q81 ? f64x2.splat(<f64>load<f32>(ws0 + so, 544)) : dw0, mw1 = q81 ? f64x2.splat(<f64>load<f32>(ws1 + so, 544)) : dw1;
        float32(acc, c00, dw0, sd, q81, mw0);
        float32(acc + 128, c10, dw1, sd, q81, mw1);
        if (G > 1) { float32(acc + 32, c01, dw0, sd + sb, q81, mw0); float32(acc + 160, c11, dw1, sd + sb, q81, mw1); }
        if (G > 2) { float32(acc + 64, c02, dw0, sd + 2 * sb, q81, mw0); float32(acc + 192, c12, dw1, sd + 2 * sb, q81, mw1); }
        if (G > 3) { float32(acc + 96, c03, dw0, sd + 3 * sb, q81, mw0); float32(acc + 224, c13, dw1, sd + 3 * sb, q81, mw1); }
      }
    }
    storeOut(acc, out, outStride, r, nr, t0, tc);
  }
}

/** K-quants: rows [r0, r1) for one token chunk of G groups */
@inline function rowsK(G: i32, hasMin: bool, type: i32, pk: bool, w: usize, rb: usize, tb: usize, nbK: i32, r0: i32, r1: i32,
  slot: usize, a4: usize, side: usize, out: usize, outStride: i32, t0: i32, tc: i32): void {
  const ws0 = slot + WS, ws1 = ws0 + WROW;
  const acc = slot + ACC;
  const gu = <usize>G;
  const st = blockStep(tb, pk);
  for (let r = r0; r < r1; r += 2) {
    const nr = min(2, r1 - r);
    const p0 = rowAt(w, r, rb, tb, pk);
    const p1 = nr > 1 ? rowAt(w, r + 1, rb, tb, pk) : p0;
    zeroAcc(acc);
    for (let B = 0; B < nbK; B++) {
      unpackK(type, p0 + <usize>B * st, ws0);
      unpackK(type, p1 + <usize>B * st, ws1);
      let c00 = i32x4.splat(0), c01 = i32x4.splat(0), c02 = i32x4.splat(0), c03 = i32x4.splat(0);
      let c10 = i32x4.splat(0), c11 = i32x4.splat(0), c12 = i32x4.splat(0), c13 = i32x4.splat(0);
      for (let s = 0; s < 8; s++) {
        const ab = a4 + (((<usize>(8 * B + s)) * gu) << 8);
        const w0 = ws0 + (<usize>s << 6), w1 = ws1 + (<usize>s << 6);
        for (let k: usize = 0; k < 64; k += 4) {
          const y0 = v128.load32_splat(w0 + k), y1 = v128.load32_splat(w1 + k);
          const x0 = v128.load(ab + (k << 2));
          c00 = i32x4.add(c00, i32x4.dot_i16x8_s(y0, x0));
          c10 = i32x4.add(c10, i32x4.dot_i16x8_s(y1, x0));
          if (G > 1) {
            const x1 = v128.load(ab + (k << 2), 256);
            c01 = i32x4.add(c01, i32x4.dot_i16x8_s(y0, x1));
            c11 = i32x4.add(c11, i32x4.dot_i16x8_s(y1, x1));
          }
          if (G > 2) {
            const x2 = v128.load(ab + (k << 2), 512);
            c02 = i32x4.add(c02, i32x4.dot_i16x8_s(y0, x2));
            c12 = i32x4.add(c12, i32x4.dot_i16x8_s(y1, x2));
          }
          if (G > 3) {
            const x3 = v128.load(ab + (k << 2), 768);
            c03 = i32x4.add(c03, i32x4.dot_i16x8_s(y0, x3));
            c13 = i32x4.add(c13, i32x4.dot_i16x8_s(y1, x3));
          }
        }
      }
      const sd = side + <usize>B * gu * 144;
      let m00 = i32x4.splat(0), m01 = i32x4.splat(0), m02 = i32x4.splat(0), m03 = i32x4.splat(0);
      let m10 = i32x4.splat(0), m11 = i32x4.splat(0), m12 = i32x4.splat(0), m13 = i32x4.splat(0);
      if (hasMin) {
        for (let k: usize = 0; k < 32; k += 4) {
          const y0 = v128.load32_splat(ws0 + k, 528), y1 = v128.load32_splat(ws1 + k, 528);
          const x0 = v128.load(sd + (k << 2), 16);
          m00 = i32x4.add(m00, i32x4.dot_i16x8_s(y0, x0));
          m10 = i32x4.add(m10, i32x4.dot_i16x8_s(y1, x0));
          if (G > 1) {
            const x1 = v128.load(sd + (k << 2), 16 + 144);
            m01 = i32x4.add(m01, i32x4.dot_i16x8_s(y0, x1));
            m11 = i32x4.add(m11, i32x4.dot_i16x8_s(y1, x1));
          }
          if (G > 2) {
            const x2 = v128.load(sd + (k << 2), 16 + 288);
            m02 = i32x4.add(m02, i32x4.dot_i16x8_s(y0, x2));
            m12 = i32x4.add(m12, i32x4.dot_i16x8_s(y1, x2));
          }
          if (G > 3) {
            const x3 = v128.load(sd + (k << 2), 16 + 432);
            m03 = i32x4.add(m03, i32x4.dot_i16x8_s(y0, x3));
            m13 = i32x4.add(m13, i32x4.dot_i16x8_s(y1, x3));
          }
        }
      }
      const dw0 = load<f32>(ws0, 512), dw1 = load<f32>(ws1, 512);
      const dm0 = load<f32>(ws0, 516), dm1 = load<f32>(ws1, 516);
      floatK(acc, c00, m00, dw0, dm0, sd, hasMin);
      floatK(acc + 128, c10, m10, dw1, dm1, sd, hasMin);
      if (G > 1) { floatK(acc + 32, c01, m01, dw0, dm0, sd + 144, hasMin); floatK(acc + 160, c11, m11, dw1, dm1, sd + 144, hasMin); }
      if (G > 2) { floatK(acc + 64, c02, m02, dw0, dm0, sd + 288, hasMin); floatK(acc + 192, c12, m12, dw1, dm1, sd + 288, hasMin); }
      if (G > 3) { floatK(acc + 96, c03, m03, dw0, dm0, sd + 432, hasMin); floatK(acc + 224, c13, m13, dw1, dm1, sd + 432, hasMin); }
    }
    storeOut(acc, out, outStride, r, nr, t0, tc);
  }
}

/** n (<= 8) Q4_0/Q4_1/Q5_0/Q5_1 blocks at p (st bytes apart) as bytes (element order, no offset) at dst + 32s; d, m as unpack32's */
function unpack32R(type: i32, p: usize, n: i32, dst: usize, st: usize): void {
  const m4 = i8x16.splat(15);
  const q81 = type == Q4_1 || type == Q5_1;
  const five = type == Q5_0 || type == Q5_1;
  const qo: usize = type == Q4_0 ? 2 : type == Q4_1 ? 4 : type == Q5_0 ? 6 : 8;
  const b16 = i8x16.splat(16);
  for (let s = 0; s < n; s++) {
    const q = v128.load(p + qo);
    let lo = v128.and(q, m4), hi = i8x16.shr_u(q, 4);
    if (five) {
      const qh = i32x4.splat(load<u32>(p + qo - 4));
      lo = v128.or(lo, v128.and(qhMaskLo(qh), b16));
      hi = v128.or(hi, v128.and(qhMaskHi(qh), b16));
    }
    const o = dst + (<usize>s << 5);
    v128.store(o, lo);
    v128.store(o, hi, 16);
    store<f32>(dst + (<usize>s << 2), h2f(p), 512);
    if (q81) store<f32>(dst + (<usize>s << 2), h2f(p, 2), 544);
    p += st;
  }
}


function run32R(G: i32, q81: bool, type: i32, pk: bool, w: usize, rb: usize, tb: usize, nb: i32, r0: i32, r1: i32,
  slot: usize, a4: usize, side: usize, out: usize, outStride: i32, t0: i32, tc: i32): void {
  if (!RELAXED) return;
  if (q81) {
    switch (G) {
      case 1: rows32(true, 1, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 2: rows32(true, 2, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 3: rows32(true, 3, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      default: rows32(true, 4, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
    }
  } else {
    switch (G) {
      case 1: rows32(true, 1, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 2: rows32(true, 2, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 3: rows32(true, 3, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      default: rows32(true, 4, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
    }
  }
}

function run32(G: i32, q81: bool, type: i32, pk: bool, w: usize, rb: usize, tb: usize, nb: i32, r0: i32, r1: i32,
  slot: usize, a4: usize, side: usize, out: usize, outStride: i32, t0: i32, tc: i32): void {
  if (q81) {
    switch (G) {
      case 1: rows32(false, 1, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 2: rows32(false, 2, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 3: rows32(false, 3, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      default: rows32(false, 4, true, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
    }
  } else {
    switch (G) {
      case 1: rows32(false, 1, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 2: rows32(false, 2, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 3: rows32(false, 3, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      default: rows32(false, 4, false, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
    }
  }
}

function runK(G: i32, hasMin: bool, type: i32, pk: bool, w: usize, rb: usize, tb: usize, nbK: i32, r0: i32, r1: i32,
  slot: usize, a4: usize, side: usize, out: usize, outStride: i32, t0: i32, tc: i32): void {
  if (hasMin) {
    switch (G) {
      case 1: rowsK(1, true, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 2: rowsK(2, true, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 3: rowsK(3, true, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      default: rowsK(4, true, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
    }
  } else {
    switch (G) {
      case 1: rowsK(1, false, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 2: rowsK(2, false, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      case 3: rowsK(3, false, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
      default: rowsK(4, false, type, pk, w, rb, tb, nbK, r0, r1, slot, a4, side, out, outStride, t0, tc); break;
    }
  }
}

/**
 * The multi-token matmul (arguments as matmul's, and a claimed scratch slot). Computes tokens
 * [0, done) for rows [r0, r1) and returns done: 0 when it does not apply (one token, a type
 * without a tiled kernel, rows too long for a slot); a last single token is left to the caller.
 */
export function matmulTiled(
  slot: usize, type: i32, pk: bool, w: usize, rowBytes: i32, nIn: i32, r0: i32, r1: i32,
  act: usize, actRowBytes: i32, nTok: i32, out: usize, outStride: i32, minTok: i32,
): i32 {
  if (nTok < minTok || nTok < 2 || r1 <= r0) return 0;
  let fam = 0;
  let tb: usize = 0;
  switch (type) {
    case Q8_0: tb = 34; break;
    case Q4_0: case IQ4_NL: tb = 18; break;
    case Q5_0: tb = 22; break;
    case Q4_1: fam = 1; tb = 20; break;
    case Q5_1: fam = 1; tb = 24; break;
    case Q2_K: fam = 2; tb = 84; break;
    case Q3_K: fam = 2; tb = 110; break;
    case Q4_K: fam = 2; tb = 144; break;
    case Q5_K: fam = 2; tb = 176; break;
    case Q6_K: fam = 2; tb = 210; break;
    default: {
      if (!isIQ(type)) return 0;
      fam = 2;
      tb = iqBytes(type);
    }
  }
  const nb = nIn >> 5;
  const nsb = fam == 2 ? nIn >> 8 : nb;
  // the relaxed kernels take the types whose weights are unsigned and below 128 (not Q8_0, IQ4_NL, IQ)
  const rx = RELAXED && (type == Q4_0 || type == Q4_1 || type == Q5_0 || type == Q5_1);
  const sb: usize = fam == 0 ? (rx ? 48 : 32) : fam == 1 ? 64 : 144;
  const per = <usize>nsb * sb + <usize>nb * 256;
  let gmax = <i32>((slotBytes() - HDR - 64) / per);
  if (gmax > 4) gmax = 4;
  if (gmax < 1) return 0;
  const arb = <usize>actRowBytes;
  const rb = <usize>rowBytes;
  const zero = slot + ZERO;
  const side = slot + HDR;
  let t0 = 0;
  while (nTok - t0 >= minTok && nTok - t0 >= 2) {
    const rem = nTok - t0;
    let G = (rem + 3) >> 2;
    if (G > gmax) G = gmax;
    const tc = min(rem, 4 * G);
    const a4 = side + ((<usize>nsb * <usize>G * sb + 63) & ~63);
    const sh = type == Q4_0 ? 3 : type == Q5_0 ? 4 : 0;
    for (let g = 0; g < G; g++) prepGroup(fam, rx, sh, act, arb, t0 + 4 * g, min(4, tc - 4 * g), nIn, G, g, a4, side, zero);
    if (fam == 2) runK(G, type == Q2_K || type == Q4_K || type == Q5_K, type, pk, w, rb, tb, nIn >> 8, r0, r1, slot, a4, side, out, outStride, t0, tc);
    else if (rx) run32R(G, fam == 1, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc);
    else run32(G, fam == 1, type, pk, w, rb, tb, nb, r0, r1, slot, a4, side, out, outStride, t0, tc);
    t0 += tc;
  }
  return t0;
}
