/**
 * Temperature: divide the surviving logits by t (t > 1 flattens, t < 1 sharpens). Applied last,
 * after truncation, as in llama.cpp's default chain, so it changes how the kept tokens are
 * weighted but not which tokens are kept. t <= 0 never reaches here: the sampler treats it as
 * greedy decoding.
 */
import type { Candidates } from "./candidates.js";

export function applyTemperature(c: Candidates, t: number): void {
  if (t === 1) return;
  const inv = 1 / t;
  for (let i = 0; i < c.n; i++) c.logits[i] *= inv;
}
