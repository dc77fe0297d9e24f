// Packed weights (the WebAssembly backend's load-time layout for the 32-element block types and
// the K-quants, src/kernels/wasm/native/common.ts): a model computes exactly what it computes unpacked and what
// the reference backend computes, in every path (prompt, decode, llama.cpp-exact arithmetic,
// experts on demand), and the bytes read back through the layout are the file's.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, openSync, closeSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufReader } from "../io/gguf/reader.js";
import { Mixtral } from "../model/mixtral.js";
import { TOKENIZER_V1 } from "../model/default-model.js";
import { writeSyntheticModel } from "../model/synthetic.js";
import { GgmlType, typeName } from "../quant/format.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { JsBackend, type Backend } from "./backend.js";
import { plainMatrix, readRow, writePlainMatrix } from "./js/matmul.js";
import { WasmBackend } from "./wasm-backend.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-packed-"));
const vocab = loadSpmModel(TOKENIZER_V1);

/** a small random Mixtral; with Q4_K, a Q4_K_M-like mix (Q6_K output and down projections) */
function model(type: GgmlType): string {
  const p = join(dir, `${typeName(type)}.gguf`);
  const k = type === GgmlType.Q4_K;
  writeSyntheticModel(p, {
    name: "packed", nEmbd: k ? 256 : 64, nLayer: 2, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2, nFf: k ? 256 : 96, nCtx: 256, seed: 7, type,
    ...(k ? { tensorType: (name: string) => (name === "output.weight" || name.includes("ffn_down") ? GgmlType.Q6_K : undefined) } : {}),
  }, vocab);
  return p;
}

function open(path: string, backend: Backend, maxMemory?: number): Mixtral {
  const r = new GgufReader(path);
  try { return Mixtral.fromGguf(r, backend, maxMemory === undefined ? {} : { maxMemory }); } finally { if (maxMemory === undefined) r.close(); }
}

/** logits of a 40-token prompt in one batch, then 12 tokens one at a time */
function run(m: Mixtral, exact = false): number[] {
  const ctx = m.newContext({ nCtx: 128, kvType: "f16", ...(exact ? { exact } : {}) });
  const toks = Array.from({ length: 52 }, (_, i) => (i * 7919 + 13) % 32000);
  const out = Array.from(ctx.eval(toks.slice(0, 40), { logits: "all" }));
  for (let i = 40; i < 52; i++) out.push(...ctx.eval([toks[i]!]));
  ctx.dispose();
  return out;
}

for (const type of [GgmlType.Q4_0, GgmlType.Q8_0, GgmlType.Q4_K]) {
  test(`packed ${typeName(type)} weights: identical logits to unpacked and to the reference backend`, () => {
    const path = model(type);
    const packed = open(path, new WasmBackend({ threads: 2 }));
    const w = packed.weights;
    assert.ok(w.layers.every((l) => l.wq.packed && l.wk.packed && l.wo.packed && l.ffnGate.packed && l.ffnDown.packed), "the layers' matrices are packed");
    assert.ok(w.output.packed, "the output matrix is packed");
    assert.ok(!w.tokenEmbd.packed, "the token embeddings are read by row and stay plain");
    const plain = open(path, new WasmBackend({ threads: 2, packWeights: false }));
    assert.ok(!plain.weights.layers[0]!.wq.packed);
    const js = open(path, new JsBackend());
    const want = run(js);
    assert.deepEqual(run(packed), run(plain), "packed vs unpacked");
    // the wasm kernels are bit-identical to the reference, so all three agree exactly
    assert.deepEqual(run(packed), want, "packed vs the reference backend");
    assert.deepEqual(run(packed, true), run(js, true), "llama.cpp-exact arithmetic");
    // experts on demand: the cache packs what it reads
    const expertBytes = w.layers.reduce((a, l) => a + l.ffnGate.data.length + l.ffnUp.data.length + l.ffnDown.data.length, 0);
    const lim = open(path, new WasmBackend({ threads: 2 }), Math.floor(w.bytes - 0.6 * expertBytes));
    assert.ok(lim.weights.experts && lim.weights.layers[0]!.ffnGate.packed);
    assert.deepEqual(run(lim), want, "experts on demand");
    lim.close();
    // the bytes through the layout are the file's
    const r = new GgufReader(path);
    try {
      for (const wt of [w.layers[1]!.wv, w.output]) {
        const file = r.readTensorBytes(r.tensor(wt.name)!);
        assert.deepEqual(plainMatrix(wt, 0), file, `${wt.name}: plainMatrix`);
        for (const row of [0, 1, 3, 6, wt.nOut - 1]) {
          assert.deepEqual(readRow(wt, 0, row), file.subarray(row * wt.rowBytes, (row + 1) * wt.rowBytes), `${wt.name}: row ${row}`);
        }
      }
      // written through the layout (as a LoRA merge does), read back and computed with
      const wq = w.layers[0]!.wq, jq = js.weights.layers[0]!.wq;
      const changed = plainMatrix(wq, 0).slice().reverse();
      writePlainMatrix(wq, 0, changed);
      jq.data.set(changed);
      assert.deepEqual(plainMatrix(wq, 0), changed);
      assert.deepEqual(run(packed), run(js), "after writing a matrix");
    } finally {
      r.close();
    }
    for (const m of [packed, plain, js]) m.close();
  });
}

test("an F16 matrix holding an infinity or a NaN is refused at load, naming the tensor and the element", () => {
  const path = join(dir, "F16-damaged.gguf");
  writeSyntheticModel(path, {
    name: "damaged", nEmbd: 64, nLayer: 1, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2, nFf: 96, nCtx: 256, seed: 3, type: GgmlType.F16,
  }, vocab);
  const r = new GgufReader(path);
  const t = r.tensor("blk.0.attn_v.weight")!;
  const at = r.info.dataOffset + t.offset + 2 * 37;
  r.close();
  for (const [bits, what] of [[0x7c00, "infinity"], [0xfe01, "NaN"]] as const) {
    const fd = openSync(path, "r+");
    writeSync(fd, new Uint8Array([bits & 0xff, bits >>> 8]), 0, 2, at);
    closeSync(fd);
    for (const backend of [new WasmBackend({ threads: 1 }), new JsBackend()]) {
      assert.throws(() => open(path, backend), (e: Error) =>
        e.name === "ModelError" && e.message.includes('tensor "blk.0.attn_v.weight"') && e.message.includes(what) && e.message.includes("element 37"), what);
      backend.close();
    }
  }
});
