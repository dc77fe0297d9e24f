/**
 * The default model used when -m is omitted: the built-in Chinese Mixtral trained by this toolkit
 * (assets/models/, see docs/default-model.md and npm run train:default). Where it is absent (a
 * checkout before it shipped), a small random-weight Mixtral with the real Mistral v1 vocabulary
 * is generated on first use from a fixed seed: the pipeline runs, the text it writes is noise.
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { GgmlType } from "../quant/format.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { writeSyntheticModel, type SyntheticSpec } from "./synthetic.js";

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const TOKENIZER_V1 = join(PACKAGE_ROOT, "assets", "tokenizer", "mistral-v1.model");

export const DEFAULT_SPEC: SyntheticSpec = {
  name: "tiny-random-mixtral", nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2,
  nFf: 128, nCtx: 2048, seed: 20240101, type: GgmlType.Q8_0,
};

/** The built-in trained model, shipped in the repository. */
export const BUILTIN_MODEL = join(PACKAGE_ROOT, "assets", "models", "chinese-mixtral-tiny-instruct.Q8_0.gguf");

export function defaultModelPath(): string {
  if (process.env.CMX_MODEL) return process.env.CMX_MODEL;
  if (existsSync(BUILTIN_MODEL)) return BUILTIN_MODEL;
  const p = join(PACKAGE_ROOT, "models", "tiny-random-mixtral.gguf");
  if (!existsSync(p)) {
    mkdirSync(dirname(p), { recursive: true });
    process.stderr.write(`cmx: generating the stand-in default model ${p} (random weights, real vocabulary)\n`);
    writeSyntheticModel(p, DEFAULT_SPEC, loadSpmModel(TOKENIZER_V1));
  }
  return p;
}
