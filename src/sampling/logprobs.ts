/**
 * Log-probabilities reported alongside a sampled token (OpenAI `logprobs` / `top_logprobs`).
 *
 * Choice: they are the log-softmax of the logits *after the repetition penalties and before
 * truncation and temperature*, over the whole vocabulary. That is the model's own distribution
 * as the sampler saw it: it does not depend on top-k/top-p/min-p (which would give truncated
 * tokens -Infinity and renormalise the rest) nor on temperature, so the numbers are comparable
 * between requests with different sampling settings, and greedy decoding still gets meaningful
 * values. A token that truncation removed can still appear in `top`.
 */
import { createCandidates } from "./candidates.js";
import { selectTopK } from "./top-k.js";

export interface TokenLogprob {
  token: number;
  logprob: number;
}

/** log(sum(exp(logits))), computed stably. */
export function logSumExp(logits: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  if (max === -Infinity) return -Infinity;
  if (max === Infinity) return Infinity;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  return max + Math.log(sum);
}

/** The `count` most likely tokens with their log-probabilities, best first (ties: lower id). */
export function topLogprobs(logits: Float32Array, count: number, lse: number): TokenLogprob[] {
  const k = Math.min(Math.max(0, Math.floor(count)), logits.length);
  if (k === 0) return [];
  const c = createCandidates(k);
  selectTopK(logits, k, c);
  const out: TokenLogprob[] = [];
  for (let i = 0; i < c.n; i++) out.push({ token: c.ids[i], logprob: c.logits[i] - lse });
  return out;
}
