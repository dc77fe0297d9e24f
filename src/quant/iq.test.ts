// The IQ types (IQ4_XS, IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S) against ggml's own C code
// (test/golden/iq, made by scripts/make-iq-golden.sh): dequantization and the weight quantizers bit
// for bit; dot products against a float64 dot of the dequantized operands; hand-made blocks; and
// the quantizers' error on Gaussian data and on llama.cpp's quantizer test input.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { REPO_ROOT, refPath } from "../test-util/paths.js";
import { f32ToF16 } from "./f16.js";
import { GgmlType, blockFormat, typeName } from "./format.js";
import { byteSize, canQuantizeWeights, dequantize, FORMATS, isSupported, quantizeActivation, quantizeWeights, usesImportance, vecDot, vecDotType } from "./index.js";
import { IQ1S_GRID, IQ2XXS_GRID, IQ3S_GRID, KSIGNS_IQ2XS } from "./iq-grids.js";
import { gaussian, referenceDot, rng } from "./testing.js";

const GOLDEN = join(REPO_ROOT, "test", "golden", "iq");
const INPUT = refPath("quant", "input.f32");
const SKIP_INPUT = existsSync(INPUT) ? false : "reference data absent (../shared/reference/quant)";

const IQ_TYPES: [GgmlType, string, number][] = [
  [GgmlType.IQ4_XS, "iq4_xs", 136], [GgmlType.IQ3_XXS, "iq3_xxs", 98], [GgmlType.IQ3_S, "iq3_s", 110],
  [GgmlType.IQ2_XS, "iq2_xs", 74], [GgmlType.IQ2_XXS, "iq2_xxs", 66], [GgmlType.IQ2_S, "iq2_s", 82],
  [GgmlType.IQ1_S, "iq1_s", 50],
];
/** the types written here; the IQ2 ones only with an importance row in llama.cpp */
const WRITTEN: [GgmlType, string, boolean][] = [
  [GgmlType.IQ4_XS, "iq4_xs", false], [GgmlType.IQ3_XXS, "iq3_xxs", false], [GgmlType.IQ3_S, "iq3_s", false],
  [GgmlType.IQ2_XS, "iq2_xs", true], [GgmlType.IQ2_XXS, "iq2_xxs", true],
];

function bytes(path: string): Uint8Array {
  return new Uint8Array(readFileSync(path));
}
function floats(path: string): Float32Array {
  const b = bytes(path);
  return new Float32Array(b.buffer, b.byteOffset, b.length / 4);
}
function golden(name: string): Uint8Array {
  return bytes(join(GOLDEN, name));
}

/** relative RMS error of dequantize(quantize(x)) */
function relRmse(type: GgmlType, x: Float32Array, nRows: number, n: number, importance?: Float32Array): number {
  const q = quantizeWeights(type, x, nRows, n, importance);
  const back = new Float32Array(nRows * n);
  dequantize(type, q, 0, back, 0, nRows * n);
  let se = 0, sx = 0;
  for (let i = 0; i < nRows * n; i++) {
    se += (back[i]! - x[i]!) ** 2;
    sx += x[i]! ** 2;
  }
  return Math.sqrt(se / sx);
}

test("IQ block layouts: sizes, activation type, what can be written", () => {
  for (const [type, name, size] of IQ_TYPES) {
    const t = FORMATS.get(type)!;
    assert.equal(t.blockSize, 256, name);
    assert.equal(t.typeSize, size, name);
    assert.equal(blockFormat(type)!.typeSize, size, name);
    assert.ok(isSupported(type), name);
    assert.equal(vecDotType(type), GgmlType.Q8_K, name);
  }
  for (const [type, name] of WRITTEN) {
    assert.ok(canQuantizeWeights(type), name);
    assert.ok(usesImportance(type), name);
  }
  assert.ok(!canQuantizeWeights(GgmlType.IQ2_S) && !canQuantizeWeights(GgmlType.IQ1_S));
  assert.ok(!usesImportance(GgmlType.Q8_0) && !usesImportance(GgmlType.F16)); // ggml ignores it for these (the K-quants use it)
  // the sign table: 7 stored bits, the eighth gives an even count of minus signs
  assert.deepEqual([...KSIGNS_IQ2XS.subarray(0, 8)], [0, 129, 130, 3, 132, 5, 6, 135]);
  assert.equal(KSIGNS_IQ2XS[127], 255);
  // first and last grid points as ggml-common.h writes them
  assert.deepEqual([...IQ2XXS_GRID.subarray(0, 8)], [8, 8, 8, 8, 8, 8, 8, 8]);
  assert.deepEqual([...IQ3S_GRID.subarray(IQ3S_GRID.length - 4)], [1, 1, 15, 15]);
  assert.deepEqual([...IQ1S_GRID.subarray(0, 8)], [-1, -1, -1, -1, -1, -1, -1, -1]);
});

test("dequantize hand-made IQ blocks", () => {
  const half = (v: number, b: Uint8Array, o: number): void => {
    const h = f32ToF16(v);
    b[o] = h & 0xff;
    b[o + 1] = h >> 8;
  };
  // IQ4_XS: d = 0.5, sub-block 0 scale 33 (-> +1), sub-block 1 scale 30 (-> -2); nibbles 0 and 15
  const x4 = new Uint8Array(136);
  half(0.5, x4, 0);
  x4[2] = 0b0110; // scales_h: sub-block 0 high bits 2 (33 = 0b100001), sub-block 1 high bits 1 (30 = 0b011110)
  x4[4] = 1 | (14 << 4); // scales_l
  x4[8] = 0xf0; // element 0: KVALUES[0] = -127; element 16: KVALUES[15] = 113
  x4[8 + 16] = 0x0f; // sub-block 1, element 32: KVALUES[15]; element 48: KVALUES[0]
  const y4 = new Float32Array(256);
  dequantize(GgmlType.IQ4_XS, x4, 0, y4, 0, 256);
  assert.deepEqual([y4[0], y4[16], y4[32], y4[48], y4[1]], [0.5 * -127, 0.5 * 113, -1 * 113, -1 * -127, 0.5 * -127]);
  // IQ2_XXS: d = 1, sub-block 0 scale 3 -> (0.5 + 3)/4 = 0.875; group 0 grid point 0 (all 8),
  // sign index 1 -> elements 0 and 7 negative
  const x2 = new Uint8Array(66);
  half(1, x2, 0);
  x2[2 + 4] = 1; // signs of group 0 = 1
  x2[2 + 7] = 3 << 4; // scale in bits 28..31 of the second word
  const y2 = new Float32Array(256);
  dequantize(GgmlType.IQ2_XXS, x2, 0, y2, 0, 256);
  assert.deepEqual([...y2.subarray(0, 8)], [-7, 7, 7, 7, 7, 7, 7, -7]);
  assert.deepEqual([...y2.subarray(8, 9)], [7]); // group 1: grid point 0, no signs
  // IQ1_S: d = 2, sub-block 0: scale 1 (-> 3), negative shift; group 0 = grid point 0 (all -1)
  const x1 = new Uint8Array(50);
  half(2, x1, 0);
  x1[34] = 0;
  x1[35] = 0x80 | (1 << 4); // qh[0]: bit 15 set, scale bits 12..14 = 1
  const y1 = new Float32Array(256);
  dequantize(GgmlType.IQ1_S, x1, 0, y1, 0, 256);
  assert.equal(y1[0], 6 * (-1 - 0.125));
});

test("dequantize matches ggml on random IQ blocks, bit for bit", () => {
  for (const [type, name] of IQ_TYPES) {
    const src = golden(`${name}.random.bin`);
    const want = floats(join(GOLDEN, `${name}.random.dequant.f32`));
    const got = new Float32Array(1024);
    dequantize(type, src, 0, got, 0, 1024);
    assert.deepEqual(got, want, name);
    // one super-block at an odd offset
    const big = new Uint8Array(src.length + 3);
    big.set(src, 3);
    const one = new Float32Array(256 + 5);
    const bs = FORMATS.get(type)!.typeSize;
    dequantize(type, big, 3 + 2 * bs, one, 5, 256);
    assert.deepEqual(one.subarray(5), want.subarray(512, 768), `${name} block 2`);
  }
});

test("IQ quantizers match ggml's bit for bit, with and without an importance row", { skip: SKIP_INPUT }, () => {
  const x = floats(INPUT);
  const qw = floats(join(GOLDEN, "importance.f32"));
  for (const [type, name, imatrixOnly] of WRITTEN) {
    if (!imatrixOnly) assert.deepEqual(quantizeWeights(type, x, 8, 512), golden(`${name}.weights.bin`), name);
    assert.deepEqual(quantizeWeights(type, x, 8, 512, qw), golden(`${name}.imatrix.weights.bin`), `${name} with importance`);
  }
  assert.throws(() => quantizeWeights(GgmlType.IQ4_XS, x, 8, 512, qw.subarray(1)), /one per column/);
  assert.throws(() => quantizeWeights(GgmlType.IQ2_S, x, 8, 512), /IQ2_S is not implemented/);
});

test("vecDot of IQ weights equals a float64 dot of the dequantized operands", () => {
  const u = rng(4242);
  const g = gaussian(u);
  const n = 1024;
  for (const [type, name] of IQ_TYPES) {
    const w = golden(`${name}.random.bin`);
    const wDeq = new Float32Array(n);
    dequantize(type, w, 0, wDeq, 0, n);
    for (let s = 0; s < 4; s++) {
      const x = new Float32Array(n).map(() => g() * (s === 3 ? 1e-3 : 1));
      if (s === 1) x.fill(0, 256, 512); // an all-zero Q8_K block
      if (s === 2) x[700] = 50; // an outlier
      const act = quantizeActivation(GgmlType.Q8_K, x, 0, n);
      const aDeq = new Float32Array(n);
      dequantize(GgmlType.Q8_K, act, 0, aDeq, 0, n);
      const got = vecDot(type, n, w, 0, act, 0);
      const [want, mag] = referenceDot(type, w, wDeq, act, aDeq);
      assert.ok(Math.abs(got - want) <= 1e-6 * mag, `${name} s=${s}: got ${got}, want ${want} (Σ|wa| ${mag})`);
      // per super-block, at unaligned offsets
      const wb = new Uint8Array(w.length + 1);
      wb.set(w, 1);
      const ab = new Uint8Array(act.length + 3);
      ab.set(act, 3);
      let parts = 0;
      for (let b = 0; b < 4; b++) parts += vecDot(type, 256, wb, 1 + b * byteSize(type, 256), ab, 3 + b * 292);
      assert.ok(Math.abs(parts - got) <= 1e-6 * mag, `${name}: blockwise ${parts} vs ${got}`);
    }
  }
});

test("IQ quantizers: error in the expected range, zero blocks stay finite", () => {
  const g = gaussian(rng(5));
  const n = 1024, nRows = 8;
  const x = new Float32Array(nRows * n).map(() => g());
  // relative RMS error on N(0, 1) (measured: without importance 0.076, 0.215, 0.165, 0.368, 0.416;
  // with importance 1 (weights sqrt(sigma2 + x²)) 0.075, 0.183, 0.137, 0.299, 0.343)
  const bounds: [GgmlType, number, number][] = [
    [GgmlType.IQ4_XS, 0.08, 0.078], [GgmlType.IQ3_XXS, 0.225, 0.19], [GgmlType.IQ3_S, 0.175, 0.145],
    [GgmlType.IQ2_XS, 0.38, 0.31], [GgmlType.IQ2_XXS, 0.43, 0.355],
  ];
  const ones = new Float32Array(n).fill(1);
  for (const [type, plain, withOnes] of bounds) {
    const e0 = relRmse(type, x, nRows, n);
    const e1 = relRmse(type, x, nRows, n, ones);
    assert.ok(e0 > plain * 0.85 && e0 <= plain, `${typeName(type)}: relative RMS error ${e0}`);
    assert.ok(e1 > withOnes * 0.85 && e1 <= withOnes, `${typeName(type)} (importance 1): relative RMS error ${e1}`);
    // a zero super-block and a block of tiny values
    const z = new Float32Array(2 * 256).map(() => g());
    z.fill(0, 0, 256);
    for (let i = 256; i < 512; i++) z[i] = z[i]! * 1e-20;
    const q = quantizeWeights(type, z, 1, 512);
    const back = new Float32Array(512);
    dequantize(type, q, 0, back, 0, 512);
    assert.ok(back.every(Number.isFinite), typeName(type));
    for (let i = 0; i < 256; i++) assert.ok(Math.abs(back[i]!) === 0, `${typeName(type)} zero block [${i}]: ${back[i]}`);
  }
});

test("an importance row moves the error to the columns that matter less", () => {
  const g = gaussian(rng(77));
  const n = 512, nRows = 16;
  const x = new Float32Array(nRows * n).map(() => g());
  // the even columns are 100x more important than the odd ones
  const qw = new Float32Array(n).map((_, j) => (j % 2 ? 0.01 : 1));
  // measured ratios (with / without): IQ4_XS 0.861 (only the block scales can move), IQ3_XXS 0.318,
  // IQ3_S 0.338, IQ2_XS 0.368, IQ2_XXS 0.360
  const bounds: [GgmlType, number][] = [
    [GgmlType.IQ4_XS, 0.9], [GgmlType.IQ3_XXS, 0.4], [GgmlType.IQ3_S, 0.4], [GgmlType.IQ2_XS, 0.45], [GgmlType.IQ2_XXS, 0.45],
  ];
  for (const [type, bound] of bounds) {
    const weighted = (importance?: Float32Array): number => {
      const q = quantizeWeights(type, x, nRows, n, importance);
      const back = new Float32Array(nRows * n);
      dequantize(type, q, 0, back, 0, nRows * n);
      let e = 0;
      for (let i = 0; i < nRows * n; i++) e += qw[i % n]! * (back[i]! - x[i]!) ** 2;
      return e;
    };
    const plain = weighted(undefined), informed = weighted(qw);
    assert.ok(informed < bound * plain, `${typeName(type)}: importance-weighted error ${informed} vs ${plain} without`);
  }
});

test("IQ4_XS reconstructs llama.cpp's quantizer input about as well as IQ4_NL", { skip: SKIP_INPUT }, () => {
  // input.f32 rows: N(0,1), N(0,0.02), N(0,100), outliers, zero/constant/tiny blocks, U(0,1),
  // -U(0.5,2), a coarse grid (quant_vectors.json). Measured relative RMS error per row:
  //   IQ4_NL 0.0730 0.0755 0.0757 0.1288 0.0738 0.0616 0.0575 0.0778
  //   IQ4_XS 0.0740 0.0765 0.0763 0.1300 0.0748 0.0624 0.0581 0.0777  (4.25 instead of 4.5 bits per weight)
  const x = floats(INPUT);
  for (let r = 0; r < 8; r++) {
    const row = x.subarray(r * 512, (r + 1) * 512);
    const xs = relRmse(GgmlType.IQ4_XS, row, 1, 512);
    const nl = relRmse(GgmlType.IQ4_NL, row, 1, 512);
    assert.ok(xs <= 1.03 * nl, `row ${r}: IQ4_XS ${xs} vs IQ4_NL ${nl}`);
    assert.ok(xs < relRmse(GgmlType.Q3_K, row, 1, 512), `row ${r}: IQ4_XS ${xs} not better than Q3_K`);
  }
});
