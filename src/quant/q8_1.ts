// Q8_1: 32 values per block, 36 bytes (activation-only type, for Q4_1/Q5_1 weights):
//   [0..2)   d   f16 scale
//   [2..4)   s   f16 d * Σ qs    (lets the weight's min be applied with one multiply per block)
//   [4..36)  qs  int8[32]        value[i] = d * qs[i]
// Matches ggml-cpu quantize_row_q8_1 (x86 SIMD path: s is computed from the float32 d, not the f16 one).

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, roundHalfEven, writeU16 } from "./bytes.js";
import type { TypeTraits } from "./traits.js";

export const QK8_1 = 32;
export const Q8_1_BYTES = 36;

const views = new ViewCache();

/** value = qs * d (the s field is only a cached sum). */
export function dequantizeQ8_1(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  const s8 = views.i8(src);
  const base = src.byteOffset;
  for (let b = 0; b < n / QK8_1; b++) {
    const o = srcOff + b * Q8_1_BYTES;
    const d = readF16(src, o);
    const q = base + o + 4;
    const y = dstOff + b * QK8_1;
    for (let j = 0; j < QK8_1; j++) dst[y + j] = s8[q + j]! * d;
  }
}

/** ggml-cpu activation quantizer: q = round-half-even(x * (127/amax)), d = amax/127, s = d * Σq. */
export function quantizeQ8_1Act(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  for (let b = 0; b < n / QK8_1; b++) {
    const xo = xOff + b * QK8_1;
    const o = dstOff + b * Q8_1_BYTES;
    let amax = 0;
    for (let j = 0; j < QK8_1; j++) {
      const v = Math.abs(x[xo + j]!);
      if (v > amax) amax = v;
    }
    const d = Math.fround(amax / 127);
    const id = amax !== 0 ? Math.fround(127 / amax) : 0;
    let sum = 0;
    for (let j = 0; j < QK8_1; j++) {
      const q = roundHalfEven(Math.fround(x[xo + j]! * id));
      sum += q;
      dst[o + 4 + j] = q & 0xff;
    }
    writeU16(dst, o, f32ToF16(d));
    writeU16(dst, o + 2, f32ToF16(Math.fround(d * sum)));
  }
}

export const Q8_1: TypeTraits = {
  type: GgmlType.Q8_1,
  blockSize: QK8_1,
  typeSize: Q8_1_BYTES,
  vecDotType: GgmlType.Q8_1,
  dequantize: dequantizeQ8_1,
  fromFloat: quantizeQ8_1Act,
};
