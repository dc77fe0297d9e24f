import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError } from "../../errors.js";
import { perplexity, type PerplexityResult } from "../../eval/perplexity.js";
import { lineChartSvg, writeChart } from "../../plot/chart.js";
import { MODEL_HELP, MODEL_OPTIONS, num, parse } from "../args.js";
import { Progress } from "../progress.js";
import { openModel } from "../session.js";

export const HELP = `cmx perplexity: perplexity of a model on a text, llama-perplexity's method

Usage: cmx perplexity [-m MODEL] -f TEXT [-c CTX] [-b BATCH] [--chunks N] [--fast] [--sweep 512,1024,...] [--out DIR]

  -f, --file PATH       the text (UTF-8)
  -c, --ctx-size N      window size (default: 512); the second half of each window is scored
  -b, --batch-size N    tokens per forward step (default: the window)
      --chunks N        use at most N windows
      --fast            the default (faster) kernels instead of llama.cpp's arithmetic: on
                        quantized models the figure then differs from llama-perplexity's by
                        about 1e-4..1e-3 relative
      --sweep LIST      perplexity for each context size in LIST: a table, plus a
                        "PPL vs context length" chart (SVG and PNG) in --out
      --out DIR         where --sweep writes ppl-vs-context.{json,svg,png} (default: .)

Tokens = BOS + tokenize(text); each window is evaluated from an empty cache with its first token
replaced by BOS; prints the running perplexity per window and PPL = x +/- error. The forward pass
uses llama.cpp's float arithmetic bit for bit (ggml-cpu's x86 kernels), so the figures are
llama-perplexity's (same -c, --kv-type).

${MODEL_HELP}
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    ...MODEL_OPTIONS, file: { type: "string", short: "f" }, "batch-size": { type: "string", short: "b" },
    chunks: { type: "string" }, sweep: { type: "string" }, out: { type: "string" }, fast: { type: "boolean" },
  }, "perplexity");
  if (values.help) { process.stdout.write(HELP); return; }
  if (!values.file) throw new ArgumentError("perplexity: give the text with -f FILE (see cmx perplexity --help)");
  let text: string;
  try { text = readFileSync(values.file as string, "utf8"); } catch (e) { throw new ArgumentError(`--file: ${(e as Error).message}`); }
  const sizes = values.sweep !== undefined
    ? String(values.sweep).split(",").map((s) => num(s.trim(), "sweep", { int: true, min: 4 })!)
    : [num(values["ctx-size"], "ctx-size", { int: true, min: 4 }) ?? 512];
  const nBatch = num(values["batch-size"], "batch-size", { int: true, min: 1 });
  const nChunks = num(values.chunks, "chunks", { int: true, min: 1 });
  const m = openModel({ ...values, "ctx-size": String(Math.max(...sizes)) });
  const tokens = m.tokenizer.encode(text, { addBos: true });
  process.stderr.write(`perplexity: ${tokens.length} tokens, ${m.model.config.name}, kv ${m.ctx.cache.type}\n`);
  const results: PerplexityResult[] = [];
  for (const nCtx of sizes) {
    const total = Math.min(Math.floor(tokens.length / nCtx), nChunks ?? Infinity);
    const prog = new Progress(`ctx ${nCtx}`, Math.max(1, total));
    const chunkLine: string[] = [];
    const r = perplexity(m.model, tokens, {
      nCtx, kvType: m.ctx.cache.type, bosId: m.tokenizer.vocab.bosId, exact: !values.fast,
      ...(nBatch ? { nBatch } : {}), ...(nChunks ? { nChunks } : {}),
      onChunk: (i, n, p, ms) => {
        chunkLine.push(`[${i + 1}]${p.toFixed(4)}`);
        prog.update(i + 1, `${(ms / 1000).toFixed(2)} s/window, PPL ${p.toFixed(4)}`);
        void n;
      },
    });
    results.push(r);
    process.stdout.write(`${chunkLine.join(",")}\n`);
    process.stdout.write(`Final estimate (ctx ${nCtx}, ${r.nChunks} windows, ${r.scoredTokens} scored tokens): PPL = ${r.ppl.toFixed(4)} +/- ${r.pplErr.toFixed(5)}\n`);
  }
  if (values.sweep !== undefined) {
    const dir = (values.out as string | undefined) ?? ".";
    mkdirSync(dir, { recursive: true });
    process.stdout.write(`\n| context | windows | PPL | +/- |\n| ---: | ---: | ---: | ---: |\n`);
    for (const r of results) process.stdout.write(`| ${r.nCtx} | ${r.nChunks} | ${r.ppl.toFixed(4)} | ${r.pplErr.toFixed(4)} |\n`);
    const json = join(dir, "ppl-vs-context.json");
    writeFileSync(`${json}.tmp`, JSON.stringify({ model: m.path, text: values.file, kvType: m.ctx.cache.type, results }, null, 2));
    renameSync(`${json}.tmp`, json);
    const svg = lineChartSvg([{ name: m.model.config.name, points: results.map((r) => [r.nCtx, r.ppl]) }], {
      title: `Perplexity vs context length (${m.model.config.name})`, xLabel: "context length (tokens)", yLabel: "perplexity", logX: true,
    });
    const [s, p] = await writeChart(join(dir, "ppl-vs-context"), svg);
    process.stdout.write(`wrote ${json}, ${s}, ${p}\n`);
  }
}
