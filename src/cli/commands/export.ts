import { ArgumentError } from "../../errors.js";
import { exportGgufToHf } from "../../convert/index.js";
import { parseHfDtype } from "../../convert/write-hf.js";
import { parse } from "../args.js";
import { Progress } from "../progress.js";

export const HELP = `cmx export: a GGUF to a Hugging Face folder (safetensors + config.json + tokenizer)

Usage: cmx export MODEL.gguf HF_DIR [--dtype auto|f32|f16|bf16] [--shard-size SIZE]

  --dtype T         tensor dtype (default auto: the GGUF's float type; f16 for quantized files)
  --shard-size SIZE largest safetensors shard, e.g. 5GB, 500MB (default 5GB); bigger models get
                    model-0000i-of-0000N.safetensors and model.safetensors.index.json

Quantized tensors are dequantized; q/k rows are permuted back to Hugging Face's RoPE layout and
stacked experts split into block_sparse_moe.experts.E.w1/w2/w3. Writes config.json,
generation_config.json, tokenizer.model, tokenizer.json, tokenizer_config.json (with the chat
template) and special_tokens_map.json. HF_DIR must be new or empty; everything is written into a
temporary folder renamed when complete. See docs/convert.md.
`;

/** "5GB", "500MB", "2GiB", "123" (bytes). */
export function parseSize(s: string, what: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+)\s*(k|m|g|t)?(i)?b?\s*$/i.exec(s);
  if (!m) throw new ArgumentError(`${what}: "${s}" is not a size like 5GB or 500MB`);
  const base = m[3] ? 1024 : 1000;
  const p = m[2] ? "kmgt".indexOf(m[2].toLowerCase()) + 1 : 0;
  const v = Number(m[1]) * base ** p;
  if (!(v >= 1)) throw new ArgumentError(`${what}: "${s}" is too small`);
  return Math.floor(v);
}

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    dtype: { type: "string" }, "shard-size": { type: "string" }, help: { type: "boolean", short: "h" },
  }, "export");
  if (values.help) { process.stdout.write(HELP); return; }
  const opt = (k: string): string | undefined => values[k] as string | undefined;
  if (positionals.length !== 2) throw new ArgumentError("export: expected MODEL.gguf HF_DIR (see cmx export --help)");
  const [model, out] = positionals as [string, string];
  const dtype = parseHfDtype(opt("dtype") ?? "auto");
  const shard = opt("shard-size") !== undefined ? parseSize(opt("shard-size")!, "--shard-size") : undefined;
  let prog: Progress | undefined;
  const t0 = performance.now();
  const r = exportGgufToHf(model, out, {
    dtype,
    ...(shard !== undefined ? { maxShardBytes: shard } : {}),
    onTensor: (done, total, name) => {
      prog ??= new Progress("export", total);
      prog.update(done, name);
    },
  });
  for (const n of r.notes) process.stderr.write(`export: note: ${n}\n`);
  process.stdout.write(`${out}: ${r.files.join(", ")} (${(r.totalBytes / 2 ** 20).toFixed(2)} MiB of ${r.dtype} tensors) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
