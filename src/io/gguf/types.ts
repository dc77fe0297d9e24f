import type { GgmlType } from "../../quant/format.js";

/** GGUF metadata value types (gguf.h). */
export enum GgufType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
export const GGUF_DEFAULT_ALIGNMENT = 32;

export type GgufTypedArray =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array
  | Float32Array | Float64Array | BigUint64Array | BigInt64Array;

/** An array value: numeric arrays are typed arrays, others (string, bool, nested arrays) are JS arrays. */
export interface GgufArray {
  itemType: GgufType;
  items: GgufTypedArray | string[] | boolean[] | GgufArray[];
}

export type GgufValue = number | bigint | boolean | string | GgufArray;

export interface GgufEntry {
  type: GgufType;
  value: GgufValue;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] is the row length (fastest varying). */
  dims: number[];
  type: GgmlType;
  /** offset relative to the start of the data section */
  offset: number;
  /** bytes of tensor data */
  nBytes: number;
  nElements: number;
}

export function isArray(v: GgufValue): v is GgufArray {
  return typeof v === "object" && v !== null && "itemType" in v;
}
