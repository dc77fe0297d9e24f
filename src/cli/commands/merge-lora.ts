import { ArgumentError } from "../../errors.js";
import { parseGgufOutType } from "../../convert/write-gguf.js";
import { parseHfDtype } from "../../convert/write-hf.js";
import { mergeLora } from "../../lora/merge.js";
import { parse } from "../args.js";
import { Progress } from "../progress.js";
import { parseSize } from "./export.js";

export const HELP = `cmx merge-lora: merge a PEFT LoRA adapter into a base model

Usage: cmx merge-lora --base BASE --lora ADAPTER_DIR --out OUT [--outtype T] [--dtype T] [--shard-size SIZE]

  --base BASE        the base model: a Hugging Face folder or a GGUF
  --lora DIR         a PEFT adapter: adapter_config.json + adapter_model.safetensors (or
                     adapter_model.bin, read with a restricted unpickler that refuses anything
                     but tensors)
  --out OUT          OUT.gguf writes a GGUF; any other path a Hugging Face folder (new or empty)
  --outtype T        GGUF weight type: f32, f16 (default), bf16, q8_0
  --dtype T          Hugging Face output dtype: auto (the base's, default), f32, f16, bf16
  --shard-size SIZE  largest safetensors shard for folder output (default 5GB)

W' = W + (lora_alpha / r) B.A in float32 for every LoRA target (q/k/v/o_proj, the router gate,
every expert's w1/w2/w3, dense gate/up/down_proj, embed_tokens, lm_head; alpha / sqrt(r) with
use_rslora); modules_to_save tensors (embed_tokens, lm_head) replace the base's. The delta is applied
in Hugging Face layout before the GGUF q/k row permutation. The adapter is checked against the base
first: a tensor of another shape, layer or module is an error naming it and both shapes.
See docs/convert.md.
`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    base: { type: "string" }, lora: { type: "string" }, out: { type: "string" },
    outtype: { type: "string" }, dtype: { type: "string" }, "shard-size": { type: "string" },
    help: { type: "boolean", short: "h" },
  }, "merge-lora");
  if (values.help) { process.stdout.write(HELP); return; }
  const opt = (k: string): string | undefined => values[k] as string | undefined;
  if (positionals.length) throw new ArgumentError(`merge-lora: unexpected argument "${positionals[0]}" (see cmx merge-lora --help)`);
  for (const k of ["base", "lora", "out"] as const) if (!values[k]) throw new ArgumentError(`merge-lora: --${k} is required (see cmx merge-lora --help)`);
  let prog: Progress | undefined;
  const t0 = performance.now();
  const r = mergeLora({
    base: opt("base")!, lora: opt("lora")!, out: opt("out")!,
    ...(opt("outtype") !== undefined ? { outType: parseGgufOutType(opt("outtype")!) } : {}),
    ...(opt("dtype") !== undefined ? { dtype: parseHfDtype(opt("dtype")!) } : {}),
    ...(opt("shard-size") !== undefined ? { maxShardBytes: parseSize(opt("shard-size")!, "--shard-size") } : {}),
    onTensor: (done, total, name) => {
      prog ??= new Progress("merge-lora", total);
      prog.update(done, name);
    },
  });
  for (const n of r.notes) process.stderr.write(`merge-lora: note: ${n}\n`);
  process.stdout.write(`${opt("out")}: merged ${r.pairs} LoRA pairs, replaced ${r.replaced} tensors (${r.format === "gguf" ? "GGUF" : "Hugging Face folder"}) in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
