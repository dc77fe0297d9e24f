// The per-type kernel table entry (ggml's type_traits + type_traits_cpu in one record).
// Each block format file exports one of these; index.ts is the only place that looks them up.

import type { GgmlType } from "./format.js";

export interface TypeTraits {
  readonly type: GgmlType;
  /** elements per block */
  readonly blockSize: number;
  /** bytes per block */
  readonly typeSize: number;
  /** the activation type ggml-cpu quantizes src1 to before calling vecDot (its vec_dot_type) */
  readonly vecDotType: GgmlType;
  /** dst[dstOff .. dstOff+n) = values of the n elements at byte srcOff (n a multiple of blockSize); ggml to_float */
  dequantize(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void;
  /** Σ w·a over n elements: weights of this type at wOff, activation of vecDotType at aOff; ggml vec_dot */
  vecDot?(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number;
  /** reference weight quantizer (what llama-quantize writes without an imatrix); ggml quantize_row_*_ref */
  quantizeRef?(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void;
  /**
   * weight quantizer with an importance matrix (ggml quantize_<type>(src, dst, nrow, n_per_row,
   * quant_weights)): nRows rows of nPerRow at x[xOff ..] to dst[dstOff ..], importance[nPerRow] one
   * weight per column. Without importance it does what ggml does with quant_weights NULL (or, for
   * the types llama.cpp refuses to quantize without one, a declared fallback: see the type's file).
   */
  quantizeImatrix?(x: Float32Array, xOff: number, nRows: number, nPerRow: number, dst: Uint8Array, dstOff: number, importance?: Float32Array): void;
  /** activation quantizer as ggml-cpu's x86 from_float does it (only for activation types) */
  fromFloat?(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void;
}

type RowQuantizer = (x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number) => void;
type WeightedRowQuantizer = (x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number, importance: Float32Array) => void;

/**
 * quantizeImatrix for a type whose ggml quantize_<type> works row by row: the weighted quantizer
 * with an importance row, the reference one without (as ggml with quant_weights NULL).
 */
export function rowsQuantizer(blockSize: number, typeSize: number, ref: RowQuantizer, weighted: WeightedRowQuantizer): NonNullable<TypeTraits["quantizeImatrix"]> {
  return (x, xOff, nRows, nPerRow, dst, dstOff, importance) => {
    const rowBytes = (nPerRow / blockSize) * typeSize;
    for (let r = 0; r < nRows; r++) {
      if (importance) weighted(x, xOff + r * nPerRow, nPerRow, dst, dstOff + r * rowBytes, importance);
      else ref(x, xOff + r * nPerRow, nPerRow, dst, dstOff + r * rowBytes);
    }
  };
}
