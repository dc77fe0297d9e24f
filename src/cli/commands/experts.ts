import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { ArgumentError } from "../../errors.js";
import { RoutingStats, shares, type RoutingSummary } from "../../moe/routing-stats.js";
import { heatmapSvg, writeChart } from "../../plot/chart.js";
import { MODEL_HELP, MODEL_OPTIONS, parse } from "../args.js";
import { Progress } from "../progress.js";
import { openModel } from "../session.js";

export const HELP = `cmx experts: which experts each layer uses on a text, and how texts differ

Usage: cmx experts [-m MODEL] -f TEXT [-f TEXT2 ...] [--out DIR]

  -f, --file PATH    a text (UTF-8); repeat for several (e.g. Chinese and English)
      --out DIR      where to write experts.json and the heatmaps (default: ./experts)

For each layer and expert: how many tokens chose it among their top-k ("counts", BOS included)
and as first choice ("top1"), its mean router probability, its mean weight when chosen, and
expert pair co-occurrence. Texts longer than the context are cut into windows, each evaluated
from an empty cache. Writes experts.json ({files: [{file, nTokens, layers: [{counts, top1,
meanProb, meanWeight, pairs}]}]}), a heatmap of expert shares per file and, with two or more
files, a heatmap of the difference between the first two (SVG and PNG).

${MODEL_HELP}
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parse(argv, { ...MODEL_OPTIONS, file: { type: "string", short: "f", multiple: true }, out: { type: "string" } }, "experts");
  if (values.help) { process.stdout.write(HELP); return; }
  const files = (values.file as string[] | undefined) ?? [];
  if (!files.length) throw new ArgumentError("experts: give at least one text with -f FILE (see cmx experts --help)");
  const m = openModel(values);
  const c = m.model.config;
  if (c.nExpert === 0) throw new ArgumentError(`experts: ${m.path} is a dense model (no experts)`);
  const outDir = (values.out as string | undefined) ?? "experts";
  mkdirSync(outDir, { recursive: true });
  const results: ({ file: string } & RoutingSummary)[] = [];
  for (const f of files) {
    let text: string;
    try { text = readFileSync(f, "utf8"); } catch (e) { throw new ArgumentError(`--file: ${(e as Error).message}`); }
    const tokens = m.tokenizer.encode(text, { addBos: true });
    const stats = new RoutingStats(c.nLayer, c.nExpert, c.nExpertUsed);
    const n = m.ctx.nCtx;
    const prog = new Progress(basename(f), tokens.length);
    for (let i = 0; i < tokens.length; i += n) {
      m.ctx.truncate(0);
      m.ctx.eval(tokens.slice(i, i + n), { logits: "none", trace: stats.trace });
      prog.update(Math.min(tokens.length, i + n));
    }
    const s = stats.summary();
    results.push({ file: f, ...s });
    const rows = shares(s);
    const [, png] = await writeChart(join(outDir, `${basename(f).replace(/\.[^.]*$/, "")}.experts`), heatmapSvg(rows, {
      title: `Expert share per layer: ${basename(f)} (${s.nTokens} tokens)`, rowLabel: "layer", colLabel: "expert",
      format: (v) => `${(100 * v).toFixed(0)}%`,
    }));
    process.stdout.write(`${f}: ${s.nTokens} tokens -> ${png}\n`);
    process.stdout.write(`  layer | ${Array.from({ length: c.nExpert }, (_, e) => `e${e}`.padStart(5)).join(" ")}\n`);
    rows.forEach((r, l) => process.stdout.write(`  ${String(l).padStart(5)} | ${r.map((v) => `${(100 * v).toFixed(1)}`.padStart(5)).join(" ")}\n`));
  }
  let diff: number[][] | undefined;
  if (results.length >= 2) {
    const a = shares(results[0]!), b = shares(results[1]!);
    diff = a.map((r, l) => r.map((v, e) => v - b[l]![e]!));
    const [, png] = await writeChart(join(outDir, "experts-diff"), heatmapSvg(diff, {
      title: `Expert share difference: ${basename(results[0]!.file)} minus ${basename(results[1]!.file)}`,
      rowLabel: "layer", colLabel: "expert", diverging: true, format: (v) => { const p = Math.round(100 * v); return `${p > 0 ? "+" : ""}${p === 0 ? 0 : p}`; },
    }));
    process.stdout.write(`difference (percentage points) -> ${png}\n`);
  }
  const json = join(outDir, "experts.json");
  writeFileSync(`${json}.tmp`, JSON.stringify({ model: m.path, nLayer: c.nLayer, nExpert: c.nExpert, nExpertUsed: c.nExpertUsed, files: results, shareDifference: diff }, null, 1));
  renameSync(`${json}.tmp`, json);
  process.stdout.write(`wrote ${json}\n`);
}
