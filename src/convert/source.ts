/**
 * A model's weights seen the Hugging Face way, whichever file holds them: tensors by HF name, in
 * HF layout ([out, in] rows, half-split RoPE rows for q/k), read one at a time as float32.
 *
 * - openHfModel(dir): config.json + safetensors shards (or pytorch_model*.bin through the
 *   restricted unpickler) + tokenizer files;
 * - openGgufModel(path): a GGUF, dequantized tensor by tensor, q/k rows permuted back, stacked
 *   experts sliced (only the expert's bytes are read).
 *
 * Both check names and shapes against the hyperparameters when they open, so writers and the
 * LoRA merge can rely on every tensor being there with the right shape.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { ArgumentError, FormatError, ModelError, UnsupportedError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import type { GgufEntry, GgufTensorInfo } from "../io/gguf/types.js";
import { SafetensorsCheckpoint } from "../io/safetensors/sharded.js";
import { numel } from "../io/safetensors/format.js";
import {
  ggufDims, hfName, hfShape, isIgnorableHfTensor, modelTensors, parseGgufName, parseHfName, type ParsedName,
} from "../io/tensor-names.js";
import { configFromGguf, configFromHf, type ModelConfig } from "../model/config.js";
import { vocabFromGguf } from "../model/load.js";
import { typeName } from "../quant/format.js";
import { dequantize } from "../quant/index.js";
import type { Vocab } from "../tokenizer/vocab.js";
import { TorchCheckpoint } from "../lora/torch-bin.js";
import { permuteRopeRows } from "./permute.js";
import { readFolderTokenizer } from "./tokenizer-files.js";

/** Tensors by name with float32 reads; implemented for safetensors and PyTorch checkpoints. */
export interface TensorStore {
  readonly names: readonly string[];
  info(name: string): { shape: number[]; dtype: string } | undefined;
  readF32(name: string, out?: Float32Array, outOff?: number): Float32Array;
  close(): void;
}

export function safetensorsStore(ck: SafetensorsCheckpoint): TensorStore {
  return {
    names: ck.names,
    info: (n) => { const t = ck.tensor(n); return t && { shape: t.shape, dtype: t.dtype }; },
    readF32: (n, out, off) => ck.readF32(n, out, off),
    close: () => ck.close(),
  };
}

/** One HF tensor of a model source. */
export interface HfTensor {
  name: string;
  parsed: ParsedName;
  /** row-major HF shape */
  shape: number[];
  /** the stored type ("BF16", "F32", "Q4_K", ...) */
  srcType: string;
  /** values in HF layout */
  read(): Float32Array;
}

export interface ModelSource {
  kind: "hf" | "gguf";
  path: string;
  config: ModelConfig;
  /** config.json as read (HF sources) */
  hfConfig?: Record<string, unknown>;
  /** the output reuses the embeddings (no lm_head / output.weight) */
  tied: boolean;
  tensors: Map<string, HfTensor>;
  vocab?: Vocab;
  chatTemplate?: string;
  /** HF sources: the folder whose tokenizer files can be copied verbatim */
  tokenizerDir?: string;
  /** extra GGUF metadata to carry over (GGUF sources) */
  metadata?: Map<string, GgufEntry>;
  close(): void;
}

const HF_ARCHS: Record<string, string> = {
  MixtralForCausalLM: "mixtral", MistralForCausalLM: "mistral", LlamaForCausalLM: "llama",
};

/** Check an HF config.json describes a Mixtral / Mistral / Llama model; returns the hyperparameters. */
export function hfModelConfig(cfg: Record<string, unknown>, file: string): ModelConfig {
  const archs = Array.isArray(cfg.architectures) ? (cfg.architectures as unknown[]).map(String) : [];
  const mt = typeof cfg.model_type === "string" ? cfg.model_type : undefined;
  const okArch = archs.length ? archs.some((a) => a in HF_ARCHS) : mt !== undefined && Object.values(HF_ARCHS).includes(mt);
  if (!okArch || (mt !== undefined && !Object.values(HF_ARCHS).includes(mt))) {
    throw new ModelError(`${file}: architecture ${archs.length ? archs.join(", ") : "(none)"} / model_type ${JSON.stringify(mt ?? null)} is not supported; ` +
      `expected MixtralForCausalLM, MistralForCausalLM or LlamaForCausalLM (model_type mixtral, mistral or llama)`);
  }
  const rs = cfg.rope_scaling as Record<string, unknown> | null | undefined;
  if (rs && typeof rs === "object") {
    const t = rs.type ?? rs.rope_type;
    if (t !== "linear" && t !== "default") throw new UnsupportedError(`${file}: rope_scaling of type ${JSON.stringify(t)} is not supported (only linear)`);
  }
  const c = configFromHf(cfg, file);
  if (mt === "mixtral" && c.nExpert === 0) throw new ModelError(`${file}: a Mixtral config needs num_local_experts`);
  if (typeof cfg._name_or_path !== "string" || !cfg._name_or_path) c.name = mt ?? "model";
  else c.name = basename(cfg._name_or_path);
  return c;
}

function readJson(path: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new FormatError(basename(path), "json", (e as Error).message);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FormatError(basename(path), "json", "not a JSON object");
  return v as Record<string, unknown>;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;

/** Open the weight files of an HF folder: safetensors (preferred) or PyTorch .bin checkpoints. */
export function openHfTensors(dir: string): TensorStore {
  const hasSt = existsSync(join(dir, "model.safetensors.index.json")) || readdirSync(dir).some((f) => f.endsWith(".safetensors"));
  if (hasSt) return safetensorsStore(SafetensorsCheckpoint.open(dir));
  if (existsSync(join(dir, "pytorch_model.bin.index.json")) || existsSync(join(dir, "pytorch_model.bin"))) return TorchCheckpoint.openFolder(dir);
  throw new ModelError(`${dir}: no model.safetensors(.index.json), *.safetensors or pytorch_model.bin(.index.json): no weights found`);
}

/** Open a Hugging Face model folder (config.json, weights, tokenizer). */
export function openHfModel(dir: string, opts: { needTokenizer?: boolean } = {}): ModelSource {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ArgumentError(`${dir} is not a folder (expected a Hugging Face model folder)`);
  const cfgPath = join(dir, "config.json");
  if (!existsSync(cfgPath)) throw new ModelError(`${dir}: config.json is missing`);
  const hfConfig = readJson(cfgPath);
  const config = hfModelConfig(hfConfig, "config.json");
  let tok: ReturnType<typeof readFolderTokenizer> | undefined;
  if (opts.needTokenizer !== false || existsSync(join(dir, "tokenizer.model")) || existsSync(join(dir, "tokenizer.json"))) {
    tok = readFolderTokenizer(dir, config.nVocab);
  }
  const store = openHfTensors(dir);
  try {
    const tensors = new Map<string, HfTensor>();
    for (const name of store.names) {
      const p = parseHfName(name);
      if (!p) {
        if (isIgnorableHfTensor(name)) continue;
        throw new ModelError(`${dir}: tensor "${name}" is not a Mixtral/Mistral/Llama tensor (wrong architecture?)`);
      }
      if (p.layer !== undefined && p.layer >= config.nLayer) throw new ModelError(`${dir}: tensor "${name}" is for layer ${p.layer} but config.json has ${config.nLayer} layers`);
      if (p.expert !== undefined && p.expert >= config.nExpert) throw new ModelError(`${dir}: tensor "${name}" is for expert ${p.expert} but config.json has ${config.nExpert} experts`);
      if ((p.rule.expert || p.rule.role === "router") && config.nExpert === 0) throw new ModelError(`${dir}: tensor "${name}" is a MoE tensor but config.json describes a dense model`);
      if (p.rule.role.startsWith("ffn_") && p.rule.role !== "ffn_norm" && config.nExpert > 0) throw new ModelError(`${dir}: tensor "${name}" is a dense FFN tensor but config.json describes ${config.nExpert} experts`);
      const info = store.info(name)!;
      const want = hfShape(p.rule, config);
      if (!sameShape(info.shape, want)) {
        throw new ModelError(`${dir}: tensor "${name}" has shape ${fmt(info.shape)}, expected ${fmt(want)} from config.json`);
      }
      tensors.set(name, { name, parsed: p, shape: info.shape, srcType: info.dtype, read: () => store.readF32(name) });
    }
    const tied = !tensors.has("lm_head.weight");
    if (tied && hfConfig.tie_word_embeddings !== true) {
      throw new ModelError(`${dir}: tensor "lm_head.weight" is missing (and config.json does not set tie_word_embeddings)`);
    }
    for (const p of modelTensors(config, tied)) {
      const names = p.rule.expert ? Array.from({ length: config.nExpert }, (_, e) => hfName(p.rule, p.layer, e)) : [hfName(p.rule, p.layer)];
      for (const n of names) if (!tensors.has(n)) throw new ModelError(`${dir}: tensor "${n}" is missing`);
    }
    const src: ModelSource = {
      kind: "hf", path: dir, config, hfConfig, tied, tensors, tokenizerDir: dir,
      close: () => store.close(),
    };
    if (tok) {
      src.vocab = tok.vocab;
      if (tok.chatTemplate !== undefined) src.chatTemplate = tok.chatTemplate;
    }
    return src;
  } catch (e) {
    store.close();
    throw e;
  }
}

/** Open a GGUF as an HF-layout model source. */
export function openGgufModel(path: string): ModelSource {
  if (!existsSync(path)) throw new ArgumentError(`model file not found: ${path}`);
  if (statSync(path).isDirectory()) throw new ArgumentError(`${path} is a folder; expected a .gguf file`);
  const r = new GgufReader(path);
  try {
    const file = basename(path);
    const config = configFromGguf(r.metadata, file);
    if (config.nRot !== config.headDim) throw new UnsupportedError(`${file}: rope.dimension_count ${config.nRot} differs from the head size ${config.headDim}; Hugging Face Llama models rotate whole heads`);
    const tensors = new Map<string, HfTensor>();
    const seen = new Set<string>();
    for (const t of r.tensors) {
      const p = parseGgufName(t.name);
      if (!p) throw new UnsupportedError(`${file}: tensor "${t.name}" has no Hugging Face counterpart (not a Mixtral/Mistral/Llama tensor)`);
      if (p.layer !== undefined && p.layer >= config.nLayer) throw new ModelError(`${file}: tensor "${t.name}" is for layer ${p.layer} but the model has ${config.nLayer} layers`);
      const stacked = p.rule.expert && p.expert === undefined;
      const want = stacked ? ggufDims(p.rule, config) : [...hfShape(p.rule, config)].reverse();
      const dims = t.dims.length > want.length && t.dims.slice(want.length).every((d) => d === 1) ? t.dims.slice(0, want.length) : t.dims;
      if (!sameShape(dims, want)) throw new ModelError(`${file}: tensor "${t.name}" has shape ${fmt(t.dims)}, expected ${fmt(want)} for this model's hyperparameters`);
      const shape = hfShape(p.rule, config);
      const n = numel(shape);
      const experts = stacked ? Array.from({ length: config.nExpert }, (_, e) => e) : [p.expert];
      for (const e of experts) {
        const name = hfName(p.rule, p.layer, e);
        if (seen.has(name)) throw new ModelError(`${file}: tensor "${t.name}" duplicates ${name}`);
        seen.add(name);
        const per = stacked ? t.nBytes / config.nExpert : t.nBytes;
        const off = stacked ? e! * per : 0;
        const info: GgufTensorInfo = t;
        tensors.set(name, {
          name, parsed: { ...p, ...(e !== undefined ? { expert: e } : {}) }, shape, srcType: typeName(t.type),
          read: () => {
            const x = new Float32Array(n);
            dequantize(info.type, r.readTensorBytes(info, off, per), 0, x, 0, n);
            const rope = p.rule.rope;
            if (!rope) return x;
            return permuteRopeRows(x, shape[0]!, shape[1]!, rope === "q" ? config.nHead : config.nHeadKv, false);
          },
        });
      }
    }
    const tied = !r.tensor("output.weight");
    for (const p of modelTensors(config, tied)) {
      const names = p.rule.expert ? Array.from({ length: config.nExpert }, (_, e) => hfName(p.rule, p.layer, e)) : [hfName(p.rule, p.layer)];
      for (const n of names) if (!tensors.has(n)) throw new ModelError(`${file}: the tensor holding "${n}" is missing`);
    }
    const src: ModelSource = {
      kind: "gguf", path, config, tied, tensors, metadata: r.metadata,
      close: () => r.close(),
    };
    try {
      src.vocab = vocabFromGguf(r.metadata, file);
    } catch {
      // no SentencePiece vocabulary: writers that need one say so
    }
    const tpl = r.metadata.get("tokenizer.chat_template")?.value;
    if (typeof tpl === "string") src.chatTemplate = tpl;
    return src;
  } catch (e) {
    r.close();
    throw e;
  }
}

/** A HF folder or a GGUF file (an HF folder may lack a tokenizer; writing a GGUF then fails). */
export function openModel(path: string): ModelSource {
  if (!existsSync(path)) throw new ArgumentError(`not found: ${path}`);
  return statSync(path).isDirectory() ? openHfModel(path, { needTokenizer: false }) : openGgufModel(path);
}
