/**
 * "llama.cpp-exact" float arithmetic: the operations of llama.cpp's CPU backend (ggml-cpu, x86-64
 * build with AVX2/FMA/F16C and AVX-512, as the reference data in ../shared/reference was made),
 * reproduced bit for bit in plain TypeScript. This is the reference; src/kernels/wasm has the fast
 * versions, tested against these.
 *
 * Where the default kernels sum in float64 (close to exact, but not what llama.cpp computes),
 * ggml-cpu sums in float32 SIMD lanes with fused multiply-adds and reduces the lanes in a fixed
 * tree; it computes exp with its own vector approximation (ggml_v_expf) and takes expf, sinf,
 * cosf and powf from glibc. On quantized models these last-bit differences matter: activations
 * are rounded to 8 bits before every product, and one value that lands on the other side of a
 * rounding boundary moves everything after it (see src/eval/perplexity.ts).
 *
 * The kernels of a product also depend on its shape, as in llama.cpp: a weight product over two or
 * more rows goes through llamafile's sgemm ("gemm" here) where that supports the type, a single
 * row or an expert product (mul_mat_id) through ggml's vec_dot ("vec").
 */
import { expf, fmaf } from "./libm.js";

const fr = Math.fround;

/** GCC's _mm512_reduce_add_ps over l[o..o+16): halves added pairwise down to one lane. */
export function reduce16(l: ArrayLike<number>, o = 0): number {
  const t0 = fr(l[o + 8]! + l[o]!), t1 = fr(l[o + 9]! + l[o + 1]!), t2 = fr(l[o + 10]! + l[o + 2]!), t3 = fr(l[o + 11]! + l[o + 3]!);
  const t4 = fr(l[o + 12]! + l[o + 4]!), t5 = fr(l[o + 13]! + l[o + 5]!), t6 = fr(l[o + 14]! + l[o + 6]!), t7 = fr(l[o + 15]! + l[o + 7]!);
  const u0 = fr(t4 + t0), u1 = fr(t5 + t1), u2 = fr(t6 + t2), u3 = fr(t7 + t3);
  return fr(fr(u0 + u2) + fr(u1 + u3));
}

/** hsum_float_8 (and tinyBLAS's hsum of an __m256) over l[o..o+8). */
export function hsum8(l: ArrayLike<number>, o = 0): number {
  const r0 = fr(l[o + 4]! + l[o]!), r1 = fr(l[o + 5]! + l[o + 1]!), r2 = fr(l[o + 6]! + l[o + 2]!), r3 = fr(l[o + 7]! + l[o + 3]!);
  return fr(fr(r0 + r2) + fr(r1 + r3));
}

const lanes16 = new Float32Array(16);
const acc64 = new Float32Array(64);

/**
 * One output of llamafile's tinyBLAS<16, __m512> (sgemm for F32 and F16 weights): 16 float lanes,
 * lane i accumulating a[i], a[i+16], ... times b with fused multiply-adds, then reduce16. k must
 * be a multiple of 16 (sgemm declines otherwise). F16 operands are passed as their float values.
 */
export function dotF32Gemm(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, k: number): number {
  const l = lanes16;
  l.fill(0);
  for (let s = 0; s < k; s += 16) {
    for (let i = 0; i < 16; i++) l[i] = fmaf(a[ao + s + i]!, b[bo + s + i]!, l[i]!);
  }
  return reduce16(l);
}

/** the 4 x 16 accumulators of ggml's AVX-512 vec_dot over 64-element steps, reduced to one float */
function vecSteps(x: ArrayLike<number>, xo: number, y: ArrayLike<number>, yo: number, np: number): number {
  const a = acc64;
  a.fill(0);
  for (let i = 0; i < np; i += 64) {
    for (let j = 0; j < 64; j++) a[j] = fmaf(x[xo + i + j]!, y[yo + i + j]!, a[j]!);
  }
  for (let q = 0; q < 16; q++) {
    a[q] = fr(a[q]! + a[32 + q]!);
    a[16 + q] = fr(a[16 + q]! + a[48 + q]!);
  }
  for (let q = 0; q < 16; q++) a[q] = fr(a[q]! + a[16 + q]!);
  return reduce16(a);
}

/**
 * ggml_vec_dot_f32 (AVX-512): fused multiply-adds in 4 x 16 lanes over the first n & ~63
 * elements, the lanes reduced, then the rest added one by one in float (no fused multiply-add).
 */
export function dotF32Vec(x: ArrayLike<number>, xo: number, y: ArrayLike<number>, yo: number, n: number): number {
  const np = n & ~63;
  let sum = np > 0 ? vecSteps(x, xo, y, yo, np) : 0;
  for (let i = np; i < n; i++) sum = fr(sum + fr(x[xo + i]! * y[yo + i]!));
  return sum;
}

/** ggml_vec_dot_f16 (AVX-512, operands as their float values): as dotF32Vec, but the leftovers sum in double. */
export function dotF16Vec(x: ArrayLike<number>, xo: number, y: ArrayLike<number>, yo: number, n: number): number {
  const np = n & ~63;
  let sum = np > 0 ? vecSteps(x, xo, y, yo, np) : 0;
  for (let i = np; i < n; i++) sum += x[xo + i]! * y[yo + i]!;
  return fr(sum);
}

// ggml_v_expf constants (AVX-512 variant)
const EXP_R = 12582912; // 0x1.8p23
const EXP_LOG2E = fr(1.4426950216293335), EXP_C1 = fr(0.693145751953125), EXP_C2 = fr(1.428606765330187e-6);
const EXP_P0 = fr(0.008247390389442444), EXP_P1 = fr(0.04189976677298546), EXP_P2 = fr(0.16668395698070526);
const EXP_P3 = fr(0.4999912679195404), EXP_P4 = fr(0.9999994039535522);

/** ggml_v_expf (AVX-512 variant), one lane: exp(x) to about 1.5 ulp, as llama.cpp computes it in softmax and SiLU. */
export function vexpf(x: number): number {
  const z = fmaf(x, EXP_LOG2E, EXP_R);
  const n = fr(z - EXP_R);
  const b = fmaf(-n, EXP_C2, fmaf(-n, EXP_C1, x));
  if (Math.abs(n) > 192) return n <= 0 ? 0 : Infinity;
  const u = fr(b * b);
  const j = fmaf(fmaf(fmaf(EXP_P0, b, EXP_P1), u, fmaf(EXP_P2, b, EXP_P3)), u, fmaf(EXP_P4, b, 1));
  return fr(j * 2 ** n);
}

/** ggml_v_silu (AVX-512), one lane: x / (1 + exp(-x)). */
export function vsilu(x: number): number {
  return fr(x / fr(1 + vexpf(-x)));
}

/** ggml_silu_f32 (the scalar leftovers of a row): x / (1 + expf(-x)) with glibc's expf. */
export function silu(x: number): number {
  return fr(x / fr(1 + expf(-x)));
}

/** ggml_vec_silu_f32 in place over x[off..off+n): groups of 16 vectorized, the rest scalar. */
export function siluRow(x: Float32Array, off: number, n: number): void {
  const nv = n & ~15;
  for (let i = 0; i < nv; i++) x[off + i] = vsilu(x[off + i]!);
  for (let i = nv; i < n; i++) x[off + i] = silu(x[off + i]!);
}

/**
 * ggml's soft_max over x[off..off+n) in place (ggml_vec_soft_max_f32, AVX-512): exp(x - max) by
 * vexpf in groups of 16 whose float sums (reduce16) accumulate in double, the rest by expf; then
 * every value times float(1/sum). Masked entries are -Infinity (they become 0).
 */
export function softmaxRow(x: Float32Array, off: number, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i]! > max) max = x[off + i]!;
  let sum = 0;
  let i = 0;
  for (; i + 15 < n; i += 16) {
    for (let j = 0; j < 16; j++) x[off + i + j] = vexpf(fr(x[off + i + j]! - max));
    sum += reduce16(x, off + i);
  }
  for (; i < n; i++) {
    const v = expf(fr(x[off + i]! - max));
    x[off + i] = v;
    sum += v;
  }
  const inv = fr(1 / sum);
  for (let j = 0; j < n; j++) x[off + j] = x[off + j]! * inv;
}

/**
 * RMSNorm as ggml computes it, then the weight: the sum of squares in double, its mean rounded to
 * float, scale = 1/sqrtf(mean + eps) in float.
 */
export function rmsNormRowsGgml(x: Float32Array, weight: Float32Array, out: Float32Array, nRows: number, n: number, eps: number): void {
  for (let r = 0; r < nRows; r++) {
    const o = r * n;
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const v = x[o + i]!;
      sum += fr(v * v);
    }
    const scale = fr(1 / fr(Math.sqrt(fr(fr(sum / n) + eps))));
    for (let i = 0; i < n; i++) out[o + i] = fr(x[o + i]! * scale) * weight[i]!;
  }
}
