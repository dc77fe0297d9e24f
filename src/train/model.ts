/**
 * A Mixtral (or dense llama/Mistral) model set up for training: every tensor is frozen, trained
 * in full, or frozen with a LoRA pair beside it; the forward pass keeps what the backward pass
 * needs, and the backward pass sends gradients only where something is trainable.
 *
 * Layout is GGUF's: matrices [out, in] row-major (q/k rows in the interleaved RoPE order), RoPE on
 * adjacent pairs, exactly the arithmetic of the inference engine in float32. Frozen weights keep
 * their GGUF type in ordinary (not WebAssembly) memory — a 4-bit base stays 4-bit, which is QLoRA
 * here — and are widened to float32 a matrix at a time when a product needs them; small bases are
 * widened once. Trainable tensors, gradients, optimizer moments and activations live in the
 * training memory (src/train/gemm.ts).
 *
 * With `recompute`, only each layer's input is kept during the forward pass and the layer is run
 * again just before its backward pass (activation checkpointing): memory is one layer's
 * activations instead of all of them, for about a third more compute.
 */
import { basename } from "node:path";
import { ArgumentError, ModelError } from "../errors.js";
import type { GgufReader } from "../io/gguf/reader.js";
import { configFromGguf, type ModelConfig } from "../model/config.js";
import { route } from "../model/moe.js";
import { GgmlType, typeName } from "../quant/format.js";
import { dequantize, isSupported } from "../quant/index.js";
import { Buf, TrainMemory } from "./gemm.js";
import {
  causalSoftmax, causalSoftmaxBackward, crossEntropyRows, hashUniform, mixSeed, rmsNormBackward, rmsNormForward, rope, ropeTables,
  swigluBackward, swigluForward,
} from "./ops.js";

/** PEFT module names LoRA can target (the seed's list). */
export const LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate", "w1", "w2", "w3"] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];
/** Parts that can be trained in full: embed_tokens, lm_head, the norms, attention, router, experts/FFN. */
export const FULL_TARGETS = ["embed", "lm_head", "norm", "attn", "router", "ffn"] as const;
export type FullTarget = (typeof FULL_TARGETS)[number];

export interface TrainSetup {
  loraRank: number;
  loraAlpha: number;
  loraDropout: number;
  loraTargets: readonly LoraTarget[];
  full: readonly FullTarget[];
  /** router load-balancing loss coefficient (0: off) */
  auxCoef: number;
  recompute: boolean;
  /** seed of the LoRA A initialisation and the dropout masks */
  seed: number;
  /** frozen weights whose float32 size is at most this are widened once (default 512 MiB) */
  residentBytes?: number;
}

/** One tensor: frozen (value or quantized bytes) or trainable (value, grad, Adam moments). */
export class Param {
  value?: Buf;
  grad?: Buf;
  m?: Buf;
  v?: Buf;
  /** frozen and not widened: the GGUF bytes */
  q?: { type: GgmlType; bytes: Uint8Array; rowBytes: number };
  constructor(
    /** GGUF name (LoRA pairs: the base name + ".lora_a" / ".lora_b") */
    readonly name: string,
    readonly rows: number,
    readonly cols: number,
    readonly nMat: number,
    readonly trainable: boolean,
    /** AdamW weight decay applies (not to norms) */
    readonly decay: boolean,
  ) {}
  get size(): number {
    return this.rows * this.cols * this.nMat;
  }
}

export interface LoraPair {
  A: Param;
  B: Param;
  scale: number;
  dropout: number;
  target: LoraTarget;
}

/** A linear layer y = x·Wᵀ (+ s·(drop(x)·Aᵀ)·Bᵀ). */
export interface Linear {
  w: Param;
  lora?: LoraPair;
  /** index for dropout seeds */
  id: number;
}

export interface TrainLayer {
  attnNorm: Param;
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  ffnNorm: Param;
  router?: Linear;
  w1: Linear;
  w3: Linear;
  w2: Linear;
}

/** What one layer's forward pass keeps for its backward pass. */
interface LayerTape {
  x: Buf;
  rstd1: Float32Array;
  h: Buf;
  q: Buf;
  k: Buf;
  v: Buf;
  qt: LinTape;
  kt: LinTape;
  vt: LinTape;
  P: Buf;
  att: Buf;
  ot: LinTape;
  x2: Buf;
  rstd2: Float32Array;
  h2: Buf;
  rt?: LinTape;
  probs?: Float32Array;
  experts?: Int32Array;
  weights?: Float32Array;
  /** per expert (dense: one) */
  ex: ExpertTape[];
}

interface ExpertTape {
  e: number;
  /** token index per row */
  rows: Int32Array;
  /** top-k slot per row (weights[t*k + slot]) */
  slots: Int32Array;
  X: Buf;
  g: Buf;
  u: Buf;
  act: Buf;
  y: Buf;
  t1: LinTape;
  t3: LinTape;
  t2: LinTape;
}

interface LinTape {
  x: Buf;
  xOff: number;
  T: number;
  /** dropped-out input of the LoRA path (x itself without dropout) */
  xd?: Buf;
  xdOff?: number;
  /** s·(xd·Aᵀ) [T, r] */
  us?: Buf;
  seed: number;
}

export interface StepResult {
  /** summed cross-entropy over the targets (nats) */
  lossSum: number;
  nTargets: number;
  /** the load-balancing loss of this sequence (before the coefficient) */
  aux: number;
  /** tokens routed to each expert, all layers ([nExpert]) */
  expertCounts: Float64Array;
}

export class TrainModel {
  readonly params: Param[] = [];
  readonly layers: TrainLayer[] = [];
  tokEmb!: Param;
  outNorm!: Param;
  output!: Param;
  private linId = 0;
  private slots: { key: string; buf: Buf }[] = [];
  private slotSize = 0;
  private rope: { cos: Float32Array; sin: Float32Array } | undefined;
  private ropeLen = 0;

  private constructor(readonly cfg: ModelConfig, readonly mem: TrainMemory, readonly setup: TrainSetup, readonly tied: boolean) {}

  /** Build from a GGUF base: trainable tensors widened into the training memory, LoRA pairs initialised as PEFT does. */
  static fromGguf(r: GgufReader, mem: TrainMemory, setup: TrainSetup): TrainModel {
    const file = basename(r.path);
    const cfg = configFromGguf(r.metadata, file);
    const tied = !r.tensor("output.weight");
    const m = new TrainModel(cfg, mem, setup, tied);
    m.build(r, file);
    return m;
  }

  private full(part: FullTarget): boolean {
    return this.setup.full.includes(part);
  }

  private build(r: GgufReader, file: string): void {
    const { cfg, setup } = this;
    if (setup.loraTargets.length > 0 && !(setup.loraRank > 0)) throw new ArgumentError(`--lora-rank must be positive when LoRA targets are given (got ${setup.loraRank})`);
    // decide what is resident
    let frozenF32 = 0;
    const pending: { p: Param; t: ReturnType<GgufReader["tensor"]> & object }[] = [];
    const tensor = (name: string, rows: number, cols: number, nMat: number, trainable: boolean, decay: boolean): Param => {
      const t = r.tensor(name);
      if (!t) throw new ModelError(`${file}: tensor "${name}" is missing`);
      const want = nMat > 1 ? [cols, rows, nMat] : rows === 1 ? [cols] : [cols, rows];
      const ok = t.dims.length >= want.length && want.every((d, i) => t.dims[i] === d) && t.dims.slice(want.length).every((d) => d === 1);
      if (!ok) throw new ModelError(`${file}: tensor "${name}" has shape [${t.dims.join(", ")}], expected [${want.join(", ")}]`);
      if (!isSupported(t.type)) throw new ModelError(`${file}: tensor "${name}" has type ${typeName(t.type)}, which this build cannot compute with`);
      const p = new Param(name, rows, cols, nMat, trainable, decay);
      if (!trainable) frozenF32 += p.size * 4;
      pending.push({ p, t });
      this.params.push(p);
      return p;
    };
    const linear = (name: string, rows: number, cols: number, nMat: number, fullPart: FullTarget, target: LoraTarget): Linear => {
      const w = tensor(name, rows, cols, nMat, this.full(fullPart), true);
      const lin: Linear = { w, id: this.linId++ };
      if (setup.loraTargets.includes(target)) {
        const rank = setup.loraRank;
        const A = new Param(`${name}.lora_a`, rank, cols, nMat, true, true);
        const B = new Param(`${name}.lora_b`, rows, rank, nMat, true, true);
        this.params.push(A, B);
        lin.lora = { A, B, scale: setup.loraAlpha / rank, dropout: setup.loraDropout, target };
      }
      return lin;
    };
    const { nEmbd: d, nVocab: V, nFf: F, headDim, nHead, nHeadKv, nExpert: E } = cfg;
    this.tokEmb = tensor("token_embd.weight", V, d, 1, this.full("embed"), true);
    for (let l = 0; l < cfg.nLayer; l++) {
      const p = `blk.${l}.`;
      const layer: TrainLayer = {
        attnNorm: tensor(p + "attn_norm.weight", 1, d, 1, this.full("norm"), false),
        q: linear(p + "attn_q.weight", nHead * headDim, d, 1, "attn", "q_proj"),
        k: linear(p + "attn_k.weight", nHeadKv * headDim, d, 1, "attn", "k_proj"),
        v: linear(p + "attn_v.weight", nHeadKv * headDim, d, 1, "attn", "v_proj"),
        o: linear(p + "attn_output.weight", d, nHead * headDim, 1, "attn", "o_proj"),
        ffnNorm: tensor(p + "ffn_norm.weight", 1, d, 1, this.full("norm"), false),
        ...(E > 0
          ? {
              router: linear(p + "ffn_gate_inp.weight", E, d, 1, "router", "gate"),
              w1: linear(p + "ffn_gate_exps.weight", F, d, E, "ffn", "w1"),
              w3: linear(p + "ffn_up_exps.weight", F, d, E, "ffn", "w3"),
              w2: linear(p + "ffn_down_exps.weight", d, F, E, "ffn", "w2"),
            }
          : {
              w1: linear(p + "ffn_gate.weight", F, d, 1, "ffn", "w1"),
              w3: linear(p + "ffn_up.weight", F, d, 1, "ffn", "w3"),
              w2: linear(p + "ffn_down.weight", d, F, 1, "ffn", "w2"),
            }),
      };
      this.layers.push(layer);
    }
    this.outNorm = tensor("output_norm.weight", 1, d, 1, this.full("norm"), false);
    this.output = this.tied ? this.tokEmb : tensor("output.weight", V, d, 1, this.full("lm_head"), true);
    if (this.tied && this.full("lm_head") && !this.tokEmb.trainable) {
      throw new ArgumentError(`${file} has no output.weight (the LM head is the embedding): train embed and lm_head together`);
    }

    const resident = frozenF32 <= (setup.residentBytes ?? 512 * 2 ** 20);
    let maxMat = 0;
    for (const { p, t } of pending) {
      const raw = r.readTensorBytes(t);
      if (p.trainable || resident) {
        p.value = this.mem.alloc(p.size);
        dequantize(t.type, raw, 0, p.value.f, 0, p.size);
      } else {
        p.q = { type: t.type, bytes: raw, rowBytes: t.nBytes / (p.rows * p.nMat) };
        maxMat = Math.max(maxMat, p.rows * p.cols);
      }
    }
    if (maxMat > 0) {
      this.slotSize = maxMat;
      for (let i = 0; i < 4; i++) this.slots.push({ key: "", buf: this.mem.alloc(maxMat) });
    }
    // LoRA: A ~ U(-1/sqrt(in), 1/sqrt(in)) (PEFT's kaiming_uniform with a = sqrt(5)), B = 0
    for (const p of this.params) {
      if (p.name.endsWith(".lora_a")) {
        p.value = this.mem.alloc(p.size);
        const bound = 1 / Math.sqrt(p.cols), seed = mixSeed(setup.seed, 0xa11ce, this.params.indexOf(p));
        for (let i = 0; i < p.size; i++) p.value.f[i] = (hashUniform(seed, i) * 2 - 1) * bound;
      } else if (p.name.endsWith(".lora_b")) {
        p.value = this.mem.zeros(p.size);
      }
    }
    for (const p of this.params) {
      if (!p.trainable) continue;
      p.grad = this.mem.zeros(p.size);
      p.m = this.mem.zeros(p.size);
      p.v = this.mem.zeros(p.size);
    }
  }

  /** Trainable parameters. */
  trainable(): Param[] {
    return this.params.filter((p) => p.trainable);
  }

  /** Matrix `mat` of a parameter as float32: [buffer, element offset]. */
  private mat(p: Param, mat: number): [Buf, number] {
    if (p.value) return [p.value, mat * p.rows * p.cols];
    const key = `${p.name}#${mat}`;
    const i = this.slots.findIndex((s) => s.key === key);
    if (i >= 0) {
      const s = this.slots.splice(i, 1)[0]!;
      this.slots.push(s);
      return [s.buf, 0];
    }
    const s = this.slots.shift()!;
    const q = p.q!;
    dequantize(q.type, q.bytes, mat * p.rows * q.rowBytes, s.buf.f, 0, p.rows * p.cols);
    s.key = key;
    this.slots.push(s);
    return [s.buf, 0];
  }

  private ropeFor(T: number): { cos: Float32Array; sin: Float32Array } {
    if (!this.rope || this.ropeLen < T) {
      this.rope = ropeTables(this.cfg.nRot, this.cfg.ropeTheta, this.cfg.ropeScale, T);
      this.ropeLen = T;
    }
    return this.rope;
  }

  // ---- linear layers ----

  private linF(l: Linear, e: number, x: Buf, xOff: number, T: number, y: Buf, seed: number): LinTape {
    const { rows: out, cols: inp } = l.w;
    const [W, wo] = this.mat(l.w, e);
    this.mem.gemmNT(x, xOff, inp, W, wo, inp, y, 0, out, T, out, inp, false);
    const tape: LinTape = { x, xOff, T, seed };
    const lo = l.lora;
    if (lo) {
      const r = lo.A.rows;
      let xd = x, xdOff = xOff;
      if (lo.dropout > 0) {
        xd = this.mem.alloc(T * inp);
        xdOff = 0;
        const keep = 1 / (1 - lo.dropout);
        for (let i = 0; i < T * inp; i++) xd.f[i] = hashUniform(seed, i) < lo.dropout ? 0 : x.f[xOff + i]! * keep;
      }
      const us = this.mem.alloc(T * r);
      this.mem.gemmNT(xd, xdOff, inp, lo.A.value!, e * r * inp, inp, us, 0, r, T, r, inp, false);
      for (let i = 0; i < T * r; i++) us.f[i] = us.f[i]! * lo.scale;
      this.mem.gemmNT(us, 0, r, lo.B.value!, e * out * r, r, y, 0, out, T, out, r, true);
      tape.xd = xd;
      tape.xdOff = xdOff;
      tape.us = us;
    }
    return tape;
  }

  /** Gradients of a linear layer; dx (when given) accumulates ∂/∂x. */
  private linB(l: Linear, e: number, t: LinTape, dy: Buf, dx: Buf | undefined, dxOff: number): void {
    const { rows: out, cols: inp } = l.w;
    const T = t.T, mem = this.mem;
    if (dx) {
      const [W, wo] = this.mat(l.w, e);
      mem.gemmNN(dy, 0, out, 1, W, wo, inp, dx, dxOff, inp, T, inp, out, true);
    }
    if (l.w.trainable) mem.gemmNN(dy, 0, 1, out, t.x, t.xOff, inp, l.w.grad!, e * out * inp, inp, out, inp, T, true);
    const lo = l.lora;
    if (lo) {
      const r = lo.A.rows;
      const xdOff = t.xdOff!;
      // dB += dyᵀ·us
      mem.gemmNN(dy, 0, 1, out, t.us!, 0, r, lo.B.grad!, e * out * r, r, out, r, T, true);
      // g = s·dy·B [T, r]
      const g = mem.alloc(T * r);
      mem.gemmNN(dy, 0, out, 1, lo.B.value!, e * out * r, r, g, 0, r, T, r, out, false);
      for (let i = 0; i < T * r; i++) g.f[i] = g.f[i]! * lo.scale;
      // dA += gᵀ·xd
      mem.gemmNN(g, 0, 1, r, t.xd!, xdOff, inp, lo.A.grad!, e * r * inp, inp, r, inp, T, true);
      if (dx) {
        if (lo.dropout > 0) {
          const tmp = mem.alloc(T * inp);
          mem.gemmNN(g, 0, r, 1, lo.A.value!, e * r * inp, inp, tmp, 0, inp, T, inp, r, false);
          const keep = 1 / (1 - lo.dropout);
          for (let i = 0; i < T * inp; i++) {
            if (hashUniform(t.seed, i) >= lo.dropout) dx.f[dxOff + i] = dx.f[dxOff + i]! + tmp.f[i]! * keep;
          }
        } else {
          mem.gemmNN(g, 0, r, 1, lo.A.value!, e * r * inp, inp, dx, dxOff, inp, T, inp, r, true);
        }
      }
    }
  }

  // ---- one layer ----

  private layerForward(li: number, x: Buf, T: number, xOut: Buf, seed: number, counts: Float64Array | undefined): LayerTape {
    const { cfg, mem } = this;
    const L = this.layers[li]!;
    const d = cfg.nEmbd, hd = cfg.headDim, nH = cfg.nHead, nKV = cfg.nHeadKv, qDim = nH * hd, kvDim = nKV * hd;
    const rstd1 = new Float32Array(T);
    const h = mem.alloc(T * d);
    const [an, ano] = this.mat(L.attnNorm, 0);
    rmsNormForward(x.f, 0, an.f, ano, h.f, 0, rstd1, T, d, cfg.rmsEps);
    const q = mem.alloc(T * qDim), k = mem.alloc(T * kvDim), v = mem.alloc(T * kvDim);
    const qt = this.linF(L.q, 0, h, 0, T, q, mixSeed(seed, li, L.q.id));
    const kt = this.linF(L.k, 0, h, 0, T, k, mixSeed(seed, li, L.k.id));
    const vt = this.linF(L.v, 0, h, 0, T, v, mixSeed(seed, li, L.v.id));
    const tab = this.ropeFor(T);
    rope(q.f, 0, T, nH, hd, cfg.nRot, tab, false);
    rope(k.f, 0, T, nKV, hd, cfg.nRot, tab, false);
    // attention per head: P = softmax(q·kᵀ/sqrt(hd)) (causal), att = P·v
    const P = mem.alloc(nH * T * T), att = mem.alloc(T * qDim);
    const scale = 1 / Math.sqrt(hd), grp = nH / nKV;
    for (let hh = 0; hh < nH; hh++) {
      const g = Math.floor(hh / grp);
      mem.gemmNT(q, hh * hd, qDim, k, g * hd, kvDim, P, hh * T * T, T, T, T, hd, false);
      causalSoftmax(P.f.subarray(hh * T * T, (hh + 1) * T * T), T, scale);
      mem.gemmNN(P, hh * T * T, T, 1, v, g * hd, kvDim, att, hh * hd, qDim, T, hd, T, false);
    }
    const x2 = mem.alloc(T * d);
    const ot = this.linF(L.o, 0, att, 0, T, x2, mixSeed(seed, li, L.o.id));
    for (let i = 0; i < T * d; i++) x2.f[i] = x2.f[i]! + x.f[i]!;
    const rstd2 = new Float32Array(T);
    const h2 = mem.alloc(T * d);
    const [fn, fno] = this.mat(L.ffnNorm, 0);
    rmsNormForward(x2.f, 0, fn.f, fno, h2.f, 0, rstd2, T, d, cfg.rmsEps);
    const tape: LayerTape = { x, rstd1, h, q, k, v, qt, kt, vt, P, att, ot, x2, rstd2, h2, ex: [] };
    xOut.f.set(x2.f.subarray(0, T * d));
    if (L.router) {
      const E = cfg.nExpert, K = cfg.nExpertUsed;
      const logits = mem.alloc(T * E);
      tape.rt = this.linF(L.router, 0, h2, 0, T, logits, mixSeed(seed, li, L.router.id));
      const rt = route(logits.f, T, E, K);
      tape.probs = rt.probs;
      tape.experts = rt.experts;
      tape.weights = rt.weights;
      for (let e = 0; e < E; e++) {
        const rows: number[] = [], slots: number[] = [];
        for (let t = 0; t < T; t++) {
          for (let s = 0; s < K; s++) if (rt.experts[t * K + s] === e) { rows.push(t); slots.push(s); }
        }
        if (counts) counts[e]! += rows.length;
        if (rows.length === 0) continue;
        const ex = this.expertForward(li, e, Int32Array.from(rows), Int32Array.from(slots), h2, seed);
        tape.ex.push(ex);
        for (let i = 0; i < ex.rows.length; i++) {
          const t = ex.rows[i]!, w = rt.weights[t * K + ex.slots[i]!]!;
          const yo = i * d, xo = t * d;
          for (let j = 0; j < d; j++) xOut.f[xo + j] = xOut.f[xo + j]! + w * ex.y.f[yo + j]!;
        }
      }
    } else {
      const rows = Int32Array.from({ length: T }, (_, i) => i);
      const ex = this.expertForward(li, 0, rows, new Int32Array(T), h2, seed);
      tape.ex.push(ex);
      for (let i = 0; i < T * d; i++) xOut.f[i] = xOut.f[i]! + ex.y.f[i]!;
    }
    return tape;
  }

  private expertForward(li: number, e: number, rows: Int32Array, slots: Int32Array, h2: Buf, seed: number): ExpertTape {
    const { cfg, mem } = this;
    const L = this.layers[li]!;
    const d = cfg.nEmbd, F = cfg.nFf, n = rows.length;
    const X = mem.alloc(n * d);
    for (let i = 0; i < n; i++) X.f.set(h2.f.subarray(rows[i]! * d, rows[i]! * d + d), i * d);
    const g = mem.alloc(n * F), u = mem.alloc(n * F), act = mem.alloc(n * F), y = mem.alloc(n * d);
    const t1 = this.linF(L.w1, e, X, 0, n, g, mixSeed(seed, li, L.w1.id, e));
    const t3 = this.linF(L.w3, e, X, 0, n, u, mixSeed(seed, li, L.w3.id, e));
    swigluForward(g.f, u.f, act.f, n * F);
    const t2 = this.linF(L.w2, e, act, 0, n, y, mixSeed(seed, li, L.w2.id, e));
    return { e, rows, slots, X, g, u, act, y, t1, t3, t2 };
  }

  /**
   * Backward through one layer: dOut is ∂loss/∂(layer output); writes ∂loss/∂(layer input) into
   * dIn (when given). auxGrad[e] is ∂loss/∂(router probability of expert e), the same for every token.
   */
  private layerBackward(li: number, tp: LayerTape, T: number, dOut: Buf, dIn: Buf | undefined, auxGrad: Float64Array | undefined): void {
    const { cfg, mem } = this;
    const L = this.layers[li]!;
    const d = cfg.nEmbd, hd = cfg.headDim, nH = cfg.nHead, nKV = cfg.nHeadKv, qDim = nH * hd, kvDim = nKV * hd, F = cfg.nFf;
    // ---- FFN / MoE ----
    const dh2 = mem.zeros(T * d);
    const K = cfg.nExpertUsed;
    const dw = L.router ? new Float64Array(T * K) : undefined;
    for (const ex of tp.ex) {
      const n = ex.rows.length;
      const dy = mem.alloc(n * d);
      for (let i = 0; i < n; i++) {
        const t = ex.rows[i]!;
        const w = L.router ? tp.weights![t * K + ex.slots[i]!]! : 1;
        let dot = 0;
        for (let j = 0; j < d; j++) {
          const go = dOut.f[t * d + j]!;
          dy.f[i * d + j] = w * go;
          dot += go * ex.y.f[i * d + j]!;
        }
        if (dw) dw[t * K + ex.slots[i]!] = dot;
      }
      const dact = mem.zeros(n * F);
      this.linB(L.w2, ex.e, ex.t2, dy, dact, 0);
      const dg = mem.alloc(n * F), du = mem.alloc(n * F);
      swigluBackward(ex.g.f, ex.u.f, dact.f, dg.f, du.f, n * F);
      const dX = mem.zeros(n * d);
      this.linB(L.w1, ex.e, ex.t1, dg, dX, 0);
      this.linB(L.w3, ex.e, ex.t3, du, dX, 0);
      for (let i = 0; i < n; i++) {
        const o = ex.rows[i]! * d;
        for (let j = 0; j < d; j++) dh2.f[o + j] = dh2.f[o + j]! + dX.f[i * d + j]!;
      }
    }
    if (L.router) {
      const E = cfg.nExpert;
      const dl = mem.zeros(T * E);
      for (let t = 0; t < T; t++) {
        // renormalised top-k weights w_i = p_i / Σ_topk p_j: ∂/∂logit_i = w_i·(dw_i − Σ_j w_j·dw_j) on the top-k
        let s = 0;
        for (let j = 0; j < K; j++) s += tp.weights![t * K + j]! * dw![t * K + j]!;
        for (let j = 0; j < K; j++) {
          const e = tp.experts![t * K + j]!;
          dl.f[t * E + e] = dl.f[t * E + e]! + tp.weights![t * K + j]! * (dw![t * K + j]! - s);
        }
        if (auxGrad) {
          // load balancing: ∂/∂p_e = auxGrad[e], through the full softmax
          let sp = 0;
          for (let e = 0; e < E; e++) sp += tp.probs![t * E + e]! * auxGrad[e]!;
          for (let e = 0; e < E; e++) dl.f[t * E + e] = dl.f[t * E + e]! + tp.probs![t * E + e]! * (auxGrad[e]! - sp);
        }
      }
      this.linB(L.router, 0, tp.rt!, dl, dh2, 0);
    }
    // through ffn_norm, plus the residual
    const dx2 = mem.alloc(T * d);
    dx2.f.set(dOut.f.subarray(0, T * d));
    const [fn, fno] = this.mat(L.ffnNorm, 0);
    rmsNormBackward(tp.x2.f, 0, fn.f, fno, tp.rstd2, dh2.f, 0, dx2.f, 0, L.ffnNorm.grad?.f, 0, T, d, true);
    // ---- attention ----
    const datt = mem.zeros(T * qDim);
    this.linB(L.o, 0, tp.ot, dx2, datt, 0);
    const dq = mem.alloc(T * qDim), dk = mem.zeros(T * kvDim), dv = mem.zeros(T * kvDim);
    const dP = mem.alloc(T * T);
    const scale = 1 / Math.sqrt(hd), grp = nH / nKV;
    for (let hh = 0; hh < nH; hh++) {
      const g = Math.floor(hh / grp), po = hh * T * T;
      // dP = datt_h·v_gᵀ; dv_g += Pᵀ·datt_h
      mem.gemmNT(datt, hh * hd, qDim, tp.v, g * hd, kvDim, dP, 0, T, T, T, hd, false);
      mem.gemmNN(tp.P, po, 1, T, datt, hh * hd, qDim, dv, g * hd, kvDim, T, hd, T, true);
      causalSoftmaxBackward(tp.P.f.subarray(po, po + T * T), dP.f, T, scale);
      // dq_h = dS·k_g; dk_g += dSᵀ·q_h
      mem.gemmNN(dP, 0, T, 1, tp.k, g * hd, kvDim, dq, hh * hd, qDim, T, hd, T, false);
      mem.gemmNN(dP, 0, 1, T, tp.q, hh * hd, qDim, dk, g * hd, kvDim, T, hd, T, true);
    }
    const tab = this.ropeFor(T);
    rope(dq.f, 0, T, nH, hd, cfg.nRot, tab, true);
    rope(dk.f, 0, T, nKV, hd, cfg.nRot, tab, true);
    const dh = mem.zeros(T * d);
    this.linB(L.q, 0, tp.qt, dq, dh, 0);
    this.linB(L.k, 0, tp.kt, dk, dh, 0);
    this.linB(L.v, 0, tp.vt, dv, dh, 0);
    if (dIn) {
      dIn.f.set(dx2.f.subarray(0, T * d));
      const [an, ano] = this.mat(L.attnNorm, 0);
      rmsNormBackward(tp.x.f, 0, an.f, ano, tp.rstd1, dh.f, 0, dIn.f, 0, L.attnNorm.grad?.f, 0, T, d, true);
    } else if (L.attnNorm.trainable) {
      const scratch = mem.alloc(T * d);
      const [an, ano] = this.mat(L.attnNorm, 0);
      rmsNormBackward(tp.x.f, 0, an.f, ano, tp.rstd1, dh.f, 0, scratch.f, 0, L.attnNorm.grad!.f, 0, T, d, false);
    }
  }

  /** The embedding rows of the tokens, [T, nEmbd] in the training memory. */
  private embed(tokens: ArrayLike<number>): Buf {
    const d = this.cfg.nEmbd, p = this.tokEmb;
    const x = this.mem.alloc(tokens.length * d);
    for (let t = 0; t < tokens.length; t++) {
      if (p.value) x.f.set(p.value.f.subarray(tokens[t]! * d, tokens[t]! * d + d), t * d);
      else dequantize(p.q!.type, p.q!.bytes, tokens[t]! * p.q!.rowBytes, x.f, t * d, d);
    }
    return x;
  }

  /** Whether any parameter at or below layer li (or the embedding) needs gradients through layer li's input. */
  private needsInputGrad(li: number): boolean {
    if (this.tokEmb.trainable) return true;
    for (let l = 0; l < li; l++) {
      const L = this.layers[l]!;
      for (const lin of [L.q, L.k, L.v, L.o, L.router, L.w1, L.w2, L.w3]) if (lin && (lin.w.trainable || lin.lora)) return true;
      if (L.attnNorm.trainable || L.ffnNorm.trainable) return true;
    }
    return false;
  }

  /**
   * Forward and backward over one sequence: tokens[t] predicts targets[t] (−1: not scored).
   * Adds to the parameters' grads the gradient of ceScale·Σ cross-entropy + auxScale·auxCoef·aux
   * (stepMean gives the scales of one sequence's mean loss). `seed` fixes the dropout masks (the
   * same seed gives the same step, which resuming relies on).
   */
  step(tokens: ArrayLike<number>, targets: ArrayLike<number>, scales: { ceScale: number; auxScale: number }, seed: number): StepResult {
    const { ceScale, auxScale } = scales;
    const { cfg, mem, setup } = this;
    const T = tokens.length, d = cfg.nEmbd, V = cfg.nVocab;
    if (targets.length !== T) throw new ArgumentError(`step: ${T} tokens but ${targets.length} targets`);
    for (let t = 0; t < T; t++) {
      const id = tokens[t]!;
      if (!(id >= 0 && id < V)) throw new ArgumentError(`token id ${id} at position ${t} is outside the vocabulary (${V})`);
    }
    let nTargets = 0;
    for (let t = 0; t < T; t++) if (targets[t]! >= 0) nTargets++;
    const mark0 = mem.mark();
    try {
      // embedding
      const xs: Buf[] = [];
      let x = this.embed(tokens);
      const E = cfg.nExpert;
      const counts = new Float64Array(Math.max(E, 1));
      const probSum = new Float64Array(Math.max(E, 1));
      const tapes: (LayerTape | undefined)[] = [];
      for (let l = 0; l < cfg.nLayer; l++) {
        xs.push(x);
        const next = mem.alloc(T * d);
        const mark = mem.mark();
        const tape = this.layerForward(l, x, T, next, seed, counts);
        if (tape.probs) for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) probSum[e]! += tape.probs[t * E + e]!;
        if (setup.recompute) {
          mem.reset(mark);
          tapes.push(undefined);
        } else tapes.push(tape);
        x = next;
      }
      // final norm and LM head, in chunks of tokens
      const rstdN = new Float32Array(T);
      const hN = mem.alloc(T * d);
      const [onw, onwo] = this.mat(this.outNorm, 0);
      rmsNormForward(x.f, 0, onw.f, onwo, hN.f, 0, rstdN, T, d, cfg.rmsEps);
      const dhN = mem.alloc(T * d);
      const chunk = Math.max(1, Math.min(T, Math.floor((32 << 20) / (4 * V))));
      const logits = mem.alloc(chunk * V);
      let lossSum = 0;
      const out = this.output;
      for (let t0 = 0; t0 < T; t0 += chunk) {
        const n = Math.min(chunk, T - t0);
        const [W, wo] = this.mat(out, 0);
        mem.gemmNT(hN, t0 * d, d, W, wo, d, logits, 0, V, n, V, d, false);
        lossSum += crossEntropyRows(logits.f, n, V, targets, t0, ceScale);
        const [W2, wo2] = this.mat(out, 0);
        mem.gemmNN(logits, 0, V, 1, W2, wo2, d, dhN, t0 * d, d, n, d, V, false);
        if (out.trainable) mem.gemmNN(logits, 0, 1, V, hN, t0 * d, d, out.grad!, 0, d, V, d, n, true);
      }
      let dx = mem.alloc(T * d);
      rmsNormBackward(x.f, 0, onw.f, onwo, rstdN, dhN.f, 0, dx.f, 0, this.outNorm.grad?.f, 0, T, d, false);
      // load balancing (HF Mixtral): aux = E·Σ_e f_e·P̄_e over all layers' tokens
      let aux = 0;
      let auxGrad: Float64Array | undefined;
      if (E > 0) {
        const rowsAll = cfg.nLayer * T;
        for (let e = 0; e < E; e++) aux += (counts[e]! / rowsAll) * (probSum[e]! / rowsAll);
        aux *= E;
        if (setup.auxCoef > 0) {
          auxGrad = new Float64Array(E);
          for (let e = 0; e < E; e++) auxGrad[e] = (auxScale * setup.auxCoef * E * (counts[e]! / rowsAll)) / rowsAll;
        }
      }
      // layers, last to first
      let dPrev = mem.alloc(T * d);
      for (let l = cfg.nLayer - 1; l >= 0; l--) {
        const mark = mem.mark();
        const tape = tapes[l] ?? this.layerForward(l, xs[l]!, T, mem.alloc(T * d), seed, undefined);
        const needIn = l > 0 ? this.needsInputGrad(l) : this.tokEmb.trainable;
        this.layerBackward(l, tape, T, dx, needIn ? dPrev : undefined, auxGrad);
        if (!needIn) {
          // nothing below needs gradients, but layers below may still have trainable norms: none do (needsInputGrad checked them)
          mem.reset(mark);
          break;
        }
        mem.reset(mark);
        [dx, dPrev] = [dPrev, dx];
        tapes[l] = undefined;
      }
      if (this.tokEmb.trainable) {
        const g = this.tokEmb.grad!.f;
        for (let t = 0; t < T; t++) {
          const o = tokens[t]! * d;
          for (let j = 0; j < d; j++) g[o + j] = g[o + j]! + dx.f[t * d + j]!;
        }
      }
      return { lossSum, nTargets, aux, expertCounts: counts };
    } finally {
      mem.reset(mark0);
    }
  }

  /** step() for one sequence's mean loss times `scale`. */
  stepMean(tokens: ArrayLike<number>, targets: ArrayLike<number>, scale: number, seed: number): StepResult {
    let n = 0;
    for (let t = 0; t < targets.length; t++) if (targets[t]! >= 0) n++;
    return this.step(tokens, targets, { ceScale: n > 0 ? scale / n : 0, auxScale: scale }, seed);
  }

  /** Mean cross-entropy of a sequence without gradients (evaluation). */
  evalLoss(tokens: ArrayLike<number>, targets: ArrayLike<number>): { lossSum: number; nTargets: number } {
    const { cfg, mem } = this;
    const T = tokens.length, d = cfg.nEmbd, V = cfg.nVocab;
    const mark0 = mem.mark();
    try {
      let x = this.embed(tokens);
      for (let l = 0; l < cfg.nLayer; l++) {
        const next = mem.alloc(T * d);
        const mark = mem.mark();
        this.layerForward(l, x, T, next, 0, undefined);
        mem.reset(mark);
        x = next;
      }
      const rstdN = new Float32Array(T);
      const hN = mem.alloc(T * d);
      const [onw, onwo] = this.mat(this.outNorm, 0);
      rmsNormForward(x.f, 0, onw.f, onwo, hN.f, 0, rstdN, T, d, cfg.rmsEps);
      const chunk = Math.max(1, Math.min(T, Math.floor((32 << 20) / (4 * V))));
      const logits = mem.alloc(chunk * V);
      let lossSum = 0, nTargets = 0;
      for (let t0 = 0; t0 < T; t0 += chunk) {
        const n = Math.min(chunk, T - t0);
        const [W, wo] = this.mat(this.output, 0);
        mem.gemmNT(hN, t0 * d, d, W, wo, d, logits, 0, V, n, V, d, false);
        lossSum += crossEntropyRows(logits.f, n, V, targets, t0, 0);
      }
      for (let t = 0; t < T; t++) if (targets[t]! >= 0) nTargets++;
      return { lossSum, nTargets };
    } finally {
      mem.reset(mark0);
    }
  }

  /** Set every gradient to zero. */
  zeroGrad(): void {
    for (const p of this.params) p.grad?.zero();
  }
}
