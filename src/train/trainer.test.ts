import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { DataError } from "../errors.js";
import { generate } from "../generate.js";
import { loadLoraAdapter, applyLoraToWeights, mergeLora } from "../lora/index.js";
import { TOKENIZER_V1 } from "../model/default-model.js";
import { loadModel } from "../model/load.js";
import { SeededNormal, writeSyntheticModel, type SyntheticSpec } from "../model/synthetic.js";
import { GgmlType } from "../quant/format.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { SpmTokenizer } from "../tokenizer/spm.js";
import { loadSftData, readSftRecords, sftExample } from "./data.js";
import { LORA_TARGETS } from "./model.js";
import { Trainer, type TrainOptions } from "./trainer.js";

const vocab = loadSpmModel(TOKENIZER_V1);
const SPEC: SyntheticSpec = {
  name: "tiny-train", nEmbd: 32, nLayer: 2, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2, nFf: 48, nCtx: 256,
  seed: 3, type: GgmlType.F32, std: 0.02, hfInit: true,
};

function dir(): string {
  return mkdtempSync(join(tmpdir(), "cmx-trainer-"));
}

function baseModel(d: string, over: Partial<SyntheticSpec> = {}): string {
  const p = join(d, "base.gguf");
  writeSyntheticModel(p, { ...SPEC, ...over }, vocab);
  return p;
}

/** A tiny "language" of Chinese sentences from a seeded grammar (held-out lines from the same grammar). */
function chineseText(n: number, seed: number): string {
  const who = ["小明", "老师", "妈妈", "农民", "孩子们", "老人"], where = ["在田里", "在山上", "在河边", "在学校", "在村口"];
  const what = ["种花。", "看书。", "喝茶。", "放风筝。", "唱歌。", "休息。"];
  const rng = new SeededNormal(seed);
  const pick = (a: string[]) => a[Math.floor(rng.uniform() * a.length)]!;
  return Array.from({ length: n }, () => `${pick(who)}${pick(where)}${pick(what)}${pick(who)}${pick(where)}${pick(what)}`).join("\n");
}

function options(d: string, over: Partial<TrainOptions>): TrainOptions {
  return {
    mode: "pt", base: join(d, "base.gguf"), data: [], out: join(d, "out"),
    setup: { loraRank: 4, loraAlpha: 8, loraDropout: 0.05, loraTargets: LORA_TARGETS, full: ["embed", "lm_head"], auxCoef: 0.02, recompute: true, seed: 1 },
    lr: 1e-3, schedule: "cosine", warmupRatio: 0.05, weightDecay: 0.1, batch: 1, gradAccum: 2, seqLen: 32, epochs: 1,
    evalEvery: 0, saveEvery: 0, saveTotalLimit: 3, logEvery: 1, maxGradNorm: 1, threads: 2, onBadData: "stop", mergeType: "f32",
    verbose: false, ...over,
  };
}

async function train(o: TrainOptions) {
  const t = new Trainer(o);
  try {
    t.prepare();
    return await t.run();
  } finally {
    t.close();
  }
}

/** metrics.jsonl without the timing */
function metrics(out: string): { step: number; loss?: number }[] {
  return readFileSync(join(out, "metrics.jsonl"), "utf8").split("\n").filter(Boolean).map((l) => ({ ...JSON.parse(l), tokens_per_s: undefined }));
}

test("pre-training lowers held-out perplexity substantially", async () => {
  const d = dir();
  baseModel(d);
  writeFileSync(join(d, "train.txt"), chineseText(300, 1));
  writeFileSync(join(d, "eval.txt"), chineseText(40, 2));
  const o = options(d, {
    data: [join(d, "train.txt")], evalData: [join(d, "eval.txt")], lr: 1e-2, gradAccum: 1, maxSteps: 60,
    setup: { ...options(d, {}).setup, loraTargets: [], full: ["embed", "lm_head", "norm", "attn", "router", "ffn"] },
  });
  const t = new Trainer(o);
  t.prepare();
  const before = t.evaluate()!;
  const r = await t.run();
  t.close();
  assert.ok(r.finished);
  assert.ok(r.evalLoss! < before * 0.4, `eval loss ${before} -> ${r.evalLoss}`);
  assert.ok(Math.exp(r.evalLoss!) < 20, `held-out perplexity ${Math.exp(r.evalLoss!)}`);
  assert.ok(existsSync(join(o.out, "model.gguf")), "full training writes the model");
  assert.ok(existsSync(join(o.out, "loss-curve.svg")) && existsSync(join(o.out, "loss-curve.png")));
  // the written model runs in the inference engine with the same loss
  const lm = loadModel(join(o.out, "model.gguf"), { backend: "js" });
  const line = chineseText(1, 2);
  const ids = lm.tokenizer.encode(line, { addBos: true });
  const logits = lm.model.newContext({ nCtx: 64 }).eval(ids, { logits: "all" });
  assert.equal(logits.length, ids.length * lm.model.config.nVocab);
});

test("a run resumed from a checkpoint has exactly the losses of an uninterrupted one", async () => {
  const d = dir();
  baseModel(d);
  writeFileSync(join(d, "train.txt"), chineseText(120, 3));
  const whole = options(d, { data: [join(d, "train.txt")], out: join(d, "whole"), maxSteps: 6 });
  await train(whole);
  const part = options(d, { data: [join(d, "train.txt")], out: join(d, "part"), maxSteps: 6, stopAfter: 3 });
  const r1 = await train(part);
  assert.equal(r1.finished, false);
  assert.ok(existsSync(join(d, "part", "checkpoint-3", "trainer_state.json")));
  const r2 = await train({ ...part, stopAfter: undefined, resume: join(d, "part") });
  assert.ok(r2.finished);
  assert.deepEqual(metrics(join(d, "part")), metrics(join(d, "whole")));
  assert.deepEqual(readFileSync(join(d, "part", "adapter_model.safetensors")), readFileSync(join(d, "whole", "adapter_model.safetensors")));
  // resuming with other hyperparameters is refused
  await assert.rejects(train({ ...part, lr: 5e-4, resume: join(d, "part") }), /other settings \(lr/);
});

test("the PEFT adapter: cmx merge-lora, the runtime-applied adapter and --merge-to give the same logits", async () => {
  const d = dir();
  baseModel(d);
  writeFileSync(join(d, "train.txt"), chineseText(60, 4));
  const o = options(d, { data: [join(d, "train.txt")], maxSteps: 3, lr: 1e-2, mergeTo: join(d, "merged-here.gguf") });
  await train(o);
  const cfg = JSON.parse(readFileSync(join(o.out, "adapter_config.json"), "utf8"));
  assert.equal(cfg.peft_type, "LORA");
  assert.equal(cfg.r, 4);
  assert.deepEqual(cfg.modules_to_save, ["embed_tokens", "lm_head"]);
  const adapter = loadLoraAdapter(o.out);
  assert.equal(adapter.pairs.size, 2 * (4 + 1 + 3 * 4));
  assert.equal(adapter.replacements.size, 2);
  mergeLora({ base: o.base, lora: o.out, out: join(d, "merged-peft.gguf"), outType: "f32" });
  const ids = [1, 415, 3289, 28705, 29383, 29705];
  const logitsOf = (path: string, lora = false) => {
    const lm = loadModel(path, { backend: "js" });
    if (lora) applyLoraToWeights(lm.model, adapter);
    return lm.model.newContext({ nCtx: 32 }).eval(ids, { logits: "all" });
  };
  const a = logitsOf(join(d, "merged-here.gguf")), b = logitsOf(join(d, "merged-peft.gguf")), c = logitsOf(o.base, true);
  const base = logitsOf(o.base);
  let dab = 0, dac = 0, moved = 0;
  for (let i = 0; i < a.length; i++) {
    dab = Math.max(dab, Math.abs(a[i]! - b[i]!));
    dac = Math.max(dac, Math.abs(a[i]! - c[i]!));
    moved = Math.max(moved, Math.abs(a[i]! - base[i]!));
  }
  assert.ok(dab < 1e-5 && dac < 1e-5, `merged here vs merge-lora ${dab}, vs runtime ${dac}`);
  assert.ok(moved > 1e-3, "training changed the model");
});

test("instruction tuning learns a small instruction set (greedy answers match the targets)", async () => {
  const d = dir();
  baseModel(d, { nEmbd: 64, nFf: 96 });
  const records = [
    { instruction: "静夜思的作者是谁？", input: "", output: "李白" },
    { instruction: "春晓的作者是谁？", input: "", output: "孟浩然" },
    { instruction: "续写下一句", input: "床前明月光", output: "疑是地上霜" },
    { instruction: "续写下一句", input: "春眠不觉晓", output: "处处闻啼鸟" },
  ];
  writeFileSync(join(d, "sft.json"), JSON.stringify(records));
  const o = options(d, {
    mode: "sft", data: [join(d, "sft.json")], seqLen: 64, epochs: 60, gradAccum: 1, lr: 1e-2, warmupRatio: 0.05,
    setup: { ...options(d, {}).setup, loraTargets: [], full: ["embed", "lm_head", "norm", "attn", "router", "ffn"], loraDropout: 0 },
  });
  const r = await train(o);
  assert.ok(r.finished);
  const lm = loadModel(join(o.out, "model.gguf"));
  let right = 0;
  for (const rec of records) {
    const prompt = lm.tokenizer.encode(`[INST] ${rec.input ? `${rec.instruction}\n${rec.input}` : rec.instruction} [/INST]`, { addBos: true });
    const res = await generate(lm.model.newContext({ nCtx: 64 }), lm.tokenizer, prompt, { sampling: { temperature: 0, repeatPenalty: 1 }, maxTokens: 16 });
    if (res.text.trim() === rec.output) right++;
    else console.log(`SFT: ${rec.instruction} ${rec.input} -> ${JSON.stringify(res.text)} (want ${rec.output})`);
  }
  lm.model.close();
  assert.ok(right >= 3, `${right}/4 answers right`);
});

test("SFT data: the seed's prompt and labels; bad records are reported with file and line", () => {
  const tok = new SpmTokenizer(vocab);
  const ex = sftExample({ instruction: "你好", input: "世界", output: "好" }, tok, 64)!;
  const src = tok.encode("[INST] 你好\n世界 [/INST]", { addBos: true });
  const tgt = tok.encode("好</s>", { addBos: false, parseSpecial: true });
  assert.deepEqual([...ex.tokens], [...src, ...tgt]);
  assert.deepEqual([...ex.targets], [...src.slice(1).map(() => -1), ...tgt, -1]);
  assert.equal(tgt[tgt.length - 1], vocab.eosId);
  const d = dir();
  writeFileSync(join(d, "bad.jsonl"), '{"instruction":"a","output":"b"}\n{"instruction":"a"\n{"instruction":"c"}\n');
  assert.throws(() => readSftRecords(join(d, "bad.jsonl"), "stop", []), (e: unknown) => e instanceof DataError && /bad\.jsonl:2: invalid JSON/.test(e.message));
  const problems: string[] = [];
  const r = readSftRecords(join(d, "bad.jsonl"), "skip", problems);
  assert.equal(r.records.length, 1);
  assert.equal(r.skipped, 2);
  assert.match(problems[1]!, /bad\.jsonl:3: the record has no "output"/);
  writeFileSync(join(d, "empty.json"), "  \n");
  assert.throws(() => loadSftData([join(d, "empty.json")], tok, 64, "stop"), /empty\.json is empty/);
});

test("a Hugging Face folder as --base is converted once and trained on", async () => {
  const { writeHfFixture } = await import("../convert/fixture.js");
  const d = dir();
  const gguf = baseModel(d);
  writeHfFixture(gguf, join(d, "hf"));
  writeFileSync(join(d, "sft.jsonl"), '{"instruction":"你好","input":"","output":"你好！"}\n');
  const o = options(d, { mode: "sft", base: join(d, "hf"), data: [join(d, "sft.jsonl")], maxSteps: 2, seqLen: 64 });
  const r = await train(o);
  assert.ok(r.finished);
  assert.ok(existsSync(join(o.out, "base.gguf")));
  const cfg = JSON.parse(readFileSync(join(o.out, "adapter_config.json"), "utf8"));
  assert.equal(cfg.base_model_name_or_path, join(d, "hf"));
  // the adapter merges into the Hugging Face folder itself
  mergeLora({ base: join(d, "hf"), lora: o.out, out: join(d, "merged-hf") });
  assert.ok(existsSync(join(d, "merged-hf", "config.json")));
});

test("cmx train: Ctrl-C finishes the step, saves a checkpoint and exits", async () => {
  const { spawn } = await import("node:child_process");
  const { fileURLToPath } = await import("node:url");
  const d = dir();
  baseModel(d);
  writeFileSync(join(d, "train.txt"), chineseText(400, 5));
  const cli = fileURLToPath(new URL("../cli/main.js", import.meta.url));
  const args = ["train", "pt", "--base", join(d, "base.gguf"), "--data", join(d, "train.txt"), "--out", join(d, "out"),
    "--seq-len", "32", "--grad-accum", "1", "--lora-rank", "4", "--log-every", "1", "--save-every", "0", "-t", "1"];
  const p = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  await new Promise<void>((res) => p.stderr.on("data", (b: Buffer) => {
    err += b.toString();
    if (/step 2\//.test(err)) res();
  }));
  p.kill("SIGINT");
  const code = await new Promise<number | null>((res) => p.on("exit", res));
  assert.equal(code, 0, err);
  assert.match(err, /interrupt: finishing this step and saving a checkpoint/);
  const m = /stopped at step (\d+)\//.exec(err);
  assert.ok(m, err);
  assert.ok(existsSync(join(d, "out", `checkpoint-${m[1]}`, "params.safetensors")));
  assert.ok(!readdirSync(join(d, "out")).some((n) => n.includes(".tmp")), "no temporary folder left");
});
