// Every ggml type against llama.cpp's own bytes (../shared/reference/quant, see quant_vectors.json):
// dequantization, activation quantization and weight quantization bit-exact, dot products close
// to a float64 dot of the dequantized operands. Skips when the reference folder is absent.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { refPath } from "../test-util/paths.js";
import { blockFormat, GgmlType, typeName } from "./format.js";
import { referenceDot } from "./testing.js";
import { byteSize, canQuantizeWeights, dequantize, FORMATS, isSupported, quantizeActivation, quantizeWeights, vecDot, vecDotType } from "./index.js";

const HAVE = existsSync(refPath("quant", "quant_vectors.json"));
const SKIP = HAVE ? false : "reference data absent (../shared/reference/quant)";

const ROWS = 8;
const N = 512;

function bytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(refPath("quant", name)));
}

function floats(name: string): Float32Array {
  const b = bytes(name);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}

/** reference file prefix of each weight type */
const WEIGHT_FILES: [GgmlType, string][] = [
  [GgmlType.F16, "f16"], [GgmlType.BF16, "bf16"], [GgmlType.Q4_0, "q4_0"], [GgmlType.Q4_1, "q4_1"],
  [GgmlType.Q5_0, "q5_0"], [GgmlType.Q5_1, "q5_1"], [GgmlType.Q8_0, "q8_0"], [GgmlType.Q2_K, "q2_K"],
  [GgmlType.Q3_K, "q3_K"], [GgmlType.Q4_K, "q4_K"], [GgmlType.Q5_K, "q5_K"], [GgmlType.Q6_K, "q6_K"],
  [GgmlType.IQ4_NL, "iq4_nl"],
];

const ACT_FILES: [GgmlType, string][] = [
  [GgmlType.Q8_0, "q8_0"], [GgmlType.Q8_1, "q8_1"], [GgmlType.Q8_K, "q8_K"], [GgmlType.F16, "f16"],
];

test("block sizes agree with format.ts", () => {
  for (const t of FORMATS.values()) {
    const f = blockFormat(t.type)!;
    assert.equal(t.blockSize, f.blockSize, typeName(t.type));
    assert.equal(t.typeSize, f.typeSize, typeName(t.type));
  }
  for (const [type] of WEIGHT_FILES) assert.ok(isSupported(type), typeName(type));
  assert.ok(isSupported(GgmlType.F32));
  assert.ok(!isSupported(GgmlType.Q8_K) && !isSupported(GgmlType.IQ1_M));
  assert.equal(vecDotType(GgmlType.Q4_0), GgmlType.Q8_0);
  assert.equal(vecDotType(GgmlType.IQ4_NL), GgmlType.Q8_0);
  assert.equal(vecDotType(GgmlType.Q5_1), GgmlType.Q8_1);
  assert.equal(vecDotType(GgmlType.Q3_K), GgmlType.Q8_K);
  assert.equal(vecDotType(GgmlType.F16), GgmlType.F16);
  assert.equal(vecDotType(GgmlType.F32), GgmlType.F32);
  assert.throws(() => dequantize(GgmlType.IQ1_M, new Uint8Array(56), 0, new Float32Array(256), 0, 256), /IQ1_M/);
  assert.throws(() => dequantize(GgmlType.Q4_0, new Uint8Array(18), 0, new Float32Array(32), 0, 31), RangeError);
});

test("dequantize matches ggml to_float bit for bit", { skip: SKIP }, () => {
  for (const [type, name] of WEIGHT_FILES) {
    const w = bytes(`${name}.weights.bin`);
    const want = floats(`${name}.weights.dequant.f32`);
    assert.equal(w.length, byteSize(type, ROWS * N), name);
    const got = new Float32Array(ROWS * N);
    dequantize(type, w, 0, got, 0, ROWS * N);
    assert.deepEqual(got, want, name);
    // row by row from an offset gives the same values
    const row = new Float32Array(N + 3);
    const rowBytes = byteSize(type, N);
    for (let r = 0; r < ROWS; r++) {
      dequantize(type, w, r * rowBytes, row, 3, N);
      assert.deepEqual(row.subarray(3), want.subarray(r * N, (r + 1) * N), `${name} row ${r}`);
    }
  }
});

test("quantizeActivation matches ggml-cpu from_float bit for bit", { skip: SKIP }, () => {
  const x = floats("input.f32");
  for (const [type, name] of ACT_FILES) {
    const want = bytes(`${name}.act.bin`);
    const rowBytes = byteSize(type, N);
    assert.equal(want.length, ROWS * rowBytes, name);
    for (let r = 0; r < ROWS; r++) {
      const got = quantizeActivation(type, x, r * N, N);
      assert.deepEqual(got, want.subarray(r * rowBytes, (r + 1) * rowBytes), `${name} row ${r}`);
      // into a caller buffer at an odd byte offset
      const big = new Uint8Array(rowBytes + 5).fill(0xee);
      quantizeActivation(type, x, r * N, N, big.subarray(1, 1 + rowBytes));
      assert.deepEqual(big.subarray(1, 1 + rowBytes), got, `${name} row ${r} (out)`);
      assert.equal(big[0], 0xee);
      assert.equal(big[rowBytes + 1], 0xee);
    }
  }
  // the dequantized activations llama.cpp wrote agree too
  for (const [type, name] of [[GgmlType.Q8_0, "q8_0"], [GgmlType.F16, "f16"]] as const) {
    const got = new Float32Array(ROWS * N);
    dequantize(type, bytes(`${name}.act.bin`), 0, got, 0, ROWS * N);
    assert.deepEqual(got, floats(`${name}.act.dequant.f32`), name);
  }
});

test("quantizeWeights matches llama-quantize bit for bit", { skip: SKIP }, () => {
  const x = floats("input.f32");
  for (const [type, name] of WEIGHT_FILES) {
    assert.ok(canQuantizeWeights(type), name);
    const got = quantizeWeights(type, x, ROWS, N);
    assert.deepEqual(got, bytes(`${name}.weights.bin`), name);
  }
  // F32 "quantization" is the float32 bytes
  const f32 = quantizeWeights(GgmlType.F32, x, ROWS, N);
  assert.deepEqual(new Float32Array(f32.buffer), x);
});

test("vecDot agrees with a float64 dot of the dequantized operands", { skip: SKIP }, () => {
  const x = floats("input.f32");
  const cases: [GgmlType, string][] = [...WEIGHT_FILES, [GgmlType.F32, "input"]];
  for (const [type, name] of cases) {
    const w = type === GgmlType.F32 ? bytes("input.f32") : bytes(`${name}.weights.bin`);
    const wDeq = type === GgmlType.F32 ? x : floats(`${name}.weights.dequant.f32`);
    const dt = vecDotType(type);
    const rowBytes = byteSize(type, N);
    let worst = 0;
    for (let s = 0; s < ROWS; s++) {
      const act = quantizeActivation(dt, x, s * N, N);
      const aDeq = new Float32Array(N);
      dequantize(dt, act, 0, aDeq, 0, N);
      for (let r = 0; r < ROWS; r++) {
        const got = vecDot(type, N, w, r * rowBytes, act, 0);
        const [want, mag] = referenceDot(type, w.subarray(r * rowBytes, (r + 1) * rowBytes), wDeq.subarray(r * N, (r + 1) * N), act, aDeq);
        const err = Math.abs(got - want) / Math.max(mag, 1e-300);
        worst = Math.max(worst, err);
        assert.ok(err <= 1e-5, `${name} w${r}·x${s}: got ${got}, want ${want} (|Δ|/Σ|wa| = ${err})`);
        if (Math.abs(want) > 0.05 * mag) assert.ok(Math.abs(got - want) <= 1e-5 * Math.abs(want), `${name} w${r}·x${s}: relative`);
      }
    }
    assert.ok(Number.isFinite(worst));
  }
});
