/**
 * Mixture-of-experts routing, as Mixtral defines it and llama.cpp computes it: softmax over all
 * experts' router logits, the top-k experts by probability, their probabilities renormalised to
 * sum to one (`ggml`: with llama.cpp's float arithmetic to the last bit). Disabled experts
 * (ablation) get probability zero and are never chosen.
 */
import { softmaxRow } from "../kernels/js/ggml.js";

export interface Routing {
  /** [nTok, k] chosen experts, best first */
  experts: Int32Array;
  /** [nTok, k] renormalised weights */
  weights: Float32Array;
  /** [nTok, nExpert] softmax probabilities */
  probs: Float32Array;
}

export function route(logits: Float32Array, nTok: number, nExpert: number, k: number, disabled?: Uint8Array, ggml = false): Routing {
  const probs = new Float32Array(nTok * nExpert);
  const experts = new Int32Array(nTok * k);
  const weights = new Float32Array(nTok * k);
  for (let t = 0; t < nTok; t++) {
    const o = t * nExpert;
    if (ggml) {
      // ggml's soft_max (src/kernels/js/ggml.ts): float differences, glibc expf, ggml_v_expf for 16 and more
      for (let e = 0; e < nExpert; e++) probs[o + e] = disabled?.[e] ? -Infinity : logits[o + e]!;
      softmaxRow(probs, o, nExpert);
    } else {
      let max = -Infinity;
      for (let e = 0; e < nExpert; e++) {
        const v = disabled?.[e] ? -Infinity : logits[o + e]!;
        if (v > max) max = v;
      }
      let sum = 0;
      for (let e = 0; e < nExpert; e++) {
        const p = disabled?.[e] ? 0 : Math.fround(Math.exp(logits[o + e]! - max));
        probs[o + e] = p;
        sum += p;
      }
      const inv = Math.fround(1 / sum);
      for (let e = 0; e < nExpert; e++) probs[o + e] = probs[o + e]! * inv;
    }
    // top-k by probability, ties to the lower expert index
    for (let s = 0; s < k; s++) {
      let best = -1;
      for (let e = 0; e < nExpert; e++) {
        if (disabled?.[e]) continue;
        let taken = false;
        for (let j = 0; j < s; j++) if (experts[t * k + j] === e) taken = true;
        if (taken) continue;
        if (best < 0 || probs[o + e]! > probs[o + best]!) best = e;
      }
      experts[t * k + s] = best;
    }
    let wsum = 0;
    for (let s = 0; s < k; s++) {
      const e = experts[t * k + s]!;
      const w = e >= 0 ? probs[o + e]! : 0;
      weights[t * k + s] = w;
      wsum += w;
    }
    const winv = Math.fround(wsum);
    for (let s = 0; s < k; s++) weights[t * k + s] = weights[t * k + s]! / winv;
  }
  return { experts, weights, probs };
}

/** For each expert, the (token, slot) pairs routed to it: tokens grouped per expert for batched products. */
export function groupByExpert(experts: Int32Array, nTok: number, k: number, nExpert: number): { tokens: number[]; slots: number[] }[] {
  const groups = Array.from({ length: nExpert }, () => ({ tokens: [] as number[], slots: [] as number[] }));
  for (let t = 0; t < nTok; t++) {
    for (let s = 0; s < k; s++) {
      const e = experts[t * k + s]!;
      if (e < 0) continue;
      groups[e]!.tokens.push(t);
      groups[e]!.slots.push(s);
    }
  }
  return groups;
}
