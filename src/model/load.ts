/**
 * Opening a model file: the GGUF's weights, hyperparameters, tokenizer and chat template together.
 */
import { existsSync, statSync } from "node:fs";
import { basename } from "node:path";
import { ArgumentError, FormatError, ModelError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import { GgufType, isArray, type GgufEntry } from "../io/gguf/types.js";
import { SpmTokenizer } from "../tokenizer/spm.js";
import type { Vocab } from "../tokenizer/vocab.js";
import { Mixtral } from "./mixtral.js";
import { JsBackend, type Backend } from "../kernels/backend.js";
import { WasmBackend } from "../kernels/wasm-backend.js";

export interface LoadedModel {
  path: string;
  model: Mixtral;
  tokenizer: SpmTokenizer;
  /** tokenizer.chat_template when the file has one */
  chatTemplate?: string;
  metadata: Map<string, GgufEntry>;
  fileSize: number;
}

/** The tokenizer stored in a GGUF's metadata (tokenizer.ggml.model = "llama", SentencePiece BPE). */
export function vocabFromGguf(md: Map<string, GgufEntry>, file: string): Vocab {
  const model = md.get("tokenizer.ggml.model")?.value;
  if (model === undefined) throw new FormatError(file, 'metadata "tokenizer.ggml.model"', "missing: this file has no tokenizer");
  if (model !== "llama") {
    throw new ModelError(`${file}: tokenizer.ggml.model is "${String(model)}"; only SentencePiece ("llama") vocabularies are supported`);
  }
  const arr = (key: string, itemType: GgufType) => {
    const e = md.get(key);
    if (!e || !isArray(e.value) || e.value.itemType !== itemType) {
      throw new FormatError(file, `metadata "${key}"`, `expected an array of ${GgufType[itemType]}`);
    }
    return e.value.items;
  };
  const tokens = arr("tokenizer.ggml.tokens", GgufType.STRING) as string[];
  const n = tokens.length;
  const scoresE = md.get("tokenizer.ggml.scores");
  const scores = scoresE ? (arr("tokenizer.ggml.scores", GgufType.FLOAT32) as Float32Array) : new Float32Array(n);
  const typesE = md.get("tokenizer.ggml.token_type");
  const types = typesE ? (arr("tokenizer.ggml.token_type", GgufType.INT32) as Int32Array) : new Int32Array(n).fill(1);
  if (scores.length !== n || types.length !== n) {
    throw new FormatError(file, 'metadata "tokenizer.ggml.scores/token_type"', `expected ${n} entries (one per token), found ${scores.length} and ${types.length}`);
  }
  const id = (key: string, dflt: number): number => {
    const v = md.get(key)?.value;
    if (v === undefined) return dflt;
    const x = Number(v);
    if (!Number.isInteger(x) || x < -1 || x >= n) throw new FormatError(file, `metadata "${key}"`, `token id ${x} is outside 0..${n - 1}`);
    return x;
  };
  const flag = (key: string, dflt: boolean): boolean => {
    const v = md.get(key)?.value;
    return typeof v === "boolean" ? v : dflt;
  };
  return {
    tokens, scores, types,
    bosId: id("tokenizer.ggml.bos_token_id", 1),
    eosId: id("tokenizer.ggml.eos_token_id", 2),
    unkId: id("tokenizer.ggml.unknown_token_id", 0),
    padId: id("tokenizer.ggml.padding_token_id", -1),
    addBos: flag("tokenizer.ggml.add_bos_token", true),
    addEos: flag("tokenizer.ggml.add_eos_token", false),
    addSpacePrefix: flag("tokenizer.ggml.add_space_prefix", true),
  };
}

export interface LoadOptions {
  /** experts to switch off, "L:E" */
  disableExperts?: string[];
  /** "wasm" (default: SIMD kernels on all threads) or "js" (the plain-TypeScript reference) */
  backend?: "wasm" | "js";
  threads?: number;
  /** bytes of weights to keep in memory; experts beyond are loaded from the file on demand */
  maxMemory?: number;
}

export function createBackend(kind: "wasm" | "js" = "wasm", threads?: number): Backend {
  return kind === "js" ? new JsBackend() : new WasmBackend(threads !== undefined ? { threads } : {});
}

export function loadModel(path: string, opts: LoadOptions = {}): LoadedModel {
  if (!existsSync(path)) throw new ArgumentError(`model file not found: ${path}`);
  if (statSync(path).isDirectory()) throw new ArgumentError(`${path} is a folder; give a .gguf file (convert a Hugging Face folder with \`cmx convert\`)`);
  const r = new GgufReader(path);
  let keepOpen = false;
  try {
    const file = basename(path);
    const model = Mixtral.fromGguf(r, createBackend(opts.backend ?? (process.env.CMX_BACKEND as "js" | "wasm" | undefined), opts.threads),
      opts.maxMemory !== undefined ? { maxMemory: opts.maxMemory } : {});
    keepOpen = !!model.weights.experts;
    if (opts.disableExperts?.length) model.disableExperts(opts.disableExperts);
    const tokenizer = new SpmTokenizer(vocabFromGguf(r.metadata, file));
    if (tokenizer.nVocab !== model.config.nVocab) {
      throw new ModelError(`${file}: the tokenizer has ${tokenizer.nVocab} tokens but the model ${model.config.nVocab}`);
    }
    const tpl = r.metadata.get("tokenizer.chat_template")?.value;
    return {
      path, model, tokenizer, metadata: r.metadata, fileSize: r.info.fileSize,
      ...(typeof tpl === "string" ? { chatTemplate: tpl } : {}),
    };
  } finally {
    if (!keepOpen) r.close();
  }
}

/** "2G", "512M", "1.5GiB", "1000000" -> bytes */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(s);
  if (!m) throw new ArgumentError(`"${s}" is not a size (e.g. 2G, 512M)`);
  const mult = { "": 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[m[2]!.toLowerCase() as "" | "k" | "m" | "g" | "t"];
  return Math.floor(Number(m[1]) * mult);
}
