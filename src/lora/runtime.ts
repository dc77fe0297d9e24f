/**
 * LoRA adapters applied at run time (--lora on run, chat, serve, perplexity...), without merging:
 * the base weights stay as stored (quantized, or read on demand with --max-memory), and after each
 * product with a targeted matrix the forward pass adds s·B·(A·x), s = alpha / r, as llama.cpp's
 * --lora does in its graph. Embedding pairs add s·(B·A)^T's row to each looked-up token.
 * modules_to_save tensors (full replacements of embed_tokens, lm_head, norms) are not deltas:
 * they are written into the weights when the adapter is loaded, in each weight's own type.
 */
import { ModelError, UnsupportedError } from "../errors.js";
import { permuteRopeRows } from "../convert/permute.js";
import { hfShape } from "../io/tensor-names.js";
import type { Weight } from "../kernels/js/matmul.js";
import type { ModelConfig } from "../model/config.js";
import type { WeightDelta } from "../model/mixtral.js";
import type { ModelWeights } from "../model/weights.js";
import { checkAdapter, type LoraAdapter } from "./adapter.js";
import { applyLoraToWeights, weightFor } from "./merge.js";

/** out[o] += scale · Σ_k b[o, k] · (Σ_i a[k, i] · x[i]) for one matrix. */
interface Term {
  /** [r, nIn] */
  a: Float32Array;
  /** [nOut, r] */
  b: Float32Array;
  r: number;
  scale: number;
}

/** The delta terms of one or more adapters, by weight and matrix, ready for the forward pass. */
export class RuntimeLora implements WeightDelta {
  private readonly terms = new Map<Weight, Term[][]>();
  /** embedding pairs: a [r, vocab], b [dim, r] */
  private readonly embedTerms: Term[] = [];
  private u = new Float64Array(0);

  add(w: Weight, mat: number, t: Term): void {
    let perMat = this.terms.get(w);
    if (!perMat) {
      perMat = Array.from({ length: w.nMat }, () => []);
      this.terms.set(w, perMat);
    }
    perMat[mat]!.push(t);
  }

  addEmbedding(t: Term): void {
    this.embedTerms.push(t);
  }

  get size(): number {
    let n = this.embedTerms.length;
    for (const m of this.terms.values()) for (const ts of m) n += ts.length;
    return n;
  }

  apply(w: Weight, mat: number, x: Float32Array, nTok: number, out: Float32Array, rows?: ArrayLike<number>): void {
    const ts = this.terms.get(w)?.[mat];
    if (!ts?.length) return;
    const nIn = w.nIn, nOut = w.nOut;
    for (const t of ts) {
      if (this.u.length < t.r) this.u = new Float64Array(t.r);
      const u = this.u;
      for (let i = 0; i < nTok; i++) {
        const xo = (rows ? rows[i]! : i) * nIn;
        // u = A·x  [r]
        for (let k = 0; k < t.r; k++) {
          let s = 0;
          const ao = k * nIn;
          for (let j = 0; j < nIn; j++) s += t.a[ao + j]! * x[xo + j]!;
          u[k] = s * t.scale;
        }
        // out += B·u  [nOut]
        const oo = i * nOut;
        for (let o = 0; o < nOut; o++) {
          let s = 0;
          const bo = o * t.r;
          for (let k = 0; k < t.r; k++) s += t.b[bo + k]! * u[k]!;
          out[oo + o] = out[oo + o]! + s;
        }
      }
    }
  }

  applyEmbedding(token: number, out: Float32Array, off: number): void {
    for (const t of this.embedTerms) {
      // a [r, vocab], b [dim, r]: row delta[e] = scale · Σ_k b[e, k] · a[k, token]
      const vocab = t.a.length / t.r, dim = t.b.length / t.r;
      for (let e = 0; e < dim; e++) {
        let s = 0;
        for (let k = 0; k < t.r; k++) s += t.b[e * t.r + k]! * t.a[k * vocab + token]!;
        out[off + e] = out[off + e]! + s * t.scale;
      }
    }
  }
}

export interface RuntimeLoraResult {
  /** LoRA pairs applied at run time */
  pairs: number;
  /** HF names of modules_to_save tensors written into the weights */
  replaced: string[];
}

/**
 * Prepare an adapter for run time on a loaded model: its pairs become delta terms on `lora`
 * (created on the model when absent, so several adapters add up), its modules_to_save tensors are
 * written into the weights. The adapter's tensors are read now; it can be closed afterwards.
 */
export function attachLora(model: { config: ModelConfig; weights: ModelWeights; lora?: WeightDelta }, adapter: LoraAdapter): RuntimeLoraResult {
  const c = model.config, w = model.weights;
  const tied = w.output === w.tokenEmbd;
  checkAdapter(adapter, c, tied, (n) => {
    const p = (adapter.pairs.get(n) ?? adapter.replacements.get(n))?.parsed.rule;
    return p ? hfShape(p, c) : undefined;
  }, "the model");
  if (model.lora && !(model.lora instanceof RuntimeLora)) throw new ModelError("internal: the model already has a run-time delta of another kind");
  const lora = (model.lora as RuntimeLora | undefined) ?? new RuntimeLora();
  for (const pair of adapter.pairs.values()) {
    const a = adapter.read(pair.aKey), b = adapter.read(pair.bKey), r = pair.rank, scale = Math.fround(pair.scale);
    if (pair.kind === "embedding") {
      lora.addEmbedding({ a, b, r, scale });
      // a tied LM head multiplies by the embeddings too: logits += scale · A^T·(B^T·x)
      if (tied) lora.add(w.tokenEmbd, 0, { a: transpose(b, b.length / r, r), b: transpose(a, r, a.length / r), r, scale });
      continue;
    }
    const loc = weightFor(w, pair.parsed);
    if (!loc.weight) throw new UnsupportedError(`${pair.target}: LoRA on a norm vector`);
    if (pair.parsed.rule.role === "output" && tied) throw new UnsupportedError("the model's output reuses the embeddings (tied); a LoRA on lm_head cannot be applied");
    // q/k rows are stored permuted for RoPE in GGUF: permute B's rows the same way
    const nHeads = pair.parsed.rule.rope === "q" ? c.nHead : pair.parsed.rule.rope === "k" ? c.nHeadKv : 0;
    const bb = nHeads ? permuteRopeRows(b, loc.weight.nOut, r, nHeads, true) : b;
    lora.add(loc.weight, loc.mat, { a, b: bb, r, scale });
  }
  const replaced = adapter.replacements.size ? applyLoraToWeights(model, { ...adapter, pairs: new Map() }) : [];
  model.lora = lora;
  return { pairs: adapter.pairs.size, replaced };
}

/** [rows, cols] -> [cols, rows] */
function transpose(x: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = x[i * cols + j]!;
  return out;
}
