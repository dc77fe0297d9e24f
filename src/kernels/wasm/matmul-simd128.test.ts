// The matmul tests of matmul.test.ts once more on the SIMD128 kernel build (kernels.wasm): the
// default build here is the relaxed-SIMD one (kernels-relaxed.wasm) wherever the engine validates
// it, and both must match the reference bit for bit. CMX_WASM_RELAXED is read when the kernels are
// first compiled, i.e. in the import below (each test file runs in a process of its own).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { test } from "node:test";

const before = process.env.CMX_WASM_RELAXED;
process.env.CMX_WASM_RELAXED = "0";
const { WASM_RELAXED_PATH, kernelsRelaxed } = await import("./backend.js");
await import("./matmul.test.js");

test("CMX_WASM_RELAXED=0 selects the SIMD128 build; the relaxed one is built next to it", () => {
  assert.equal(kernelsRelaxed(), false);
  assert.ok(existsSync(WASM_RELAXED_PATH), `${WASM_RELAXED_PATH} (npm run build:wasm)`);
  if (before !== undefined) process.env.CMX_WASM_RELAXED = before;
});
