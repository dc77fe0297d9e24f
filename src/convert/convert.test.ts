import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ArgumentError, FormatError, ModelError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import { writeGguf } from "../io/gguf/writer.js";
import { GgufType } from "../io/gguf/types.js";
import { SafetensorsCheckpoint } from "../io/safetensors/sharded.js";
import { ggufToHf, hfToGguf, modelTensors, parseGgufName, parseHfName, TENSOR_NAMES, hfName, ggufName, hfShape as hfShapeOf } from "../io/tensor-names.js";
import { writeSafetensorsSharded } from "../io/safetensors/writer.js";
import { configFromHf } from "../model/config.js";
import { loadModel } from "../model/load.js";
import { writeSyntheticModel } from "../model/synthetic.js";
import { GgmlType } from "../quant/format.js";
import { bf16ToF32, f16ToF32 } from "../quant/f16.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { loadHfTokenizer } from "../tokenizer/from-hf.js";
import { SpmTokenizer } from "../tokenizer/spm.js";
import { REPO_ROOT, haveReference, refPath } from "../test-util/paths.js";
import { manifest, modelPath, readF32 } from "../test-util/reference.js";
import { convertHfToGguf, exportGgufToHf, openGgufModel, openHfModel } from "./index.js";
import { writeHfFixture } from "./fixture.js";
import { ggufRowOf, permuteRopeRows } from "./permute.js";
import { writeHfFolder } from "./write-hf.js";
import { readSpmModel } from "./tokenizer-files.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-convert-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = haveReference() ? modelPath("A-F32") : undefined;
const TOK = haveReference() ? refPath("tokenizer", "tokenizer.model.v1") : undefined;

/** Logits of a model on a reference sequence at the manifest's positions (F32 KV cache). */
function logits(path: string, seq: string): Float32Array {
  const run = manifest().runs.find((x) => x.model === "A-F32" && x.sequence === seq)!;
  const m = loadModel(path);
  try {
    return m.model.newContext({ nCtx: 256, kvType: "f32" }).eval(manifest().sequences[seq]!.token_ids, { logits: run.logits.positions });
  } finally {
    m.model.close();
  }
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

function noLeftovers(d: string): void {
  assert.deepEqual(readdirSync(d).filter((f) => f.endsWith(".tmp")), [], `temporary files left in ${d}`);
}

// The fixture: A-F32 as a Hugging Face folder (two shards + index, the real tokenizer.model).
const HF = join(dir, "hf-A");
if (A) writeHfFixture(A, HF, { tokenizerModel: TOK! });

test("tensor name table: every rule maps both ways; experts stack; unknown names are undefined", () => {
  for (const r of TENSOR_NAMES) {
    const hf = hfName(r, 3, r.expert ? 5 : undefined);
    const p = parseHfName(hf)!;
    assert.equal(p.rule, r);
    assert.equal(hfToGguf(hf), ggufName(r, r.hf.includes("{L}") ? 3 : undefined));
  }
  assert.equal(hfToGguf("model.layers.7.block_sparse_moe.experts.3.w2.weight"), "blk.7.ffn_down_exps.weight");
  assert.equal(hfToGguf("model.layers.0.self_attn.o_proj.weight"), "blk.0.attn_output.weight");
  assert.equal(hfToGguf("model.layers.0.post_attention_layernorm.weight"), "blk.0.ffn_norm.weight");
  assert.equal(hfToGguf("model.layers.0.block_sparse_moe.gate.weight"), "blk.0.ffn_gate_inp.weight");
  assert.equal(hfToGguf("model.layers.0.mlp.up_proj.weight"), "blk.0.ffn_up.weight");
  assert.deepEqual(ggufToHf("blk.2.ffn_up_exps.weight", 2), ["model.layers.2.block_sparse_moe.experts.0.w3.weight", "model.layers.2.block_sparse_moe.experts.1.w3.weight"]);
  assert.deepEqual(ggufToHf("output.weight", 8), ["lm_head.weight"]);
  assert.deepEqual(ggufToHf("blk.1.ffn_gate.4.weight", 8), ["model.layers.1.block_sparse_moe.experts.4.w1.weight"]);
  assert.equal(parseHfName("model.layers.0.self_attn.q_proj.bias"), undefined);
  assert.equal(parseGgufName("rope_freqs.weight"), undefined);
});

test("RoPE row permutation: HF row i of a head goes to 2i, row d/2 + i to 2i + 1; the inverse undoes it", () => {
  const d = 8, heads = 3, cols = 2;
  const x = Float32Array.from({ length: heads * d * cols }, (_, k) => k);
  const g = permuteRopeRows(x, heads * d, cols, heads, true);
  for (let r = 0; r < heads * d; r++) {
    const h = Math.floor(r / d), i = r % d;
    const to = h * d + (i < d / 2 ? 2 * i : 2 * (i - d / 2) + 1);
    assert.equal(ggufRowOf(r, d), to);
    assert.deepEqual([...g.subarray(to * cols, to * cols + cols)], [...x.subarray(r * cols, r * cols + cols)]);
  }
  assert.deepEqual([...permuteRopeRows(g, heads * d, cols, heads, false)], [...x]);
});

test("the fixture is a Hugging Face folder: config.json, two shards with an index, the reference tokenizer.model", { skip: !A }, () => {
  const files = readdirSync(HF).sort();
  assert.deepEqual(files.filter((f) => f.endsWith(".safetensors")), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
  for (const f of ["config.json", "model.safetensors.index.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"]) assert.ok(files.includes(f), f);
  assert.deepEqual(readFileSync(join(HF, "tokenizer.model")), readFileSync(TOK!));
  const cfg = JSON.parse(readFileSync(join(HF, "config.json"), "utf8"));
  assert.equal(cfg.architectures[0], "MixtralForCausalLM");
  assert.equal(cfg.num_local_experts, 4);
  assert.equal(cfg.rms_norm_eps, 1e-5);
  assert.equal(cfg.rope_theta, 1e6);
  const idx = JSON.parse(readFileSync(join(HF, "model.safetensors.index.json"), "utf8"));
  assert.equal(idx.weight_map["lm_head.weight"], "model-00002-of-00002.safetensors");
  assert.equal(idx.weight_map["model.layers.1.block_sparse_moe.experts.3.w2.weight"], "model-00001-of-00002.safetensors");
  const tc = JSON.parse(readFileSync(join(HF, "tokenizer_config.json"), "utf8"));
  assert.match(tc.chat_template, /\[INST\]/);
  const ck = SafetensorsCheckpoint.open(HF);
  assert.deepEqual(ck.tensor("model.layers.0.block_sparse_moe.experts.2.w2.weight")!.shape, [64, 128]);
  assert.deepEqual(ck.tensor("model.embed_tokens.weight")!.shape, [32000, 64]);
  ck.close();
});

test("HF q_proj/k_proj are in HF's RoPE layout: rotate_half RoPE on them reproduces llama.cpp's Qcur/Kcur", { skip: !A }, () => {
  // independent of the converter: the HF side computes q = W x and rotates dims (i, i + d/2);
  // llama.cpp's values are in interleaved order, dim 2i = HF dim i, dim 2i + 1 = HF dim i + d/2
  const run = manifest().runs.find((x) => x.model === "A-F32" && x.sequence === "short")!;
  const x = readF32(run.hidden["attn_norm-0"]!.file);
  const ck = SafetensorsCheckpoint.open(HF);
  const d = 16, E = 64, theta = 1e6, n = 9;
  for (const [w, heads, name] of [["q_proj", 4, "Qcur_rope-0"], ["k_proj", 2, "Kcur_rope-0"]] as const) {
    const W = ck.readF32(`model.layers.0.self_attn.${w}.weight`);
    const ref = readF32(run.hidden[name]!.file);
    let worst = 0;
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < heads; h++) {
        const v = new Float64Array(d);
        for (let r = 0; r < d; r++) for (let k = 0; k < E; k++) v[r]! += W[(h * d + r) * E + k]! * x[t * E + k]!;
        for (let i = 0; i < d / 2; i++) {
          const ang = t * theta ** (-2 * i / d);
          const a = v[i]! * Math.cos(ang) - v[i + d / 2]! * Math.sin(ang);
          const b = v[i + d / 2]! * Math.cos(ang) + v[i]! * Math.sin(ang);
          worst = Math.max(worst, Math.abs(a - ref[(t * heads + h) * d + 2 * i]!), Math.abs(b - ref[(t * heads + h) * d + 2 * i + 1]!));
        }
      }
    }
    assert.ok(worst < 1e-4, `${w}: max |Δ| ${worst}`);
  }
  ck.close();
});

test("convert(fixture) gives the logits of A-F32.gguf on the reference sequences", { skip: !A }, () => {
  const out = join(dir, "A-from-hf.gguf");
  const r = convertHfToGguf(HF, out, { outType: "f32" });
  assert.equal(r.tensors, 23);
  for (const seq of ["short", "medium", "long"]) {
    const a = logits(A!, seq), b = logits(out, seq);
    assert.ok(maxDiff(a, b) <= 1e-5, `${seq}: max |Δ| ${maxDiff(a, b)}`);
    const run = manifest().runs.find((x) => x.model === "A-F32" && x.sequence === seq)!;
    assert.ok(maxDiff(b, readF32(run.logits.file)) < 1e-4, `${seq}: vs llama.cpp`);
  }
  noLeftovers(dir);
});

test("export -> convert round trip of an F32 GGUF is byte-exact, tensor by tensor, with the same hyperparameters", { skip: !A }, () => {
  const out = join(dir, "A-roundtrip.gguf");
  convertHfToGguf(HF, out, { outType: "f32" });
  const a = new GgufReader(A!), b = new GgufReader(out);
  try {
    assert.deepEqual(b.tensors.map((t) => t.name), a.tensors.map((t) => t.name).sort((x, y) => order(x) - order(y)));
    for (const t of a.tensors) {
      const u = b.tensor(t.name)!;
      assert.deepEqual(u.dims, t.dims, t.name);
      assert.equal(u.type, GgmlType.F32);
      assert.ok(Buffer.from(a.readTensorBytes(t)).equals(Buffer.from(b.readTensorBytes(u))), `${t.name} bytes differ`);
    }
    for (const k of ["llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length", "llama.attention.head_count",
      "llama.attention.head_count_kv", "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.expert_count", "llama.expert_used_count",
      "llama.rope.dimension_count", "llama.vocab_size", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.chat_template", "general.file_type"]) {
      assert.deepEqual(b.metadata.get(k), a.metadata.get(k), k);
    }
    for (const k of ["tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"]) {
      assert.deepEqual(b.metadata.get(k)!.value, a.metadata.get(k)!.value, k);
    }
  } finally {
    a.close();
    b.close();
  }
  function order(n: string): number {
    return modelTensors(openGgufModel(A!).config).findIndex((p) => ggufName(p.rule, p.layer) === n);
  }
});

test("--outtype q8_0 writes the blocks llama.cpp's A-Q8_0.gguf has; f16/bf16 keep norms and the router F32", { skip: !(A && modelPath("A-Q8_0")) }, () => {
  const q = join(dir, "A-q8.gguf");
  convertHfToGguf(HF, q, { outType: "q8_0" });
  const ref = new GgufReader(modelPath("A-Q8_0")!), b = new GgufReader(q);
  for (const t of ref.tensors) {
    const u = b.tensor(t.name)!;
    assert.equal(u.type, t.type, t.name);
    assert.ok(Buffer.from(ref.readTensorBytes(t)).equals(Buffer.from(b.readTensorBytes(u))), `${t.name} blocks differ`);
  }
  ref.close();
  b.close();
  const a = new GgufReader(A!);
  for (const [ot, type, dec] of [["f16", GgmlType.F16, f16ToF32], ["bf16", GgmlType.BF16, bf16ToF32]] as const) {
    const p = join(dir, `A-${ot}.gguf`);
    convertHfToGguf(HF, p, { outType: ot });
    const r = new GgufReader(p);
    for (const t of r.tensors) {
      const keep = /norm|ffn_gate_inp/.test(t.name);
      assert.equal(t.type, keep ? GgmlType.F32 : type, t.name);
    }
    const t = r.tensor("blk.1.ffn_down_exps.weight")!;
    const got = new Uint16Array(r.readTensorBytes(t).slice().buffer);
    const want = new Float32Array(a.readTensorBytes(a.tensor(t.name)!).slice().buffer);
    for (let i = 0; i < want.length; i += 97) assert.ok(Math.abs(dec(got[i]!) - want[i]!) <= Math.abs(want[i]!) * (ot === "f16" ? 2 ** -11 : 2 ** -8) + 2 ** -24, `${ot} ${i}`);
    r.close();
  }
  a.close();
});

test("the exported tokenizer: tokenizer.model equals the vocabulary; tokenizer.json tokenizes like it; a folder with only tokenizer.json converts", { skip: !A }, () => {
  const out = join(dir, "hf-export");
  exportGgufToHf(A!, out, { dtype: "f32" });
  const ref = readSpmModel(TOK!), mine = readSpmModel(join(out, "tokenizer.model"));
  const g0 = new GgufReader(A!);
  const ggufTokens = g0.metadata.get("tokenizer.ggml.tokens")!.value as { items: string[] };
  g0.close();
  assert.deepEqual(ref.tokens, ggufTokens.items, "the reference tokenizer.model and A-F32.gguf have the same pieces (U+FEFF included)");
  assert.deepEqual(mine.tokens, ref.tokens);
  assert.deepEqual([...mine.scores], [...ref.scores]);
  assert.deepEqual([...mine.types], [...ref.types]);
  assert.deepEqual([mine.bosId, mine.eosId, mine.unkId, mine.padId, mine.addSpacePrefix, mine.byteFallback], [1, 2, 0, -1, true, true]);
  const hf = loadHfTokenizer(out);
  assert.match(hf.chatTemplate!, /\[INST\]/);
  const strings = JSON.parse(readFileSync(refPath("tokenizer", "test_strings.json"), "utf8")).strings as { text: string }[];
  const t1 = new SpmTokenizer(ref), t2 = new SpmTokenizer(hf.vocab);
  for (const s of strings) assert.deepEqual(t2.encode(s.text), t1.encode(s.text), s.text);
  // without tokenizer.model the converter takes tokenizer.json
  const only = join(dir, "hf-tokjson");
  cpSync(out, only, { recursive: true });
  rmSync(join(only, "tokenizer.model"));
  const g = join(dir, "A-tokjson.gguf");
  convertHfToGguf(only, g, { outType: "f32" });
  const m = loadModel(g);
  for (const s of strings.slice(0, 12)) assert.deepEqual(m.tokenizer.encode(s.text), t1.encode(s.text), s.text);
  assert.match(m.chatTemplate!, /\[INST\]/);
  m.model.close();
});

test("a dense Llama-style model (synthetic, dense: true) round-trips: export -> convert, same bytes and logits", { skip: !A }, () => {
  const vocab = loadSpmModel(TOK!);
  const g = join(dir, "dense.gguf");
  writeSyntheticModel(g, { name: "dense", nEmbd: 64, nLayer: 2, nHead: 4, nHeadKv: 2, nExpert: 0, nExpertUsed: 0, nFf: 96, nCtx: 128, seed: 7, type: GgmlType.F32, dense: true }, vocab);
  const hf = join(dir, "hf-dense");
  const files = writeHfFixture(g, hf, { tokenizerModel: TOK! });
  assert.ok(files.includes("model.safetensors.index.json"));
  const cfg = JSON.parse(readFileSync(join(hf, "config.json"), "utf8"));
  assert.equal(cfg.architectures[0], "LlamaForCausalLM");
  assert.equal(cfg.num_local_experts, undefined);
  const ck = SafetensorsCheckpoint.open(hf);
  assert.deepEqual(ck.tensor("model.layers.1.mlp.down_proj.weight")!.shape, [64, 96]);
  ck.close();
  const back = join(dir, "dense-back.gguf");
  convertHfToGguf(hf, back, { outType: "f32" });
  const a = new GgufReader(g), b = new GgufReader(back);
  for (const t of a.tensors) assert.ok(Buffer.from(a.readTensorBytes(t)).equals(Buffer.from(b.readTensorBytes(b.tensor(t.name)!))), t.name);
  assert.equal(b.metadata.get("llama.expert_count"), undefined);
  a.close();
  b.close();
  const toks = manifest().sequences.medium!.token_ids;
  const run = (p: string) => { const m = loadModel(p); try { return m.model.newContext({ nCtx: 128, kvType: "f32" }).eval(toks, { logits: "all" }); } finally { m.model.close(); } };
  assert.equal(maxDiff(run(g), run(back)), 0);
});

test("HF folder errors: missing shard, truncated shard, bad header, shapes that do not fit config.json, wrong architecture; no output left", { skip: !A }, () => {
  const variant = (name: string, edit: (d: string) => void): string => {
    const d = join(dir, name);
    cpSync(HF, d, { recursive: true });
    edit(d);
    return d;
  };
  const out = join(dir, "err-out");
  mkdirSync(out);
  const attempt = (d: string, check: (e: unknown) => boolean) => {
    const o = join(out, "x.gguf");
    assert.throws(() => convertHfToGguf(d, o, { outType: "f16" }), check);
    assert.deepEqual(readdirSync(out), [], "nothing may be left in the output folder");
  };

  attempt(variant("e-missing", (d) => rmSync(join(d, "model-00002-of-00002.safetensors"))),
    (e) => e instanceof FormatError && /shard model-00002-of-00002\.safetensors is missing/.test(e.message) && /"lm_head\.weight"/.test(e.message));

  attempt(variant("e-trunc", (d) => truncateSync(join(d, "model-00002-of-00002.safetensors"), 4_000_000)),
    (e) => e instanceof FormatError && /model-00002-of-00002\.safetensors: tensor "lm_head\.weight": data \[0, 8192000\) runs past the end/.test(e.message));

  attempt(variant("e-header", (d) => {
    const p = join(d, "model-00001-of-00002.safetensors");
    const b = readFileSync(p);
    b.write("!", 8);
    writeFileSync(p, b);
  }), (e) => e instanceof FormatError && /model-00001-of-00002\.safetensors: header/.test(e.message));

  attempt(variant("e-shape", (d) => {
    const c = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
    writeFileSync(join(d, "config.json"), JSON.stringify({ ...c, intermediate_size: 256 }));
  }), (e) => e instanceof ModelError && /tensor "model\.layers\.0\.block_sparse_moe\.experts\.0\.w1\.weight" has shape \[128, 64\], expected \[256, 64\]/.test(e.message));

  attempt(variant("e-arch", (d) => {
    const c = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
    writeFileSync(join(d, "config.json"), JSON.stringify({ ...c, architectures: ["Qwen2ForCausalLM"], model_type: "qwen2" }));
  }), (e) => e instanceof ModelError && /architecture Qwen2ForCausalLM .* is not supported; expected MixtralForCausalLM/.test(e.message));

  attempt(variant("e-dense-config", (d) => {
    const c = JSON.parse(readFileSync(join(d, "config.json"), "utf8"));
    delete c.num_local_experts;
    writeFileSync(join(d, "config.json"), JSON.stringify({ ...c, architectures: ["MistralForCausalLM"], model_type: "mistral" }));
  }), (e) => e instanceof ModelError && /is a MoE tensor but config\.json describes a dense model/.test(e.message));

  attempt(variant("e-notok", (d) => { rmSync(join(d, "tokenizer.model")); rmSync(join(d, "tokenizer.json")); }),
    (e) => e instanceof ModelError && /no tokenizer\.model or tokenizer\.json/.test(e.message));
});

test("export errors: a folder that is not empty; a failure midway leaves no folder and no temporary one", { skip: !A }, () => {
  const full = join(dir, "full");
  mkdirSync(full);
  writeFileSync(join(full, "x"), "x");
  assert.throws(() => exportGgufToHf(A!, full, { dtype: "f32" }), (e: unknown) => e instanceof ArgumentError && /is not empty/.test(e.message));
  const parent = join(dir, "midway");
  mkdirSync(parent);
  const src = openGgufModel(A!);
  let n = 0;
  assert.throws(() => writeHfFolder(src, join(parent, "out"), {
    dtype: "f32", maxShardBytes: 1e6,
    transform: () => { if (++n === 30) throw new Error("interrupted"); },
  }), /interrupted/);
  src.close();
  assert.deepEqual(readdirSync(parent), []);
  // an existing empty folder is fine
  const empty = join(dir, "empty");
  mkdirSync(empty);
  exportGgufToHf(A!, empty, { dtype: "bf16" });
  assert.equal(JSON.parse(readFileSync(join(empty, "config.json"), "utf8")).torch_dtype, "bfloat16");
});

test("a GGUF whose architecture is not llama is refused by export", { skip: !A }, () => {
  const r = new GgufReader(A!);
  const md = new Map(r.metadata);
  md.set("general.architecture", { type: GgufType.STRING, value: "phi2" });
  r.close();
  const p = join(dir, "phi.gguf");
  // only the header matters: openGgufModel reads the metadata first
  writeGguf(p, { metadata: md, tensors: [] });
  assert.throws(() => openGgufModel(p), (e: unknown) => e instanceof ModelError && /architecture "phi2" is not supported/.test(e.message));
});

test("openHfModel reports hyperparameters from config.json", { skip: !A }, () => {
  const s = openHfModel(HF);
  try {
    assert.equal(s.config.nExpert, 4);
    assert.equal(s.config.nExpertUsed, 2);
    assert.equal(s.config.ropeTheta, 1e6);
    assert.equal(s.tensors.size, 2 * (6 + 1 + 3 * 4) + 3);
    assert.equal(s.vocab!.tokens.length, 32000);
  } finally {
    s.close();
  }
});

test("convert streams: peak memory grows by well under the model's size", { skip: !A }, () => {
  // a 280 MB Mixtral-shaped folder (16 layers, 8 experts; the largest tensor, the embeddings, is 33 MB)
  const d = join(dir, "hf-big");
  mkdirSync(d);
  const cfg = {
    architectures: ["MixtralForCausalLM"], model_type: "mixtral", hidden_size: 256, intermediate_size: 512, num_hidden_layers: 16,
    num_attention_heads: 8, num_key_value_heads: 4, num_local_experts: 8, num_experts_per_tok: 2, vocab_size: 32000,
    max_position_embeddings: 256, rms_norm_eps: 1e-5, rope_theta: 1e6, tie_word_embeddings: false,
  };
  writeFileSync(join(d, "config.json"), JSON.stringify(cfg));
  copyFileSync(TOK!, join(d, "tokenizer.model"));
  const c = configFromHf(cfg, "config.json");
  const tensors = modelTensors(c).flatMap((p) => (p.rule.expert ? Array.from({ length: c.nExpert }, (_, e) => e) : [undefined]).map((e) => {
    const shape = hfShapeOf(p.rule, c);
    return { name: hfName(p.rule, p.layer, e), dtype: "F32" as const, shape, data: () => new Uint8Array(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.01).buffer) };
  }));
  const total = writeSafetensorsSharded(d, tensors, { maxShardBytes: 100e6 }).totalBytes;
  const script = `const { convertHfToGguf } = await import(${JSON.stringify(join(REPO_ROOT, "dist", "convert", "index.js"))});
const before = process.resourceUsage().maxRSS * 1024;
convertHfToGguf(${JSON.stringify(d)}, ${JSON.stringify(join(dir, "big.gguf"))}, { outType: "f32" });
process.stdout.write(JSON.stringify({ before, after: process.resourceUsage().maxRSS * 1024 }));`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  const { before, after } = JSON.parse(r.stdout) as { before: number; after: number };
  assert.ok(after - before < 0.6 * total, `peak RSS grew by ${((after - before) / 2 ** 20).toFixed(0)} MiB converting ${(total / 2 ** 20).toFixed(0)} MiB of tensors`);
  rmSync(d, { recursive: true });
  rmSync(join(dir, "big.gguf"));
});
