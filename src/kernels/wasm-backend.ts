/**
 * The WebAssembly backend: weights, KV cache and scratch live in shared WebAssembly memories
 * ("shards", at most 4 GiB each: a model larger than one memory spreads over several), and the
 * products run as SIMD128 kernels on all threads of a KernelPool (rows split across threads;
 * attention split by head). Activations are small and are copied into the shard that holds the
 * weight they meet.
 */
import { availableParallelism } from "node:os";
import { ArgumentError } from "../errors.js";
import { type GgmlType, blockFormat, typeName } from "../quant/format.js";
import { vecDotType } from "../quant/index.js";
import type { Backend, WeightStorage } from "./backend.js";
import type { AttentionShape } from "./js/attention.js";
import { canPack, ggmlGemm, matmulGgml, matrixOf, type GgmlPath, type QuantizedRows, type Weight } from "./js/matmul.js";
import { silu } from "./js/ggml.js";
import { KernelPool } from "./parallel/pool.js";
import { MAX_PAGES, PACKED, WasmKernels, compileKernelsSync } from "./wasm/backend.js";

const SHARD_BYTES = MAX_PAGES * 65536;
/** kept free in every shard for per-call scratch (a quarter of smaller test shards) */
const SCRATCH_RESERVE = 96 << 20;
/** products smaller than this many weight bytes run on one thread */
const PARALLEL_MIN_BYTES = 256 << 10;
/** output scratch per call; longer batches are processed in token chunks */
const OUT_CHUNK_BYTES = 16 << 20;
/** scratch of one moeFfn step; longer batches are processed in token chunks */
const MOE_SCRATCH_BYTES = 24 << 20;
/** rows per unit of the experts' down products */
const MOE_DOWN_ROWS = 32;

interface Shard {
  k: WasmKernels;
  /** bytes handed out for long-lived data (weights, KV) */
  owned: number;
  scratch?: { ptr: number; bytes: number };
}

export interface WasmBackendOptions {
  threads?: number;
  /** bytes per memory shard (default 4 GiB; smaller only for tests of the multi-shard path) */
  shardBytes?: number;
  /**
   * Pack the rows of 32-element block matrices at load time (Weight.packed; default on, or
   * CMX_WASM_PACK=0 for comparisons): the kernels then read the four rows they walk together as
   * one stream, about twice as fast when the weights come from memory.
   */
  packWeights?: boolean;
}

/** the type argument of a kernel call for this weight */
function kernelType(w: Weight): number {
  return w.type | (w.packed ? PACKED : 0);
}

export class WasmBackend implements Backend {
  readonly name = "wasm";
  readonly threads: number;
  private readonly module: WebAssembly.Module;
  private readonly shards: Shard[] = [];
  private pool?: KernelPool;
  private readonly shardBytes: number;
  private readonly reserve: number;
  private readonly packWeights: boolean;

  constructor(opts: WasmBackendOptions = {}) {
    this.threads = Math.max(1, Math.floor(opts.threads ?? availableParallelism()));
    this.shardBytes = Math.min(SHARD_BYTES, opts.shardBytes ?? SHARD_BYTES);
    this.reserve = Math.min(SCRATCH_RESERVE, Math.floor(this.shardBytes / 4));
    this.packWeights = opts.packWeights ?? process.env.CMX_WASM_PACK !== "0";
    this.module = compileKernelsSync();
    this.newShard();
  }

  get nShards(): number {
    return this.shards.length;
  }

  /** Bytes held in all shards' memories. */
  get memoryBytes(): number {
    return this.shards.reduce((a, s) => a + s.k.memory.buffer.byteLength, 0);
  }

  private newShard(): Shard {
    const s: Shard = { k: WasmKernels.fromModule(this.module), owned: 0 };
    this.shards.push(s);
    this.pool?.addMemory(s.k.memory);
    return s;
  }

  /** Long-lived storage in the first shard with room (a new shard when none has). */
  private place(bytes: number): { shard: number; ptr: number } {
    if (bytes + this.reserve > this.shardBytes) {
      throw new ArgumentError(`a single tensor of ${bytes} bytes does not fit in one ${this.shardBytes}-byte WebAssembly memory`);
    }
    let i = this.shards.findIndex((s) => s.owned + bytes + this.reserve <= this.shardBytes);
    if (i < 0) { this.newShard(); i = this.shards.length - 1; }
    const s = this.shards[i]!;
    const ptr = s.k.alloc(bytes, 64);
    s.owned += bytes;
    return { shard: i, ptr };
  }

  allocWeight(bytes: number): WeightStorage {
    const { shard, ptr } = this.place(bytes);
    return { data: this.shards[shard]!.k.u8(ptr, bytes), shard, ptr };
  }

  packs(type: GgmlType, nOut: number): boolean {
    return this.packWeights && canPack(type, nOut) && this.shards[0]!.k.hasMatmul(type) && this.shards[0]!.k.exports.matmulGgmlSupported(type) !== 0;
  }

  packMatrices(st: WeightStorage, type: GgmlType, nOut: number, nMat: number, rowBytes: number): void {
    if (st.shard === undefined || st.ptr === undefined) throw new ArgumentError("internal: packMatrices on storage outside WebAssembly memory");
    const k = this.shards[st.shard]!.k;
    for (let m = 0; m < nMat; m++) k.packRows(type, st.ptr + m * nOut * rowBytes, nOut, rowBytes);
  }

  /** KV cache rows in WebAssembly memory, so attention runs there. */
  allocKv(n: number, f16: boolean): Float32Array | Uint16Array {
    const bytes = n * (f16 ? 2 : 4);
    const { shard, ptr } = this.place(bytes);
    const k = this.shards[shard]!.k;
    const v = f16 ? k.u16(ptr, n) : k.f32(ptr, n);
    this.kvShard.set(v, shard);
    this.kvLive.register(v, { shard, ptr, bytes }, v);
    return v;
  }
  /** Give a cache's memory back now (it is also given back when the array is garbage-collected). */
  freeKv(v: Float32Array | Uint16Array): void {
    const shard = this.kvShard.get(v);
    if (shard === undefined) return;
    this.kvShard.delete(v);
    this.kvLive.unregister(v);
    this.release(shard, v.byteOffset, v.byteLength);
  }
  private release(shard: number, ptr: number, bytes: number): void {
    const s = this.shards[shard];
    if (!s) return;
    s.k.free(ptr);
    s.owned -= bytes;
  }
  private kvShard = new WeakMap<object, number>();
  private kvLive = new FinalizationRegistry<{ shard: number; ptr: number; bytes: number }>((h) => this.release(h.shard, h.ptr, h.bytes));

  private scratch(shard: number, bytes: number): number {
    const s = this.shards[shard]!;
    if (s.scratch && s.scratch.bytes >= bytes) return s.scratch.ptr;
    if (s.scratch) s.k.free(s.scratch.ptr);
    const size = Math.max(bytes, 1 << 20);
    s.scratch = { ptr: s.k.alloc(size, 64), bytes: size };
    return s.scratch.ptr;
  }

  private getPool(): KernelPool {
    this.pool ??= KernelPool.create(this.module, this.shards.map((s) => s.k.memory), ["matmul", "attention", "quantizeRows", "matmulGgml", "attentionGgml", "matmulUnits", "attentionRows"], this.threads);
    return this.pool;
  }

  quantizeRows(type: GgmlType, x: Float32Array, nRows: number, n: number): QuantizedRows {
    const k = this.shards[0]!.k;
    const rb = k.actRowBytes(type, n);
    const xBytes = nRows * n * 4;
    const base = this.scratch(0, xBytes + nRows * rb + 64);
    k.f32(base, nRows * n).set(x.subarray(0, nRows * n));
    const outPtr = base + Math.ceil(xBytes / 64) * 64;
    k.quantizeRows(type, base, nRows, n, outPtr);
    return { type, nRows, n, rowBytes: rb, data: k.u8(outPtr, nRows * rb).slice() };
  }

  matmul(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows?: ArrayLike<number>): void {
    const nTok = rows ? rows.length : act.nRows;
    if (nTok === 0) return;
    const place = matrixOf(w, mat);
    if (place.shard === undefined || place.ptr === undefined) throw new ArgumentError(`internal: weight ${w.name} is not in WebAssembly memory`);
    const sh = place.shard, k = this.shards[sh]!.k;
    const wPtr = place.ptr;
    const chunk = Math.max(1, Math.min(nTok, Math.floor(OUT_CHUNK_BYTES / (w.nOut * 4))));
    const actBytes = Math.ceil((chunk * act.rowBytes) / 64) * 64;
    const base = this.scratch(sh, actBytes + chunk * w.nOut * 4);
    const outPtr = base + actBytes;
    const parallel = this.threads > 1 && w.nOut * w.rowBytes >= PARALLEL_MIN_BYTES;
    const grain = Math.max(4, k.exports.matmulBlock(w.type) || 4);
    if (!k.hasMatmul(w.type)) throw new ArgumentError(`no WebAssembly kernel for ${typeName(w.type)}`);
    for (let t0 = 0; t0 < nTok; t0 += chunk) {
      const nt = Math.min(chunk, nTok - t0);
      const a = k.u8(base, nt * act.rowBytes);
      for (let i = 0; i < nt; i++) {
        const src = rows ? rows[t0 + i]! : t0 + i;
        a.set(act.data.subarray(src * act.rowBytes, (src + 1) * act.rowBytes), i * act.rowBytes);
      }
      if (parallel) {
        this.getPool().parallel(sh, "matmul", w.nOut, grain, 4, 5,
          [kernelType(w), wPtr, w.rowBytes, w.nIn, 0, 0, base, act.rowBytes, nt, outPtr, w.nOut]);
      } else {
        k.exports.matmul(kernelType(w), wPtr, w.rowBytes, w.nIn, 0, w.nOut, base, act.rowBytes, nt, outPtr, w.nOut);
      }
      out.set(k.f32(outPtr, nt * w.nOut), t0 * w.nOut);
    }
  }

  /** moeFfn runs the experts of a layer as two pool jobs (off: one product at a time, for comparisons) */
  fusedMoe = true;
  /** attentionBatch runs the rows of all sequences as one job (off: one call per sequence, for comparisons) */
  batchedAttention = true;

  moeFfn(gate: Weight, up: Weight, down: Weight, x: Float32Array, nTok: number, experts: Int32Array, weights: Float32Array, K: number, out: Float32Array): boolean {
    if (!this.fusedMoe || gate.matrix || up.matrix || down.matrix) return false;
    const sh = gate.shard;
    if (sh === undefined || up.shard !== sh || down.shard !== sh || gate.type !== up.type || !gate.packed !== !up.packed) return false;
    const k = this.shards[sh]!.k;
    if (!k.hasMatmul(gate.type) || !k.hasMatmul(down.type)) return false;
    const E = gate.nIn, F = gate.nOut;
    if (up.nIn !== E || up.nOut !== F || down.nIn !== F || down.nOut !== E) return false;
    const aType = vecDotType(gate.type), qType = vecDotType(down.type);
    const arb = k.actRowBytes(aType, E), qrb = k.actRowBytes(qType, F);
    const perTok = E * 4 + arb + K * (arb + 8 * F + qrb + 4 * E) + 256;
    const chunk = Math.max(1, Math.floor(MOE_SCRATCH_BYTES / perTok));
    for (let t0 = 0; t0 < nTok; t0 += chunk) {
      this.moeChunk(sh, gate, up, down, x, t0, Math.min(chunk, nTok - t0), experts, weights, K, out, aType, qType, arb, qrb);
    }
    return true;
  }

  private moeChunk(sh: number, gate: Weight, up: Weight, down: Weight, x: Float32Array, t0: number, nt: number, experts: Int32Array, weights: Float32Array,
    K: number, out: Float32Array, aType: GgmlType, qType: GgmlType, arb: number, qrb: number): void {
    const k = this.shards[sh]!.k;
    const E = gate.nIn, F = gate.nOut, NE = gate.nMat;
    const al = (b: number) => Math.ceil(b / 64) * 64;
    // rows of each expert, (token, slot) in order; row[t*K+s]: the row of that pair in the outputs
    const count = new Int32Array(NE);
    for (let i = 0; i < nt * K; i++) { const e = experts[t0 * K + i]!; if (e >= 0) count[e]!++; }
    const first = new Int32Array(NE + 1);
    for (let e = 0; e < NE; e++) first[e + 1] = first[e]! + count[e]!;
    const nRows = first[NE]!;
    const row = new Int32Array(nt * K).fill(-1);
    const fill = first.slice(0, NE);
    for (let i = 0; i < nt * K; i++) { const e = experts[t0 * K + i]!; if (e >= 0) row[i] = fill[e]!++; }
    const used: number[] = [];
    for (let e = 0; e < NE; e++) if (count[e]! > 0) used.push(e);
    // scratch: x, its quantized rows, the rows gathered per expert, gate and up outputs, the down
    // activations, the down outputs, two descriptors
    const xB = al(nt * E * 4), aB = al(nt * arb), gB = al(nRows * arb), fB = al(nRows * F * 4), qB = al(nRows * qrb), yB = al(nRows * E * 4);
    const dB = al(16 + 64 * used.length);
    const base = this.scratch(sh, xB + aB + gB + 2 * fB + qB + yB + 2 * dB);
    const xP = base, aP = xP + xB, gP = aP + aB, gateP = gP + gB, upP = gateP + fB, qP = upP + fB, yP = qP + qB, d1 = yP + yB, d2 = d1 + dB;
    k.f32(xP, nt * E).set(x.subarray(t0 * E, (t0 + nt) * E));
    k.quantizeRows(aType, xP, nt, E, aP);
    const mem = k.u8(0, k.memory.buffer.byteLength);
    for (let i = 0; i < nt * K; i++) {
      const r = row[i]!;
      if (r >= 0) mem.copyWithin(gP + r * arb, aP + Math.floor(i / K) * arb, aP + (Math.floor(i / K) + 1) * arb);
    }
    const bs = blockFormat(qType)?.blockSize ?? 1;
    const G1 = bs >= 64 ? bs : 64;
    const desc1 = k.i32(d1, 4 + 16 * used.length), desc2 = k.i32(d2, 4 + 16 * used.length);
    desc1[0] = used.length; desc1[1] = G1; desc1[2] = 1;
    desc2[0] = used.length; desc2[1] = MOE_DOWN_ROWS; desc2[2] = 0;
    let u1 = 0, u2 = 0, bytes1 = 0, bytes2 = 0;
    used.forEach((e, j) => {
      const r0 = first[e]!, n = count[e]!;
      const g = matrixOf(gate, e), u = matrixOf(up, e), d = matrixOf(down, e);
      desc1.set([u1, kernelType(gate), g.ptr!, gate.rowBytes, E, F, gP + r0 * arb, arb, n, gateP + r0 * F * 4, F, u.ptr!, upP + r0 * F * 4, qType, qP + r0 * qrb, qrb], 4 + 16 * j);
      desc2.set([u2, kernelType(down), d.ptr!, down.rowBytes, F, E, qP + r0 * qrb, qrb, n, yP + r0 * E * 4, E, 0, 0, 0, 0, 0], 4 + 16 * j);
      u1 += Math.ceil(F / G1);
      u2 += Math.ceil(E / MOE_DOWN_ROWS);
      bytes1 += 2 * F * gate.rowBytes;
      bytes2 += E * down.rowBytes;
    });
    this.units(sh, d1, u1, bytes1);
    this.units(sh, d2, u2, bytes2);
    // out[t] = Σ over slots, in slot order, of the float32 products y·weight
    const y = k.f32(yP, nRows * E);
    for (let t = 0; t < nt; t++) {
      const o = (t0 + t) * E;
      for (let s = 0; s < K; s++) {
        const r = row[t * K + s]!, wgt = weights[(t0 + t) * K + s]!;
        if (s === 0) {
          if (r < 0) out.fill(0, o, o + E);
          else for (let j = 0; j < E; j++) out[o + j] = y[r * E + j]! * wgt;
        } else if (r >= 0) {
          for (let j = 0; j < E; j++) out[o + j] = out[o + j]! + Math.fround(y[r * E + j]! * wgt);
        } else {
          for (let j = 0; j < E; j++) out[o + j] = out[o + j]! + 0;
        }
      }
    }
  }

  matmulMany(items: readonly { w: Weight; mat: number; act: QuantizedRows; out: Float32Array }[]): boolean {
    if (!this.fusedMoe || items.length === 0) return false;
    const places = items.map((it) => matrixOf(it.w, it.mat));
    const sh = places[0]!.shard;
    if (sh === undefined) return false;
    const k = this.shards[sh]!.k;
    for (let i = 0; i < items.length; i++) {
      const it = items[i]!;
      if (places[i]!.shard !== sh || !k.hasMatmul(it.w.type) || it.w.matrix) return false;
    }
    const al = (b: number) => Math.ceil(b / 64) * 64;
    // distinct activations copied once
    const acts: QuantizedRows[] = [];
    for (const it of items) if (!acts.includes(it.act)) acts.push(it.act);
    let bytes = al(16 + 64 * items.length);
    for (const a of acts) bytes += al(a.data.length);
    for (const it of items) bytes += al(it.act.nRows * it.w.nOut * 4);
    if (bytes > OUT_CHUNK_BYTES) return false;
    const base = this.scratch(sh, bytes);
    const desc = base;
    let p = base + al(16 + 64 * items.length);
    const actPtr = new Map<QuantizedRows, number>();
    for (const a of acts) { k.u8(p, a.data.length).set(a.data); actPtr.set(a, p); p += al(a.data.length); }
    const d = k.i32(desc, 4 + 16 * items.length);
    d[0] = items.length; d[1] = 16; d[2] = 0;
    const outs: number[] = [];
    let units = 0, wBytes = 0;
    items.forEach((it, j) => {
      const w = it.w;
      d.set([units, kernelType(w), places[j]!.ptr!, w.rowBytes, w.nIn, w.nOut, actPtr.get(it.act)!, it.act.rowBytes, it.act.nRows, p, w.nOut, 0, 0, 0, 0, 0], 4 + 16 * j);
      outs.push(p);
      p += al(it.act.nRows * w.nOut * 4);
      units += Math.ceil(w.nOut / 16);
      wBytes += w.nOut * w.rowBytes;
    });
    this.units(sh, desc, units, wBytes);
    items.forEach((it, j) => it.out.set(k.f32(outs[j]!, it.act.nRows * it.w.nOut)));
    return true;
  }

  /** the units of the products described at desc, on all threads when they are big enough */
  private units(sh: number, desc: number, units: number, bytes: number): void {
    if (this.threads > 1 && bytes >= PARALLEL_MIN_BYTES) this.getPool().parallel(sh, "matmulUnits", units, 1, 1, 2, [desc, 0, 0]);
    else this.shards[sh]!.k.exports.matmulUnits(desc, 0, units);
  }

  matmulGgml(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows: ArrayLike<number> | undefined, path: GgmlPath): void {
    const nTok = rows ? rows.length : act.nRows;
    if (nTok === 0) return;
    const place = matrixOf(w, mat);
    if (place.shard === undefined || place.ptr === undefined) throw new ArgumentError(`internal: weight ${w.name} is not in WebAssembly memory`);
    const sh = place.shard, k = this.shards[sh]!.k;
    if (!k.exports.matmulGgmlSupported(w.type)) {
      // no llama.cpp-exact kernel for this type: the default arithmetic (as the reference does)
      if (k.hasMatmul(w.type)) this.matmul(w, mat, act, out, rows);
      else matmulGgml(w, mat, act, out, rows, path);
      return;
    }
    const gemm = ggmlGemm(w, path) ? 1 : 0;
    const chunk = Math.max(1, Math.min(nTok, Math.floor(OUT_CHUNK_BYTES / (w.nOut * 4)), 4096));
    const actBytes = Math.ceil((chunk * act.rowBytes) / 64) * 64;
    const outBytes = Math.ceil((chunk * w.nOut * 4) / 64) * 64;
    const per = Math.ceil(k.exports.matmulGgmlScratchBytes(chunk) / 64) * 64;
    const parallel = this.threads > 1 && w.nOut * w.rowBytes >= PARALLEL_MIN_BYTES;
    const nThreads = parallel ? this.threads : 1;
    const base = this.scratch(sh, actBytes + outBytes + per * nThreads);
    const outPtr = base + actBytes, scr = outPtr + outBytes;
    for (let t0 = 0; t0 < nTok; t0 += chunk) {
      const nt = Math.min(chunk, nTok - t0);
      const a = k.u8(base, nt * act.rowBytes);
      for (let i = 0; i < nt; i++) {
        const src = rows ? rows[t0 + i]! : t0 + i;
        a.set(act.data.subarray(src * act.rowBytes, (src + 1) * act.rowBytes), i * act.rowBytes);
      }
      const args = [kernelType(w), place.ptr, w.rowBytes, w.nIn, 0, 0, base, act.rowBytes, nt, outPtr, w.nOut, gemm, scr];
      if (parallel) this.getPool().parallel(sh, "matmulGgml", w.nOut, 4, 4, 5, args, nThreads, { arg: 12, stride: per });
      else k.exports.matmulGgml(kernelType(w), place.ptr, w.rowBytes, w.nIn, 0, w.nOut, base, act.rowBytes, nt, outPtr, w.nOut, gemm, scr);
      out.set(k.f32(outPtr, nt * w.nOut), t0 * w.nOut);
    }
  }

  siluGgml(x: Float32Array, nRows: number, n: number): boolean {
    const k = this.shards[0]!.k;
    const len = nRows * n;
    const p = this.scratch(0, len * 4 + 64);
    k.f32(p, len).set(x.subarray(0, len));
    k.exports.siluGgml(p, nRows, n);
    x.set(k.f32(p, len));
    // the scalar rest of each row (n not a multiple of 16), as ggml_vec_silu_f32
    for (let r = 0; r < nRows; r++) for (let i = n & ~15; i < n; i++) x[r * n + i] = silu(x[r * n + i]!);
    return true;
  }

  attentionGgml(q: Float32Array, nTok: number, positions: ArrayLike<number>, K: Float32Array | Uint16Array, V: Float32Array | Uint16Array,
    s: AttentionShape, out: Float32Array, gemm: boolean): boolean {
    const sh = this.kvShard.get(K);
    if (sh === undefined || this.kvShard.get(V) !== sh) return false;
    const k = this.shards[sh]!.k;
    const dim = s.nHead * s.headDim;
    let maxPos = 0;
    for (let i = 0; i < nTok; i++) maxPos = Math.max(maxPos, positions[i]!);
    const per = Math.ceil(k.exports.attentionGgmlScratchBytes(s.headDim, maxPos) / 64) * 64;
    const qBytes = Math.ceil((nTok * dim * 4) / 64) * 64, pBytes = Math.ceil((nTok * 4) / 64) * 64;
    const nThreads = this.threads > 1 && s.nHead > 1 && nTok * (maxPos + 1) * s.nHead * s.headDim >= 1 << 14 ? this.threads : 1;
    const base = this.scratch(sh, 2 * qBytes + pBytes + per * nThreads);
    const qPtr = base, outPtr = base + qBytes, posPtr = base + 2 * qBytes, scr = posPtr + pBytes;
    k.f32(qPtr, nTok * dim).set(q.subarray(0, nTok * dim));
    const pv = k.i32(posPtr, nTok);
    for (let i = 0; i < nTok; i++) pv[i] = positions[i]!;
    const kvF16 = K instanceof Uint16Array ? 1 : 0;
    const args = [qPtr, nTok, posPtr, K.byteOffset, V.byteOffset, kvF16, s.nHead, s.nHeadKv, s.headDim, outPtr, scr, 0, 0, gemm ? 1 : 0];
    if (nThreads > 1) this.getPool().parallel(sh, "attentionGgml", s.nHead, 1, 11, 12, args, nThreads, { arg: 10, stride: per });
    else k.exports.attentionGgml(qPtr, nTok, posPtr, K.byteOffset, V.byteOffset, kvF16, s.nHead, s.nHeadKv, s.headDim, outPtr, scr, 0, s.nHead, gemm ? 1 : 0);
    out.set(k.f32(outPtr, nTok * dim));
    return true;
  }

  attentionBatch(q: Float32Array, positions: ArrayLike<number>, starts: readonly number[], K: readonly (Float32Array | Uint16Array)[],
    V: readonly (Float32Array | Uint16Array)[], s: AttentionShape, out: Float32Array): boolean {
    const nSeq = K.length;
    if (!this.batchedAttention) return false;
    if (nSeq === 0) return true;
    const sh = this.kvShard.get(K[0]!);
    if (sh === undefined) return false;
    const f16 = K[0] instanceof Uint16Array;
    for (let i = 0; i < nSeq; i++) {
      if (this.kvShard.get(K[i]!) !== sh || this.kvShard.get(V[i]!) !== sh || (K[i] instanceof Uint16Array) !== f16) return false;
    }
    const k = this.shards[sh]!.k;
    const nTok = starts[nSeq]!, dim = s.nHead * s.headDim;
    let maxPos = 0;
    for (let i = 0; i < nTok; i++) maxPos = Math.max(maxPos, positions[i]!);
    const per = Math.ceil(k.attentionScratchBytes(s.headDim, maxPos) / 64) * 64;
    const al = (b: number) => Math.ceil(b / 64) * 64;
    const qBytes = al(nTok * dim * 4), pBytes = al(nTok * 4), kvBytes = al(nTok * 8);
    let work = 0;
    for (let i = 0; i < nTok; i++) work += positions[i]! + 1;
    const parallel = this.threads > 1 && s.nHead > 1 && work * s.nHead * s.headDim >= 1 << 16;
    const base = this.scratch(sh, 2 * qBytes + pBytes + kvBytes + per * (parallel ? this.threads : 1));
    const qPtr = base, outPtr = base + qBytes, posPtr = outPtr + qBytes, kvPtr = posPtr + pBytes, scr = kvPtr + kvBytes;
    k.f32(qPtr, nTok * dim).set(q.subarray(0, nTok * dim));
    const pv = k.i32(posPtr, nTok);
    for (let i = 0; i < nTok; i++) pv[i] = positions[i]!;
    const kv = k.i32(kvPtr, 2 * nTok);
    for (let i = 0; i < nSeq; i++) {
      for (let t = starts[i]!; t < starts[i + 1]!; t++) { kv[2 * t] = K[i]!.byteOffset; kv[2 * t + 1] = V[i]!.byteOffset; }
    }
    const args = [qPtr, nTok, posPtr, kvPtr, f16 ? 1 : 0, s.nHead, s.nHeadKv, s.headDim, outPtr, scr, 0, 0];
    if (parallel) this.getPool().parallel(sh, "attentionRows", nTok * s.nHead, this.headGrain(s, nTok), 10, 11, args, this.threads, { arg: 9, stride: per });
    else k.exports.attentionRows(qPtr, nTok, posPtr, kvPtr, f16 ? 1 : 0, s.nHead, s.nHeadKv, s.headDim, outPtr, scr, 0, nTok * s.nHead);
    out.set(k.f32(outPtr, nTok * dim));
    return true;
  }

  attention(q: Float32Array, nTok: number, positions: ArrayLike<number>, K: Float32Array | Uint16Array, V: Float32Array | Uint16Array,
    s: AttentionShape, out: Float32Array): boolean {
    const sh = this.kvShard.get(K);
    if (sh === undefined || this.kvShard.get(V) !== sh) return false;
    const k = this.shards[sh]!.k;
    const dim = s.nHead * s.headDim;
    let maxPos = 0;
    for (let i = 0; i < nTok; i++) maxPos = Math.max(maxPos, positions[i]!);
    const per = Math.ceil(k.attentionScratchBytes(s.headDim, maxPos) / 64) * 64;
    const qBytes = Math.ceil((nTok * dim * 4) / 64) * 64, pBytes = Math.ceil((nTok * 4) / 64) * 64;
    const nThreads = this.threads > 1 && s.nHead > 1 && nTok * (maxPos + 1) * s.nHead * s.headDim >= 1 << 16 ? this.threads : 1;
    const base = this.scratch(sh, 2 * qBytes + pBytes + per * nThreads);
    const qPtr = base, outPtr = base + qBytes, posPtr = base + 2 * qBytes, scr = posPtr + pBytes;
    k.f32(qPtr, nTok * dim).set(q.subarray(0, nTok * dim));
    const pv = k.i32(posPtr, nTok);
    for (let i = 0; i < nTok; i++) pv[i] = positions[i]!;
    const kvF16 = K instanceof Uint16Array ? 1 : 0;
    if (nThreads > 1) {
      // heads split across threads (in whole KV groups where there are enough), each thread with its own scratch
      this.getPool().parallel(sh, "attention", s.nHead, this.headGrain(s, 1), 11, 12,
        [qPtr, nTok, posPtr, K.byteOffset, V.byteOffset, kvF16, s.nHead, s.nHeadKv, s.headDim, outPtr, scr, 0, 0], nThreads, { arg: 10, stride: per });
    } else {
      k.exports.attention(qPtr, nTok, posPtr, K.byteOffset, V.byteOffset, kvF16, s.nHead, s.nHeadKv, s.headDim, outPtr, scr, 0, s.nHead);
    }
    out.set(k.f32(outPtr, nTok * dim));
    return true;
  }

  /**
   * Heads per unit of a threaded attention job over nTok tokens: a KV group's query heads (the
   * kernel reads each K/V row once for all of them) when that leaves at least four units a thread
   * (threads are claimed units; fewer, larger ones balance worse), else single heads.
   */
  private headGrain(s: AttentionShape, nTok: number): number {
    const group = Math.max(1, Math.floor(s.nHead / s.nHeadKv));
    return nTok * s.nHeadKv >= 4 * this.threads ? group : 1;
  }

  close(): void {
    this.pool?.close();
    this.pool = undefined;
  }
}
