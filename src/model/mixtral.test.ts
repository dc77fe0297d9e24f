import { test } from "node:test";
import assert from "node:assert/strict";
import { GgufReader } from "../io/gguf/reader.js";
import { Mixtral } from "./mixtral.js";
import { createBackend } from "./load.js";
import { haveReference } from "../test-util/paths.js";
import { manifest, modelPath, readF32, readI32, type RefRun } from "../test-util/reference.js";

const runs: RefRun[] = haveReference() ? manifest().runs : [];

function maxAbsDiff(a: Float32Array, b: Float32Array, off = 0): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Math.abs(a[off + i]! - b[i]!));
  return m;
}

const models = new Map<string, Mixtral>();
function load(name: string, backend: "js" | "wasm"): Mixtral {
  let m = models.get(`${name}/${backend}`);
  if (!m) {
    const r = new GgufReader(modelPath(name)!);
    m = Mixtral.fromGguf(r, createBackend(backend, 2));
    r.close();
    models.set(`${name}/${backend}`, m);
  }
  return m;
}

for (const backend of ["js", "wasm"] as const) for (const run of runs) {
  const isF32 = run.model.endsWith("F32");
  test(`${run.model} ${run.sequence} (${backend}): logits${isF32 ? ", intermediates and expert choices" : ""} match llama.cpp`, { skip: !modelPath(run.model) && `${run.model}.gguf not present` }, () => {
    const model = load(run.model, backend);
    const ctx = model.newContext({ nCtx: 512, kvType: "f32" });
    const tokens = manifest().sequences[run.sequence]!.token_ids;
    const traced = new Map<string, Float32Array | Int32Array>();
    const logits = ctx.eval(tokens, {
      logits: run.logits.positions,
      trace: (name, data) => { if (run.hidden[name]) traced.set(name, data.slice()); },
    });
    const V = run.n_vocab;
    const ref = readF32(run.logits.file);
    const tol = isF32 ? 1e-3 : 0.05;
    run.logits.positions.forEach((p, i) => {
      if (!isF32 && !(run.router_gap_min[p]! > 1e-3)) return;
      const d = maxAbsDiff(logits, ref.subarray(i * V, (i + 1) * V), i * V);
      assert.ok(d < tol, `position ${p}: max |Δlogit| = ${d} (tolerance ${tol})`);
    });
    for (const [name, h] of Object.entries(run.hidden)) {
      const ours = traced.get(name);
      assert.ok(ours, `intermediate ${name} was not produced`);
      if (h.dtype === "int32") {
        const theirs = readI32(h.file);
        if (isF32) assert.deepEqual([...ours], [...theirs], `${name}: expert choices differ`);
        else {
          // quantized: choices must agree wherever the router gap is clear
          const k = h.shape[1]!;
          for (let p = 0; p < run.n_tokens; p++) {
            if (run.router_gap_min[p]! <= 1e-3) continue;
            assert.deepEqual([...ours.subarray(p * k, (p + 1) * k)], [...theirs.subarray(p * k, (p + 1) * k)], `${name} position ${p}`);
          }
        }
      } else if (isF32) {
        const theirs = readF32(h.file);
        const d = maxAbsDiff(ours as Float32Array, theirs);
        assert.ok(d < 1e-3, `${name}: max |Δ| = ${d}`);
      }
    }
  });
}

// Exact contexts compute with llama.cpp's arithmetic (src/kernels/js/ggml.ts): every intermediate
// llama.cpp dumped and every logit must then be the same float, on F32 and quantized models alike
// (no tolerance, no exclusion of positions whose expert choice is a near tie).
for (const backend of ["js", "wasm"] as const) for (const run of runs) {
  test(`${run.model} ${run.sequence} (${backend}, exact): logits and intermediates equal llama.cpp's bit for bit`, { skip: !modelPath(run.model) && `${run.model}.gguf not present` }, () => {
    const model = load(run.model, backend);
    const ctx = model.newContext({ nCtx: 512, kvType: "f32", exact: true });
    const tokens = manifest().sequences[run.sequence]!.token_ids;
    const traced = new Map<string, Float32Array | Int32Array>();
    const logits = ctx.eval(tokens, {
      logits: "all",
      trace: (name, data) => { if (run.hidden[name]) traced.set(name, data.slice()); },
    });
    const V = run.n_vocab;
    const ref = readF32(run.logits.file);
    run.logits.positions.forEach((p, i) => {
      for (let j = 0; j < V; j++) {
        if (!Object.is(logits[p * V + j], ref[i * V + j])) assert.fail(`position ${p}, logit ${j}: ${logits[p * V + j]} vs llama.cpp ${ref[i * V + j]}`);
      }
    });
    for (const [name, h] of Object.entries(run.hidden)) {
      const ours = traced.get(name);
      assert.ok(ours, `intermediate ${name} was not produced`);
      const theirs = h.dtype === "int32" ? readI32(h.file) : readF32(h.file);
      assert.equal(ours.length, theirs.length, `${name}: length`);
      for (let i = 0; i < theirs.length; i++) {
        if (!Object.is(ours[i], theirs[i])) assert.fail(`${name}[${i}]: ${ours[i]} vs llama.cpp ${theirs[i]}`);
      }
    }
  });
}
