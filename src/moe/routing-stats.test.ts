import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel } from "../model/load.js";
import { RoutingStats } from "./routing-stats.js";
import { REPO_ROOT, haveReference } from "../test-util/paths.js";
import { manifest, modelPath, readI32 } from "../test-util/reference.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-experts-"));

test("cmx experts counts equal the expert choices llama.cpp recorded", { skip: !haveReference() }, () => {
  for (const model of ["A-F32", "B-Q4_K_M", "B-F32"]) {
    const path = modelPath(model);
    if (!path) continue;
    const runs = manifest().runs.filter((r) => r.model === model);
    const files = runs.map((r) => {
      const f = join(dir, `${model}.${r.sequence}.txt`);
      writeFileSync(f, manifest().sequences[r.sequence]!.text);
      return f;
    });
    const out = join(dir, model);
    const res = spawnSync(process.execPath, [join(REPO_ROOT, "dist/cli/main.js"), "experts", "-m", path, "-c", "256", "--kv-type", "f32", ...files.flatMap((f) => ["-f", f]), "--out", out], { encoding: "utf8" });
    assert.equal(res.status, 0, res.stderr);
    const json = JSON.parse(readFileSync(join(out, "experts.json"), "utf8"));
    runs.forEach((run, i) => {
      const got = json.files[i];
      assert.equal(got.nTokens, run.n_tokens);
      const nLayer = manifest().models[model]!.hparams["n_layer"]!;
      const nExp = manifest().models[model]!.hparams["n_expert"]!;
      for (let l = 0; l < nLayer; l++) {
        const topk = readI32(run.hidden[`ffn_moe_topk-${l}`]!.file);
        const want = new Array(nExp).fill(0);
        for (const e of topk) want[e]++;
        // quantized models: llama.cpp's choices at near-tied router positions may differ; none of the stored runs has one
        assert.deepEqual(got.layers[l].counts, want, `${model} ${run.sequence} layer ${l}`);
        assert.equal(got.layers[l].pairs[0][0], want[0]);
      }
    });
    assert.ok(json.shareDifference, "difference between the first two files");
  }
});

test("ablation: disabling an expert no token chose leaves the logits unchanged; disabling a chosen one changes them", { skip: !haveReference() }, () => {
  const path = modelPath("B-Q4_K_M")!;
  const toks = manifest().sequences.short!.token_ids;
  const base = loadModel(path);
  const stats = new RoutingStats(base.model.config.nLayer, base.model.config.nExpert, base.model.config.nExpertUsed);
  const ref = base.model.newContext({ nCtx: 64 }).eval(toks, { logits: "all", trace: stats.trace });
  const s = stats.summary();
  let unused: string | undefined, used: string | undefined;
  s.layers.forEach((l, li) => l.counts.forEach((c, e) => { if (c === 0) unused ??= `${li}:${e}`; else used ??= `${li}:${e}`; }));
  assert.ok(unused && used, "the short text leaves some expert unused in B");
  const same = loadModel(path, { disableExperts: [unused!] }).model.newContext({ nCtx: 64 }).eval(toks, { logits: "all" });
  assert.deepEqual(Array.from(same), Array.from(ref));
  const diff = loadModel(path, { disableExperts: [used!] }).model.newContext({ nCtx: 64 }).eval(toks, { logits: "all" });
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(diff[i]! - ref[i]!));
  assert.ok(d > 1e-3, `disabling ${used} should change the logits (max |Δ| ${d})`);
});
