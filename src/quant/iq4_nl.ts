// IQ4_NL: 32 weights per block, 18 bytes (the Q4_0 layout with a non-linear value table):
//   [0..2)   d   f16 scale
//   [2..18)  qs  u8[16]   weight[j] = KVALUES[qs[j] & 15] * d, weight[j+16] = KVALUES[qs[j] >> 4] * d
// Matches ggml dequantize_row_iq4_nl, quantize_iq4_nl (no imatrix) and vec_dot_iq4_nl_q8_0 (activation: Q8_0).

import { f32ToF16 } from "./f16.js";
import { GgmlType } from "./format.js";
import { ViewCache, readF16, writeU16 } from "./bytes.js";
import { GROUP_MAX_EPS, bestIndexInt8 } from "./quant-search.js";
import { Q8_0_BYTES } from "./q8_0.js";
import type { TypeTraits } from "./traits.js";

export const QK4_NL = 32;
export const IQ4_NL_BYTES = 18;

/** ggml kvalues_iq4nl */
export const IQ4_NL_VALUES: Int8Array = Int8Array.of(-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113);

const aViews = new ViewCache();

export function dequantizeIQ4_NL(src: Uint8Array, srcOff: number, dst: Float32Array, dstOff: number, n: number): void {
  for (let b = 0; b < n / QK4_NL; b++) {
    const o = srcOff + b * IQ4_NL_BYTES;
    const d = readF16(src, o);
    const y = dstOff + b * QK4_NL;
    for (let j = 0; j < 16; j++) {
      const q = src[o + 2 + j]!;
      dst[y + j] = IQ4_NL_VALUES[q & 15]! * d;
      dst[y + j + 16] = IQ4_NL_VALUES[q >> 4]! * d;
    }
  }
}

/** Σ over blocks of d_w * d_a * Σ KVALUES[q]*qa. */
export function vecDotIQ4_NLQ8_0(n: number, w: Uint8Array, wOff: number, act: Uint8Array, aOff: number): number {
  const a8 = aViews.i8(act);
  const ab = act.byteOffset;
  const kv = IQ4_NL_VALUES;
  let sum = 0;
  for (let b = 0; b < n / QK4_NL; b++) {
    const wo = wOff + b * IQ4_NL_BYTES;
    const ao = aOff + b * Q8_0_BYTES;
    const aq = ab + ao + 2;
    let sumi = 0;
    for (let j = 0; j < 16; j++) {
      const q = w[wo + 2 + j]!;
      sumi += kv[q & 15]! * a8[aq + j]! + kv[q >> 4]! * a8[aq + j + 16]!;
    }
    sum += sumi * (readF16(w, wo) * readF16(act, ao));
  }
  return sum;
}

const f = Math.fround;
const NTRY = 7;

/**
 * ggml quantize_iq4_nl without quant weights (quantize_row_iq4_nl_impl, one block of 32, ntry 7):
 * weights x², scale d = -max/127 first, then 15 trial scales (itry - 127)/max, keeping the best
 * weighted least-squares fit; the quants are finally re-chosen against 1/d.
 */
export function quantizeIQ4_NLRef(x: Float32Array, xOff: number, n: number, dst: Uint8Array, dstOff: number): void {
  const kv = IQ4_NL_VALUES;
  for (let b = 0; b < n / QK4_NL; b++) {
    const xo = xOff + b * QK4_NL;
    const o = dstOff + b * IQ4_NL_BYTES;
    let amax = 0;
    let max = 0;
    for (let j = 0; j < QK4_NL; j++) {
      const ax = Math.abs(x[xo + j]!);
      if (ax > amax) {
        amax = ax;
        max = x[xo + j]!;
      }
    }
    let d = 0;
    if (amax >= GROUP_MAX_EPS) {
      d = f(-max / kv[0]!);
      let id = f(1 / d);
      let sumqx = 0;
      let sumq2 = 0;
      for (let j = 0; j < QK4_NL; j++) {
        const xj = x[xo + j]!;
        const q = kv[bestIndexInt8(kv, f(id * xj))]!;
        const w = f(xj * xj);
        sumqx = f(sumqx + f(f(w * q) * xj));
        sumq2 = f(sumq2 + f(f(w * q) * q));
      }
      d = f(sumqx / sumq2);
      let best = f(d * sumqx);
      for (let itry = -NTRY; itry <= NTRY; itry++) {
        id = f((itry + kv[0]!) / max);
        sumqx = 0;
        sumq2 = 0;
        for (let j = 0; j < QK4_NL; j++) {
          const xj = x[xo + j]!;
          const q = kv[bestIndexInt8(kv, f(id * xj))]!;
          const w = f(xj * xj);
          sumqx = f(sumqx + f(f(w * q) * xj));
          sumq2 = f(sumq2 + f(f(w * q) * q));
        }
        if (sumq2 > 0 && f(sumqx * sumqx) > f(best * sumq2)) {
          d = f(sumqx / sumq2);
          best = f(d * sumqx);
        }
      }
    }
    writeU16(dst, o, f32ToF16(d));
    const id = d ? f(1 / d) : 0;
    for (let j = 0; j < 16; j++) {
      const l0 = bestIndexInt8(kv, f(id * x[xo + j]!));
      const l1 = bestIndexInt8(kv, f(id * x[xo + 16 + j]!));
      dst[o + 2 + j] = l0 | (l1 << 4);
    }
  }
}

export const IQ4_NL: TypeTraits = {
  type: GgmlType.IQ4_NL,
  blockSize: QK4_NL,
  typeSize: IQ4_NL_BYTES,
  vecDotType: GgmlType.Q8_0,
  dequantize: dequantizeIQ4_NL,
  vecDot: vecDotIQ4_NLQ8_0,
  quantizeRef: quantizeIQ4_NLRef,
};
