/**
 * The working set of the sampler chain: the tokens still in play, kept sorted by logit,
 * highest first, ties broken by the lower token id (so every step is deterministic).
 *
 * The arrays are allocated once per vocabulary size and reused for every token; `n` says how
 * many leading entries are live. Truncation steps (top-k, top-p, min-p) only lower `n`;
 * temperature rewrites `logits[0..n)` in place.
 */
export interface Candidates {
  /** Token ids, `ids[i]` for i < n. */
  ids: Int32Array;
  /** The (possibly penalised / temperature-scaled) logit of `ids[i]`. */
  logits: Float64Array;
  /** Number of live candidates. */
  n: number;
}

export function createCandidates(capacity: number): Candidates {
  return { ids: new Int32Array(capacity), logits: new Float64Array(capacity), n: 0 };
}

/** Ordering used everywhere: true when (la, ia) ranks before (lb, ib). */
export function ranksBefore(la: number, ia: number, lb: number, ib: number): boolean {
  return la > lb || (la === lb && ia < ib);
}

/**
 * Softmax weights exp(logit - max) of the live candidates, written to `out[0..n)`; returns their
 * sum. Candidates are sorted, so the max is `logits[0]`.
 */
export function softmaxWeights(c: Candidates, out: Float64Array): number {
  const max = c.logits[0];
  let sum = 0;
  for (let i = 0; i < c.n; i++) {
    const w = Math.exp(c.logits[i] - max);
    out[i] = w;
    sum += w;
  }
  return sum;
}
