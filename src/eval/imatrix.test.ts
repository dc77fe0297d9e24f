import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufReader } from "../io/gguf/reader.js";
import { importanceOf } from "../io/imatrix.js";
import { createBackend } from "../model/load.js";
import { Mixtral } from "../model/mixtral.js";
import { weightRow } from "../model/weights.js";
import { writeSyntheticModel } from "../model/synthetic.js";
import { TOKENIZER_V1 } from "../model/default-model.js";
import { GgmlType } from "../quant/format.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { IMATRIX_SUMS_RTOL } from "../test-util/tolerances.js";
import { collectImatrix, ImatrixCollector } from "./imatrix.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-imatrix-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const SPEC = { name: "imatrix-test", nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nExpert: 4, nExpertUsed: 2, nFf: 96, nCtx: 256, seed: 77, type: GgmlType.F32, std: 0.1 };
const path = join(dir, "tiny.gguf");
writeSyntheticModel(path, SPEC, loadSpmModel(TOKENIZER_V1));
const r = new GgufReader(path);
const model = Mixtral.fromGguf(r, createBackend("js"));
r.close();
after(() => model.close());

const N_CTX = 16, N_CHUNKS = 2;
const tokens = Array.from({ length: N_CTX * N_CHUNKS + 5 }, (_, i) => 100 + ((i * 7919) % 31000));

/** Σx² per column over rows of x [nRows, n] (only `rows` when given), in float64. */
function sumSq(acc: Float64Array, off: number, x: Float32Array | Float64Array, n: number, rows: number[]): void {
  for (const t of rows) for (let j = 0; j < n; j++) acc[off + j]! += x[t * n + j]! ** 2;
}

function closeRel(got: Float64Array, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length, what);
  const bad: string[] = [];
  for (let i = 0; i < want.length && bad.length < 4; i++) {
    const d = Math.abs(got[i]! - want[i]!);
    if (d > IMATRIX_SUMS_RTOL * Math.max(1e-6, Math.abs(want[i]!))) bad.push(`[${i}] got ${got[i]} want ${want[i]} diff ${d}`);
  }
  assert.equal(bad.length, 0, `${what}: ${bad.join(", ")}`);
}

test("imatrix sums equal a direct computation of Σx² per column, per expert over its tokens, with the token counts", () => {
  const c = model.config, E = c.nEmbd, F = c.nFf, K = c.nExpertUsed, NE = c.nExpert, qDim = c.nHead * c.headDim;
  const collector = new ImatrixCollector();
  const ctx = model.newContext({ nCtx: N_CTX, kvType: "f32", nBatch: 8 }); // two forward steps per chunk
  ctx.observer = collector.observe;
  const want = new Map<string, Float64Array>();
  const wantCounts = new Map<string, number[]>();
  const acc = (name: string, size: number) => { let a = want.get(name); if (!a) { a = new Float64Array(size); want.set(name, a); } return a; };
  const cnt = (name: string, nMat: number) => { let a = wantCounts.get(name); if (!a) { a = new Array<number>(nMat).fill(0); wantCounts.set(name, a); } return a; };
  // expert weights as float64 for the independent down-projection input silu(gate·x) * (up·x)
  const mat = (w: typeof model.weights.layers[0]["ffnGate"], e: number) => {
    const out = new Float32Array(w.nOut * w.nIn);
    for (let row = 0; row < w.nOut; row++) weightRow(w, e, row, out, row * w.nIn);
    return out;
  };
  for (let ch = 0; ch < N_CHUNKS; ch++) {
    const win = tokens.slice(ch * N_CTX, (ch + 1) * N_CTX);
    win[0] = 1;
    ctx.truncate(0);
    const traced = new Map<string, Float32Array | Int32Array>();
    const rowsOf = new Map<string, number>();
    ctx.eval(win, {
      logits: "all",
      trace: (name, data, nTok) => {
        // nBatch 8: the trace comes per forward step; keep each step's rows in order
        const prev = traced.get(name);
        const merged = prev ? (prev instanceof Int32Array ? Int32Array.from([...prev, ...data]) : Float32Array.from([...prev, ...data])) : data.slice();
        traced.set(name, merged);
        rowsOf.set(name, (rowsOf.get(name) ?? 0) + nTok);
      },
    });
    const all = Array.from({ length: N_CTX }, (_, i) => i);
    for (let l = 0; l < c.nLayer; l++) {
      const xn = traced.get(`attn_norm-${l}`) as Float32Array, fn = traced.get(`ffn_norm-${l}`) as Float32Array;
      for (const w of ["attn_q", "attn_k", "attn_v"]) { sumSq(acc(`blk.${l}.${w}.weight`, E), 0, xn, E, all); cnt(`blk.${l}.${w}.weight`, 1)[0]! += N_CTX; }
      sumSq(acc(`blk.${l}.attn_output.weight`, qDim), 0, traced.get(`kqv_merged_cont-${l}`) as Float32Array, qDim, all);
      cnt(`blk.${l}.attn_output.weight`, 1)[0]! += N_CTX;
      sumSq(acc(`blk.${l}.ffn_gate_inp.weight`, E), 0, fn, E, all);
      cnt(`blk.${l}.ffn_gate_inp.weight`, 1)[0]! += N_CTX;
      const topk = traced.get(`ffn_moe_topk-${l}`) as Int32Array;
      const lw = model.weights.layers[l]!;
      for (let e = 0; e < NE; e++) {
        const routed = all.filter((t) => [...topk.subarray(t * K, t * K + K)].includes(e));
        for (const part of ["gate", "up"]) {
          sumSq(acc(`blk.${l}.ffn_${part}_exps.weight`, E * NE), e * E, fn, E, routed);
          cnt(`blk.${l}.ffn_${part}_exps.weight`, NE)[e]! += routed.length;
        }
        const G = mat(lw.ffnGate, e), U = mat(lw.ffnUp, e);
        const h = new Float64Array(N_CTX * F);
        for (const t of routed) {
          for (let f = 0; f < F; f++) {
            let g = 0, u = 0;
            for (let j = 0; j < E; j++) { g += G[f * E + j]! * fn[t * E + j]!; u += U[f * E + j]! * fn[t * E + j]!; }
            h[t * F + f] = (g / (1 + Math.exp(-g))) * u;
          }
        }
        sumSq(acc(`blk.${l}.ffn_down_exps.weight`, F * NE), e * F, h, F, routed);
        cnt(`blk.${l}.ffn_down_exps.weight`, NE)[e]! += routed.length;
      }
    }
    sumSq(acc("output.weight", E), 0, traced.get("result_norm") as Float32Array, E, all);
    cnt("output.weight", 1)[0]! += N_CTX;
  }
  assert.deepEqual([...collector.entries.keys()].sort(), [...want.keys()].sort());
  for (const [name, w] of want) {
    const e = collector.entries.get(name)!;
    closeRel(e.sums, w, name);
    assert.deepEqual(e.counts, wantCounts.get(name), `${name} counts`);
  }
  // every token goes to K experts: the per-expert counts of a layer add up to K tokens per token
  const gate0 = collector.entries.get("blk.0.ffn_gate_exps.weight")!;
  assert.equal(gate0.counts.reduce((a, b) => a + b, 0), K * N_CTX * N_CHUNKS);
  assert.equal(gate0.nMat, NE);

  // collectImatrix runs the same chunks (BOS first, empty cache each) and gets the same sums
  const res = collectImatrix(model, tokens, { nCtx: N_CTX, nChunks: N_CHUNKS, kvType: "f32", nBatch: 8, dataset: "calib.txt" });
  assert.equal(res.nChunks, N_CHUNKS);
  assert.equal(res.imatrix.chunkCount, N_CHUNKS);
  assert.equal(res.imatrix.chunkSize, N_CTX);
  assert.deepEqual(res.imatrix.datasets, ["calib.txt"]);
  for (const [name, e] of collector.entries) {
    const g = res.imatrix.entries.get(name)!;
    assert.deepEqual([...g.sums], [...e.sums], name);
    assert.deepEqual(g.counts, e.counts, name);
  }
  assert.ok(Number.isFinite(res.ppl) && res.ppl > 1);
  // the importance is the mean square: Σx² / count, per expert for the stacks
  const imp = importanceOf(gate0);
  assert.equal(imp.length, E * NE);
  for (let e = 0; e < NE; e++) {
    for (let j = 0; j < E; j++) assert.equal(imp[e * E + j], Math.fround(gate0.sums[e * E + j]! / gate0.counts[e]!));
  }
});

test("imatrix refuses a text shorter than one chunk", () => {
  assert.throws(() => collectImatrix(model, tokens.slice(0, 10), { nCtx: 16 }), /10 tokens, fewer than one chunk of 16/);
});
