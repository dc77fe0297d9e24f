/**
 * The Mixtral forward pass (and dense llama/Mistral through the same code): token embedding, then
 * per layer RMSNorm -> attention with GQA and RoPE over the KV cache -> residual -> RMSNorm ->
 * sparse MoE of SwiGLU experts (top-k routing) -> residual; final RMSNorm and the LM head.
 * Prompts are processed in batches of many tokens; the tokens routed to each expert are grouped so
 * that every expert runs one matrix-matrix product per batch.
 */
import { ArgumentError, ContextFullError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import { swiglu } from "../kernels/js/activations.js";
import { attention } from "../kernels/js/attention.js";
import type { Weight } from "../kernels/js/matmul.js";
import { JsBackend, type Backend } from "../kernels/backend.js";
import { rmsNormRows } from "../kernels/js/rms-norm.js";
import { RopeTable } from "../kernels/js/rope.js";
import { vecDotType } from "../quant/index.js";
import { configFromGguf, type ModelConfig } from "./config.js";
import { KvCache, type KvType } from "./kv-cache.js";
import { groupByExpert, route } from "./moe.js";
import { loadWeights, weightRow, type LoadWeightsOptions, type ModelWeights } from "./weights.js";
import { basename } from "node:path";

/** Receives llama.cpp-named intermediates: rows [nTok, width] for layer `layer` (-1 when none). */
export type TraceFn = (name: string, data: Float32Array | Int32Array, nTok: number, width: number) => void;

export interface EvalOptions {
  /** which batch rows get logits: "last" (default), "all", "none", or indices into the batch */
  logits?: "last" | "all" | "none" | number[];
  trace?: TraceFn;
}

/** One sequence's share of a batched forward step. */
export interface BatchSegment {
  ctx: MixtralContext;
  tokens: number[];
  /** rows of `tokens` whose logits are wanted */
  logitRows: number[];
}

export interface ContextOptions {
  nCtx?: number;
  kvType?: KvType;
  /** tokens per forward step during prompt processing */
  nBatch?: number;
}

export class Mixtral {
  /** per layer, experts switched off by --disable-experts (1 = disabled) */
  readonly disabledExperts: Uint8Array[];
  /** RoPE cos/sin, shared by all contexts (grows with the longest position seen) */
  readonly rope: RopeTable;

  constructor(readonly config: ModelConfig, readonly weights: ModelWeights, readonly file = "model", readonly backend: Backend = new JsBackend()) {
    this.disabledExperts = Array.from({ length: config.nLayer }, () => new Uint8Array(Math.max(1, config.nExpert)));
    this.rope = new RopeTable(config.nRot, config.ropeTheta, config.ropeScale, Math.min(config.nCtxTrain, 4096));
  }

  static fromGguf(r: GgufReader, backend: Backend = new JsBackend(), opts: LoadWeightsOptions = {}): Mixtral {
    const cfg = configFromGguf(r.metadata, basename(r.path));
    return new Mixtral(cfg, loadWeights(r, cfg, backend, opts), basename(r.path), backend);
  }

  /** out[nTok, nOut] = x[nTok, nIn] . W[mat]^T */
  matmul(w: Weight, mat: number, x: Float32Array, nTok: number, out: Float32Array): void {
    this.backend.matmul(w, mat, this.backend.quantizeRows(vecDotType(w.type), x, nTok, w.nIn), out);
  }

  close(): void {
    this.weights.experts?.close();
    this.backend.close();
  }

  /** Disable experts given as "L:E" pairs; the router then picks among the others. */
  disableExperts(spec: string[]): void {
    for (const s of spec) {
      const m = /^(\d+):(\d+)$/.exec(s.trim());
      if (!m) throw new ArgumentError(`--disable-experts: "${s}" is not LAYER:EXPERT`);
      const l = Number(m[1]), e = Number(m[2]);
      if (l >= this.config.nLayer || e >= this.config.nExpert) {
        throw new ArgumentError(`--disable-experts: ${s} is outside ${this.config.nLayer} layers x ${this.config.nExpert} experts`);
      }
      this.disabledExperts[l]![e] = 1;
      const left = this.config.nExpert - this.disabledExperts[l]!.reduce((a, b) => a + b, 0);
      if (left < this.config.nExpertUsed) {
        throw new ArgumentError(`--disable-experts: layer ${l} would keep ${left} experts, fewer than the ${this.config.nExpertUsed} each token uses`);
      }
    }
  }

  /**
   * One forward step over several sequences at once (continuous batching): every segment's
   * tokens are appended to its own context; the weight products run once over all rows (and
   * the MoE groups rows of all sequences per expert); attention runs per sequence over its own
   * cache. Returns, per segment, the logits of its requested rows.
   */
  forwardBatch(segs: BatchSegment[], trace?: TraceFn): Float32Array[] {
    const c = this.config, w = this.weights, be = this.backend;
    const E = c.nEmbd, hd = c.headDim, qDim = c.nHead * hd, kvDim = c.nHeadKv * hd;
    const offs: number[] = [];
    let n = 0;
    for (const sg of segs) {
      if (sg.ctx.model !== this) throw new ArgumentError("internal: a context of another model in the batch");
      if (sg.ctx.nPast + sg.tokens.length > sg.ctx.nCtx) {
        throw new ContextFullError(`context is full: ${sg.ctx.nPast} tokens in the cache + ${sg.tokens.length} new > context size ${sg.ctx.nCtx}`);
      }
      offs.push(n);
      n += sg.tokens.length;
    }
    const positions = new Int32Array(n);
    segs.forEach((sg, si) => sg.tokens.forEach((_, i) => { positions[offs[si]! + i] = sg.ctx.nPast + i; }));
    const x = new Float32Array(n * E);
    segs.forEach((sg, si) => sg.tokens.forEach((t, i) => weightRow(w.tokenEmbd, 0, t, x, (offs[si]! + i) * E)));
    const xn = new Float32Array(n * E);
    const q = new Float32Array(n * qDim), k = new Float32Array(n * kvDim), v = new Float32Array(n * kvDim);
    const att = new Float32Array(n * qDim);
    const tmp = new Float32Array(n * E);
    const L = (name: string, l: number) => `${name}-${l}`;

    for (let l = 0; l < c.nLayer; l++) {
      const lw = w.layers[l]!;
      rmsNormRows(x, lw.attnNorm, xn, n, E, c.rmsEps);
      trace?.(L("attn_norm", l), xn, n, E);
      const a = be.quantizeRows(vecDotType(lw.wq.type), xn, n, E);
      be.matmul(lw.wq, 0, a, q);
      be.matmul(lw.wk, 0, vecDotType(lw.wk.type) === a.type ? a : be.quantizeRows(vecDotType(lw.wk.type), xn, n, E), k);
      be.matmul(lw.wv, 0, vecDotType(lw.wv.type) === a.type ? a : be.quantizeRows(vecDotType(lw.wv.type), xn, n, E), v);
      for (let i = 0; i < n; i++) {
        this.rope.apply(q, i * qDim, c.nHead, hd, positions[i]!);
        this.rope.apply(k, i * kvDim, c.nHeadKv, hd, positions[i]!);
      }
      trace?.(L("Qcur_rope", l), q, n, qDim);
      trace?.(L("Kcur_rope", l), k, n, kvDim);
      segs.forEach((sg, si) => {
        const o = offs[si]!, nt = sg.tokens.length, cache = sg.ctx.cache;
        for (let i = 0; i < nt; i++) cache.write(l, positions[o + i]!, k, (o + i) * kvDim, v, (o + i) * kvDim);
        const qs = q.subarray(o * qDim, (o + nt) * qDim), outs = att.subarray(o * qDim, (o + nt) * qDim);
        const ps = positions.subarray(o, o + nt);
        if (!be.attention?.(qs, nt, ps, cache.k[l]!, cache.v[l]!, c, outs)) attention(qs, nt, ps, cache.k[l]!, cache.v[l]!, c, outs);
      });
      this.matmul(lw.wo, 0, att, n, tmp);
      trace?.(L("kqv_out", l), tmp, n, E);
      for (let i = 0; i < n * E; i++) x[i] = x[i]! + tmp[i]!;
      trace?.(L("ffn_inp", l), x, n, E);

      rmsNormRows(x, lw.ffnNorm, xn, n, E, c.rmsEps);
      trace?.(L("ffn_norm", l), xn, n, E);
      if (lw.gateInp) this.moe(l, xn, n, tmp, trace);
      else this.denseFfn(l, xn, n, tmp);
      for (let i = 0; i < n * E; i++) x[i] = x[i]! + tmp[i]!;
      trace?.(L("l_out", l), x, n, E);
    }

    if (trace) {
      rmsNormRows(x, w.outputNorm, xn, n, E, c.rmsEps);
      trace("result_norm", xn, n, E);
    }
    // the LM head only for the rows that want logits, all segments in one product
    const rows: number[] = [];
    segs.forEach((sg, si) => { for (const r of sg.logitRows) rows.push(offs[si]! + r); });
    const sel = new Float32Array(rows.length * E);
    rows.forEach((r, i) => sel.set(x.subarray(r * E, (r + 1) * E), i * E));
    const seln = new Float32Array(sel.length);
    rmsNormRows(sel, w.outputNorm, seln, rows.length, E, c.rmsEps);
    const V = c.nVocab;
    const logits = new Float32Array(rows.length * V);
    if (rows.length) this.matmul(w.output, 0, seln, rows.length, logits);
    const out: Float32Array[] = [];
    let r0 = 0;
    for (const sg of segs) {
      out.push(logits.slice(r0 * V, (r0 + sg.logitRows.length) * V));
      r0 += sg.logitRows.length;
      for (const t of sg.tokens) sg.ctx.tokens.push(t);
    }
    return out;
  }

  private moe(l: number, xn: Float32Array, n: number, out: Float32Array, trace?: TraceFn): void {
    const m = this, be = m.backend, c = m.config, lw = m.weights.layers[l]!;
    const E = c.nEmbd, F = c.nFf, K = c.nExpertUsed, NE = c.nExpert;
    const logits = new Float32Array(n * NE);
    m.matmul(lw.gateInp!, 0, xn, n, logits);
    trace?.(`ffn_moe_logits-${l}`, logits, n, NE);
    const r = route(logits, n, NE, K, this.disabledExperts[l]);
    trace?.(`ffn_moe_probs-${l}`, r.probs, n, NE);
    trace?.(`ffn_moe_topk-${l}`, r.experts, n, K);
    trace?.(`ffn_moe_weights_norm-${l}`, r.weights, n, K);
    m.weights.experts?.routed(l, r.experts);
    // expert outputs per (token, slot), summed in slot order as llama.cpp does
    const slotOut = new Float32Array(n * K * E);
    const act = be.quantizeRows(vecDotType(lw.ffnGate.type), xn, n, E);
    const actUp = vecDotType(lw.ffnUp.type) === act.type ? act : be.quantizeRows(vecDotType(lw.ffnUp.type), xn, n, E);
    const groups = groupByExpert(r.experts, n, K, NE);
    for (let e = 0; e < NE; e++) {
      const g = groups[e]!;
      const nt = g.tokens.length;
      if (nt === 0) continue;
      const gate = new Float32Array(nt * F), up = new Float32Array(nt * F), y = new Float32Array(nt * E);
      be.matmul(lw.ffnGate, e, act, gate, g.tokens);
      be.matmul(lw.ffnUp, e, actUp, up, g.tokens);
      swiglu(gate, up, nt * F);
      m.matmul(lw.ffnDown, e, gate, nt, y);
      for (let i = 0; i < nt; i++) {
        const t = g.tokens[i]!, s = g.slots[i]!;
        const wgt = r.weights[t * K + s]!;
        const dst = (t * K + s) * E;
        for (let j = 0; j < E; j++) slotOut[dst + j] = y[i * E + j]! * wgt;
      }
    }
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < E; j++) {
        let s = slotOut[t * K * E + j]!;
        for (let sl = 1; sl < K; sl++) s = Math.fround(s + slotOut[(t * K + sl) * E + j]!);
        out[t * E + j] = s;
      }
    }
    trace?.(`ffn_moe_out-${l}`, out, n, E);
  }

  private denseFfn(l: number, xn: Float32Array, n: number, out: Float32Array): void {
    const m = this, c = m.config, lw = m.weights.layers[l]!;
    const gate = new Float32Array(n * c.nFf), up = new Float32Array(n * c.nFf);
    m.matmul(lw.ffnGate, 0, xn, n, gate);
    m.matmul(lw.ffnUp, 0, xn, n, up);
    swiglu(gate, up, n * c.nFf);
    m.matmul(lw.ffnDown, 0, gate, n, out);
  }

  newContext(opts: ContextOptions = {}): MixtralContext {
    return new MixtralContext(this, opts);
  }
}

export class MixtralContext {
  readonly nCtx: number;
  readonly nBatch: number;
  readonly cache: KvCache;
  /** tokens currently in the cache */
  readonly tokens: number[] = [];

  constructor(readonly model: Mixtral, opts: ContextOptions) {
    const c = model.config;
    this.nCtx = opts.nCtx ?? Math.min(c.nCtxTrain, 4096);
    if (!Number.isInteger(this.nCtx) || this.nCtx < 1) throw new ArgumentError(`context size must be a positive integer, got ${opts.nCtx}`);
    this.nBatch = Math.max(1, opts.nBatch ?? 512);
    const be = model.backend;
    this.cache = new KvCache(c.nLayer, this.nCtx, c.nHeadKv, c.headDim, opts.kvType ?? "f32", be.allocKv ? (n, f16) => be.allocKv!(n, f16) : undefined);
  }

  get nPast(): number {
    return this.tokens.length;
  }

  /** Give the KV cache's memory back to the backend now; the context cannot be used after. */
  dispose(): void {
    const be = this.model.backend;
    if (be.freeKv) for (const a of [...this.cache.k, ...this.cache.v]) be.freeKv(a);
    this.cache.k.length = 0;
    this.cache.v.length = 0;
  }

  /**
   * How many leading tokens of `prompt` this cache already holds and can keep: the common prefix,
   * less one when that is the whole prompt (its last token is evaluated again for its logits).
   */
  reusablePrefix(prompt: readonly number[]): number {
    let n = 0;
    while (n < this.tokens.length && n < prompt.length && this.tokens[n] === prompt[n]) n++;
    return Math.max(0, Math.min(n, prompt.length - 1));
  }

  /** Forget everything from position n on (n = 0: clear). */
  truncate(n: number): void {
    this.tokens.length = Math.min(n, this.tokens.length);
  }

  /**
   * Append tokens and run them through the model. Returns logits rows [nRows, nVocab] for the
   * requested positions of this call (see EvalOptions.logits).
   */
  eval(tokens: number[], opts: EvalOptions = {}): Float32Array {
    const c = this.model.config;
    if (this.nPast + tokens.length > this.nCtx) {
      throw new ContextFullError(`context is full: ${this.nPast} tokens in the cache + ${tokens.length} new > context size ${this.nCtx}`);
    }
    for (const t of tokens) {
      if (!Number.isInteger(t) || t < 0 || t >= c.nVocab) throw new ArgumentError(`token id ${t} is outside the vocabulary (0..${c.nVocab - 1})`);
    }
    const want = opts.logits ?? "last";
    const rows: number[] = want === "all" ? tokens.map((_, i) => i)
      : want === "last" ? (tokens.length ? [tokens.length - 1] : [])
      : want === "none" ? [] : want;
    for (const r of rows) if (!Number.isInteger(r) || r < 0 || r >= tokens.length) throw new ArgumentError(`logits row ${r} outside the batch of ${tokens.length}`);
    const out = new Float32Array(rows.length * c.nVocab);
    let written = 0;
    for (let b = 0; b < tokens.length; b += this.nBatch) {
      const chunk = tokens.slice(b, b + this.nBatch);
      const chunkRows = rows.filter((r) => r >= b && r < b + chunk.length).map((r) => r - b);
      const logits = this.forward(chunk, chunkRows, opts.trace);
      out.set(logits, written * c.nVocab);
      written += chunkRows.length;
    }
    return out;
  }

  private forward(tokens: number[], logitRows: number[], trace?: TraceFn): Float32Array {
    return this.model.forwardBatch([{ ctx: this, tokens, logitRows }], trace)[0]!;
  }
}
