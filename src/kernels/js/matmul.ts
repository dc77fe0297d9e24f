/**
 * Matrix products of GGUF weights with activations, with ggml's arithmetic: the activation rows
 * are quantized once to the weight type's dot-product type (Q8_0, Q8_1, Q8_K, F16 or F32) and each
 * output is an integer-per-block dot product (see src/quant).
 */
import { F16_TABLE } from "../../quant/f16.js";
import { ArgumentError } from "../../errors.js";
import { GgmlType, blockFormat, rowBytes as typeRowBytes, typeName } from "../../quant/format.js";
import { quantizeActivation, vecDot, vecDotType } from "../../quant/index.js";
import { dotF16Vec, dotF32Gemm, dotF32Vec } from "./ggml.js";
import { ggmlDot, ggmlDotSupported } from "./ggml-dot.js";

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
  /**
   * The rows are packed (the WebAssembly backend's layout for its kernels: interleaved four at a
   * time, block by block; see packedBlockOffset). Read and write such bytes with readRow,
   * plainMatrix and writePlainMatrix; the reference kernels do not take them.
   */
  packed?: boolean;
}

/** The types whose matrices a backend may pack (the 32-element block types and the K-quants). */
const PACKABLE = new Set<GgmlType>([
  GgmlType.Q4_0, GgmlType.Q4_1, GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q8_0, GgmlType.IQ4_NL,
  GgmlType.Q2_K, GgmlType.Q3_K, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K,
]);

/** Whether a matrix of this type and row count can be packed: a packable type and a multiple of 4 rows. */
export function canPack(type: GgmlType, nOut: number): boolean {
  return PACKABLE.has(type) && nOut % 4 === 0;
}

/**
 * Where block b of row r lies in a packed matrix: groups of four rows keep their 4·rowBytes bytes,
 * inside which the rows' blocks alternate (block 0 of rows 0..3, block 1 of rows 0..3, ...).
 */
export function packedBlockOffset(r: number, b: number, rowBytes: number, blockBytes: number): number {
  return (r & ~3) * rowBytes + (4 * b + (r & 3)) * blockBytes;
}

/** Bytes of one block of a packable type. */
function blockBytesOf(type: GgmlType): number {
  return blockFormat(type)!.typeSize;
}

/**
 * Pack (or with unpack, unpack) nRows rows (a multiple of 4) of rowBytes bytes from src into dst
 * (distinct arrays of the same length).
 */
export function packRows(type: GgmlType, src: Uint8Array, dst: Uint8Array, nRows: number, rowBytes: number, unpack = false): void {
  const tb = blockBytesOf(type), nb = rowBytes / tb;
  if (nRows % 4 !== 0 || !Number.isInteger(nb)) throw new ArgumentError(`internal: cannot pack ${nRows} rows of ${rowBytes} bytes of ${typeName(type)}`);
  for (let r = 0; r < nRows; r++) {
    for (let b = 0; b < nb; b++) {
      const plain = r * rowBytes + b * tb, packed = packedBlockOffset(r, b, rowBytes, tb);
      if (unpack) dst.set(src.subarray(packed, packed + tb), plain);
      else dst.set(src.subarray(plain, plain + tb), packed);
    }
  }
}

/** Row `row` of matrix `mat` in the plain layout (a view when the weight is not packed). */
export function readRow(w: Weight, mat: number, row: number): Uint8Array {
  const { data, off } = matrixOf(w, mat);
  if (!w.packed) return data.subarray(off + row * w.rowBytes, off + (row + 1) * w.rowBytes);
  const tb = blockBytesOf(w.type), nb = w.rowBytes / tb;
  const out = new Uint8Array(w.rowBytes);
  for (let b = 0; b < nb; b++) {
    const o = off + packedBlockOffset(row, b, w.rowBytes, tb);
    out.set(data.subarray(o, o + tb), b * tb);
  }
  return out;
}

/** The bytes of matrix `mat` in the plain layout (a copy when the weight is packed, else a view). */
export function plainMatrix(w: Weight, mat: number): Uint8Array {
  const { data, off } = matrixOf(w, mat);
  const view = data.subarray(off, off + w.nOut * w.rowBytes);
  if (!w.packed) return view;
  const out = new Uint8Array(view.length);
  packRows(w.type, view, out, w.nOut, w.rowBytes, true);
  return out;
}

/** Replace matrix `mat` with these plain-layout bytes (packed on the way in when the weight is). */
export function writePlainMatrix(w: Weight, mat: number, bytes: Uint8Array): void {
  const { data, off } = matrixOf(w, mat);
  if (bytes.length !== w.nOut * w.rowBytes) throw new ArgumentError(`internal: ${w.name}: ${bytes.length} bytes for a matrix of ${w.nOut * w.rowBytes}`);
  if (!w.packed) {
    data.set(bytes, off);
    return;
  }
  packRows(w.type, bytes, data.subarray(off, off + bytes.length), w.nOut, w.rowBytes);
}

/** The reference kernels read the plain layout only. */
function assertPlain(w: Weight): void {
  if (w.packed) throw new ArgumentError(`internal: ${w.name} is packed for the WebAssembly kernels; the reference kernels cannot read it`);
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
  assertPlain(w);
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

/**
 * llama.cpp's kernel for a weight product: llamafile's sgemm ("gemm", a dense product over two or
 * more activation rows) or ggml's vec_dot ("vec", a single row, and every expert product).
 */
export type GgmlPath = "gemm" | "vec";

/** Whether matmulGgml reproduces llama.cpp for this weight type (others use matmulQuantized's arithmetic). */
export function ggmlMatmulSupported(type: GgmlType): boolean {
  return type === GgmlType.F32 || type === GgmlType.F16 || ggmlDotSupported(type);
}

/**
 * Whether llama.cpp would take sgemm for these weights on `path`: float weights only when their
 * shape suits tinyBLAS (rows a multiple of 4, row length a multiple of 16), else vec_dot.
 */
export function ggmlGemm(w: Weight, path: GgmlPath): boolean {
  if (path !== "gemm") return false;
  return w.type === GgmlType.F32 || w.type === GgmlType.F16 ? w.nOut % 4 === 0 && w.nIn % 16 === 0 : true;
}

/**
 * As matmulQuantized, with llama.cpp's float arithmetic bit for bit (src/kernels/js/ggml.ts,
 * ggml-dot.ts): out[t, r] = W[mat] row r . act row rows[t]. F16 weights take F16 activations.
 */
export function matmulGgml(w: Weight, mat: number, act: QuantizedRows, out: Float32Array, rows: ArrayLike<number> | undefined, path: GgmlPath): void {
  if (!ggmlMatmulSupported(w.type)) {
    matmulQuantized(w, mat, act, out, rows);
    return;
  }
  assertPlain(w);
  const nTok = rows ? rows.length : act.nRows;
  const { data, off: base } = matrixOf(w, mat);
  const { nIn, nOut, type } = w;
  const gemm = ggmlGemm(w, path);
  if (type === GgmlType.F32 || type === GgmlType.F16) {
    const f16 = type === GgmlType.F16;
    const x = new Float32Array(nTok * nIn);
    for (let t = 0; t < nTok; t++) {
      const src = rows ? rows[t]! : t;
      for (let i = 0; i < nIn; i++) {
        const o = src * act.rowBytes;
        x[t * nIn + i] = f16 ? F16_TABLE[act.data[o + 2 * i]! | (act.data[o + 2 * i + 1]! << 8)]! : readF32At(act.data, o + 4 * i);
      }
    }
    const wr = new Float32Array(nIn);
    for (let r = 0; r < nOut; r++) {
      const wOff = base + r * w.rowBytes;
      for (let i = 0; i < nIn; i++) wr[i] = f16 ? F16_TABLE[data[wOff + 2 * i]! | (data[wOff + 2 * i + 1]! << 8)]! : readF32At(data, wOff + 4 * i);
      for (let t = 0; t < nTok; t++) {
        out[t * nOut + r] = gemm ? dotF32Gemm(wr, 0, x, t * nIn, nIn) : f16 ? dotF16Vec(wr, 0, x, t * nIn, nIn) : dotF32Vec(wr, 0, x, t * nIn, nIn);
      }
    }
    return;
  }
  for (let r = 0; r < nOut; r++) {
    const wOff = base + r * w.rowBytes;
    for (let t = 0; t < nTok; t++) {
      const src = rows ? rows[t]! : t;
      out[t * nOut + r] = ggmlDot(type, nIn, data, wOff, act.data, src * act.rowBytes, gemm);
    }
  }
}

const f32b = new Float32Array(1);
const u8b = new Uint8Array(f32b.buffer);
function readF32At(b: Uint8Array, o: number): number {
  u8b[0] = b[o]!; u8b[1] = b[o + 1]!; u8b[2] = b[o + 2]!; u8b[3] = b[o + 3]!;
  return f32b[0]!;
}
