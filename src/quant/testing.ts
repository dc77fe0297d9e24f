// Test support for the quant kernels (used by *.test.ts here and by the faster backends' tests):
// a seeded RNG and a slow float64 dot product over dequantized operands. Not used at run time.

import { GgmlType, blockFormat } from "./format.js";
import { dequantize, vecDotType } from "./index.js";

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal samples from a uniform source (Box-Muller). */
export function gaussian(u: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
}

/**
 * float64 Σ w·a of a dequantized weight row (wDeq, n values; its bytes are wRow) and a dequantized
 * activation row (aDeq; its bytes are act). For Q8_1 activations the weight's min multiplies the
 * stored block sum s (= f16(d·Σq)), not d·Σq, exactly as ggml's vec_dot_q4_1_q8_1 does; the two
 * differ by an f16 rounding (≈5e-4 of the min term), so the reference has to model it.
 * Returns [dot, Σ|w·a|] (the second is the natural scale for the rounding error of a dot).
 */
export function referenceDot(type: GgmlType, wRow: Uint8Array, wDeq: Float32Array, act: Uint8Array, aDeq: Float32Array): [number, number] {
  let dot = 0;
  let mag = 0;
  for (let i = 0; i < wDeq.length; i++) {
    dot += wDeq[i]! * aDeq[i]!;
    mag += Math.abs(wDeq[i]! * aDeq[i]!);
  }
  if (vecDotType(type) === GgmlType.Q8_1) {
    const wBytes = blockFormat(type)!.typeSize;
    const aBytes = blockFormat(GgmlType.Q8_1)!.typeSize;
    const f16 = new Float32Array(1);
    const readF16 = (b: Uint8Array, o: number): number => {
      dequantize(GgmlType.F16, b, o, f16, 0, 1);
      return f16[0]!;
    };
    for (let b = 0; b < wDeq.length / 32; b++) {
      const m = readF16(wRow, b * wBytes + 2); // Q4_1 / Q5_1: m follows d
      let sa = 0;
      for (let j = 0; j < 32; j++) sa += aDeq[b * 32 + j]!;
      dot += m * readF16(act, b * aBytes + 2) - m * sa;
    }
  }
  return [dot, mag];
}
