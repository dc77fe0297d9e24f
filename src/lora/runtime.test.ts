// --lora at run time: the adapter's s·B·(A·x) added after each targeted product must give the
// merged model's logits (merge-lora, float32), B = 0 must change nothing, and the commands that
// take --lora (run, chat, serve share the loader) must apply it.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel } from "../model/load.js";
import { haveReference, REPO_ROOT } from "../test-util/paths.js";
import { manifest, modelPath } from "../test-util/reference.js";
import { LORA_RUNTIME_LOGITS_TOL } from "../test-util/tolerances.js";
import { loadLoraAdapter } from "./adapter.js";
import { applyLoraToWeights, mergeLora } from "./merge.js";
import { attachLora } from "./runtime.js";
import { randomArray, writePeftAdapter, type TestTensor } from "./testing.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-lora-rt-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = haveReference() ? modelPath("A-F32") : undefined;

const P = "base_model.model.";
const E = 64, F = 128, V = 32000, NX = 4, R = 4, ALPHA = 8;
const CONFIG = { r: R, lora_alpha: ALPHA, target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate", "w1", "w2", "w3", "embed_tokens"] };

/** Pairs on q, k (RoPE-permuted rows), v, o, the router, three experts' w1/w2/w3, and the embeddings. */
function tensors(zeroB = false): TestTensor[] {
  const mods: [string, number, number][] = [
    ["model.layers.0.self_attn.q_proj", E, E],
    ["model.layers.1.self_attn.k_proj", E, 32],
    ["model.layers.0.self_attn.v_proj", E, 32],
    ["model.layers.1.self_attn.o_proj", E, E],
    ["model.layers.0.block_sparse_moe.gate", E, NX],
    ["model.layers.1.block_sparse_moe.experts.2.w2", F, E],
    ["model.layers.0.block_sparse_moe.experts.1.w1", E, F],
    ["model.layers.1.block_sparse_moe.experts.3.w3", E, F],
  ];
  const out: TestTensor[] = [];
  mods.forEach(([m, inn, o], i) => {
    out.push({ name: `${P}${m}.lora_A.weight`, shape: [R, inn], data: randomArray(R * inn, 300 + i, 0.5) });
    out.push({ name: `${P}${m}.lora_B.weight`, shape: [o, R], data: zeroB ? new Float32Array(o * R) : randomArray(o * R, 400 + i, 0.5) });
  });
  out.push({ name: `${P}model.embed_tokens.lora_embedding_A`, shape: [R, V], data: randomArray(R * V, 500, 0.5) });
  out.push({ name: `${P}model.embed_tokens.lora_embedding_B`, shape: [E, R], data: zeroB ? new Float32Array(E * R) : randomArray(E * R, 501, 0.5) });
  return out;
}

function logitsOf(m: ReturnType<typeof loadModel>): Float32Array {
  return m.model.newContext({ nCtx: 128, kvType: "f32" }).eval(manifest().sequences.medium!.token_ids, { logits: "all" });
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

test("runtime LoRA gives the merged model's logits; the base weights are untouched", { skip: !A }, () => {
  const ad = join(dir, "ad");
  writePeftAdapter(ad, CONFIG, tensors());
  const merged = join(dir, "merged.gguf");
  mergeLora({ base: A!, lora: ad, out: merged, outType: "f32" });
  const m = loadModel(merged), live = loadModel(A!, { backend: "js" });
  const adapter = loadLoraAdapter(ad);
  try {
    const before = logitsOf(live);
    const wq = live.model.weights.layers[0]!.wq.data.slice();
    const r = attachLora(live.model, adapter);
    assert.deepEqual(r, { pairs: 9, replaced: [] });
    const got = logitsOf(live), want = logitsOf(m);
    const d = maxDiff(got, want);
    assert.ok(d <= LORA_RUNTIME_LOGITS_TOL, `runtime vs merged: max |Δ| ${d}`);
    assert.ok(maxDiff(before, got) > 0.1, "the adapter changes the logits");
    assert.deepEqual(live.model.weights.layers[0]!.wq.data, wq, "weights untouched");
  } finally {
    adapter.close();
    m.model.close();
    live.model.close();
  }
});

test("runtime LoRA with B = 0 changes nothing, bit for bit", { skip: !A }, () => {
  const ad = join(dir, "ad-zero");
  writePeftAdapter(ad, CONFIG, tensors(true));
  const base = loadModel(A!), live = loadModel(A!);
  const adapter = loadLoraAdapter(ad);
  try {
    attachLora(live.model, adapter);
    assert.deepEqual([...logitsOf(live)], [...logitsOf(base)]);
  } finally {
    adapter.close();
    base.model.close();
    live.model.close();
  }
});

test("runtime embedding LoRA on a tied LM head changes the head as merging would", { skip: !A }, () => {
  const ad = join(dir, "ad-emb");
  writePeftAdapter(ad, { r: R, lora_alpha: ALPHA, target_modules: ["embed_tokens"] }, tensors().filter((t) => t.name.includes("embed_tokens")));
  const merged = loadModel(A!), live = loadModel(A!);
  // tie both: the output multiplies by the embeddings
  merged.model.weights.output = merged.model.weights.tokenEmbd;
  live.model.weights.output = live.model.weights.tokenEmbd;
  const adapter = loadLoraAdapter(ad);
  try {
    applyLoraToWeights(merged.model, adapter);
    attachLora(live.model, adapter);
    const d = maxDiff(logitsOf(live), logitsOf(merged));
    assert.ok(d <= LORA_RUNTIME_LOGITS_TOL, `tied head: max |Δ| ${d}`);
  } finally {
    adapter.close();
    merged.model.close();
    live.model.close();
  }
});

test("cmx run --lora prints what the merged model prints (greedy)", { skip: !A }, () => {
  const ad = join(dir, "ad-cli");
  writePeftAdapter(ad, CONFIG, tensors());
  const merged = join(dir, "merged-cli.gguf");
  mergeLora({ base: A!, lora: ad, out: merged, outType: "f32" });
  const cli = join(REPO_ROOT, "dist", "cli", "main.js");
  const run = (args: string[]) => spawnSync(process.execPath, [cli, "run", "-p", "Hello", "-n", "12", "--temp", "0", "--kv-type", "f32", "--no-stats", ...args], { encoding: "utf8", timeout: 120_000 });
  const a = run(["-m", A!, "--lora", ad]), b = run(["-m", merged]), c = run(["-m", A!]);
  assert.equal(a.status, 0, a.stderr);
  assert.match(a.stderr, /lora: .*ad-cli: 9 LoRA pairs applied at run time/);
  assert.equal(a.stdout, b.stdout);
  assert.notEqual(a.stdout, c.stdout, "the adapter changes the text");
  const bad = run(["-m", A!, "--lora", join(dir, "nope")]);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^cmx run: error: .*nope/m);
});
