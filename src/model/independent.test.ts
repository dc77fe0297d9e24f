/**
 * The forward pass against an independent float64 implementation written from the Mixtral
 * definition, on random models the reference data never covered: dense and MoE, GQA ratios,
 * the legacy per-expert layout, longer sequences.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { GgufReader } from "../io/gguf/reader.js";
import { GgmlType } from "../quant/format.js";
import { dequantize } from "../quant/index.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { TOKENIZER_V1 } from "./default-model.js";
import { Mixtral } from "./mixtral.js";
import { writeSyntheticModel, type SyntheticSpec } from "./synthetic.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-indep-"));
const vocab = loadSpmModel(TOKENIZER_V1);

function naiveForward(path: string, tokens: number[]): Float64Array[] {
  const r = new GgufReader(path);
  const md = (k: string) => Number(r.metadata.get(`llama.${k}`)?.value ?? NaN);
  const E = md("embedding_length"), L = md("block_count"), H = md("attention.head_count"), HK = md("attention.head_count_kv");
  const F = md("feed_forward_length"), NE = md("expert_count") || 0, K = md("expert_used_count") || 0;
  const base = md("rope.freq_base"), eps = md("attention.layer_norm_rms_epsilon");
  const hd = E / H;
  const T = (name: string): Float64Array => {
    const t = r.tensor(name)!;
    const f = new Float32Array(t.nElements);
    dequantize(t.type, r.readTensorBytes(t), 0, f, 0, t.nElements);
    return Float64Array.from(f);
  };
  const mv = (W: Float64Array, x: Float64Array, nIn: number, nOut: number, off = 0) => {
    const y = new Float64Array(nOut);
    for (let o = 0; o < nOut; o++) { let s = 0; for (let i = 0; i < nIn; i++) s += W[off + o * nIn + i]! * x[i]!; y[o] = s; }
    return y;
  };
  const norm = (x: Float64Array, w: Float64Array) => {
    let s = 0; for (const v of x) s += v * v;
    const sc = 1 / Math.sqrt(s / x.length + eps);
    return x.map((v, i) => v * sc * w[i]!);
  };
  const rope = (x: Float64Array, nh: number, pos: number) => {
    for (let h = 0; h < nh; h++) for (let i = 0; i < hd / 2; i++) {
      const th = pos * Math.pow(base, (-2 * i) / hd);
      const a = x[h * hd + 2 * i]!, b = x[h * hd + 2 * i + 1]!;
      x[h * hd + 2 * i] = a * Math.cos(th) - b * Math.sin(th);
      x[h * hd + 2 * i + 1] = a * Math.sin(th) + b * Math.cos(th);
    }
  };
  const emb = T("token_embd.weight"), out = T("output.weight"), outNorm = T("output_norm.weight");
  const Ks: Float64Array[][] = Array.from({ length: L }, () => []), Vs: Float64Array[][] = Array.from({ length: L }, () => []);
  const layers = Array.from({ length: L }, (_, l) => {
    const p = `blk.${l}.`;
    const stack = (b: string) => r.tensor(`${p}${b}_exps.weight`) ? T(`${p}${b}_exps.weight`)
      : (() => { const parts = Array.from({ length: NE }, (_, e) => T(`${p}${b}.${e}.weight`)); const a = new Float64Array(parts[0]!.length * NE); parts.forEach((x, e) => a.set(x, e * x.length)); return a; })();
    return {
      an: T(p + "attn_norm.weight"), q: T(p + "attn_q.weight"), k: T(p + "attn_k.weight"), v: T(p + "attn_v.weight"), o: T(p + "attn_output.weight"),
      fn: T(p + "ffn_norm.weight"),
      ...(NE ? { gi: T(p + "ffn_gate_inp.weight"), g: stack("ffn_gate"), u: stack("ffn_up"), d: stack("ffn_down") }
        : { gi: undefined, g: T(p + "ffn_gate.weight"), u: T(p + "ffn_up.weight"), d: T(p + "ffn_down.weight") }),
    };
  });
  r.close();
  const silu = (x: number) => x / (1 + Math.exp(-x));
  const ffn = (lw: (typeof layers)[0], x: Float64Array, e: number) => {
    const g = mv(lw.g, x, E, F, e * E * F), u = mv(lw.u, x, E, F, e * E * F);
    return mv(lw.d, g.map((v, i) => silu(v) * u[i]!), F, E, e * F * E);
  };
  const res: Float64Array[] = [];
  tokens.forEach((tok, pos) => {
    let x = Float64Array.from(emb.subarray(tok * E, (tok + 1) * E));
    layers.forEach((lw, l) => {
      const xn = norm(x, lw.an);
      const q = mv(lw.q, xn, E, H * hd), k = mv(lw.k, xn, E, HK * hd), v = mv(lw.v, xn, E, HK * hd);
      rope(q, H, pos); rope(k, HK, pos);
      Ks[l]!.push(k); Vs[l]!.push(v);
      const att = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / HK));
        const sc = Ks[l]!.map((kk) => { let s = 0; for (let d = 0; d < hd; d++) s += q[h * hd + d]! * kk[g * hd + d]!; return s / Math.sqrt(hd); });
        const mx = Math.max(...sc); const ex = sc.map((s) => Math.exp(s - mx)); const z = ex.reduce((a, b) => a + b, 0);
        ex.forEach((p, j) => { for (let d = 0; d < hd; d++) att[h * hd + d] += (p / z) * Vs[l]![j]![g * hd + d]!; });
      }
      x = x.map((vv, i) => vv + mv(lw.o, att, H * hd, E)[i]!);
      const hn = norm(x, lw.fn);
      let y: Float64Array;
      if (NE) {
        const lg = mv(lw.gi!, hn, E, NE); const mx = Math.max(...lg); const pr = lg.map((v2) => Math.exp(v2 - mx)); const z = pr.reduce((a, b) => a + b, 0);
        const idx = [...pr.keys()].sort((a, b) => pr[b]! - pr[a]! || a - b).slice(0, K);
        const ws = idx.map((e) => pr[e]! / z); const wz = ws.reduce((a, b) => a + b, 0);
        y = new Float64Array(E);
        idx.forEach((e, s) => { const o = ffn(lw, hn, e); for (let i = 0; i < E; i++) y[i] += (ws[s]! / wz) * o[i]!; });
      } else y = ffn(lw, hn, 0);
      x = x.map((vv, i) => vv + y[i]!);
    });
    res.push(mv(out, norm(x, outNorm), E, vocab.tokens.length));
  });
  return res;
}

const base: SyntheticSpec = { name: "indep", nEmbd: 48, nLayer: 2, nHead: 6, nHeadKv: 2, nExpert: 4, nExpertUsed: 2, nFf: 40, nCtx: 256, seed: 99, type: GgmlType.F32, std: 0.15 };
const cases: [string, Partial<SyntheticSpec>][] = [
  ["moe-gqa3", {}],
  ["moe-top3-of-5-legacy", { nExpert: 5, nExpertUsed: 3, legacyExperts: true, seed: 5 }],
  ["dense-mha", { dense: true, nHeadKv: 6, seed: 7 }],
];

for (const [name, over] of cases) {
  test(`forward pass equals an independent float64 implementation: ${name}`, () => {
    const path = join(dir, `${name}.gguf`);
    writeSyntheticModel(path, { ...base, ...over }, vocab);
    const r = new GgufReader(path);
    const m = Mixtral.fromGguf(r);
    r.close();
    const tokens = [1, 415, 2936, 9060, 285, 1142, 28705, 29383, 29530, 754, 13, 13, 2, 851, 349, 264, 1369, 302, 272, 1480];
    const ours = m.newContext({ nCtx: 64, kvType: "f32", nBatch: 8 }).eval(tokens, { logits: "all" });
    const ref = naiveForward(path, tokens);
    const V = vocab.tokens.length;
    let d = 0, scale = 0;
    ref.forEach((row, p) => { for (let j = 0; j < V; j++) { d = Math.max(d, Math.abs(row[j]! - ours[p * V + j]!)); scale = Math.max(scale, Math.abs(row[j]!)); } });
    assert.ok(scale > 1, `logits should not be trivial (max ${scale})`);
    assert.ok(d < 1e-3 * scale, `max |Δ| ${d} (logit scale ${scale})`);
  });
}
