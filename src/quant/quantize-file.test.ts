import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufReader } from "../io/gguf/reader.js";
import { loadModel } from "../model/load.js";
import { quantizeFile } from "./quantize-file.js";
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
