// The uniform entry point to the ggml tensor types: dequantize, activation quantization, dot
// products and reference weight quantizers, dispatched through one table (ggml's type_traits).
// These are the reference kernels (plain loops); faster backends are tested against them.

import { UnsupportedError } from "../errors.js";
import { BF16, F16, F32 } from "./float-types.js";
import { GgmlType, typeName } from "./format.js";
import { IQ1_S } from "./iq1_s.js";
import { IQ2_S } from "./iq2_s.js";
import { IQ2_XS } from "./iq2_xs.js";
import { IQ2_XXS } from "./iq2_xxs.js";
import { IQ3_S } from "./iq3_s.js";
import { IQ3_XXS } from "./iq3_xxs.js";
import { IQ4_NL } from "./iq4_nl.js";
import { IQ4_XS } from "./iq4_xs.js";
import { Q2_K } from "./q2_k.js";
import { Q3_K } from "./q3_k.js";
import { Q4_0 } from "./q4_0.js";
import { Q4_1 } from "./q4_1.js";
import { Q4_K } from "./q4_k.js";
import { Q5_0 } from "./q5_0.js";
import { Q5_1 } from "./q5_1.js";
import { Q5_K } from "./q5_k.js";
import { Q6_K } from "./q6_k.js";
import { Q8_0 } from "./q8_0.js";
import { Q8_1 } from "./q8_1.js";
import { Q8_K } from "./q8_k.js";
import type { TypeTraits } from "./traits.js";

export type { TypeTraits } from "./traits.js";

/** Every type this module knows, weight and activation-only ones (Q8_1, Q8_K) alike. */
export const FORMATS: ReadonlyMap<GgmlType, TypeTraits> = new Map<GgmlType, TypeTraits>(
  [
    F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, IQ4_NL,
    IQ4_XS, IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, IQ2_XXS, IQ1_S,
  ].map((t) => [t.type, t]),
);

function traits(type: GgmlType, what: string): TypeTraits {
  const t = FORMATS.get(type);
  if (!t) throw new UnsupportedError(`tensor type ${typeName(type)} is not supported (${what})`);
  return t;
}

function checkMultiple(t: TypeTraits, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n % t.blockSize !== 0) {
    throw new RangeError(`${typeName(t.type)}: element count ${n} is not a multiple of the block size ${t.blockSize}`);
  }
}

/** Whether weights of this type can be dequantized and multiplied (vecDot) here. */
export function isSupported(type: GgmlType): boolean {
  return FORMATS.get(type)?.vecDot !== undefined;
}

/** Bytes of n elements of the type (n a multiple of its block size). */
export function byteSize(type: GgmlType, n: number): number {
  const t = traits(type, "byteSize");
  checkMultiple(t, n);
  return (n / t.blockSize) * t.typeSize;
}

/**
 * Dequantize nElems values (a multiple of the block size) starting at byte srcOff of src into
 * dst[dstOff ..]. Bit-exact with ggml's to_float.
 * @example dequantize(GgmlType.Q4_0, bytes, 0, out, 0, 512)
 */
export function dequantize(type: GgmlType, src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, nElems: number): void {
  const t = traits(type, "dequantize");
  checkMultiple(t, nElems);
  t.dequantize(src, srcOff, dst, dstOff, nElems);
}

/** The activation type ggml-cpu quantizes src1 to for weights of this type (its vec_dot_type). */
export function vecDotType(type: GgmlType): GgmlType {
  const t = traits(type, "vecDotType");
  if (!t.vecDot) throw new UnsupportedError(`tensor type ${typeName(type)} has no dot product`);
  return t.vecDotType;
}

/**
 * Quantize an activation row x[xOff .. xOff+n) into dotType (Q8_0, Q8_1, Q8_K, F16, BF16 or F32)
 * exactly as ggml-cpu's from_float does. Writes at offset 0 of `out` when given (it must hold
 * byteSize(dotType, n) bytes), else into a new array; returns the bytes.
 * @example const a = quantizeActivation(vecDotType(GgmlType.Q4_K), x, 0, x.length)
 */
export function quantizeActivation(dotType: GgmlType, x: Float32Array, xOff: number, n: number, out?: Uint8Array): Uint8Array {
  const t = traits(dotType, "activation quantization");
  if (!t.fromFloat) throw new UnsupportedError(`${typeName(dotType)} is not an activation type`);
  checkMultiple(t, n);
  const size = (n / t.blockSize) * t.typeSize;
  const dst = out ?? new Uint8Array(size);
  if (dst.length < size) throw new RangeError(`activation buffer holds ${dst.length} bytes, ${size} needed`);
  t.fromFloat(x, xOff, n, dst, 0);
  return dst;
}

/**
 * Dot product of one weight row (n elements of `type` at byte wOff of w) with an activation row
 * already quantized to vecDotType(type) (at byte aOff of act), with ggml's per-block integer sums.
 * @example vecDot(GgmlType.Q4_0, 512, w, row * byteSize(GgmlType.Q4_0, 512), a, 0)
 */
export function vecDot(type: GgmlType, n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const t = traits(type, "vecDot");
  if (!t.vecDot) throw new UnsupportedError(`tensor type ${typeName(type)} has no dot product`);
  if (n % t.blockSize !== 0) checkMultiple(t, n);
  return t.vecDot(n, w, wOff, act, aOff);
}

/** Whether quantizeWeights can write this type. */
export function canQuantizeWeights(type: GgmlType): boolean {
  const t = FORMATS.get(type);
  return t?.quantizeRef !== undefined || t?.quantizeImatrix !== undefined;
}

/** Whether quantizeWeights uses an importance matrix for this type (the others ignore it). */
export function usesImportance(type: GgmlType): boolean {
  return FORMATS.get(type)?.quantizeImatrix !== undefined;
}

/**
 * Quantize a [nRows, nPerRow] float matrix to `type`, rows concatenated. Without `importance`:
 * ggml's reference quantizers (what llama-quantize writes without an importance matrix),
 * bit-exact; every weight type here has one except IQ2_XXS and IQ2_XS, which llama.cpp only
 * writes with an imatrix (see their files for the fallback used here). With `importance`
 * (one weight per column, length nPerRow): ggml's imatrix quantizer for the types that have one
 * here (Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K, IQ4_XS, IQ3_XXS, IQ3_S, IQ2_XS, IQ2_XXS; see
 * usesImportance); the others (F16, BF16, Q8_0 as in ggml, and IQ4_NL for now) ignore it.
 * @example const bytes = quantizeWeights(GgmlType.Q4_K, x, 8, 512) // 8 rows x 2 blocks x 144 bytes
 */
export function quantizeWeights(type: GgmlType, x: Float32Array, nRows: number, nPerRow: number, importance?: Float32Array): Uint8Array {
  const t = traits(type, "quantizeWeights");
  if (!t.quantizeRef && !t.quantizeImatrix) throw new UnsupportedError(`quantizing to ${typeName(type)} is not implemented`);
  checkMultiple(t, nPerRow);
  if (x.length < nRows * nPerRow) throw new RangeError(`input holds ${x.length} values, ${nRows}x${nPerRow} needed`);
  if (importance && importance.length !== nPerRow) throw new RangeError(`importance holds ${importance.length} values, ${nPerRow} (one per column) needed`);
  const rowSize = (nPerRow / t.blockSize) * t.typeSize;
  const out = new Uint8Array(nRows * rowSize);
  if (t.quantizeImatrix && (importance || !t.quantizeRef)) t.quantizeImatrix(x, 0, nRows, nPerRow, out, 0, importance);
  else for (let r = 0; r < nRows; r++) t.quantizeRef!(x, r * nPerRow, nPerRow, out, r * rowSize);
  return out;
}
