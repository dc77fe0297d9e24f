/**
 * llama-bench-like speed test: prompt processing (pp) and text generation (tg) tokens/s.
 * npm run bench -- -m MODEL [-t N] [-p 128] [-n 32] [-r 3] [--json]
 * Prints the machine, Node version, threads and commit with the figures; never asserts.
 */
import { execSync } from "node:child_process";
import { availableParallelism, cpus, totalmem } from "node:os";
import { parseArgs } from "node:util";
import { loadModel } from "../model/load.js";
import { defaultModelPath } from "../model/default-model.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", short: "m" }, threads: { type: "string", short: "t" },
    "n-prompt": { type: "string", short: "p" }, "n-gen": { type: "string", short: "n" },
    repetitions: { type: "string", short: "r" }, json: { type: "boolean" }, "kv-type": { type: "string" },
    backend: { type: "string" }, "llama-cpp": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
  allowPositionals: false,
});
if (values.help) {
  process.stdout.write("npm run bench -- -m MODEL [-t THREADS] [-p PROMPT_TOKENS=128] [-n GEN_TOKENS=32] [-r REPS=3] [--kv-type f16|f32] [--backend wasm|js] [--llama-cpp] [--json]\n  --llama-cpp: also run llama.cpp (node-llama-cpp, same threads) on the same model and print the ratio\n");
  process.exit(0);
}
const path = values.model ?? defaultModelPath();
const threads = Number(values.threads ?? availableParallelism());
const nP = Number(values["n-prompt"] ?? 128), nG = Number(values["n-gen"] ?? 32), reps = Number(values.repetitions ?? 3);
let commit = "unknown";
try { commit = execSync("git rev-parse --short HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim(); } catch { /* not a checkout */ }

const backend = (values.backend ?? "wasm") as "wasm" | "js";
const m = loadModel(path, { backend, threads });
const c = m.model.config;
const kvType = values["kv-type"] === "f32" ? "f32" : "f16";
// deterministic pseudo-random prompt tokens (skip control/byte tokens)
const prompt = Array.from({ length: nP }, (_, i) => 300 + ((i * 7919) % (c.nVocab - 300)));

function mean(a: number[]) { return a.reduce((x, y) => x + y, 0) / a.length; }
function sd(a: number[]) { const mu = mean(a); return Math.sqrt(a.reduce((x, y) => x + (y - mu) ** 2, 0) / Math.max(1, a.length - 1)); }

const pp: number[] = [], tg: number[] = [];
for (let r = 0; r < reps + 1; r++) {
  const ctx = m.model.newContext({ nCtx: Math.min(c.nCtxTrain, nP + nG + 1), kvType });
  let t = performance.now();
  if (nP > 0) ctx.eval([1, ...prompt.slice(0, nP - 1)], { logits: "last" });
  const ppMs = performance.now() - t;
  const gctx = m.model.newContext({ nCtx: Math.min(c.nCtxTrain, nG + 2), kvType });
  gctx.eval([1]);
  t = performance.now();
  let tok = 1000;
  for (let i = 0; i < nG; i++) {
    const l = gctx.eval([tok]);
    let best = 0;
    for (let j = 1; j < l.length; j++) if (l[j]! > l[best]!) best = j;
    tok = best;
  }
  const tgMs = performance.now() - t;
  ctx.dispose();
  gctx.dispose();
  if (r === 0) continue; // warm-up
  if (nP > 0) pp.push(nP / (ppMs / 1000));
  if (nG > 0) tg.push(nG / (tgMs / 1000));
}

interface Row { test: string; tokens_per_s: number; sd: number; ms_per_token: number }
let llamaRows: Row[] | undefined;
if (values["llama-cpp"]) llamaRows = await benchLlamaCpp();

async function benchLlamaCpp(): Promise<Row[]> {
  const { getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const model = await llama.loadModel({ modelPath: path });
  const lpp: number[] = [], ltg: number[] = [];
  for (let r = 0; r < reps + 1; r++) {
    const ctx = await model.createContext({ contextSize: Math.max(256, nP + nG + 8), threads, batchSize: Math.max(nP, 1), sequences: 1 });
    let seq = ctx.getSequence();
    let t = performance.now();
    if (nP > 0) await seq.evaluateWithoutGeneratingNewTokens([1, ...prompt.slice(0, nP - 1)] as never);
    const ppMs = performance.now() - t;
    await seq.clearHistory();
    seq = ctx.getSequence === undefined ? seq : seq;
    await seq.evaluateWithoutGeneratingNewTokens([1] as never);
    t = performance.now();
    let n = 0;
    for await (const tok of seq.evaluate([1000] as never, { temperature: 0 })) { void tok; if (++n >= nG) break; }
    const tgMs = performance.now() - t;
    await ctx.dispose();
    if (r === 0) continue;
    if (nP > 0) lpp.push(nP / (ppMs / 1000));
    if (nG > 0) ltg.push(nG / (tgMs / 1000));
  }
  await model.dispose();
  await llama.dispose();
  return [
    ...(lpp.length ? [{ test: `pp${nP}`, tokens_per_s: mean(lpp), sd: sd(lpp), ms_per_token: 1000 / mean(lpp) }] : []),
    ...(ltg.length ? [{ test: `tg${nG}`, tokens_per_s: mean(ltg), sd: sd(ltg), ms_per_token: 1000 / mean(ltg) }] : []),
  ];
}

const info = {
  model: path, size_bytes: m.fileSize, backend, threads,
  cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism(), mem_gib: +(totalmem() / 2 ** 30).toFixed(1),
  node: process.version, commit, kv_type: kvType,
  results: [
    ...(pp.length ? [{ test: `pp${nP}`, tokens_per_s: mean(pp), sd: sd(pp), ms_per_token: 1000 / mean(pp) }] : []),
    ...(tg.length ? [{ test: `tg${nG}`, tokens_per_s: mean(tg), sd: sd(tg), ms_per_token: 1000 / mean(tg) }] : []),
  ] as Row[],
  ...(llamaRows ? { llama_cpp: { package: "node-llama-cpp@3.21.1 (prebuilt, CPU)", results: llamaRows } } : {}),
};
if (values.json) process.stdout.write(JSON.stringify(info, null, 2) + "\n");
else {
  process.stdout.write(`machine: ${info.cpu}, ${info.cores} cores, ${info.mem_gib} GiB | node ${info.node} | commit ${commit} | backend ${info.backend} | threads ${threads} | kv ${kvType}\n`);
  process.stdout.write(`| model | size | test | t/s | ms/token |\n| --- | ---: | --- | ---: | ---: |\n`);
  for (const r of info.results) {
    process.stdout.write(`| ${c.name} | ${(m.fileSize / 2 ** 20).toFixed(2)} MiB | ${r.test} | ${r.tokens_per_s.toFixed(2)} ± ${r.sd.toFixed(2)} | ${r.ms_per_token.toFixed(2)} |\n`);
  }
  if (llamaRows) {
    process.stdout.write(`\nllama.cpp (node-llama-cpp 3.21.1, prebuilt CPU, same threads), same model and run:\n| test | llama.cpp t/s | chinese-mixtral t/s | ratio (ours / llama.cpp) |\n| --- | ---: | ---: | ---: |\n`);
    for (const r of llamaRows) {
      const ours = info.results.find((x) => x.test === r.test);
      process.stdout.write(`| ${r.test} | ${r.tokens_per_s.toFixed(2)} ± ${r.sd.toFixed(2)} | ${ours?.tokens_per_s.toFixed(2)} | ${ours ? (ours.tokens_per_s / r.tokens_per_s).toFixed(2) : "-"} |\n`);
    }
  }
}
process.exit(0);
