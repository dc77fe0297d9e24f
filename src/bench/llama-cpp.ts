/**
 * llama.cpp through node-llama-cpp (a devDependency: prebuilt CPU binaries, never built or
 * downloaded at run time), for side-by-side checks: does a file load there, and what next-token
 * distribution does llama.cpp compute.
 */
export interface LlamaCppModel {
  /** log-probabilities after `tokens` (temperature 1, no truncation); tokens llama.cpp leaves out are -Infinity */
  nextLogProbs(tokens: number[]): Promise<Float64Array>;
  dispose(): Promise<void>;
}

export async function openLlamaCpp(path: string, threads: number, nVocab: number, nCtx = 512): Promise<LlamaCppModel> {
  const { getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const model = await llama.loadModel({ modelPath: path });
  return {
    async nextLogProbs(tokens: number[]): Promise<Float64Array> {
      const ctx = await model.createContext({
        contextSize: Math.max(nCtx, tokens.length + 8), threads, sequences: 1,
        // F32 cache and no flash attention, as the reference data was made
        flashAttention: false, experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32",
      });
      const seq = ctx.getSequence();
      const items = tokens.map((t, i) => (i === tokens.length - 1
        ? [t, { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }]
        : t));
      const res = await seq.controlledEvaluate(items as never);
      const last = res[res.length - 1] as { next?: { probabilities?: Map<number, number> } } | undefined;
      const probs = last?.next?.probabilities;
      if (!probs) throw new Error("llama.cpp returned no probabilities");
      const out = new Float64Array(nVocab).fill(-Infinity);
      for (const [tok, p] of probs) out[tok] = Math.log(p);
      await ctx.dispose();
      return out;
    },
    async dispose() {
      await model.dispose();
      await llama.dispose();
    },
  };
}

/** log-softmax of logits in double precision */
export function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let s = 0;
  for (const v of logits) s += Math.exp(v - max);
  const lse = max + Math.log(s);
  return Float64Array.from(logits, (v) => v - lse);
}
