// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// The IQ types (IQ4_XS, IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S) against a Q8_K activation row.
// Q8_K block (292 bytes): f32 d at 0, i8 qs[256] at 4 (the block sums are not needed here).
//
// Every IQ super-block is 16 halves of 16 weights; each half is unpacked to 16 signed i8 weights
// (grid bytes from the lattice tables, signs applied; IQ1_S as 8·grid ± 1, IQ4_XS through the
// non-linear values) and one integer multiplier (the half's odd scale 2s+1, or IQ4_XS's s-32).
// Per super-block Σ multiplier·Σ w·q8 is exact in i32, and the float64 step (d·d8)·isum and the
// final factor (1/8 for IQ2 and IQ1_S, 1/4 for IQ3_XXS) are those of the reference vecDot
// (src/quant/iq*.ts), so results are bit-identical. The tiled kernels (tile.ts) use iqHalf and
// iqScale to unpack rows for several tokens.
//
// The lattice tables (33 KiB) are not data segments: JavaScript writes them into the memory once
// (setIqTables, from src/quant/iq-grids.ts) and the module finds them at IQ_DESC, below the first
// allocation like tile.ts's descriptor.

import { f16ToF32, hsum4, ihi64, ilo64, hi64, lo64, loadF16x4 } from "./common";

// ggml type ids (src/quant/format.ts)
export const IQ2_XXS: i32 = 16;
export const IQ2_XS: i32 = 17;
export const IQ3_XXS: i32 = 18;
export const IQ1_S: i32 = 19;
export const IQ3_S: i32 = 21;
export const IQ2_S: i32 = 22;
export const IQ4_XS: i32 = 23;

/** u32 address of the tables (0: not set) */
const IQ_DESC: usize = 1008;

// byte offsets of the grids in the table region, in src/quant/iq-grids.ts's order
const G2XXS: usize = 0; // 256 x 8
const G2XS: usize = 2048; // 512 x 8
const G2S: usize = 6144; // 1024 x 8
const G3XXS: usize = 14336; // 256 x 4
const G3S: usize = 15360; // 512 x 4
const G1S: usize = 17408; // 2048 x 8 (int8 -1, 0, 1)
const TABLE_BYTES: i32 = 33792;

/**
 * Tell the module where JavaScript put the lattice tables (TABLE_BYTES bytes: the grids of
 * iq-grids.ts concatenated); 0 turns the IQ kernels off. Returns -1 when `bytes` is not the size
 * the module expects (nothing set).
 */
export function setIqTables(ptr: usize, bytes: i32): i32 {
  if (ptr != 0 && bytes != TABLE_BYTES) return -1;
  atomic.store<u32>(IQ_DESC, <u32>ptr);
  return 0;
}

/** the tables, 0 when not set */
@inline export function iqTables(): usize {
  return <usize>atomic.load<u32>(IQ_DESC);
}

/** whether type is one of the IQ types here */
@inline export function isIQ(type: i32): bool {
  return type == IQ2_XXS || type == IQ2_XS || type == IQ3_XXS || type == IQ1_S || type == IQ3_S || type == IQ2_S || type == IQ4_XS;
}

/** bytes per super-block */
@inline export function iqBytes(type: i32): usize {
  switch (type) {
    case IQ2_XXS: return 66;
    case IQ2_XS: return 74;
    case IQ2_S: return 82;
    case IQ3_XXS: return 98;
    case IQ3_S: return 110;
    case IQ1_S: return 50;
    default: return 136;
  }
}

/** the reference's final factor: 1/8 (IQ2, IQ1_S), 1/4 (IQ3_XXS) or 1 */
@inline export function iqFactor(type: i32): f64 {
  return type == IQ3_XXS ? 0.25 : type == IQ3_S || type == IQ4_XS ? 1.0 : 0.125;
}

// ---- one half (16 weights) ----

/** the 8 signs of ggml's ksigns_iq2xs: 7 stored bits and the parity bit */
@inline function ks(s7: u32): u32 {
  return s7 | ((<u32>popcnt<i32>(<i32>s7) & 1) << 7);
}

/** 0xff in lane j (< 8) where bit j of s0 is set, in lane 8 + j where bit j of s1 is */
@inline function signMask(s0: u32, s1: u32): v128 {
  const v = i64x2.replace_lane(i64x2.splat(<i64>(s0 & 255) * 0x0101010101010101), 1, <i64>(s1 & 255) * 0x0101010101010101);
  const bits = i8x16(1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128);
  return i8x16.eq(v128.and(v, bits), bits);
}

/** w negated in the lanes where m is 0xff */
@inline function applySigns(w: v128, m: v128): v128 {
  return i8x16.sub(v128.xor(w, m), m);
}

/** two 8-byte grid points */
@inline function grid8x2(g: usize, i0: u32, i1: u32): v128 {
  return v128.load64_lane(g + (<usize>i1 << 3), v128.load64_zero(g + (<usize>i0 << 3)), 1);
}

/** four 4-byte grid points */
@inline function grid4x4(g: usize, i0: u32, i1: u32, i2: u32, i3: u32): v128 {
  let v = v128.load32_zero(g + (<usize>i0 << 2));
  v = v128.load32_lane(g + (<usize>i1 << 2), v, 1);
  v = v128.load32_lane(g + (<usize>i2 << 2), v, 2);
  return v128.load32_lane(g + (<usize>i3 << 2), v, 3);
}

/**
 * The signed i8 weights (before the half's multiplier) of half h (0, 1) of sub-block s (0..7) of
 * the super-block at p: elements 32s + 16h .. 32s + 16h + 15. t: the tables. kind is a constant
 * where this is inlined.
 */
@inline export function iqHalf(kind: i32, p: usize, s: i32, h: i32, t: usize): v128 {
  if (kind == IQ2_XXS) {
    // u32 pairs: grid bytes of the 4 groups of 8, then 4 x 7 sign bits and the scale
    const q = p + 2 + <usize>(8 * s);
    const signs = load<u32>(q, 4) >> (14 * h);
    const w = grid8x2(t + G2XXS, <u32>load<u8>(q + <usize>(2 * h)), <u32>load<u8>(q + <usize>(2 * h + 1)));
    return applySigns(w, signMask(ks(signs & 127), ks((signs >> 7) & 127)));
  } else if (kind == IQ2_XS) {
    // u16 per group of 8: 9-bit grid index, 7 sign bits
    const q = p + 2 + <usize>(8 * s + 4 * h);
    const a = <u32>load<u16>(q), b = <u32>load<u16>(q, 2);
    return applySigns(grid8x2(t + G2XS, a & 511, b & 511), signMask(ks(a >> 9), ks(b >> 9)));
  } else if (kind == IQ2_S) {
    // qs low index bytes at 2, sign bytes at 34, qh (2 high index bits per group) at 66
    const g = <usize>(4 * s + 2 * h);
    const qh = <u32>load<u8>(p + 66 + <usize>s) >> (4 * h);
    const i0 = <u32>load<u8>(p + 2 + g) | ((qh & 3) << 8);
    const i1 = <u32>load<u8>(p + 3 + g) | ((qh & 12) << 6);
    return applySigns(grid8x2(t + G2S, i0, i1), signMask(<u32>load<u8>(p + 34 + g), <u32>load<u8>(p + 35 + g)));
  } else if (kind == IQ3_XXS) {
    // one grid byte per 4 weights at 2; per sub-block a u32 of 4 x 7 sign bits and the scale at 66
    const q = p + 2 + <usize>(8 * s + 4 * h);
    const signs = load<u32>(p + 66 + <usize>(4 * s)) >> (14 * h);
    const w = grid4x4(t + G3XXS, <u32>load<u8>(q), <u32>load<u8>(q, 1), <u32>load<u8>(q, 2), <u32>load<u8>(q, 3));
    return applySigns(w, signMask(ks(signs & 127), ks((signs >> 7) & 127)));
  } else if (kind == IQ3_S) {
    // low index bytes at 2, the ninth bits in qh at 66 (bit k of qh[s] for point k), sign bytes at 74
    const q = p + 2 + <usize>(8 * s + 4 * h);
    const qh = <u32>load<u8>(p + 66 + <usize>s) >> (4 * h);
    const w = grid4x4(t + G3S, <u32>load<u8>(q) | ((qh & 1) << 8), <u32>load<u8>(q, 1) | ((qh & 2) << 7),
      <u32>load<u8>(q, 2) | ((qh & 4) << 6), <u32>load<u8>(q, 3) | ((qh & 8) << 5));
    const sg = p + 74 + <usize>(4 * s + 2 * h);
    return applySigns(w, signMask(<u32>load<u8>(sg), <u32>load<u8>(sg, 1)));
  } else if (kind == IQ1_S) {
    // low index bytes at 2; qh u16 per sub-block at 34: 3 high index bits per group, the scale, the shift sign
    const qh = <u32>load<u16>(p + 34 + <usize>(2 * s)) >> (6 * h);
    const q = p + 2 + <usize>(4 * s + 2 * h);
    const v = grid8x2(t + G1S, <u32>load<u8>(q) | ((qh & 7) << 8), <u32>load<u8>(q, 1) | ((qh & 56) << 5));
    // 8·grid ± 1 (the shift, IQ1S_DELTA = 1/8, times 8)
    const minus = (<u32>load<u16>(p + 34 + <usize>(2 * s)) & 0x8000) != 0;
    return i8x16.add(i8x16.shl(v, 3), i8x16.splat(minus ? -1 : 1));
  } else {
    // IQ4_XS: nibbles at 8 (element j: low nibble of byte j, j+16: high nibble) through the IQ4_NL values
    const q = v128.load(p + 8 + <usize>(16 * s));
    const kv = i8x16(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);
    return i8x16.swizzle(kv, h == 0 ? v128.and(q, i8x16.splat(15)) : i8x16.shr_u(q, 4));
  }
}

/** the integer multiplier of half h of sub-block s */
@inline export function iqScale(kind: i32, p: usize, s: i32, h: i32): i32 {
  if (kind == IQ2_XXS) return 2 * <i32>(load<u32>(p + 6 + <usize>(8 * s)) >> 28) + 1;
  if (kind == IQ2_XS) return 2 * ((<i32>load<u8>(p + 66 + <usize>s) >> (4 * h)) & 15) + 1;
  if (kind == IQ2_S) return 2 * ((<i32>load<u8>(p + 74 + <usize>s) >> (4 * h)) & 15) + 1;
  if (kind == IQ3_XXS) return 2 * <i32>(load<u32>(p + 66 + <usize>(4 * s)) >> 28) + 1;
  if (kind == IQ3_S) return 2 * ((<i32>load<u8>(p + 106 + <usize>(s >> 1)) >> (4 * (s & 1))) & 15) + 1;
  if (kind == IQ1_S) return 2 * ((<i32>load<u16>(p + 34 + <usize>(2 * s)) >> 12) & 7) + 1;
  // IQ4_XS: 6-bit scale (low nibble in scales_l at 4, high bits in scales_h at 2) minus 32
  const lo = (<i32>load<u8>(p + 4 + <usize>(s >> 1)) >> (4 * (s & 1))) & 15;
  const hi = (<i32>load<u16>(p + 2) >> (2 * s)) & 3;
  return (lo | (hi << 4)) - 32;
}

// ---- four rows, one token ----

/** Σ w·a over 16 lanes as i32 partials (a widened once per half for all rows) */
@inline function halfDot(w: v128, alo: v128, ahi: v128): v128 {
  return i32x4.add(i32x4.dot_i16x8_s(i16x8.extend_low_i8x16_s(w), alo), i32x4.dot_i16x8_s(i16x8.extend_high_i8x16_s(w), ahi));
}

@inline function rowHalf(kind: i32, p: usize, s: i32, h: i32, t: usize, alo: v128, ahi: v128): v128 {
  return i32x4.mul(halfDot(iqHalf(kind, p, s, h, t), alo, ahi), i32x4.splat(iqScale(kind, p, s, h)));
}

@inline function dot4Kind(kind: i32, p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32): v128 {
  const t = iqTables();
  const tb = iqBytes(kind);
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  for (let b = 0; b < nb; b++) {
    let s0 = i32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    for (let s = 0; s < 8; s++) {
      for (let h = 0; h < 2; h++) {
        const av = v128.load(a + 4 + <usize>(32 * s + 16 * h));
        const alo = i16x8.extend_low_i8x16_s(av), ahi = i16x8.extend_high_i8x16_s(av);
        s0 = i32x4.add(s0, rowHalf(kind, p0, s, h, t, alo, ahi));
        s1 = i32x4.add(s1, rowHalf(kind, p1, s, h, t, alo, ahi));
        s2 = i32x4.add(s2, rowHalf(kind, p2, s, h, t, alo, ahi));
        s3 = i32x4.add(s3, rowHalf(kind, p3, s, h, t, alo, ahi));
      }
    }
    const isum = hsum4(s0, s1, s2, s3);
    const dw = loadF16x4(p0, p1, p2, p3, 0);
    const d8 = f64x2.splat(<f64>load<f32>(a));
    // sum += (d·d8)·isum
    acc01 = f64x2.add(acc01, f64x2.mul(f64x2.mul(lo64(dw), d8), ilo64(isum)));
    acc23 = f64x2.add(acc23, f64x2.mul(f64x2.mul(hi64(dw), d8), ihi64(isum)));
    p0 += tb; p1 += tb; p2 += tb; p3 += tb; a += 292;
  }
  const fac = f64x2.splat(iqFactor(kind));
  return i32x4.shuffle(f32x4.demote_f64x2_zero(f64x2.mul(acc01, fac)), f32x4.demote_f64x2_zero(f64x2.mul(acc23, fac)), 0, 1, 4, 5);
}

/** Σ W[row k] · act for four rows (p0..p3, nb super-blocks) and one Q8_K row at a; lane k = row k */
export function dot4IQ(type: i32, p0: usize, p1: usize, p2: usize, p3: usize, a: usize, nb: i32): v128 {
  switch (type) {
    case IQ2_XXS: return dot4Kind(IQ2_XXS, p0, p1, p2, p3, a, nb);
    case IQ2_XS: return dot4Kind(IQ2_XS, p0, p1, p2, p3, a, nb);
    case IQ2_S: return dot4Kind(IQ2_S, p0, p1, p2, p3, a, nb);
    case IQ3_XXS: return dot4Kind(IQ3_XXS, p0, p1, p2, p3, a, nb);
    case IQ3_S: return dot4Kind(IQ3_S, p0, p1, p2, p3, a, nb);
    case IQ1_S: return dot4Kind(IQ1_S, p0, p1, p2, p3, a, nb);
    default: return dot4Kind(IQ4_XS, p0, p1, p2, p3, a, nb);
  }
}

// ---- unpacking for the tiled kernels ----

/** one super-block at p to i16[256] = multiplier·weight at dst; f32 d·factor (exact) at dst+512 */
@inline function unpackKind(kind: i32, p: usize, dst: usize, t: usize): void {
  for (let s = 0; s < 8; s++) {
    for (let h = 0; h < 2; h++) {
      const w = iqHalf(kind, p, s, h, t);
      const sc = i16x8.splat(<i16>iqScale(kind, p, s, h));
      const o = dst + <usize>(64 * s + 32 * h);
      v128.store(o, i16x8.mul(i16x8.extend_low_i8x16_s(w), sc));
      v128.store(o, i16x8.mul(i16x8.extend_high_i8x16_s(w), sc), 16);
    }
  }
  // a half-float d times 1/8 or 1/4 is exact in f32, and the tiled kernels' (d·d8)·isum then
  // differs from the reference's ((d·d8)·isum)·factor by that power of two only
  store<f32>(dst, <f32>(<f64>f16ToF32(<u32>load<u16>(p)) * iqFactor(kind)), 512);
}

/** the IQ cases of tile.ts's unpackK */
export function unpackIQ(type: i32, p: usize, dst: usize): void {
  const t = iqTables();
  switch (type) {
    case IQ2_XXS: unpackKind(IQ2_XXS, p, dst, t); break;
    case IQ2_XS: unpackKind(IQ2_XS, p, dst, t); break;
    case IQ2_S: unpackKind(IQ2_S, p, dst, t); break;
    case IQ3_XXS: unpackKind(IQ3_XXS, p, dst, t); break;
    case IQ3_S: unpackKind(IQ3_S, p, dst, t); break;
    case IQ1_S: unpackKind(IQ1_S, p, dst, t); break;
    default: unpackKind(IQ4_XS, p, dst, t); break;
  }
}
