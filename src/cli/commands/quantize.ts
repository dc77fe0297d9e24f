import { availableParallelism } from "node:os";
import { existsSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { describeFileTypes, quantizeFile } from "../../quant/quantize-file.js";
import { FILE_TYPES, type FileTypeName } from "../../quant/quantize-model.js";
import { typeName } from "../../quant/format.js";
import { num, parse } from "../args.js";
import { Progress } from "../progress.js";

export const HELP = `cmx quantize: write a GGUF with quantized weights, llama-quantize's per-tensor recipes

Usage: cmx quantize IN.gguf OUT.gguf TYPE [--pure] [-t N]

  --pure          every quantizable tensor gets TYPE (no mixes, no bumps)
  -t, --threads N worker threads (default: all cores)

Norms and the router (ffn_gate_inp) stay F32. The _S/_M/_L types mix types per tensor as
llama-quantize does for MoE models: attn_k/attn_v at Q8_0 with 8 experts, more bits for some
ffn_down layers, output.weight at Q6_K; K-quant tensors whose rows are not a multiple of 256 fall
back (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->IQ4_NL). The blocks are bit-identical to
llama-quantize's (without an importance matrix).

Types (bits per weight for a 7B model):
${describeFileTypes()}
`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    pure: { type: "boolean" }, threads: { type: "string", short: "t" }, help: { type: "boolean", short: "h" },
  }, "quantize");
  if (values.help) { process.stdout.write(HELP); return; }
  if (positionals.length !== 3) throw new ArgumentError("quantize: expected IN.gguf OUT.gguf TYPE (see cmx quantize --help)");
  const [inPath, outPath, type] = positionals as [string, string, string];
  if (!existsSync(inPath)) throw new ArgumentError(`quantize: ${inPath} not found`);
  if (!FILE_TYPES[type.toUpperCase() as FileTypeName]) throw new ArgumentError(`quantize: unknown type "${type}"; one of ${Object.keys(FILE_TYPES).join(", ")}`);
  const threads = num(values.threads, "threads", { int: true, min: 1 }) ?? availableParallelism();
  let prog: Progress | undefined;
  const t0 = performance.now();
  const rep = await quantizeFile(inPath, outPath, type, {
    pure: !!values.pure, threads,
    onTensor: (i, n, name, from, to) => {
      prog ??= new Progress("quantize", n);
      prog.update(i, `${name} ${typeName(from)} -> ${typeName(to)}`);
    },
  });
  prog?.update(rep.tensors.length);
  const counts = new Map<string, number>();
  for (const t of rep.tensors) counts.set(t.to, (counts.get(t.to) ?? 0) + 1);
  const mib = (b: number) => (b / 2 ** 20).toFixed(2);
  process.stdout.write(`${outPath}: ${type.toUpperCase()}, ${[...counts].map(([k, v]) => `${v} x ${k}`).join(", ")}\n`);
  process.stdout.write(`size ${mib(rep.inBytes)} MiB -> ${mib(rep.outBytes)} MiB of tensors (${((8 * rep.outBytes) / rep.nParams).toFixed(2)} bits per weight) in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${threads} threads\n`);
}
