// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm-train), not Node TypeScript.
// Float32 matrix products for training (forward and backward passes), SIMD128, over one imported
// shared memory. Two shapes cover every product of a linear layer and of attention without
// transposing anything:
//
//   gemmNT: C[m, n] (+)= Σ_k A[m, k] · B[n, k]          (y = x·Wᵀ, scores = Q·Kᵀ, dP = dO·Vᵀ)
//   gemmNN: C[m, j] (+)= Σ_k a(m, k) · B[k, j]          (dx = dy·W, O = P·V, and with a strided
//           a(m, k) = A[m·sam + k·sak]                    a = Aᵀ: dW = dyᵀ·x, dK = dSᵀ·Q, dV = Pᵀ·dO)
//
// Each export computes rows [m0, m1) of C, so a worker pool splits a product by rows; every element
// is summed in a fixed order that does not depend on the split (rows are split in multiples of 4),
// so results are the same for any number of threads. The plain-TypeScript reference is
// src/train/gemm.ts; tests compare the two.

/** [Σa, Σb, Σc, Σd] of four f32x4 */
@inline function hsum4(a: v128, b: v128, c: v128, d: v128): v128 {
  const ab = f32x4.add(i32x4.shuffle(a, b, 0, 4, 1, 5), i32x4.shuffle(a, b, 2, 6, 3, 7));
  const cd = f32x4.add(i32x4.shuffle(c, d, 0, 4, 1, 5), i32x4.shuffle(c, d, 2, 6, 3, 7));
  return f32x4.add(i32x4.shuffle(ab, cd, 0, 1, 4, 5), i32x4.shuffle(ab, cd, 2, 3, 6, 7));
}

/** (a0 + a2) + (a1 + a3): the order hsum4 uses */
@inline function hsum(a: v128): f32 {
  return (f32x4.extract_lane(a, 0) + f32x4.extract_lane(a, 2)) + (f32x4.extract_lane(a, 1) + f32x4.extract_lane(a, 3));
}

/** one dot product of length k (the order used for every element outside full 4x4 tiles) */
@inline function dot1(a: usize, b: usize, k: i32): f32 {
  let s = f32x4.splat(0);
  let i = 0;
  for (; i + 4 <= k; i += 4) s = f32x4.add(s, f32x4.mul(v128.load(a + (<usize>i << 2)), v128.load(b + (<usize>i << 2))));
  let r = hsum(s);
  for (; i < k; i++) r += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return r;
}

/**
 * C[m*ldc + n] = (acc ? C : 0) + Σ_k A[m*lda + k] · B[n*ldb + k] for m0 <= m < m1, 0 <= n < N.
 * Pointers are byte offsets, strides in elements. Columns are taken in blocks whose B rows stay in
 * cache while every row tile of A passes over them.
 */
export function gemmNT(a: usize, lda: i32, b: usize, ldb: i32, c: usize, ldc: i32, N: i32, K: i32, acc: i32, m0: i32, m1: i32): void {
  const K4 = K & ~3;
  let nb = (16384 / max(K, 1)) & ~3;
  if (nb < 4) nb = 4;
  for (let n0 = 0; n0 < N; n0 += nb) {
    const n1 = min(N, n0 + nb);
    let m = m0;
    // 2 rows of A x 4 rows of B: 8 accumulators, which fit the 16 SIMD registers V8 uses on x64
    for (; m + 2 <= m1; m += 2) {
      const a0 = a + (<usize>(m * lda) << 2), a1 = a0 + (<usize>lda << 2);
      let n = n0;
      for (; n + 4 <= n1; n += 4) {
        const b0 = b + (<usize>(n * ldb) << 2), b1 = b0 + (<usize>ldb << 2), b2 = b1 + (<usize>ldb << 2), b3 = b2 + (<usize>ldb << 2);
        let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s02 = f32x4.splat(0), s03 = f32x4.splat(0);
        let s10 = f32x4.splat(0), s11 = f32x4.splat(0), s12 = f32x4.splat(0), s13 = f32x4.splat(0);
        for (let k = 0; k < K4; k += 4) {
          const o = <usize>k << 2;
          const x0 = v128.load(a0 + o), x1 = v128.load(a1 + o);
          let w = v128.load(b0 + o);
          s00 = f32x4.add(s00, f32x4.mul(x0, w)); s10 = f32x4.add(s10, f32x4.mul(x1, w));
          w = v128.load(b1 + o);
          s01 = f32x4.add(s01, f32x4.mul(x0, w)); s11 = f32x4.add(s11, f32x4.mul(x1, w));
          w = v128.load(b2 + o);
          s02 = f32x4.add(s02, f32x4.mul(x0, w)); s12 = f32x4.add(s12, f32x4.mul(x1, w));
          w = v128.load(b3 + o);
          s03 = f32x4.add(s03, f32x4.mul(x0, w)); s13 = f32x4.add(s13, f32x4.mul(x1, w));
        }
        let r0 = hsum4(s00, s01, s02, s03), r1 = hsum4(s10, s11, s12, s13);
        for (let k = K4; k < K; k++) {
          const o = <usize>k << 2;
          const w = f32x4(load<f32>(b0 + o), load<f32>(b1 + o), load<f32>(b2 + o), load<f32>(b3 + o));
          r0 = f32x4.add(r0, f32x4.mul(f32x4.splat(load<f32>(a0 + o)), w));
          r1 = f32x4.add(r1, f32x4.mul(f32x4.splat(load<f32>(a1 + o)), w));
        }
        const c0 = c + (<usize>(m * ldc + n) << 2), c1 = c0 + (<usize>ldc << 2);
        if (acc) { r0 = f32x4.add(r0, v128.load(c0)); r1 = f32x4.add(r1, v128.load(c1)); }
        v128.store(c0, r0); v128.store(c1, r1);
      }
      for (; n < n1; n++) {
        const bn = b + (<usize>(n * ldb) << 2);
        for (let i = 0; i < 2; i++) {
          const cp = c + (<usize>((m + i) * ldc + n) << 2);
          const v = dot1(a0 + (<usize>(i * lda) << 2), bn, K);
          store<f32>(cp, acc ? load<f32>(cp) + v : v);
        }
      }
    }
    for (; m < m1; m++) {
      const am = a + (<usize>(m * lda) << 2);
      for (let n = n0; n < n1; n++) {
        const cp = c + (<usize>(m * ldc + n) << 2);
        const v = dot1(am, b + (<usize>(n * ldb) << 2), K);
        store<f32>(cp, acc ? load<f32>(cp) + v : v);
      }
    }
  }
}

/** K-chunk of gemmNN: the rows of B it covers stay in cache across the row tiles of C. */
const KC: i32 = 128;

/**
 * C[m*ldc + j] = (acc ? C : 0) + Σ_k A[m*sam + k*sak] · B[k*ldb + j] for m0 <= m < m1, 0 <= j < N.
 * Each element is summed over k in increasing order, starting from C (acc) or 0.
 */
export function gemmNN(a: usize, sam: i32, sak: i32, b: usize, ldb: i32, c: usize, ldc: i32, N: i32, K: i32, acc: i32, m0: i32, m1: i32): void {
  const N8 = N & ~7, N4 = N & ~3;
  for (let k0 = 0; k0 < K; k0 += KC) {
    const k1 = min(K, k0 + KC);
    const add = acc || k0 > 0;
    let m = m0;
    for (; m + 4 <= m1; m += 4) {
      const c0 = c + (<usize>(m * ldc) << 2), c1 = c0 + (<usize>ldc << 2), c2 = c1 + (<usize>ldc << 2), c3 = c2 + (<usize>ldc << 2);
      const a0 = a + (<usize>(m * sam) << 2), a1 = a0 + (<usize>sam << 2), a2 = a1 + (<usize>sam << 2), a3 = a2 + (<usize>sam << 2);
      let j = 0;
      for (; j < N8; j += 8) {
        const oj = <usize>j << 2;
        let s00 = f32x4.splat(0), s01 = f32x4.splat(0), s10 = f32x4.splat(0), s11 = f32x4.splat(0);
        let s20 = f32x4.splat(0), s21 = f32x4.splat(0), s30 = f32x4.splat(0), s31 = f32x4.splat(0);
        if (add) {
          s00 = v128.load(c0 + oj); s01 = v128.load(c0 + oj + 16);
          s10 = v128.load(c1 + oj); s11 = v128.load(c1 + oj + 16);
          s20 = v128.load(c2 + oj); s21 = v128.load(c2 + oj + 16);
          s30 = v128.load(c3 + oj); s31 = v128.load(c3 + oj + 16);
        }
        for (let k = k0; k < k1; k++) {
          const bk = b + (<usize>(k * ldb) << 2) + oj;
          const w0 = v128.load(bk), w1 = v128.load(bk + 16);
          const ok = <usize>(k * sak) << 2;
          let x = f32x4.splat(load<f32>(a0 + ok));
          s00 = f32x4.add(s00, f32x4.mul(x, w0)); s01 = f32x4.add(s01, f32x4.mul(x, w1));
          x = f32x4.splat(load<f32>(a1 + ok));
          s10 = f32x4.add(s10, f32x4.mul(x, w0)); s11 = f32x4.add(s11, f32x4.mul(x, w1));
          x = f32x4.splat(load<f32>(a2 + ok));
          s20 = f32x4.add(s20, f32x4.mul(x, w0)); s21 = f32x4.add(s21, f32x4.mul(x, w1));
          x = f32x4.splat(load<f32>(a3 + ok));
          s30 = f32x4.add(s30, f32x4.mul(x, w0)); s31 = f32x4.add(s31, f32x4.mul(x, w1));
        }
        v128.store(c0 + oj, s00); v128.store(c0 + oj + 16, s01);
        v128.store(c1 + oj, s10); v128.store(c1 + oj + 16, s11);
        v128.store(c2 + oj, s20); v128.store(c2 + oj + 16, s21);
        v128.store(c3 + oj, s30); v128.store(c3 + oj + 16, s31);
      }
      for (; j < N4; j += 4) {
        const oj = <usize>j << 2;
        let s0 = f32x4.splat(0), s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0);
        if (add) { s0 = v128.load(c0 + oj); s1 = v128.load(c1 + oj); s2 = v128.load(c2 + oj); s3 = v128.load(c3 + oj); }
        for (let k = k0; k < k1; k++) {
          const w = v128.load(b + (<usize>(k * ldb) << 2) + oj);
          const ok = <usize>(k * sak) << 2;
          s0 = f32x4.add(s0, f32x4.mul(f32x4.splat(load<f32>(a0 + ok)), w));
          s1 = f32x4.add(s1, f32x4.mul(f32x4.splat(load<f32>(a1 + ok)), w));
          s2 = f32x4.add(s2, f32x4.mul(f32x4.splat(load<f32>(a2 + ok)), w));
          s3 = f32x4.add(s3, f32x4.mul(f32x4.splat(load<f32>(a3 + ok)), w));
        }
        v128.store(c0 + oj, s0); v128.store(c1 + oj, s1); v128.store(c2 + oj, s2); v128.store(c3 + oj, s3);
      }
      for (; j < N; j++) {
        const oj = <usize>j << 2;
        for (let i = 0; i < 4; i++) {
          const cp = c + (<usize>((m + i) * ldc) << 2) + oj;
          const ai = a + (<usize>((m + i) * sam) << 2);
          let s: f32 = add ? load<f32>(cp) : 0;
          for (let k = k0; k < k1; k++) s += load<f32>(ai + (<usize>(k * sak) << 2)) * load<f32>(b + (<usize>(k * ldb) << 2) + oj);
          store<f32>(cp, s);
        }
      }
    }
    for (; m < m1; m++) {
      const cm = c + (<usize>(m * ldc) << 2);
      const am = a + (<usize>(m * sam) << 2);
      let j = 0;
      for (; j < N4; j += 4) {
        const oj = <usize>j << 2;
        let s = add ? v128.load(cm + oj) : f32x4.splat(0);
        for (let k = k0; k < k1; k++) {
          s = f32x4.add(s, f32x4.mul(f32x4.splat(load<f32>(am + (<usize>(k * sak) << 2))), v128.load(b + (<usize>(k * ldb) << 2) + oj)));
        }
        v128.store(cm + oj, s);
      }
      for (; j < N; j++) {
        const oj = <usize>j << 2;
        let s: f32 = add ? load<f32>(cm + oj) : 0;
        for (let k = k0; k < k1; k++) s += load<f32>(am + (<usize>(k * sak) << 2)) * load<f32>(b + (<usize>(k * ldb) << 2) + oj);
        store<f32>(cm + oj, s);
      }
    }
  }
}

/** Zero `bytes` bytes at p (bulk memory.fill: typed-array fills on shared memory are slow in V8). */
export function fill0(p: usize, bytes: usize): void {
  memory.fill(p, 0, bytes);
}

/** Copy `bytes` bytes from src to dst (may overlap). */
export function copy(dst: usize, src: usize, bytes: usize): void {
  memory.copy(dst, src, bytes);
}

/** first byte the module's static data does not use */
export function heapBase(): usize {
  return __heap_base;
}
