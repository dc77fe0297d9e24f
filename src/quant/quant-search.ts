// Scale searches of ggml's K-quant and IQ4_NL quantizers (ggml-quants.c: make_qx_quants,
// make_q3_quants, make_qkx2_quants, make_qkx3_quants, make_qp_quants, best_index_int8); the last two
// and make_qx_quants with quant weights serve the importance-matrix (imatrix) quantizers.
// Every float operation is rounded to float32 in C's evaluation order (no FMA contraction), because
// llama-quantize's output depends on it bit for bit; `f` below is that rounding.

import { nearestInt } from "./bytes.js";

const f = Math.fround;

/** ggml GROUP_MAX_EPS: a group whose largest |x| is below this quantizes to zero. */
export const GROUP_MAX_EPS = f(1e-15);

/**
 * Symmetric quants l in [-nmax, nmax) for x[xo .. xo+n) with weights x², or qw[qwo + i] when given
 * (ggml make_qx_quants, rmse_type 1): try 18 scales around -nmax/max and keep the best weighted
 * least-squares fit. Writes L[lo + i] = l + nmax; returns the scale.
 */
export function makeQxQuants(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number, qw?: Float32Array, qwo = 0): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  let iscale = f(-nmax / max);
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
    L[lo + i] = l + nmax;
    const w = qw ? qw[qwo + i]! : f(xi * xi);
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  let scale = suml2 ? f(sumlx / suml2) : 0;
  let best = f(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = f(-f(nmax + f(f(0.1) * is)) / max);
    sumlx = 0;
    suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
      const w = qw ? qw[qwo + i]! : f(xi * xi);
      sumlx = f(sumlx + f(f(w * xi) * l));
      suml2 = f(suml2 + f(f(w * l) * l));
    }
    if (suml2 > 0 && f(sumlx * sumlx) > f(best * suml2)) {
      for (let i = 0; i < n; i++) {
        L[lo + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * x[xo + i]!))));
      }
      scale = f(sumlx / suml2);
      best = f(scale * sumlx);
    }
  }
  return scale;
}

/**
 * Symmetric quants for Q3_K (ggml make_q3_quants with do_rmse): start from -nmax/max, then up to 5
 * rounds of moving single quants while the weighted (x²) least-squares error improves.
 * Writes L[lo + i] = l + nmax; returns the scale.
 */
export function makeQ3Quants(n: number, nmax: number, x: Float32Array, xo: number, L: Uint8Array, lo: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[xo + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  const iscale = f(-nmax / max);
  const Ls = scratchL; // signed quants during the search
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(iscale * xi))));
    Ls[i] = l;
    const w = f(xi * xi);
    sumlx = f(sumlx + f(f(w * xi) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let nChanged = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const w = f(xi * xi);
      const li = Ls[i]!;
      let slx = f(sumlx - f(f(w * xi) * li));
      if (slx > 0) {
        let sl2 = f(suml2 - f(f(w * li) * li));
        const newL = Math.max(-nmax, Math.min(nmax - 1, nearestInt(f(f(xi * sl2) / slx))));
        if (newL !== li) {
          slx = f(slx + f(f(w * xi) * newL));
          sl2 = f(sl2 + f(f(w * newL) * newL));
          if (sl2 > 0 && f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            Ls[i] = newL;
            sumlx = slx;
            suml2 = sl2;
            nChanged++;
          }
        }
      }
    }
    if (!nChanged) break;
  }
  for (let i = 0; i < n; i++) L[lo + i] = Ls[i]! + nmax;
  return f(sumlx / suml2);
}

const scratchL = new Int32Array(256);
const scratchAux = new Uint8Array(256);

/**
 * Asymmetric quants l in [0, nmax] with a min (ggml make_qkx2_quants): x ≈ scale*l - theMin.
 * Starts from the min/max grid, then tries nstep+1 scales (rmin + rdelta*is + nmax)/(max-min),
 * refitting scale and min by weighted least squares, and keeps the lowest weighted error
 * (|diff| when useMad, else diff²). Writes L[lo + i]; returns [scale, theMin] in out.
 */
export function makeQkx2Quants(
  n: number, nmax: number, x: Float32Array, xo: number, weights: Float32Array, L: Uint8Array, lo: number,
  rmin: number, rdelta: number, nstep: number, useMad: boolean, out: Float32Array,
): void {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = weights[0]!;
  let sumX = f(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const w = weights[i]!;
    sumW = f(sumW + w);
    sumX = f(sumX + f(w * xi));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    out[0] = 0;
    out[1] = -min;
    return;
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestMad = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
    L[lo + i] = l;
    let diff = f(f(f(scale * l) + min) - xi);
    diff = useMad ? Math.abs(diff) : f(diff * diff);
    bestMad = f(bestMad + f(weights[i]! * diff));
  }
  if (nstep < 1) {
    out[0] = scale;
    out[1] = -min;
    return;
  }
  const Laux = scratchAux;
  for (let is = 0; is <= nstep; is++) {
    // min may have moved to a better fit's min in an earlier step: ggml uses the current one
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
      Laux[i] = l;
      const w = weights[i]!;
      sumL = f(sumL + f(w * l));
      sumL2 = f(sumL2 + f(f(w * l) * l));
      sumXL = f(sumXL + f(f(w * l) * xi));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let mad = 0;
      for (let i = 0; i < n; i++) {
        let diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        diff = useMad ? Math.abs(diff) : f(diff * diff);
        mad = f(mad + f(weights[i]! * diff));
      }
      if (mad < bestMad) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestMad = mad;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  out[0] = scale;
  out[1] = -min;
}

/**
 * ggml make_qkx3_quants (the importance-matrix variant of make_qkx2_quants): asymmetric quants
 * l in [0, nmax] with x ≈ scale*l - theMin under weights w[wo + i], starting from the min/max grid
 * and trying nstep+1 scales, each refit by weighted least squares. Writes L[lo + i]; out = [scale, theMin].
 */
export function makeQkx3Quants(
  n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array, wo: number, L: Uint8Array, lo: number,
  rmin: number, rdelta: number, nstep: number, useMad: boolean, out: Float32Array,
): void {
  let min = x[xo]!;
  let max = x[xo]!;
  let sumW = w[wo]!;
  let sumX = f(sumW * x[xo]!);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i]!;
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    const wi = w[wo + i]!;
    sumW = f(sumW + wi);
    sumX = f(sumX + f(wi * xi));
  }
  if (min > 0) min = 0;
  if (max <= min) {
    L.fill(0, lo, lo + n);
    out[0] = 0;
    out[1] = -min;
    return;
  }
  let iscale = f(nmax / f(max - min));
  let scale = f(1 / iscale);
  let bestMad = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    const l = Math.max(0, Math.min(nmax, nearestInt(f(iscale * f(xi - min)))));
    L[lo + i] = l;
    let diff = f(f(f(scale * l) + min) - xi);
    diff = useMad ? Math.abs(diff) : f(diff * diff);
    bestMad = f(bestMad + f(w[wo + i]! * diff));
  }
  if (nstep < 1) {
    out[0] = scale;
    out[1] = -min;
    return;
  }
  const Laux = scratchAux;
  for (let is = 0; is <= nstep; is++) {
    iscale = f(f(f(rmin + f(rdelta * is)) + nmax) / f(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i]!;
      // min is the best fit so far and may sit at or near max: v can be inf or nan (ggml's guard)
      const v = f(iscale * f(xi - min));
      const l = v > 0 ? nearestInt(Math.min(v, nmax)) : 0;
      Laux[i] = l;
      const wi = w[wo + i]!;
      sumL = f(sumL + f(wi * l));
      sumL2 = f(sumL2 + f(f(wi * l) * l));
      sumXL = f(sumXL + f(f(wi * l) * xi));
    }
    const D = f(f(sumW * sumL2) - f(sumL * sumL));
    if (D > 0) {
      let thisScale = f(f(f(sumW * sumXL) - f(sumX * sumL)) / D);
      let thisMin = f(f(f(sumL2 * sumX) - f(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = f(sumXL / sumL2);
      }
      let mad = 0;
      for (let i = 0; i < n; i++) {
        let diff = f(f(f(thisScale * Laux[i]!) + thisMin) - x[xo + i]!);
        diff = useMad ? Math.abs(diff) : f(diff * diff);
        mad = f(mad + f(w[wo + i]! * diff));
      }
      if (mad < bestMad) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i]!;
        bestMad = mad;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  out[0] = scale;
  out[1] = -min;
}

/**
 * ggml make_qp_quants: non-negative quants l in [0, nmax] of x[0 .. n) (the sub-block scales or mins
 * of a K-quant super-block) under weights qw: 9 trial scales around nmax/max by weighted squared
 * error, then up to 5 rounds of moving single quants. Writes L[i] (as C's uint8_t); returns the scale.
 */
export function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, qw: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = Math.max(max, x[i]!);
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(f(iscale * x[i]!));
  const scale = f(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f(x[i]! - f(scale * L[i]!));
    bestMse = f(bestMse + f(f(qw[i]! * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f(f(f(f(0.1) * is) + nmax) / max);
    const scaleIs = f(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(f(iscaleIs * x[i]!)));
      const diff = f(x[i]! - f(scaleIs * l));
      mse = f(mse + f(f(qw[i]! * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(f(iscale * x[i]!)));
    L[i] = l;
    const w = qw[i]!;
    sumlx = f(sumlx + f(f(w * x[i]!) * l));
    suml2 = f(suml2 + f(f(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let nChanged = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[i]!;
      const li = L[i]!;
      let slx = f(sumlx - f(f(w * x[i]!) * li));
      let sl2 = f(suml2 - f(f(w * li) * li));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearestInt(f(f(x[i]! * sl2) / slx)));
        if (newL !== li) {
          slx = f(slx + f(f(w * x[i]!) * newL));
          sl2 = f(sl2 + f(f(w * newL) * newL));
          if (f(f(slx * slx) * suml2) > f(f(sumlx * sumlx) * sl2)) {
            L[i] = newL;
            sumlx = slx;
            suml2 = sl2;
            nChanged++;
          }
        }
      }
    }
    if (!nChanged) break;
  }
  return suml2 > 0 ? f(sumlx / suml2) : 0;
}

/**
 * The per-element weights of ggml's imatrix quantizers: qw[i] * sqrt(sigma2 + x[i]²), sigma2 a
 * mean square of the row or super-block (each quantizer says which).
 */
export function importanceWeights(x: Float32Array, xo: number, n: number, qw: Float32Array, qwo: number, sigma2: number, out: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    out[i] = f(qw[qwo + i]! * f(Math.sqrt(f(sigma2 + f(xi * xi)))));
  }
}

/** Σ x² over x[xo .. xo+n) in float32, in order (ggml's sum_x2 loops). */
export function sumSquares(x: Float32Array, xo: number, n: number): number {
  let s = 0;
  for (let i = 0; i < n; i++) s = f(s + f(x[xo + i]! * x[xo + i]!));
  return s;
}

/** ggml best_index_int8: index of the table value (sorted ascending) nearest to v. */
export function bestIndexInt8(values: Int8Array, v: number): number {
  const n = values.length;
  if (v <= values[0]!) return 0;
  if (v >= values[n - 1]!) return n - 1;
  let ml = 0;
  let mu = n - 1;
  while (mu - ml > 1) {
    const mav = (ml + mu) >> 1;
    if (v < values[mav]!) mu = mav;
    else ml = mav;
  }
  return f(v - values[mu - 1]!) < f(values[mu]! - v) ? mu - 1 : mu;
}
