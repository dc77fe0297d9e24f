/**
 * Min-p: drop candidates whose probability is below `p` times the probability of the most
 * likely candidate. In logit space that is `logit < maxLogit + ln(p)`, so no softmax is needed.
 * Candidates are sorted, so this only finds the cut point. p <= 0 is off; at least `minKeep`
 * candidates always survive.
 */
import type { Candidates } from "./candidates.js";

export function applyMinP(c: Candidates, p: number, minKeep = 1): void {
  if (p <= 0 || c.n <= minKeep) return;
  const threshold = c.logits[0] + Math.log(p);
  let keep = c.n;
  for (let i = 0; i < c.n; i++) {
    if (c.logits[i] < threshold) {
      keep = i;
      break;
    }
  }
  c.n = Math.max(keep, minKeep);
}
