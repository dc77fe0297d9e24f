// The worker pool: rows claimed by the threads (protocol.ts) must cover every job exactly once,
// including jobs posted back to back while workers are still waking up or finishing the last one.

import assert from "node:assert/strict";
import { test } from "node:test";
import { GgmlType, rowBytes } from "../../quant/format.js";
import { gaussian, rng } from "../../quant/testing.js";
import { WasmKernels, compileKernels } from "../wasm/backend.js";
import { KernelPool } from "./pool.js";
import { claimSize } from "./protocol.js";

test("claims shrink to single units and cover the job", () => {
  for (const n of [2, 3, 4]) {
    for (const units of [1, 2, 7, 16, 33]) {
      let left = units, claims = 0;
      while (left > 0) { left -= Math.min(left, claimSize(left, n)); claims++; }
      assert.ok(claims <= units, `${units} units in ${claims} claims`);
    }
  }
});

test("pooled matmuls over 1..4 threads equal the single-thread result, job after job", async () => {
  const module = await compileKernels();
  const k = WasmKernels.fromModule(module);
  const u = rng(77), g = gaussian(u);
  const nIn = 256, type = GgmlType.Q4_0, rb = rowBytes(type, nIn);
  const shapes = [[37, 1], [200, 2], [1000, 5], [64, 8], [513, 3], [4, 1]] as const;
  const maxOut = 1000, maxTok = 8;
  const wp = k.alloc(rb * maxOut);
  const wb = k.u8(wp, rb * maxOut);
  for (let i = 0; i < wb.length; i++) wb[i] = (u() * 256) | 0;
  for (let r = 0; r < maxOut * (nIn / 32); r++) { wb[r * 18] = 0x1f; wb[r * 18 + 1] = 0x21; }
  const x = new Float32Array(maxTok * nIn).map(() => g());
  const xp = k.put(x);
  const arb = k.actRowBytes(GgmlType.Q8_0, nIn);
  const ap = k.alloc(arb * maxTok);
  k.quantizeRows(GgmlType.Q8_0, xp, maxTok, nIn, ap);
  const want = shapes.map(([nOut, nTok]) => {
    const op = k.alloc(4 * nOut * nTok);
    k.exports.matmul(type, wp, rb, nIn, 0, nOut, ap, arb, nTok, op, nOut);
    return k.f32(op, nOut * nTok).slice();
  });
  for (const threads of [1, 2, 3, 4]) {
    const pool = KernelPool.create(module, [k.memory], ["matmul"], threads);
    const outs = shapes.map(([nOut, nTok]) => k.alloc(4 * nOut * nTok));
    try {
      for (let rep = 0; rep < 60; rep++) {
        shapes.forEach(([nOut, nTok], i) => {
          k.f32(outs[i]!, nOut * nTok).fill(NaN);
          pool.parallel(0, "matmul", nOut, 4, 4, 5, [type, wp, rb, nIn, 0, 0, ap, arb, nTok, outs[i]!, nOut]);
          const got = k.f32(outs[i]!, nOut * nTok);
          for (let j = 0; j < got.length; j++) {
            if (!Object.is(got[j], want[i]![j])) assert.fail(`${threads} threads, job ${rep}/${i} (${nOut}x${nTok}), element ${j}: ${got[j]} vs ${want[i]![j]}`);
          }
        });
      }
    } finally {
      pool.close();
    }
  }
});
