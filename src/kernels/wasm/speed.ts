/**
 * Hand-run single-thread speed check (not a test): a 14336x4096 matmul (Mixtral's ffn_up shape) per
 * weight type and token count, WebAssembly kernels vs the plain four-row wasm kernels (the
 * scratch-slot kernels turned off: what every token ran through before the tiled and one-token
 * kernels) vs the TypeScript reference. Times are best-of repeated runs of the matmul alone (the
 * activations are quantized once); GB/s counts weight bytes per token (a 16-token matmul that reads
 * the weights once but takes as long as 16 single-token ones shows the one-token figure).
 *   node dist/kernels/wasm/speed.js [Q4_0 Q8_0 ...] [--tok 1,16,64] [--rows 14336] [--cols 4096]
 *     [--ts 1|all|none] [--min-ms 400] [--packed]
 * --ts 1 (default) times the reference at one token only and shows ~nTok times that for the others
 * (it has no reuse across tokens); all times it at every count (slow); none skips it. Results of
 * every kernel are compared with the reference at the smallest token count (must be identical).
 * Other processes on the machine disturb the figures: run it on an idle machine.
 */
import { f32ToF16 } from "../../quant/f16.js";
import { GgmlType, blockFormat, rowBytes, typeByName, typeName } from "../../quant/format.js";
import { vecDotType } from "../../quant/index.js";
import { rng } from "../../quant/testing.js";
import { canPack, matmulQuantized, packRows as packRowsTs, quantizeRows } from "../js/matmul.js";
import { WasmKernels } from "./backend.js";

const SCALE_FIELDS: Partial<Record<GgmlType, number[]>> = {
  [GgmlType.Q4_0]: [0], [GgmlType.Q4_1]: [0, 2], [GgmlType.Q5_0]: [0], [GgmlType.Q5_1]: [0, 2],
  [GgmlType.Q8_0]: [0], [GgmlType.IQ4_NL]: [0], [GgmlType.Q2_K]: [80, 82], [GgmlType.Q3_K]: [108],
  [GgmlType.Q4_K]: [0, 2], [GgmlType.Q5_K]: [0, 2], [GgmlType.Q6_K]: [208],
  [GgmlType.IQ4_XS]: [0], [GgmlType.IQ3_XXS]: [0], [GgmlType.IQ3_S]: [0], [GgmlType.IQ2_XXS]: [0],
  [GgmlType.IQ2_XS]: [0], [GgmlType.IQ2_S]: [0], [GgmlType.IQ1_S]: [0],
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
function time(f: () => void, minMs: number): number {
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
function opt(name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}
const toks = (opt("--tok") ?? "1,16,64").split(",").map(Number);
const nOut = Number(opt("--rows") ?? 14336);
const nIn = Number(opt("--cols") ?? 4096);
const tsMode = opt("--ts") ?? "1";
const minMs = Number(opt("--min-ms") ?? 400);
// --packed: the weights in the backend's load-time layout (rows interleaved four at a time)
const packed = args.includes("--packed");
const names = args.filter((a, i) => !a.startsWith("--") && !(i > 0 && args[i - 1]!.startsWith("--") && args[i - 1] !== "--packed"));
const types = (names.length ? names : ["Q4_0", "Q8_0", "Q4_K", "Q6_K", "Q5_0", "Q5_1", "Q4_1", "Q5_K", "Q3_K", "Q2_K", "IQ4_NL"]).map((n) => {
  const f = typeByName(n);
  if (!f) throw new Error(`unknown type ${n}`);
  return f.type;
});
if (toks.some((t) => !(t >= 1))) throw new Error("--tok: token counts >= 1, comma-separated");

const k = await WasmKernels.create();
const u = rng(1);
const maxTok = Math.max(...toks);
const x = new Float32Array(nIn * maxTok).map(() => u() - 0.5);
console.log(`${nOut}x${nIn} matmul, one thread (node ${process.version}); per token count: plain wasm -> wasm ms (speed-up), weight GB/s per token, TS reference ms`);
for (const type of types) {
  const rb = rowBytes(type, nIn);
  const bytes = rb * nOut;
  const mark = k.mark();
  const wp = k.alloc(bytes);
  const w = k.u8(wp, bytes);
  randomWeights(type, w, u);
  const pk = packed && canPack(type, nOut);
  if (pk) k.packRows(type, wp, nOut, rb);
  const dt = vecDotType(type);
  const xp = k.put(x);
  const arb = k.actRowBytes(dt, nIn);
  const ap = k.alloc(arb * maxTok);
  k.quantizeRows(dt, xp, maxTok, nIn, ap);
  const op = k.alloc(4 * nOut * maxTok);
  const weight = { name: "w", type, nIn, nOut, nMat: 1, rowBytes: rb, data: pk ? w.slice() : w };
  if (pk) packRowsTs(type, w, weight.data, nOut, rb, true);
  const cells: string[] = [];
  let tsOne = 0;
  for (const nTok of toks) {
    const run = () => k.matmul(type, wp, rb, nIn, 0, nOut, ap, arb, nTok, op, nOut, pk);
    k.setTiledMatmul(false);
    const plainMs = time(run, minMs);
    k.setTiledMatmul(true);
    const ms = time(run, minMs);
    let ts = "";
    if (tsMode === "all" || (tsMode === "1" && nTok === toks[0])) {
      const ref = new Float32Array(nOut * nTok);
      const act = quantizeRows(dt, x, nTok, nIn);
      const tsMs = time(() => matmulQuantized(weight, 0, act, ref), minMs);
      if (nTok === 1) tsOne = tsMs;
      ts = ` ts ${tsMs.toFixed(1)}`;
      if (nTok === toks[0]) {
        // both wasm paths must match the reference bit for bit
        for (const on of [false, true]) {
          k.setTiledMatmul(on);
          run();
          const got = k.f32(op, nOut * nTok);
          for (let i = 0; i < ref.length; i++) {
            if (!Object.is(got[i], ref[i])) throw new Error(`${typeName(type)} nTok=${nTok}${on ? "" : " (plain)"}: result ${i} differs from the reference`);
          }
        }
        k.setTiledMatmul(true);
      }
    } else if (tsMode === "1" && tsOne > 0) {
      ts = ` ts~${(tsOne * nTok).toFixed(0)}`;
    }
    const gb = ((bytes * nTok) / 1e6 / ms).toFixed(1);
    cells.push(`t${nTok}: ${plainMs.toFixed(1)} -> ${ms.toFixed(1)} ms (x${(plainMs / ms).toFixed(2)}) ${gb} GB/s${ts}`);
  }
  console.log(`${typeName(type).padEnd(6)} ${(bytes / 1e6).toFixed(1).padStart(5)} MB  ${cells.join("  |  ")}`);
  k.reset(mark);
}
