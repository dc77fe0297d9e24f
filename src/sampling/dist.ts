/**
 * The final draw: pick one candidate with probability softmax(logits) using one uniform number.
 */
import { type Candidates, softmaxWeights } from "./candidates.js";
import type { Rng } from "./rng.js";

export function drawCandidate(c: Candidates, rng: Rng, scratch: Float64Array): number {
  const sum = softmaxWeights(c, scratch);
  const u = rng.next() * sum;
  let cum = 0;
  let last = 0;
  for (let i = 0; i < c.n; i++) {
    const w = scratch[i];
    if (w <= 0) continue;
    cum += w;
    last = i;
    if (u < cum) return c.ids[i];
  }
  return c.ids[last]; // rounding: u landed just past the last partial sum
}
