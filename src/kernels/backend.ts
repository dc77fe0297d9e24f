/**
 * The seam between the model and its kernels. The model asks a backend for weight storage and
 * for the heavy products; the plain-TypeScript backend is the reference, the WebAssembly backend
 * (src/kernels/wasm) the fast one, and both give the same results.
 */
import type { GgmlType } from "../quant/format.js";
import type { AttentionShape } from "./js/attention.js";
import { matmulGgml, matmulQuantized, quantizeRows, type GgmlPath, type QuantizedRows, type Weight } from "./js/matmul.js";

export interface Backend {
  readonly name: string;
  readonly threads: number;
  /** Storage for `bytes` bytes of weights that live as long as the model. */
  allocWeight(bytes: number): WeightStorage;
  /**
   * Whether this backend keeps matrices of `type` with nOut rows packed (Weight.packed; its
   * kernels read them faster so). The loader then calls packMatrices on their storage once the
   * bytes are in, and marks the weight packed.
   */
  packs?(type: GgmlType, nOut: number): boolean;
  /** Pack nMat matrices of nOut rows of rowBytes bytes, stored one after the other, in place. */
  packMatrices?(st: WeightStorage, type: GgmlType, nOut: number, nMat: number, rowBytes: number): void;
  /** Quantize activation rows x[nRows, n] for dot-product type `type`. */
  quantizeRows(type: GgmlType, x: Float32Array, nRows: number, n: number): QuantizedRows;
  /** out[t, r] = W[mat] row r . act row rows[t] (all rows when omitted). */
  matmul(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows?: ArrayLike<number>): void;
  /** as matmul, with llama.cpp's float arithmetic bit for bit, on llama.cpp's kernel for `path` (src/kernels/js/ggml.ts) */
  matmulGgml(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows: ArrayLike<number> | undefined, path: GgmlPath): void;
  /** KV cache storage (n elements, F16 bits or F32); plain arrays when absent */
  allocKv?(n: number, f16: boolean): Float32Array | Uint16Array;
  freeKv?(v: Float32Array | Uint16Array): void;
  /** attentionGgml (src/kernels/js/attention.ts) over a cache from allocKv; false when it cannot (the caller runs the reference) */
  attentionGgml?(q: Float32Array, nTok: number, positions: ArrayLike<number>, K: Float32Array | Uint16Array, V: Float32Array | Uint16Array,
    s: AttentionShape, out: Float32Array, gemm: boolean): boolean;
  /** siluRow (src/kernels/js/ggml.ts) over nRows rows of n floats in place; false when it cannot */
  siluGgml?(x: Float32Array, nRows: number, n: number): boolean;
  /**
   * Several products at once (one job for all threads): out_i[t, r] = W_i[mat_i] row r . act_i row t.
   * False when it cannot (the caller then runs them one by one); results as matmul's.
   */
  matmulMany?(items: readonly { w: Weight; mat: number; act: QuantizedRows; out: Float32Array }[]): boolean;
  /**
   * One MoE layer's SwiGLU experts for nTok rows of x (normalized, [nTok, nIn]): for each row t and
   * slot s < k, expert e = experts[t*k+s] computes down_e(silu(gate_e x_t) * up_e x_t), scaled by
   * weights[t*k+s]; out[t] is the sum over slots in slot order (float32 roundings as Mixtral.moe
   * computes it, bit for bit). False when it cannot (the caller then runs the products one by one).
   */
  moeFfn?(gate: Weight, up: Weight, down: Weight, x: Float32Array, nTok: number, experts: Int32Array, weights: Float32Array, k: number, out: Float32Array): boolean;
  /**
   * attention for the rows of several sequences in one call: rows [starts[i], starts[i+1]) of q use
   * caches K[i], V[i] (from allocKv), positions per row; results as attention's for each sequence.
   * False when it cannot (the caller then runs attention per sequence).
   */
  attentionBatch?(q: Float32Array, positions: ArrayLike<number>, starts: readonly number[], K: readonly (Float32Array | Uint16Array)[],
    V: readonly (Float32Array | Uint16Array)[], s: AttentionShape, out: Float32Array): boolean;
  /** attention over a cache from allocKv; returns false when it cannot (the caller then runs the reference) */
  attention?(q: Float32Array, nTok: number, positions: ArrayLike<number>, K: Float32Array | Uint16Array, V: Float32Array | Uint16Array,
    s: AttentionShape, out: Float32Array): boolean;
  close(): void;
}

/** Where a weight's bytes live: a view for reading plus backend-specific placement. */
export interface WeightStorage {
  data: Uint8Array;
  /** memory shard and byte offset, for WebAssembly backends */
  shard?: number;
  ptr?: number;
}

export class JsBackend implements Backend {
  readonly name = "js";
  readonly threads = 1;
  allocWeight(bytes: number): WeightStorage {
    return { data: new Uint8Array(bytes) };
  }
  quantizeRows(type: GgmlType, x: Float32Array, nRows: number, n: number): QuantizedRows {
    return quantizeRows(type, x, nRows, n);
  }
  matmul(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows?: ArrayLike<number>): void {
    matmulQuantized(w, mat, act, out, rows);
  }
  matmulGgml(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows: ArrayLike<number> | undefined, path: GgmlPath): void {
    matmulGgml(w, mat, act, out, rows, path);
  }
  close(): void {}
}
