/**
 * Test fixture: a tiny Hugging Face Mixtral (or dense Llama) folder made from a GGUF, the way a
 * user's download looks: config.json, the weights in TWO safetensors shards with
 * model.safetensors.index.json, tokenizer.model (the reference's real Mistral SentencePiece
 * model when given), tokenizer.json, tokenizer_config.json with the chat template.
 *
 * As a script: node dist/convert/fixture.js OUT_DIR [MODEL.gguf] [TOKENIZER.model]
 * (defaults: ../shared/reference/models/A-F32.gguf and its tokenizer.model.v1).
 */
import { copyFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { tensorByteSize } from "../io/safetensors/writer.js";
import { openGgufModel } from "./source.js";
import { writeHfFolder, type HfDtype } from "./write-hf.js";

export interface FixtureOptions {
  /** copy this tokenizer.model over the one written from the GGUF's vocabulary */
  tokenizerModel?: string;
  dtype?: HfDtype;
}

/** Write `gguf` as an HF folder at `dir` with its weights split into exactly two shards. */
export function writeHfFixture(gguf: string, dir: string, opts: FixtureOptions = {}): string[] {
  const src = openGgufModel(gguf);
  try {
    const dtype = opts.dtype ?? "f32";
    const st = dtype === "f32" ? "F32" : dtype === "f16" ? "F16" : "BF16";
    let total = 0;
    for (const t of src.tensors.values()) total += tensorByteSize({ dtype: st, shape: t.shape });
    // the last tensor written is lm_head (or model.norm when tied): the first shard takes the rest
    const last = src.tied ? src.tensors.get("model.norm.weight")! : src.tensors.get("lm_head.weight")!;
    const r = writeHfFolder(src, dir, { dtype, maxShardBytes: total - tensorByteSize({ dtype: st, shape: last.shape }) });
    if (opts.tokenizerModel) copyFileSync(opts.tokenizerModel, join(dir, "tokenizer.model"));
    return r.files;
  } finally {
    src.close();
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { refPath } = await import("../test-util/paths.js");
  const [out, model, tok] = process.argv.slice(2);
  if (!out) {
    process.stderr.write("usage: node dist/convert/fixture.js OUT_DIR [MODEL.gguf] [TOKENIZER.model]\n");
    process.exit(2);
  }
  const files = writeHfFixture(model ?? refPath("models", "A-F32.gguf"), out, { tokenizerModel: tok ?? refPath("tokenizer", "tokenizer.model.v1") });
  process.stdout.write(`${out}: ${files.join(", ")}\n`);
}
