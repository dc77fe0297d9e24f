/**
 * Matrix products of GGUF weights with activations, with ggml's arithmetic: the activation rows
 * are quantized once to the weight type's dot-product type (Q8_0, Q8_1, Q8_K, F16 or F32) and each
 * output is an integer-per-block dot product (see src/quant).
 */
import { GgmlType, rowBytes as typeRowBytes } from "../../quant/format.js";
import { quantizeActivation, vecDot, vecDotType } from "../../quant/index.js";

/** A 2-D weight matrix, or a stack of nMat of them (the experts of a layer). */
export interface Weight {
  name: string;
  type: GgmlType;
  /** row length (ggml ne[0]) */
  nIn: number;
  /** rows per matrix (ggml ne[1]) */
  nOut: number;
  /** matrices (ggml ne[2]; experts) */
  nMat: number;
  rowBytes: number;
  data: Uint8Array;
  /** placement in a WebAssembly memory (see kernels/backend.ts) */
  shard?: number;
  ptr?: number;
  /** matrices loaded on demand (experts under --max-memory): the storage of matrix `mat` */
  matrix?: (mat: number) => { data: Uint8Array; shard?: number; ptr?: number };
}

/** Where matrix `mat` of a weight lives: bytes, the offset of its first row, and its wasm pointer. */
export function matrixOf(w: Weight, mat: number): { data: Uint8Array; off: number; shard?: number; ptr?: number } {
  if (w.matrix) {
    const s = w.matrix(mat);
    return { data: s.data, off: 0, ...(s.shard !== undefined ? { shard: s.shard, ptr: s.ptr! } : {}) };
  }
  const off = mat * w.nOut * w.rowBytes;
  return { data: w.data, off, ...(w.shard !== undefined ? { shard: w.shard, ptr: w.ptr! + off } : {}) };
}

/** Activations quantized for one dot-product type: nRows rows of rowBytes bytes each. */
export interface QuantizedRows {
  type: GgmlType;
  nRows: number;
  n: number;
  rowBytes: number;
  data: Uint8Array;
}

export function quantizeRows(type: GgmlType, x: Float32Array, nRows: number, n: number): QuantizedRows {
  const rb = type === GgmlType.F32 ? n * 4 : typeRowBytes(type, n);
  const data = new Uint8Array(rb * nRows);
  for (let r = 0; r < nRows; r++) {
    quantizeActivation(type, x, r * n, n, data.subarray(r * rb, (r + 1) * rb));
  }
  return { type, nRows, n, rowBytes: rb, data };
}

/** out[t, r] = W[mat] row r . act row t, for the given subset of activation rows (all when omitted). */
export function matmulQuantized(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows?: ArrayLike<number>): void {
  const nTok = rows ? rows.length : act.nRows;
  const { data, off: base } = matrixOf(w, mat);
  const { nIn, nOut, type } = w;
  for (let r = 0; r < nOut; r++) {
    const wOff = base + r * w.rowBytes;
    for (let t = 0; t < nTok; t++) {
      const src = rows ? rows[t]! : t;
      out[t * nOut + r] = vecDot(type, nIn, data, wOff, act.data, src * act.rowBytes);
    }
  }
}

/** out[nTok, nOut] = x[nTok, nIn] . W[mat]^T */
export function matmul(w: Weight, mat: number, x: Float32Array, nTok: number, out: Float32Array): void {
  matmulQuantized(w, mat, quantizeRows(vecDotType(w.type), x, nTok, w.nIn), out);
}
