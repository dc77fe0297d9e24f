/**
 * Top-p (nucleus): keep the smallest prefix of the sorted candidates whose probability mass
 * (softmax over the current candidates, at temperature 1, as in llama.cpp where temperature
 * comes last) reaches p. The token that crosses p is kept. p >= 1 is off; at least `minKeep`
 * candidates always survive.
 */
import { type Candidates, softmaxWeights } from "./candidates.js";

export function applyTopP(c: Candidates, p: number, scratch: Float64Array, minKeep = 1): void {
  if (p >= 1 || c.n <= minKeep) return;
  const sum = softmaxWeights(c, scratch);
  const target = p * sum; // compare unnormalised weights against p * sum
  let cum = 0;
  for (let i = 0; i < c.n; i++) {
    cum += scratch[i];
    if (cum >= target && i + 1 >= minKeep) {
      c.n = i + 1;
      return;
    }
  }
}
