/**
 * The element-wise operations of the Mixtral block with their backward passes (RMSNorm, RoPE,
 * causal softmax, SwiGLU, the router's softmax and top-k renormalisation, cross-entropy), on
 * float32 views. Each is tested against finite differences in ops.test.ts.
 */

/** y = x·rstd·w per row, rstd = 1/sqrt(mean(x²) + eps); writes rstd[t]. */
export function rmsNormForward(x: Float32Array, xOff: number, w: Float32Array, wOff: number, y: Float32Array, yOff: number,
  rstd: Float32Array, T: number, n: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const o = xOff + t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x[o + i]! * x[o + i]!;
    const r = 1 / Math.sqrt(ss / n + eps);
    rstd[t] = r;
    const yo = yOff + t * n;
    for (let i = 0; i < n; i++) y[yo + i] = x[o + i]! * r * w[wOff + i]!;
  }
}

/**
 * dx (+)= ∂/∂x, dw += ∂/∂w (when dw is given) of y = rmsnorm(x)·w, given dy.
 * dx_i = r·w_i·dy_i − x_i·r³·(1/n)·Σ_j w_j·dy_j·x_j.
 */
export function rmsNormBackward(x: Float32Array, xOff: number, w: Float32Array, wOff: number, rstd: Float32Array, dy: Float32Array, dyOff: number,
  dx: Float32Array, dxOff: number, dw: Float32Array | undefined, dwOff: number, T: number, n: number, accumulate: boolean): void {
  for (let t = 0; t < T; t++) {
    const o = xOff + t * n, go = dyOff + t * n, xo = dxOff + t * n;
    const r = rstd[t]!;
    let dot = 0;
    for (let i = 0; i < n; i++) dot += w[wOff + i]! * dy[go + i]! * x[o + i]!;
    const c = (r * r * r * dot) / n;
    for (let i = 0; i < n; i++) {
      const g = r * w[wOff + i]! * dy[go + i]! - x[o + i]! * c;
      dx[xo + i] = accumulate ? dx[xo + i]! + g : g;
    }
    if (dw) for (let i = 0; i < n; i++) dw[dwOff + i] = dw[dwOff + i]! + dy[go + i]! * x[o + i]! * r;
  }
}

/** cos/sin tables as src/kernels/js/rope.ts computes them: [pos][nRot/2]. */
export function ropeTables(nRot: number, base: number, freqScale: number, maxPos: number): { cos: Float32Array; sin: Float32Array } {
  const half = nRot / 2;
  const cos = new Float32Array(maxPos * half), sin = new Float32Array(maxPos * half);
  const thetaScale = Math.fround(Math.pow(base, -2 / nRot));
  for (let p = 0; p < maxPos; p++) {
    let theta = Math.fround(p);
    for (let i = 0; i < half; i++) {
      const th = Math.fround(theta * freqScale);
      cos[p * half + i] = Math.cos(th);
      sin[p * half + i] = Math.sin(th);
      theta = Math.fround(theta * thetaScale);
    }
  }
  return { cos, sin };
}

/**
 * Rotate adjacent pairs (2i, 2i+1), i < nRot/2, of each of nHeads heads in T rows (row t at
 * position t) in place; `inverse` applies the transposed rotation (the backward pass).
 */
export function rope(x: Float32Array, xOff: number, T: number, nHeads: number, headDim: number, nRot: number,
  tab: { cos: Float32Array; sin: Float32Array }, inverse: boolean): void {
  const half = nRot / 2, rowLen = nHeads * headDim;
  for (let t = 0; t < T; t++) {
    const cb = t * half;
    for (let h = 0; h < nHeads; h++) {
      const o = xOff + t * rowLen + h * headDim;
      for (let i = 0; i < half; i++) {
        const c = tab.cos[cb + i]!, s = inverse ? -tab.sin[cb + i]! : tab.sin[cb + i]!;
        const x0 = x[o + 2 * i]!, x1 = x[o + 2 * i + 1]!;
        x[o + 2 * i] = x0 * c - x1 * s;
        x[o + 2 * i + 1] = x0 * s + x1 * c;
      }
    }
  }
}

/** Row-wise causal softmax of S[T, T] (row t keeps columns <= t) after multiplying by scale. */
export function causalSoftmax(S: Float32Array, T: number, scale: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * T;
    let max = -Infinity;
    for (let s = 0; s <= t; s++) {
      const v = S[o + s]! * scale;
      S[o + s] = v;
      if (v > max) max = v;
    }
    let sum = 0;
    for (let s = 0; s <= t; s++) {
      const e = Math.exp(S[o + s]! - max);
      S[o + s] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let s = 0; s <= t; s++) S[o + s] = S[o + s]! * inv;
    S.fill(0, o + t + 1, o + T);
  }
}

/** dS = scale·P⊙(dP − rowsum(P⊙dP)) in place of dP (causal rows). */
export function causalSoftmaxBackward(P: Float32Array, dP: Float32Array, T: number, scale: number): void {
  for (let t = 0; t < T; t++) {
    const o = t * T;
    let dot = 0;
    for (let s = 0; s <= t; s++) dot += P[o + s]! * dP[o + s]!;
    for (let s = 0; s <= t; s++) dP[o + s] = scale * P[o + s]! * (dP[o + s]! - dot);
    dP.fill(0, o + t + 1, o + T);
  }
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/** act = silu(g)·u over n values. */
export function swigluForward(g: Float32Array, u: Float32Array, act: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = g[i]!;
    act[i] = x * sigmoid(x) * u[i]!;
  }
}

/** dg = dact·u·silu'(g), du = dact·silu(g), written over dact's companions. */
export function swigluBackward(g: Float32Array, u: Float32Array, dact: Float32Array, dg: Float32Array, du: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const x = g[i]!, s = sigmoid(x), d = dact[i]!;
    du[i] = d * x * s;
    dg[i] = d * u[i]! * s * (1 + x * (1 - s));
  }
}

/**
 * Cross-entropy rows: for each row t with target >= 0, loss −log softmax(logits)[target]; the
 * logits row is replaced by scale·(softmax − onehot) (rows without a target by zeros). Returns the
 * summed loss (float64).
 */
export function crossEntropyRows(logits: Float32Array, T: number, V: number, targets: ArrayLike<number>, tOff: number, scale: number): number {
  let total = 0;
  for (let t = 0; t < T; t++) {
    const o = t * V, y = targets[tOff + t]!;
    if (y < 0) {
      logits.fill(0, o, o + V);
      continue;
    }
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[o + v]! > max) max = logits[o + v]!;
    let sum = 0;
    for (let v = 0; v < V; v++) {
      const e = Math.exp(logits[o + v]! - max);
      logits[o + v] = e;
      sum += e;
    }
    total += Math.log(sum) - Math.log(logits[o + y]!);
    const k = scale / sum;
    for (let v = 0; v < V; v++) logits[o + v] = logits[o + v]! * k;
    logits[o + y] = logits[o + y]! - scale;
  }
  return total;
}

/** A fast deterministic hash of (seed, i) to [0, 1), for dropout masks that can be regenerated. */
export function hashUniform(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}

/** Combine integers into one 32-bit seed. */
export function mixSeed(...xs: number[]): number {
  let h = 0x811c9dc5;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x01000193) >>> 0;
    h = Math.imul(h ^ (h >>> 15), 0x2c1b3c6d) >>> 0;
  }
  return h >>> 0;
}
