/**
 * PEFT LoRA adapters: adapter_config.json plus adapter_model.safetensors (or adapter_model.bin,
 * read with the restricted unpickler).
 *
 * Tensor names as PEFT saves them (get_peft_model_state_dict drops the adapter name, so
 * `.default` is usually absent, but both forms are accepted):
 *
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_A[.default].weight   [r, in]
 *   base_model.model.model.layers.N.self_attn.q_proj.lora_B[.default].weight   [out, r]
 *   base_model.model.model.layers.N.block_sparse_moe.gate.lora_A.weight         (the router)
 *   base_model.model.model.layers.N.block_sparse_moe.experts.E.w1.lora_A.weight
 *   base_model.model.model.embed_tokens.lora_embedding_A[.default]              [r, vocab]
 *   base_model.model.model.embed_tokens.lora_embedding_B[.default]              [dim, r]
 *   modules_to_save (full replacements), by PEFT version:
 *     base_model.model.model.embed_tokens.weight
 *     base_model.model.model.embed_tokens.modules_to_save[.default].weight
 *     base_model.model.lm_head.weight
 *
 * The merged weight is W + s·B·A with s = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora),
 * r and alpha per module from rank_pattern / alpha_pattern when given. fan_in_fan_out only
 * concerns Conv1D (GPT-2) layers; PEFT turns it off for Linear layers and so does this reader.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { ArgumentError, FormatError, ModelError, UnsupportedError } from "../errors.js";
import { SafetensorsFile } from "../io/safetensors/reader.js";
import { hfName, modelTensors, parseHfName, TENSOR_NAMES, type ParsedName } from "../io/tensor-names.js";
import type { ModelConfig } from "../model/config.js";
import type { TensorStore } from "../convert/source.js";
import { TorchCheckpoint } from "./torch-bin.js";

export interface PeftConfig {
  peft_type?: string;
  r: number;
  lora_alpha: number;
  target_modules?: string[] | string | null;
  modules_to_save?: string[] | null;
  fan_in_fan_out?: boolean;
  use_rslora?: boolean;
  use_dora?: boolean;
  rank_pattern?: Record<string, number>;
  alpha_pattern?: Record<string, number>;
  base_model_name_or_path?: string;
  bias?: string;
  [k: string]: unknown;
}

/** One LoRA pair (A, B) for one base tensor. */
export interface LoraPair {
  /** the HF tensor it changes, e.g. model.layers.0.self_attn.q_proj.weight */
  target: string;
  parsed: ParsedName;
  /** module path without the PEFT prefix, e.g. model.layers.0.self_attn.q_proj */
  module: string;
  aKey: string;
  bKey: string;
  aShape: number[];
  bShape: number[];
  /** "linear": A [r, in], B [out, r], delta = B·A; "embedding": A [r, vocab], B [dim, r], delta = (B·A)^T */
  kind: "linear" | "embedding";
  rank: number;
  alpha: number;
  scale: number;
}

/** A modules_to_save tensor that replaces a base tensor. */
export interface LoraReplacement {
  target: string;
  parsed: ParsedName;
  key: string;
  shape: number[];
}

export interface LoraAdapter {
  dir: string;
  config: PeftConfig;
  pairs: Map<string, LoraPair>;
  replacements: Map<string, LoraReplacement>;
  /** things the merge should tell the user */
  notes: string[];
  store: TensorStore;
  read(key: string): Float32Array;
  /** the adapter folder's chat template (tokenizer_config.json), when it has one */
  chatTemplate?: string;
  close(): void;
}

function storeOfSafetensors(f: SafetensorsFile): TensorStore {
  return {
    names: f.tensors.map((t) => t.name),
    info: (n) => { const t = f.tensor(n); return t && { shape: t.shape, dtype: t.dtype }; },
    readF32: (n, out, off) => f.readF32(n, out, off),
    close: () => f.close(),
  };
}

const LORA_RE = /^(.+)\.(lora_A|lora_B|lora_embedding_A|lora_embedding_B)(?:\.([A-Za-z0-9_-]+))?(?:\.weight)?$/;
const SAVE_RE = /^(.+)\.modules_to_save(?:\.([A-Za-z0-9_-]+))?\.weight$/;

/** Strip PEFT's wrapper prefix: base_model.model.<HF name>. */
export function stripPeftPrefix(key: string): string {
  if (key.startsWith("base_model.model.")) return key.slice("base_model.model.".length);
  if (key.startsWith("base_model.")) return key.slice("base_model.".length);
  return key;
}

/** PEFT's match of a target_modules / pattern entry against a module path: equal, or a suffix after a dot. */
function matchesModule(pattern: string, module: string): boolean {
  return module === pattern || module.endsWith(`.${pattern}`);
}

function patternValue(pats: Record<string, number> | undefined, module: string): number | undefined {
  if (!pats) return undefined;
  for (const [k, v] of Object.entries(pats)) {
    if (matchesModule(k, module)) return v;
    try {
      if (new RegExp(`^(?:.*\\.)?(?:${k})$`).test(module)) return v;
    } catch { /* not a regex */ }
  }
  return undefined;
}

/** Module names (last path components) a Mixtral/Mistral/Llama model has. */
export const KNOWN_MODULES: readonly string[] = [...new Set(TENSOR_NAMES.map((r) => r.module))];

/** Read a PEFT adapter folder (or adapter_model.* file). Tensor data stays on disk until read. */
export function loadLoraAdapter(path: string): LoraAdapter {
  const dir = existsSync(path) && !path.endsWith(".safetensors") && !path.endsWith(".bin") ? path : join(path, "..");
  const cfgPath = join(dir, "adapter_config.json");
  if (!existsSync(cfgPath)) throw new ArgumentError(`${dir}: adapter_config.json is missing (expected a PEFT LoRA adapter folder)`);
  let config: PeftConfig;
  try {
    config = JSON.parse(readFileSync(cfgPath, "utf8")) as PeftConfig;
  } catch (e) {
    throw new FormatError("adapter_config.json", "json", (e as Error).message);
  }
  if (config.peft_type !== undefined && config.peft_type !== "LORA") {
    throw new UnsupportedError(`adapter_config.json: peft_type ${JSON.stringify(config.peft_type)} is not supported (only LORA)`);
  }
  if (config.use_dora) throw new UnsupportedError("adapter_config.json: DoRA adapters (use_dora) are not supported");
  if (!Number.isFinite(config.r) || config.r <= 0) throw new FormatError("adapter_config.json", "r", `expected a positive rank, found ${JSON.stringify(config.r)}`);
  if (!Number.isFinite(config.lora_alpha)) throw new FormatError("adapter_config.json", "lora_alpha", `expected a number, found ${JSON.stringify(config.lora_alpha)}`);
  const notes: string[] = [];
  if (config.fan_in_fan_out) notes.push("fan_in_fan_out is set but the targets are Linear layers; ignored, as PEFT does");

  const stPath = join(dir, "adapter_model.safetensors");
  const binPath = join(dir, "adapter_model.bin");
  let store: TensorStore;
  if (existsSync(stPath)) store = storeOfSafetensors(new SafetensorsFile(stPath));
  else if (existsSync(binPath)) store = TorchCheckpoint.openFile(binPath);
  else throw new ArgumentError(`${dir}: neither adapter_model.safetensors nor adapter_model.bin found`);

  try {
    const pairs = new Map<string, LoraPair>();
    const replacements = new Map<string, LoraReplacement>();
    const halves = new Map<string, { a?: string; b?: string; kind: "linear" | "embedding" }>();
    const adapterNames = new Set<string>();
    for (const key of store.names) {
      const k = stripPeftPrefix(key);
      const m = LORA_RE.exec(k);
      if (m) {
        const [, module, which, adapterName] = m as unknown as [string, string, string, string | undefined];
        if (adapterName !== undefined && adapterName !== "weight") adapterNames.add(adapterName);
        const kind = which.startsWith("lora_embedding") ? "embedding" : "linear";
        const h = halves.get(module) ?? { kind };
        if (which.endsWith("A")) h.a = key; else h.b = key;
        halves.set(module, h);
        continue;
      }
      if (/\.lora_magnitude_vector/.test(k)) throw new UnsupportedError(`${key}: DoRA magnitude vectors are not supported`);
      if (/\.original_module\./.test(k)) continue;
      const s = SAVE_RE.exec(k);
      const target = s ? `${s[1]}.weight` : k;
      const p = parseHfName(target);
      if (!p) {
        if (/\.bias$/.test(k)) throw new UnsupportedError(`${key}: bias tensors are not supported (Mixtral/Llama layers have no biases)`);
        throw new ModelError(`adapter tensor "${key}": unknown target module "${target.replace(/\.weight$/, "")}" (not a module of a Mixtral/Mistral/Llama model)`);
      }
      replacements.set(target, { target, parsed: p, key, shape: store.info(key)!.shape });
    }
    if (adapterNames.size > 1) throw new UnsupportedError(`the adapter holds several adapters (${[...adapterNames].join(", ")}); save one at a time`);
    const useRs = config.use_rslora === true;
    for (const [module, h] of halves) {
      if (!h.a || !h.b) throw new FormatError(basename(dir), `module "${module}"`, `has ${h.a ? "lora_A" : "lora_B"} but no ${h.a ? "lora_B" : "lora_A"}`);
      const target = `${module}.weight`;
      const p = parseHfName(target);
      if (!p) throw new ModelError(`adapter tensor "${h.a}": unknown target module "${module}" (not a module of a Mixtral/Mistral/Llama model)`);
      const aShape = store.info(h.a)!.shape, bShape = store.info(h.b)!.shape;
      if (aShape.length !== 2 || bShape.length !== 2 || aShape[0] !== bShape[1]) {
        throw new ModelError(`adapter tensors "${h.a}" [${aShape.join(", ")}] and "${h.b}" [${bShape.join(", ")}] do not multiply (B·A needs B's columns = A's rows)`);
      }
      const rank = aShape[0]!;
      const r = patternValue(config.rank_pattern, module) ?? config.r;
      if (r !== rank) {
        throw new ModelError(`adapter tensor "${h.a}" has rank ${rank} but adapter_config.json gives r = ${r}${config.rank_pattern ? " (after rank_pattern)" : ""}: the config does not belong to these weights`);
      }
      const alpha = patternValue(config.alpha_pattern, module) ?? config.lora_alpha;
      const scale = useRs ? alpha / Math.sqrt(r) : alpha / r;
      pairs.set(target, { target, parsed: p, module, aKey: h.a, bKey: h.b, aShape, bShape, kind: h.kind, rank, alpha, scale });
    }
    const tcPath = join(dir, "tokenizer_config.json");
    let chatTemplate: string | undefined;
    if (existsSync(tcPath)) {
      try {
        const ct = (JSON.parse(readFileSync(tcPath, "utf8")) as { chat_template?: unknown }).chat_template;
        if (typeof ct === "string") chatTemplate = ct;
      } catch { /* ignore an unreadable tokenizer config; the base's template stays */ }
    }
    const adapter: LoraAdapter = {
      dir, config, pairs, replacements, notes, store,
      read: (key) => store.readF32(key),
      close: () => store.close(),
    };
    if (chatTemplate !== undefined) adapter.chatTemplate = chatTemplate;
    return adapter;
  } catch (e) {
    store.close();
    throw e;
  }
}

/**
 * Check an adapter against a base model: every target exists with a shape that fits (errors name
 * the tensor and both shapes), and every target_modules entry names a module the base has.
 */
export function checkAdapter(a: LoraAdapter, c: ModelConfig, tied: boolean, baseShape: (hfName: string) => number[] | undefined, baseName: string): void {
  const tm = a.config.target_modules;
  if (Array.isArray(tm)) {
    const modules = new Set<string>();
    for (const p of modelTensors(c, tied)) {
      const names = p.rule.expert ? Array.from({ length: c.nExpert }, (_, e) => hfName(p.rule, p.layer, e)) : [hfName(p.rule, p.layer)];
      for (const n of names) modules.add(n.replace(/\.weight$/, ""));
    }
    for (const t of tm) {
      if (typeof t !== "string") throw new FormatError("adapter_config.json", "target_modules", `entry ${JSON.stringify(t)} is not a string`);
      if (![...modules].some((m) => matchesModule(t, m))) {
        throw new ModelError(`adapter_config.json: unknown target module "${t}": ${baseName} has no such module (it has ${KNOWN_MODULES.filter((k) => [...modules].some((m) => matchesModule(k, m))).join(", ")})`);
      }
    }
  }
  const where = (key: string, p: ParsedName) => {
    if (p.layer !== undefined && p.layer >= c.nLayer) {
      throw new ModelError(`adapter tensor "${key}" is for layer ${p.layer} but ${baseName} has ${c.nLayer} layers: an adapter for another base model?`);
    }
    if (p.expert !== undefined && p.expert >= c.nExpert) {
      throw new ModelError(`adapter tensor "${key}" is for expert ${p.expert} but ${baseName} has ${c.nExpert} experts: an adapter for another base model?`);
    }
  };
  const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;
  const same = (x: readonly number[], y: readonly number[]) => x.length === y.length && x.every((d, i) => d === y[i]);
  for (const pr of a.pairs.values()) {
    where(pr.aKey, pr.parsed);
    const base = baseShape(pr.target);
    if (!base) throw new ModelError(`adapter tensor "${pr.aKey}": ${baseName} has no tensor "${pr.target}": an adapter for another base model?`);
    // linear: A [r, in], B [out, r] for W [out, in]; embedding: A [r, vocab], B [dim, r] for W [vocab, dim]
    const [out, inn] = pr.kind === "linear" ? [base[0]!, base[1]!] : [base[1]!, base[0]!];
    for (const [key, got, want, what] of [[pr.aKey, pr.aShape, [pr.rank, inn], "lora_A must be [r, in]"], [pr.bKey, pr.bShape, [out, pr.rank], "lora_B must be [out, r]"]] as const) {
      if (!same(got, want)) {
        throw new ModelError(`adapter tensor "${key}" has shape ${fmt(got)} but base tensor "${pr.target}" has shape ${fmt(base)} (${what}, here ${fmt(want)}): an adapter for another base model?`);
      }
    }
  }
  for (const rp of a.replacements.values()) {
    where(rp.key, rp.parsed);
    const base = baseShape(rp.target);
    if (!base) throw new ModelError(`adapter tensor "${rp.key}": ${baseName} has no tensor "${rp.target}" to replace: an adapter for another base model?`);
    if (!same(rp.shape, base)) throw new ModelError(`adapter tensor "${rp.key}" has shape ${fmt(rp.shape)} but the base tensor "${rp.target}" it replaces has shape ${fmt(base)}: an adapter for another base model?`);
  }
}
