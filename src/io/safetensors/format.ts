/**
 * Facts of the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   u64 little-endian N | N bytes of UTF-8 JSON header | data
 *
 * The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets are
 * relative to the start of the data, end exclusive), plus an optional "__metadata__" object of
 * string -> string. Tensors are row-major (C order), little-endian. The data must be indexed
 * entirely, without holes or overlaps. Writers pad the header with spaces to a multiple of 8.
 */
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from "../../quant/f16.js";
import { ArgumentError, UnsupportedError } from "../../errors.js";

export type StDtype =
  | "F64" | "F32" | "F16" | "BF16"
  | "I64" | "I32" | "I16" | "I8" | "U64" | "U32" | "U16" | "U8" | "BOOL"
  | "F8_E4M3" | "F8_E5M2";

/** Bytes per element of each dtype. */
export const DTYPE_SIZE: Readonly<Record<StDtype, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1, U64: 8, U32: 4, U16: 2, U8: 1, BOOL: 1,
  F8_E4M3: 1, F8_E5M2: 1,
};

export function isDtype(s: unknown): s is StDtype {
  return typeof s === "string" && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

/** The safetensors library refuses headers above 100 MB; so do we (before allocating them). */
export const MAX_HEADER_BYTES = 100_000_000;

export interface StTensorInfo {
  name: string;
  dtype: StDtype;
  /** row-major shape as in PyTorch (the last dimension varies fastest) */
  shape: number[];
  /** byte range within the data section */
  begin: number;
  end: number;
}

export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Float dtypes that convert to and from float32 here. */
export type FloatDtype = "F32" | "F16" | "BF16";

export function isFloatDtype(d: string): d is FloatDtype {
  return d === "F32" || d === "F16" || d === "BF16";
}

/**
 * Decode `n` elements of a float (or F64) tensor's little-endian bytes to float32.
 * F64 is rounded to float32; integer dtypes are refused.
 */
export function toF32(dtype: StDtype, bytes: Uint8Array, n: number, what: string, out: Float32Array = new Float32Array(n), outOff = 0): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32":
      if ((bytes.byteOffset & 3) === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n), outOff);
      else for (let i = 0; i < n; i++) out[outOff + i] = dv.getFloat32(4 * i, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[outOff + i] = f16ToF32(dv.getUint16(2 * i, true));
      return out;
    case "BF16":
      for (let i = 0; i < n; i++) out[outOff + i] = bf16ToF32(dv.getUint16(2 * i, true));
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[outOff + i] = dv.getFloat64(8 * i, true);
      return out;
    default:
      throw new UnsupportedError(`${what}: dtype ${dtype} is not a floating-point type; expected F32, F16, BF16 or F64`);
  }
}

/** Encode float32 values as F32, F16 or BF16 little-endian bytes (round to nearest even). */
export function fromF32(dtype: FloatDtype, x: Float32Array, out?: Uint8Array, outOff = 0): Uint8Array {
  const n = x.length;
  const dst = out ?? new Uint8Array(n * DTYPE_SIZE[dtype]);
  const dv = new DataView(dst.buffer, dst.byteOffset + outOff, n * DTYPE_SIZE[dtype]);
  switch (dtype) {
    case "F32":
      if (((dst.byteOffset + outOff) & 3) === 0) new Float32Array(dst.buffer, dst.byteOffset + outOff, n).set(x);
      else for (let i = 0; i < n; i++) dv.setFloat32(4 * i, x[i]!, true);
      return dst;
    case "F16":
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToF16(x[i]!), true);
      return dst;
    case "BF16":
      for (let i = 0; i < n; i++) dv.setUint16(2 * i, f32ToBf16(x[i]!), true);
      return dst;
    default:
      throw new ArgumentError(`cannot write dtype ${String(dtype)}`);
  }
}
