// The llama.cpp-exact WebAssembly kernels (native/ggml.ts) against their TypeScript reference
// (src/kernels/js/matmul.ts matmulGgml, attention.ts attentionGgml), bit for bit: every weight type
// with an exact kernel, sgemm and vec_dot paths, block counts that leave IQ4_NL an odd block, float
// rows that leave vec_dot leftovers, and attention over F32 and F16 caches for batches and single
// tokens (whose padded cache length decides where the 64-lane steps end), and SiLU.

import assert from "node:assert/strict";
import { test } from "node:test";
import { f32ToF16 } from "../../quant/f16.js";
import { GgmlType, blockFormat, rowBytes, typeName } from "../../quant/format.js";
import { canQuantizeWeights, quantizeWeights, vecDotType } from "../../quant/index.js";
import { gaussian, rng } from "../../quant/testing.js";
import { attentionGgml } from "../js/attention.js";
import { siluRow } from "../js/ggml.js";
import { canPack, ggmlGemm, ggmlMatmulSupported, matmulGgml, quantizeRows, type GgmlPath, type Weight } from "../js/matmul.js";
import { PACKED, WasmKernels } from "./backend.js";

const k = await WasmKernels.create();

const TYPES = [
  GgmlType.F32, GgmlType.F16, GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0, GgmlType.IQ4_NL,
  GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
];

const F16_FIELDS: Partial<Record<GgmlType, number[]>> = {
  [GgmlType.Q4_0]: [0], [GgmlType.Q4_1]: [0, 2], [GgmlType.Q5_0]: [0], [GgmlType.Q5_1]: [0, 2],
  [GgmlType.Q8_0]: [0], [GgmlType.IQ4_NL]: [0], [GgmlType.Q2_K]: [80, 82], [GgmlType.Q3_K]: [108],
  [GgmlType.Q4_K]: [0, 2], [GgmlType.Q5_K]: [0, 2], [GgmlType.Q6_K]: [208],
};

function weights(type: GgmlType, nOut: number, nIn: number, u: () => number, g: () => number): Uint8Array {
  const x = new Float32Array(nOut * nIn).map(() => g() * (u() < 0.1 ? 30 : 1));
  if (canQuantizeWeights(type)) return quantizeWeights(type, x, nOut, nIn);
  const { blockSize, typeSize } = blockFormat(type)!;
  const out = new Uint8Array(rowBytes(type, nOut * nIn)).map(() => Math.floor(u() * 256));
  for (let b = 0; b < (nOut * nIn) / blockSize; b++) {
    for (const o of F16_FIELDS[type] ?? []) {
      const h = f32ToF16((u() - 0.3) * 0.05);
      out[b * typeSize + o] = h & 0xff;
      out[b * typeSize + o + 1] = h >>> 8;
    }
  }
  return out;
}

function checkMatmul(type: GgmlType, nOut: number, nIn: number, nTok: number, path: GgmlPath, u: () => number, g: () => number, packed = false): void {
  const label = `${packed ? "packed " : ""}${typeName(type)} ${nOut}x${nIn} nTok=${nTok} ${path}`;
  const w = weights(type, nOut, nIn, u, g);
  const x = new Float32Array(nTok * nIn).map(() => (u() < 0.05 ? 0 : g() * (u() < 0.2 ? 40 : 1)));
  const rb = rowBytes(type, nIn);
  const weight: Weight = { name: label, type, nIn, nOut, nMat: 1, rowBytes: rb, data: w };
  const act = quantizeRows(vecDotType(type), x, nTok, nIn);
  const ref = new Float32Array(nTok * nOut);
  matmulGgml(weight, 0, act, ref, undefined, path);
  const mark = k.mark();
  try {
    const wp = k.put(w);
    if (packed) k.packRows(type, wp, nOut, rb);
    const ap = k.put(act.data);
    const op = k.alloc(4 * nTok * nOut);
    const scr = k.alloc(k.exports.matmulGgmlScratchBytes(nTok), 64);
    const rc = k.exports.matmulGgml(type | (packed ? PACKED : 0), wp, rb, nIn, 0, nOut, ap, act.rowBytes, nTok, op, nOut, ggmlGemm(weight, path) ? 1 : 0, scr);
    assert.equal(rc, 0, `${label}: no kernel`);
    const got = k.f32(op, nTok * nOut);
    for (let i = 0; i < ref.length; i++) {
      assert.ok(Object.is(got[i], ref[i]), `${label}: [${Math.floor(i / nOut)}, ${i % nOut}] wasm ${got[i]} vs reference ${ref[i]}`);
    }
  } finally {
    k.reset(mark);
  }
}

test("every type with a llama.cpp-exact reference has a wasm kernel", () => {
  for (const type of TYPES) {
    assert.ok(ggmlMatmulSupported(type), typeName(type));
    assert.equal(k.exports.matmulGgmlSupported(type), 1, typeName(type));
  }
  assert.equal(k.exports.matmulGgmlSupported(GgmlType.BF16), 0);
});

test("matmulGgml: wasm equals the reference bit for bit", () => {
  const u = rng(2024);
  const g = gaussian(u);
  for (const type of TYPES) {
    const bs = blockFormat(type)!.blockSize;
    const lens = bs === 256 ? [256, 768] : bs === 32 ? [96, 224, 256] : [16, 48, 64, 144, 37, 200];
    lens.forEach((nIn, i) => {
      for (const path of ["gemm", "vec"] as const) {
        const nOut = [4, 8, 5, 12][i % 4]!;
        const nTok = path === "gemm" ? [2, 5, 9][i % 3]! : [1, 3][i % 2]!;
        if (path === "gemm" && bs === 1 && nIn % 16 !== 0) continue;
        checkMatmul(type, nOut, nIn, nTok, path, u, g);
      }
    });
  }
});

test("matmulGgml over packed rows (the wasm backend's load-time layout) equals the reference bit for bit", () => {
  const u = rng(2025);
  const g = gaussian(u);
  for (const type of TYPES.filter((t) => canPack(t, 4))) {
    (blockFormat(type)!.blockSize === 256 ? [256, 768] : [96, 224]).forEach((nIn, i) => {
      for (const path of ["gemm", "vec"] as const) checkMatmul(type, [4, 8][i]!, nIn, path === "gemm" ? 5 : 1, path, u, g, true);
    });
  }
});

function checkAttention(f16: boolean, hd: number, nHead: number, nHeadKv: number, positions: number[], gemm: boolean, u: () => number, g: () => number): void {
  const label = `attention ${f16 ? "f16" : "f32"} hd=${hd} heads=${nHead}/${nHeadKv} pos=${positions.join(",")} ${gemm ? "gemm" : "vec"}`;
  const nTok = positions.length;
  const maxPos = Math.max(...positions);
  const kvRow = nHeadKv * hd;
  const cells = maxPos + 1 + 40; // cells past maxPos hold junk the kernels must not use
  const K = f16 ? new Uint16Array(cells * kvRow) : new Float32Array(cells * kvRow);
  const V = f16 ? new Uint16Array(cells * kvRow) : new Float32Array(cells * kvRow);
  for (let i = 0; i < K.length; i++) {
    const j = Math.floor(i / kvRow);
    const kv = g() * 2, vv = g();
    if (f16) {
      (K as Uint16Array)[i] = j > maxPos ? 0x7e00 : f32ToF16(kv);
      (V as Uint16Array)[i] = j > maxPos ? 0x7c00 : f32ToF16(vv);
    } else {
      (K as Float32Array)[i] = j > maxPos ? NaN : kv;
      (V as Float32Array)[i] = j > maxPos ? Infinity : vv;
    }
  }
  const q = new Float32Array(nTok * nHead * hd).map(() => g() * 3);
  const shape = { nHead, nHeadKv, headDim: hd };
  const ref = new Float32Array(q.length);
  attentionGgml(q, nTok, positions, K, V, shape, ref, gemm);
  const mark = k.mark();
  try {
    const qp = k.put(q), kp = k.put(K), vp = k.put(V), pp = k.put(Int32Array.from(positions));
    const op = k.alloc(q.length * 4);
    const scr = k.alloc(k.exports.attentionGgmlScratchBytes(hd, maxPos), 64);
    k.exports.attentionGgml(qp, nTok, pp, kp, vp, f16 ? 1 : 0, nHead, nHeadKv, hd, op, scr, 0, nHead, gemm ? 1 : 0);
    const got = k.f32(op, q.length);
    for (let i = 0; i < ref.length; i++) {
      assert.ok(Number.isFinite(ref[i]!), `${label}: reference not finite at ${i}`);
      assert.ok(Object.is(got[i], ref[i]), `${label}: [${i}] wasm ${got[i]} vs reference ${ref[i]}`);
    }
  } finally {
    k.reset(mark);
  }
}

test("attentionGgml: wasm equals the reference bit for bit", () => {
  const u = rng(77);
  const g = gaussian(u);
  for (const f16 of [false, true]) {
    for (const [hd, nHead, nHeadKv] of [[16, 4, 2], [64, 2, 1], [128, 2, 2], [80, 2, 1]] as const) {
      checkAttention(f16, hd, nHead, nHeadKv, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], true, u, g);
      checkAttention(f16, hd, nHead, nHeadKv, [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70], true, u, g);
      for (const p of [0, 13, 31, 32, 63, 64, 100, 150]) checkAttention(f16, hd, nHead, nHeadKv, [p], false, u, g);
    }
  }
});

test("siluGgml: wasm equals the reference bit for bit", () => {
  const u = rng(99);
  const g = gaussian(u);
  for (const n of [16, 48, 37, 130]) {
    const nRows = 3;
    const x = new Float32Array(nRows * n).map(() => (u() < 0.05 ? (u() < 0.5 ? -100 : 100) : g() * 6));
    const ref = x.slice();
    for (let r = 0; r < nRows; r++) siluRow(ref, r * n, n);
    const mark = k.mark();
    try {
      const p = k.put(x);
      k.exports.siluGgml(p, nRows, n);
      const got = k.f32(p, nRows * n);
      for (let r = 0; r < nRows; r++) {
        for (let i = 0; i < (n & ~15); i++) {
          assert.ok(Object.is(got[r * n + i], ref[r * n + i]), `n=${n} [${r}, ${i}]: wasm ${got[r * n + i]} vs reference ${ref[r * n + i]}`);
        }
        for (let i = n & ~15; i < n; i++) assert.equal(got[r * n + i], x[r * n + i], "the scalar rest is left to the caller");
      }
    } finally {
      k.reset(mark);
    }
  }
});
