// The WebAssembly matmul kernels and activation quantizers against the TypeScript reference
// (src/quant, src/kernels/js/matmul.ts): seeded random inputs of awkward sizes, unaligned weight
// pointers, row sub-ranges and output strides, and llama.cpp's reference weight bytes when
// ../shared/reference is present. Quantized types must match bit for bit, float types to ~1e-7.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { f32ToF16 } from "../../quant/f16.js";
import { GgmlType, blockFormat, rowBytes, typeName } from "../../quant/format.js";
import { FORMATS, canQuantizeWeights, quantizeActivation, quantizeWeights, vecDotType } from "../../quant/index.js";
import { gaussian, rng } from "../../quant/testing.js";
import { REPO_ROOT, haveReference, refPath } from "../../test-util/paths.js";
import { canPack, matmulQuantized, packRows, quantizeRows, type Weight } from "../js/matmul.js";
import { WasmKernels } from "./backend.js";

const k = await WasmKernels.create();

const QUANT_TYPES = [
  GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q4_1,
  GgmlType.Q5_K, GgmlType.Q3_K, GgmlType.Q2_K, GgmlType.IQ4_NL,
  GgmlType.IQ4_XS, GgmlType.IQ3_XXS, GgmlType.IQ3_S, GgmlType.IQ2_XXS, GgmlType.IQ2_XS, GgmlType.IQ2_S, GgmlType.IQ1_S,
];
const FLOAT_TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16];
const ALL_TYPES = [...QUANT_TYPES, ...FLOAT_TYPES];

/** byte offsets of the f16 scale fields in one block (random bits there could be NaN/Inf) */
const F16_FIELDS: Partial<Record<GgmlType, number[]>> = {
  [GgmlType.Q4_0]: [0], [GgmlType.Q4_1]: [0, 2], [GgmlType.Q5_0]: [0], [GgmlType.Q5_1]: [0, 2],
  [GgmlType.Q8_0]: [0], [GgmlType.IQ4_NL]: [0], [GgmlType.Q2_K]: [80, 82], [GgmlType.Q3_K]: [108],
  [GgmlType.Q4_K]: [0, 2], [GgmlType.Q5_K]: [0, 2], [GgmlType.Q6_K]: [208],
  [GgmlType.IQ4_XS]: [0], [GgmlType.IQ3_XXS]: [0], [GgmlType.IQ3_S]: [0], [GgmlType.IQ2_XXS]: [0],
  [GgmlType.IQ2_XS]: [0], [GgmlType.IQ2_S]: [0], [GgmlType.IQ1_S]: [0],
};

/** Weights of `type`: the reference quantizer when there is one, else random block bits with sane scales. */
function makeWeights(type: GgmlType, nRows: number, n: number, x: Float32Array, u: () => number): Uint8Array {
  if (canQuantizeWeights(type)) return quantizeWeights(type, x, nRows, n);
  const { blockSize, typeSize } = blockFormat(type)!;
  const out = new Uint8Array(rowBytes(type, nRows * n));
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

/** Σ|w·a| for a float weight row (the scale of a float dot's rounding error) */
function magnitude(type: GgmlType, w: Uint8Array, wOff: number, x: Float32Array, xOff: number, n: number): number {
  const deq = new Float32Array(n);
  FORMATS.get(type)!.dequantize(w, wOff, deq, 0, n);
  let m = 0;
  for (let i = 0; i < n; i++) m += Math.abs(deq[i]! * x[xOff + i]!);
  return m;
}

interface Case { type: GgmlType; nIn: number; nOut: number; nTok: number }

function cases(): Case[] {
  const out: Case[] = [];
  for (const type of ALL_TYPES) {
    const bs = blockFormat(type)!.blockSize;
    const lens = bs === 256 ? [256, 768, 1280] : bs === 32 ? [96, 224, 288] : [37, 111, 264];
    const shapes = [[5, 1], [7, 3], [13, 17], [1, 3], [8, 1]] as const;
    shapes.forEach(([nOut, nTok], i) => out.push({ type, nIn: lens[i % lens.length]!, nOut, nTok }));
  }
  return out;
}

/**
 * Run one matmul both ways and compare. The weights sit at a pointer offset by `shift` bytes, the
 * output has a stride wider than nOut and rows [r0, nOut) only are computed (rows below r0 and the
 * padding must stay untouched).
 */
function check(c: Case, w: Uint8Array, x: Float32Array, label: string, shift: number, r0: number, exact = false, packed = false): void {
  const { type, nIn, nOut, nTok } = c;
  const dt = vecDotType(type);
  const rb = rowBytes(type, nIn);
  const mark = k.mark();
  try {
    const wp = k.alloc(w.length + 16) + shift;
    k.u8(wp, w.length).set(w);
    if (packed) {
      // the load-time layout (native/common.ts): as the TS packRows writes it, and undone exactly
      k.packRows(type, wp, nOut, rb);
      const ts = new Uint8Array(w.length);
      packRows(type, w, ts, nOut, rb);
      assert.deepEqual(k.u8(wp, w.length), ts, `${label}: packed bytes`);
      const back = new Uint8Array(w.length);
      packRows(type, ts, back, nOut, rb, true);
      assert.deepEqual(back, w, `${label}: unpacked bytes`);
    }
    const xp = k.put(x);
    const arb = k.actRowBytes(dt, nIn);
    const ap = k.alloc(arb * nTok);
    k.quantizeRows(dt, xp, nTok, nIn, ap);
    const want = quantizeRows(dt, x, nTok, nIn);
    assert.equal(arb, want.rowBytes, `${label}: activation row bytes`);
    assert.deepEqual(k.u8(ap, arb * nTok), want.data, `${label}: ${typeName(dt)} activations differ`);

    const stride = nOut + 3;
    const op = k.alloc(4 * stride * nTok);
    const sentinel = -12345.5;
    k.f32(op, stride * nTok).fill(sentinel);
    k.matmul(type, wp, rb, nIn, r0, nOut, ap, arb, nTok, op, stride, packed);

    const weight: Weight = { name: label, type, nIn, nOut, nMat: 1, rowBytes: rb, data: w };
    const ref = new Float32Array(nTok * nOut);
    matmulQuantized(weight, 0, want, ref);
    const got = k.f32(op, stride * nTok);
    for (let t = 0; t < nTok; t++) {
      for (let r = 0; r < stride; r++) {
        const g = got[t * stride + r]!;
        if (r < r0 || r >= nOut) {
          assert.equal(g, sentinel, `${label}: wrote outside rows [${r0}, ${nOut}) at t=${t} r=${r}`);
          continue;
        }
        const e = ref[t * nOut + r]!;
        // F16 sums in float32 lanes, bit for bit on every path; F32/BF16's one-token kernels sum
        // float64 in another order than the reference (~1e-15)
        if (FLOAT_TYPES.includes(type) && type !== GgmlType.F16 && !exact) {
          const mag = magnitude(type, w, r * rb, x, t * nIn, nIn);
          const tol = 3e-7 * Math.abs(e) + 1e-13 * mag + 1e-30;
          assert.ok(Math.abs(g - e) <= tol, `${label}: t=${t} r=${r}: wasm ${g} vs reference ${e}`);
        } else {
          assert.ok(Object.is(g, e), `${label}: t=${t} r=${r}: wasm ${g} vs reference ${e} (must be bit-identical)`);
        }
      }
    }
  } finally {
    k.reset(mark);
  }
}

test("every weight type has a wasm matmul kernel", () => {
  for (const type of ALL_TYPES) assert.ok(k.hasMatmul(type), typeName(type));
  assert.ok(!k.hasMatmul(GgmlType.IQ1_M));
  assert.ok(!k.hasMatmul(GgmlType.Q8_K));
});

test("matmul matches the reference on random inputs of awkward sizes", () => {
  const u = rng(90210);
  const g = gaussian(u);
  for (const c of cases()) {
    const scale = [1, 0.02, 100][Math.floor(u() * 3)]!;
    const xw = new Float32Array(c.nOut * c.nIn).map(() => g() * scale);
    const w = makeWeights(c.type, c.nOut, c.nIn, xw, u);
    const x = new Float32Array(c.nTok * c.nIn).map(() => g() * (u() < 0.5 ? 1 : 1e-3));
    const shift = Math.floor(u() * 4);
    const r0 = c.nOut > 1 && u() < 0.5 ? 1 : 0;
    check(c, w, x, `${typeName(c.type)} ${c.nOut}x${c.nIn} nTok=${c.nTok}`, shift, r0);
  }
});

test("matmul with zero blocks, outliers and exact ties in the activations", () => {
  const u = rng(7);
  const g = gaussian(u);
  for (const type of ALL_TYPES) {
    const bs = blockFormat(type)!.blockSize;
    const nIn = bs === 256 ? 512 : bs === 32 ? 160 : 64;
    const nOut = 6, nTok = 3;
    const xw = new Float32Array(nOut * nIn).map(() => g());
    const w = makeWeights(type, nOut, nIn, xw, u);
    const x = new Float32Array(nTok * nIn).map((_, i) => {
      if (i % nIn < 64) return 0; // whole zero blocks
      if (i % 37 === 0) return g() * 50; // outliers
      return Math.round(g() * 8) / 8; // ties after scaling
    });
    check({ type, nIn, nOut, nTok }, w, x, `${typeName(type)} special activations`, 0, 0);
  }
});

/** Random block bits (extreme scales and quants included) with sane f16 fields. */
function randomBlocks(type: GgmlType, nRows: number, n: number, u: () => number): Uint8Array {
  const { blockSize, typeSize } = blockFormat(type)!;
  const out = new Uint8Array(rowBytes(type, nRows * n));
  for (let i = 0; i < out.length; i++) out[i] = u() < 0.1 ? (u() < 0.5 ? 0 : 255) : Math.floor(u() * 256);
  for (let b = 0; b < (nRows * n) / blockSize; b++) {
    for (const o of F16_FIELDS[type] ?? []) {
      const h = f32ToF16((u() - 0.3) * 0.05);
      out[b * typeSize + o] = h & 0xff;
      out[b * typeSize + o + 1] = h >>> 8;
    }
  }
  return out;
}

test("multi-token (tiled and few-token) kernels: token counts, chunking, row tails, ranges and extreme blocks", () => {
  const u = rng(4242);
  const g = gaussian(u);
  const tokCounts = [2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 20, 23, 33];
  for (const type of QUANT_TYPES) {
    const bs = blockFormat(type)!.blockSize;
    // block counts that are not multiples of the kernels' 8-block chunks
    const lens = bs === 256 ? [256, 768, 2304] : [96, 288, 544];
    tokCounts.forEach((nTok, i) => {
      const nIn = lens[i % lens.length]!;
      const nOut = [5, 6, 7, 9][i % 4]!;
      const extreme = i % 3 === 2;
      const w = extreme ? randomBlocks(type, nOut, nIn, u) : makeWeights(type, nOut, nIn, new Float32Array(nOut * nIn).map(() => g()), u);
      // saturated activations (|q| = 127 everywhere) for the extreme blocks
      const x = new Float32Array(nTok * nIn).map(() => (extreme ? (u() < 0.5 ? -1 : 1) : g()));
      check({ type, nIn, nOut, nTok }, w, x, `${typeName(type)} ${nOut}x${nIn} nTok=${nTok}${extreme ? " extreme" : ""}`, i % 4, i % 2);
    });
  }
});

test("multi-token float kernel (tile-f.ts): F16, BF16, F32 bit-identical to the reference where it runs (F16 from 2 tokens, BF16 and F32 from 3; 1..70 tried), row tails, long rows", () => {
  const u = rng(16016);
  const g = gaussian(u);
  // token counts below the kernel's thresholds, tails of 1-3 tokens after groups of 4, more
  // than one 64-token chunk; rows not a multiple of 4; lengths not a multiple of 4 or 8 and across
  // the 256-element weight panels
  const tokCounts = [1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 17, 33, 70];
  const lens = [37, 261, 515, 1030, 13];
  for (const type of FLOAT_TYPES) {
    tokCounts.forEach((nTok, i) => {
      const nIn = lens[i % lens.length]!;
      const nOut = [5, 6, 7, 9, 13][i % 5]!;
      const scale = [1, 1e-3, 300][i % 3]!;
      const w = makeWeights(type, nOut, nIn, new Float32Array(nOut * nIn).map(() => g() * scale), u);
      const x = new Float32Array(nTok * nIn).map(() => g() * (u() < 0.5 ? 1 : 1e-3));
      check({ type, nIn, nOut, nTok }, w, x, `${typeName(type)} tiled ${nOut}x${nIn} nTok=${nTok}`, (i % 2) * 2, i % 3 === 1 ? 1 : 0, nTok >= (type === GgmlType.F16 ? 2 : 3));
    });
    // rows long enough that the f64 activations (~72 KB a token) come in windows
    const nIn = 9001, nOut = 6, nTok = 20;
    const w = makeWeights(type, nOut, nIn, new Float32Array(nOut * nIn).map(() => g()), u);
    check({ type, nIn, nOut, nTok }, w, new Float32Array(nTok * nIn).map(() => g()), `${typeName(type)} tiled long rows`, 2, 1, true);
    // activations in element windows over more than one 64-row block
    const w2 = makeWeights(type, 70, nIn, new Float32Array(70 * nIn).map(() => g()), u);
    check({ type, nIn, nOut: 70, nTok: 9 }, w2, new Float32Array(9 * nIn).map(() => g()), `${typeName(type)} tiled long rows, 70 rows`, 1, 3, true);
  }
});

test("F16 sums in float32 lanes bit for bit on every path: one token (scaled halves), the four-row kernel, the tile; subnormals, signed zeros, the largest halves", () => {
  const u = rng(1616);
  const g = gaussian(u);
  // special halves: zeros, subnormals, the smallest normal, the largest finite
  const special = [0, 0x8000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0400, 0x8400, 0x7bff, 0xfbff, 0x3c00, 0xbc00];
  const halves = (n: number, mixed: boolean) => {
    const out = new Uint8Array(2 * n);
    for (let i = 0; i < n; i++) {
      const h = mixed && u() < 0.3 ? special[Math.floor(u() * special.length)]! : f32ToF16(g() * (u() < 0.5 ? 1 : 1e-4));
      out[2 * i] = h & 0xff;
      out[2 * i + 1] = h >>> 8;
    }
    return out;
  };
  for (const nIn of [1, 3, 4, 7, 8, 9, 12, 15, 16, 37, 261, 1030]) {
    for (const nTok of [1, 2, 5]) {
      const nOut = [5, 8, 9][nIn % 3]!;
      const w = halves(nOut * nIn, true);
      // activations: the reference rounds them to half; values that become specials too
      const x = new Float32Array(nTok * nIn).map(() => (u() < 0.2 ? [0, -0, 6e-8, -6e-8, 65504, -65504, 1e-5][Math.floor(u() * 7)]! : g()));
      check({ type: GgmlType.F16, nIn, nOut, nTok }, w, x, `F16 ${nOut}x${nIn} nTok=${nTok}`, 2, nTok === 2 ? 1 : 0, true);
      if (nTok === 1) {
        k.setTiledMatmul(false);
        try {
          check({ type: GgmlType.F16, nIn, nOut, nTok }, w, x, `F16 ${nOut}x${nIn} four-row kernel`, 0, 0, true);
        } finally {
          k.setTiledMatmul(true);
        }
      }
    }
  }
});

test("packed rows (the load-time layout of the 32-element types and K-quants): one, few and many tokens, row ranges, without the tiled kernels, bit-identical", () => {
  const u = rng(777);
  const g = gaussian(u);
  const packable = QUANT_TYPES.filter((t) => canPack(t, 4));
  assert.deepEqual(packable.map(typeName).sort(), ["IQ4_NL", "Q2_K", "Q3_K", "Q4_0", "Q4_1", "Q4_K", "Q5_0", "Q5_1", "Q5_K", "Q6_K", "Q8_0"]);
  assert.ok(!canPack(GgmlType.Q4_0, 6) && !canPack(GgmlType.IQ4_XS, 8) && !canPack(GgmlType.F16, 8));
  const tokCounts = [1, 2, 3, 5, 8, 9, 17, 33];
  for (const type of packable) {
    tokCounts.forEach((nTok, i) => {
      const nIn = blockFormat(type)!.blockSize === 256 ? [256, 768, 2304][i % 3]! : [96, 288, 544][i % 3]!;
      const nOut = [4, 8, 12, 16][i % 4]!;
      const extreme = i % 3 === 2;
      const w = extreme ? randomBlocks(type, nOut, nIn, u) : makeWeights(type, nOut, nIn, new Float32Array(nOut * nIn).map(() => g()), u);
      const x = new Float32Array(nTok * nIn).map(() => (extreme ? (u() < 0.5 ? -1 : 1) : g()));
      // r0 1 and 5: row ranges that do not start on a group of four (the pool splits by 4, but any start works)
      const r0 = [0, 1, 4, 5][i % 4]! % nOut;
      check({ type, nIn, nOut, nTok }, w, x, `packed ${typeName(type)} ${nOut}x${nIn} nTok=${nTok}${extreme ? " extreme" : ""}`, i % 4, r0, false, true);
      if (i % 2 === 0) {
        k.setTiledMatmul(false);
        try {
          check({ type, nIn, nOut, nTok }, w, x, `packed ${typeName(type)} ${nOut}x${nIn} nTok=${nTok}, plain four-row kernels`, 0, r0, false, true);
        } finally {
          k.setTiledMatmul(true);
        }
      }
    });
  }
  // a row count that is not a multiple of four cannot be packed
  const mark = k.mark();
  try {
    const p = k.alloc(18 * 6);
    assert.throws(() => k.packRows(GgmlType.Q4_0, p, 6, 18), /groups of four/);
  } finally {
    k.reset(mark);
  }
});

test("without the tiled kernels (turned off, or every scratch slot taken) results are the same", () => {
  const u = rng(77);
  const g = gaussian(u);
  const run = () => {
    for (const type of [GgmlType.Q4_0, GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q6_K, GgmlType.IQ4_XS, GgmlType.IQ2_XXS, GgmlType.IQ1_S]) {
      const nIn = 512, nOut = 7, nTok = 6;
      const w = makeWeights(type, nOut, nIn, new Float32Array(nOut * nIn).map(() => g()), u);
      check({ type, nIn, nOut, nTok }, w, new Float32Array(nTok * nIn).map(() => g()), `${typeName(type)} untiled`, 0, 1);
    }
  };
  k.setTiledMatmul(false);
  try {
    run();
  } finally {
    k.setTiledMatmul(true);
  }
  // the slot flags (descriptor at byte 960: magic, flags pointer, first slot, slot bytes, count)
  const d = k.i32(960, 5);
  const flags = k.i32(d[1]!, d[4]!);
  flags.fill(1);
  try {
    run();
  } finally {
    flags.fill(0);
  }
});

test("a type without a wasm kernel falls back to the TS reference; an unsupported one throws", () => {
  const mark = k.mark();
  const p = k.alloc(1024);
  assert.throws(() => k.matmul(GgmlType.IQ1_M, p, 56, 256, 0, 1, p, 292, 1, p, 1), /IQ1_M/);
  k.reset(mark);
  // pretend the module lacks kernels: the wrapper must compute the same results with vecDot
  const real = k.exports;
  const kk = k as unknown as { exports: typeof real };
  kk.exports = { ...real, matmulBlock: () => 0, matmul: () => -1 };
  try {
    const u = rng(5);
    const g = gaussian(u);
    for (const type of [GgmlType.Q4_0, GgmlType.Q6_K, GgmlType.F16, GgmlType.IQ3_XXS]) {
      const nIn = 512, nOut = 5, nTok = 2;
      const w = makeWeights(type, nOut, nIn, new Float32Array(nOut * nIn).map(() => g()), u);
      check({ type, nIn, nOut, nTok }, w, new Float32Array(nTok * nIn).map(() => g()), `${typeName(type)} fallback`, 1, 1);
    }
  } finally {
    kk.exports = real;
  }
});

test("activation quantizers are bit-exact, including NaN, infinities and subnormals", () => {
  const u = rng(1234);
  const g = gaussian(u);
  const n = 1024;
  const rows: Float32Array[] = [];
  rows.push(new Float32Array(n).map(() => g()));
  rows.push(new Float32Array(n).map(() => g() * 1e-3));
  rows.push(new Float32Array(n).map(() => Math.round(g() * 8) / 8));
  rows.push(new Float32Array(n).map((_, i) => (i < 300 ? 0 : g())));
  rows.push(new Float32Array(n).map((_, i) => (i % 41 === 0 ? -g() * 1e4 : g())));
  rows.push(new Float32Array(n).map(() => g() * 1e-41)); // subnormal: 127/amax overflows
  rows.push(new Float32Array(n).map((_, i) => (i === 5 ? NaN : i === 300 ? Infinity : i === 700 ? -Infinity : g())));
  rows.push(new Float32Array(n).map((_, i) => (i % 32 === 3 ? -0 : i % 3 === 0 ? 2.5 : -2.5))); // ±amax ties
  const x = new Float32Array(rows.length * n);
  rows.forEach((r, i) => x.set(r, i * n));
  const mark = k.mark();
  const xp = k.put(x);
  for (const dt of [GgmlType.Q8_0, GgmlType.Q8_1, GgmlType.Q8_K, GgmlType.F16, GgmlType.BF16, GgmlType.F32]) {
    const arb = k.actRowBytes(dt, n);
    const op = k.alloc(arb * rows.length);
    k.quantizeRows(dt, xp, rows.length, n, op);
    for (let r = 0; r < rows.length; r++) {
      const want = quantizeActivation(dt, x, r * n, n);
      const got = k.u8(op + r * arb, arb);
      assert.deepEqual(got, want, `${typeName(dt)} row ${r}`);
    }
  }
  k.reset(mark);
});

const SKIP = haveReference() ? false : "reference data absent (../shared/reference)";

const WEIGHT_FILES: [GgmlType, string][] = [
  [GgmlType.F16, "f16"], [GgmlType.BF16, "bf16"], [GgmlType.Q4_0, "q4_0"], [GgmlType.Q4_1, "q4_1"],
  [GgmlType.Q5_0, "q5_0"], [GgmlType.Q5_1, "q5_1"], [GgmlType.Q8_0, "q8_0"], [GgmlType.Q2_K, "q2_K"],
  [GgmlType.Q3_K, "q3_K"], [GgmlType.Q4_K, "q4_K"], [GgmlType.Q5_K, "q5_K"], [GgmlType.Q6_K, "q6_K"],
  [GgmlType.IQ4_NL, "iq4_nl"],
];

function refBytes(name: string): Uint8Array {
  return new Uint8Array(readFileSync(refPath("quant", name)));
}

test("matmul over llama.cpp's reference weights matches the reference kernels", { skip: SKIP }, () => {
  const xb = refBytes("input.f32");
  const input = new Float32Array(xb.buffer, xb.byteOffset, xb.length / 4); // [8, 512]
  for (const [type, name] of WEIGHT_FILES) {
    const w = refBytes(`${name}.weights.bin`);
    for (const nTok of [1, 3, 8]) {
      const x = input.slice(0, nTok * 512);
      check({ type, nIn: 512, nOut: 8, nTok }, w, x, `${name} reference weights nTok=${nTok}`, nTok % 4, nTok === 3 ? 1 : 0);
    }
  }
});

test("matmul over ggml's random IQ blocks (test/golden/iq) matches the reference kernels", () => {
  const u = rng(31);
  const g = gaussian(u);
  const names: [GgmlType, string][] = [
    [GgmlType.IQ4_XS, "iq4_xs"], [GgmlType.IQ3_XXS, "iq3_xxs"], [GgmlType.IQ3_S, "iq3_s"], [GgmlType.IQ2_XXS, "iq2_xxs"],
    [GgmlType.IQ2_XS, "iq2_xs"], [GgmlType.IQ2_S, "iq2_s"], [GgmlType.IQ1_S, "iq1_s"],
  ];
  for (const [type, name] of names) {
    const w = new Uint8Array(readFileSync(join(REPO_ROOT, "test", "golden", "iq", `${name}.random.bin`)));
    for (const [nOut, nIn, nTok] of [[4, 256, 1], [2, 512, 3], [1, 1024, 9]] as const) {
      const x = new Float32Array(nTok * nIn).map(() => g());
      check({ type, nIn, nOut, nTok }, w, x, `${name} golden blocks ${nOut}x${nIn} nTok=${nTok}`, nTok % 4, 0);
    }
  }
});

test("activation quantizers reproduce llama.cpp's reference activations", { skip: SKIP }, () => {
  const xb = refBytes("input.f32");
  const mark = k.mark();
  const xp = k.put(xb);
  for (const [dt, name] of [[GgmlType.Q8_0, "q8_0"], [GgmlType.Q8_1, "q8_1"], [GgmlType.Q8_K, "q8_K"], [GgmlType.F16, "f16"]] as const) {
    const want = refBytes(`${name}.act.bin`);
    const op = k.alloc(want.length);
    k.quantizeRows(dt, xp, 8, 512, op);
    assert.deepEqual(k.u8(op, want.length), want, name);
  }
  k.reset(mark);
});

test("the relaxed-SIMD kernel build is used unless CMX_WASM_RELAXED=0 (Node 20: after turning its V8 flag on)", async () => {
  const { kernelsRelaxed } = await import("./backend.js");
  assert.equal(kernelsRelaxed(), process.env.CMX_WASM_RELAXED !== "0");
});
