/**
 * Merging a PEFT LoRA adapter into a base model: W' = W + s·B·A in float32 (s = alpha / r),
 * modules_to_save tensors replacing the base's. The base is a Hugging Face folder or a GGUF; the
 * output a GGUF (OUT ending in .gguf) or a Hugging Face folder.
 *
 * Deltas are applied in Hugging Face layout, before the GGUF writer permutes q/k rows for RoPE,
 * so a GGUF base (whose q/k rows are read back in HF order) and an HF base give the same file.
 *
 * applyLoraToWeights does the same to a model already in memory (merge at load time): each
 * changed matrix is dequantized, changed and quantized back to its own type. That is how
 * `--lora` on run/chat can be built without writing a file.
 */
import { ArgumentError, ModelError, UnsupportedError } from "../errors.js";
import type { HfTensor, ModelSource } from "../convert/source.js";
import { openModel } from "../convert/source.js";
import { writeGgufModel, type GgufOutType, type TensorTransform } from "../convert/write-gguf.js";
import { writeHfFolder, type HfDtype } from "../convert/write-hf.js";
import { permuteRopeRows } from "../convert/permute.js";
import { hfShape, type ParsedName } from "../io/tensor-names.js";
import type { ModelConfig } from "../model/config.js";
import type { ModelWeights } from "../model/weights.js";
import { plainMatrix, writePlainMatrix, type Weight } from "../kernels/js/matmul.js";
import { dequantize, quantizeWeights } from "../quant/index.js";
import { checkAdapter, loadLoraAdapter, type LoraAdapter, type LoraPair } from "./adapter.js";

/**
 * x += s·B·A for one pair, x in HF layout ([out, in] for linear layers, [vocab, dim] for
 * embeddings). Products are summed in float64 and rounded once; zero deltas leave x's bits alone.
 */
export function addLoraDelta(pair: Pick<LoraPair, "kind" | "scale" | "rank">, x: Float32Array, A: Float32Array, B: Float32Array, nOut: number, nIn: number): void {
  const r = pair.rank, s = Math.fround(pair.scale);
  const tmp = new Float64Array(nIn);
  if (pair.kind === "linear") {
    // A [r, nIn], B [nOut, r]
    for (let o = 0; o < nOut; o++) {
      tmp.fill(0);
      for (let k = 0; k < r; k++) {
        const b = B[o * r + k]!;
        if (b === 0) continue;
        const ao = k * nIn;
        for (let i = 0; i < nIn; i++) tmp[i]! += b * A[ao + i]!;
      }
      const xo = o * nIn;
      for (let i = 0; i < nIn; i++) {
        const d = Math.fround(Math.fround(tmp[i]!) * s);
        if (d !== 0) x[xo + i] = x[xo + i]! + d;
      }
    }
  } else {
    // embeddings: x [vocab = nOut, dim = nIn]; A [r, vocab], B [dim, r]; delta = (B·A)^T
    for (let v = 0; v < nOut; v++) {
      tmp.fill(0);
      for (let k = 0; k < r; k++) {
        const a = A[k * nOut + v]!;
        if (a === 0) continue;
        for (let e = 0; e < nIn; e++) tmp[e]! += B[e * r + k]! * a;
      }
      const xo = v * nIn;
      for (let e = 0; e < nIn; e++) {
        const d = Math.fround(Math.fround(tmp[e]!) * s);
        if (d !== 0) x[xo + e] = x[xo + e]! + d;
      }
    }
  }
}

/** The writers' per-tensor hook that applies an adapter (replacements first, then deltas). */
export function loraTransform(a: LoraAdapter): TensorTransform & { applied: Set<string> } {
  const applied = new Set<string>();
  const f = ((t: HfTensor, x: Float32Array) => {
    let y = x;
    const rep = a.replacements.get(t.name);
    if (rep) {
      y = a.read(rep.key);
      applied.add(t.name);
    }
    const pair = a.pairs.get(t.name);
    if (pair) {
      addLoraDelta(pair, y, a.read(pair.aKey), a.read(pair.bKey), t.shape[0]!, t.shape[1]!);
      applied.add(t.name);
    }
    return y;
  }) as TensorTransform & { applied: Set<string> };
  f.applied = applied;
  return f;
}

export interface MergeOptions {
  /** HF folder or GGUF */
  base: string;
  /** PEFT adapter folder */
  lora: string;
  /** OUT.gguf, or a folder for Hugging Face output */
  out: string;
  /** GGUF output type (default f16) */
  outType?: GgufOutType;
  /** HF output dtype (default: the base's) */
  dtype?: HfDtype | "auto";
  maxShardBytes?: number;
  onTensor?: (done: number, total: number, name: string) => void;
}

export interface MergeResult {
  format: "gguf" | "hf";
  pairs: number;
  replaced: number;
  notes: string[];
  config: ModelConfig;
}

export function isGgufPath(p: string): boolean {
  return /\.gguf$/i.test(p);
}

/** Merge an adapter into a base and write the result. Nothing is left at `out` if it fails. */
export function mergeLora(opts: MergeOptions): MergeResult {
  const adapter = loadLoraAdapter(opts.lora);
  let src: ModelSource | undefined;
  try {
    src = openModel(opts.base);
    const s = src;
    checkAdapter(adapter, s.config, s.tied, (n) => s.tensors.get(n)?.shape, opts.base);
    if (!adapter.pairs.size && !adapter.replacements.size) throw new ModelError(`${opts.lora}: the adapter holds no LoRA or modules_to_save tensors`);
    const transform = loraTransform(adapter);
    const format = isGgufPath(opts.out) ? "gguf" : "hf";
    const chat = adapter.chatTemplate !== undefined ? { chatTemplate: adapter.chatTemplate } : {};
    const progress = opts.onTensor ? { onTensor: opts.onTensor } : {};
    if (format === "gguf") {
      writeGgufModel(s, opts.out, { outType: opts.outType ?? "f16", transform, ...chat, ...progress });
    } else {
      writeHfFolder(s, opts.out, {
        dtype: opts.dtype ?? "auto", transform, ...chat, ...progress,
        ...(opts.maxShardBytes !== undefined ? { maxShardBytes: opts.maxShardBytes } : {}),
      });
    }
    const expected = new Set([...adapter.pairs.keys(), ...adapter.replacements.keys()]);
    const missed = [...expected].filter((n) => !transform.applied.has(n));
    if (missed.length) throw new Error(`internal: adapter tensors not applied: ${missed.slice(0, 3).join(", ")}`);
    return { format, pairs: adapter.pairs.size, replaced: adapter.replacements.size, notes: adapter.notes, config: s.config };
  } finally {
    src?.close();
    adapter.close();
  }
}

/** The in-memory weight (and matrix index) that holds an HF tensor. */
export function weightFor(w: ModelWeights, p: ParsedName): { weight?: Weight; mat: number; vector?: Float32Array } {
  const L = p.layer !== undefined ? w.layers[p.layer] : undefined;
  const need = <T>(x: T | undefined): T => {
    if (x === undefined) throw new ModelError(`the model has no tensor for ${p.rule.hf} (layer ${p.layer})`);
    return x;
  };
  switch (p.rule.role) {
    case "embed": return { weight: w.tokenEmbd, mat: 0 };
    case "output":
      if (w.output === w.tokenEmbd) throw new UnsupportedError("the model's output reuses the embeddings (tied); an adapter that changes lm_head cannot be applied in place");
      return { weight: w.output, mat: 0 };
    case "norm": return { vector: w.outputNorm, mat: 0 };
    case "attn_norm": return { vector: need(L).attnNorm, mat: 0 };
    case "ffn_norm": return { vector: need(L).ffnNorm, mat: 0 };
    case "attn_q": return { weight: need(L).wq, mat: 0 };
    case "attn_k": return { weight: need(L).wk, mat: 0 };
    case "attn_v": return { weight: need(L).wv, mat: 0 };
    case "attn_o": return { weight: need(L).wo, mat: 0 };
    case "router": return { weight: need(need(L).gateInp), mat: 0 };
    case "exp_gate": return { weight: need(L).ffnGate, mat: p.expert! };
    case "exp_up": return { weight: need(L).ffnUp, mat: p.expert! };
    case "exp_down": return { weight: need(L).ffnDown, mat: p.expert! };
    case "ffn_gate": return { weight: need(L).ffnGate, mat: 0 };
    case "ffn_up": return { weight: need(L).ffnUp, mat: 0 };
    case "ffn_down": return { weight: need(L).ffnDown, mat: 0 };
  }
}

/**
 * Apply an adapter to weights already loaded (e.g. `loadModel(path).model`): every targeted
 * matrix is dequantized, changed in HF layout (q/k rows permuted back and forth) and quantized
 * back to its own type in place. F32 weights give exactly the merged file's weights; quantized
 * ones are re-quantized (as merging then quantizing would). Returns the HF names changed.
 */
export function applyLoraToWeights(model: { config: ModelConfig; weights: ModelWeights }, adapter: LoraAdapter): string[] {
  const c = model.config;
  checkAdapter(adapter, c, model.weights.output === model.weights.tokenEmbd, (n) => {
    const p = parseTarget(adapter, n);
    return p ? hfShape(p, c) : undefined;
  }, "the model");
  const changed: string[] = [];
  const targets = new Set([...adapter.pairs.keys(), ...adapter.replacements.keys()]);
  for (const name of targets) {
    const pair = adapter.pairs.get(name), rep = adapter.replacements.get(name);
    const p = (pair ?? rep)!.parsed;
    const shape = hfShape(p.rule, c);
    const loc = weightFor(model.weights, p);
    if (loc.vector) {
      let v: Float32Array = loc.vector.slice();
      if (rep) v = adapter.read(rep.key);
      if (pair) throw new UnsupportedError(`${name}: LoRA on a norm vector`);
      loc.vector.set(v);
      changed.push(name);
      continue;
    }
    const w = loc.weight!;
    if (w.matrix) throw new UnsupportedError(`${w.name}: experts loaded on demand cannot be changed in place; load the model fully to apply an adapter`);
    const n = w.nOut * w.nIn;
    let x: Float32Array = new Float32Array(n);
    dequantize(w.type, plainMatrix(w, loc.mat), 0, x, 0, n);
    const nHeads = p.rule.rope === "q" ? c.nHead : p.rule.rope === "k" ? c.nHeadKv : 0;
    if (nHeads) x = permuteRopeRows(x, w.nOut, w.nIn, nHeads, false);
    if (rep) x = adapter.read(rep.key);
    if (pair) addLoraDelta(pair, x, adapter.read(pair.aKey), adapter.read(pair.bKey), shape[0]!, shape[1]!);
    if (nHeads) x = permuteRopeRows(x, w.nOut, w.nIn, nHeads, true);
    const bytes = quantizeWeights(w.type, x, w.nOut, w.nIn);
    if (bytes.length !== w.nOut * w.rowBytes) throw new ArgumentError(`internal: ${w.name} re-quantized to ${bytes.length} bytes, ${w.nOut * w.rowBytes} expected`);
    writePlainMatrix(w, loc.mat, bytes);
    changed.push(name);
  }
  return changed;
}

function parseTarget(a: LoraAdapter, name: string) {
  return (a.pairs.get(name) ?? a.replacements.get(name))?.parsed.rule;
}
