/** SiLU(gate) * up, elementwise (SwiGLU), in place into gate. */
export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

/** Numerically stable softmax in place over x[off .. off+n), sums in double as ggml does. */
export function softmax(x: Float32Array, off: number, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i]! > max) max = x[off + i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.exp(x[off + i]! - max);
    x[off + i] = e;
    sum += Math.fround(e);
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) x[off + i] = x[off + i]! * inv;
}
