import { test } from "node:test";
import assert from "node:assert/strict";
import { loadModel } from "./load.js";
import { haveReference } from "../test-util/paths.js";
import { manifest, modelPath } from "../test-util/reference.js";

test("several sequences in one forward step give the same logits as each alone (continuous batching)", { skip: !haveReference() }, () => {
  for (const backend of ["js", "wasm"] as const) {
    const m = loadModel(modelPath("B-Q4_K_M")!, { backend, threads: 2 }).model;
    const long = manifest().sequences.long!.token_ids, medium = manifest().sequences.medium!.token_ids;
    const seqs = [long.slice(0, 40), medium.slice(0, 40), [1, ...long.slice(100, 139)]];
    const alone = seqs.map((t) => m.newContext({ nCtx: 128, kvType: "f32" }).eval(t, { logits: "all" }));
    // prefill each to a different length, then decode one token each in a shared batch
    const ctxs = seqs.map(() => m.newContext({ nCtx: 128, kvType: "f32" }));
    const pre = [10, 25, 3];
    const outs = m.forwardBatch(ctxs.map((ctx, i) => ({ ctx, tokens: seqs[i]!.slice(0, pre[i]), logitRows: [pre[i]! - 1] })));
    const V = m.config.nVocab;
    const close = (a: Float32Array, b: Float32Array, what: string) => {
      let d = 0;
      for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(a[j]! - b[j]!));
      assert.ok(d < 1e-4, `${backend} ${what}: max |Δ| ${d}`);
    };
    outs.forEach((o, i) => close(o, alone[i]!.subarray((pre[i]! - 1) * V, pre[i]! * V), `prefill ${i}`));
    for (let step = 0; step < 5; step++) {
      const res = m.forwardBatch(ctxs.map((ctx, i) => ({ ctx, tokens: [seqs[i]![pre[i]! + step]!], logitRows: [0] })));
      res.forEach((o, i) => close(o, alone[i]!.subarray((pre[i]! + step) * V, (pre[i]! + step + 1) * V), `decode ${step} seq ${i}`));
    }
    m.close();
  }
});
