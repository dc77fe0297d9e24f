/**
 * Causal multi-head attention with grouped-query heads over the KV cache, as llama.cpp computes it
 * without flash attention: scores = K.q, softmax(scores * 1/sqrt(headDim)) with sums in double, then
 * the weighted sum of V. With an F16 cache, q and the probabilities are rounded to half before their
 * products, because ggml converts the second operand of an F16 matmul to F16.
 */
import { F16_TABLE } from "../../quant/f16.js";
import { roundF16 } from "../../quant/f16.js";
import { dotF16Vec, dotF32Gemm, dotF32Vec, softmaxRow } from "./ggml.js";

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

/**
 * Attention as llama.cpp's CPU backend computes it without flash attention, bit for bit (see
 * ggml.ts): K·q for every cache row (ggml vec_dot in float for an F32 cache; for an F16 cache q is
 * rounded to half and, in batches of two or more tokens, llamafile's sgemm takes the product),
 * scaled, softmax as ggml_vec_soft_max_f32, then V·p (sgemm in batches, vec_dot for one token;
 * with an F16 cache p is rounded to half first). For a single token the vec_dot over the cache
 * runs over llama.cpp's padded cache length (a multiple of 32), which decides where its 64-element
 * steps end. `gemm`: the batch (all sequences) has two or more tokens.
 */
export function attentionGgml(
  q: Float32Array, nTok: number, positions: ArrayLike<number>,
  K: Float32Array | Uint16Array, V: Float32Array | Uint16Array,
  s: AttentionShape, out: Float32Array, gemm = nTok >= 2,
): void {
  const { nHead, nHeadKv, headDim: hd } = s;
  const group = nHead / nHeadKv;
  const kvRow = nHeadKv * hd;
  const scale = Math.fround(1 / Math.fround(Math.sqrt(hd)));
  const f16 = K instanceof Uint16Array;
  let maxPos = 0;
  for (let t = 0; t < nTok; t++) maxPos = Math.max(maxPos, positions[t]!);
  const nCells = Math.ceil((maxPos + 1) / 32) * 32;
  // the cache as floats, K by rows and V by columns ([kv head][dim][cell]), zero past maxPos
  const kf = new Float32Array(nCells * kvRow);
  const vt = new Float32Array(nHeadKv * hd * nCells);
  for (let j = 0; j <= maxPos; j++) {
    for (let i = 0; i < kvRow; i++) {
      kf[j * kvRow + i] = f16 ? F16_TABLE[K[j * kvRow + i]!]! : K[j * kvRow + i]!;
      vt[i * nCells + j] = f16 ? F16_TABLE[V[j * kvRow + i]!]! : V[j * kvRow + i]!;
    }
  }
  const qh = new Float32Array(hd);
  const w = new Float32Array(nCells);
  for (let t = 0; t < nTok; t++) {
    const n = positions[t]! + 1;
    // cells the products and softmax run over: llama.cpp's padded length for one token; in a batch
    // the padding only adds zeros in the same lanes, so n rounded up to 16 gives the same sums
    const nKv = gemm ? Math.ceil(n / 16) * 16 : Math.ceil(n / 32) * 32;
    for (let h = 0; h < nHead; h++) {
      const qo = t * nHead * hd + h * hd;
      const ko = Math.floor(h / group) * hd;
      for (let d = 0; d < hd; d++) qh[d] = f16 ? roundF16(q[qo + d]!) : q[qo + d]!;
      for (let j = 0; j < nKv; j++) {
        if (j >= n) { w[j] = -Infinity; continue; }
        const kq = !f16 ? dotF32Vec(kf, j * kvRow + ko, qh, 0, hd)
          : gemm && hd % 16 === 0 ? dotF32Gemm(kf, j * kvRow + ko, qh, 0, hd) : dotF16Vec(kf, j * kvRow + ko, qh, 0, hd);
        w[j] = Math.fround(kq * scale);
      }
      softmaxRow(w, 0, nKv);
      if (f16) for (let j = 0; j < nKv; j++) w[j] = roundF16(w[j]!);
      const useGemm = gemm && hd % 4 === 0;
      for (let d = 0; d < hd; d++) {
        const vo = (ko + d) * nCells;
        out[qo + d] = useGemm ? dotF32Gemm(vt, vo, w, 0, nKv) : f16 ? dotF16Vec(vt, vo, w, 0, nKv) : dotF32Vec(vt, vo, w, 0, nKv);
      }
    }
  }
}
