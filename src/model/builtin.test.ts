// The built-in model (docs/default-model.md): the shipped file's hash and configuration, its
// answers to held-out instructions at temperature 0, and the model card's perplexity figures.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { perplexity } from "../eval/perplexity.js";
import { generate } from "../generate.js";
import { BUILTIN_MODEL, PACKAGE_ROOT, defaultModelPath } from "./default-model.js";
import { loadModel } from "./load.js";
import { judgePoemAnswer, maxTokensFor, type PoemInstruction } from "./poem-tasks.js";

const HELD = join(PACKAGE_ROOT, "assets", "models", "heldout");
const RESULTS = join(PACKAGE_ROOT, "docs", "default-model", "results.json");
test("the built-in model ships with the repository", () => {
  assert.ok(existsSync(BUILTIN_MODEL), `${BUILTIN_MODEL} is missing`);
});

test("the built-in model is the default, with the recorded hash and a Mixtral configuration", () => {
  if (!process.env.CMX_MODEL) assert.equal(defaultModelPath(), BUILTIN_MODEL);
  const want = readFileSync(`${BUILTIN_MODEL}.sha256`, "utf8").trim().split(/\s+/)[0];
  assert.equal(createHash("sha256").update(readFileSync(BUILTIN_MODEL)).digest("hex"), want);
  const lm = loadModel(BUILTIN_MODEL, { threads: 2 });
  const c = lm.model.config;
  assert.deepEqual(
    { nVocab: c.nVocab, nEmbd: c.nEmbd, nLayer: c.nLayer, nHead: c.nHead, nHeadKv: c.nHeadKv, nExpert: c.nExpert, nExpertUsed: c.nExpertUsed, nFf: c.nFf, ropeTheta: c.ropeTheta },
    { nVocab: 32000, nEmbd: 256, nLayer: 4, nHead: 8, nHeadKv: 4, nExpert: 8, nExpertUsed: 2, nFf: 512, ropeTheta: 1e6 },
  );
  lm.model.close();
});

test("the built-in model answers most held-out instructions right (temperature 0)", async () => {
  const tasks = JSON.parse(readFileSync(join(HELD, "instructions.json"), "utf8")) as { heldOut: PoemInstruction[] };
  const lm = loadModel(BUILTIN_MODEL, { threads: 2 });
  const sample = tasks.heldOut.slice(0, 40);
  let right = 0;
  for (const q of sample) {
    const prompt = lm.tokenizer.encode(`[INST] ${q.input ? `${q.instruction}\n${q.input}` : q.instruction} [/INST]`, { addBos: true });
    const ctx = lm.model.newContext({ nCtx: 512 });
    const r = await generate(ctx, lm.tokenizer, prompt, { maxTokens: maxTokensFor(q.task), sampling: { temperature: 0, repeatPenalty: 1 } });
    ctx.dispose();
    if (judgePoemAnswer(q, r.text)) right++;
  }
  lm.model.close();
  assert.ok(right > sample.length / 2, `${right}/${sample.length} right`);
});

test("the model card's perplexity figures are what the eval commands give", () => {
  const results = JSON.parse(readFileSync(RESULTS, "utf8")) as {
    perplexity: { settings: { ctx: number; chunks: number }; rows: { stage: string; en: { ppl: number }; zh: { ppl: number } }[] };
  };
  const row = results.perplexity.rows.find((r) => r.stage.startsWith("shipped"))!;
  const lm = loadModel(BUILTIN_MODEL, { threads: 2 });
  for (const [lang, want] of [["zh", row.zh.ppl], ["en", row.en.ppl]] as const) {
    const tokens = lm.tokenizer.encode(readFileSync(join(HELD, `${lang}.txt`), "utf8"), { addBos: true });
    const r = perplexity(lm.model, tokens, { nCtx: results.perplexity.settings.ctx, nChunks: results.perplexity.settings.chunks, kvType: "f16", bosId: lm.tokenizer.vocab.bosId });
    assert.equal(r.ppl.toPrecision(4), want.toPrecision(4), `${lang} perplexity`);
  }
  lm.model.close();
});
