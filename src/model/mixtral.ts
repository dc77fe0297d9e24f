/**
 * The Mixtral forward pass (and dense llama/Mistral through the same code): token embedding, then
 * per layer RMSNorm -> attention with GQA and RoPE over the KV cache -> residual -> RMSNorm ->
 * sparse MoE of SwiGLU experts (top-k routing) -> residual; final RMSNorm and the LM head.
 * Prompts are processed in batches of many tokens; the tokens routed to each expert are grouped so
 * that every expert runs one matrix-matrix product per batch.
 *
 * Contexts made with `exact: true` compute with llama.cpp's float arithmetic, bit for bit
 * (src/kernels/js/ggml.ts): the same kernels llama.cpp would pick for each product's shape, its
 * exp/sin/cos, and, as llama.cpp does, the last layer's FFN only for the rows whose logits are
 * wanted. Slower; the default kernels differ from llama.cpp in the last bits, which quantized models
 * turn into differences of 1e-4..1e-3 in perplexity.
 */
import { ArgumentError, ContextFullError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import { swiglu } from "../kernels/js/activations.js";
import { attention, attentionGgml } from "../kernels/js/attention.js";
import { rmsNormRowsGgml, siluRow } from "../kernels/js/ggml.js";
import type { GgmlPath, QuantizedRows, Weight } from "../kernels/js/matmul.js";
import { JsBackend, type Backend } from "../kernels/backend.js";
import { rmsNormRows } from "../kernels/js/rms-norm.js";
import { RopeTable } from "../kernels/js/rope.js";
import { vecDotType } from "../quant/index.js";
import { configFromGguf, type ModelConfig } from "./config.js";
import { KvCache, type KvType } from "./kv-cache.js";
import { groupByExpert, route } from "./moe.js";
import { loadWeights, weightRow, type LoadWeightsOptions, type ModelWeights } from "./weights.js";
import { basename } from "node:path";

/**
 * Sees the float input of a weight product (what `cmx imatrix` accumulates): x holds rows of
 * w.nIn values; `rows` lists the nTok rows that go through matrix `mat` (the tokens routed to an
 * expert), else rows 0..nTok-1 do.
 */
export type MatmulObserver = (w: Weight, mat: number, x: Float32Array, nTok: number, rows?: ArrayLike<number>) => void;

/**
 * A change to the weights applied at run time, without touching them (a LoRA adapter given with
 * --lora): after each product out[nTok, w.nOut] = x · W[mat]^T it adds its own term.
 */
export interface WeightDelta {
  /** out[t] += delta(x[rows ? rows[t] : t]) for matrix `mat` of w */
  apply(w: Weight, mat: number, x: Float32Array, nTok: number, out: Float32Array, rows?: ArrayLike<number>): void;
  /** a token's embedding row, just looked up into out[off .. off + nEmbd), += its delta */
  applyEmbedding(token: number, out: Float32Array, off: number): void;
}

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
  /** llama.cpp's float arithmetic, bit for bit (slower; see the top of this file) */
  exact?: boolean;
}

export class Mixtral {
  /** per layer, experts switched off by --disable-experts (1 = disabled) */
  readonly disabledExperts: Uint8Array[];
  /** RoPE cos/sin, shared by all contexts (grows with the longest position seen) */
  readonly rope: RopeTable;
  private ropeGlibc?: RopeTable;
  /** adapters applied at run time (--lora); none by default */
  lora?: WeightDelta;

  constructor(readonly config: ModelConfig, readonly weights: ModelWeights, readonly file = "model", readonly backend: Backend = new JsBackend()) {
    this.disabledExperts = Array.from({ length: config.nLayer }, () => new Uint8Array(Math.max(1, config.nExpert)));
    this.rope = new RopeTable(config.nRot, config.ropeTheta, config.ropeScale, Math.min(config.nCtxTrain, 4096));
  }

  static fromGguf(r: GgufReader, backend: Backend = new JsBackend(), opts: LoadWeightsOptions = {}): Mixtral {
    const cfg = configFromGguf(r.metadata, basename(r.path));
    return new Mixtral(cfg, loadWeights(r, cfg, backend, opts), basename(r.path), backend);
  }

  /** out[nTok, nOut] = x[nTok, nIn] . W[mat]^T; `path`: with llama.cpp's arithmetic on that kernel */
  matmul(w: Weight, mat: number, x: Float32Array, nTok: number, out: Float32Array, path?: GgmlPath): void {
    const a = this.backend.quantizeRows(vecDotType(w.type), x, nTok, w.nIn);
    if (path) this.backend.matmulGgml(w, mat, a, out, undefined, path);
    else this.backend.matmul(w, mat, a, out);
  }

  /** After every weight product: the observer sees its input rows, a runtime adapter adds its term. */
  private hooks(obs: MatmulObserver | undefined, w: Weight, mat: number, x: Float32Array, nTok: number, out: Float32Array, rows?: ArrayLike<number>): void {
    obs?.(w, mat, x, nTok, rows);
    this.lora?.apply(w, mat, x, nTok, out, rows);
  }

  /** the RoPE table with llama.cpp's cos/sin (glibc's), for exact contexts */
  private get ropeExact(): RopeTable {
    const c = this.config;
    return (this.ropeGlibc ??= new RopeTable(c.nRot, c.ropeTheta, c.ropeScale, Math.min(c.nCtxTrain, 4096), true));
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
    const exact = segs[0]?.ctx.exact ?? false;
    const obs = segs[0]?.ctx.observer;
    const offs: number[] = [];
    let n = 0;
    for (const sg of segs) {
      if (sg.ctx.model !== this) throw new ArgumentError("internal: a context of another model in the batch");
      if (sg.ctx.exact !== exact) throw new ArgumentError("internal: exact and default contexts in one batch");
      if (sg.ctx.observer !== obs) throw new ArgumentError("internal: contexts with different observers in one batch");
      if (sg.ctx.nPast + sg.tokens.length > sg.ctx.nCtx) {
        throw new ContextFullError(`context is full: ${sg.ctx.nPast} tokens in the cache + ${sg.tokens.length} new > context size ${sg.ctx.nCtx}`);
      }
      offs.push(n);
      n += sg.tokens.length;
    }
    // llama.cpp's kernel choice for a dense product over `rows` rows (exact mode)
    const path = (rows: number): GgmlPath | undefined => (exact ? (rows >= 2 ? "gemm" : "vec") : undefined);
    const norm = exact ? rmsNormRowsGgml : rmsNormRows;
    const product = (wt: Weight, a: QuantizedRows, out: Float32Array, rows: number): void => {
      const p = path(rows);
      if (p) be.matmulGgml(wt, 0, a, out, undefined, p);
      else be.matmul(wt, 0, a, out);
    };
    // the rows that want logits, all segments in order
    const outRows: number[] = [];
    segs.forEach((sg, si) => { for (const r of sg.logitRows) outRows.push(offs[si]! + r); });
    const positions = new Int32Array(n);
    segs.forEach((sg, si) => sg.tokens.forEach((_, i) => { positions[offs[si]! + i] = sg.ctx.nPast + i; }));
    let x = new Float32Array(n * E);
    segs.forEach((sg, si) => sg.tokens.forEach((t, i) => {
      weightRow(w.tokenEmbd, 0, t, x, (offs[si]! + i) * E);
      this.lora?.applyEmbedding(t, x, (offs[si]! + i) * E);
    }));
    const xn = new Float32Array(n * E);
    const q = new Float32Array(n * qDim), k = new Float32Array(n * kvDim), v = new Float32Array(n * kvDim);
    const att = new Float32Array(n * qDim);
    const tmp = new Float32Array(n * E);
    const rope = exact ? this.ropeExact : this.rope;
    const L = (name: string, l: number) => `${name}-${l}`;
    /** rows x holds: all n, or (exact mode, after the last layer's attention) only outRows */
    let nx = n;

    for (let l = 0; l < c.nLayer; l++) {
      const lw = w.layers[l]!;
      norm(x, lw.attnNorm, xn, n, E, c.rmsEps);
      trace?.(L("attn_norm", l), xn, n, E);
      const a = be.quantizeRows(vecDotType(lw.wq.type), xn, n, E);
      const ak = vecDotType(lw.wk.type) === a.type ? a : be.quantizeRows(vecDotType(lw.wk.type), xn, n, E);
      const av = vecDotType(lw.wv.type) === a.type ? a : vecDotType(lw.wv.type) === ak.type ? ak : be.quantizeRows(vecDotType(lw.wv.type), xn, n, E);
      // Q, K and V in one job where the backend can (same results)
      if (exact || !be.matmulMany?.([{ w: lw.wq, mat: 0, act: a, out: q }, { w: lw.wk, mat: 0, act: ak, out: k }, { w: lw.wv, mat: 0, act: av, out: v }])) {
        product(lw.wq, a, q, n);
        product(lw.wk, ak, k, n);
        product(lw.wv, av, v, n);
      }
      this.hooks(obs, lw.wq, 0, xn, n, q);
      this.hooks(obs, lw.wk, 0, xn, n, k);
      this.hooks(obs, lw.wv, 0, xn, n, v);
      for (let i = 0; i < n; i++) {
        if (exact) {
          rope.applyGgml(q, i * qDim, c.nHead, hd, positions[i]!);
          rope.applyGgml(k, i * kvDim, c.nHeadKv, hd, positions[i]!);
        } else {
          rope.apply(q, i * qDim, c.nHead, hd, positions[i]!);
          rope.apply(k, i * kvDim, c.nHeadKv, hd, positions[i]!);
        }
      }
      trace?.(L("Qcur_rope", l), q, n, qDim);
      trace?.(L("Kcur_rope", l), k, n, kvDim);
      segs.forEach((sg, si) => {
        const o = offs[si]!, nt = sg.tokens.length, cache = sg.ctx.cache;
        for (let i = 0; i < nt; i++) cache.write(l, positions[o + i]!, k, (o + i) * kvDim, v, (o + i) * kvDim);
      });
      // every sequence's rows over its own cache, in one call where the backend can
      if (!exact && segs.length > 1 && be.attentionBatch?.(q, positions, [...offs, n], segs.map((sg) => sg.ctx.cache.k[l]!), segs.map((sg) => sg.ctx.cache.v[l]!), c, att)) {
        // done
      } else segs.forEach((sg, si) => {
        const o = offs[si]!, nt = sg.tokens.length, cache = sg.ctx.cache;
        const qs = q.subarray(o * qDim, (o + nt) * qDim), outs = att.subarray(o * qDim, (o + nt) * qDim);
        const ps = positions.subarray(o, o + nt);
        if (exact) {
          // llama.cpp's kernels depend on the batch's token count, not the sequence's
          if (!be.attentionGgml?.(qs, nt, ps, cache.k[l]!, cache.v[l]!, c, outs, n >= 2)) attentionGgml(qs, nt, ps, cache.k[l]!, cache.v[l]!, c, outs, n >= 2);
        } else if (!be.attention?.(qs, nt, ps, cache.k[l]!, cache.v[l]!, c, outs)) attention(qs, nt, ps, cache.k[l]!, cache.v[l]!, c, outs);
      });
      trace?.(L("kqv_merged_cont", l), att, n, qDim);
      this.matmul(lw.wo, 0, att, n, tmp, path(n));
      this.hooks(obs, lw.wo, 0, att, n, tmp);
      trace?.(L("kqv_out", l), tmp, n, E);
      for (let i = 0; i < n * E; i++) x[i] = x[i]! + tmp[i]!;
      if (exact && l === c.nLayer - 1 && outRows.length < n) {
        // llama.cpp keeps only the rows with logits for the last layer's FFN (and its kernels see that many rows)
        const xs = new Float32Array(outRows.length * E);
        outRows.forEach((r, i) => xs.set(x.subarray(r * E, (r + 1) * E), i * E));
        x = xs;
        nx = outRows.length;
      }
      trace?.(L("ffn_inp", l), x, nx, E);

      if (nx === 0) continue;
      norm(x, lw.ffnNorm, xn, nx, E, c.rmsEps);
      trace?.(L("ffn_norm", l), xn, nx, E);
      if (lw.gateInp) this.moe(l, xn, nx, tmp, trace, exact, obs);
      else this.denseFfn(l, xn, nx, tmp, exact, obs);
      for (let i = 0; i < nx * E; i++) x[i] = x[i]! + tmp[i]!;
      trace?.(L("l_out", l), x, nx, E);
    }

    if (trace && !exact) {
      rmsNormRows(x, w.outputNorm, xn, n, E, c.rmsEps);
      trace("result_norm", xn, n, E);
    }
    // the LM head only for the rows that want logits, all segments in one product
    const rows = nx === n ? outRows : outRows.map((_, i) => i);
    const sel = new Float32Array(rows.length * E);
    rows.forEach((r, i) => sel.set(x.subarray(r * E, (r + 1) * E), i * E));
    const seln = new Float32Array(sel.length);
    norm(sel, w.outputNorm, seln, rows.length, E, c.rmsEps);
    if (trace && exact) trace("result_norm", seln, rows.length, E);
    const V = c.nVocab;
    const logits = new Float32Array(rows.length * V);
    if (rows.length) {
      this.matmul(w.output, 0, seln, rows.length, logits, path(rows.length));
      this.hooks(obs, w.output, 0, seln, rows.length, logits);
    }
    const out: Float32Array[] = [];
    let r0 = 0;
    for (const sg of segs) {
      out.push(logits.slice(r0 * V, (r0 + sg.logitRows.length) * V));
      r0 += sg.logitRows.length;
      for (const t of sg.tokens) sg.ctx.tokens.push(t);
    }
    return out;
  }

  private moe(l: number, xn: Float32Array, n: number, out: Float32Array, trace?: TraceFn, exact = false, obs?: MatmulObserver): void {
    const m = this, be = m.backend, c = m.config, lw = m.weights.layers[l]!;
    const E = c.nEmbd, F = c.nFf, K = c.nExpertUsed, NE = c.nExpert;
    const logits = new Float32Array(n * NE);
    m.matmul(lw.gateInp!, 0, xn, n, logits, exact ? (n >= 2 ? "gemm" : "vec") : undefined);
    m.hooks(obs, lw.gateInp!, 0, xn, n, logits);
    trace?.(`ffn_moe_logits-${l}`, logits, n, NE);
    const r = route(logits, n, NE, K, this.disabledExperts[l], exact);
    trace?.(`ffn_moe_probs-${l}`, r.probs, n, NE);
    trace?.(`ffn_moe_topk-${l}`, r.experts, n, K);
    trace?.(`ffn_moe_weights_norm-${l}`, r.weights, n, K);
    m.weights.experts?.routed(l, r.experts);
    // all experts of the layer in two jobs where the backend can (same results; not with an
    // observer or a runtime adapter, which see or change each product's input and output)
    if (!exact && !obs && !this.lora && be.moeFfn?.(lw.ffnGate, lw.ffnUp, lw.ffnDown, xn, n, r.experts, r.weights, K, out)) {
      trace?.(`ffn_moe_out-${l}`, out, n, E);
      return;
    }
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
      if (exact) {
        // mul_mat_id: vec_dot for every row; SiLU then the product with up, as separate ops
        be.matmulGgml(lw.ffnGate, e, act, gate, g.tokens, "vec");
        be.matmulGgml(lw.ffnUp, e, actUp, up, g.tokens, "vec");
        m.hooks(obs, lw.ffnGate, e, xn, nt, gate, g.tokens);
        m.hooks(obs, lw.ffnUp, e, xn, nt, up, g.tokens);
        if (!be.siluGgml?.(gate, nt, F)) for (let i = 0; i < nt; i++) siluRow(gate, i * F, F);
        for (let i = 0; i < nt * F; i++) gate[i] = gate[i]! * up[i]!;
        m.matmul(lw.ffnDown, e, gate, nt, y, "vec");
      } else {
        be.matmul(lw.ffnGate, e, act, gate, g.tokens);
        be.matmul(lw.ffnUp, e, actUp, up, g.tokens);
        m.hooks(obs, lw.ffnGate, e, xn, nt, gate, g.tokens);
        m.hooks(obs, lw.ffnUp, e, xn, nt, up, g.tokens);
        swiglu(gate, up, nt * F);
        m.matmul(lw.ffnDown, e, gate, nt, y);
      }
      m.hooks(obs, lw.ffnDown, e, gate, nt, y);
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

  private denseFfn(l: number, xn: Float32Array, n: number, out: Float32Array, exact = false, obs?: MatmulObserver): void {
    const m = this, c = m.config, lw = m.weights.layers[l]!, F = c.nFf;
    const gate = new Float32Array(n * F), up = new Float32Array(n * F);
    const path: GgmlPath | undefined = exact ? (n >= 2 ? "gemm" : "vec") : undefined;
    m.matmul(lw.ffnGate, 0, xn, n, gate, path);
    m.matmul(lw.ffnUp, 0, xn, n, up, path);
    m.hooks(obs, lw.ffnGate, 0, xn, n, gate);
    m.hooks(obs, lw.ffnUp, 0, xn, n, up);
    if (exact) {
      if (!m.backend.siluGgml?.(gate, n, F)) for (let i = 0; i < n; i++) siluRow(gate, i * F, F);
      for (let i = 0; i < n * F; i++) gate[i] = gate[i]! * up[i]!;
    } else swiglu(gate, up, n * F);
    m.matmul(lw.ffnDown, 0, gate, n, out, path);
    m.hooks(obs, lw.ffnDown, 0, gate, n, out);
  }

  newContext(opts: ContextOptions = {}): MixtralContext {
    return new MixtralContext(this, opts);
  }
}

export class MixtralContext {
  readonly nCtx: number;
  readonly nBatch: number;
  readonly cache: KvCache;
  /** llama.cpp's arithmetic (ContextOptions.exact) */
  readonly exact: boolean;
  /** tokens currently in the cache */
  readonly tokens: number[] = [];
  /** sees the input of every weight product this context runs (cmx imatrix); none by default */
  observer?: MatmulObserver;

  constructor(readonly model: Mixtral, opts: ContextOptions) {
    const c = model.config;
    this.nCtx = opts.nCtx ?? Math.min(c.nCtxTrain, 4096);
    if (!Number.isInteger(this.nCtx) || this.nCtx < 1) throw new ArgumentError(`context size must be a positive integer, got ${opts.nCtx}`);
    this.nBatch = Math.max(1, opts.nBatch ?? 512);
    this.exact = opts.exact ?? false;
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
