import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadModel } from "../model/load.js";
import { perplexity } from "./perplexity.js";
import { haveReference, refPath } from "../test-util/paths.js";
import { modelPath } from "../test-util/reference.js";

interface PplRef { model: string; ctx: number; kv_cache_type: "f16" | "f32"; ppl: number; ppl_err: number; running_ppl_per_chunk: number[] }
const data = haveReference() ? JSON.parse(readFileSync(refPath("perplexity", "perplexity.json"), "utf8")) as { text_file: string; token_ids: number[]; results: Record<string, PplRef> } : undefined;

test("tokenizing the perplexity text gives llama.cpp's tokens", { skip: !data }, () => {
  const m = loadModel(refPath("models", "A-F32.gguf"));
  assert.deepEqual(m.tokenizer.encode(readFileSync(refPath(data!.text_file), "utf8")), data!.token_ids);
});

// llama-perplexity evaluates the windows as parallel sequences in batches (n_seq = 2048 / ctx), with
// llamafile's sgemm for the weight products. Evaluating a window alone gives the same floats: a
// sequence's cells start at a multiple of 16 in the unified KV cache, so the other sequences only
// add masked zeros to the same SIMD lanes. With llama.cpp's arithmetic (exact contexts, the
// default of perplexity()) and its log-softmax, every figure llama-perplexity printed (%.4f, the
// error %.5f) comes out the same; the default kernels' last-bit differences move the quantized
// models' perplexity by 1e-4..1e-3 (activations are rounded to 8 bits before each product, and
// MoE routing is discontinuous).
const rel = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

for (const r of data ? Object.values(data.results) : []) {
  test(`perplexity ${r.model} ctx ${r.ctx} kv ${r.kv_cache_type} equals llama-perplexity`, {
    skip: !modelPath(r.model) && `${r.model}.gguf not present`,
  }, () => {
    const m = loadModel(modelPath(r.model)!);
    const res = perplexity(m.model, data!.token_ids, { nCtx: r.ctx, kvType: r.kv_cache_type });
    assert.equal(res.nChunks, r.running_ppl_per_chunk.length);
    assert.equal(res.ppl.toFixed(4), r.ppl.toFixed(4), "PPL");
    assert.equal(res.pplErr.toFixed(5), r.ppl_err.toFixed(5), "error");
    assert.deepEqual(res.runningPpl.map((p) => p.toFixed(4)), r.running_ppl_per_chunk.map((p) => p.toFixed(4)), "running PPL per window");
    m.model.close();
  });
}

test("default kernels (exact: false) stay within 2e-3 of llama-perplexity", { skip: !data || !modelPath("A-Q4_0") }, () => {
  const r = data!.results["A-Q4_0|c64|kv_f32"]!;
  const m = loadModel(modelPath("A-Q4_0")!);
  const res = perplexity(m.model, data!.token_ids, { nCtx: r.ctx, kvType: r.kv_cache_type, exact: false });
  assert.ok(rel(res.ppl, r.ppl) < 2e-3, `PPL ${res.ppl} vs llama.cpp ${r.ppl}`);
  m.model.close();
});
