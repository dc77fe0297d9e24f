import { readFileSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { collectImatrix } from "../../eval/imatrix.js";
import { imatrixFormatOf, writeImatrix, type ImatrixFormat } from "../../io/imatrix.js";
import { MODEL_HELP, MODEL_OPTIONS, num, parse } from "../args.js";
import { Progress } from "../progress.js";
import { loadFromOptions, kvTypeOption } from "../session.js";

export const HELP = `cmx imatrix: activation statistics for importance-matrix quantization (llama-imatrix)

Usage: cmx imatrix [-m MODEL] -f TEXT [-o FILE] [-c CTX] [--chunks N] [-b BATCH] [--output-format dat|gguf]

  -f, --file PATH         the calibration text (UTF-8)
  -o, --output FILE       where to write (default: imatrix.dat); a .gguf name writes the GGUF format
  -c, --ctx-size N        tokens per chunk (default: 512)
      --chunks N          use at most N chunks (default: all)
  -b, --batch-size N      tokens per forward step (default: the chunk)
      --output-format F   dat (llama.cpp's legacy binary format, what every llama-quantize reads)
                          or gguf (llama.cpp's newer format); default: from the file name

The text is cut into chunks of CTX tokens, each evaluated from an empty cache with its first token
replaced by BOS (as perplexity). For every weight that multiplies an activation (attn_q/k/v/output,
the router, ffn_gate/up/down, per expert for the stacked ffn_*_exps tensors, and output.weight),
the file holds Σx² per input column over the tokens that went through it: for an expert, the
tokens routed to it. Give the file to \`cmx quantize --imatrix FILE\` or to llama-quantize.
The perplexity of the second half of each chunk is printed as it goes, as llama-imatrix does.

${MODEL_HELP}
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    ...MODEL_OPTIONS, file: { type: "string", short: "f" }, output: { type: "string", short: "o" },
    "batch-size": { type: "string", short: "b" }, chunks: { type: "string" }, "output-format": { type: "string" },
  }, "imatrix");
  if (values.help) { process.stdout.write(HELP); return; }
  if (!values.file) throw new ArgumentError("imatrix: give the calibration text with -f FILE (see cmx imatrix --help)");
  const out = (values.output as string | undefined) ?? "imatrix.dat";
  const fmt = (values["output-format"] as string | undefined) ?? imatrixFormatOf(out);
  if (fmt !== "dat" && fmt !== "gguf") throw new ArgumentError(`--output-format: expected dat or gguf, got "${fmt}"`);
  let text: string;
  try { text = readFileSync(values.file as string, "utf8"); } catch (e) { throw new ArgumentError(`--file: ${(e as Error).message}`); }
  const nCtx = num(values["ctx-size"], "ctx-size", { int: true, min: 2 }) ?? 512;
  const nBatch = num(values["batch-size"], "batch-size", { int: true, min: 1 });
  const nChunks = num(values.chunks, "chunks", { int: true, min: 1 });
  const kvType = kvTypeOption(values);
  const m = loadFromOptions(values);
  try {
    if (nCtx > m.model.config.nCtxTrain) throw new ArgumentError(`--ctx-size ${nCtx} is larger than the ${m.model.config.nCtxTrain} tokens this model was trained for`);
    const tokens = m.tokenizer.encode(text, { addBos: m.tokenizer.vocab.addBos });
    const total = Math.min(Math.floor(tokens.length / nCtx), nChunks ?? Infinity);
    process.stderr.write(`imatrix: ${tokens.length} tokens, ${Math.max(0, total)} chunks of ${nCtx}, ${m.model.config.name}\n`);
    const prog = new Progress("imatrix", Math.max(1, total));
    const r = collectImatrix(m.model, tokens, {
      nCtx, kvType, bosId: m.tokenizer.vocab.bosId, dataset: values.file as string, exact: !!values.exact,
      ...(nBatch ? { nBatch } : {}), ...(nChunks ? { nChunks } : {}),
      onChunk: (i, _n, ppl, ms) => prog.update(i + 1, `${(ms / 1000).toFixed(2)} s/chunk, PPL ${ppl.toFixed(4)}`),
    });
    for (const [name, e] of r.imatrix.entries) {
      const zeros = e.counts.filter((c) => c === 0).length;
      if (zeros && zeros < e.counts.length) {
        process.stderr.write(`imatrix: note: ${name}: ${zeros} of ${e.counts.length} experts saw no token; llama-quantize treats them as importance 1\n`);
      }
    }
    const w = writeImatrix(out, r.imatrix, fmt as ImatrixFormat);
    for (const s of w.skipped) process.stderr.write(`imatrix: note: ${s} saw no token and is left out\n`);
    process.stdout.write(`${out}: ${w.written} entries (${fmt === "gguf" ? "GGUF" : "legacy .dat"} format), ${r.nChunks} chunks of ${nCtx} tokens, PPL ${r.ppl.toFixed(4)}\n`);
  } finally {
    m.model.close();
  }
}
