// The importance-matrix quantizers (llama-quantize --imatrix) against ggml's own bytes: golden
// blocks in test/golden/quant-imatrix, made by scripts/make-imatrix-golden.py with ggml's
// quantize_<type>(..., quant_weights) on the reference quantizer input.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT, refPath } from "../test-util/paths.js";
import { GgmlType, typeName } from "./format.js";
import { canQuantizeWeights, FORMATS, quantizeWeights, usesImportance } from "./index.js";

const GOLDEN = join(REPO_ROOT, "test", "golden", "quant-imatrix");
const HAVE = existsSync(refPath("quant", "input.f32"));
const SKIP = HAVE ? false : "reference data absent (../shared/reference/quant)";
const ROWS = 8, N = 512;

const TYPES: [GgmlType, string][] = [
  [GgmlType.Q4_0, "q4_0"], [GgmlType.Q4_1, "q4_1"], [GgmlType.Q5_0, "q5_0"], [GgmlType.Q5_1, "q5_1"],
  [GgmlType.Q2_K, "q2_K"], [GgmlType.Q3_K, "q3_K"], [GgmlType.Q4_K, "q4_K"], [GgmlType.Q5_K, "q5_K"], [GgmlType.Q6_K, "q6_K"],
];

function f32(path: string): Float32Array {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

/** index, got and want of the first few differing bytes */
function firstDiffs(got: Uint8Array, want: Uint8Array): string {
  const out: string[] = [];
  for (let i = 0; i < want.length && out.length < 4; i++) if (got[i] !== want[i]) out.push(`[${i}] got ${got[i]} want ${want[i]}`);
  return out.join(", ");
}

test("importance-weighted quantizers write ggml's blocks byte for byte (two importance vectors)", { skip: SKIP }, () => {
  const x = f32(refPath("quant", "input.f32"));
  for (const imp of ["imp1", "imp2"]) {
    const importance = f32(join(GOLDEN, `${imp}.f32`));
    for (const [type, name] of TYPES) {
      assert.ok(usesImportance(type), typeName(type));
      const want = new Uint8Array(readFileSync(join(GOLDEN, `${name}.${imp}.bin`)));
      const got = quantizeWeights(type, x, ROWS, N, importance);
      assert.equal(got.length, want.length, name);
      assert.ok(Buffer.from(got).equals(Buffer.from(want)), `${name} with ${imp}: ${firstDiffs(got, want)}`);
    }
  }
});

test("importance: types that ignore it; a wrong length", { skip: SKIP }, () => {
  const x = f32(refPath("quant", "input.f32"));
  const a = f32(join(GOLDEN, "imp1.f32"));
  // F16 and Q8_0 ignore the importance (as ggml does); IQ4_NL too, for now: the reference quantizer writes them
  for (const type of [GgmlType.F16, GgmlType.Q8_0, GgmlType.IQ4_NL]) {
    assert.ok(!usesImportance(type) && canQuantizeWeights(type), typeName(type));
    assert.ok(Buffer.from(quantizeWeights(type, x, ROWS, N, a)).equals(Buffer.from(quantizeWeights(type, x, ROWS, N))), typeName(type));
  }
  // without importance, the weighted types write what the reference quantizer writes (ggml with quant_weights NULL)
  for (const [type] of TYPES) {
    const want = quantizeWeights(type, x, ROWS, N), got = new Uint8Array(want.length);
    FORMATS.get(type)!.quantizeImatrix!(x, 0, ROWS, N, got, 0);
    assert.ok(Buffer.from(got).equals(Buffer.from(want)), typeName(type));
  }
  assert.throws(() => quantizeWeights(GgmlType.Q4_K, x, ROWS, N, new Float32Array(N - 1)), /importance holds 511 values/);
});
