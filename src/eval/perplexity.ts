/**
 * Perplexity as llama.cpp's llama-perplexity computes it: tokens = BOS + tokenize(text); windows
 * of nCtx tokens, each evaluated from an empty cache with its first token replaced by BOS; only
 * the second half of each window is scored (the first half is context); NLL as llama.cpp's log_softmax;
 * PPL = exp(mean NLL), error = PPL * sqrt(var(NLL) / (count - 1)).
 */
import { ArgumentError } from "../errors.js";
import { expf } from "../kernels/js/libm.js";
import type { KvType } from "../model/kv-cache.js";
import type { Mixtral } from "../model/mixtral.js";

export interface PerplexityOptions {
  nCtx: number;
  kvType?: KvType;
  /** tokens per forward step (default nCtx) */
  nBatch?: number;
  /** at most this many windows (default: all) */
  nChunks?: number;
  /**
   * llama.cpp's float arithmetic, bit for bit (default true), so that the figures are llama.cpp's;
   * false: the default (faster) kernels, whose last-bit differences move a quantized model's
   * perplexity by 1e-4..1e-3 relative.
   */
  exact?: boolean;
  bosId?: number;
  onChunk?: (chunk: number, nChunks: number, runningPpl: number, ms: number) => void;
  /** the scored rows' logits of each window ([rows.length, nVocab]; rows index the window, row j predicts token j + 1) */
  onLogits?: (chunk: number, logits: Float32Array, rows: number[], window: number[]) => void;
}

export interface PerplexityResult {
  ppl: number;
  pplErr: number;
  nCtx: number;
  nChunks: number;
  scoredTokens: number;
  /** exp(mean NLL) over chunks 0..i */
  runningPpl: number[];
  meanNll: number;
}

/**
 * -log softmax(logits)[target] as llama-perplexity computes it (log_softmax in perplexity.cpp): the
 * sum of glibc's expf of the float differences from the maximum, in double; the target's float
 * difference minus the log of that sum.
 */
export function nll(logits: Float32Array, off: number, n: number, target: number): number {
  let max = logits[off]!;
  for (let i = 1; i < n; i++) if (logits[off + i]! > max) max = logits[off + i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += expf(Math.fround(logits[off + i]! - max));
  return Math.log(sum) - Math.fround(logits[off + target]! - max);
}

export function perplexity(model: Mixtral, tokens: number[], opts: PerplexityOptions): PerplexityResult {
  const { nCtx } = opts;
  if (!Number.isInteger(nCtx) || nCtx < 4) throw new ArgumentError(`perplexity: context ${nCtx} is too small (at least 4)`);
  const available = Math.floor(tokens.length / nCtx);
  if (available < 1) {
    throw new ArgumentError(`perplexity: the text has ${tokens.length} tokens, fewer than one window of ${nCtx}; use a longer text or a smaller -c`);
  }
  const nChunks = Math.min(available, opts.nChunks ?? available);
  const V = model.config.nVocab;
  const first = nCtx >> 1;
  const ctx = model.newContext({ nCtx, kvType: opts.kvType ?? "f16", nBatch: opts.nBatch ?? nCtx, exact: opts.exact ?? true });
  let sum = 0, sum2 = 0, count = 0;
  const running: number[] = [];
  for (let c = 0; c < nChunks; c++) {
    const t0 = performance.now();
    const win = tokens.slice(c * nCtx, (c + 1) * nCtx);
    win[0] = opts.bosId ?? 1;
    ctx.truncate(0);
    const rows = Array.from({ length: nCtx - 1 - first }, (_, i) => first + i);
    const logits = ctx.eval(win, { logits: rows });
    opts.onLogits?.(c, logits, rows, win);
    rows.forEach((j, r) => {
      const v = nll(logits, r * V, V, win[j + 1]!);
      sum += v;
      sum2 += v * v;
      count++;
    });
    running.push(Math.exp(sum / count));
    opts.onChunk?.(c, nChunks, running[c]!, performance.now() - t0);
  }
  const mean = sum / count;
  const ppl = Math.exp(mean);
  const variance = sum2 / count - mean * mean;
  const pplErr = count > 1 ? ppl * Math.sqrt(Math.max(0, variance) / (count - 1)) : NaN;
  return { ppl, pplErr, nCtx, nChunks, scoredTokens: count, runningPpl: running, meanNll: mean };
}
