/**
 * Repetition penalties, as llama.cpp applies them (its `penalties` sampler), before any
 * truncation:
 *
 * - repeat penalty (CTRL-style): every distinct token that occurs in the last `repeatLastN`
 *   tokens of the history has its logit pushed towards "less likely" once:
 *   `logit > 0 ? logit / penalty : logit * penalty` (dividing a negative logit would raise it).
 * - frequency / presence penalty (OpenAI's formula):
 *   `logit -= count * frequencyPenalty + (count > 0 ? presencePenalty : 0)`, where `count` is
 *   how often the token occurs in the same window. (OpenAI counts over the whole generated text;
 *   like llama.cpp we use the `repeatLastN` window, so `repeatLastN = -1` gives OpenAI's
 *   behaviour over the history the caller passes.)
 *
 * `repeatLastN`: 0 disables all three penalties, -1 means the whole history.
 */
export interface PenaltyParams {
  repeatPenalty: number;
  repeatLastN: number;
  frequencyPenalty: number;
  presencePenalty: number;
}

export function penaltiesActive(p: PenaltyParams): boolean {
  return p.repeatLastN !== 0 && (p.repeatPenalty !== 1 || p.frequencyPenalty !== 0 || p.presencePenalty !== 0);
}

/** Count each token id in the penalty window (ids outside [0, vocabSize) are ignored). */
export function countWindow(history: ArrayLike<number>, repeatLastN: number, vocabSize: number): Map<number, number> {
  const counts = new Map<number, number>();
  if (repeatLastN === 0) return counts;
  const len = history.length;
  const start = repeatLastN < 0 ? 0 : Math.max(0, len - repeatLastN);
  for (let i = start; i < len; i++) {
    const t = history[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocabSize) continue;
    counts.set(t, (counts.get(t) ?? 0) + 1);
  }
  return counts;
}

/** Apply the penalties to `logits` in place (pass a copy, never the caller's array). */
export function applyPenalties(logits: Float32Array, history: ArrayLike<number>, p: PenaltyParams): void {
  if (!penaltiesActive(p)) return;
  const counts = countWindow(history, p.repeatLastN, logits.length);
  for (const [token, count] of counts) {
    let l = logits[token];
    if (p.repeatPenalty !== 1) l = l > 0 ? l / p.repeatPenalty : l * p.repeatPenalty;
    l -= count * p.frequencyPenalty + p.presencePenalty;
    logits[token] = l;
  }
}
