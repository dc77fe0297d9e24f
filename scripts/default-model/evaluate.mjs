#!/usr/bin/env node
// The measured results of the built-in model's card (docs/default-model.md), produced by the eval
// commands: perplexity on held-out English and Chinese text after each stage (cmx perplexity),
// accuracy on the held-out instructions (chat at temperature 0, judged as src/model/poem-tasks.ts
// says), CMMLU and C-Eval (cmx eval), generation speed (npm run bench) and example conversations.
// Writes docs/default-model/results.json and the tables between the markers of the card.
// Usage: node scripts/default-model/evaluate.mjs [--quick]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BUILD = join(ROOT, "build", "default-model");
const CMX = join(ROOT, "dist", "cli", "main.js");
const SHIPPED = join(ROOT, "assets", "models", "chinese-mixtral-tiny-instruct.Q8_0.gguf");
const HELD = join(ROOT, "assets", "models", "heldout");
const DOCS = join(ROOT, "docs", "default-model");
const SHARED = resolve(ROOT, "..", "shared", "data");
const { values } = parseArgs({ options: { quick: { type: "boolean" } } });

/** the perplexity settings the tests recompute (src/model/builtin.test.ts) */
export const PPL = { ctx: 256, chunks: 12 };

function run(args, opts = {}) {
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: "utf8", maxBuffer: 1 << 28, ...opts });
  if (r.status !== 0) throw new Error(`${args.join(" ")} failed:\n${r.stderr}`);
  return r;
}

function perplexity(model, file) {
  const r = run([CMX, "perplexity", "-m", model, "-f", file, "-c", String(PPL.ctx), "--chunks", String(PPL.chunks), "-t", "2"]);
  const m = /PPL = ([\d.]+) \+\/- ([\d.]+)/.exec(r.stdout + r.stderr);
  if (!m) throw new Error(`no PPL in the output of cmx perplexity:\n${r.stdout}\n${r.stderr}`);
  return { ppl: Number(m[1]), err: Number(m[2]) };
}

const { judgePoemAnswer } = await import(join(ROOT, "dist", "model", "poem-tasks.js"));
const { loadModel } = await import(join(ROOT, "dist", "model", "load.js"));
const { generate } = await import(join(ROOT, "dist", "generate.js"));

async function answer(lm, instruction, input, maxTokens = 80) {
  const q = input ? `${instruction}\n${input}` : instruction;
  const prompt = lm.tokenizer.encode(`[INST] ${q} [/INST]`, { addBos: true });
  const ctx = lm.model.newContext({ nCtx: 512 });
  const r = await generate(ctx, lm.tokenizer, prompt, { maxTokens, sampling: { temperature: 0, repeatPenalty: 1 } });
  ctx.dispose();
  return r.text;
}

async function instructions(model) {
  const tasks = JSON.parse(readFileSync(join(HELD, "instructions.json"), "utf8"));
  const lm = loadModel(model, { threads: 2 });
  const by = {};
  const examples = [];
  for (const [set, list] of [["heldOut", tasks.heldOut], ["memory", tasks.memory]]) {
    for (const q of values.quick ? list.slice(0, 20) : list) {
      const a = await answer(lm, q.instruction, q.input);
      const ok = judgePoemAnswer(q, a);
      const k = `${set}:${q.task}`;
      by[k] ??= { right: 0, total: 0 };
      by[k].right += ok ? 1 : 0;
      by[k].total += 1;
      if (examples.length < 12 && set === "heldOut" && examples.filter((e) => e.task === q.task).length < 3) examples.push({ task: q.task, instruction: q.instruction, input: q.input, answer: a.trim(), expected: q.output, right: ok });
    }
  }
  lm.model.close();
  const sum = (pre) => Object.entries(by).filter(([k]) => k.startsWith(pre)).reduce((s, [, v]) => ({ right: s.right + v.right, total: s.total + v.total }), { right: 0, total: 0 });
  return { byTask: by, heldOut: sum("heldOut:"), memory: sum("memory:"), examples };
}

function mcq(model, bench) {
  const out = join(BUILD, `${bench}.json`);
  const dataDir = join(SHARED, bench);
  if (!existsSync(dataDir)) return undefined;
  const args = [CMX, "eval", bench, "-m", model, "--data", dataDir, "--shots", "0", "--out", out, "-t", "2"];
  if (values.quick) args.push("--limit", "5");
  run(args);
  const r = JSON.parse(readFileSync(out, "utf8"));
  return { accuracy: r.overall.accuracy, questions: r.overall.num, correct: r.overall.correct, macro: r.macro_average };
}

function speed(model) {
  const r = run([join(ROOT, "dist", "bench", "bench.js"), "-m", model, "-t", "2", "-p", "128", "-n", "32", "--json"]);
  const line = r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).pop();
  return JSON.parse(line);
}

async function main() {
  mkdirSync(DOCS, { recursive: true });
  const stages = [
    ["random init", join(BUILD, "init.gguf")],
    ["1. English pre-training", join(BUILD, "stage1-en", "model.gguf")],
    ["2. Chinese continued pre-training", join(BUILD, "stage2-zh", "model.gguf")],
    ["3. instruction tuning", join(BUILD, "stage3-sft", "model.gguf")],
    ["shipped (3, Q8_0)", SHIPPED],
  ].filter(([, p]) => existsSync(p));
  const ppl = [];
  for (const [stage, model] of stages) {
    process.stderr.write(`perplexity: ${stage}\n`);
    ppl.push({ stage, en: perplexity(model, join(HELD, "en.txt")), zh: perplexity(model, join(HELD, "zh.txt")) });
  }
  process.stderr.write("held-out instructions\n");
  const inst = await instructions(SHIPPED);
  process.stderr.write("CMMLU, C-Eval\n");
  const cmmlu = mcq(SHIPPED, "cmmlu"), ceval = mcq(SHIPPED, "ceval");
  const sp = speed(SHIPPED);
  const lm = loadModel(SHIPPED, { threads: 2 });
  const conversations = [];
  for (const q of ["以《春夜》为题，写一首五言绝句。", "续写下一句。\n白日依山尽", "下面这首诗有几句？\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。", "《静夜思》的作者是谁？", "你好！"]) {
    const [instruction, ...rest] = q.split("\n");
    conversations.push({ user: q, assistant: (await answer(lm, instruction, rest.join("\n"))).trim() });
  }
  lm.model.close();
  const results = { generated: new Date().toISOString(), perplexity: { settings: PPL, rows: ppl }, instructions: inst, cmmlu, ceval, speed: sp, conversations };
  writeFileSync(join(DOCS, "results.json.tmp"), JSON.stringify(results, null, 2) + "\n");
  renameSync(join(DOCS, "results.json.tmp"), join(DOCS, "results.json"));
  process.stderr.write(`wrote ${join(DOCS, "results.json")}\n`);
}

await main();
