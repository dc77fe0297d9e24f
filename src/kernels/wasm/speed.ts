/**
 * Hand-run single-thread speed check (not a test): a 14336x4096 matvec (Mixtral's ffn_up shape)
 * per weight type, WebAssembly kernel vs the TypeScript reference, in GB/s of weight bytes per token
 * (best of repeated runs, activation quantization included).
 *   node dist/kernels/wasm/speed.js [Q4_0 Q8_0 ...] [--tok N]
 */
import { f32ToF16 } from "../../quant/f16.js";
import { GgmlType, blockFormat, rowBytes, typeByName, typeName } from "../../quant/format.js";
import { vecDotType } from "../../quant/index.js";
import { rng } from "../../quant/testing.js";
import { matmulQuantized, quantizeRows } from "../js/matmul.js";
import { WasmKernels } from "./backend.js";

const SCALE_FIELDS: Partial<Record<GgmlType, number[]>> = {
  [GgmlType.Q4_0]: [0], [GgmlType.Q4_1]: [0, 2], [GgmlType.Q5_0]: [0], [GgmlType.Q5_1]: [0, 2],
  [GgmlType.Q8_0]: [0], [GgmlType.IQ4_NL]: [0], [GgmlType.Q2_K]: [80, 82], [GgmlType.Q3_K]: [108],
  [GgmlType.Q4_K]: [0, 2], [GgmlType.Q5_K]: [0, 2], [GgmlType.Q6_K]: [208],
};

function randomWeights(type: GgmlType, bytes: Uint8Array, u: () => number): void {
  const { typeSize } = blockFormat(type)!;
  if (type === GgmlType.F32) {
    const f = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
    for (let i = 0; i < f.length; i++) f[i] = u() - 0.5;
    return;
  }
  if (type === GgmlType.F16 || type === GgmlType.BF16) {
    for (let i = 0; i < bytes.length; i += 2) {
      const h = type === GgmlType.F16 ? f32ToF16(u() - 0.5) : (Math.floor(u() * 0x7f) + 0x3c00) | (u() < 0.5 ? 0x8000 : 0);
      bytes[i] = h & 0xff;
      bytes[i + 1] = h >>> 8;
    }
    return;
  }
  for (let i = 0; i < bytes.length; i++) bytes[i] = (u() * 256) | 0;
  const fields = SCALE_FIELDS[type] ?? [];
  const h = f32ToF16(0.01);
  for (let b = 0; b < bytes.length; b += typeSize) {
    for (const o of fields) {
      bytes[b + o] = h & 0xff;
      bytes[b + o + 1] = h >>> 8;
    }
  }
}

/** best-of time per call in ms (the minimum is the figure least disturbed by other load) */
function time(f: () => void, minMs = 400): number {
  f();
  let best = Infinity;
  const t0 = performance.now();
  do {
    const t = performance.now();
    f();
    best = Math.min(best, performance.now() - t);
  } while (performance.now() - t0 < minMs);
  return best;
}

const args = process.argv.slice(2);
const tokArg = args.indexOf("--tok");
const nTok = tokArg >= 0 ? Number(args[tokArg + 1]) : 1;
const names = args.filter((a, i) => !a.startsWith("--") && (tokArg < 0 || i !== tokArg + 1));
const types = (names.length ? names : ["Q4_0", "Q8_0", "Q4_K", "Q6_K"]).map((n) => {
  const f = typeByName(n);
  if (!f) throw new Error(`unknown type ${n}`);
  return f.type;
});

const nIn = 4096, nOut = 14336;
const k = await WasmKernels.create();
const u = rng(1);
const x = new Float32Array(nIn * nTok).map(() => u() - 0.5);
console.log(`${nOut}x${nIn} matmul, nTok=${nTok}, one thread (node ${process.version})`);
for (const type of types) {
  const rb = rowBytes(type, nIn);
  const bytes = rb * nOut;
  const mark = k.mark();
  const wp = k.alloc(bytes);
  const w = k.u8(wp, bytes);
  randomWeights(type, w, u);
  const dt = vecDotType(type);
  const xp = k.put(x);
  const arb = k.actRowBytes(dt, nIn);
  const ap = k.alloc(arb * nTok);
  const op = k.alloc(4 * nOut * nTok);
  const wasmMs = time(() => {
    k.quantizeRows(dt, xp, nTok, nIn, ap);
    k.matmul(type, wp, rb, nIn, 0, nOut, ap, arb, nTok, op, nOut);
  });
  const weight = { name: "w", type, nIn, nOut, nMat: 1, rowBytes: rb, data: w };
  const ref = new Float32Array(nOut * nTok);
  const tsMs = time(() => matmulQuantized(weight, 0, quantizeRows(dt, x, nTok, nIn), ref), 1000);
  const got = k.f32(op, nOut * nTok);
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!) / Math.max(1e-6, Math.abs(ref[i]!)));
  // weight bytes streamed per second (per token when nTok > 1: the weights are read once per token)
  const gb = (ms: number) => ((bytes * nTok) / 1e9 / (ms / 1e3)).toFixed(2);
  console.log(
    `${typeName(type).padEnd(6)} ${(bytes / 1e6).toFixed(1).padStart(6)} MB  wasm ${wasmMs.toFixed(2).padStart(8)} ms ${gb(wasmMs).padStart(6)} GB/s` +
      `   ts ${tsMs.toFixed(1).padStart(8)} ms ${gb(tsMs).padStart(6)} GB/s   x${(tsMs / wasmMs).toFixed(1)}   max rel diff ${maxDiff.toExponential(1)}`,
  );
  k.reset(mark);
}
