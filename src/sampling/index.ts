export { DEFAULT_SAMPLING, Sampler, argmax, type SampleInfo, type SamplingParams } from "./sampler.js";
export { Rng, randomSeed } from "./rng.js";
export type { TokenLogprob } from "./logprobs.js";
