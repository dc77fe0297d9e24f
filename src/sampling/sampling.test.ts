import { test } from "node:test";
import assert from "node:assert/strict";
import { ArgumentError } from "../errors.js";
import { createCandidates, type Candidates } from "./candidates.js";
import { logSumExp } from "./logprobs.js";
import { applyMinP } from "./min-p.js";
import { applyPenalties } from "./penalties.js";
import { Rng } from "./rng.js";
import { DEFAULT_SAMPLING, Sampler, argmax } from "./sampler.js";
import { applyTemperature } from "./temperature.js";
import { selectTopK } from "./top-k.js";
import { applyTopP } from "./top-p.js";

/** Plain sampling: no penalties, no truncation, temperature 1. */
const PLAIN = { temperature: 1, topK: 0, topP: 1, minP: 0, repeatPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 };

function randomLogits(n: number, rng: Rng, scale = 10): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (rng.next() * 2 - 1) * scale;
  return out;
}

function sortedReference(logits: Float32Array): number[] {
  return Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b);
}

function candidatesOf(logits: number[]): Candidates {
  const c = createCandidates(logits.length);
  selectTopK(Float32Array.from(logits), 0, c);
  return c;
}

function ids(c: Candidates): number[] {
  return Array.from(c.ids.subarray(0, c.n));
}

test("defaults match the documented ones", () => {
  assert.deepEqual({ ...DEFAULT_SAMPLING }, {
    temperature: 0.2, topK: 40, topP: 0.9, minP: 0, repeatPenalty: 1.1, repeatLastN: 64, frequencyPenalty: 0, presencePenalty: 0,
  });
  const s = new Sampler({});
  assert.equal(s.params.topK, 40);
  assert.ok(Number.isInteger(s.seed)); // a random seed was picked and is reported
});

test("rng: seeded streams are reproducible, distinct per seed, and uniform in [0, 1)", () => {
  const a = new Rng(42), b = new Rng(42), c = new Rng(43);
  const sa = Array.from({ length: 100 }, () => a.next());
  const sb = Array.from({ length: 100 }, () => b.next());
  const sc = Array.from({ length: 100 }, () => c.next());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
  const r = new Rng(7);
  let sum = 0;
  const N = 100000;
  for (let i = 0; i < N; i++) {
    const x = r.next();
    assert.ok(x >= 0 && x < 1);
    sum += x;
  }
  assert.ok(Math.abs(sum / N - 0.5) < 0.005, `mean ${sum / N}`);
  // seeds beyond 32 bits still differ
  assert.notEqual(new Rng(2 ** 40).next(), new Rng(0).next());
});

test("greedy (temperature <= 0) is the argmax, ties to the lowest id", () => {
  const rng = new Rng(1);
  for (let trial = 0; trial < 20; trial++) {
    const logits = randomLogits(32000, rng);
    const s = new Sampler({ ...PLAIN, temperature: 0 });
    assert.equal(s.sample(logits, []), sortedReference(logits)[0]);
  }
  const tied = Float32Array.from([1, 5, 3, 5, 5]);
  assert.equal(new Sampler({ temperature: 0 }).sample(tied, []), 1);
  assert.equal(new Sampler({ temperature: -1 }).sample(tied, []), 1);
  assert.equal(argmax([2, 9, 9]), 1);
});

test("greedy applies the penalties first", () => {
  const logits = Float32Array.from([2.0, 1.9, -1]);
  const s = new Sampler({ temperature: 0, repeatPenalty: 1.1, repeatLastN: 64 });
  assert.equal(s.sample(logits, []), 0);
  assert.equal(s.sample(logits, [0]), 1); // 2.0 / 1.1 = 1.818 < 1.9
});

test("the caller's logits are not modified", () => {
  const rng = new Rng(3);
  const logits = randomLogits(1000, rng);
  const copy = logits.slice();
  const s = new Sampler({ seed: 5, repeatPenalty: 1.3, frequencyPenalty: 0.5, presencePenalty: 0.5, temperature: 0.8 });
  const history = [1, 2, 3, 3, 999, 500];
  s.sample(logits, history);
  s.sampleWithInfo(logits, history, 5);
  new Sampler({ temperature: 0, repeatPenalty: 2 }).sample(logits, history);
  assert.deepEqual(logits, copy);
});

test("same seed reproduces the same tokens; another seed does not", () => {
  const run = (seed: number): number[] => {
    const rng = new Rng(99); // same logits for every run
    const s = new Sampler({ seed, temperature: 1.5, topK: 50, topP: 0.95 });
    const history: number[] = [];
    for (let i = 0; i < 200; i++) history.push(s.sample(randomLogits(5000, rng, 3), history));
    return history;
  };
  assert.deepEqual(run(1234), run(1234));
  assert.notDeepEqual(run(1234), run(1235));
  // -1 (llama.cpp's "random") and undefined pick a seed, which is reported and reproducible
  const s = new Sampler({ seed: -1 });
  assert.ok(s.seed >= 0);
  assert.equal(new Sampler({ seed: s.seed }).seed, s.seed);
});

function frequencies(s: Sampler, logits: Float32Array, n: number): number[] {
  const counts = new Array<number>(logits.length).fill(0);
  for (let i = 0; i < n; i++) counts[s.sample(logits, [])]++;
  return counts.map((c) => c / n);
}

function assertClose(actual: number[], expected: number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) < tol, `${what}: token ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

test("distribution: 20000 draws from a known 3-token distribution", () => {
  const p = [0.5, 0.3, 0.2];
  const logits = Float32Array.from(p.map(Math.log));
  // binomial standard deviation <= sqrt(0.25 / 20000) = 0.0035; allow ~4 sigma
  assertClose(frequencies(new Sampler({ ...PLAIN, seed: 11 }), logits, 20000), p, 0.015, "T=1");
  // temperature 0.5 squares the probabilities before renormalising
  const sq = p.map((x) => x * x);
  const z = sq.reduce((a, b) => a + b);
  assertClose(frequencies(new Sampler({ ...PLAIN, temperature: 0.5, seed: 12 }), logits, 20000), sq.map((x) => x / z), 0.015, "T=0.5");
  // the heap top-k path (k < vocabulary) gives the same distribution
  const big = new Float32Array(1000).fill(-1e9);
  big.set(logits, 400);
  const f = frequencies(new Sampler({ ...PLAIN, topK: 10, seed: 13 }), big, 20000);
  assertClose(f.slice(400, 403), p, 0.015, "top-k path");
  assert.equal(f.slice(400, 403).reduce((a, b) => a + b), 1);
});

test("top-k: partial selection keeps exactly the k best, sorted, ties to lower ids", () => {
  const rng = new Rng(5);
  for (const [n, k] of [[32000, 40], [32000, 1], [1000, 999], [1000, 1000], [1000, 0], [17, 5]]) {
    const logits = randomLogits(n, rng);
    // add ties, including across the cut
    for (let i = 0; i < n; i += 7) logits[i] = logits[(i * 13) % n];
    const c = createCandidates(k > 0 && k < n ? k : n);
    selectTopK(logits, k, c);
    const expected = sortedReference(logits).slice(0, k > 0 ? k : n);
    assert.deepEqual(ids(c), expected, `n=${n} k=${k}`);
    assert.deepEqual(Array.from(c.logits.subarray(0, c.n)), expected.map((i) => logits[i]));
  }
  const tied = Float32Array.from([3, 1, 3, 2, 3, 3]);
  const c = createCandidates(3);
  selectTopK(tied, 3, c);
  assert.deepEqual(ids(c), [0, 2, 4]);
  // infinities, -0 and +0
  const odd = Float32Array.from([-Infinity, 0, -0, Infinity, -Infinity, 1]);
  const all = createCandidates(6);
  selectTopK(odd, 0, all);
  assert.deepEqual(ids(all), [3, 5, 1, 2, 0, 4]);
});

test("top-k through the sampler never yields a token outside the k best", () => {
  const logits = Float32Array.from([0, 0.1, 0.2, 0.3, 0.4, 0.5]);
  const s = new Sampler({ ...PLAIN, topK: 2, seed: 1 });
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) seen.add(s.sample(logits, []));
  assert.deepEqual([...seen].sort(), [4, 5]);
});

test("top-p keeps the smallest prefix reaching p (the crossing token included)", () => {
  const probs = [0.5, 0.3, 0.15, 0.05];
  const logits = probs.map(Math.log);
  const scratch = new Float64Array(4);
  const cut = (p: number): number[] => {
    const c = candidatesOf(logits);
    applyTopP(c, p, scratch);
    return ids(c);
  };
  assert.deepEqual(cut(0.3), [0]);
  assert.deepEqual(cut(0.49), [0]);
  assert.deepEqual(cut(0.51), [0, 1]);
  assert.deepEqual(cut(0.75), [0, 1]);
  assert.deepEqual(cut(0.85), [0, 1, 2]);
  assert.deepEqual(cut(0.96), [0, 1, 2, 3]);
  assert.deepEqual(cut(1), [0, 1, 2, 3]);
  assert.deepEqual(cut(0), [0]); // at least one survives
});

test("top-p is computed at temperature 1, before temperature", () => {
  // p(0) = 0.5 at T=1, so top-p 0.45 keeps only token 0; at T=100 it would keep several.
  const logits = Float32Array.from([0.5, 0.3, 0.2].map(Math.log));
  const s = new Sampler({ ...PLAIN, topP: 0.45, temperature: 100, seed: 2 });
  for (let i = 0; i < 500; i++) assert.equal(s.sample(logits, []), 0);
});

test("min-p drops tokens below p times the top probability", () => {
  const logits = [0, -1, -2, -3]; // relative probabilities 1, 0.368, 0.135, 0.0498
  const cut = (p: number): number[] => {
    const c = candidatesOf(logits);
    applyMinP(c, p);
    return ids(c);
  };
  assert.deepEqual(cut(0), [0, 1, 2, 3]);
  assert.deepEqual(cut(0.04), [0, 1, 2, 3]);
  assert.deepEqual(cut(0.1), [0, 1, 2]);
  assert.deepEqual(cut(0.3), [0, 1]);
  assert.deepEqual(cut(0.5), [0]);
  assert.deepEqual(cut(1), [0]);
  // through the sampler
  const s = new Sampler({ ...PLAIN, minP: 0.3, seed: 4 });
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) seen.add(s.sample(Float32Array.from([-3, -1, 0, -2]), []));
  assert.deepEqual([...seen].sort(), [1, 2]);
});

test("temperature scales only the surviving logits", () => {
  const c = candidatesOf([2, 1, 0]);
  c.n = 2;
  applyTemperature(c, 0.5);
  assert.deepEqual(Array.from(c.logits), [4, 2, 0]);
});

test("repeat penalty: positive logits divided, negative multiplied, once per distinct token", () => {
  const logits = Float32Array.from([2, -2, 0, 3, 1]);
  applyPenalties(logits, [0, 1, 2, 0, 0, 1], { repeatPenalty: 2, repeatLastN: 64, frequencyPenalty: 0, presencePenalty: 0 });
  assert.deepEqual(Array.from(logits), [1, -4, 0, 3, 1]);
});

test("penalties only look at the last repeatLastN tokens; 0 disables; -1 is the whole history", () => {
  const base = Float32Array.from([4, 4, 4, 4]);
  const history = [0, 1, 2, 2];
  const run = (repeatLastN: number): number[] => {
    const l = base.slice();
    applyPenalties(l, history, { repeatPenalty: 2, repeatLastN, frequencyPenalty: 0, presencePenalty: 0 });
    return Array.from(l);
  };
  assert.deepEqual(run(2), [4, 4, 2, 4]);
  assert.deepEqual(run(3), [4, 2, 2, 4]);
  assert.deepEqual(run(-1), [2, 2, 2, 4]);
  assert.deepEqual(run(0), [4, 4, 4, 4]);
  assert.deepEqual(run(100), [2, 2, 2, 4]);
});

test("frequency and presence penalties follow OpenAI's formula", () => {
  const l = Float32Array.from([1, 1, 1, 1]);
  applyPenalties(l, [0, 0, 0, 1, 5, -1], { repeatPenalty: 1, repeatLastN: 64, frequencyPenalty: 0.25, presencePenalty: 0.5 });
  // token 0: 3 times -> 1 - 0.75 - 0.5; token 1: once -> 1 - 0.25 - 0.5; out-of-range ids ignored
  assert.deepEqual(Array.from(l), [-0.25, 0.25, 1, 1]);
  // combined with repeat penalty: repeat first, then subtract
  const m = Float32Array.from([-1, 2]);
  applyPenalties(m, [0, 1, 1], { repeatPenalty: 2, repeatLastN: 64, frequencyPenalty: 0.5, presencePenalty: 0.25 });
  assert.deepEqual(Array.from(m), [-2 - 0.5 - 0.25, 1 - 1 - 0.25]);
});

test("sampleWithInfo: log-softmax of the penalised logits before truncation", () => {
  const rng = new Rng(8);
  const logits = randomLogits(32000, rng, 5);
  const history = [10, 20, 20];
  const s = new Sampler({ seed: 3, temperature: 0.7, topK: 5, repeatPenalty: 1.3 });
  const info = s.sampleWithInfo(logits, history, 8);
  const pen = logits.slice();
  applyPenalties(pen, history, { repeatPenalty: 1.3, repeatLastN: 64, frequencyPenalty: 0, presencePenalty: 0 });
  const lse = logSumExp(pen);
  let total = 0;
  for (let i = 0; i < pen.length; i++) total += Math.exp(pen[i] - lse);
  assert.ok(Math.abs(total - 1) < 1e-9);
  assert.ok(Math.abs(info.logprob - (pen[info.token] - lse)) < 1e-9);
  assert.equal(info.top.length, 8);
  const order = sortedReference(pen);
  assert.deepEqual(info.top.map((t) => t.token), order.slice(0, 8));
  for (const t of info.top) assert.ok(Math.abs(t.logprob - (pen[t.token] - lse)) < 1e-9);
  assert.ok(order.slice(0, 5).includes(info.token)); // sampled within top-k...
  assert.ok(info.top.slice(5).every((t) => t.logprob > -Infinity)); // ...but logprobs are untruncated
  // greedy: the chosen token is the top entry
  const g = new Sampler({ temperature: 0 }).sampleWithInfo(logits, [], 1);
  assert.equal(g.token, g.top[0].token);
  assert.equal(g.logprob, g.top[0].logprob);
  assert.deepEqual(new Sampler({ temperature: 0 }).sampleWithInfo(logits, []).top, []);
  // sample() and sampleWithInfo() draw the same tokens for the same seed
  const a = new Sampler({ seed: 77, temperature: 1 }), b = new Sampler({ seed: 77, temperature: 1 });
  for (let i = 0; i < 20; i++) assert.equal(a.sample(logits, []), b.sampleWithInfo(logits, [], 2).token);
});

test("NaN and -Infinity logits are never sampled", () => {
  const logits = Float32Array.from([NaN, -Infinity, 0.5, NaN, 0.2]);
  const s = new Sampler({ ...PLAIN, seed: 9 });
  for (let i = 0; i < 1000; i++) assert.ok([2, 4].includes(s.sample(logits, [])));
  assert.equal(new Sampler({ temperature: 0 }).sample(logits, []), 2);
});

test("bad parameters are ArgumentErrors", () => {
  for (const bad of [
    { topP: 1.5 }, { topP: -0.1 }, { minP: 2 }, { topK: 1.5 }, { repeatPenalty: 0 }, { repeatLastN: -2 },
    { temperature: NaN }, { seed: 0.5 }, { frequencyPenalty: Infinity },
  ]) {
    assert.throws(() => new Sampler(bad), ArgumentError, JSON.stringify(bad));
  }
  assert.throws(() => new Sampler({}).sample(new Float32Array(0), []), ArgumentError);
  assert.throws(() => new Sampler({}).sampleWithInfo(new Float32Array(3), [], -1), ArgumentError);
});
