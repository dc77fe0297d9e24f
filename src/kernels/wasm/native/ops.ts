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

/** softmax in place over n floats at x (sum of the float32 exponentials in float64) */
export function softmax(x: usize, n: i32): void {
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
  const inv = 1.0 / sum;
  for (let i = 0; i < n; i++) {
    const o = x + (<usize>i << 2);
    store<f32>(o, <f32>(<f64>load<f32>(o) * inv));
  }
}

// ---- attention ----

/** bytes of attention scratch for one thread: acc f64[headDim], q f32[headDim], scores f32[maxPos+1] */
export function attentionScratchBytes(headDim: i32, maxPos: i32): i32 {
  return headDim * 12 + (maxPos + 1) * 4 + 16;
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

/** Σ q[d]*k[d] over headDim (f32 K): products exact in float64 */
@inline function dotF32(q: usize, k: usize, n: i32): f64 {
  let s0 = f64x2.splat(0);
  let s1 = f64x2.splat(0);
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const o = <usize>d << 2;
    const qv = v128.load(q + o);
    const kv = v128.load(k + o);
    s0 = f64x2.add(s0, f64x2.mul(lo64(qv), lo64(kv)));
    s1 = f64x2.add(s1, f64x2.mul(hi64(qv), hi64(kv)));
  }
  s0 = f64x2.add(s0, s1);
  let s = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
  for (; d < n; d++) s += <f64>load<f32>(q + (<usize>d << 2)) * <f64>load<f32>(k + (<usize>d << 2));
  return s;
}

/** Σ q[d]*k[d] over headDim (f16 K, q already rounded to half): products exact in float32 */
@inline function dotF16(q: usize, k: usize, n: i32): f64 {
  let s0 = f64x2.splat(0);
  let s1 = f64x2.splat(0);
  let d = 0;
  for (; d + 8 <= n; d += 8) {
    const kv = v128.load(k + (<usize>d << 1));
    const pl = f32x4.mul(v128.load(q + (<usize>d << 2)), f16x4ToF32x4(i32x4.extend_low_i16x8_u(kv)));
    const ph = f32x4.mul(v128.load(q + (<usize>d << 2), 16), f16x4ToF32x4(i32x4.extend_high_i16x8_u(kv)));
    s0 = f64x2.add(s0, f64x2.add(lo64(pl), lo64(ph)));
    s1 = f64x2.add(s1, f64x2.add(hi64(pl), hi64(ph)));
  }
  s0 = f64x2.add(s0, s1);
  let s = f64x2.extract_lane(s0, 0) + f64x2.extract_lane(s0, 1);
  for (; d < n; d++) s += <f64>(load<f32>(q + (<usize>d << 2)) * f16ToF32(load<u16>(k + (<usize>d << 1))));
  return s;
}

/**
 * Causal attention with grouped-query heads, as src/kernels/js/attention.ts: for tokens t < nTok
 * and heads h0 <= h < h1, scores over cache rows 0..pos[t] (K.q, times 1/sqrt(headDim)), softmax
 * (sum in float64), then the float64 weighted sum of V. q/out: [nTok][nHead*headDim] f32;
 * k/v: rows of nHeadKv*headDim, f32 (kvF16 = 0) or f16 (kvF16 = 1: q and the probabilities are
 * rounded to half first, as ggml does). scratch: attentionScratchBytes(headDim, max pos) bytes
 * for this thread, or 0 for the instance's own (setScratch). Returns 0, or -1 (nothing done) when
 * scratch is 0 and the instance's is missing or too small.
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
  const kvRow = <usize>(nHeadKv * headDim);
  const es: usize = kvF16 != 0 ? 2 : 4;
  const scale = <f32>(1.0 / Math.sqrt(<f64>headDim));
  const acc = (scratch + 7) & ~<usize>7;
  const qh = acc + (<usize>headDim << 3);
  const scores = qh + (<usize>headDim << 2);
  for (let t = 0; t < nTok; t++) {
    const n = load<i32>(pos + (<usize>t << 2)) + 1;
    for (let h = h0; h < h1; h++) {
      const qo = (<usize>t * <usize>nHead + <usize>h) * <usize>headDim;
      const ko = <usize>(h / group) * <usize>headDim;
      const qp = q + (qo << 2);
      if (kvF16 != 0) {
        for (let d = 0; d < headDim; d++) {
          store<f32>(qh + (<usize>d << 2), f16ToF32(f32ToF16(load<f32>(qp + (<usize>d << 2)))));
        }
      } else {
        memory.copy(qh, qp, <usize>headDim << 2);
      }
      let max: f32 = -Infinity;
      for (let j = 0; j < n; j++) {
        const kp = k + (<usize>j * kvRow + ko) * es;
        const dot = kvF16 != 0 ? dotF16(qh, kp, headDim) : dotF32(qh, kp, headDim);
        const sc = <f32>dot * scale;
        store<f32>(scores + (<usize>j << 2), sc);
        if (sc > max) max = sc;
      }
      let sum: f64 = 0;
      for (let j = 0; j < n; j++) {
        const o = scores + (<usize>j << 2);
        const e = <f32>expF64(<f64>load<f32>(o) - <f64>max);
        store<f32>(o, e);
        sum += <f64>e;
      }
      const inv = <f32>(1.0 / sum);
      memory.fill(acc, 0, <usize>headDim << 3);
      for (let j = 0; j < n; j++) {
        let p = load<f32>(scores + (<usize>j << 2)) * inv;
        if (kvF16 != 0) p = f16ToF32(f32ToF16(p));
        const pv = f64x2.splat(<f64>p);
        const vp = v + (<usize>j * kvRow + ko) * es;
        let d = 0;
        if (kvF16 != 0) {
          for (; d + 8 <= headDim; d += 8) {
            const vv = v128.load(vp + (<usize>d << 1));
            const lo = f16x4ToF32x4(i32x4.extend_low_i16x8_u(vv));
            const hi = f16x4ToF32x4(i32x4.extend_high_i16x8_u(vv));
            const ap = acc + (<usize>d << 3);
            v128.store(ap, f64x2.add(v128.load(ap), f64x2.mul(pv, lo64(lo))));
            v128.store(ap, f64x2.add(v128.load(ap, 16), f64x2.mul(pv, hi64(lo))), 16);
            v128.store(ap, f64x2.add(v128.load(ap, 32), f64x2.mul(pv, lo64(hi))), 32);
            v128.store(ap, f64x2.add(v128.load(ap, 48), f64x2.mul(pv, hi64(hi))), 48);
          }
          for (; d < headDim; d++) {
            const ap = acc + (<usize>d << 3);
            store<f64>(ap, load<f64>(ap) + <f64>p * <f64>f16ToF32(load<u16>(vp + (<usize>d << 1))));
          }
        } else {
          for (; d + 4 <= headDim; d += 4) {
            const vv = v128.load(vp + (<usize>d << 2));
            const ap = acc + (<usize>d << 3);
            v128.store(ap, f64x2.add(v128.load(ap), f64x2.mul(pv, lo64(vv))));
            v128.store(ap, f64x2.add(v128.load(ap, 16), f64x2.mul(pv, hi64(vv))), 16);
          }
          for (; d < headDim; d++) {
            const ap = acc + (<usize>d << 3);
            store<f64>(ap, load<f64>(ap) + <f64>p * <f64>load<f32>(vp + (<usize>d << 2)));
          }
        }
      }
      const op = out + (qo << 2);
      for (let d = 0; d < headDim; d++) store<f32>(op + (<usize>d << 2), <f32>load<f64>(acc + (<usize>d << 3)));
    }
  }
  return 0;
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
