/** Opening the model and a context from the shared model options. */
import { availableParallelism } from "node:os";
import { ArgumentError } from "../errors.js";
import { defaultModelPath } from "../model/default-model.js";
import type { KvType } from "../model/kv-cache.js";
import { loadModel, parseSize, type LoadedModel } from "../model/load.js";
import type { MixtralContext } from "../model/mixtral.js";
import { num } from "./args.js";

export interface OpenedModel extends LoadedModel {
  ctx: MixtralContext;
  threads: number;
}

export function openModel(values: Record<string, unknown>, opts: { defaultCtx?: number } = {}): OpenedModel {
  const path = (values["model"] as string | undefined) ?? defaultModelPath();
  const threads = num(values["threads"], "threads", { int: true, min: 1, max: 512 }) ?? availableParallelism();
  const kv = (values["kv-type"] as string | undefined) ?? "f16";
  if (kv !== "f16" && kv !== "f32") throw new ArgumentError(`--kv-type: expected f16 or f32, got "${kv}"`);
  const dis = values["disable-experts"] as string | undefined;
  const backend = values["backend"] as string | undefined;
  if (backend !== undefined && backend !== "wasm" && backend !== "js") throw new ArgumentError(`--backend: expected wasm or js, got "${backend}"`);
  const mm = values["max-memory"] as string | undefined;
  const loaded = loadModel(path, {
    disableExperts: dis ? dis.split(",").filter(Boolean) : [], threads, ...(backend ? { backend } : {}),
    ...(mm !== undefined ? { maxMemory: parseSize(mm) } : {}),
  });
  const train = loaded.model.config.nCtxTrain;
  const nCtx = num(values["ctx-size"], "ctx-size", { int: true, min: 1 }) ?? Math.min(train, opts.defaultCtx ?? 4096);
  if (nCtx > train) {
    throw new ArgumentError(`--ctx-size ${nCtx} is larger than the ${train} tokens this model was trained for`);
  }
  const ctx = loaded.model.newContext({ nCtx, kvType: kv as KvType });
  return { ...loaded, ctx, threads };
}
