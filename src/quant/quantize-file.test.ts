import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufReader } from "../io/gguf/reader.js";
import { loadModel } from "../model/load.js";
import { importanceMap, quantizeFile } from "./quantize-file.js";
import { typeName } from "./format.js";
import { haveReference, refPath } from "../test-util/paths.js";
import { manifest, modelPath, readF32 } from "../test-util/reference.js";
import { readFileSync } from "node:fs";

const dir = mkdtempSync(join(tmpdir(), "cmx-quant-"));

function sameTensors(ours: string, theirs: string): void {
  const a = new GgufReader(ours), b = new GgufReader(theirs);
  try {
    assert.equal(a.tensors.length, b.tensors.length);
    for (const t of b.tensors) {
      const u = a.tensor(t.name)!;
      assert.equal(typeName(u.type), typeName(t.type), t.name);
      assert.ok(Buffer.from(a.readTensorBytes(u)).equals(Buffer.from(b.readTensorBytes(t))), `${t.name}: bytes differ from llama-quantize's`);
    }
  } finally { a.close(); b.close(); }
}

test("quantize writes the same tensors as llama-quantize (A -> Q8_0, Q4_0; B -> Q4_K_M)", { skip: !haveReference() }, async () => {
  for (const [src, type, ref] of [["A-F32", "Q8_0", "A-Q8_0"], ["A-F32", "Q4_0", "A-Q4_0"], ["B-F32", "Q4_K_M", "B-Q4_K_M"]] as const) {
    if (!modelPath(src)) continue;
    const out = join(dir, `${ref}.gguf`);
    await quantizeFile(modelPath(src)!, out, type, { threads: 2 });
    sameTensors(out, modelPath(ref)!);
    // and so the same logits
    const run = manifest().runs.find((r) => r.model === ref && r.sequence === "medium")!;
    const m = loadModel(out, { threads: 2 });
    const l = m.model.newContext({ nCtx: 128, kvType: "f32" }).eval(manifest().sequences.medium!.token_ids, { logits: run.logits.positions });
    const want = readF32(run.logits.file);
    let d = 0;
    for (let i = 0; i < want.length; i++) d = Math.max(d, Math.abs(l[i]! - want[i]!));
    assert.ok(d < 1e-3, `${ref}: max |Δ| ${d}`);
    m.model.close();
  }
});

test("every supported type is written with llama-quantize's per-tensor types, reads back and runs", { skip: !haveReference() }, async () => {
  const src = modelPath("B-F32") ?? modelPath("A-F32")!;
  const preset = modelPath("B-F32") ? "B" : "A";
  const recipes = JSON.parse(readFileSync(refPath("quant", "quantize_recipes.json"), "utf8")).files as Record<string, { tensor_types: Record<string, string> }>;
  const toks = manifest().sequences.short!.token_ids;
  for (const type of ["F16", "BF16", "Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0", "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_NL", "IQ4_XS"]) {
    const out = join(dir, `${preset}-${type}.gguf`);
    await quantizeFile(src, out, type, { threads: 2 });
    const want = recipes[`${preset}-${type}`];
    if (want) {
      const r = new GgufReader(out);
      for (const t of r.tensors) assert.equal(typeName(t.type), want.tensor_types[t.name], `${type}: ${t.name}`);
      r.close();
    }
    const m = loadModel(out, { threads: 2 });
    const l = m.model.newContext({ nCtx: 64 }).eval(toks);
    assert.ok(l.every(Number.isFinite), `${type}: logits finite`);
    m.model.close();
  }
});

test("unsupported targets and bad inputs fail cleanly and leave no file", { skip: !haveReference() }, async () => {
  const out = join(dir, "bad.gguf");
  await assert.rejects(quantizeFile(refPath("models", "A-F32.gguf"), out, "Q9_9"), /unknown quantization type "Q9_9"/);
  await assert.rejects(quantizeFile(refPath("models", "B-Q4_K_M.gguf"), out, "IQ2_XXS"), /to IQ2_XXS needs an importance matrix/);
  assert.ok(!existsSync(out));
  assert.ok(!readdirSync(dir).some((f) => f.includes(".tmp")));
});

test("quantize --imatrix: each matrix (each expert) quantized with its own importance; errors for missing or foreign imatrices", async () => {
  const { writeSyntheticModel } = await import("../model/synthetic.js");
  const { loadSpmModel } = await import("../tokenizer/from-spm-model.js");
  const { TOKENIZER_V1 } = await import("../model/default-model.js");
  const { collectImatrix } = await import("../eval/imatrix.js");
  const { importanceOf, writeImatrix, readImatrix } = await import("../io/imatrix.js");
  const { dequantize, quantizeWeights } = await import("./index.js");
  const { GgmlType } = await import("./format.js");
  const src = join(dir, "imat-f32.gguf");
  // a 1024-token vocabulary keeps token_embd and output small
  const v = loadSpmModel(TOKENIZER_V1), V = 1024;
  const vocab = { ...v, tokens: v.tokens.slice(0, V), scores: v.scores.slice(0, V), types: v.types.slice(0, V) };
  writeSyntheticModel(src, { name: "imat", nEmbd: 256, nLayer: 1, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2, nFf: 256, nCtx: 256, seed: 9, type: GgmlType.F32, std: 0.05 }, vocab);
  const m = loadModel(src, { threads: 2 });
  const toks = Array.from({ length: 64 }, (_, i) => 200 + ((i * 104729) % 800));
  const im = collectImatrix(m.model, toks, { nCtx: 32, kvType: "f32" }).imatrix;
  m.model.close();
  const imPath = join(dir, "imat.dat");
  writeImatrix(imPath, im);
  const imRead = readImatrix(imPath);
  const out = join(dir, "imat-q4km.gguf"), plain = join(dir, "plain-q4km.gguf");
  const gs = new GgufReader(src);
  const map = importanceMap(imRead, gs.tensors, imPath);
  gs.close();
  // one importance per collected weight (the router's too, though it stays F32)
  assert.equal(map.size, im.entries.size);
  const rep = await quantizeFile(src, out, "Q4_K_M", { threads: 2, imatrix: map, imatrixInfo: { file: imPath, entries: imRead.entries.size, chunks: imRead.chunkCount } });
  await quantizeFile(src, plain, "Q4_K_M", { threads: 2 });
  const g = new GgufReader(out), p = new GgufReader(plain), s = new GgufReader(src);
  try {
    assert.equal(g.metadata.get("quantize.imatrix.entries_count")?.value, im.entries.size);
    assert.equal(g.metadata.get("quantize.imatrix.chunks_count")?.value, 2);
    for (const name of ["blk.0.attn_q.weight", "blk.0.ffn_down_exps.weight", "blk.0.ffn_up_exps.weight", "output.weight"]) {
      const t = g.tensor(name)!, ts = s.tensor(name)!;
      assert.ok(rep.tensors.find((x) => x.name === name)!.imatrix, `${name} used the imatrix`);
      const x = new Float32Array(ts.nElements);
      dequantize(ts.type, s.readTensorBytes(ts), 0, x, 0, ts.nElements);
      const imp = importanceOf(imRead.entries.get(name)!);
      assert.deepEqual(map.get(name), imp);
      // matrix by matrix (expert by expert), each with its own importance row
      const n = ts.dims[0]!, rowsPer = ts.dims[1]!, nMat = imp.length / n;
      const want = Buffer.concat(Array.from({ length: nMat }, (_, e) =>
        quantizeWeights(t.type, x.subarray(e * rowsPer * n, (e + 1) * rowsPer * n), rowsPer, n, imp.slice(e * n, (e + 1) * n))));
      assert.ok(Buffer.from(g.readTensorBytes(t)).equals(Buffer.from(want)), `${name}: per-matrix importance`);
      assert.ok(!Buffer.from(g.readTensorBytes(t)).equals(Buffer.from(p.readTensorBytes(p.tensor(name)!))), `${name}: differs from the plain quantization`);
      // and the importance-weighted error is smaller with it than without
      const err = (file: GgufReader) => {
        const tt = file.tensor(name)!, y = new Float32Array(tt.nElements);
        dequantize(tt.type, file.readTensorBytes(tt), 0, y, 0, tt.nElements);
        const n = ts.dims[0]!, rowsPer = ts.dims[1]!;
        let e = 0;
        for (let i = 0; i < y.length; i++) e += imp[Math.floor(i / (n * rowsPer)) * n + (i % n)]! * (y[i]! - x[i]!) ** 2;
        return e;
      };
      assert.ok(err(g) < err(p), `${name}: weighted error ${err(g)} >= ${err(p)} without the imatrix`);
    }
  } finally { g.close(); p.close(); s.close(); }
  // the model still runs
  const q = loadModel(out, { threads: 2 });
  assert.ok(q.model.newContext({ nCtx: 16 }).eval(toks.slice(0, 8)).every(Number.isFinite));
  q.model.close();
  // errors: an imatrix of another shape; IQ2_XS without one
  const bad = { ...imRead, entries: new Map(imRead.entries) };
  bad.entries.set("blk.0.attn_q.weight", { sums: new Float64Array(64), counts: [1], nMat: 1 });
  assert.throws(() => importanceMap(bad, [{ name: "blk.0.attn_q.weight", dims: [256, 256] }], "x.dat"), /x\.dat: entry "blk\.0\.attn_q\.weight" has 64 values; the tensor \[256, 256\] needs 256/);
  await assert.rejects(quantizeFile(src, join(dir, "bad.gguf"), "IQ2_XS"), /needs an importance matrix/);
  // the older per-expert layout takes expert E's slice of the stacked entry
  const legacy = importanceMap(imRead, [{ name: "blk.0.ffn_down.2.weight", dims: [256, 256] }]);
  assert.deepEqual(legacy.get("blk.0.ffn_down.2.weight"), importanceOf(imRead.entries.get("blk.0.ffn_down_exps.weight")!).slice(512, 768));
  assert.ok(!existsSync(join(dir, "bad.gguf")));
});
