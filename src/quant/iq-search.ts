// The lattice search shared by ggml's IQ2/IQ3 quantizers (ggml-quants.c: iq2xs_init_impl,
// iq3xs_init_impl, iq2_find_best_neighbour, iq3_find_best_neighbour, make_qp_quants, and the sign
// folding of quantize_row_iq2_xxs_impl and friends), rewritten from their description.
//
// A grid point is a group of 8 (IQ2) or 4 (IQ3) coordinates, each one of a few levels l; the
// quantizers work with odd integers 2l+1 and the stored bytes are a per-type value of each level.
// A group of levels that is not a grid point is replaced by the best of its nearest grid points
// (those at the `nwant` smallest squared distances, in (distance, index) order, as ggml sorts them).
// ggml builds every neighbour list up front; here a list is built the first time it is needed, which
// gives the same lists. Float operations are rounded to float32 in C's order (`f`), as in
// quant-search.ts, so that the bytes match llama-quantize's.

import { nearestInt as nearest } from "./bytes.js";

const f = Math.fround;

/** ggml GROUP_MAX_EPS and GROUP_MAX_EPS_IQ3_XXS */
export const GROUP_MAX_EPS = f(1e-15);
export const GROUP_MAX_EPS_IQ3_XXS = f(1e-8);
/** float32 0.1f and 0.2f, the steps of the scale searches */
export const F01 = f(0.1);
export const F02 = f(0.2);
/** largest float32 (FLT_MAX) */
const FLT_MAX = f(3.4028234663852886e38);

export class Lattice {
  /** grid point k, coordinate i as 2l+1: pos[dims*k + i] */
  readonly pos: Int8Array;
  /** the same as levels l */
  private readonly lev: Uint8Array;
  private readonly nLevels: number;
  /** bestNeighbour's per-call table: [coordinate][level] */
  private readonly terms: Float32Array;
  /** levels of a group packed `bits` per coordinate -> grid index, or -1 */
  private readonly map: Int32Array;
  private readonly neighbourCache: (Uint16Array | undefined)[];

  /**
   * @param grid the format's grid (dims bytes per point, iq-grids.ts)
   * @param values the byte value of each level (level l is values[l])
   * @param nwant how many distinct distances the neighbour lists span
   */
  constructor(grid: Uint8Array, readonly dims: 8 | 4, values: readonly number[], private readonly bits: 2 | 3, private readonly nwant: number) {
    const n = grid.length / dims;
    this.pos = new Int8Array(grid.length);
    this.lev = new Uint8Array(grid.length);
    this.nLevels = values.length;
    this.terms = new Float32Array(dims * values.length);
    this.map = new Int32Array(1 << (bits * dims)).fill(-1);
    for (let k = 0; k < n; k++) {
      let u = 0;
      for (let i = 0; i < dims; i++) {
        const l = values.indexOf(grid[dims * k + i]!);
        if (l < 0) throw new Error(`grid point ${k} has a coordinate ${grid[dims * k + i]} that is no level`);
        this.pos[dims * k + i] = 2 * l + 1;
        this.lev[dims * k + i] = l;
        u |= l << (bits * i);
      }
      this.map[u] = k;
    }
    this.neighbourCache = new Array<Uint16Array | undefined>(this.map.length);
  }

  get size(): number {
    return this.pos.length / this.dims;
  }

  /** grid index of the group of levels packed in u, or -1 when it is not a grid point */
  index(u: number): number {
    return this.map[u]!;
  }

  /** the candidate grid points for an off-grid group u */
  neighbours(u: number): Uint16Array {
    let nb = this.neighbourCache[u];
    if (nb) return nb;
    const dims = this.dims, n = this.size, mask = (1 << this.bits) - 1;
    const p = new Int32Array(dims);
    for (let i = 0; i < dims; i++) p[i] = 2 * ((u >> (this.bits * i)) & mask) + 1;
    const d2 = new Float64Array(n); // (distance, index) packed as distance * 65536 + index
    for (let j = 0; j < n; j++) {
      let d = 0;
      for (let i = 0; i < dims; i++) {
        const t = this.pos[dims * j + i]! - p[i]!;
        d += t * t;
      }
      d2[j] = d * 65536 + j;
    }
    d2.sort();
    let count = 0, have = 1, dist = Math.floor(d2[0]! / 65536);
    for (; count < n; count++) {
      const d = Math.floor(d2[count]! / 65536);
      if (d > dist) {
        if (have === this.nwant) break;
        dist = d;
        have++;
      }
    }
    nb = new Uint16Array(count);
    for (let j = 0; j < count; j++) nb[j] = d2[j]! % 65536;
    this.neighbourCache[u] = nb;
    return nb;
  }

  /**
   * ggml iq2/iq3_find_best_neighbour: the neighbour of off-grid group u closest to xval[xo ..] at
   * `scale` in the weighted (w[wo ..]) squared distance; writes its levels to L[lo ..], returns its index.
   */
  bestNeighbour(u: number, xval: Float32Array, xo: number, w: Float32Array, wo: number, scale: number, L: Int8Array, lo: number): number {
    const nb = this.neighbours(u);
    const dims = this.dims, nl = this.nLevels, lev = this.lev, terms = this.terms;
    // every coordinate's term w·(scale·(2l+1) - x)² for every level l, computed once per call; a
    // neighbour's distance is their float32 sum in coordinate order, as ggml adds them
    for (let i = 0; i < dims; i++) {
      const xi = xval[xo + i]!, wi = w[wo + i]!;
      for (let l = 0; l < nl; l++) {
        const diff = f(f(scale * (2 * l + 1)) - xi);
        terms[i * nl + l] = f(f(wi * diff) * diff);
      }
    }
    let best = FLT_MAX;
    let index = -1;
    for (let j = 0; j < nb.length; j++) {
      const k = nb[j]!;
      let d2 = 0;
      for (let i = 0, o = dims * k; i < dims; i++) d2 = f(d2 + terms[i * nl + lev[o + i]!]!);
      if (d2 < best) {
        best = d2;
        index = k;
      }
    }
    this.levels(index, L, lo);
    return index;
  }

  /** the levels of grid point k to L[lo ..] */
  levels(k: number, L: Int8Array, lo: number): void {
    for (let i = 0; i < this.dims; i++) L[lo + i] = this.lev[this.dims * k + i]!;
  }

  /** levels of one group at L[lo ..] packed as the map's key */
  pack(L: Int8Array, lo: number): number {
    let u = 0;
    for (let i = 0; i < this.dims; i++) u |= L[lo + i]! << (this.bits * i);
    return u;
  }
}

/**
 * Per-element weights of the imatrix quantizers: qw[i] * sqrt(sigma2 + x[i]²) with an importance
 * row, else ggml's fallback x[i]² (what the IQ3 quantizers use without one).
 */
export function elementWeights(x: Float32Array, xo: number, n: number, qw: Float32Array | undefined, qwo: number, sigma2: number, out: Float32Array): void {
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i]!;
    out[i] = qw ? f(qw[qwo + i]! * f(Math.sqrt(f(sigma2 + f(xi * xi))))) : f(xi * xi);
  }
}

/**
 * The sign handling of the IQ2/IQ3_XXS quantizers for one group of 8 at x[xo ..]: xval = |x|,
 * and since only 7 signs are stored (the eighth makes their count even), a group with an odd
 * count of negatives keeps the sign of its least important element (smallest w·x²) wrong
 * (its xval becomes -|x|). Returns the 7 stored sign bits.
 */
export function foldSigns(x: Float32Array, xo: number, w: Float32Array, wo: number, xval: Float32Array, vo: number): number {
  let s = 0;
  let nflip = 0;
  for (let i = 0; i < 8; i++) {
    const xi = x[xo + i]!;
    if (xi >= 0) xval[vo + i] = xi;
    else {
      xval[vo + i] = -xi;
      nflip++;
      s |= 1 << i;
    }
  }
  if (nflip % 2) {
    let imin = 0;
    let min = f(f(w[wo]! * x[xo]!) * x[xo]!);
    for (let i = 1; i < 8; i++) {
      const ax = f(f(w[wo + i]! * x[xo + i]!) * x[xo + i]!);
      if (ax < min) {
        min = ax;
        imin = i;
      }
    }
    xval[vo + imin] = -xval[vo + imin]!;
    s ^= 1 << imin;
  }
  return s & 127;
}

/**
 * Σ w·x·q and Σ w·q² over n elements with q = 2L+1 (the least-squares scale is their ratio);
 * returns them in out[0], out[1].
 */
export function fitOdd(n: number, w: Float32Array, xval: Float32Array, L: Int8Array, out: Float32Array): void {
  let sumqx = 0;
  let sumq2 = 0;
  for (let i = 0; i < n; i++) {
    const q = 2 * L[i]! + 1;
    sumqx = f(sumqx + f(f(w[i]! * xval[i]!) * q));
    sumq2 = f(sumq2 + f(f(w[i]! * q) * q));
  }
  out[0] = sumqx;
  out[1] = sumq2;
}

/** nearest_int(0.5f*(id*v - 1)): the level whose odd value 2l+1 is nearest to id*v */
export function oddLevel(id: number, v: number): number {
  return nearest(f(0.5 * f(f(id * v) - 1)));
}

/**
 * ggml make_qp_quants: non-negative quants l <= nmax for x[0 .. n) with weights w, searching the
 * scale around max/nmax and then moving single quants (as make_q3_quants does). Quants live in a
 * uint8 array as in ggml, so a negative x wraps (ggml's behaviour; only IQ2_XXS's folded sign can
 * be negative, and it only uses the returned scale). Returns the scale; writes the quants to L.
 */
export function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, w: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = x[i]! > max ? x[i]! : max;
  if (max < GROUP_MAX_EPS) {
    L.fill(0, 0, n);
    return 0;
  }
  let iscale = f(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearest(f(iscale * x[i]!));
  const scale = f(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = f(x[i]! - f(scale * L[i]!));
    bestMse = f(bestMse + f(f(w[i]! * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = f(f(f(F01 * is) + nmax) / max);
    const scaleIs = f(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearest(f(iscaleIs * x[i]!)));
      const diff = f(x[i]! - f(scaleIs * l));
      mse = f(mse + f(f(w[i]! * diff) * diff));
    }
    if (mse < bestMse) {
      bestMse = mse;
      iscale = iscaleIs;
    }
  }
  let sumlx = 0;
  let suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearest(f(iscale * x[i]!)));
    L[i] = l;
    sumlx = f(sumlx + f(f(w[i]! * x[i]!) * l));
    suml2 = f(suml2 + f(f(w[i]! * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let nChanged = 0;
    for (let i = 0; i < n; i++) {
      const wi = w[i]!, xi = x[i]!, li = L[i]!;
      let slx = f(sumlx - f(f(wi * xi) * li));
      let sl2 = f(suml2 - f(f(wi * li) * li));
      if (slx > 0 && sl2 > 0) {
        const newL = Math.min(nmax, nearest(f(f(xi * sl2) / slx)));
        if (newL !== li) {
          slx = f(slx + f(f(wi * xi) * newL));
          sl2 = f(sl2 + f(f(wi * newL) * newL));
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

/** which groups get redone with the chosen scale (the quantizers differ here) */
export type Redo = "off-grid" | "all-if-any-off-grid" | "always";

const onGrid = new Uint8Array(8);
const onGridAux = new Uint8Array(8);
const Laux = new Int8Array(32);
const fit = new Float32Array(2);

/**
 * The scale search of the IQ2/IQ3 quantizers for one block of n weights (xval >= 0 after
 * foldSigns, weights w, sqrt weights waux): for is in [-nTry, nTry] the inverse scale
 * (2·kMaxQ - 1 + is·step)/base maps each group to levels (nearest odd value, clamped), off-grid
 * groups to their best neighbour, and the best weighted least-squares fit wins (starting from
 * `scale`, best 0). Then the groups chosen by `redo` are mapped again with that scale and the scale
 * is refit. Writes the levels to L[0 .. n); returns the scale.
 */
export function searchGrid(
  lat: Lattice, n: number, kMaxQ: number, nTry: number, step: number, redo: Redo,
  xval: Float32Array, w: Float32Array, waux: Float32Array, base: number, scale: number, L: Int8Array,
): number {
  const dims = lat.dims, ng = n / dims;
  let best = 0;
  onGrid.fill(redo === "off-grid" ? 1 : 0);
  for (let is = -nTry; is <= nTry; is++) {
    const id = f(f(2 * kMaxQ - 1 + f(is * step)) / base);
    const thisScale = f(1 / id);
    for (let k = 0; k < ng; k++) {
      const o = dims * k;
      for (let i = 0; i < dims; i++) Laux[o + i] = Math.max(0, Math.min(kMaxQ - 1, oddLevel(id, xval[o + i]!)));
      const u = lat.pack(Laux, o);
      onGridAux[k] = lat.index(u) >= 0 ? 1 : 0;
      if (!onGridAux[k]) lat.bestNeighbour(u, xval, o, waux, o, thisScale, Laux, o);
    }
    fitOdd(n, w, xval, Laux, fit);
    const sumqx = fit[0]!, sumq2 = fit[1]!;
    if (sumq2 > 0 && f(sumqx * sumqx) > f(best * sumq2)) {
      scale = f(sumqx / sumq2);
      best = f(scale * sumqx);
      for (let i = 0; i < n; i++) L[i] = Laux[i]!;
      for (let k = 0; k < ng; k++) onGrid[k] = onGridAux[k]!;
    }
  }
  let anyOff = false;
  for (let k = 0; k < ng; k++) if (!onGrid[k]) anyOff = true;
  if ((redo === "always" || anyOff) && scale > 0) {
    const id = f(1 / scale);
    for (let k = 0; k < ng; k++) {
      if (redo === "off-grid" && onGrid[k]) continue;
      const o = dims * k;
      for (let i = 0; i < dims; i++) L[o + i] = Math.max(0, Math.min(kMaxQ - 1, oddLevel(id, xval[o + i]!)));
      const u = lat.pack(L, o);
      if (lat.index(u) < 0) lat.bestNeighbour(u, xval, o, waux, o, scale, L, o);
    }
    fitOdd(n, w, xval, L, fit);
    if (fit[1]! > 0) scale = f(fit[0]! / fit[1]!);
  }
  return scale;
}
