import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufReader } from "../io/gguf/reader.js";
import { writeGguf, type GgufTensorSource } from "../io/gguf/writer.js";
import { ContextFullError, FormatError, ModelError, UnsupportedError, ArgumentError } from "../errors.js";
import { GgmlType } from "../quant/format.js";
import { generate } from "../generate.js";
import { loadModel } from "./load.js";
import { haveReference } from "../test-util/paths.js";
import { manifest, modelPath, readF32 } from "../test-util/reference.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-load-"));
const A = haveReference() ? modelPath("A-F32") : undefined;

/** Copy a GGUF, letting `edit` drop or change tensors. */
function rewrite(src: string, dst: string, edit: (t: GgufTensorSource) => GgufTensorSource | null): void {
  const r = new GgufReader(src);
  const tensors: GgufTensorSource[] = [];
  for (const t of r.tensors) {
    const e = edit({ name: t.name, dims: t.dims, type: t.type, data: r.readTensorBytes(t) });
    if (e) tensors.push(e);
  }
  writeGguf(dst, { metadata: r.metadata, tensors });
  r.close();
}

test("a missing tensor is named", { skip: !A }, () => {
  const p = join(dir, "missing.gguf");
  rewrite(A!, p, (t) => (t.name === "blk.1.attn_q.weight" ? null : t));
  assert.throws(() => loadModel(p), (e: unknown) => e instanceof ModelError && /tensor "blk\.1\.attn_q\.weight" is missing/.test(e.message));
});

test("a tensor with the wrong shape is named with expected and found shapes", { skip: !A }, () => {
  const p = join(dir, "shape.gguf");
  rewrite(A!, p, (t) => (t.name === "blk.0.attn_k.weight" ? { ...t, dims: [32, 64] } : t));
  assert.throws(() => loadModel(p), (e: unknown) => e instanceof ModelError && /"blk\.0\.attn_k\.weight" has shape \[32, 64\], expected \[64, 32\]/.test(e.message));
});

test("a tensor type the engine cannot compute with is an UnsupportedError", { skip: !A }, () => {
  const p = join(dir, "type.gguf");
  // I16 is a valid GGUF tensor type with the right shape here, but no weight type the engine computes with
  rewrite(A!, p, (t) => (t.name === "blk.0.ffn_gate_inp.weight" ? { ...t, type: GgmlType.I16, data: new Uint8Array(64 * 4 * 2) } : t));
  assert.throws(() => loadModel(p), (e: unknown) => e instanceof UnsupportedError && /"blk\.0\.ffn_gate_inp\.weight" has type I16/.test(e.message));
});

test("a truncated model file is a FormatError naming the file", { skip: !A }, () => {
  const p = join(dir, "trunc.gguf");
  writeFileSync(p, readFileSync(A!).subarray(0, 5_000_000));
  assert.throws(() => loadModel(p), (e: unknown) => e instanceof FormatError && /trunc\.gguf/.test(e.message) && /truncated/.test(e.message));
});

test("a prompt longer than the context is a ContextFullError; so is evaluating past the end", { skip: !A }, async () => {
  const m = loadModel(A!);
  const ctx = m.model.newContext({ nCtx: 8 });
  const prompt = m.tokenizer.encode("one two three four five six seven eight nine ten");
  await assert.rejects(generate(ctx, m.tokenizer, prompt, { maxTokens: 2 }), (e: unknown) => e instanceof ContextFullError && /longer than the context size 8/.test(e.message));
  ctx.eval([1, 2, 3, 4, 5, 6]);
  assert.throws(() => ctx.eval([7, 8, 9]), ContextFullError);
  assert.throws(() => ctx.eval([40000]), ArgumentError);
});

test("generation stops at the context end with finish reason 'length'", { skip: !A }, async () => {
  const m = loadModel(A!);
  const ctx = m.model.newContext({ nCtx: 12 });
  const r = await generate(ctx, m.tokenizer, m.tokenizer.encode("Hello"), { maxTokens: -1, sampling: { temperature: 0 } });
  assert.equal(r.finishReason, "length");
  assert.equal(r.promptTokens + r.tokens.length, 12);
});

test("the old per-expert tensor layout is stacked and gives the same logits", { skip: !(A && modelPath("A-F32-legacy")) }, () => {
  const run = manifest().runs.find((x) => x.model === "A-F32" && x.sequence === "medium")!;
  const m = loadModel(modelPath("A-F32-legacy")!);
  const logits = m.model.newContext({ nCtx: 128, kvType: "f32" }).eval(manifest().sequences.medium!.token_ids, { logits: run.logits.positions });
  const ref = readF32(run.logits.file);
  let d = 0;
  for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(logits[i]! - ref[i]!));
  assert.ok(d < 1e-3, `max |Δ| ${d}`);
});

test("batched prompt processing equals token-by-token evaluation; KV prefix reuse equals a fresh run", { skip: !A }, () => {
  const m = loadModel(A!);
  const toks = manifest().sequences.medium!.token_ids.slice(0, 40);
  const batched = m.model.newContext({ nCtx: 64, kvType: "f32", nBatch: 7 }).eval(toks, { logits: "all" });
  const one = m.model.newContext({ nCtx: 64, kvType: "f32" });
  const V = m.model.config.nVocab;
  for (let i = 0; i < toks.length; i++) {
    const l = one.eval([toks[i]!]);
    for (let j = 0; j < V; j += 97) assert.ok(Math.abs(l[j]! - batched[i * V + j]!) < 1e-4);
  }
  one.truncate(20);
  const again = one.eval(toks.slice(20), { logits: "last" });
  for (let j = 0; j < V; j += 97) assert.ok(Math.abs(again[j]! - batched[(toks.length - 1) * V + j]!) < 1e-4);
});

test("an f16 KV cache stays close to f32 (llama.cpp's default cache type)", { skip: !A }, () => {
  const m = loadModel(A!);
  const toks = manifest().sequences.short!.token_ids;
  const a = m.model.newContext({ kvType: "f32" }).eval(toks);
  const b = m.model.newContext({ kvType: "f16" }).eval(toks);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  assert.ok(d > 0 && d < 0.05, `f16 vs f32 max |Δ| ${d}`);
});
