/**
 * Loads a model's tensors from a GGUF file into memory as they are stored (quantized blocks stay
 * quantized), checking every name and shape against the hyperparameters. Mixtral's merged
 * `ffn_*_exps` tensors are used as they are; the older per-expert layout
 * (`blk.N.ffn_gate.E.weight`) is stacked into the merged form; dense llama/Mistral files have one
 * FFN per layer (nMat = 1).
 */
import { basename } from "node:path";
import { ArgumentError, ModelError, UnsupportedError } from "../errors.js";
import { ExpertCache, type ExpertSource } from "./expert-cache.js";
import type { GgufReader } from "../io/gguf/reader.js";
import type { GgufTensorInfo } from "../io/gguf/types.js";
import { GgmlType, typeName } from "../quant/format.js";
import { dequantize, isSupported } from "../quant/index.js";
import { checkFiniteF16 } from "../quant/f16.js";
import { readRow, type Weight } from "../kernels/js/matmul.js";
import { JsBackend, type Backend, type WeightStorage } from "../kernels/backend.js";
import type { ModelConfig } from "./config.js";

export interface LayerWeights {
  attnNorm: Float32Array;
  wq: Weight;
  wk: Weight;
  wv: Weight;
  wo: Weight;
  ffnNorm: Float32Array;
  /** router [nEmbd -> nExpert]; absent for dense models */
  gateInp?: Weight;
  /** expert stacks (nMat = nExpert), or single matrices for dense models */
  ffnGate: Weight;
  ffnUp: Weight;
  ffnDown: Weight;
}

export interface ModelWeights {
  tokenEmbd: Weight;
  outputNorm: Float32Array;
  output: Weight;
  layers: LayerWeights[];
  /** bytes of tensor data held in memory */
  bytes: number;
  /** the on-demand expert cache (--max-memory); it owns the open file */
  experts?: ExpertCache;
}

export interface LoadWeightsOptions {
  /**
   * Keep at most this many bytes of weights in memory: everything but the experts stays resident,
   * experts are read on demand into a bounded cache (the reader must then stay open).
   */
  maxMemory?: number;
}

export function loadWeights(r: GgufReader, cfg: ModelConfig, backend: Backend = new JsBackend(), opts: LoadWeightsOptions = {}): ModelWeights {
  const file = basename(r.path);
  let bytes = 0;
  const need = (name: string): GgufTensorInfo => {
    const t = r.tensor(name);
    if (!t) throw new ModelError(`${file}: tensor "${name}" is missing`);
    return t;
  };
  const checkShape = (t: GgufTensorInfo, dims: number[]) => {
    const same = t.dims.length >= dims.length && dims.every((d, i) => t.dims[i] === d) && t.dims.slice(dims.length).every((d) => d === 1);
    if (!same) {
      throw new ModelError(`${file}: tensor "${t.name}" has shape [${t.dims.join(", ")}], expected [${dims.join(", ")}] for this model's hyperparameters`);
    }
    if (!isSupported(t.type)) {
      throw new UnsupportedError(`${file}: tensor "${t.name}" has type ${typeName(t.type)}, which this build cannot compute with yet`);
    }
  };
  // F16 matrices must be finite: the fast one-token kernel (src/kernels/wasm/native/matmul-f.ts
  // oneF16) converts halves with a shortcut that is exact for finite values only
  const finiteF16 = (name: string, type: GgmlType, data: Uint8Array): void => {
    if (type === GgmlType.F16) checkFiniteF16(data, `${file}: tensor "${name}"`);
  };
  /** the backend's packed layout for a matrix product's weights (not for rows read one at a time) */
  const pack = (w: Weight, st: WeightStorage): Weight => {
    if (!backend.packs?.(w.type, w.nOut)) return w;
    backend.packMatrices!(st, w.type, w.nOut, w.nMat, w.rowBytes);
    return { ...w, packed: true };
  };
  const matrix = (name: string, nIn: number, nOut: number, nMat = 1, packed = true): Weight => {
    const t = need(name);
    checkShape(t, nMat === 1 ? [nIn, nOut] : [nIn, nOut, nMat]);
    const st = backend.allocWeight(t.nBytes);
    r.readTensorBytes(t, 0, t.nBytes, st.data);
    finiteF16(name, t.type, st.data);
    bytes += t.nBytes;
    const w: Weight = { name, type: t.type, nIn, nOut, nMat, rowBytes: t.nBytes / (nOut * nMat), ...st };
    return packed ? pack(w, st) : w;
  };
  const vector = (name: string, n: number): Float32Array => {
    const t = need(name);
    checkShape(t, [n]);
    const raw = r.readTensorBytes(t);
    bytes += n * 4;
    const out = new Float32Array(n);
    dequantize(t.type, raw, 0, out, 0, n);
    return out;
  };
  // --max-memory: where each expert's matrices are in the file, for the on-demand cache
  const onDemand = opts.maxMemory !== undefined && cfg.nExpert > 0;
  const sources: Record<"gate" | "up" | "down", ExpertSource[]>[] = [];
  let cache: ExpertCache | undefined;
  const partOf = (base: string) => (base === "ffn_gate" ? "gate" : base === "ffn_up" ? "up" : "down");
  /** Stack per-expert matrices blk.N.<base>.E.weight into one nMat = nExpert weight. */
  const stacked = (l: number, base: string, nIn: number, nOut: number): Weight => {
    const merged = r.tensor(`blk.${l}.${base}_exps.weight`);
    if (onDemand) {
      const srcs: ExpertSource[] = [];
      let type: GgmlType;
      if (merged) {
        checkShape(merged, [nIn, nOut, cfg.nExpert]);
        const per = merged.nBytes / cfg.nExpert;
        for (let e = 0; e < cfg.nExpert; e++) srcs.push({ tensor: merged, offset: e * per, bytes: per });
        type = merged.type;
      } else {
        for (let e = 0; e < cfg.nExpert; e++) {
          const t = need(`blk.${l}.${base}.${e}.weight`);
          checkShape(t, [nIn, nOut]);
          srcs.push({ tensor: t, offset: 0, bytes: t.nBytes });
        }
        type = srcs[0]!.tensor.type;
      }
      (sources[l] ??= { gate: [], up: [], down: [] })[partOf(base)] = srcs;
      const part = partOf(base);
      // the cache packs what it reads when the backend packs this type (ExpertCache.get)
      return {
        name: `blk.${l}.${base}_exps.weight`, type, nIn, nOut, nMat: cfg.nExpert, rowBytes: srcs[0]!.bytes / nOut,
        data: new Uint8Array(0), matrix: (e: number) => cache!.get(l, e, part), ...(backend.packs?.(type, nOut) ? { packed: true } : {}),
      };
    }
    if (merged) return matrix(merged.name, nIn, nOut, cfg.nExpert);
    const parts: GgufTensorInfo[] = [];
    for (let e = 0; e < cfg.nExpert; e++) {
      const t = r.tensor(`blk.${l}.${base}.${e}.weight`);
      if (!t) throw new ModelError(`${file}: tensor "blk.${l}.${base}_exps.weight" is missing (and so is the per-expert "blk.${l}.${base}.${e}.weight")`);
      checkShape(t, [nIn, nOut]);
      if (t.type !== parts[0]?.type && parts.length) {
        throw new ModelError(`${file}: per-expert tensors of blk.${l}.${base} mix types ${typeName(parts[0]!.type)} and ${typeName(t.type)}`);
      }
      parts.push(t);
    }
    const per = parts[0]!.nBytes;
    const st = backend.allocWeight(per * cfg.nExpert);
    parts.forEach((t, e) => {
      r.readTensorBytes(t, 0, per, st.data.subarray(e * per, (e + 1) * per));
      finiteF16(t.name, t.type, st.data.subarray(e * per, (e + 1) * per));
    });
    bytes += per * cfg.nExpert;
    return pack({ name: `blk.${l}.${base}_exps.weight`, type: parts[0]!.type, nIn, nOut, nMat: cfg.nExpert, rowBytes: per / nOut, ...st }, st);
  };

  const { nEmbd, nVocab, nFf, headDim } = cfg;
  // the token embeddings are read a row at a time (and are the output matrix when it is tied): plain
  const tokenEmbd = matrix("token_embd.weight", nEmbd, nVocab, 1, false);
  const output = r.tensor("output.weight") ? matrix("output.weight", nEmbd, nVocab) : tokenEmbd;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < cfg.nLayer; l++) {
    const p = `blk.${l}.`;
    const lw: LayerWeights = {
      attnNorm: vector(p + "attn_norm.weight", nEmbd),
      wq: matrix(p + "attn_q.weight", nEmbd, cfg.nHead * headDim),
      wk: matrix(p + "attn_k.weight", nEmbd, cfg.nHeadKv * headDim),
      wv: matrix(p + "attn_v.weight", nEmbd, cfg.nHeadKv * headDim),
      wo: matrix(p + "attn_output.weight", cfg.nHead * headDim, nEmbd),
      ffnNorm: vector(p + "ffn_norm.weight", nEmbd),
      ...(cfg.nExpert > 0
        ? {
            gateInp: matrix(p + "ffn_gate_inp.weight", nEmbd, cfg.nExpert),
            ffnGate: stacked(l, "ffn_gate", nEmbd, nFf),
            ffnUp: stacked(l, "ffn_up", nEmbd, nFf),
            ffnDown: stacked(l, "ffn_down", nFf, nEmbd),
          }
        : {
            ffnGate: matrix(p + "ffn_gate.weight", nEmbd, nFf),
            ffnUp: matrix(p + "ffn_up.weight", nEmbd, nFf),
            ffnDown: matrix(p + "ffn_down.weight", nFf, nEmbd),
          }),
    };
    layers.push(lw);
  }
  const outputNorm = vector("output_norm.weight", nEmbd);
  if (onDemand) {
    const perExpert = sources.reduce((m, l) => Math.max(m, l.gate[0]!.bytes + l.up[0]!.bytes + l.down[0]!.bytes), 0);
    const room = opts.maxMemory! - bytes;
    const nSlots = Math.min(cfg.nLayer * cfg.nExpert, Math.floor(room / perExpert));
    if (nSlots < cfg.nExpertUsed) {
      throw new ArgumentError(`--max-memory ${opts.maxMemory} bytes is too small: the resident weights take ${bytes} bytes and ${cfg.nExpertUsed} experts of ${perExpert} bytes each must fit besides (at least ${bytes + cfg.nExpertUsed * perExpert} bytes)`);
    }
    cache = new ExpertCache(r, backend, cfg.nExpert, sources, nSlots);
    bytes += cache.stats.slotBytes;
  }
  return { tokenEmbd, outputNorm, output, layers, bytes, ...(cache ? { experts: cache } : {}) };
}

/** Dequantize one row of a matrix (e.g. a token's embedding) into out. */
export function weightRow(w: Weight, mat: number, row: number, out: Float32Array, outOff = 0): void {
  dequantize(w.type, readRow(w, mat, row), 0, out, outOff, w.nIn);
}
