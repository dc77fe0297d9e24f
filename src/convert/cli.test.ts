import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, haveReference, refPath } from "../test-util/paths.js";
import { modelPath } from "../test-util/reference.js";
import { writePeftAdapter, randomArray } from "../lora/testing.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-convert-cli-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = haveReference() ? modelPath("A-F32") : undefined;
const TOK = haveReference() ? refPath("tokenizer", "tokenizer.model.v1") : undefined;
const CLI = join(REPO_ROOT, "dist", "cli", "main.js");

function cmx(args: string[]) {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function noLeftovers(d: string): void {
  assert.deepEqual(readdirSync(d).filter((f) => f.endsWith(".tmp")), [], `temporary files left in ${d}`);
}

test("the CLI: convert, export, merge-lora have --help; convert and export run", { skip: !A }, () => {
  for (const c of ["convert", "export", "merge-lora"]) {
    const h = cmx([c, "--help"]);
    assert.equal(h.code, 0, h.err);
    assert.match(h.out, new RegExp(`Usage: cmx ${c}`));
  }
  const out = join(dir, "cli-hf");
  const e = cmx(["export", A!, out, "--shard-size", "9MB"]);
  assert.equal(e.code, 0, e.err);
  assert.ok(existsSync(join(out, "model.safetensors.index.json")));
  copyFileSync(TOK!, join(out, "tokenizer.model"));
  const g = join(dir, "cli.gguf");
  const c = cmx(["convert", out, g, "--outtype", "f32"]);
  assert.equal(c.code, 0, c.err);
  assert.match(c.out, /2 layers, 4 experts \(top-2\), 23 tensors/);
  const bad = cmx(["convert", out, g, "--outtype", "q4_0"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /--outtype: "q4_0" is not one of f32, f16, bf16, q8_0/);
  noLeftovers(dir);
});


test("cmx merge-lora merges into a GGUF and into a folder; a bad adapter is one clear error line", { skip: !A }, () => {
  const ad = join(dir, "adapter");
  const P = "base_model.model.model.layers.0.self_attn.q_proj";
  writePeftAdapter(ad, { r: 2, lora_alpha: 4, target_modules: ["q_proj"] }, [
    { name: `${P}.lora_A.weight`, shape: [2, 64], data: randomArray(128, 1) },
    { name: `${P}.lora_B.weight`, shape: [64, 2], data: randomArray(128, 2) },
  ]);
  const g = join(dir, "merged.gguf");
  const r = cmx(["merge-lora", "--base", A!, "--lora", ad, "--out", g, "--outtype", "q8_0"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /merged 1 LoRA pairs, replaced 0 tensors \(GGUF\)/);
  const h = join(dir, "merged-hf");
  const r2 = cmx(["merge-lora", "--base", A!, "--lora", ad, "--out", h, "--dtype", "bf16"]);
  assert.equal(r2.code, 0, r2.err);
  assert.ok(existsSync(join(h, "model.safetensors")) && existsSync(join(h, "config.json")));
  const bad = join(dir, "bad-adapter");
  writePeftAdapter(bad, { r: 2, lora_alpha: 4, target_modules: ["q_proj"] }, [
    { name: `${P}.lora_A.weight`, shape: [2, 4096], data: new Float32Array(2 * 4096) },
    { name: `${P}.lora_B.weight`, shape: [4096, 2], data: new Float32Array(2 * 4096) },
  ]);
  const out = join(dir, "never.gguf");
  const e = cmx(["merge-lora", "--base", A!, "--lora", bad, "--out", out]);
  assert.equal(e.code, 1);
  assert.match(e.err, /^cmx merge-lora: error: adapter tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[2, 4096\] but base tensor "model\.layers\.0\.self_attn\.q_proj\.weight" has shape \[64, 64\]/);
  assert.equal(existsSync(out), false);
  noLeftovers(dir);
  rmSync(h, { recursive: true });
});
