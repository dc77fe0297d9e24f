/**
 * Proof that a model larger than one WebAssembly memory (4 GiB) loads and runs: load it with the
 * WebAssembly backend, report the memory shards, resident memory and speed, and compare the
 * next-token distribution with llama.cpp on the same file.
 * node dist/bench/big-model.js -m FILE [-t N] [--no-llama-cpp]
 */
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { loadModel } from "../model/load.js";
import type { WasmBackend } from "../kernels/wasm-backend.js";
import { logSoftmax, openLlamaCpp } from "./llama-cpp.js";

const { values } = parseArgs({ options: { model: { type: "string", short: "m" }, threads: { type: "string", short: "t" }, "no-llama-cpp": { type: "boolean" } } });
if (!values.model) { process.stderr.write("usage: node dist/bench/big-model.js -m FILE [-t N] [--no-llama-cpp]\n"); process.exit(2); }
const threads = Number(values.threads ?? availableParallelism());
const gib = (b: number) => (b / 2 ** 30).toFixed(2) + " GiB";
let t = performance.now();
const m = loadModel(values.model, { threads });
const be = m.model.backend as WasmBackend;
process.stdout.write(`file ${gib(m.fileSize)} | weights ${gib(m.model.weights.bytes)} in ${be.nShards} WebAssembly memories (${gib(be.memoryBytes)}) | loaded in ${((performance.now() - t) / 1000).toFixed(1)} s | rss ${gib(process.memoryUsage().rss)}\n`);
const tokens = m.tokenizer.encode("中文Mixtral是在Mixtral-8x7B的基础上，使用大规模中文无标注数据进行增量训练得到的模型。");
const ctx = m.model.newContext({ nCtx: 256 });
t = performance.now();
const logits = ctx.eval(tokens);
const ppMs = performance.now() - t;
t = performance.now();
let tok = 0;
for (let i = 0; i < 8; i++) {
  const l = ctx.eval([1000 + i]);
  tok = l.indexOf(Math.max(...l));
}
const tgMs = performance.now() - t;
void tok;
process.stdout.write(`prompt ${tokens.length} tokens: ${(tokens.length / (ppMs / 1000)).toFixed(2)} t/s | generation: ${(8 / (tgMs / 1000)).toFixed(2)} t/s (${(tgMs / 8).toFixed(0)} ms/token) | threads ${threads} | rss ${gib(process.memoryUsage().rss)}\n`);
if (!values["no-llama-cpp"]) {
  const ours = logSoftmax(logits);
  ctx.dispose();
  m.model.close();
  const ll = await openLlamaCpp(values.model, threads, m.model.config.nVocab);
  const theirs = await ll.nextLogProbs(tokens);
  await ll.dispose();
  // llama.cpp may report a truncated, renormalised set: compare log-probabilities up to that
  // constant (i.e. logit differences), over the tokens it reports
  let am = 0, bm = 0;
  for (let i = 0; i < ours.length; i++) {
    if (ours[i]! > ours[am]!) am = i;
    if (theirs[i]! > theirs[bm]!) bm = i;
  }
  const shift = ours[bm]! - theirs[bm]!;
  let d = 0, n = 0;
  for (let i = 0; i < ours.length; i++) {
    // llama.cpp reports float32 probabilities: below ~1e-35 they are denormal and lose their digits
    if (theirs[i]! > -80) { d = Math.max(d, Math.abs(ours[i]! - theirs[i]! - shift)); n++; }
  }
  process.stdout.write(`llama.cpp loads the file; next-token log-probabilities of the ${n} tokens with p > 1e-35 (up to its renormalisation): max |Δ| = ${d.toExponential(2)}, argmax ours ${am} / llama.cpp ${bm}\n`);
}
process.exit(0);
