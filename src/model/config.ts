/**
 * Model hyperparameters, named once, read from GGUF metadata (`{arch}.*` keys) or a Hugging Face
 * config.json.
 */
import { ModelError } from "../errors.js";
import type { GgufEntry } from "../io/gguf/types.js";

export interface ModelConfig {
  arch: string;
  name: string;
  nVocab: number;
  nEmbd: number;
  nFf: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  headDim: number;
  /** dimensions rotated by RoPE per head (rope.dimension_count) */
  nRot: number;
  /** 0 for dense llama/Mistral models */
  nExpert: number;
  nExpertUsed: number;
  ropeTheta: number;
  ropeScale: number;
  rmsEps: number;
  nCtxTrain: number;
}

const SUPPORTED_ARCHS = new Set(["llama", "mistral", "mixtral"]);

export function configFromGguf(md: Map<string, GgufEntry>, file: string): ModelConfig {
  const str = (k: string): string | undefined => {
    const v = md.get(k)?.value;
    return typeof v === "string" ? v : undefined;
  };
  const arch = str("general.architecture");
  if (!arch) throw new ModelError(`${file}: metadata "general.architecture" is missing`);
  if (!SUPPORTED_ARCHS.has(arch)) {
    throw new ModelError(`${file}: architecture "${arch}" is not supported; expected llama (Mixtral, Mistral and Llama files use it)`);
  }
  const num = (k: string, dflt?: number): number => {
    const e = md.get(`${arch}.${k}`);
    if (e === undefined) {
      if (dflt !== undefined) return dflt;
      throw new ModelError(`${file}: metadata "${arch}.${k}" is missing`);
    }
    const v = e.value;
    if (typeof v === "number") return v;
    if (typeof v === "bigint") return Number(v);
    throw new ModelError(`${file}: metadata "${arch}.${k}" should be a number, found ${typeof v}`);
  };
  const tokens = md.get("tokenizer.ggml.tokens")?.value as { items: unknown[] } | undefined;
  const nEmbd = num("embedding_length");
  const nHead = num("attention.head_count");
  const headDim = num("attention.key_length", nEmbd / nHead);
  const cfg: ModelConfig = {
    arch,
    name: str("general.name") ?? arch,
    nVocab: tokens?.items.length ?? num("vocab_size"),
    nEmbd,
    nFf: num("feed_forward_length"),
    nLayer: num("block_count"),
    nHead,
    nHeadKv: num("attention.head_count_kv", nHead),
    headDim,
    nRot: num("rope.dimension_count", headDim),
    nExpert: num("expert_count", 0),
    nExpertUsed: num("expert_used_count", 0),
    ropeTheta: num("rope.freq_base", 10000),
    ropeScale: 1 / num("rope.scale_linear", 1),
    rmsEps: num("attention.layer_norm_rms_epsilon", 1e-5),
    nCtxTrain: num("context_length", 4096),
  };
  validateConfig(cfg, file);
  return cfg;
}

export function validateConfig(c: ModelConfig, file: string): void {
  const bad = (m: string): never => { throw new ModelError(`${file}: ${m}`); };
  for (const k of ["nVocab", "nEmbd", "nFf", "nLayer", "nHead", "nHeadKv", "headDim"] as const) {
    if (!Number.isInteger(c[k]) || c[k] <= 0) bad(`${k} is ${c[k]}, expected a positive integer`);
  }
  if (c.nHead % c.nHeadKv !== 0) bad(`head_count ${c.nHead} is not a multiple of head_count_kv ${c.nHeadKv}`);
  if (c.nRot % 2 !== 0 || c.nRot > c.headDim) bad(`rope.dimension_count ${c.nRot} must be even and at most the head size ${c.headDim}`);
  if (c.nExpert > 0 && (c.nExpertUsed <= 0 || c.nExpertUsed > c.nExpert)) {
    bad(`expert_used_count ${c.nExpertUsed} must be between 1 and expert_count ${c.nExpert}`);
  }
}

/** Hugging Face config.json (MixtralForCausalLM, MistralForCausalLM, LlamaForCausalLM). */
export function configFromHf(cfg: Record<string, unknown>, file: string): ModelConfig {
  const n = (k: string, dflt?: number): number => {
    const v = cfg[k];
    if (typeof v === "number") return v;
    if (v === undefined || v === null) {
      if (dflt !== undefined) return dflt;
      throw new ModelError(`${file}: "${k}" is missing`);
    }
    throw new ModelError(`${file}: "${k}" should be a number`);
  };
  const nEmbd = n("hidden_size");
  const nHead = n("num_attention_heads");
  const headDim = n("head_dim", nEmbd / nHead);
  const c: ModelConfig = {
    arch: "llama",
    name: String(cfg["_name_or_path"] ?? cfg["model_type"] ?? "model"),
    nVocab: n("vocab_size"),
    nEmbd,
    nFf: n("intermediate_size"),
    nLayer: n("num_hidden_layers"),
    nHead,
    nHeadKv: n("num_key_value_heads", nHead),
    headDim,
    nRot: headDim,
    nExpert: n("num_local_experts", 0),
    nExpertUsed: n("num_experts_per_tok", 0),
    ropeTheta: n("rope_theta", 10000),
    ropeScale: 1,
    rmsEps: n("rms_norm_eps", 1e-5),
    nCtxTrain: n("max_position_embeddings", 4096),
  };
  validateConfig(c, file);
  return c;
}
