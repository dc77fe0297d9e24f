/**
 * Expert routing statistics per layer, collected from the forward pass's trace of the router
 * (ffn_moe_topk, ffn_moe_weights_norm, ffn_moe_probs): how often each expert is chosen (first
 * choice and among the top-k), its mean router probability, its mean weight when chosen, and how
 * often each pair of experts is chosen together.
 */
import type { TraceFn } from "../model/mixtral.js";

export interface LayerStats {
  /** tokens that chose expert e among their top-k */
  counts: number[];
  /** tokens whose first choice was expert e */
  top1: number[];
  /** mean softmax probability of expert e over all tokens */
  meanProb: number[];
  /** mean renormalised weight of expert e over the tokens that chose it */
  meanWeight: number[];
  /** pairs[a][b]: tokens that chose both a and b (symmetric, diagonal = counts) */
  pairs: number[][];
}

export interface RoutingSummary {
  nTokens: number;
  nExpert: number;
  nExpertUsed: number;
  layers: LayerStats[];
}

export class RoutingStats {
  nTokens = 0;
  private counts: Float64Array[];
  private top1: Float64Array[];
  private probSum: Float64Array[];
  private weightSum: Float64Array[];
  private pairs: Float64Array[];
  /** per layer, the experts chosen by each token in order (kept when keepPerToken) */
  readonly perToken: Int32Array[][] = [];

  constructor(readonly nLayer: number, readonly nExpert: number, readonly nExpertUsed: number, readonly keepPerToken = false) {
    const mk = (n: number) => Array.from({ length: nLayer }, () => new Float64Array(n));
    this.counts = mk(nExpert); this.top1 = mk(nExpert); this.probSum = mk(nExpert); this.weightSum = mk(nExpert);
    this.pairs = mk(nExpert * nExpert);
    if (keepPerToken) for (let l = 0; l < nLayer; l++) this.perToken.push([]);
  }

  /** A trace callback for MixtralContext.eval that feeds these statistics. */
  readonly trace: TraceFn = (name, data, nTok, width) => {
    const m = /^ffn_moe_(topk|weights_norm|probs)-(\d+)$/.exec(name);
    if (!m) return;
    const l = Number(m[2]);
    const E = this.nExpert, K = this.nExpertUsed;
    if (m[1] === "probs") {
      for (let t = 0; t < nTok; t++) for (let e = 0; e < E; e++) this.probSum[l]![e] += data[t * width + e]!;
      if (l === 0) this.nTokens += nTok;
    } else if (m[1] === "topk") {
      const c = this.counts[l]!, p = this.pairs[l]!;
      for (let t = 0; t < nTok; t++) {
        const row = data.subarray(t * K, (t + 1) * K) as Int32Array;
        this.top1[l]![row[0]!]++;
        for (let a = 0; a < K; a++) {
          c[row[a]!]++;
          for (let b = 0; b < K; b++) p[row[a]! * E + row[b]!]++;
        }
        if (this.keepPerToken) this.perToken[l]!.push(Int32Array.from(row));
      }
      this.lastTopk[l] = data as Int32Array;
    } else {
      const top = this.lastTopk[l];
      if (!top) return;
      for (let i = 0; i < nTok * K; i++) this.weightSum[l]![top[i]!] += data[i]!;
    }
  };
  private lastTopk: (Int32Array | undefined)[] = [];

  summary(): RoutingSummary {
    const E = this.nExpert;
    return {
      nTokens: this.nTokens, nExpert: E, nExpertUsed: this.nExpertUsed,
      layers: Array.from({ length: this.nLayer }, (_, l) => ({
        counts: Array.from(this.counts[l]!),
        top1: Array.from(this.top1[l]!),
        meanProb: Array.from(this.probSum[l]!, (s) => (this.nTokens ? s / this.nTokens : 0)),
        meanWeight: Array.from(this.weightSum[l]!, (s, e) => (this.counts[l]![e] ? s / this.counts[l]![e]! : 0)),
        pairs: Array.from({ length: E }, (_, a) => Array.from(this.pairs[l]!.subarray(a * E, (a + 1) * E))),
      })),
    };
  }
}

/** Share of top-k choices per layer and expert (counts / (tokens * k)). */
export function shares(s: RoutingSummary): number[][] {
  return s.layers.map((l) => l.counts.map((c) => (s.nTokens ? c / (s.nTokens * s.nExpertUsed) : 0)));
}
