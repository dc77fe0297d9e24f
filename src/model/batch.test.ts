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

test("the experts of a layer as one job (WasmBackend.moeFfn) and all sequences' attention as one (attentionBatch) give the logits of one product / sequence at a time, bit for bit", { skip: !haveReference() }, async () => {
  const { WasmBackend } = await import("../kernels/wasm-backend.js");
  for (const name of ["A-Q4_0", "B-Q4_K_M", "A-Q8_0", "A-F32"]) {
    for (const threads of [1, 2]) {
      const m = loadModel(modelPath(name)!, { backend: "wasm", threads }).model;
      const be = m.backend as InstanceType<typeof WasmBackend>;
      const long = manifest().sequences.long!.token_ids, medium = manifest().sequences.medium!.token_ids;
      const seqs = [long.slice(0, 30), medium.slice(0, 30), [1, ...long.slice(100, 129)], long.slice(50, 80)];
      const run = (fused: boolean): Float32Array[] => {
        be.fusedMoe = fused;
        be.batchedAttention = fused;
        const ctxs = seqs.map(() => m.newContext({ nCtx: 64, kvType: "f16" }));
        const pre = [9, 21, 3, 14];
        const outs = [m.forwardBatch(ctxs.map((ctx, i) => ({ ctx, tokens: seqs[i]!.slice(0, pre[i]), logitRows: [0, pre[i]! - 1] })))];
        for (let step = 0; step < 4; step++) {
          outs.push(m.forwardBatch(ctxs.map((ctx, i) => ({ ctx, tokens: [seqs[i]![pre[i]! + step]!], logitRows: [0] }))));
        }
        for (const c of ctxs) c.dispose();
        return outs.flat();
      };
      const a = run(true), b = run(false);
      a.forEach((x, i) => {
        for (let j = 0; j < x.length; j++) if (!Object.is(x[j], b[i]![j])) assert.fail(`${name}, ${threads} threads, output ${i} logit ${j}: ${x[j]} vs ${b[i]![j]}`);
      });
      m.close();
    }
  }
});
