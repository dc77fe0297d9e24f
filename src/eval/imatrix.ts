/**
 * Activation statistics for importance-matrix quantization, as llama.cpp's llama-imatrix collects
 * them: the text is cut into chunks of nCtx tokens (first token of each replaced by BOS, each from
 * an empty cache, like perplexity); for every weight product of the blocks (attention, router,
 * expert or dense FFN) and the LM head, Σx² per input column of the activations that go through
 * it, and how many tokens did; for a stacked expert tensor, per expert, over the tokens routed to
 * that expert. The perplexity of the second half of each chunk comes for free and is reported too.
 */
import { ArgumentError } from "../errors.js";
import type { Imatrix, ImatrixEntry } from "../io/imatrix.js";
import type { Weight } from "../kernels/js/matmul.js";
import type { KvType } from "../model/kv-cache.js";
import type { MatmulObserver, Mixtral } from "../model/mixtral.js";
import { nll } from "./perplexity.js";

export interface ImatrixOptions {
  /** tokens per chunk */
  nCtx: number;
  /** at most this many chunks (default: all) */
  nChunks?: number;
  kvType?: KvType;
  /** llama.cpp's float arithmetic bit for bit (slower; see model/mixtral.ts) */
  exact?: boolean;
  /** tokens per forward step (default nCtx) */
  nBatch?: number;
  bosId?: number;
  /** the text file, recorded in the output */
  dataset?: string;
  onChunk?: (chunk: number, nChunks: number, runningPpl: number, ms: number) => void;
}

export interface ImatrixResult {
  imatrix: Imatrix;
  /** perplexity over the second halves of the chunks, as llama-imatrix prints it */
  ppl: number;
  nChunks: number;
}

/** Whether llama-imatrix collects a weight: the blocks' matrices and output.weight (its --process-output). */
export function collectsWeight(name: string): boolean {
  return name.startsWith("blk.") || name === "output.weight";
}

/** The observer that accumulates Σx² and token counts per weight (and per matrix of a stack). */
export class ImatrixCollector {
  readonly entries = new Map<string, ImatrixEntry>();

  readonly observe: MatmulObserver = (w: Weight, mat: number, x: Float32Array, nTok: number, rows?: ArrayLike<number>): void => {
    if (!collectsWeight(w.name)) return;
    let e = this.entries.get(w.name);
    if (!e) {
      e = { sums: new Float64Array(w.nIn * w.nMat), counts: new Array<number>(w.nMat).fill(0), nMat: w.nMat };
      this.entries.set(w.name, e);
    }
    const n = w.nIn, s = e.sums, base = mat * n;
    for (let t = 0; t < nTok; t++) {
      const o = (rows ? rows[t]! : t) * n;
      for (let j = 0; j < n; j++) {
        const v = x[o + j]!;
        s[base + j]! += v * v;
      }
    }
    e.counts[mat]! += nTok;
  };
}

/** Run the model over `tokens` in chunks of nCtx and collect the importance matrix. */
export function collectImatrix(model: Mixtral, tokens: number[], opts: ImatrixOptions): ImatrixResult {
  const { nCtx } = opts;
  if (!Number.isInteger(nCtx) || nCtx < 2) throw new ArgumentError(`imatrix: chunk size ${nCtx} is too small (at least 2)`);
  const available = Math.floor(tokens.length / nCtx);
  if (available < 1) {
    throw new ArgumentError(`imatrix: the text has ${tokens.length} tokens, fewer than one chunk of ${nCtx}; use a longer text or a smaller -c`);
  }
  const nChunks = Math.min(available, opts.nChunks ?? available);
  const V = model.config.nVocab;
  const first = nCtx >> 1;
  const collector = new ImatrixCollector();
  const ctx = model.newContext({ nCtx, kvType: opts.kvType ?? "f16", nBatch: opts.nBatch ?? nCtx, exact: opts.exact ?? false });
  ctx.observer = collector.observe;
  let sum = 0, count = 0;
  try {
    for (let c = 0; c < nChunks; c++) {
      const t0 = performance.now();
      const win = tokens.slice(c * nCtx, (c + 1) * nCtx);
      win[0] = opts.bosId ?? 1;
      ctx.truncate(0);
      // every row's logits: the LM head then sees every token, as in llama-imatrix
      const logits = ctx.eval(win, { logits: "all" });
      for (let j = first; j < nCtx - 1; j++) {
        sum += nll(logits, j * V, V, win[j + 1]!);
        count++;
      }
      opts.onChunk?.(c, nChunks, count ? Math.exp(sum / count) : NaN, performance.now() - t0);
    }
  } finally {
    ctx.dispose();
  }
  return {
    imatrix: { entries: collector.entries, chunkCount: nChunks, chunkSize: nCtx, datasets: opts.dataset !== undefined ? [opts.dataset] : [] },
    ppl: count ? Math.exp(sum / count) : NaN,
    nChunks,
  };
}
