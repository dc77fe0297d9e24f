import { availableParallelism } from "node:os";
import { existsSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { readImatrix } from "../../io/imatrix.js";
import { readGgufHeader } from "../../io/gguf/reader.js";
import { describeFileTypes, importanceMap, quantizeFile } from "../../quant/quantize-file.js";
import { FILE_TYPES, type FileTypeName } from "../../quant/quantize-model.js";
import { typeByName, typeName } from "../../quant/format.js";
import { usesImportance } from "../../quant/index.js";
import { num, parse } from "../args.js";
import { Progress } from "../progress.js";

export const HELP = `cmx quantize: write a GGUF with quantized weights, llama-quantize's per-tensor recipes

Usage: cmx quantize IN.gguf OUT.gguf TYPE [--pure] [--imatrix FILE] [-t N]

  --pure            every quantizable tensor gets TYPE (no mixes, no bumps)
  --imatrix FILE    importance matrix from \`cmx imatrix\` or llama-imatrix (.dat or .gguf): the
                    quantizers weigh each column by it, as llama-quantize --imatrix does (Q4_0,
                    Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_XS, IQ3_XXS, IQ3_S, IQ2_XS, IQ2_XXS; F16,
                    Q8_0 and IQ4_NL ignore it); required for IQ3_XXS, IQ2_XS, IQ2_XXS
  -t, --threads N   worker threads (default: all cores)

Norms and the router (ffn_gate_inp) stay F32. The _S/_M/_L types mix types per tensor as
llama-quantize does for MoE models: attn_k/attn_v at Q8_0 with 8 experts, more bits for some
ffn_down layers, output.weight at Q6_K; K-quant tensors whose rows are not a multiple of 256 fall
back (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->IQ4_NL). The blocks are bit-identical to
llama-quantize's, with or without an importance matrix.

Types (bits per weight for a 7B model):
${describeFileTypes()}
`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    pure: { type: "boolean" }, threads: { type: "string", short: "t" }, help: { type: "boolean", short: "h" },
    imatrix: { type: "string" },
  }, "quantize");
  if (values.help) { process.stdout.write(HELP); return; }
  if (positionals.length !== 3) throw new ArgumentError("quantize: expected IN.gguf OUT.gguf TYPE (see cmx quantize --help)");
  const [inPath, outPath, type] = positionals as [string, string, string];
  if (!existsSync(inPath)) throw new ArgumentError(`quantize: ${inPath} not found`);
  if (!FILE_TYPES[type.toUpperCase() as FileTypeName]) throw new ArgumentError(`quantize: unknown type "${type}"; one of ${Object.keys(FILE_TYPES).join(", ")}`);
  const threads = num(values.threads, "threads", { int: true, min: 1 }) ?? availableParallelism();
  const imFile = values.imatrix as string | undefined;
  const imatrix = imFile !== undefined ? readImatrix(imFile) : undefined;
  const importance = imatrix ? importanceMap(imatrix, readGgufHeader(inPath).tensors, imFile) : undefined;
  if (imatrix) {
    process.stderr.write(`quantize: imatrix ${imFile}: ${imatrix.entries.size} entries, ${imatrix.chunkCount} chunks${imatrix.datasets.length ? ` of ${imatrix.datasets.join(", ")}` : ""}\n`);
  }
  let prog: Progress | undefined;
  const t0 = performance.now();
  const rep = await quantizeFile(inPath, outPath, type, {
    pure: !!values.pure, threads,
    ...(imatrix && importance ? {
      imatrix: importance,
      imatrixInfo: { file: imFile!, entries: imatrix.entries.size, chunks: imatrix.chunkCount, ...(imatrix.datasets.length ? { dataset: imatrix.datasets[imatrix.datasets.length - 1]! } : {}) },
    } : {}),
    onTensor: (i, n, name, from, to) => {
      prog ??= new Progress("quantize", n);
      prog.update(i, `${name} ${typeName(from)} -> ${typeName(to)}`);
    },
  });
  prog?.update(rep.tensors.length);
  if (importance) {
    const changed = rep.tensors.filter((t) => t.from !== t.to);
    const uses = (t: { to: string }) => usesImportance(typeByName(t.to)!.type);
    process.stderr.write(`quantize: importance used for ${rep.tensors.filter((t) => t.imatrix).length} tensors\n`);
    // token_embd is looked up, never multiplied: no imatrix has it
    const missing = changed.filter((t) => uses(t) && !importance.has(t.name) && t.name !== "token_embd.weight").map((t) => t.name);
    if (missing.length) process.stderr.write(`quantize: note: no imatrix entry for ${missing.length} tensors (quantized without): ${missing.slice(0, 4).join(", ")}${missing.length > 4 ? ", ..." : ""}\n`);
    const ignored = [...new Set(changed.filter((t) => importance.has(t.name) && !uses(t)).map((t) => t.to))];
    if (ignored.length) process.stderr.write(`quantize: note: ${ignored.join(", ")} ${ignored.length > 1 ? "do" : "does"} not use the importance matrix (reference quantizer)\n`);
  }
  const counts = new Map<string, number>();
  for (const t of rep.tensors) counts.set(t.to, (counts.get(t.to) ?? 0) + 1);
  const mib = (b: number) => (b / 2 ** 20).toFixed(2);
  process.stdout.write(`${outPath}: ${type.toUpperCase()}, ${[...counts].map(([k, v]) => `${v} x ${k}`).join(", ")}\n`);
  process.stdout.write(`size ${mib(rep.inBytes)} MiB -> ${mib(rep.outBytes)} MiB of tensors (${((8 * rep.outBytes) / rep.nParams).toFixed(2)} bits per weight) in ${((performance.now() - t0) / 1000).toFixed(1)} s, ${threads} threads\n`);
}
