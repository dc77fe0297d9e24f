/**
 * llama-bench-like speed test: prompt processing (pp) and text generation (tg) tokens/s.
 *
 *   npm run bench -- -m MODEL [-t N] [-p 128] [-n 32] [-r 3] [--kv-type f16|f32] [--backend wasm|js] [--vs] [--json]
 *
 * Each repetition evaluates the prompt in one batch on a fresh context, then generates nG greedy
 * tokens one at a time (after BOS), as llama-bench's pp and tg tests do; the first repetition is a
 * warm-up. `--vs` (alias `--llama-cpp`) runs the same measurement through node-llama-cpp 3.21.1
 * (prebuilt llama.cpp, CPU, same threads, F16 cache) in a child process, alternating with ours
 * repetition by repetition so both see the same machine state, and prints the ratios. Prints the
 * machine, Node version, threads and commit with the figures; `--json` prints one JSON object per
 * engine per line. Never asserts.
 */
import { execSync, fork } from "node:child_process";
import { availableParallelism, cpus, totalmem } from "node:os";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { GgufReader } from "../io/gguf/reader.js";
import { loadModel } from "../model/load.js";
import { defaultModelPath } from "../model/default-model.js";
import { typeName } from "../quant/format.js";
import { FTYPE } from "../quant/quantize-model.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", short: "m" }, threads: { type: "string", short: "t" },
    "n-prompt": { type: "string", short: "p" }, "n-gen": { type: "string", short: "n" },
    repetitions: { type: "string", short: "r" }, json: { type: "boolean" }, "kv-type": { type: "string" },
    backend: { type: "string" }, vs: { type: "boolean" }, "llama-cpp": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
  allowPositionals: false,
});
if (values.help) {
  process.stdout.write(`npm run bench -- -m MODEL [-t THREADS] [-p PROMPT_TOKENS=128] [-n GEN_TOKENS=32] [-r REPS=3] [--kv-type f16|f32] [--backend wasm|js] [--vs] [--json]
  --vs (or --llama-cpp): also measure llama.cpp (node-llama-cpp 3.21.1, same threads) on the same file, alternating, and print the ratio
  --json: one JSON object per engine per line (model, type, threads, n_prompt, n_gen, pp_tokens_per_s, tg_tokens_per_s, peak_rss_bytes, ...)
`);
  process.exit(0);
}
const path = values.model ?? defaultModelPath();
const threads = Number(values.threads ?? availableParallelism());
const nP = Number(values["n-prompt"] ?? 128), nG = Number(values["n-gen"] ?? 32), reps = Number(values.repetitions ?? 3);
const vs = !!(values.vs || values["llama-cpp"]);
for (const [k, v] of [["-t", threads], ["-p", nP], ["-n", nG], ["-r", reps]] as const) {
  if (!Number.isInteger(v) || v < (k === "-t" || k === "-r" ? 1 : 0)) {
    process.stderr.write(`bench: ${k} must be a whole number${k === "-t" || k === "-r" ? " ≥ 1" : " ≥ 0"}, got ${String(v)}\n`);
    process.exit(2);
  }
}
let commit = "unknown";
try { commit = execSync("git rev-parse --short HEAD", { stdio: ["ignore", "pipe", "ignore"], cwd: dirname(fileURLToPath(import.meta.url)) }).toString().trim(); } catch { /* not a checkout */ }

const backend = (values.backend ?? "wasm") as "wasm" | "js";
const kvType = values["kv-type"] === "f32" ? "f32" : "f16";
/** a clear one-line error instead of a stack trace (a missing or unreadable model, llama.cpp failing) */
function fail(e: unknown): never {
  process.stderr.write(`bench: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
let m: ReturnType<typeof loadModel>;
try { m = loadModel(path, { backend, threads }); } catch (e) { fail(e); }
const c = m.model.config;
// deterministic pseudo-random prompt tokens (skipping control and byte tokens)
const prompt = Array.from({ length: nP }, (_, i) => 300 + ((i * 7919) % (c.nVocab - 300)));

/** the file type as llama.cpp names it (general.file_type), else the most common weight type */
function fileType(): string {
  const ft = m.metadata.get("general.file_type")?.value;
  const name = Object.entries(FTYPE).find(([, v]) => v === Number(ft))?.[0];
  if (name) return name;
  const r = new GgufReader(path), n = new Map<string, number>();
  try {
    for (const t of r.tensors) if (t.dims.length > 1) n.set(typeName(t.type), (n.get(typeName(t.type)) ?? 0) + t.nElements);
  } finally { r.close(); }
  return [...n].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "unknown";
}

/** one repetition of ours: ms for the prompt, ms for the generated tokens */
function oursOnce(): { ppMs: number; tgMs: number } {
  let ppMs = 0, tgMs = 0;
  if (nP > 0) {
    const ctx = m.model.newContext({ nCtx: Math.min(c.nCtxTrain, nP + nG + 1), kvType });
    const t = performance.now();
    ctx.eval([1, ...prompt.slice(0, nP - 1)], { logits: "last" });
    ppMs = performance.now() - t;
    ctx.dispose();
  }
  if (nG > 0) {
    const g = m.model.newContext({ nCtx: Math.min(c.nCtxTrain, nG + 2), kvType });
    g.eval([1]);
    const t = performance.now();
    let tok = 1000;
    for (let i = 0; i < nG; i++) {
      const l = g.eval([tok]);
      let best = 0;
      for (let j = 1; j < l.length; j++) if (l[j]! > l[best]!) best = j;
      tok = best;
    }
    tgMs = performance.now() - t;
    g.dispose();
  }
  return { ppMs, tgMs };
}

/** the llama.cpp child (src/bench/llama-side.ts) */
class LlamaSide {
  private child = fork(join(dirname(fileURLToPath(import.meta.url)), "llama-side.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  private waiting: ((m: Record<string, unknown>) => void)[] = [];
  constructor() {
    this.child.on("message", (msg: Record<string, unknown>) => this.waiting.shift()?.(msg));
    this.child.on("exit", (code) => { for (const w of this.waiting.splice(0)) w({ error: `the llama.cpp process exited (${code})` }); });
  }
  ask<T>(msg: object): Promise<T> {
    return new Promise((res, rej) => {
      this.waiting.push((r) => (typeof r.error === "string" ? rej(new Error(`llama.cpp: ${r.error}`)) : res(r as T)));
      this.child.send(msg);
    });
  }
  close(): void { this.child.send({ exit: true }); }
}

const ours = { pp: [] as number[], tg: [] as number[] };
const theirs = { pp: [] as number[], tg: [] as number[] };
let side: LlamaSide | undefined;
if (vs) {
  side = new LlamaSide();
  await side.ask({ model: path, threads, nP, nG, prompt }).catch(fail);
}
for (let r = 0; r < reps + 1; r++) {
  const o = oursOnce();
  const l = side ? await side.ask<{ ppMs: number; tgMs: number }>({ run: true }).catch(fail) : undefined;
  if (r === 0) continue; // warm-up
  if (nP > 0) ours.pp.push(nP / (o.ppMs / 1000));
  if (nG > 0) ours.tg.push(nG / (o.tgMs / 1000));
  if (l && nP > 0) theirs.pp.push(nP / (l.ppMs / 1000));
  if (l && nG > 0) theirs.tg.push(nG / (l.tgMs / 1000));
}
const oursRss = process.resourceUsage().maxRSS * 1024;
const theirRss = side ? (await side.ask<{ peakRssBytes: number }>({ rss: true }).catch(fail)).peakRssBytes : 0;
side?.close();

const mean = (a: number[]) => (a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0);
const sd = (a: number[]) => { const mu = mean(a); return Math.sqrt(a.reduce((x, y) => x + (y - mu) ** 2, 0) / Math.max(1, a.length - 1)); };
const machine = {
  cpu: cpus()[0]?.model?.trim() ?? "unknown", cores: availableParallelism(), mem_gib: +(totalmem() / 2 ** 30).toFixed(1),
  node: process.version, commit,
};
const row = (engine: string, s: { pp: number[]; tg: number[] }, rss: number, extra: object) => ({
  engine, model: basename(path), type: fileType(), size_bytes: m.fileSize, threads, n_prompt: nP, n_gen: nG, repetitions: reps,
  pp_tokens_per_s: +mean(s.pp).toFixed(2), pp_sd: +sd(s.pp).toFixed(2),
  tg_tokens_per_s: +mean(s.tg).toFixed(2), tg_sd: +sd(s.tg).toFixed(2),
  tg_ms_per_token: s.tg.length ? +(1000 / mean(s.tg)).toFixed(2) : null,
  peak_rss_bytes: rss, ...extra, ...machine,
});
const rows = [row("chinese-mixtral", ours, oursRss, { backend, kv_type: kvType })];
if (side) rows.push(row("llama.cpp", theirs, theirRss, { backend: "node-llama-cpp@3.21.1 (prebuilt, CPU)", kv_type: "f16" }));

if (values.json) {
  for (const r of rows) process.stdout.write(JSON.stringify(r) + "\n");
} else {
  process.stdout.write(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.mem_gib} GiB | node ${machine.node} | commit ${commit} | threads ${threads} | kv ${kvType} | ${reps} repetitions${vs ? ", alternating with llama.cpp" : ""}\n`);
  process.stdout.write(`| engine | model | type | size | test | t/s | ms/token | peak RSS |\n| --- | --- | --- | ---: | --- | ---: | ---: | ---: |\n`);
  for (const r of rows) {
    const s = r.engine === "llama.cpp" ? theirs : ours;
    for (const [test, v] of [[`pp${nP}`, s.pp], [`tg${nG}`, s.tg]] as const) {
      if (!v.length) continue;
      process.stdout.write(`| ${r.engine} | ${r.model} | ${r.type} | ${(r.size_bytes / 2 ** 20).toFixed(1)} MiB | ${test} | ${mean(v).toFixed(2)} ± ${sd(v).toFixed(2)} | ${(1000 / mean(v)).toFixed(2)} | ${(r.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB |\n`);
    }
  }
  if (side) {
    process.stdout.write(`\nratio chinese-mixtral / llama.cpp:${nP ? ` pp${nP} ${(mean(ours.pp) / mean(theirs.pp)).toFixed(2)}x` : ""}${nG ? ` tg${nG} ${(mean(ours.tg) / mean(theirs.tg)).toFixed(2)}x` : ""}\n`);
  }
}
m.model.close();
process.exit(0);
