#!/usr/bin/env node
// The quantization quality table of docs/quantize.md: for each type `cmx quantize` writes, the file
// size, bits per weight, perplexity on one text (llama-perplexity's method), the KL divergence of
// the next-token distribution from the F32 model's and how often the top token agrees, and the
// generation speed in ms/token; optionally the same types quantized with an importance matrix.
//
//   npm run build && node scripts/quality-table.mjs [--model F32.gguf] [--text FILE] [--imatrix-text FILE|longbench]
//        [--imatrix-types Q4_K_M,...] [-c 128] [--chunks N] [--types Q8_0,Q4_K_M,...] [-t N] [-n 32]
//
// Without --model it generates a random-weight Mixtral (seeded; rows a multiple of 256 so that the
// K-quants apply to every tensor) into tmp/quality/. Prints Markdown on stdout, progress on stderr.
// A program, not a test: it never asserts.
import { execSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { cpus, availableParallelism } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const dist = (p) => import(join(root, "dist", p));
const [{ loadModel }, { perplexity }, { quantizeFile, importanceMap }, { FILE_TYPES }, { canQuantizeWeights, usesImportance }, { collectImatrix },
  { writeSyntheticModel }, { loadSpmModel }, { TOKENIZER_V1 }, { GgmlType }] = await Promise.all([
  dist("model/load.js"), dist("eval/perplexity.js"), dist("quant/quantize-file.js"), dist("quant/quantize-model.js"), dist("quant/index.js"),
  dist("eval/imatrix.js"), dist("model/synthetic.js"), dist("tokenizer/from-spm-model.js"), dist("model/default-model.js"), dist("quant/format.js"),
]);

const { values } = parseArgs({
  options: {
    model: { type: "string", short: "m" }, text: { type: "string" }, "imatrix-text": { type: "string" },
    "ctx-size": { type: "string", short: "c" }, chunks: { type: "string" }, types: { type: "string" }, "imatrix-types": { type: "string" },
    threads: { type: "string", short: "t" }, "n-gen": { type: "string", short: "n" }, keep: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write("node scripts/quality-table.mjs [--model F32.gguf] [--text FILE] [--imatrix-text FILE|longbench] [--imatrix-types Q4_K_M,Q3_K_M,Q2_K,Q4_0] [-c 128] [--chunks N] [--types A,B] [-t N] [-n 32] [--keep]\n");
  process.exit(0);
}
const shared = process.env.CMX_SHARED ?? resolve(root, "..", "shared");
const work = join(root, "tmp", "quality");
mkdirSync(work, { recursive: true });
const threads = Number(values.threads ?? availableParallelism());
const nCtx = Number(values["ctx-size"] ?? 128);
const nGen = Number(values["n-gen"] ?? 32);
const log = (s) => process.stderr.write(`${s}\n`);

// ---- the model ----
const QUALITY_SPEC = {
  name: "random-mixtral-quality", nEmbd: 256, nLayer: 4, nHead: 4, nHeadKv: 2, nExpert: 8, nExpertUsed: 2, nFf: 512,
  nCtx: 4096, seed: 8086, type: GgmlType.F32, std: 0.05, embdStd: 0.05,
};
let modelPath = values.model;
if (!modelPath) {
  modelPath = join(work, "random-mixtral-quality-F32.gguf");
  if (!existsSync(modelPath)) {
    log(`generating ${modelPath}`);
    writeSyntheticModel(modelPath, QUALITY_SPEC, loadSpmModel(TOKENIZER_V1));
  }
}

// ---- the texts ----
const textPath = values.text ?? join(shared, "reference", "inputs", "perplexity.txt");
const text = readFileSync(textPath, "utf8");
/** "longbench": the contexts of ../shared/data/longbench/multifieldqa_zh.jsonl, first 12,000 characters */
function calibration(spec) {
  if (spec !== "longbench") return { name: spec, text: readFileSync(spec, "utf8") };
  const file = join(shared, "data", "longbench", "multifieldqa_zh.jsonl");
  let s = "";
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (s.length >= 12000) break;
    if (line.trim()) s += JSON.parse(line).context + "\n";
  }
  return { name: `${file} (contexts, first 12,000 characters)`, text: s.slice(0, 12000) };
}
const calib = values["imatrix-text"] ? calibration(values["imatrix-text"]) : undefined;

// ---- measurements ----
function logSoftmax(l, off, n, out) {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (l[off + i] > max) max = l[off + i];
  let s = 0;
  for (let i = 0; i < n; i++) s += Math.exp(l[off + i] - max);
  const lse = max + Math.log(s);
  for (let i = 0; i < n; i++) out[i] = l[off + i] - lse;
}

/** PPL, and when `base` (the F32 model's scored logits) is given, mean KLD(base || this) and top-1 agreement. */
function evaluate(path, base) {
  const m = loadModel(path, { threads });
  const V = m.model.config.nVocab;
  const tokens = m.tokenizer.encode(text, { addBos: true });
  const saved = [];
  let kld = 0, same = 0, n = 0;
  const p = new Float64Array(V), q = new Float64Array(V);
  const r = perplexity(m.model, tokens, {
    nCtx, kvType: "f32", bosId: m.tokenizer.vocab.bosId, ...(values.chunks ? { nChunks: Number(values.chunks) } : {}),
    onLogits: (c, logits, rows) => {
      if (!base) { saved.push(logits.slice()); return; }
      const b = base[c];
      for (let i = 0; i < rows.length; i++) {
        logSoftmax(b, i * V, V, p);
        logSoftmax(logits, i * V, V, q);
        let k = 0, ap = 0, aq = 0;
        for (let j = 0; j < V; j++) {
          k += Math.exp(p[j]) * (p[j] - q[j]);
          if (p[j] > p[ap]) ap = j;
          if (q[j] > q[aq]) aq = j;
        }
        kld += k;
        same += ap === aq ? 1 : 0;
        n++;
      }
    },
  });
  // generation: greedy tokens after BOS, one warm-up and five timed runs, the fastest kept (the
  // least disturbed by other work on the machine)
  let best = Infinity;
  for (let rep = 0; rep < 6; rep++) {
    const ctx = m.model.newContext({ nCtx: nGen + 2, kvType: "f16" });
    let tok = m.tokenizer.vocab.bosId;
    ctx.eval([tok]);
    tok = 1000;
    const t0 = performance.now();
    for (let i = 0; i < nGen; i++) {
      const l = ctx.eval([tok]);
      let a = 0;
      for (let j = 1; j < l.length; j++) if (l[j] > l[a]) a = j;
      tok = a;
    }
    const ms = (performance.now() - t0) / nGen;
    ctx.dispose();
    if (rep > 0) best = Math.min(best, ms);
  }
  m.model.close();
  return { ppl: r.ppl, pplErr: r.pplErr, chunks: r.nChunks, scored: r.scoredTokens, msPerToken: best, saved, kld: n ? kld / n : 0, top1: n ? same / n : 1 };
}

const rows = [];
log(`F32 baseline: ${modelPath}`);
const f32 = evaluate(modelPath);
const { nParams, tensorBytes } = await (async () => {
  const { GgufReader } = await dist("io/gguf/reader.js");
  const r = new GgufReader(modelPath);
  const res = { nParams: r.tensors.reduce((a, t) => a + t.nElements, 0), tensorBytes: r.tensors.reduce((a, t) => a + t.nBytes, 0) };
  r.close();
  return res;
})();
// bits per weight: tensor bytes over parameters, as cmx quantize prints it
rows.push({ type: "F32 (source)", size: statSync(modelPath).size, bpw: (8 * tensorBytes) / nParams, ...f32, kld: 0, top1: 1 });

let imatrix;
if (calib) {
  log(`imatrix on ${calib.name}`);
  const m = loadModel(modelPath, { threads });
  const toks = m.tokenizer.encode(calib.text, { addBos: true });
  const im = collectImatrix(m.model, toks, { nCtx: 512, kvType: "f32", bosId: m.tokenizer.vocab.bosId, dataset: calib.name }).imatrix;
  log(`imatrix: ${im.entries.size} entries, ${im.chunkCount} chunks of 512 tokens`);
  const { readGgufHeader } = await dist("io/gguf/reader.js");
  imatrix = importanceMap(im, readGgufHeader(modelPath).tensors);
  m.model.close();
}

const list = (s) => s.split(",").map((x) => x.trim().toUpperCase()).filter(Boolean);
const wanted = values.types ? list(values.types) : Object.keys(FILE_TYPES);
// the low-bit types, where an importance matrix matters most (each variant is one more quantization)
const withImatrix = new Set(list(values["imatrix-types"] ?? "Q4_K_M,Q3_K_M,Q2_K,Q4_0"));
for (const type of wanted) {
  const info = FILE_TYPES[type];
  if (!info || type === "F32" || !canQuantizeWeights(info.base)) continue;
  const variants = [];
  if (!info.needsImatrix) variants.push(undefined);
  if (imatrix && usesImportance(info.base) && (withImatrix.has(type) || info.needsImatrix)) variants.push(imatrix);
  for (const im of variants) {
    const out = join(work, `${type}${im ? "-imatrix" : ""}.gguf`);
    log(`${type}${im ? " + imatrix" : ""}: quantize`);
    const rep = await quantizeFile(modelPath, out, type, { threads, ...(im ? { imatrix: im } : {}) });
    log(`${type}${im ? " + imatrix" : ""}: evaluate`);
    const e = evaluate(out, f32.saved);
    rows.push({ type: `${type}${im ? " + imatrix" : ""}`, size: statSync(out).size, bpw: (8 * rep.outBytes) / rep.nParams, ...e });
    if (!values.keep) rmSync(out, { force: true });
  }
}

// ---- the table ----
let commit = "unknown";
try { commit = execSync("git rev-parse --short HEAD", { cwd: root, stdio: ["ignore", "pipe", "ignore"] }).toString().trim(); } catch { /* not a checkout */ }
const mib = (b) => (b / 2 ** 20).toFixed(1);
const cpu = cpus()[0]?.model ?? "unknown CPU";
const out = [];
out.push(`Model: \`${basename(modelPath)}\`${values.model ? "" : ` (random weights: ${QUALITY_SPEC.nEmbd} dim, ${QUALITY_SPEC.nLayer} layers, ${QUALITY_SPEC.nExpert} experts top-${QUALITY_SPEC.nExpertUsed}, ffn ${QUALITY_SPEC.nFf}, Mistral vocabulary; seed ${QUALITY_SPEC.seed})`}, ${(nParams / 1e6).toFixed(1)} M parameters.`);
out.push(`Text: \`${basename(textPath)}\`, context ${nCtx}, ${f32.chunks} windows, ${f32.scored} scored tokens, F32 KV cache, llama.cpp's arithmetic (as cmx perplexity)${calib ? `; imatrix on ${calib.name.replace(shared, "../shared")}, chunks of 512` : ""}.`);
out.push(`Machine: ${cpu}, ${threads} threads, Node ${process.version}, WebAssembly kernels, commit ${commit}. Generation: ${nGen} greedy tokens after BOS, F16 cache, best of 5.`);
out.push("");
out.push("| type | size MiB | bits/weight | PPL | KLD vs F32 | same top token | ms/token |");
out.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
for (const r of rows) {
  out.push(`| ${r.type} | ${mib(r.size)} | ${r.bpw.toFixed(2)} | ${r.ppl.toFixed(2)} ± ${r.pplErr.toFixed(2)} | ${r.kld.toFixed(5)} | ${(100 * r.top1).toFixed(1)}% | ${r.msPerToken.toFixed(2)} |`);
}
process.stdout.write(out.join("\n") + "\n");
