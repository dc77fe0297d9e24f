/**
 * The float32 math functions llama.cpp's CPU backend calls, as glibc (2.28 and later) computes
 * them on x86-64: expf, sinf, cosf and powf are not correctly rounded there (about 1 result in
 * 1000 to 10000 differs by one unit in the last place from the nearest float), and "llama.cpp-exact"
 * arithmetic (see ggml.ts) needs the same results, not merely good ones. The algorithms are the
 * ones glibc (and musl) took from Arm's optimized-routines: a table of 2^(i/32) with a cubic for
 * exp2, a 16-entry log2 table with a quintic for powf, and sin/cos polynomials after a reduction by
 * pi/2 (a 192-bit 4/pi for large arguments). All intermediate work is in double precision.
 *
 * Also fmaf: a single-precision fused multiply-add, which JavaScript lacks, computed exactly.
 */

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
const f32 = new Float32Array(1);
const u32f = new Uint32Array(f32.buffer);

/** a double from its two 32-bit halves */
function fromBits(hi: number, lo: number): number {
  u32[1] = hi >>> 0;
  u32[0] = lo >>> 0;
  return f64[0]!;
}

/**
 * fmaf(a, b, c) = round_to_float(a*b + c) with a single rounding, for float32 a, b, c. The product
 * is exact in double; the sum is rounded to double first, which can only mislead the final
 * rounding when it lands exactly halfway between two floats, and then the sign of the sum's
 * rounding error decides. (Results that are subnormal floats are not treated specially.)
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const r = Math.fround(s);
  if (r === s) return r;
  f64[0] = s;
  // halfway between two floats: the 29 bits below float precision are 1000...0
  if ((u32[0]! & 0x1fffffff) !== 0x10000000) return r;
  const bb = s - p;
  const e = (p - (s - bb)) + (c - bb);
  if (e === 0) return r;
  // one double step towards the exact sum, then round
  u32[0] = (e > 0) === (s > 0) ? u32[0]! + 1 : u32[0]! - 1;
  return Math.fround(f64[0]!);
}

// ---- exp2 table shared by expf and powf: 2^(i/32) as doubles (bits of glibc's __exp2f_data.tab + (i << 47))
const EXP2_TAB_HI = [
  0x3ff00000, 0x3fefd9b0, 0x3fefb558, 0x3fef9301, 0x3fef72b8, 0x3fef5487, 0x3fef387a, 0x3fef1e9d,
  0x3fef06fe, 0x3feef1a7, 0x3feedea6, 0x3feece08, 0x3feebfda, 0x3feeb42b, 0x3feeab07, 0x3feea47e,
  0x3feea09e, 0x3fee9f75, 0x3feea114, 0x3feea589, 0x3feeace5, 0x3feeb737, 0x3feec491, 0x3feed503,
  0x3feee89f, 0x3feeff76, 0x3fef199b, 0x3fef3720, 0x3fef5818, 0x3fef7c97, 0x3fefa4af, 0x3fefd076,
];
const EXP2_TAB_LO = [
  0x00000000, 0xd3158574, 0x6cf9890f, 0xd0125b51, 0x3c7d517b, 0x3168b9aa, 0x6e756238, 0xf51fdee1,
  0x0a31b715, 0x373aa9cb, 0x4c123422, 0x6061892d, 0xd5362a27, 0x569d4f82, 0xdd485429, 0xb03a5585,
  0x667f3bcd, 0xe8ec5f74, 0x73eb0187, 0x994cce13, 0x422aa0db, 0xb0cdc5e5, 0x82a3f090, 0xb23e255d,
  0x995ad3ad, 0xf2fb5e47, 0xdd85529c, 0xdcef9069, 0xdcfba487, 0x337b9b5f, 0xa2a490da, 0x5b6e4540,
];
/** 2^(i/32), i = 0..31 */
const EXP2_TAB = EXP2_TAB_HI.map((hi, i) => fromBits(hi + (i << 15), EXP2_TAB_LO[i]!));

/** a double given as its IEEE bits (hex string, 16 digits) */
function hexDouble(h: string): number {
  return fromBits(parseInt(h.slice(0, 8), 16), parseInt(h.slice(8), 16));
}
/** exp2 cubic: 2^r ~ 1 + C2 r + C1 r^2 + C0 r^3 */
const EXP2_C0 = hexDouble("3fac6af84b912394"), EXP2_C1 = hexDouble("3fcebfce50fac4f3"), EXP2_C2 = hexDouble("3fe62e42ff0c52d6");
const SHIFT = 1.5 * 2 ** 52;
/** the same cubic for an argument scaled by 32 (expf) */
const EXPF_C0 = EXP2_C0 / 32768, EXPF_C1 = EXP2_C1 / 1024, EXPF_C2 = EXP2_C2 / 32;
/** 32/ln 2 */
const INV_LN2_N = hexDouble("40471547652b82fe");

/** 2^(k/32) * 2^q for an integer k = 32q + i */
function exp2k(k: number): number {
  const i = k & 31;
  return EXP2_TAB[i]! * 2 ** ((k - i) / 32);
}

/** glibc expf (sysdeps/ieee754/flt-32/e_expf.c) */
export function expf(x: number): number {
  if (!(Math.abs(x) < 88)) {
    if (Number.isNaN(x)) return x;
    if (x === -Infinity) return 0;
    if (x > 88.72283172607421875) return Infinity;
    if (x < -103.97207641601562) return 0;
  }
  const z = INV_LN2_N * x;
  const kd = z + SHIFT - SHIFT;
  const r = z - kd;
  const s = exp2k(kd);
  const p = EXPF_C0 * r + EXPF_C1;
  const r2 = r * r;
  let y = EXPF_C2 * r + 1;
  y = p * r2 + y;
  return Math.fround(y * s);
}

// ---- powf (e_powf.c): log2 in double from a 16-entry table, then exp2 ----
const POWF_INVC = [
  "3ff661ec79f8f3be", "3ff571ed4aaf883d", "3ff49539f0f010b0", "3ff3c995b0b80385", "3ff30d190c8864a5", "3ff25e227b0b8ea0",
  "3ff1bb4a4a1a343f", "3ff12358f08ae5ba", "3ff0953f419900a7", "3ff0000000000000", "3fee608cfd9a47ac", "3feca4b31f026aa0",
  "3feb2036576afce6", "3fe9c2d163a1aa2d", "3fe886e6037841ed", "3fe767dcf5534862",
].map(hexDouble);
const POWF_LOGC = [
  "bfdefec65b963019", "bfdb0b6832d4fca4", "bfd7418b0a1fb77b", "bfd39de91a6dcf7b", "bfd01d9bf3f2b631", "bfc97c1d1b3b7af0",
  "bfc2f9e393af3c9f", "bfb960cbbf788d5c", "bfaa6f9db6475fce", "0000000000000000", "3fb338ca9f24f53d", "3fc476a9543891ba",
  "3fce840b4ac4e4d2", "3fd40645f0c6651c", "3fd88e9c2c1b9ff8", "3fdce0a44eb17bcc",
].map(hexDouble);
const POWF_A = ["3fd27616c9496e0b", "bfd71969a075c67a", "3fdec70a6ca7badd", "bfe7154748bef6c8", "3ff71547652ab82b"].map(hexDouble);

/** glibc powf for finite x > 0 (normal) and finite y; other inputs go to Math.pow */
export function powf(x: number, y: number): number {
  f32[0] = x;
  const ix = u32f[0]!;
  if (!(x > 0) || ix < 0x00800000 || ix >= 0x7f800000 || !Number.isFinite(y) || y === 0) return Math.fround(Math.pow(x, y));
  const tmp = (ix - 0x3f330000) >>> 0;
  const i = (tmp >>> 19) & 15;
  const top = (tmp & 0xff800000) >>> 0;
  const k = (top | 0) >> 23;
  u32f[0] = (ix - top) >>> 0;
  const z = f32[0]!;
  const r = z * POWF_INVC[i]! - 1;
  const y0 = POWF_LOGC[i]! + k;
  const r2 = r * r;
  let l = POWF_A[0]! * r + POWF_A[1]!;
  const p = POWF_A[2]! * r + POWF_A[3]!;
  const r4 = r2 * r2;
  let q = POWF_A[4]! * r + y0;
  q = p * r2 + q;
  l = l * r4 + q;
  const xd = y * l;
  if (xd > 127.99999995700433) return Infinity;
  if (xd <= -150) return 0;
  // x = k/32 + r
  const sh = 1.5 * 2 ** 47;
  const kd = xd + sh - sh;
  const rr = xd - kd;
  const s = exp2k(Math.round(kd * 32));
  const zz = EXP2_C0 * rr + EXP2_C1;
  const rr2 = rr * rr;
  let w = EXP2_C2 * rr + 1;
  w = zz * rr2 + w;
  return Math.fround(w * s);
}

// ---- sinf / cosf (s_sinf.c, s_cosf.c, sincosf.h) ----
const HPI_INV = hexDouble("3fe45f306dc9c883") * 2 ** 24;
const HPI = hexDouble("3ff921fb54442d18");
const SC_C1 = hexDouble("bfdffffffd0c621c"), SC_C2 = hexDouble("3fa55553e1068f19"), SC_C3 = hexDouble("bf56c087e89a359d"), SC_C4 = hexDouble("3ef99343027bf8c3");
const SC_S1 = hexDouble("bfc555545995a603"), SC_S2 = hexDouble("3f81107605230bc4"), SC_S3 = hexDouble("bf2994eb3774cf24");
const PIO4 = Math.fround(0.7853981852531433);
/** 4/pi, 8 new bits per entry */
const INV_PIO4 = [
  0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529, 0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1,
  0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0, 0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
].map((v) => BigInt(v));
const PI63 = HPI * 2 ** -62;
const M64 = (1n << 64n) - 1n;

/** glibc's sinf_poly: the sine polynomial for even n, the cosine one (negated with the second table) for odd n */
function sincosPoly(x: number, x2: number, neg: boolean, n: number): number {
  if ((n & 1) === 0) {
    const x3 = x * x2;
    const s1 = SC_S2 + x2 * SC_S3;
    const x7 = x3 * x2;
    const s = x + x3 * SC_S1;
    return Math.fround(s + x7 * s1);
  }
  // cos: the second table negates c0..c4
  const sg = neg ? -1 : 1;
  const x4 = x2 * x2;
  const c2 = sg * SC_C3 + x2 * (sg * SC_C4);
  const c1 = sg + x2 * (sg * SC_C1);
  const x6 = x4 * x2;
  const c = c1 + x4 * (sg * SC_C2);
  return Math.fround(c + x6 * c2);
}

function abstop12(y: number): number {
  f32[0] = y;
  return (u32f[0]! >>> 20) & 0x7ff;
}
const TOP_PIO4 = abstop12(PIO4), TOP_2M12 = abstop12(2 ** -12), TOP_120 = abstop12(120), TOP_INF = abstop12(Infinity);

/** argument reduction by pi/2 for |y| >= 120: [x, n] with y = n*pi/2 + x */
function reduceLarge(y: number): [number, number] {
  f32[0] = y;
  const xi = u32f[0]!;
  const arr = (xi >>> 26) & 15;
  const shift = (xi >>> 23) & 7;
  const m = BigInt((((xi & 0xffffff) | 0x800000) << shift) >>> 0);
  let res0 = (m * INV_PIO4[arr]!) & 0xffffffffn;
  const res1 = m * INV_PIO4[arr + 4]!;
  const res2 = m * INV_PIO4[arr + 8]!;
  res0 = ((res2 >> 32n) | (res0 << 32n)) & M64;
  res0 = (res0 + res1) & M64;
  const n = ((res0 + (1n << 61n)) & M64) >> 62n;
  res0 = (res0 - (n << 62n)) & M64;
  const signed = res0 >= 1n << 63n ? res0 - (1n << 64n) : res0;
  return [Number(signed) * PI63, Number(n)];
}

function sincosf(y: number, cos: boolean): number {
  const top = abstop12(y);
  if (top < TOP_PIO4) {
    if (top < TOP_2M12) return cos ? 1 : y;
    return sincosPoly(y, y * y, false, cos ? 1 : 0);
  }
  if (top >= TOP_INF) return NaN;
  let x: number, n: number, sign = 0;
  if (top < TOP_120) {
    const r = y * HPI_INV;
    n = ((Math.trunc(r) | 0) + 0x800000) >> 24;
    x = y - n * HPI;
  } else {
    [x, n] = reduceLarge(y);
    sign = y < 0 ? 1 : 0;
  }
  const q = (n + sign) & 3;
  const s = q === 1 || q === 2 ? -1 : 1;
  return sincosPoly(x * s, x * x, (q & 2) !== 0, cos ? n ^ 1 : n);
}

/** glibc sinf */
export function sinf(y: number): number {
  return sincosf(y, false);
}

/** glibc cosf */
export function cosf(y: number): number {
  return sincosf(y, true);
}
