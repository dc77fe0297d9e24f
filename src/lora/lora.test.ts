import { after, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync as readFileSyncBuf, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FormatError, ModelError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import { SafetensorsCheckpoint } from "../io/safetensors/sharded.js";
import { loadModel } from "../model/load.js";
import { haveReference, refPath } from "../test-util/paths.js";
import { manifest, modelPath } from "../test-util/reference.js";
import { writeHfFixture } from "../convert/fixture.js";
import { convertHfToGguf } from "../convert/index.js";
import { loadLoraAdapter } from "./adapter.js";
import { applyLoraToWeights, mergeLora } from "./merge.js";
import { PyDict, TensorRef, unpickle } from "./pickle.js";
import { Pickler, randomArray, torchStateDictPickle, writePeftAdapter, writeTorchCheckpoint, zipStored, type TestTensor } from "./testing.js";
import { TorchCheckpoint } from "./torch-bin.js";
import { ZipFile } from "./zip.js";

const dir = mkdtempSync(join(tmpdir(), "cmx-lora-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const A = haveReference() ? modelPath("A-F32") : undefined;
const HF = join(dir, "hf-A");
if (A) writeHfFixture(A, HF, { tokenizerModel: refPath("tokenizer", "tokenizer.model.v1") });

const P = "base_model.model.";
const E = 64, F = 128, V = 32000, NX = 4, R = 4, ALPHA = 8;

/** LoRA pairs (A [r, in], B [out, r]) for a few modules of model A, plus modules_to_save. */
function adapterTensors(opts: { zeroB?: boolean; adapterName?: boolean } = {}): TestTensor[] {
  const mods: [string, number, number][] = [
    ["model.layers.0.self_attn.q_proj", E, E],
    ["model.layers.1.self_attn.k_proj", E, 32],
    ["model.layers.0.self_attn.v_proj", E, 32],
    ["model.layers.1.self_attn.o_proj", E, E],
    ["model.layers.0.block_sparse_moe.gate", E, NX],
    ["model.layers.1.block_sparse_moe.experts.2.w2", F, E],
    ["model.layers.0.block_sparse_moe.experts.1.w1", E, F],
    ["model.layers.1.block_sparse_moe.experts.3.w3", E, F],
  ];
  const d = opts.adapterName ? ".default" : "";
  const out: TestTensor[] = [];
  mods.forEach(([m, inn, o], i) => {
    out.push({ name: `${P}${m}.lora_A${d}.weight`, shape: [R, inn], data: randomArray(R * inn, 100 + i, 0.5) });
    out.push({ name: `${P}${m}.lora_B${d}.weight`, shape: [o, R], data: opts.zeroB ? new Float32Array(o * R) : randomArray(o * R, 200 + i, 0.5) });
  });
  return out;
}

const CONFIG = {
  r: R, lora_alpha: ALPHA,
  target_modules: ["q_proj", "k_proj", "v_proj", "o_proj", "gate", "w1", "w2", "w3"],
  base_model_name_or_path: "tiny-mixtral-A",
};

function logitsOf(m: ReturnType<typeof loadModel>, seq = "medium"): Float32Array {
  return m.model.newContext({ nCtx: 128, kvType: "f32" }).eval(manifest().sequences[seq]!.token_ids, { logits: "all" });
}

/** Independent reference: W + (alpha/r)·B·A in float64 from the HF fixture's tensor. */
function expected(ck: SafetensorsCheckpoint, target: string, t: TestTensor[], module: string, scale = ALPHA / R): Float64Array {
  const W = ck.readF32(target);
  const a = t.find((x) => x.name === `${P}${module}.lora_A.weight`)!, b = t.find((x) => x.name === `${P}${module}.lora_B.weight`)!;
  const [out, inn] = ck.tensor(target)!.shape as [number, number];
  const res = new Float64Array(out * inn);
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inn; i++) {
      let s = 0;
      for (let k = 0; k < R; k++) s += b.data[o * R + k]! * a.data[k * inn + i]!;
      res[o * inn + i] = W[o * inn + i]! + scale * s;
    }
  }
  return res;
}

function close(got: Float32Array, want: Float64Array, what: string, tol = 1e-6): void {
  assert.equal(got.length, want.length, what);
  let d = 0;
  for (let i = 0; i < got.length; i++) d = Math.max(d, Math.abs(got[i]! - want[i]!));
  assert.ok(d <= tol, `${what}: max |Δ| ${d}`);
}

const f32 = (b: Uint8Array) => new Float32Array(b.slice().buffer);

/** Two GGUFs hold the same tensors with the same bytes (metadata may differ). */
function sameTensors(p: string, q: string): boolean {
  const a = new GgufReader(p), b = new GgufReader(q);
  try {
    return a.tensors.length === b.tensors.length && a.tensors.every((t) => {
      const u = b.tensor(t.name);
      return u !== undefined && u.type === t.type && Buffer.from(a.readTensorBytes(t)).equals(Buffer.from(b.readTensorBytes(u)));
    });
  } finally {
    a.close();
    b.close();
  }
}

// ---- the restricted unpickler, the ZIP reader, PyTorch checkpoints ----

test("the unpickler reads a torch.save state dict and refuses code: foreign globals, calls, INST/OBJ/NEWOBJ, BUILD", () => {
  const pk = torchStateDictPickle([{ name: "w", shape: [2, 3], dtype: "F32", storageKey: "0", storageNumel: 6 }]);
  const v = unpickle(pk, "data.pkl");
  assert.ok(v instanceof PyDict);
  const t = v.map.get("w");
  assert.ok(t instanceof TensorRef);
  assert.deepEqual([t.shape, t.stride, t.offset, t.storage.key, t.storage.dtype], [[2, 3], [3, 1], 0, "0", "F32"]);

  const refuse = (bytes: number[], re: RegExp) => assert.throws(() => unpickle(Uint8Array.from(bytes), "evil.pkl"), (e: unknown) => e instanceof FormatError && re.test(e.message));
  const g = (m: string, n: string) => [...Buffer.from(`c${m}\n${n}\n`, "latin1")];
  const s = (x: string) => [0x8c, x.length, ...Buffer.from(x)];
  // os.system("echo pwned"): GLOBAL + REDUCE
  refuse([0x80, 2, ...g("os", "system"), ...s("echo pwned"), 0x85, 0x52, 0x2e], /evil\.pkl: pickle at byte \d+: refusing global os\.system/);
  refuse([0x80, 2, ...g("builtins", "eval"), 0x2e], /refusing global builtins\.eval/);
  refuse([0x80, 4, ...s("posix"), ...s("system"), 0x93, 0x2e], /refusing global posix\.system/);
  // INST, OBJ, NEWOBJ, the text PERSID and REDUCE of a non-function
  refuse([0x28, ...Buffer.from("ios\nsystem\n"), 0x2e], /refusing opcode 0x69/);
  refuse([0x28, 0x6f, 0x2e], /refusing opcode 0x6f/);
  refuse([0x80, 2, 0x29, 0x29, 0x81, 0x2e], /refusing opcode 0x81/);
  refuse([0x50, ...Buffer.from("x\n"), 0x2e], /refusing opcode 0x50/);
  refuse([0x80, 2, ...s("abc"), 0x29, 0x52, 0x2e], /refusing to call a value that is not an allowed function/);
  // BUILD on a tensor rebuild function's result, or with real state
  refuse([0x80, 2, 0x7d, 0x7d, ...s("x"), 0x4b, 1, 0x73, 0x62, 0x2e], /refusing BUILD/);
  refuse([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f], /truncated/);
  // a state_dict's _metadata attribute is ignored
  const ok = unpickle(Uint8Array.from([0x80, 2, ...g("collections", "OrderedDict"), 0x29, 0x52, 0x7d, ...s("_metadata"), 0x7d, 0x73, 0x62, 0x2e]), "sd.pkl");
  assert.ok(ok instanceof PyDict && ok.map.size === 0);
});

test("PyTorch checkpoints: contiguous, strided (transposed) and offset views; half storages; truncated archives", () => {
  const p = join(dir, "t.bin");
  const a = randomArray(12, 1), h = randomArray(8, 2);
  writeTorchCheckpoint(p, [{ name: "a", shape: [3, 4], data: a }, { name: "h", shape: [8], data: h, dtype: "F16" }]);
  const ck = TorchCheckpoint.openFile(p);
  assert.deepEqual(ck.names, ["a", "h"]);
  assert.deepEqual([...ck.readF32("a")], [...a]);
  const hh = ck.readF32("h");
  for (let i = 0; i < 8; i++) assert.ok(Math.abs(hh[i]! - h[i]!) < 1e-3);
  ck.close();
  // a transposed view [4, 3] with stride [1, 4] and a view at offset 2 sharing the storage
  const pk = torchStateDictPickle([
    { name: "t", shape: [4, 3], stride: [1, 4], dtype: "F32", storageKey: "0", storageNumel: 12 },
    { name: "o", shape: [5], offset: 2, dtype: "F32", storageKey: "0", storageNumel: 12 },
  ]);
  const q = join(dir, "views.bin");
  writeFileSync(q, zipStored([{ name: "x/data.pkl", data: pk }, { name: "x/data/0", data: new Uint8Array(a.buffer) }]));
  const v = TorchCheckpoint.openFile(q);
  const t = v.readF32("t");
  for (let r = 0; r < 4; r++) for (let c = 0; c < 3; c++) assert.equal(t[r * 3 + c], a[c * 4 + r]);
  assert.deepEqual([...v.readF32("o")], [...a.subarray(2, 7)]);
  v.close();
  // a view past its storage; a truncated archive
  const bad = join(dir, "bad.bin");
  writeFileSync(bad, zipStored([{ name: "x/data.pkl", data: torchStateDictPickle([{ name: "w", shape: [13], dtype: "F32", storageKey: "0", storageNumel: 12 }]) }, { name: "x/data/0", data: new Uint8Array(a.buffer) }]));
  assert.throws(() => TorchCheckpoint.openFile(bad), (e: unknown) => e instanceof FormatError && /tensor "w": view .* runs outside its storage of 12 elements/.test(e.message));
  const cut = join(dir, "cut.bin");
  writeFileSync(cut, zipStored([{ name: "x/data.pkl", data: pk }]).subarray(0, 40));
  assert.throws(() => new ZipFile(cut), (e: unknown) => e instanceof FormatError && /cut\.bin: end of central directory: not found/.test(e.message));
  const evil = join(dir, "evil.bin");
  writeFileSync(evil, zipStored([{ name: "x/data.pkl", data: Uint8Array.from([0x80, 2, ...Buffer.from("cos\nsystem\n"), 0x2e]) }]));
  assert.throws(() => TorchCheckpoint.openFile(evil), (e: unknown) => e instanceof FormatError && /refusing global os\.system/.test(e.message));
});

test("convert reads pytorch_model.bin folders like safetensors ones", { skip: !A }, () => {
  const d = join(dir, "hf-bin");
  mkdirSync(d);
  const ck = SafetensorsCheckpoint.open(HF);
  writeTorchCheckpoint(join(d, "pytorch_model.bin"), ck.names.map((n) => ({ name: n, shape: ck.tensor(n)!.shape, data: ck.readF32(n) })));
  ck.close();
  for (const f of ["config.json", "tokenizer.model", "tokenizer_config.json"]) writeFileSync(join(d, f), readFileSyncBuf(join(HF, f)));
  convertHfToGguf(d, join(dir, "from-bin.gguf"), { outType: "f32" });
  convertHfToGguf(HF, join(dir, "from-st.gguf"), { outType: "f32" });
  assert.ok(readFileSyncBuf(join(dir, "from-bin.gguf")).equals(readFileSyncBuf(join(dir, "from-st.gguf"))));
});

// ---- merging ----

test("merge-lora equals W + (alpha/r)·B·A for q_proj, an expert's w2, the router; other tensors are untouched", { skip: !A }, () => {
  const ad = join(dir, "ad1");
  const t = adapterTensors();
  writePeftAdapter(ad, CONFIG, t);
  const out = join(dir, "merged.gguf");
  const r = mergeLora({ base: HF, lora: ad, out, outType: "f32" });
  assert.equal(r.pairs, 8);
  const g = new GgufReader(out), base = new GgufReader(A!);
  const ck = SafetensorsCheckpoint.open(HF);
  try {
    // q_proj: GGUF rows are the HF rows permuted per head (d = 16): HF row i -> 2i, d/2 + i -> 2i + 1
    const q = expected(ck, "model.layers.0.self_attn.q_proj.weight", t, "model.layers.0.self_attn.q_proj");
    const qg = f32(g.readTensor("blk.0.attn_q.weight"));
    const qPerm = new Float64Array(q.length);
    const d = 16;
    for (let row = 0; row < E; row++) {
      const h = Math.floor(row / d), i = row % d;
      const to = h * d + (i < d / 2 ? 2 * i : 2 * (i - d / 2) + 1);
      qPerm.set(q.subarray(row * E, row * E + E), to * E);
    }
    close(qg, qPerm, "attn_q");
    // expert 2's w2 is the third [64, 128] block of ffn_down_exps
    const w2 = expected(ck, "model.layers.1.block_sparse_moe.experts.2.w2.weight", t, "model.layers.1.block_sparse_moe.experts.2.w2");
    close(f32(g.readTensor("blk.1.ffn_down_exps.weight")).subarray(2 * E * F, 3 * E * F), w2, "ffn_down_exps[2]");
    const router = expected(ck, "model.layers.0.block_sparse_moe.gate.weight", t, "model.layers.0.block_sparse_moe.gate");
    close(f32(g.readTensor("blk.0.ffn_gate_inp.weight")), router, "ffn_gate_inp");
    assert.equal(g.tensor("blk.0.ffn_gate_inp.weight")!.type, 0);
    // untouched: other experts of the same tensor, other layers' q, the embeddings
    const downBase = f32(base.readTensor("blk.1.ffn_down_exps.weight")), downNew = f32(g.readTensor("blk.1.ffn_down_exps.weight"));
    assert.deepEqual([...downNew.subarray(0, 2 * E * F)], [...downBase.subarray(0, 2 * E * F)]);
    for (const n of ["blk.1.attn_q.weight", "token_embd.weight", "output.weight", "blk.0.ffn_up_exps.weight", "blk.1.ffn_norm.weight"]) {
      assert.ok(Buffer.from(g.readTensor(n)).equals(Buffer.from(base.readTensor(n))), n);
    }
    for (const n of ["blk.1.attn_k.weight", "blk.0.attn_v.weight", "blk.1.attn_output.weight", "blk.0.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight"]) {
      assert.ok(!Buffer.from(g.readTensor(n)).equals(Buffer.from(base.readTensor(n))), `${n} should change`);
    }
  } finally {
    g.close();
    base.close();
    ck.close();
  }
  // the same adapter on the GGUF base gives the same file; an HF folder output holds the same values
  const out2 = join(dir, "merged-from-gguf.gguf");
  mergeLora({ base: A!, lora: ad, out: out2, outType: "f32" });
  assert.ok(sameTensors(out, out2), "HF base and GGUF base give the same merged tensors");
  const hfOut = join(dir, "merged-hf");
  const rh = mergeLora({ base: A!, lora: ad, out: hfOut, dtype: "f32" });
  assert.equal(rh.format, "hf");
  const m = SafetensorsCheckpoint.open(hfOut), ck2 = SafetensorsCheckpoint.open(HF);
  close(m.readF32("model.layers.1.block_sparse_moe.experts.2.w2.weight"), expected(ck2, "model.layers.1.block_sparse_moe.experts.2.w2.weight", t, "model.layers.1.block_sparse_moe.experts.2.w2"), "hf w2");
  close(m.readF32("model.layers.0.self_attn.q_proj.weight"), expected(ck2, "model.layers.0.self_attn.q_proj.weight", t, "model.layers.0.self_attn.q_proj"), "hf q_proj");
  m.close();
  ck2.close();
});

test("LoRA with B = 0 changes nothing: same tensor bytes, identical logits", { skip: !A }, () => {
  const ad = join(dir, "ad-zero");
  writePeftAdapter(ad, CONFIG, adapterTensors({ zeroB: true }));
  const out = join(dir, "zero.gguf");
  mergeLora({ base: HF, lora: ad, out, outType: "f32" });
  const g = new GgufReader(out), base = new GgufReader(A!);
  for (const t of base.tensors) assert.ok(Buffer.from(g.readTensor(t.name)).equals(Buffer.from(base.readTensorBytes(t))), t.name);
  g.close();
  base.close();
  const a = loadModel(A!), b = loadModel(out);
  try {
    const la = logitsOf(a), lb = logitsOf(b);
    assert.deepEqual([...lb], [...la]);
  } finally {
    a.model.close();
    b.model.close();
  }
});

test("modules_to_save replaces embed_tokens and lm_head (PEFT's names with and without .modules_to_save.default); .bin adapters read the same", { skip: !A }, () => {
  const emb = randomArray(V * E, 11, 1), head = randomArray(V * E, 12, 1);
  const t = [
    ...adapterTensors({ adapterName: true }),
    { name: `${P}model.embed_tokens.modules_to_save.default.weight`, shape: [V, E], data: emb },
    { name: `${P}lm_head.weight`, shape: [V, E], data: head },
  ];
  const cfg = { ...CONFIG, modules_to_save: ["embed_tokens", "lm_head"] };
  const ad = join(dir, "ad-save");
  writePeftAdapter(ad, cfg, t);
  const out = join(dir, "save.gguf");
  const r = mergeLora({ base: HF, lora: ad, out, outType: "f32" });
  assert.equal(r.replaced, 2);
  const g = new GgufReader(out);
  assert.deepEqual([...f32(g.readTensor("token_embd.weight"))], [...emb]);
  assert.deepEqual([...f32(g.readTensor("output.weight"))], [...head]);
  g.close();
  // plain names (newer PEFT) and an adapter_model.bin give the same file
  const t2 = [...adapterTensors(), { name: `${P}model.embed_tokens.weight`, shape: [V, E], data: emb }, { name: `${P}lm_head.modules_to_save.weight`, shape: [V, E], data: head }];
  const ad2 = join(dir, "ad-save-bin");
  writePeftAdapter(ad2, cfg, t2, "bin");
  assert.ok(existsSync(join(ad2, "adapter_model.bin")));
  const out2 = join(dir, "save-bin.gguf");
  mergeLora({ base: A!, lora: ad2, out: out2, outType: "f32" });
  assert.ok(sameTensors(out, out2));
});

test("applyLoraToWeights on a loaded model gives the merged model's logits", { skip: !A }, () => {
  const ad = join(dir, "ad-rt");
  writePeftAdapter(ad, CONFIG, adapterTensors());
  const out = join(dir, "rt.gguf");
  mergeLora({ base: A!, lora: ad, out, outType: "f32" });
  const merged = loadModel(out), live = loadModel(A!);
  const adapter = loadLoraAdapter(ad);
  try {
    const before = logitsOf(live);
    const changed = applyLoraToWeights(live.model, adapter);
    assert.equal(changed.length, 8);
    const after = logitsOf(live), want = logitsOf(merged);
    assert.deepEqual([...after], [...want]);
    assert.ok(before.some((x, i) => x !== after[i]), "the adapter changes the logits");
  } finally {
    adapter.close();
    merged.model.close();
    live.model.close();
  }
});

test("embedding LoRA (lora_embedding_A/B) adds (B·A)^T; use_rslora scales by alpha/sqrt(r)", { skip: !A }, () => {
  const a = randomArray(R * V, 31, 0.5), b = randomArray(E * R, 32, 0.5);
  const qa = randomArray(R * E, 33, 0.5), qb = randomArray(E * R, 34, 0.5);
  const ad = join(dir, "ad-emb");
  writePeftAdapter(ad, { r: R, lora_alpha: ALPHA, use_rslora: true, target_modules: ["embed_tokens", "q_proj"] }, [
    { name: `${P}model.embed_tokens.lora_embedding_A`, shape: [R, V], data: a },
    { name: `${P}model.embed_tokens.lora_embedding_B`, shape: [E, R], data: b },
    { name: `${P}model.layers.1.self_attn.q_proj.lora_A.weight`, shape: [R, E], data: qa },
    { name: `${P}model.layers.1.self_attn.q_proj.lora_B.weight`, shape: [E, R], data: qb },
  ]);
  const hfOut = join(dir, "emb-hf");
  mergeLora({ base: HF, lora: ad, out: hfOut, dtype: "f32" });
  const m = SafetensorsCheckpoint.open(hfOut), base = SafetensorsCheckpoint.open(HF);
  const s = ALPHA / Math.sqrt(R);
  const W = base.readF32("model.embed_tokens.weight"), got = m.readF32("model.embed_tokens.weight");
  for (const v of [0, 1, 5, 31999]) {
    for (let e = 0; e < E; e++) {
      let acc = 0;
      for (let k = 0; k < R; k++) acc += b[e * R + k]! * a[k * V + v]!;
      assert.ok(Math.abs(got[v * E + e]! - (W[v * E + e]! + s * acc)) < 1e-6, `embed[${v}, ${e}]`);
    }
  }
  const Wq = base.readF32("model.layers.1.self_attn.q_proj.weight"), gq = m.readF32("model.layers.1.self_attn.q_proj.weight");
  let acc = 0;
  for (let k = 0; k < R; k++) acc += qb[5 * R + k]! * qa[k * E + 7]!;
  assert.ok(Math.abs(gq[5 * E + 7]! - (Wq[5 * E + 7]! + s * acc)) < 1e-6);
  m.close();
  base.close();
});

test("errors: an adapter for another base (shapes, layers), unknown target modules, bad configs; nothing written", { skip: !A }, () => {
  const outDir = join(dir, "err-out");
  mkdirSync(outDir);
  let n = 0;
  const attempt = (tensors: TestTensor[], cfg: object, re: RegExp, cls: Function = ModelError) => {
    const ad = join(dir, `ad-err-${n++}`);
    writePeftAdapter(ad, { ...CONFIG, ...cfg }, tensors);
    for (const out of [join(outDir, "x.gguf"), join(outDir, "hf")]) {
      assert.throws(() => mergeLora({ base: HF, lora: ad, out, outType: "f32" }), (e: unknown) => {
        assert.ok(e instanceof cls, `expected ${cls.name}, got ${String(e)}`);
        assert.match((e as Error).message, re);
        return true;
      });
      assert.deepEqual(readdirSync(outDir), [], "no output after a failure");
    }
  };
  const base = adapterTensors();
  // lora_A for a 32-wide input on q_proj: the base's q_proj takes 64
  attempt(base.map((t) => (t.name.includes("layers.0.self_attn.q_proj.lora_A") ? { ...t, shape: [R, 32], data: t.data.subarray(0, R * 32) } : t)), {},
    /adapter tensor "base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight" has shape \[4, 32\] but base tensor "model\.layers\.0\.self_attn\.q_proj\.weight" has shape \[64, 64\]/);
  // lora_B with the wrong number of outputs for an expert's w2
  attempt(base.map((t) => (t.name.includes("experts.2.w2.lora_B") ? { ...t, shape: [128, R], data: new Float32Array(128 * R) } : t)), {},
    /"base_model\.model\.model\.layers\.1\.block_sparse_moe\.experts\.2\.w2\.lora_B\.weight" has shape \[128, 4\] but base tensor "model\.layers\.1\.block_sparse_moe\.experts\.2\.w2\.weight" has shape \[64, 128\]/);
  // a layer and an expert the base does not have
  attempt([...base, { name: `${P}model.layers.5.self_attn.q_proj.lora_A.weight`, shape: [R, E], data: new Float32Array(R * E) }, { name: `${P}model.layers.5.self_attn.q_proj.lora_B.weight`, shape: [E, R], data: new Float32Array(R * E) }], {},
    /is for layer 5 but .* has 2 layers: an adapter for another base model\?/);
  attempt([...base, { name: `${P}model.layers.0.block_sparse_moe.experts.7.w1.lora_A.weight`, shape: [R, E], data: new Float32Array(R * E) }, { name: `${P}model.layers.0.block_sparse_moe.experts.7.w1.lora_B.weight`, shape: [F, R], data: new Float32Array(R * F) }], {},
    /is for expert 7 but .* has 4 experts/);
  // a replacement embedding of another vocabulary size
  attempt([...base, { name: `${P}model.embed_tokens.weight`, shape: [100, E], data: new Float32Array(100 * E) }], {},
    /"base_model\.model\.model\.embed_tokens\.weight" has shape \[100, 64\] but the base tensor "model\.embed_tokens\.weight" it replaces has shape \[32000, 64\]/);
  // unknown target modules: in the config, and as tensors
  attempt(base, { target_modules: ["q_proj", "fc1"] }, /unknown target module "fc1"/);
  attempt([...base, { name: `${P}model.layers.0.mlp.fc1.lora_A.weight`, shape: [R, E], data: new Float32Array(R * E) }, { name: `${P}model.layers.0.mlp.fc1.lora_B.weight`, shape: [E, R], data: new Float32Array(R * E) }], {},
    /unknown target module "model\.layers\.0\.mlp\.fc1"/);
  // half a pair; a rank that disagrees with the config
  attempt(base.filter((t) => !t.name.includes("layers.0.self_attn.v_proj.lora_B")), {}, /module "model\.layers\.0\.self_attn\.v_proj": has lora_A but no lora_B/, FormatError);
  attempt(base, { r: 8 }, /has rank 4 but adapter_config\.json gives r = 8/);
  // a dense adapter (Mistral mlp) on the Mixtral base
  attempt([{ name: `${P}model.layers.0.mlp.gate_proj.lora_A.weight`, shape: [R, E], data: new Float32Array(R * E) }, { name: `${P}model.layers.0.mlp.gate_proj.lora_B.weight`, shape: [F, R], data: new Float32Array(R * F) }],
    { target_modules: ["gate_proj"] }, /unknown target module "gate_proj"/);
});
