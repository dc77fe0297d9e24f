// The WebAssembly RMSNorm, RoPE, SwiGLU, softmax and attention kernels against the TypeScript
// reference (src/kernels/js) on seeded random inputs; the memory allocator; several instances
// of the module over one shared memory.

import assert from "node:assert/strict";
import { test } from "node:test";
import { f32ToF16 } from "../../quant/f16.js";
import { gaussian, rng } from "../../quant/testing.js";
import { softmax, swiglu } from "../js/activations.js";
import { attention } from "../js/attention.js";
import { rmsNormRows } from "../js/rms-norm.js";
import { RopeTable } from "../js/rope.js";
import { ROPE_NEOX, WasmKernels, compileKernels, instantiateOn, newKernelMemory } from "./backend.js";

const k = await WasmKernels.create();

function randn(n: number, seed: number, scale = 1): Float32Array {
  const g = gaussian(rng(seed));
  return new Float32Array(n).map(() => g() * scale);
}

/** max |a-b| / max(|b|, floor) */
function maxRel(a: Float32Array, b: Float32Array, floor = 1e-30): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!) / Math.max(Math.abs(b[i]!), floor));
  return m;
}

test("rmsNorm is bit-exact with rmsNormRows", () => {
  for (const [nRows, n] of [[1, 4096], [3, 37], [5, 130]] as const) {
    const x = randn(nRows * n, n, 3);
    const w = randn(n, n + 1);
    const want = new Float32Array(nRows * n);
    rmsNormRows(x, w, want, nRows, n, 1e-5);
    const mark = k.mark();
    const xp = k.put(x), wp = k.put(w), op = k.alloc(4 * nRows * n);
    k.rmsNorm(xp, wp, op, nRows, n, 1e-5);
    assert.deepEqual(k.f32(op, nRows * n), want, `${nRows}x${n}`);
    k.rmsNorm(xp, wp, xp, nRows, n, 1e-5); // in place
    assert.deepEqual(k.f32(xp, nRows * n), want, `${nRows}x${n} in place`);
    k.reset(mark);
  }
});

test("rope (adjacent pairs) is bit-exact with RopeTable; NeoX pairs match a direct rotation", () => {
  const nHeads = 5, headDim = 24, nTok = 3, rowStride = nHeads * headDim + 8;
  for (const nRot of [24, 16]) {
    const table = new RopeTable(nRot, 10000, 1, 64);
    const x = randn(nTok * rowStride, nRot);
    const positions = [0, 17, 63];
    const want = x.slice();
    for (let t = 0; t < nTok; t++) table.apply(want, t * rowStride, nHeads, headDim, positions[t]!);
    const mark = k.mark();
    const wt = k.ropeTable(nRot, 10000, 1, 64);
    const xp = k.put(x), pp = k.put(Int32Array.from(positions));
    k.rope(xp, nTok, rowStride, nHeads, headDim, pp, wt);
    assert.deepEqual(k.f32(xp, nTok * rowStride), want, `nRot=${nRot}`);

    // NeoX: pair (i, i + nRot/2) with the same angles
    k.f32(xp, nTok * rowStride).set(x);
    k.rope(xp, nTok, rowStride, nHeads, headDim, pp, wt, ROPE_NEOX);
    const neox = x.slice();
    const half = nRot / 2;
    const cos = k.f32(wt.cosPtr, 64 * half), sin = k.f32(wt.sinPtr, 64 * half);
    for (let t = 0; t < nTok; t++) {
      for (let h = 0; h < nHeads; h++) {
        const o = t * rowStride + h * headDim;
        for (let i = 0; i < half; i++) {
          const c = cos[positions[t]! * half + i]!, s = sin[positions[t]! * half + i]!;
          const x0 = x[o + i]!, x1 = x[o + i + half]!;
          neox[o + i] = x0 * c - x1 * s;
          neox[o + i + half] = x0 * s + x1 * c;
        }
      }
    }
    assert.deepEqual(k.f32(xp, nTok * rowStride), neox, `NeoX nRot=${nRot}`);
    assert.throws(() => k.rope(xp, 1, rowStride, nHeads, headDim, k.put(Int32Array.of(64)), wt), /position 64/);
    k.reset(mark);
  }
});

test("exp agrees with Math.exp", () => {
  const u = rng(3);
  let same = 0, total = 0;
  const special = [0, -0, 1e-300, -1e-20, 0.3, 0.5, 0.7, 1, -1, 2, 88.7, 709.7, 709.79, -745.1, -745.2, -800, 1000, Infinity, -Infinity];
  const xs = [...special, ...Array.from({ length: 20000 }, () => (u() - 0.5) * 2 * [1, 20, 100, 700][Math.floor(u() * 4)]!)];
  for (const x of xs) {
    const got = k.exports.expF64(x);
    const want = Math.exp(x);
    total++;
    if (Object.is(got, want)) same++;
    else assert.ok(Math.abs(got - want) <= 2.3e-16 * Math.abs(want), `exp(${x}): ${got} vs ${want}`);
  }
  assert.ok(Number.isNaN(k.exports.expF64(NaN)));
  assert.ok(same / total > 0.999, `only ${same}/${total} bit-identical`);
});

test("exp equals Math.exp bit for bit on float32 arguments (SwiGLU's)", () => {
  // V8 returns Math.E for exp(1), where fdlibm's reduction is one bit off; the kernel does too.
  // (Every one of the 2^32 float32 values was checked once; here a seeded sample and the edges.)
  const u = rng(11);
  const bits = new Uint32Array(1), f = new Float32Array(bits.buffer);
  const xs = [1, -1, 0.5, 2, 88.72283, -87.33655, -103.97208, 89, -104, Math.fround(Math.LN2), -Math.fround(Math.LN2)];
  for (let i = 0; i < 200000; i++) {
    bits[0] = (u() * 2 ** 32) >>> 0;
    xs.push(f[0]!);
  }
  for (let i = 0; i < 200000; i++) xs.push(Math.fround((u() - 0.5) * 40));
  for (const x of xs) {
    const got = k.exports.expF64(x), want = Math.exp(x);
    if (!Object.is(got, want) && !(Number.isNaN(got) && Number.isNaN(want))) assert.fail(`exp(${x}): ${got} vs Math.exp ${want}`);
  }
});

test("swiglu and softmax match the reference", () => {
  for (const n of [1, 7, 14336]) {
    const g = randn(n, n, 4), up = randn(n, n + 5);
    g[0] = -1; // exp(1)
    const want = g.slice();
    swiglu(want, up, n);
    const mark = k.mark();
    const gp = k.put(g), upp = k.put(up);
    k.swiglu(gp, upp, n);
    assert.deepEqual(k.f32(gp, n), want, `swiglu n=${n}`);

    const s = randn(n, n + 9, 10);
    const sw = s.slice();
    softmax(sw, 0, n);
    const sp = k.put(s);
    k.softmax(sp, n);
    assert.ok(maxRel(k.f32(sp, n), sw, 1e-30) <= 1.2e-7, `softmax n=${n}`);
    k.reset(mark);
  }
});

test("attention matches the reference: GQA, f32 and f16 caches, odd head sizes, head ranges", () => {
  for (const [nHead, nHeadKv, headDim] of [[8, 2, 64], [6, 3, 20], [4, 4, 128], [3, 1, 13]] as const) {
    for (const kv of ["f32", "f16"] as const) {
      const nCtx = 40, kvRow = nHeadKv * headDim;
      const positions = [5, 6, 39];
      const nTok = positions.length;
      const q = randn(nTok * nHead * headDim, headDim + nHead);
      const kf = randn(nCtx * kvRow, 11), vf = randn(nCtx * kvRow, 12);
      const K = kv === "f32" ? kf : Uint16Array.from(kf, (v) => f32ToF16(v));
      const V = kv === "f32" ? vf : Uint16Array.from(vf, (v) => f32ToF16(v));
      const want = new Float32Array(nTok * nHead * headDim);
      attention(q, nTok, positions, K, V, { nHead, nHeadKv, headDim }, want);

      const mark = k.mark();
      const qp = k.put(q), pp = k.put(Int32Array.from(positions)), kp = k.put(K), vp = k.put(V);
      const op = k.alloc(4 * want.length);
      k.attention(qp, nTok, pp, kp, vp, kv, { nHead, nHeadKv, headDim }, op);
      const label = `${nHead}/${nHeadKv} heads of ${headDim}, ${kv}`;
      assert.ok(maxRel(k.f32(op, want.length), want, 1e-3) <= 2e-6, `${label}: rel ${maxRel(k.f32(op, want.length), want, 1e-3)}`);

      // the same in two head ranges with caller-provided scratch (as two threads would)
      const op2 = k.alloc(4 * want.length);
      const scratch = k.alloc(k.attentionScratchBytes(headDim, 39), 16);
      const mid = Math.floor(nHead / 2);
      k.attention(qp, nTok, pp, kp, vp, kv, { nHead, nHeadKv, headDim }, op2, scratch, 0, mid);
      k.attention(qp, nTok, pp, kp, vp, kv, { nHead, nHeadKv, headDim }, op2, scratch, mid, nHead);
      assert.deepEqual(k.f32(op2, want.length), k.f32(op, want.length), `${label}: split by heads`);

      // scratch 0: the instance's own region (what a pool broadcasting one argument list uses)
      const kvF16 = kv === "f16" ? 1 : 0;
      k.f32(op2, want.length).fill(0);
      k.exports.setScratch(0, 0);
      assert.equal(k.exports.attention(qp, nTok, pp, kp, vp, kvF16, nHead, nHeadKv, headDim, op2, 0, 0, nHead), -1);
      k.exports.setScratch(scratch, k.attentionScratchBytes(headDim, 38));
      assert.equal(k.exports.attention(qp, nTok, pp, kp, vp, kvF16, nHead, nHeadKv, headDim, op2, 0, 0, nHead), -1, "too small");
      k.exports.setScratch(scratch, k.attentionScratchBytes(headDim, 39));
      assert.equal(k.exports.attention(qp, nTok, pp, kp, vp, kvF16, nHead, nHeadKv, headDim, op2, 0, 0, nHead), 0);
      assert.deepEqual(k.f32(op2, want.length), k.f32(op, want.length), `${label}: own scratch`);
      k.exports.setScratch(0, 0);
      k.reset(mark);
    }
  }
});

test("allocator: alignment, free-list reuse, mark/reset, growth", () => {
  const m = k.mark();
  const a = k.alloc(100);
  const b = k.alloc(10, 256);
  assert.equal(a % 64, 0);
  assert.equal(b % 256, 0);
  k.free(a);
  const c = k.alloc(50);
  assert.equal(c, a, "a freed block is reused");
  assert.throws(() => k.free(a + 1), /not a live allocation/);
  const before = k.memory.buffer.byteLength;
  const big = k.alloc(before + 3 * 65536);
  assert.ok(k.memory.buffer.byteLength >= big + before + 3 * 65536);
  k.u8(big, 16).fill(7);
  k.free(big);
  k.free(b);
  k.free(c);
  assert.equal(k.mark(), m, "freeing everything returns to the mark");
  k.alloc(1000);
  k.reset(m);
  assert.equal(k.mark(), m);
});

test("several instances over one shared memory compute the same results", async () => {
  const module = await compileKernels();
  const memory = newKernelMemory(4);
  assert.ok(memory.buffer instanceof SharedArrayBuffer);
  const main = WasmKernels.fromModule(module, memory);
  const other = instantiateOn(memory, module);
  const n = 256, nRows = 3;
  const x = randn(nRows * n, 99), w = randn(n, 98);
  const xp = main.put(x), wp = main.put(w);
  const o1 = main.alloc(4 * n * nRows), o2 = main.alloc(4 * n * nRows);
  main.rmsNorm(xp, wp, o1, nRows, n, 1e-6);
  other.rmsNorm(xp, wp, o2, nRows, n, 1e-6);
  assert.deepEqual(main.f32(o2, n * nRows), main.f32(o1, n * nRows));
});
