#!/usr/bin/env node
// npm run train:default -- the built-in model, from the npm corpora to the shipped GGUF, with this
// toolkit's own commands and fixed seeds (the seed project's three steps at small scale):
//   0. data      scripts/default-model/prepare-data.mjs
//   1. base      cmx train init + cmx train pt on English (every tensor trained, from scratch)
//   2. zh-pt     cmx train pt on Tang poems: LoRA on q,k,v,o, router, experts + embed/lm_head in full
//   3. sft       cmx train sft on instructions made from the poems: the same LoRA recipe
//   4. ship      cmx quantize Q8_0 -> assets/models/, loss curves and metrics -> docs/default-model/
// Each stage checkpoints as it goes and is skipped once its output exists, so running the script
// again after an interruption (or in a new session) continues where it stopped.
// Usage: npm run train:default [-- --threads N] [--until STAGE] [--replay]
// --replay: the English-replay experiment of the model card (stage 2 with every third English
// training paragraph mixed in), into build/default-model/replay/ and docs/default-model/replay/;
// the shipped file is left alone.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const BUILD = join(ROOT, "build", "default-model");
const DATA = join(BUILD, "data");
const CMX = join(ROOT, "dist", "cli", "main.js");
export const SHIPPED = join(ROOT, "assets", "models", "chinese-mixtral-tiny-instruct.Q8_0.gguf");
const DOCS = join(ROOT, "docs", "default-model");

const { values } = parseArgs({ options: { threads: { type: "string", short: "t" }, until: { type: "string" }, replay: { type: "boolean" } } });
/** where stages 2 and 3 and the outputs go: the shipped model's, or the replay experiment's */
const RUN = values.replay ? join(BUILD, "replay") : BUILD;
const OUT = values.replay ? join(RUN, basename(SHIPPED)) : SHIPPED;
const OUT_DOCS = values.replay ? join(DOCS, "replay") : DOCS;
const threads = values.threads ? ["-t", values.threads] : [];

/** The architecture: a real Mixtral (8 experts, top-2, GQA, RoPE theta 1e6), Mistral v1 vocabulary. */
export const ARCH = { layers: 4, embd: 256, ff: 512, heads: 8, kvHeads: 4, experts: 8, expertsUsed: 2, ctx: 1024 };

function cmx(args) {
  process.stderr.write(`\n$ cmx ${args.join(" ")}\n`);
  const r = spawnSync(process.execPath, [CMX, ...args], { stdio: "inherit", cwd: ROOT });
  if (r.status !== 0) {
    process.stderr.write(`train:default: cmx ${args[0]} ${args[1] ?? ""} failed (exit ${r.status ?? r.signal}); run npm run train:default again to continue\n`);
    process.exit(r.status ?? 1);
  }
}

const resumeArgs = (out) => (existsSync(out) && readdirSync(out).some((n) => /^checkpoint-\d+$/.test(n)) ? ["--resume", out] : []);
const stop = (stage) => values.until === stage && (process.stderr.write(`train:default: stopping after ${stage} (--until)\n`), process.exit(0));

// 0. data
if (!existsSync(join(DATA, "stats.json"))) {
  const r = spawnSync(process.execPath, [join(ROOT, "scripts", "default-model", "prepare-data.mjs"), DATA], { stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}
stop("data");

// 1. English base model, every tensor trained from a random start
const s1 = join(BUILD, "stage1-en");
if (!existsSync(join(s1, "model.gguf"))) {
  const init = join(BUILD, "init.gguf");
  if (!existsSync(init)) {
    cmx(["train", "init", "--out", init, "--layers", `${ARCH.layers}`, "--embd", `${ARCH.embd}`, "--ff", `${ARCH.ff}`, "--heads", `${ARCH.heads}`,
      "--kv-heads", `${ARCH.kvHeads}`, "--experts", `${ARCH.experts}`, "--experts-used", `${ARCH.expertsUsed}`, "--ctx", `${ARCH.ctx}`,
      "--seed", "1", "--name", "chinese-mixtral-tiny-base"]);
  }
  cmx(["train", "pt", "--base", init, "--data", join(DATA, "en-train.txt"), "--eval-data", join(DATA, "en-eval.txt"), "--out", s1,
    "--full-train", "all", "--lora-targets", "none", "--seq-len", "256", "--grad-accum", "8", "--lr", "1e-3", "--max-steps", "400",
    "--warmup-ratio", "0.05", "--weight-decay", "0.1", "--eval-every", "50", "--eval-limit", "64", "--save-every", "20", "--log-every", "5", "--no-recompute",
    "--merge-type", "f32", "--name", "chinese-mixtral-tiny-base", "--seed", "1", ...threads, ...resumeArgs(s1)]);
}
stop("base");

// 2. Chinese continued pre-training: LoRA (r 64, alpha 128, dropout 0.05) + embed_tokens / lm_head in full
// (--replay: with every third English training paragraph mixed in, about a fifth of the tokens)
const zhData = ["--data", join(DATA, "zh-train.txt")];
if (values.replay) {
  const replay = join(DATA, "en-replay.txt");
  if (!existsSync(replay)) {
    const lines = readFileSync(join(DATA, "en-train.txt"), "utf8").split("\n").filter(Boolean);
    writeFileSync(`${replay}.tmp`, lines.filter((_, i) => i % 3 === 0).join("\n") + "\n");
    renameSync(`${replay}.tmp`, replay);
  }
  zhData.push("--data", replay);
}
const s2 = join(RUN, "stage2-zh");
if (!existsSync(join(s2, "model.gguf"))) {
  cmx(["train", "pt", "--base", join(s1, "model.gguf"), ...zhData, "--eval-data", join(DATA, "zh-eval.txt"), "--out", s2,
    "--seq-len", "256", "--grad-accum", "8", "--lr", "1e-3", "--max-steps", "400", "--eval-every", "50", "--eval-limit", "64", "--save-every", "20", "--log-every", "5",
    "--no-recompute", "--merge-to", join(s2, "model.gguf"), "--merge-type", "f32", "--name", "chinese-mixtral-tiny", "--seed", "2",
    ...threads, ...resumeArgs(s2)]);
}
stop("zh-pt");

// 3. instruction tuning on the synthesized poem instructions: the same LoRA recipe, 2 epochs
const s3 = join(RUN, "stage3-sft");
if (!existsSync(join(s3, "model.gguf"))) {
  cmx(["train", "sft", "--base", join(s2, "model.gguf"), "--data", join(DATA, "sft-train.json"), "--eval-data", join(DATA, "sft-eval.json"), "--out", s3,
    "--seq-len", "256", "--grad-accum", "8", "--lr", "5e-4", "--epochs", "2", "--eval-every", "100", "--eval-limit", "150", "--save-every", "25", "--log-every", "5",
    "--no-recompute", "--merge-to", join(s3, "model.gguf"), "--merge-type", "f32", "--name", "chinese-mixtral-tiny-instruct", "--seed", "3",
    ...threads, ...resumeArgs(s3)]);
}
stop("sft");

// 4. quantize and ship; keep the curves and metrics for the model card
mkdirSync(dirname(OUT), { recursive: true });
cmx(["quantize", join(s3, "model.gguf"), OUT, "Q8_0"]);
writeFileSync(`${OUT}.sha256`, `${createHash("sha256").update(readFileSync(OUT)).digest("hex")}  ${basename(OUT)}\n`);
mkdirSync(OUT_DOCS, { recursive: true });
for (const [stage, dir] of [["stage1-en", s1], ["stage2-zh", s2], ["stage3-sft", s3]]) {
  if (values.replay && stage === "stage1-en") continue;
  for (const f of ["loss-curve.svg", "loss-curve.png", "metrics.jsonl"]) {
    if (existsSync(join(dir, f))) {
      copyFileSync(join(dir, f), join(OUT_DOCS, `${stage}.${f}.tmp`));
      renameSync(join(OUT_DOCS, `${stage}.${f}.tmp`), join(OUT_DOCS, `${stage}.${f}`));
    }
  }
}
process.stderr.write(`train:default: ${values.replay ? "wrote" : "shipped"} ${OUT}\n`);
