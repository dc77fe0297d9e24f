/**
 * The sampler chain: turns one row of logits into the next token.
 *
 * Order, as llama.cpp's default chain (minus the samplers we don't offer):
 *
 *   penalties -> top-k -> top-p -> min-p -> temperature -> draw (seeded RNG)
 *
 * - temperature <= 0 means greedy: the argmax of the penalised logits (ties: lowest id); no
 *   random number is consumed.
 * - Truncation happens at temperature 1; temperature only reweights the survivors.
 * - The caller's logits are never modified: the penalties work on a private copy.
 * - Cost per token for a 32000-token vocabulary: one copy, one pass over the logits for top-k
 *   (heap selection, no sort of the vocabulary), then work proportional to k. With top-k off the
 *   vocabulary is sorted exactly once and top-p/min-p reuse that order.
 *
 * See logprobs.ts for what `sampleWithInfo` reports.
 */
import { ArgumentError } from "../errors.js";
import { type Candidates, createCandidates } from "./candidates.js";
import { drawCandidate } from "./dist.js";
import { logSumExp, topLogprobs as topLogprobsFor, type TokenLogprob } from "./logprobs.js";
import { applyMinP } from "./min-p.js";
import { applyPenalties } from "./penalties.js";
import { Rng, randomSeed } from "./rng.js";
import { applyTemperature } from "./temperature.js";
import { selectTopK } from "./top-k.js";
import { applyTopP } from "./top-p.js";

export interface SamplingParams {
  /** <= 0: greedy. */
  temperature: number;
  /** 0 (or negative): off. */
  topK: number;
  /** 1: off. */
  topP: number;
  /** 0: off. */
  minP: number;
  /** 1: off. */
  repeatPenalty: number;
  /** Window for all penalties: 0 disables them, -1 means the whole history. */
  repeatLastN: number;
  /** 0: off. */
  frequencyPenalty: number;
  /** 0: off. */
  presencePenalty: number;
  /** RNG seed; undefined or -1 (llama.cpp's convention) picks a random one. */
  seed?: number;
}

export const DEFAULT_SAMPLING: Readonly<SamplingParams> = Object.freeze({
  temperature: 0.2,
  topK: 40,
  topP: 0.9,
  minP: 0,
  repeatPenalty: 1.1,
  repeatLastN: 64,
  frequencyPenalty: 0,
  presencePenalty: 0,
});

export interface SampleInfo {
  token: number;
  /** Log-probability of `token` (see logprobs.ts). */
  logprob: number;
  /** The `topLogprobs` most likely tokens, best first. */
  top: TokenLogprob[];
}

const PARAM_KEYS: readonly (keyof SamplingParams)[] = [
  "temperature", "topK", "topP", "minP", "repeatPenalty", "repeatLastN", "frequencyPenalty", "presencePenalty", "seed",
];

function checkParams(p: SamplingParams): void {
  const bad = (name: string, why: string, value: unknown): never => {
    throw new ArgumentError(`sampling: ${name} ${why}, got ${String(value)}`);
  };
  if (typeof p.temperature !== "number" || Number.isNaN(p.temperature)) bad("temperature", "must be a number", p.temperature);
  if (!Number.isInteger(p.topK)) bad("topK", "must be an integer (0 = off)", p.topK);
  if (!(p.topP >= 0 && p.topP <= 1)) bad("topP", "must be in [0, 1] (1 = off)", p.topP);
  if (!(p.minP >= 0 && p.minP <= 1)) bad("minP", "must be in [0, 1] (0 = off)", p.minP);
  if (!(p.repeatPenalty > 0 && Number.isFinite(p.repeatPenalty))) bad("repeatPenalty", "must be > 0 (1 = off)", p.repeatPenalty);
  if (!Number.isInteger(p.repeatLastN) || p.repeatLastN < -1) bad("repeatLastN", "must be an integer >= -1 (-1 = whole history, 0 = off)", p.repeatLastN);
  if (!Number.isFinite(p.frequencyPenalty)) bad("frequencyPenalty", "must be a finite number", p.frequencyPenalty);
  if (!Number.isFinite(p.presencePenalty)) bad("presencePenalty", "must be a finite number", p.presencePenalty);
  if (p.seed !== undefined && !Number.isSafeInteger(p.seed)) bad("seed", "must be an integer (-1 = random)", p.seed);
}

export class Sampler {
  readonly params: Readonly<SamplingParams>;
  /** The seed actually in use (a random one when none was given): report it to reproduce a run. */
  readonly seed: number;
  private readonly rng: Rng;
  private work = new Float32Array(0);
  private cand: Candidates = createCandidates(0);
  private scratch = new Float64Array(0);

  constructor(params: Partial<SamplingParams> = {}) {
    // Only known keys are taken; an explicit `undefined` keeps the default.
    const merged: SamplingParams = { ...DEFAULT_SAMPLING };
    const target = merged as unknown as Record<string, unknown>;
    const source = params as Record<string, unknown>;
    for (const key of PARAM_KEYS) if (source[key] !== undefined) target[key] = source[key];
    checkParams(merged);
    this.seed = merged.seed === undefined || merged.seed === -1 ? randomSeed() : merged.seed;
    this.params = Object.freeze({ ...merged, seed: this.seed });
    this.rng = new Rng(this.seed);
  }

  /** Pick the next token. `history` is the token sequence so far (prompt + generated). */
  sample(logits: Float32Array, history: ArrayLike<number>): number {
    const work = this.penalised(logits, history);
    return this.pick(work);
  }

  /** Like `sample`, plus the chosen token's log-probability and the `topLogprobs` best tokens. */
  sampleWithInfo(logits: Float32Array, history: ArrayLike<number>, topLogprobs = 0): SampleInfo {
    if (!Number.isInteger(topLogprobs) || topLogprobs < 0) {
      throw new ArgumentError(`sampling: topLogprobs must be a non-negative integer, got ${topLogprobs}`);
    }
    const work = this.penalised(logits, history);
    // Log-probabilities come from the penalised logits before truncation (`pick` never writes
    // to `work`; truncation and temperature act on the candidate list).
    const lse = logSumExp(work);
    const top = topLogprobs > 0 ? topLogprobsFor(work, topLogprobs, lse) : [];
    const token = this.pick(work);
    return { token, logprob: work[token] - lse, top };
  }

  /** Private copy of the logits with NaN mapped to -Infinity and the penalties applied. */
  private penalised(logits: Float32Array, history: ArrayLike<number>): Float32Array {
    const v = logits.length;
    if (v === 0) throw new ArgumentError("sampling: empty logits");
    if (this.work.length !== v) {
      this.work = new Float32Array(v);
      this.cand = createCandidates(this.params.topK > 0 && this.params.topK < v ? this.params.topK : v);
      this.scratch = new Float64Array(this.cand.ids.length);
    }
    const work = this.work;
    work.set(logits);
    for (let i = 0; i < v; i++) if (work[i] !== work[i]) work[i] = -Infinity;
    applyPenalties(work, history, this.params);
    return work;
  }

  private pick(work: Float32Array): number {
    const p = this.params;
    // 1/t overflowing (t tiny but positive) is greedy in the limit; treat it as such.
    if (p.temperature <= 0 || !Number.isFinite(1 / p.temperature)) return argmax(work);
    const c = this.cand;
    selectTopK(work, p.topK, c);
    // Degenerate rows: no finite logit, or an infinite one that outweighs everything.
    if (!Number.isFinite(c.logits[0])) return argmax(work);
    applyTopP(c, p.topP, this.scratch);
    applyMinP(c, p.minP);
    applyTemperature(c, p.temperature);
    return drawCandidate(c, this.rng, this.scratch);
  }
}

/** Index of the largest value; ties go to the lowest index. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  let bestValue = values[0];
  for (let i = 1; i < values.length; i++) {
    if (values[i] > bestValue) {
      bestValue = values[i];
      best = i;
    }
  }
  return best;
}
