/** Access to ../shared/reference: the manifest, models and raw little-endian arrays. */
import { existsSync, readFileSync } from "node:fs";
import { refPath } from "./paths.js";

export interface RefRun {
  model: string;
  sequence: string;
  n_tokens: number;
  n_vocab: number;
  logits: { file: string; positions: number[]; shape: number[] };
  top16: { ids_file: string; values_file: string; shape: number[] };
  argmax: number[];
  hidden: Record<string, { file: string; dtype: string; shape: number[] }>;
  router_gap_min: number[];
}

export interface RefManifest {
  sequences: Record<string, { text: string; token_ids: number[] }>;
  models: Record<string, { file: string | null; hparams: Record<string, number> }>;
  runs: RefRun[];
}

let cached: RefManifest | undefined;
export function manifest(): RefManifest {
  cached ??= JSON.parse(readFileSync(refPath("manifest.json"), "utf8")) as RefManifest;
  return cached;
}

export function readF32(rel: string): Float32Array {
  const b = readFileSync(refPath(rel));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export function readI32(rel: string): Int32Array {
  const b = readFileSync(refPath(rel));
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** Path of a reference model's GGUF, if present (B-F32 is generated, see scripts/). */
export function modelPath(name: string): string | undefined {
  const inModels = refPath("models", `${name}.gguf`);
  if (existsSync(inModels)) return inModels;
  const generated = process.env.CMX_REF_EXTRA ? `${process.env.CMX_REF_EXTRA}/${name}.gguf` : undefined;
  return generated && existsSync(generated) ? generated : undefined;
}
