/**
 * RMSNorm as ggml computes it: the sum of squares accumulates in double, the mean is rounded to a
 * float (ggml: `const float mean = sum/ne00`), the scale is a float, then the result is multiplied
 * by the weight (a separate op in llama.cpp's graph).
 */
export function rmsNorm(x: Float32Array, xOff: number, weight: Float32Array, out: Float32Array, outOff: number, n: number, eps: number): void {
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xOff + i]!;
    sum += Math.fround(v * v);
  }
  const scale = Math.fround(1 / Math.fround(Math.sqrt(Math.fround(Math.fround(sum / n) + Math.fround(eps)))));
  for (let i = 0; i < n; i++) out[outOff + i] = Math.fround(x[xOff + i]! * scale) * weight[i]!;
}

/** Apply rmsNorm to each of nRows rows of length n. */
export function rmsNormRows(x: Float32Array, weight: Float32Array, out: Float32Array, nRows: number, n: number, eps: number): void {
  for (let r = 0; r < nRows; r++) rmsNorm(x, r * n, weight, out, r * n, n, eps);
}
