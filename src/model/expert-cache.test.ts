import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel } from "./load.js";
import { writeSyntheticModel } from "./synthetic.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { TOKENIZER_V1 } from "./default-model.js";
import { GgmlType } from "../quant/format.js";
import { REPO_ROOT, haveReference } from "../test-util/paths.js";
import { manifest, modelPath } from "../test-util/reference.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-experts-ondemand-"));

test("experts on demand (--max-memory) give identical logits, hits and misses are counted", { skip: !haveReference() }, () => {
  const toks = manifest().sequences.long!.token_ids;
  for (const name of ["B-Q4_K_M", "A-F32-legacy"]) {
    const path = modelPath(name);
    if (!path) continue;
    for (const backend of ["js", "wasm"] as const) {
      const full = loadModel(path, { backend, threads: 2 });
      const want = full.model.newContext({ nCtx: 256, kvType: "f32" }).eval(toks, { logits: "all" });
      const expertBytes = full.model.weights.layers.reduce((a, l) => a + l.ffnGate.data.length + l.ffnUp.data.length + l.ffnDown.data.length, 0);
      const limit = full.model.weights.bytes - 0.5 * expertBytes;
      full.model.close();
      const lim = loadModel(path, { backend, threads: 2, maxMemory: Math.floor(limit) });
      const ex = lim.model.weights.experts!;
      assert.ok(ex, "an expert cache");
      assert.ok(lim.model.weights.bytes <= limit, `resident ${lim.model.weights.bytes} within the limit ${limit}`);
      const ctx = lim.model.newContext({ nCtx: 256, kvType: "f32" });
      // prompt in one batch, then token by token (the decode path)
      const got = ctx.eval(toks.slice(0, 100), { logits: "all" });
      assert.deepEqual(Array.from(got), Array.from(want.subarray(0, got.length)), `${name}/${backend}: batched`);
      const V = lim.model.config.nVocab;
      for (let i = 100; i < 130; i++) {
        const l = ctx.eval([toks[i]!]);
        assert.deepEqual(Array.from(l), Array.from(want.subarray(i * V, (i + 1) * V)), `${name}/${backend}: token ${i}`);
      }
      assert.ok(ex.stats.misses > 0 && ex.stats.hits > 0, JSON.stringify(ex.stats));
      assert.ok(ex.stats.bytesRead > 0);
      lim.model.close();
    }
  }
});

test("peak resident memory stays under the limit (child processes, a model whose experts exceed it)", () => {
  const path = join(dir, "moe.gguf");
  // 4 layers x 8 experts x 3 x 256 x 2048 x Q8_0 = 53 MB of experts; the rest (embeddings, output) ~ 18 MB
  writeSyntheticModel(path, { name: "ondemand", nEmbd: 256, nLayer: 4, nHead: 4, nHeadKv: 2, nExpert: 8, nExpertUsed: 2, nFf: 2048, nCtx: 256, seed: 3, type: GgmlType.Q8_0 }, loadSpmModel(TOKENIZER_V1));
  const script = `
    const { loadModel } = await import(${JSON.stringify(join(REPO_ROOT, "dist/model/load.js"))});
    const opts = { backend: "wasm", threads: 1, ...(process.env.CMX_TEST_LIMIT ? { maxMemory: Number(process.env.CMX_TEST_LIMIT) } : {}) };
    const m = loadModel(${JSON.stringify(path)}, opts);
    const ctx = m.model.newContext({ nCtx: 64 });
    const l = ctx.eval([1, 415, 2936, 9060, 285, 1142, 754, 13], { logits: "last" });
    for (let i = 0; i < 8; i++) ctx.eval([300 + i * 17]);
    // VmHWM: this process's peak RSS (getrusage's maxrss would include the forking parent's)
    const { readFileSync } = await import("node:fs");
    const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
    console.log(JSON.stringify({ maxRss: hwm ? Number(hwm[1]) * 1024 : process.memoryUsage().rss, sum: l.reduce((a, b) => a + b, 0), weights: m.model.weights.bytes, opts }));
    process.exit(0);`;
  const run = (limit?: number) => JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script],
    { encoding: "utf8", env: { ...process.env, CMX_TEST_LIMIT: limit ? String(limit) : "" } }));
  const full = run();
  const limit = 28 * 2 ** 20;
  const lim = run(limit);
  assert.equal(lim.sum, full.sum, "same logits");
  assert.ok(lim.weights <= limit);
  const saved = full.maxRss - lim.maxRss;
  // the full run holds ~53 MB of experts; the limited one at most limit - resident
  assert.ok(saved > 25 * 2 ** 20, `peak RSS full ${full.maxRss}, limited ${lim.maxRss}: only ${saved} bytes saved`);
});
