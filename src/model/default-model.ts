/**
 * The default model used when -m is omitted: the built-in Chinese Mixtral trained by this toolkit
 * (assets/models/, see docs/default-model.md; `npm run train:default` rebuilds it). CMX_MODEL
 * names another default.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ArgumentError } from "../errors.js";

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const TOKENIZER_V1 = join(PACKAGE_ROOT, "assets", "tokenizer", "mistral-v1.model");

/** The built-in trained model, shipped in the repository. */
export const BUILTIN_MODEL = join(PACKAGE_ROOT, "assets", "models", "chinese-mixtral-tiny-instruct.Q8_0.gguf");

export function defaultModelPath(): string {
  if (process.env.CMX_MODEL) return process.env.CMX_MODEL;
  if (!existsSync(BUILTIN_MODEL)) {
    throw new ArgumentError(`the built-in model ${BUILTIN_MODEL} is missing (it ships with the repository; \`npm run train:default\` rebuilds it): give a model with -m or CMX_MODEL`);
  }
  return BUILTIN_MODEL;
}
