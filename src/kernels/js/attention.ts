/**
 * Causal multi-head attention with grouped-query heads over the KV cache, as llama.cpp computes it
 * without flash attention: scores = K.q, softmax(scores * 1/sqrt(headDim)) with sums in double, then
 * the weighted sum of V. With an F16 cache, q and the probabilities are rounded to half before their
 * products, because ggml converts the second operand of an F16 matmul to F16.
 */
import { F16_TABLE } from "../../quant/f16.js";
import { roundF16 } from "../../quant/f16.js";

export interface AttentionShape {
  nHead: number;
  nHeadKv: number;
  headDim: number;
}

/**
 * q: [nTok, nHead*headDim] (after RoPE); positions[t] is token t's position; token t attends to
 * cache rows 0..positions[t]. out: [nTok, nHead*headDim].
 */
export function attention(
  q: Float32Array, nTok: number, positions: ArrayLike<number>,
  K: Float32Array | Uint16Array, V: Float32Array | Uint16Array,
  s: AttentionShape, out: Float32Array, scratch?: Float32Array,
): void {
  const { nHead, nHeadKv, headDim } = s;
  const group = nHead / nHeadKv;
  const kvRow = nHeadKv * headDim;
  const scale = Math.fround(1 / Math.sqrt(headDim));
  const f16 = K instanceof Uint16Array;
  let maxPos = 0;
  for (let t = 0; t < nTok; t++) maxPos = Math.max(maxPos, positions[t]!);
  const scores = scratch && scratch.length > maxPos ? scratch : new Float32Array(maxPos + 1);
  const qh = new Float32Array(headDim);
  const acc = new Float64Array(headDim);
  for (let t = 0; t < nTok; t++) {
    const n = positions[t]! + 1;
    for (let h = 0; h < nHead; h++) {
      const qo = t * nHead * headDim + h * headDim;
      const ko = Math.floor(h / group) * headDim;
      for (let d = 0; d < headDim; d++) qh[d] = f16 ? roundF16(q[qo + d]!) : q[qo + d]!;
      let max = -Infinity;
      for (let j = 0; j < n; j++) {
        let dot = 0;
        const base = j * kvRow + ko;
        if (f16) {
          const k16 = K as Uint16Array;
          for (let d = 0; d < headDim; d++) dot += qh[d]! * F16_TABLE[k16[base + d]!]!;
        } else {
          const k32 = K as Float32Array;
          for (let d = 0; d < headDim; d++) dot += qh[d]! * k32[base + d]!;
        }
        const sc = Math.fround(Math.fround(dot) * scale);
        scores[j] = sc;
        if (sc > max) max = sc;
      }
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = Math.fround(Math.exp(scores[j]! - max));
        scores[j] = e;
        sum += e;
      }
      const inv = Math.fround(1 / sum);
      acc.fill(0);
      for (let j = 0; j < n; j++) {
        let p = Math.fround(scores[j]! * inv);
        if (f16) p = roundF16(p);
        const base = j * kvRow + ko;
        if (f16) {
          const v16 = V as Uint16Array;
          for (let d = 0; d < headDim; d++) acc[d] += p * F16_TABLE[v16[base + d]!]!;
        } else {
          const v32 = V as Float32Array;
          for (let d = 0; d < headDim; d++) acc[d] += p * v32[base + d]!;
        }
      }
      for (let d = 0; d < headDim; d++) out[qo + d] = acc[d]!;
    }
  }
}
