import { test } from "node:test";
import assert from "node:assert/strict";
import { GgufReader } from "../io/gguf/reader.js";
import { Mixtral } from "../model/mixtral.js";
import { haveReference } from "../test-util/paths.js";
import { manifest, modelPath, readF32 } from "../test-util/reference.js";
import { JsBackend } from "./backend.js";
import { WasmBackend } from "./wasm-backend.js";

function open(name: string, backend: JsBackend | WasmBackend): Mixtral {
  const r = new GgufReader(modelPath(name)!);
  try { return Mixtral.fromGguf(r, backend); } finally { r.close(); }
}

test("a model spread over several WebAssembly memories (shards) computes the same logits, on 2 threads", { skip: !haveReference() }, () => {
  const be = new WasmBackend({ threads: 2, shardBytes: 6 << 20 });
  const m = open("B-Q4_K_M", be);
  assert.ok(be.nShards >= 3, `expected several shards, got ${be.nShards}`);
  const run = manifest().runs.find((r) => r.model === "B-Q4_K_M" && r.sequence === "medium")!;
  const toks = manifest().sequences.medium!.token_ids;
  const logits = m.newContext({ nCtx: 128, kvType: "f32" }).eval(toks, { logits: run.logits.positions });
  const ref = readF32(run.logits.file);
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(logits[i]! - ref[i]!));
  assert.ok(d < 1e-3, `max |Δ| ${d}`);
  // a second context after the kernels started: its KV cache may need a new shard
  const before = be.nShards;
  const held = [];
  while (be.nShards === before && held.length < 64) held.push(m.newContext({ nCtx: 512, kvType: "f32" }));
  assert.ok(be.nShards > before, "new contexts should have needed a new shard");
  const again = held[held.length - 1]!.eval(toks, { logits: run.logits.positions });
  assert.deepEqual(Array.from(again), Array.from(logits));
  for (const c of held) c.dispose();
  m.close();
});

test("wasm and js backends agree on every reference model; batched MoE equals token by token", { skip: !haveReference() }, () => {
  for (const name of ["A-F32", "A-Q8_0", "A-Q4_0", "B-Q4_K_M"]) {
    const toks = manifest().sequences.long!.token_ids.slice(0, 100);
    const js = open(name, new JsBackend()).newContext({ nCtx: 128, kvType: "f16" }).eval(toks, { logits: "all" });
    const wm = open(name, new WasmBackend({ threads: 2 }));
    const wasm = wm.newContext({ nCtx: 128, kvType: "f16" }).eval(toks, { logits: "all" });
    let d = 0;
    for (let i = 0; i < js.length; i++) d = Math.max(d, Math.abs(js[i]! - wasm[i]!));
    assert.ok(d < 1e-3, `${name}: wasm vs js max |Δ| ${d}`);
    const one = wm.newContext({ nCtx: 128, kvType: "f16" });
    const V = wm.config.nVocab;
    for (let i = 0; i < 20; i++) {
      const l = one.eval([toks[i]!]);
      let e = 0;
      for (let j = 0; j < V; j++) e = Math.max(e, Math.abs(l[j]! - wasm[i * V + j]!));
      assert.ok(e < 1e-3, `${name} token ${i}: max |Δ| ${e}`);
    }
    wm.close();
  }
});

test("a tensor larger than one memory shard is a clear error", () => {
  const be = new WasmBackend({ threads: 1, shardBytes: 4 << 20 });
  assert.throws(() => be.allocWeight(8 << 20), /does not fit in one .*WebAssembly memory/);
  be.close();
});
