// Seeded random checks that need no reference data: awkward row counts and lengths, unaligned
// offsets, K-quant blocks with random bits, and the activation quantizers' invariants.

import assert from "node:assert/strict";
import { test } from "node:test";
import { f32ToF16 } from "./f16.js";
import { GgmlType, typeName } from "./format.js";
import { byteSize, canQuantizeWeights, dequantize, FORMATS, isSupported, quantizeActivation, quantizeWeights, vecDot, vecDotType } from "./index.js";
import { gaussian, referenceDot, rng } from "./testing.js";

/** byte offsets of the f16 scale fields in one block (random bits there could be NaN/Inf) */
const F16_FIELDS: Partial<Record<GgmlType, number[]>> = {
  [GgmlType.Q4_0]: [0], [GgmlType.Q4_1]: [0, 2], [GgmlType.Q5_0]: [0], [GgmlType.Q5_1]: [0, 2],
  [GgmlType.Q8_0]: [0], [GgmlType.IQ4_NL]: [0], [GgmlType.Q2_K]: [80, 82], [GgmlType.Q3_K]: [108],
  [GgmlType.Q4_K]: [0, 2], [GgmlType.Q5_K]: [0, 2], [GgmlType.Q6_K]: [208],
  [GgmlType.IQ4_XS]: [0], [GgmlType.IQ3_XXS]: [0], [GgmlType.IQ3_S]: [0], [GgmlType.IQ2_XXS]: [0],
  [GgmlType.IQ2_XS]: [0], [GgmlType.IQ2_S]: [0], [GgmlType.IQ1_S]: [0],
};

const WEIGHT_TYPES = [...FORMATS.values()].filter((t) => isSupported(t.type)).map((t) => t.type);

/**
 * Random weights of `type`: x quantized by the reference quantizer, or (randomBits, or a type
 * nothing here writes) random block bits with finite f16 scales, which reach codes and scales a
 * quantizer rarely writes.
 */
function randomWeights(type: GgmlType, nRows: number, n: number, x: Float32Array, u: () => number, randomBits: boolean): Uint8Array {
  if ((!randomBits && canQuantizeWeights(type)) || type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16) {
    return quantizeWeights(type, x, nRows, n);
  }
  const { blockSize, typeSize } = FORMATS.get(type)!;
  const out = new Uint8Array(byteSize(type, nRows * n));
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(u() * 256);
  for (let b = 0; b < (nRows * n) / blockSize; b++) {
    for (const o of F16_FIELDS[type] ?? []) {
      const h = f32ToF16((u() - 0.3) * 0.05);
      out[b * typeSize + o] = h & 0xff;
      out[b * typeSize + o + 1] = h >>> 8;
    }
  }
  return out;
}

/** a copy of src placed at byte `shift` of a larger buffer */
function shifted(src: Uint8Array, shift: number): Uint8Array {
  const big = new Uint8Array(src.length + shift + 7);
  big.set(src, shift);
  return big.subarray(shift, shift + src.length);
}

test("vecDot on random rows of awkward lengths, at unaligned offsets", () => {
  const u = rng(20240611);
  const g = gaussian(u);
  for (const type of WEIGHT_TYPES) {
    const bs = FORMATS.get(type)!.blockSize;
    const unit = bs === 1 ? 1 : bs;
    for (const [nRows, k, bits] of [[1, 1, false], [3, 3, true], [7, 5, false], [5, bs === 256 ? 2 : 9, true]] as const) {
      const n = unit * k * (bs === 1 ? 37 : 1); // F32/F16/BF16: odd lengths like 37, 111, 185
      const scale = [1, 0.02, 100][Math.floor(u() * 3)]!;
      const x = new Float32Array(nRows * n).map(() => g() * scale);
      const shift = Math.floor(u() * 4);
      const w = shifted(randomWeights(type, nRows, n, x, u, bits), shift);
      const deq = new Float32Array(nRows * n);
      dequantize(type, w, 0, deq, 0, nRows * n);
      const rowBytes = byteSize(type, n);
      const dt = vecDotType(type);
      for (let s = 0; s < 2; s++) {
        const xa = new Float32Array(n).map(() => g() * (s === 0 ? 1 : 1e-3));
        if (n >= 64) xa.fill(0, 0, 32); // a zero activation block
        const act = shifted(quantizeActivation(dt, xa, 0, n), 1 + s);
        const aDeq = new Float32Array(n);
        dequantize(dt, act, 0, aDeq, 0, n);
        for (let r = 0; r < nRows; r++) {
          const wRow = w.subarray(r * rowBytes, (r + 1) * rowBytes);
          const got = vecDot(type, n, w, r * rowBytes, act, 0);
          const [want, mag] = referenceDot(type, wRow, deq.subarray(r * n, (r + 1) * n), act, aDeq);
          assert.ok(Number.isFinite(got), `${typeName(type)}: not finite`);
          assert.ok(Math.abs(got - want) <= 1e-5 * mag + 1e-30, `${typeName(type)} n=${n} row ${r}: got ${got}, want ${want}`);
          // the same row handed over as its own array gives the same answer
          assert.equal(vecDot(type, n, wRow, 0, act, 0), got);
        }
      }
    }
  }
});

test("reference weight quantizers round-trip within their step size", () => {
  const u = rng(7);
  const g = gaussian(u);
  const steps: [GgmlType, number][] = [
    [GgmlType.Q4_0, 1 / 7], [GgmlType.Q4_1, 1 / 7], [GgmlType.Q5_0, 1 / 15], [GgmlType.Q5_1, 1 / 15],
    [GgmlType.Q8_0, 1 / 120], [GgmlType.F16, 1e-3], [GgmlType.BF16, 8e-3],
  ];
  for (const [type, step] of steps) {
    const nRows = 3;
    const n = 32 * 7;
    const x = new Float32Array(nRows * n).map(() => g() * 3);
    x.fill(0, 32, 64); // an all-zero block
    x.fill(0.25, 64, 96); // a constant block
    const q = quantizeWeights(type, x, nRows, n);
    assert.equal(q.length, byteSize(type, nRows * n));
    const back = new Float32Array(nRows * n);
    dequantize(type, q, 0, back, 0, nRows * n);
    for (let b = 0; b < (nRows * n) / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        assert.ok(Math.abs(back[i]! - x[i]!) <= amax * step + 1e-7, `${typeName(type)} [${i}]: ${x[i]} -> ${back[i]}`);
      }
    }
    for (let i = 32; i < 64; i++) assert.equal(Math.abs(back[i]!), 0, `${typeName(type)} zero block`); // -0 for Q4_0/Q5_0, as in ggml
  }
});

test("K-quant and IQ4_NL quantizers: error in the expected range, zero blocks stay zero", () => {
  const g = gaussian(rng(11));
  // relative RMS error on N(0, 9) data (measured: 0.29, 0.15, 0.073, 0.037, 0.018, 0.075)
  const bounds: [GgmlType, number][] = [
    [GgmlType.Q2_K, 0.32], [GgmlType.Q3_K, 0.17], [GgmlType.Q4_K, 0.08], [GgmlType.Q5_K, 0.042],
    [GgmlType.Q6_K, 0.021], [GgmlType.IQ4_NL, 0.083],
  ];
  for (const [type, bound] of bounds) {
    const nRows = 3;
    const n = 256 * 3;
    const x = new Float32Array(nRows * n).map(() => g() * 3);
    x.fill(0, n, n + 256); // row 1, first super-block: all zero
    x.fill(0, 2 * n + 16, 2 * n + 48); // row 2: a zero stretch inside a block
    const q = quantizeWeights(type, x, nRows, n);
    assert.equal(q.length, byteSize(type, nRows * n));
    const back = new Float32Array(nRows * n);
    dequantize(type, q, 0, back, 0, nRows * n);
    let se = 0;
    let sx = 0;
    for (let i = 0; i < x.length; i++) {
      se += (back[i]! - x[i]!) ** 2;
      sx += x[i]! ** 2;
    }
    const rel = Math.sqrt(se / sx);
    assert.ok(rel > bound / 3 && rel <= bound, `${typeName(type)}: relative RMS error ${rel}`);
    for (let i = n; i < n + 256; i++) assert.equal(Math.abs(back[i]!), 0, `${typeName(type)} zero block [${i}]`);
    assert.ok(back.every(Number.isFinite));
  }
});

test("activation quantizers keep their invariants", () => {
  const u = rng(99);
  const g = gaussian(u);
  const n = 256 * 3;
  const x = new Float32Array(n).map(() => g());
  x.fill(0, 256, 512); // an all-zero Q8_K block
  x[700] = -40; // a negative outlier sets the Q8_K scale sign
  const f16 = new Float32Array(1);
  const half = (b: Uint8Array, o: number): number => (dequantize(GgmlType.F16, b, o, f16, 0, 1), f16[0]!);

  const k = quantizeActivation(GgmlType.Q8_K, x, 0, n);
  const kv = new DataView(k.buffer, k.byteOffset, k.byteLength);
  for (let b = 0; b < 3; b++) {
    const o = b * 292;
    for (let grp = 0; grp < 16; grp++) {
      let s = 0;
      for (let j = 0; j < 16; j++) s += kv.getInt8(o + 4 + grp * 16 + j);
      assert.equal(kv.getInt16(o + 260 + 2 * grp, true), s, `bsums block ${b} group ${grp}`);
    }
  }
  assert.equal(kv.getFloat32(292, true), 0);
  assert.equal(kv.getInt8(2 * 292 + 4 + (700 - 512)), -127);
  assert.ok(kv.getFloat32(2 * 292, true) > 0);

  const q1 = quantizeActivation(GgmlType.Q8_1, x, 0, n);
  const i8 = new Int8Array(q1.buffer, q1.byteOffset, q1.byteLength);
  for (let b = 0; b < n / 32; b++) {
    let s = 0;
    for (let j = 0; j < 32; j++) s += i8[b * 36 + 4 + j]!;
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
    const d = Math.fround(amax / 127);
    assert.equal(half(q1, b * 36), half(new Uint8Array([f32ToF16(d) & 0xff, f32ToF16(d) >>> 8]), 0));
    assert.equal(half(q1, b * 36 + 2), half(new Uint8Array([f32ToF16(d * s) & 0xff, f32ToF16(d * s) >>> 8]), 0));
  }

  // Q8_0 and Q8_1 share their quants; round-half-even on exact ties (127/amax * x = k + 0.5)
  const q0 = quantizeActivation(GgmlType.Q8_0, x, 0, n);
  for (let b = 0; b < n / 32; b++) assert.deepEqual(q0.subarray(b * 34 + 2, b * 34 + 34), q1.subarray(b * 36 + 4, b * 36 + 36));
  const ties = new Float32Array(32);
  ties[0] = 127;
  ties[1] = 0.5;
  ties[2] = 1.5;
  ties[3] = -2.5;
  const t0 = new Int8Array(quantizeActivation(GgmlType.Q8_0, ties, 0, 32).buffer);
  assert.deepEqual([...t0.subarray(2, 6)], [127, 0, 2, -2]);
  // the weight quantizer rounds half away from zero instead
  const tw = new Int8Array(quantizeWeights(GgmlType.Q8_0, ties, 1, 32).buffer);
  assert.deepEqual([...tw.subarray(2, 6)], [127, 1, 2, -3]);
});
