#!/usr/bin/env node
// The measured results of the built-in model's card (docs/default-model.md), produced by the eval
// commands: perplexity on held-out English and Chinese text after each stage (cmx perplexity),
// accuracy on the held-out instructions (chat at temperature 0, judged as src/model/poem-tasks.ts
// says), CMMLU and C-Eval (cmx eval), generation speed (npm run bench) and example conversations.
// Writes docs/default-model/results.json and the tables between the markers of the card.
// Usage: node scripts/default-model/evaluate.mjs [--quick] [--render (only rewrite the card's tables from results.json)]
//        [--instructions-only (recompute the instructions and conversations, keep the rest of results.json)]
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
const { values } = parseArgs({ options: { quick: { type: "boolean" }, render: { type: "boolean" }, "instructions-only": { type: "boolean" } } });
const CARD = join(ROOT, "docs", "default-model.md");

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

const { judgePoemAnswer, maxTokensFor } = await import(join(ROOT, "dist", "model", "poem-tasks.js"));
const { loadModel } = await import(join(ROOT, "dist", "model", "load.js"));
const { generate } = await import(join(ROOT, "dist", "generate.js"));

/** greedy (what the tests check), or the chat defaults (temperature 0.2, top-k 40, top-p 0.9, repetition penalty 1.1) with a fixed seed */
const GREEDY = { temperature: 0, repeatPenalty: 1 };
const CHAT_DEFAULTS = { seed: 1 };

async function answer(lm, instruction, input, sampling = GREEDY, maxTokens = 80) {
  const q = input ? `${instruction}\n${input}` : instruction;
  const prompt = lm.tokenizer.encode(`[INST] ${q} [/INST]`, { addBos: true });
  const ctx = lm.model.newContext({ nCtx: 512 });
  const r = await generate(ctx, lm.tokenizer, prompt, { maxTokens, sampling });
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
      const n = maxTokensFor(q.task);
      const a = await answer(lm, q.instruction, q.input, GREEDY, n);
      const ok = judgePoemAnswer(q, a);
      const b = await answer(lm, q.instruction, q.input, CHAT_DEFAULTS, n);
      const okSampled = judgePoemAnswer(q, b);
      const k = `${set}:${q.task}`;
      by[k] ??= { right: 0, total: 0, rightSampled: 0 };
      by[k].right += ok ? 1 : 0;
      by[k].rightSampled += okSampled ? 1 : 0;
      by[k].total += 1;
      if (examples.length < 12 && set === "heldOut" && examples.filter((e) => e.task === q.task).length < 3) {
        examples.push({ task: q.task, instruction: q.instruction, input: q.input, answer: a.trim(), right: ok, sampled: b.trim(), rightSampled: okSampled, expected: q.output });
      }
    }
  }
  lm.model.close();
  const sum = (pre) => Object.entries(by).filter(([k]) => k.startsWith(pre))
    .reduce((s, [, v]) => ({ right: s.right + v.right, rightSampled: s.rightSampled + v.rightSampled, total: s.total + v.total }), { right: 0, rightSampled: 0, total: 0 });
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
  return r.stdout.trim().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).find((o) => o.engine === "chinese-mixtral");
}

async function main() {
  mkdirSync(DOCS, { recursive: true });
  const old = values["instructions-only"] ? JSON.parse(readFileSync(join(DOCS, "results.json"), "utf8")) : undefined;
  const stages = [
    ["random init", join(BUILD, "init.gguf")],
    ["1. English pre-training", join(BUILD, "stage1-en", "model.gguf")],
    ["2. Chinese continued pre-training", join(BUILD, "stage2-zh", "model.gguf")],
    ["3. instruction tuning", join(BUILD, "stage3-sft", "model.gguf")],
    ["shipped (3, Q8_0)", SHIPPED],
  ].filter(([, p]) => existsSync(p));
  const ppl = old?.perplexity.rows ?? [];
  if (!old) {
    for (const [stage, model] of stages) {
      process.stderr.write(`perplexity: ${stage}\n`);
      ppl.push({ stage, en: perplexity(model, join(HELD, "en.txt")), zh: perplexity(model, join(HELD, "zh.txt")) });
    }
  }
  process.stderr.write("held-out instructions\n");
  const inst = await instructions(SHIPPED);
  if (!old) process.stderr.write("CMMLU, C-Eval\n");
  const cmmlu = old ? old.cmmlu : mcq(SHIPPED, "cmmlu"), ceval = old ? old.ceval : mcq(SHIPPED, "ceval");
  const sp = old ? old.speed : speed(SHIPPED);
  const lm = loadModel(SHIPPED, { threads: 2 });
  const conversations = [];
  for (const q of ["以《春夜》为题，写一首五言绝句。", "以《秋思》为题，写一首七言绝句。", "续写下一句。\n白日依山尽", "下面这首诗有几句？\n床前明月光，疑是地上霜。\n举头望明月，低头思故乡。", "下面这首诗是五言诗还是七言诗？\n朝辞白帝彩云间，千里江陵一日还。\n两岸猿声啼不住，轻舟已过万重山。", "《静夜思》的作者是谁？", "你好！"]) {
    const [instruction, ...rest] = q.split("\n");
    conversations.push({ user: q, assistant: (await answer(lm, instruction, rest.join("\n"), CHAT_DEFAULTS, 200)).trim() });
  }
  lm.model.close();
  const results = { generated: new Date().toISOString(), perplexity: { settings: PPL, rows: ppl }, instructions: inst, cmmlu, ceval, speed: sp, conversations };
  writeFileSync(join(DOCS, "results.json.tmp"), JSON.stringify(results, null, 2) + "\n");
  renameSync(join(DOCS, "results.json.tmp"), join(DOCS, "results.json"));
  process.stderr.write(`wrote ${join(DOCS, "results.json")}\n`);
  render(results);
}

const TASKS = {
  write: "write a poem on a title in the asked form (4 or 8 lines of 5 or 7 characters)",
  continue: "continue a line (one line of the same length)",
  form: "five- or seven-character poem?",
  count: "how many lines?",
  author: "who wrote this poem? (memory)",
  title: "what is its title? (memory)",
};

const pct = (right, total) => `${((100 * right) / total).toFixed(1)} % (${right}/${total})`;
const esc = (t) => String(t).replace(/\|/g, "\\|").replace(/\n/g, "<br>");

/** the card's tables from results (between the markers of docs/default-model.md) */
function render(r) {
  const L = [];
  L.push(`Measured by \`node scripts/default-model/evaluate.mjs\` (${r.generated.slice(0, 10)}); the figures are in`, "`docs/default-model/results.json`, which the tests compare against.", "");
  L.push("### Loss curves", "");
  for (const [stage, title] of [["stage1-en", "1. English pre-training"], ["stage2-zh", "2. Chinese continued pre-training"], ["stage3-sft", "3. instruction tuning"]]) {
    if (existsSync(join(DOCS, `${stage}.loss-curve.png`))) L.push(`**${title}**`, "", `![${title}: training and evaluation loss](default-model/${stage}.loss-curve.png)`, "");
  }
  const s = r.perplexity.settings;
  L.push("### Perplexity on held-out text after each stage", "");
  L.push(`\`cmx perplexity -c ${s.ctx} --chunks ${s.chunks}\` (llama.cpp's method and arithmetic) on \`assets/models/heldout/en.txt\` (Brown texts never trained on) and \`zh.txt\` (Tang poems never trained on); lower is better.`, "");
  L.push("| stage | English PPL | Chinese PPL |", "| --- | ---: | ---: |");
  for (const row of r.perplexity.rows) L.push(`| ${row.stage} | ${row.en.ppl.toFixed(2)} ± ${row.en.err.toFixed(2)} | ${row.zh.ppl.toFixed(2)} ± ${row.zh.err.toFixed(2)} |`);
  L.push("");
  const rows = r.perplexity.rows, en1 = rows.find((x) => x.stage.startsWith("1."))?.en.ppl, en2 = rows.find((x) => x.stage.startsWith("2."))?.en.ppl;
  const en3 = rows.find((x) => x.stage.startsWith("3."))?.en.ppl;
  const zh1 = rows.find((x) => x.stage.startsWith("1."))?.zh.ppl, zh2 = rows.find((x) => x.stage.startsWith("2."))?.zh.ppl;
  if (en1 && en2 && zh1 && zh2) {
    const kept = en2 <= en1 * 1.1;
    L.push(`Chinese continued pre-training takes the Chinese perplexity from ${zh1.toFixed(0)} to ${zh2.toFixed(1)}. ${kept ? `English is kept (${en1.toFixed(1)} → ${en2.toFixed(1)}): stage 2 mixes every third English training paragraph (about a fifth of its tokens) into the Chinese text (replay).${en3 ? ` Instruction tuning, on Chinese instructions only, loses part of it again (${en2.toFixed(1)} → ${en3.toFixed(1)}).` : ""}` : `English is **not** kept: its perplexity goes from ${en1.toFixed(0)} to ${en2.toFixed(0)}. The seed's question (does Chinese improve while English is kept?) gets a clear no at this size with its recipe: stage 2 sees Chinese only, and the embeddings and LM head, trained in full at a high learning rate, move every English token's logit down (a 30M model has no spare capacity; the seed's 47B model does). Mixing a share of English text into stage 2 (replay) is the known remedy, and it keeps English here too, but that model answers fewer held-out instructions right, so it is not the one shipped: see *Experiment: English replay* below.`}`, "");
  }
  const inst = r.instructions;
  L.push("### Held-out instructions", "");
  L.push("Answers (up to 200 tokens for a poem, 80 for the rest: a Chinese character the vocabulary lacks takes 3 byte tokens) to the 300 held-out instructions, made from poems never seen in any stage, judged as `src/model/poem-tasks.ts` says: the *form* of a written poem or continued line is checked (line count, characters per line, Chinese characters only; not its content), and the exact answer to the questions about a given poem. *Greedy* is temperature 0 without penalties (what the tests check); *chat defaults* is how `cmx chat` samples (temperature 0.2, top-k 40, top-p 0.9, repetition penalty 1.1, here with seed 1). The memory questions ask about poems read in stage 2 and are reported apart.", "");
  L.push("| task | right, greedy | right, chat defaults |", "| --- | ---: | ---: |");
  for (const [k, v] of Object.entries(inst.byTask)) {
    const [set, task] = k.split(":");
    L.push(`| ${set === "memory" ? "memory: " : ""}${TASKS[task] ?? task} | ${pct(v.right, v.total)} | ${pct(v.rightSampled, v.total)} |`);
  }
  L.push(`| **held-out, all tasks** | **${pct(inst.heldOut.right, inst.heldOut.total)}** | **${pct(inst.heldOut.rightSampled, inst.heldOut.total)}** |`, `| memory, all tasks | ${pct(inst.memory.right, inst.memory.total)} | ${pct(inst.memory.rightSampled, inst.memory.total)} |`, "");
  L.push("### CMMLU and C-Eval", "");
  L.push("`cmx eval cmmlu|ceval --shots 0` (the seed's prompt and answer extraction: the letter with the highest next-token probability). Chance is 25 %; a 30M-parameter model trained on poems is, honestly, at chance.", "");
  L.push("| benchmark | questions | accuracy | macro average over subjects |", "| --- | ---: | ---: | ---: |");
  for (const [name, m] of [["CMMLU (test)", r.cmmlu], ["C-Eval (val)", r.ceval]]) if (m) L.push(`| ${name} | ${m.questions} | ${m.accuracy.toFixed(2)} % | ${typeof m.macro === "number" ? `${m.macro.toFixed(2)} %` : ""} |`);
  L.push("");
  const sp = r.speed;
  L.push("### Speed", "");
  L.push(`\`npm run bench -- -t 2 -p 128 -n 32\` on the shipped Q8_0 file: prompt ${sp.pp_tokens_per_s.toFixed(0)} tokens/s, generation ${sp.tg_tokens_per_s.toFixed(0)} tokens/s (${(1000 / sp.tg_tokens_per_s).toFixed(1)} ms/token), peak RSS ${(sp.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB; ${sp.cpu ?? "2-core machine"}, ${sp.threads} threads, Node ${sp.node ?? process.version}.`, "");
  L.push("### Example conversations", "", "As `cmx chat -p TEXT --seed 1` answers (the chat template, the chat defaults):", "");
  for (const c of r.conversations) L.push(`> **user:** ${esc(c.user)}<br>**model:** ${esc(c.assistant)}`, "");
  L.push("Held-out examples (✓ right by the measure above):", "", "| task | instruction | greedy | | chat defaults | |", "| --- | --- | --- | --- | --- | --- |");
  for (const e of inst.examples) L.push(`| ${e.task} | ${esc(e.instruction + (e.input ? "\n" + e.input : ""))} | ${esc(e.answer)} | ${e.right ? "✓" : "✗"} | ${esc(e.sampled)} | ${e.rightSampled ? "✓" : "✗"} |`);
  const card = readFileSync(CARD, "utf8");
  const a = card.indexOf("<!-- results:start -->"), b = card.indexOf("<!-- results:end -->");
  if (a < 0 || b < a) throw new Error(`${CARD}: the results markers are missing`);
  const out = card.slice(0, a) + "<!-- results:start -->\n" + L.join("\n") + "\n" + card.slice(b);
  writeFileSync(`${CARD}.tmp`, out);
  renameSync(`${CARD}.tmp`, CARD);
  process.stderr.write(`wrote the results into ${CARD}\n`);
}

if (values.render) render(JSON.parse(readFileSync(join(DOCS, "results.json"), "utf8")));
else await main();
