import assert from "node:assert/strict";
import { test } from "node:test";
import { GgufReader } from "../io/gguf/reader.js";
import { loadModel } from "../model/load.js";
import { SeededNormal } from "../model/synthetic.js";
import { GgmlType } from "../quant/format.js";
import { TrainMemory } from "./gemm.js";
import { FULL_TARGETS, LORA_TARGETS, TrainModel, type Param, type TrainSetup } from "./model.js";
import { tinyModelFile } from "./testing.js";

const ALL: TrainSetup = {
  loraRank: 3, loraAlpha: 6, loraDropout: 0.1, loraTargets: LORA_TARGETS, full: FULL_TARGETS, auxCoef: 0.02, recompute: false, seed: 5,
};

function sequence(n: number, V: number, seed: number): { tokens: number[]; targets: number[] } {
  const rng = new SeededNormal(seed);
  const ids = Array.from({ length: n + 1 }, () => 3 + Math.floor(rng.uniform() * (V - 3)));
  const targets = ids.slice(1);
  targets[2] = -1; // an unscored position
  return { tokens: ids.slice(0, n), targets };
}

function open(path: string, setup: TrainSetup, threads = 1): { m: TrainModel; mem: TrainMemory } {
  const r = new GgufReader(path);
  try {
    const mem = new TrainMemory({ threads });
    return { m: TrainModel.fromGguf(r, mem, setup), mem };
  } finally {
    r.close();
  }
}

function randomizeLoraB(m: TrainModel, seed: number): void {
  const rng = new SeededNormal(seed);
  for (const p of m.params) if (p.name.endsWith(".lora_b")) for (let i = 0; i < p.size; i++) p.value!.f[i] = rng.normal() * 0.05;
}

test("the training forward pass gives the inference engine's loss", () => {
  const path = tinyModelFile();
  const { tokens, targets } = sequence(20, 64, 1);
  const { m, mem } = open(path, { ...ALL, loraTargets: [], full: [] });
  const { lossSum, nTargets } = m.evalLoss(tokens, targets);
  mem.close();
  const lm = loadModel(path, { backend: "js" });
  const logits = lm.model.newContext({ nCtx: 64 }).eval(tokens, { logits: "all" });
  let want = 0;
  for (let t = 0; t < tokens.length; t++) {
    if (targets[t]! < 0) continue;
    const row = logits.subarray(t * 64, t * 64 + 64);
    let max = -Infinity;
    for (const v of row) max = Math.max(max, v);
    let s = 0;
    for (const v of row) s += Math.exp(v - max);
    want += Math.log(s) + max - row[targets[t]!]!;
  }
  assert.equal(nTargets, 19);
  assert.ok(Math.abs(lossSum - want) < 1e-4 * want, `training ${lossSum} vs inference ${want}`);
});

test("LoRA with B = 0 leaves the loss unchanged", () => {
  const path = tinyModelFile();
  const { tokens, targets } = sequence(16, 64, 2);
  const a = open(path, { ...ALL, loraTargets: [], full: [] });
  const b = open(path, { ...ALL, full: [] });
  const la = a.m.evalLoss(tokens, targets).lossSum, lb = b.m.evalLoss(tokens, targets).lossSum;
  a.mem.close(); b.mem.close();
  assert.equal(la, lb);
});

/** loss as step() optimises it: mean CE + auxCoef·aux */
function lossOf(m: TrainModel, tokens: number[], targets: number[]): number {
  const r = m.stepMean(tokens, targets, 0, 99);
  return r.lossSum / r.nTargets + m.setup.auxCoef * r.aux;
}

test("the whole model's gradient matches finite differences (full training, LoRA with dropout, router loss)", () => {
  const path = tinyModelFile();
  const { tokens, targets } = sequence(12, 64, 3);
  const { m, mem } = open(path, ALL);
  randomizeLoraB(m, 4);
  m.zeroGrad();
  m.stepMean(tokens, targets, 1, 99);
  const grads = new Map(m.trainable().map((p) => [p, Float64Array.from(p.grad!.f)]));
  const check = (p: Param, idx: number[]) => {
    const g = grads.get(p)!;
    for (const i of idx) {
      const old = p.value!.f[i]!;
      // small steps: a larger one can flip an expert choice (the loss is not smooth there)
      const eps = 1e-3;
      p.value!.f[i] = old + eps;
      const up = lossOf(m, tokens, targets);
      p.value!.f[i] = old - eps;
      const down = lossOf(m, tokens, targets);
      p.value!.f[i] = old;
      const num = (up - down) / (2 * eps);
      const err = Math.abs(num - g[i]!);
      assert.ok(err <= 2e-2 * Math.max(Math.abs(num), Math.abs(g[i]!)) + 5e-4,
        `${p.name}[${i}]: analytic ${g[i]}, numeric ${num}`);
    }
  };
  const biggest = (p: Param, n: number): number[] => {
    const g = grads.get(p)!;
    return [...g.keys()].sort((a, b) => Math.abs(g[b]!) - Math.abs(g[a]!)).slice(0, n);
  };
  let checked = 0;
  for (const p of m.trainable()) {
    check(p, biggest(p, 2));
    checked++;
  }
  assert.ok(checked > 20);
  // every trainable tensor got some gradient
  for (const [p, g] of grads) assert.ok(g.some((v) => v !== 0), `${p.name} has no gradient`);
  mem.close();
});

test("recomputing activations gives the same gradients bit for bit, on 1 and 2 threads", () => {
  const path = tinyModelFile();
  const { tokens, targets } = sequence(24, 64, 5);
  const run = (recompute: boolean, threads: number) => {
    const { m, mem } = open(path, { ...ALL, recompute }, threads);
    randomizeLoraB(m, 4);
    m.stepMean(tokens, targets, 1, 7);
    const out = m.trainable().map((p) => Float32Array.from(p.grad!.f));
    mem.close();
    return out;
  };
  const a = run(false, 1);
  assert.deepEqual(run(true, 1), a);
  assert.deepEqual(run(true, 2), a);
});

test("a quantized base stays quantized (QLoRA) and only LoRA tensors get gradients", () => {
  const path = tinyModelFile({ type: GgmlType.Q8_0, nEmbd: 64, nFf: 64 });
  const { tokens, targets } = sequence(10, 64, 6);
  const setup: TrainSetup = { ...ALL, full: [], residentBytes: 0 };
  const { m, mem } = open(path, setup);
  randomizeLoraB(m, 4);
  const frozen = m.params.filter((p) => !p.trainable);
  assert.ok(frozen.filter((p) => p.rows > 1).every((p) => p.q !== undefined && p.value === undefined));
  m.stepMean(tokens, targets, 1, 3);
  assert.ok(m.trainable().every((p) => p.name.includes(".lora_")));
  assert.ok(m.trainable().every((p) => p.grad!.f.some((v) => v !== 0)), "every LoRA tensor has a gradient");
  // the same model widened once gives the same gradients
  const w = open(path, { ...setup, residentBytes: undefined });
  randomizeLoraB(w.m, 4);
  w.m.stepMean(tokens, targets, 1, 3);
  for (let i = 0; i < m.trainable().length; i++) assert.deepEqual(w.m.trainable()[i]!.grad!.f, m.trainable()[i]!.grad!.f);
  mem.close(); w.mem.close();
});
