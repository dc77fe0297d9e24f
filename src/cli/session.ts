/** Opening the model and a context from the shared model options. */
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { ArgumentError } from "../errors.js";
import { attachLora } from "../lora/runtime.js";
import { loadLoraAdapter } from "../lora/adapter.js";
import { defaultModelPath } from "../model/default-model.js";
import type { KvType } from "../model/kv-cache.js";
import { loadModel, parseSize, type LoadedModel } from "../model/load.js";
import type { MixtralContext } from "../model/mixtral.js";
import { num } from "./args.js";

export interface OpenedModel extends LoadedModel {
  ctx: MixtralContext;
  threads: number;
}

/** Threads from -t (default: all cores). */
export function threadsOption(values: Record<string, unknown>): number {
  return num(values["threads"], "threads", { int: true, min: 1, max: 512 }) ?? availableParallelism();
}

/** KV cache type from --kv-type (default: f16, as llama.cpp). */
export function kvTypeOption(values: Record<string, unknown>): KvType {
  const kv = (values["kv-type"] as string | undefined) ?? "f16";
  if (kv !== "f16" && kv !== "f32") throw new ArgumentError(`--kv-type: expected f16 or f32, got "${kv}"`);
  return kv;
}

/** Load the model named by -m (or the built-in one) with -t, --backend, --disable-experts, --max-memory and --lora. */
export function loadFromOptions(values: Record<string, unknown>): LoadedModel & { threads: number } {
  const path = (values["model"] as string | undefined) ?? defaultModelPath();
  const threads = threadsOption(values);
  const backend = values["backend"] as string | undefined;
  if (backend !== undefined && backend !== "wasm" && backend !== "js") throw new ArgumentError(`--backend: expected wasm or js, got "${backend}"`);
  const dis = values["disable-experts"] as string | undefined;
  const mm = values["max-memory"] as string | undefined;
  const loaded = loadModel(path, {
    disableExperts: dis ? dis.split(",").filter(Boolean) : [], threads, ...(backend ? { backend } : {}),
    ...(mm !== undefined ? { maxMemory: parseSize(mm) } : {}),
  });
  try {
    for (const dir of (values["lora"] as string[] | undefined) ?? []) applyLoraOption(loaded, dir);
  } catch (e) {
    loaded.model.close();
    throw e;
  }
  return { ...loaded, threads };
}

/** --lora DIR: the adapter's pairs at run time, its modules_to_save into the weights, its chat template if it has one. */
function applyLoraOption(loaded: LoadedModel, dir: string): void {
  if (!existsSync(dir)) throw new ArgumentError(`--lora: ${dir} not found (expected a PEFT adapter folder: adapter_config.json + adapter_model.safetensors)`);
  const ad = loadLoraAdapter(dir);
  try {
    const r = attachLora(loaded.model, ad);
    const rep = r.replaced.length ? `; ${r.replaced.length} modules_to_save tensors replace the base's in memory (${r.replaced.join(", ")})` : "";
    process.stderr.write(`lora: ${dir}: ${r.pairs} LoRA pairs applied at run time${rep}\n`);
    for (const n of ad.notes) process.stderr.write(`lora: note: ${n}\n`);
    if (ad.chatTemplate !== undefined) {
      loaded.chatTemplate = ad.chatTemplate;
      process.stderr.write(`lora: using the adapter's chat template\n`);
    }
  } finally {
    ad.close();
  }
}

/** The context size from -c (default: the model's, at most `dflt`), checked against the trained context. */
export function contextSizeOption(values: Record<string, unknown>, nCtxTrain: number, dflt = 4096, min = 1): number {
  const nCtx = num(values["ctx-size"], "ctx-size", { int: true, min }) ?? Math.min(nCtxTrain, dflt);
  if (nCtx > nCtxTrain) {
    throw new ArgumentError(`--ctx-size ${nCtx} is larger than the ${nCtxTrain} tokens this model was trained for`);
  }
  return nCtx;
}

export function openModel(values: Record<string, unknown>, opts: { defaultCtx?: number } = {}): OpenedModel {
  const kv = kvTypeOption(values);
  const loaded = loadFromOptions(values);
  const nCtx = contextSizeOption(values, loaded.model.config.nCtxTrain, opts.defaultCtx);
  const ctx = loaded.model.newContext({ nCtx, kvType: kv, ...(values.exact ? { exact: true } : {}) });
  return { ...loaded, ctx };
}
