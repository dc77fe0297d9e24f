// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// The non-matmul kernels: RMSNorm, RoPE, SwiGLU, softmax and attention over the KV cache, with the
// arithmetic of src/kernels/js/*.ts (float64 where the reference uses JavaScript numbers, float32
// roundings where it calls Math.fround or stores into a Float32Array).

import { f16ToF32, f16x4ToF32x4, f32ToF16, hi64, lo64 } from "./common";

// ---- exp: the classic fdlibm algorithm (what V8's Math.exp computes), so results match ----

const LN2_HI: f64 = 6.93147180369123816490e-01;
const LN2_LO: f64 = 1.90821492927058770002e-10;
const INV_LN2: f64 = 1.44269504088896338700e+00;
const P1: f64 = 1.66666666666666019037e-01;
const P2: f64 = -2.77777777770155933842e-03;
const P3: f64 = 6.61375632143793436117e-05;
const P4: f64 = -1.65339022054652515390e-06;
const P5: f64 = 4.13813679705723846039e-08;
const O_THRESHOLD: f64 = 7.09782712893383973096e+02;
const U_THRESHOLD: f64 = -7.45133219101941108420e+02;

/** e^x: x = k*ln2 + r with |r| <= ln2/2, e^r from a rational approximation, scaled by 2^k */
export function expF64(x: f64): f64 {
  const hx = <u32>(reinterpret<u64>(x) >>> 32);
  const neg = (hx >>> 31) != 0;
  const ax = hx & 0x7fffffff;
  if (ax >= 0x40862e42) { // |x| >= 709.78
    if (ax >= 0x7ff00000) {
      if (((ax & 0xfffff) | <u32>reinterpret<u64>(x)) != 0) return x + x; // NaN
      return neg ? 0.0 : x; // exp(±inf)
    }
    if (x > O_THRESHOLD) return Infinity;
    if (x < U_THRESHOLD) return 0.0;
  }
  let hi: f64 = 0;
  let lo: f64 = 0;
  let k: i32 = 0;
  if (ax > 0x3fd62e42) { // |x| > ln2/2
    if (ax < 0x3ff0a2b2) { // |x| < 1.5 ln2
      // V8's Math.exp (fdlibm with this one exception) returns Math.E for 1, which the reduction
      // below gets one bit wrong: with it, every float32 argument gives Math.exp's result
      if (x == 1.0) return 2.718281828459045;
      if (neg) { hi = x + LN2_HI; lo = -LN2_LO; k = -1; } else { hi = x - LN2_HI; lo = LN2_LO; k = 1; }
    } else {
      k = <i32>(INV_LN2 * x + (neg ? -0.5 : 0.5));
      const t = <f64>k;
      hi = x - t * LN2_HI;
      lo = t * LN2_LO;
    }
    x = hi - lo;
  } else if (ax < 0x3e300000) { // |x| < 2^-28
    return 1.0 + x;
  }
  const t = x * x;
  const c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k == 0) return 1.0 - ((x * c) / (c - 2.0) - x);
  const y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi);
  if (k >= -1021) {
    if (k == 1024) return y * 2.0 * reinterpret<f64>(0x7fe0000000000000);
    return y * reinterpret<f64>(<u64>(0x3ff + k) << 52);
  }
  return y * reinterpret<f64>(<u64>(0x3ff + k + 1000) << 52) * reinterpret<f64>(<u64>(0x3ff - 1000) << 52);
}

// ---- RMSNorm ----

/**
 * out row = (x row * scale) * weight with scale = 1/sqrt(Σx²/n + eps) (Σ of float32 squares in
 * float64, in order; the mean Σx²/n rounded to float32 before eps is added, as ggml does), for
 * nRows rows of n floats. out may be x.
 */
export function rmsNorm(x: usize, weight: usize, out: usize, nRows: i32, n: i32, eps: f64): void {
  for (let r = 0; r < nRows; r++) {
    const xr = x + ((<usize>r * <usize>n) << 2);
    const yr = out + ((<usize>r * <usize>n) << 2);
    let sum: f64 = 0;
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(xr + (<usize>i << 2));
      const sq = f32x4.mul(v, v);
      sum += <f64>f32x4.extract_lane(sq, 0);
      sum += <f64>f32x4.extract_lane(sq, 1);
      sum += <f64>f32x4.extract_lane(sq, 2);
      sum += <f64>f32x4.extract_lane(sq, 3);
    }
    for (; i < n; i++) {
      const v = load<f32>(xr + (<usize>i << 2));
      sum += <f64>(v * v);
    }
    const scale: f32 = <f32>1 / Mathf.sqrt(<f32>(sum / <f64>n) + <f32>eps);
    const sv = f32x4.splat(scale);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      v128.store(yr + o, f32x4.mul(f32x4.mul(v128.load(xr + o), sv), v128.load(weight + o)));
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      store<f32>(yr + o, (load<f32>(xr + o) * scale) * load<f32>(weight + o));
    }
  }
}

// ---- RoPE ----

/**
 * Rotate nHeads heads of headDim floats in each of nTok rows (row t at x + t*rowStride floats,
 * head h at + h*headDim) by position pos[t] (i32 array). cos/sin: tables [maxPos][nRot/2] f32.
 * mode 0: pairs (2i, 2i+1) (llama); mode 2: pairs (i, i + nRot/2) (NeoX). Dimensions past nRot
 * are left alone.
 */
export function rope(
  x: usize, nTok: i32, rowStride: i32, nHeads: i32, headDim: i32, pos: usize,
  cosTab: usize, sinTab: usize, nRot: i32, mode: i32,
): void {
  const half = nRot >> 1;
  for (let t = 0; t < nTok; t++) {
    const p = <usize>load<i32>(pos + (<usize>t << 2));
    const c = cosTab + ((p * <usize>half) << 2);
    const s = sinTab + ((p * <usize>half) << 2);
    for (let h = 0; h < nHeads; h++) {
      const o = x + ((<usize>t * <usize>rowStride + <usize>h * <usize>headDim) << 2);
      const step: usize = mode == 2 ? 4 : 8; // bytes between pair starts
      const other: usize = mode == 2 ? <usize>half << 2 : 4; // bytes from x0 to x1
      for (let i = 0; i < half; i++) {
        const a = o + <usize>i * step;
        const x0 = <f64>load<f32>(a);
        const x1 = <f64>load<f32>(a + other);
        const ci = <f64>load<f32>(c + (<usize>i << 2));
        const si = <f64>load<f32>(s + (<usize>i << 2));
        store<f32>(a, <f32>(x0 * ci - x1 * si));
        store<f32>(a + other, <f32>(x0 * si + x1 * ci));
      }
    }
  }
}

// ---- SwiGLU, softmax ----

/** gate[i] = silu(gate[i]) * up[i] in float64, rounded once */
export function swiglu(gate: usize, up: usize, n: i32): void {
  for (let i = 0; i < n; i++) {
    const o = <usize>i << 2;
    const g = <f64>load<f32>(gate + o);
    store<f32>(gate + o, <f32>((g / (1.0 + expF64(-g))) * <f64>load<f32>(up + o)));
  }
}

/** x[i] = exp(x[i] - max x) in place over n floats at x (float32 results); returns their sum in float64 */
@inline function expShifted(x: usize, n: i32): f64 {
  let max: f32 = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(x + (<usize>i << 2));
    if (v > max) max = v;
  }
  let sum: f64 = 0;
  for (let i = 0; i < n; i++) {
    const o = x + (<usize>i << 2);
    const e = <f32>expF64(<f64>load<f32>(o) - <f64>max);
    store<f32>(o, e);
    sum += <f64>e;
  }
  return sum;
}

/** softmax in place over n floats at x (sum of the float32 exponentials in float64) */
export function softmax(x: usize, n: i32): void {
  const inv = 1.0 / expShifted(x, n);
  for (let i = 0; i < n; i++) {
    const o = x + (<usize>i << 2);
    store<f32>(o, <f32>(<f64>load<f32>(o) * inv));
  }
}

// ---- attention ----

/** query heads of one KV head taken together (their K and V rows are read, and converted, once) */
const HG: i32 = 4;

/** bytes of attention scratch for one thread: per head of a group, acc f64[headDim], q f32[headDim], scores f32[maxPos+1] */
export function attentionScratchBytes(headDim: i32, maxPos: i32): i32 {
  return HG * (headDim * 12 + (maxPos + 1) * 4 + 16) + 16;
}

// This instance's own scratch (module globals are per instance, so per thread): what attention
// uses when called with scratch = 0, so that a pool can broadcast the same arguments to all threads.
let ownScratch: usize = 0;
let ownScratchBytes: usize = 0;

/** Give this instance (thread) its scratch region for attention(..., scratch = 0, ...). */
export function setScratch(ptr: usize, bytes: usize): void {
  ownScratch = ptr;
  ownScratchBytes = bytes;
}

/**
 * Causal attention with grouped-query heads, as src/kernels/js/attention.ts: for tokens t < nTok
 * and heads h0 <= h < h1, scores over cache rows 0..pos[t] (K.q, times 1/sqrt(headDim)), softmax
 * (sum in float64), then the float64 weighted sum of V. q/out: [nTok][nHead*headDim] f32;
 * k/v: rows of nHeadKv*headDim, f32 (kvF16 = 0) or f16 (kvF16 = 1: q and the probabilities are
 * rounded to half first, as ggml does). scratch: attentionScratchBytes(headDim, max pos) bytes
 * for this thread, or 0 for the instance's own (setScratch). Returns 0, or -1 (nothing done) when
 * scratch is 0 and the instance's is missing or too small.
 *
 * The query heads that share a KV head are taken up to HG at a time: each K and V row is read
 * (and, from an F16 cache, converted) once for all of them. Each head's arithmetic is the same,
 * in the same order, as one head alone.
 */
export function attention(
  q: usize, nTok: i32, pos: usize, k: usize, v: usize, kvF16: i32,
  nHead: i32, nHeadKv: i32, headDim: i32, out: usize, scratch: usize, h0: i32, h1: i32,
): i32 {
  if (scratch == 0) {
    let maxPos = 0;
    for (let t = 0; t < nTok; t++) maxPos = max(maxPos, load<i32>(pos + (<usize>t << 2)));
    if (ownScratch == 0 || ownScratchBytes < <usize>attentionScratchBytes(headDim, maxPos)) return -1;
    scratch = ownScratch;
  }
  const group = nHead / nHeadKv;
  for (let t = 0; t < nTok; t++) {
    const n = load<i32>(pos + (<usize>t << 2)) + 1;
    let h = h0;
    while (h < h1) {
      // heads [h, he): one KV head's, at most HG
      const g = h / group;
      const he = min(h1, min((g + 1) * group, h + HG));
      if (kvF16 != 0) headsF16(q, t, n, k, v, nHead, nHeadKv, headDim, out, scratch, h, he - h, g);
      else headsF32(q, t, n, k, v, nHead, nHeadKv, headDim, out, scratch, h, he - h, g);
      h = he;
    }
  }
  return 0;
}

function headsF16(q: usize, t: i32, n: i32, k: usize, v: usize, nHead: i32, nHeadKv: i32, headDim: i32, out: usize, scratch: usize, h: i32, G: i32, g: i32): void {
  heads(true, q, t, n, k, v, nHead, nHeadKv, headDim, out, scratch, h, G, g);
}
function headsF32(q: usize, t: i32, n: i32, k: usize, v: usize, nHead: i32, nHeadKv: i32, headDim: i32, out: usize, scratch: usize, h: i32, G: i32, g: i32): void {
  heads(false, q, t, n, k, v, nHead, nHeadKv, headDim, out, scratch, h, G, g);
}

/**
 * G (1..HG) query heads h.. of KV head g for token t over cache rows [0, n). Per head i the
 * scratch holds acc (f64[headDim]), the query (f32[headDim]) and the scores (f32[n]).
 */
@inline function heads(f16: bool, q: usize, t: i32, n: i32, k: usize, v: usize, nHead: i32, nHeadKv: i32, headDim: i32, out: usize, scratch: usize, h: i32, G: i32, g: i32): void {
  const kvRow = <usize>(nHeadKv * headDim);
  const es: usize = f16 ? 2 : 4;
  const ko = <usize>g * <usize>headDim;
  const scale = <f32>(1.0 / Math.sqrt(<f64>headDim));
  const hd = <usize>headDim;
  const base = (scratch + 15) & ~<usize>15;
  // per head i: acc at accs + i·hd·8, query at qs + i·hd·4, scores at sc + i·sstride
  const accs = base;
  const qs = accs + <usize>HG * (hd << 3);
  const sc = qs + <usize>HG * (hd << 2);
  const sstride = ((<usize>n << 2) + 15) & ~<usize>15;
  for (let i = 0; i < G; i++) {
    const qp = q + (((<usize>t * <usize>nHead + <usize>(h + i)) * hd) << 2);
    const qh = qs + <usize>i * (hd << 2);
    if (f16) {
      for (let d = 0; d < headDim; d++) store<f32>(qh + (<usize>d << 2), f16ToF32(f32ToF16(load<f32>(qp + (<usize>d << 2)))));
    } else {
      memory.copy(qh, qp, hd << 2);
    }
  }
  // scores: each K row once for the G heads; per head Σ in two f64x2 lanes then the tail, as dotF16/dotF32
  for (let j = 0; j < n; j++) {
    const kp = k + (<usize>j * kvRow + ko) * es;
    let a0 = f64x2.splat(0), a1 = a0, b0 = a0, b1 = a0, c0 = a0, c1 = a0, e0 = a0, e1 = a0;
    let d = 0;
    if (f16) {
      for (; d + 8 <= headDim; d += 8) {
        const kv = v128.load(kp + (<usize>d << 1));
        const kl = f16x4ToF32x4(i32x4.extend_low_i16x8_u(kv)), kh = f16x4ToF32x4(i32x4.extend_high_i16x8_u(kv));
        const o = <usize>d << 2;
        let pl = f32x4.mul(v128.load(qs + o), kl), ph = f32x4.mul(v128.load(qs + o, 16), kh);
        a0 = f64x2.add(a0, f64x2.add(lo64(pl), lo64(ph)));
        a1 = f64x2.add(a1, f64x2.add(hi64(pl), hi64(ph)));
        if (G > 1) {
          const q1 = qs + (hd << 2) + o;
          pl = f32x4.mul(v128.load(q1), kl); ph = f32x4.mul(v128.load(q1, 16), kh);
          b0 = f64x2.add(b0, f64x2.add(lo64(pl), lo64(ph)));
          b1 = f64x2.add(b1, f64x2.add(hi64(pl), hi64(ph)));
        }
        if (G > 2) {
          const q2 = qs + 2 * (hd << 2) + o;
          pl = f32x4.mul(v128.load(q2), kl); ph = f32x4.mul(v128.load(q2, 16), kh);
          c0 = f64x2.add(c0, f64x2.add(lo64(pl), lo64(ph)));
          c1 = f64x2.add(c1, f64x2.add(hi64(pl), hi64(ph)));
        }
        if (G > 3) {
          const q3 = qs + 3 * (hd << 2) + o;
          pl = f32x4.mul(v128.load(q3), kl); ph = f32x4.mul(v128.load(q3, 16), kh);
          e0 = f64x2.add(e0, f64x2.add(lo64(pl), lo64(ph)));
          e1 = f64x2.add(e1, f64x2.add(hi64(pl), hi64(ph)));
        }
      }
    } else {
      for (; d + 4 <= headDim; d += 4) {
        const kv = v128.load(kp + (<usize>d << 2));
        const kl = lo64(kv), kh = hi64(kv);
        const o = <usize>d << 2;
        let qv = v128.load(qs + o);
        a0 = f64x2.add(a0, f64x2.mul(lo64(qv), kl));
        a1 = f64x2.add(a1, f64x2.mul(hi64(qv), kh));
        if (G > 1) { qv = v128.load(qs + (hd << 2) + o); b0 = f64x2.add(b0, f64x2.mul(lo64(qv), kl)); b1 = f64x2.add(b1, f64x2.mul(hi64(qv), kh)); }
        if (G > 2) { qv = v128.load(qs + 2 * (hd << 2) + o); c0 = f64x2.add(c0, f64x2.mul(lo64(qv), kl)); c1 = f64x2.add(c1, f64x2.mul(hi64(qv), kh)); }
        if (G > 3) { qv = v128.load(qs + 3 * (hd << 2) + o); e0 = f64x2.add(e0, f64x2.mul(lo64(qv), kl)); e1 = f64x2.add(e1, f64x2.mul(hi64(qv), kh)); }
      }
    }
    const so = <usize>j << 2;
    store<f32>(sc + so, <f32>dotTail(f16, f64x2.add(a0, a1), qs, kp, d, headDim) * scale);
    if (G > 1) store<f32>(sc + sstride + so, <f32>dotTail(f16, f64x2.add(b0, b1), qs + (hd << 2), kp, d, headDim) * scale);
    if (G > 2) store<f32>(sc + 2 * sstride + so, <f32>dotTail(f16, f64x2.add(c0, c1), qs + 2 * (hd << 2), kp, d, headDim) * scale);
    if (G > 3) store<f32>(sc + 3 * sstride + so, <f32>dotTail(f16, f64x2.add(e0, e1), qs + 3 * (hd << 2), kp, d, headDim) * scale);
  }
  // softmax per head (float64 sum); the probabilities stay in the scores (times 1/sum, f16-rounded)
  for (let i = 0; i < G; i++) {
    const si = sc + <usize>i * sstride;
    const inv = <f32>(1.0 / expShifted(si, n));
    for (let j = 0; j < n; j++) {
      const o = si + (<usize>j << 2);
      let p = load<f32>(o) * inv;
      if (f16) p = f16ToF32(f32ToF16(p));
      store<f32>(o, p);
    }
    memory.fill(accs + <usize>i * (hd << 3), 0, hd << 3);
  }
  // Σ p·V: each V row once for the G heads
  for (let j = 0; j < n; j++) {
    const vp = v + (<usize>j * kvRow + ko) * es;
    const so = <usize>j << 2;
    const p0 = f64x2.splat(<f64>load<f32>(sc + so));
    const p1 = G > 1 ? f64x2.splat(<f64>load<f32>(sc + sstride + so)) : p0;
    const p2 = G > 2 ? f64x2.splat(<f64>load<f32>(sc + 2 * sstride + so)) : p0;
    const p3 = G > 3 ? f64x2.splat(<f64>load<f32>(sc + 3 * sstride + so)) : p0;
    let d = 0;
    if (f16) {
      for (; d + 8 <= headDim; d += 8) {
        const vv = v128.load(vp + (<usize>d << 1));
        const lo = f16x4ToF32x4(i32x4.extend_low_i16x8_u(vv));
        const hi = f16x4ToF32x4(i32x4.extend_high_i16x8_u(vv));
        const v0 = lo64(lo), v1 = hi64(lo), v2 = lo64(hi), v3 = hi64(hi);
        const ap = accs + (<usize>d << 3);
        acc4(ap, p0, v0, v1, v2, v3);
        if (G > 1) acc4(ap + (hd << 3), p1, v0, v1, v2, v3);
        if (G > 2) acc4(ap + 2 * (hd << 3), p2, v0, v1, v2, v3);
        if (G > 3) acc4(ap + 3 * (hd << 3), p3, v0, v1, v2, v3);
      }
    } else {
      for (; d + 4 <= headDim; d += 4) {
        const vv = v128.load(vp + (<usize>d << 2));
        const v0 = lo64(vv), v1 = hi64(vv);
        const ap = accs + (<usize>d << 3);
        acc2(ap, p0, v0, v1);
        if (G > 1) acc2(ap + (hd << 3), p1, v0, v1);
        if (G > 2) acc2(ap + 2 * (hd << 3), p2, v0, v1);
        if (G > 3) acc2(ap + 3 * (hd << 3), p3, v0, v1);
      }
    }
    for (; d < headDim; d++) {
      const x: f64 = f16 ? <f64>f16ToF32(load<u16>(vp + (<usize>d << 1))) : <f64>load<f32>(vp + (<usize>d << 2));
      for (let i = 0; i < G; i++) {
        const ap = accs + <usize>i * (hd << 3) + (<usize>d << 3);
        store<f64>(ap, load<f64>(ap) + <f64>load<f32>(sc + <usize>i * sstride + so) * x);
      }
    }
  }
  for (let i = 0; i < G; i++) {
    const op = out + (((<usize>t * <usize>nHead + <usize>(h + i)) * hd) << 2);
    const ap = accs + <usize>i * (hd << 3);
    for (let d = 0; d < headDim; d++) store<f32>(op + (<usize>d << 2), <f32>load<f64>(ap + (<usize>d << 3)));
  }
}

/** the scalar tail of one head's K·q (elements [d, headDim)) after its lanes s, as dotF16/dotF32 */
@inline function dotTail(f16: bool, s: v128, qh: usize, kp: usize, d: i32, headDim: i32): f64 {
  let r = f64x2.extract_lane(s, 0) + f64x2.extract_lane(s, 1);
  for (; d < headDim; d++) {
    if (f16) r += <f64>(load<f32>(qh + (<usize>d << 2)) * f16ToF32(load<u16>(kp + (<usize>d << 1))));
    else r += <f64>load<f32>(qh + (<usize>d << 2)) * <f64>load<f32>(kp + (<usize>d << 2));
  }
  return r;
}

/** acc[0..8) (f64) += p·(v0, v1, v2, v3) */
@inline function acc4(ap: usize, p: v128, v0: v128, v1: v128, v2: v128, v3: v128): void {
  v128.store(ap, f64x2.add(v128.load(ap), f64x2.mul(p, v0)));
  v128.store(ap, f64x2.add(v128.load(ap, 16), f64x2.mul(p, v1)), 16);
  v128.store(ap, f64x2.add(v128.load(ap, 32), f64x2.mul(p, v2)), 32);
  v128.store(ap, f64x2.add(v128.load(ap, 48), f64x2.mul(p, v3)), 48);
}
/** acc[0..4) (f64) += p·(v0, v1) */
@inline function acc2(ap: usize, p: v128, v0: v128, v1: v128): void {
  v128.store(ap, f64x2.add(v128.load(ap), f64x2.mul(p, v0)));
  v128.store(ap, f64x2.add(v128.load(ap, 16), f64x2.mul(p, v1)), 16);
}

/**
 * attention for rows of several sequences at once: units u0 <= u < u1 of (token t, head h), u =
 * t·nHead + h; token t's K and V caches at the u32 pair kv + 8t. Arguments otherwise as attention's.
 */
export function attentionRows(
  q: usize, nTok: i32, pos: usize, kv: usize, kvF16: i32,
  nHead: i32, nHeadKv: i32, headDim: i32, out: usize, scratch: usize, u0: i32, u1: i32,
): i32 {
  const row = <usize>(nHead * headDim) << 2;
  let u = u0;
  while (u < u1) {
    const t = u / nHead;
    const h0 = u - t * nHead;
    const h1 = min(nHead, h0 + (u1 - u));
    const r = attention(q + <usize>t * row, 1, pos + (<usize>t << 2), <usize>load<u32>(kv + (<usize>t << 3)), <usize>load<u32>(kv + (<usize>t << 3), 4),
      kvF16, nHead, nHeadKv, headDim, out + <usize>t * row, scratch, h0, h1);
    if (r != 0) return r;
    u += h1 - h0;
  }
  return 0;
}
