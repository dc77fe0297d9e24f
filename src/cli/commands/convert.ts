import { existsSync, statSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { convertHfToGguf } from "../../convert/index.js";
import { parseGgufOutType } from "../../convert/write-gguf.js";
import { typeName } from "../../quant/format.js";
import { parse } from "../args.js";
import { Progress } from "../progress.js";

export const HELP = `cmx convert: a Hugging Face Mixtral / Mistral / Llama folder to GGUF, as llama.cpp's converter

Usage: cmx convert HF_DIR OUT.gguf [--outtype f32|f16|bf16|q8_0] [--name NAME]

  --outtype T   weight type (default f16); norms and the MoE router stay F32; with q8_0, tensors
                whose rows are not a multiple of 32 are written F16
  --name NAME   general.name (default: from config.json)

HF_DIR holds config.json (MixtralForCausalLM, MistralForCausalLM or LlamaForCausalLM), the weights
(model.safetensors or shards with model.safetensors.index.json; pytorch_model*.bin also read, with
a restricted unpickler), and tokenizer.model (preferred) or tokenizer.json, plus
tokenizer_config.json for the chat template. q_proj/k_proj rows are permuted to GGUF's RoPE layout,
experts are stacked into ffn_*_exps. Tensors are converted one at a time; the output is written to
a temporary file and renamed when complete. See docs/convert.md.
`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    outtype: { type: "string" }, name: { type: "string" }, help: { type: "boolean", short: "h" },
  }, "convert");
  if (values.help) { process.stdout.write(HELP); return; }
  const opt = (k: string): string | undefined => values[k] as string | undefined;
  if (positionals.length !== 2) throw new ArgumentError("convert: expected HF_DIR OUT.gguf (see cmx convert --help)");
  const [dir, out] = positionals as [string, string];
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new ArgumentError(`convert: ${dir} is not a folder`);
  const outType = parseGgufOutType(opt("outtype") ?? "f16");
  let prog: Progress | undefined;
  const t0 = performance.now();
  const r = convertHfToGguf(dir, out, {
    outType,
    ...(opt("name") !== undefined ? { name: opt("name") } : {}),
    onTensor: (done, total, name, type) => {
      prog ??= new Progress("convert", total);
      prog.update(done, `${name} ${typeName(type)}`);
    },
  });
  const c = r.config;
  process.stdout.write(`${out}: ${c.nLayer} layers, ${c.nExpert ? `${c.nExpert} experts (top-${c.nExpertUsed})` : "dense"}, ${r.tensors} tensors, ` +
    `${(r.bytes / 2 ** 20).toFixed(2)} MiB of ${outType} weights in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}
