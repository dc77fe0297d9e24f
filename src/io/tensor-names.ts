/**
 * One table of tensor names for Mixtral / Mistral / Llama: Hugging Face (transformers) names and
 * the GGUF names llama.cpp uses, with each tensor's shape from the hyperparameters.
 *
 * Layout facts:
 * - An HF Linear weight is [out, in] row-major; the GGUF tensor has ggml dims [in, out] (ne[0] is
 *   the row length) with the same bytes. GGUF dims are the HF shape reversed.
 * - Mixtral's experts `block_sparse_moe.experts.E.{w1,w3,w2}` are stacked along ggml ne[2] into
 *   `ffn_{gate,up,down}_exps` (expert E is the E-th contiguous [out, in] block).
 * - attn_q / attn_k rows are permuted between HF's half-split RoPE layout and GGUF's interleaved
 *   one (see src/convert/permute.ts); all other tensors are the same numbers.
 */
import type { ModelConfig } from "../model/config.js";

export type TensorRole =
  | "embed" | "attn_norm" | "attn_q" | "attn_k" | "attn_v" | "attn_o" | "ffn_norm"
  | "router" | "exp_gate" | "exp_up" | "exp_down" | "ffn_gate" | "ffn_up" | "ffn_down"
  | "norm" | "output";

export interface TensorNameRule {
  role: TensorRole;
  /** Hugging Face name; {L} = layer, {E} = expert */
  hf: string;
  /** GGUF name; {L} = layer (experts are stacked) */
  gguf: string;
  /** the module name PEFT's target_modules / modules_to_save match (the last path component) */
  module: string;
  /** one HF tensor per expert, stacked along ggml ne[2] in GGUF */
  expert?: boolean;
  /** 1-D (norm) tensors */
  vector?: boolean;
  /** llama.cpp's converter keeps these F32 whatever the output type (norms, the MoE router) */
  keepF32?: boolean;
  /** heads whose rows are permuted for RoPE ("q": head_count, "k": head_count_kv) */
  rope?: "q" | "k";
}

export const TENSOR_NAMES: readonly TensorNameRule[] = [
  { role: "embed", hf: "model.embed_tokens.weight", gguf: "token_embd.weight", module: "embed_tokens" },
  { role: "attn_norm", hf: "model.layers.{L}.input_layernorm.weight", gguf: "blk.{L}.attn_norm.weight", module: "input_layernorm", vector: true, keepF32: true },
  { role: "attn_q", hf: "model.layers.{L}.self_attn.q_proj.weight", gguf: "blk.{L}.attn_q.weight", module: "q_proj", rope: "q" },
  { role: "attn_k", hf: "model.layers.{L}.self_attn.k_proj.weight", gguf: "blk.{L}.attn_k.weight", module: "k_proj", rope: "k" },
  { role: "attn_v", hf: "model.layers.{L}.self_attn.v_proj.weight", gguf: "blk.{L}.attn_v.weight", module: "v_proj" },
  { role: "attn_o", hf: "model.layers.{L}.self_attn.o_proj.weight", gguf: "blk.{L}.attn_output.weight", module: "o_proj" },
  { role: "ffn_norm", hf: "model.layers.{L}.post_attention_layernorm.weight", gguf: "blk.{L}.ffn_norm.weight", module: "post_attention_layernorm", vector: true, keepF32: true },
  { role: "router", hf: "model.layers.{L}.block_sparse_moe.gate.weight", gguf: "blk.{L}.ffn_gate_inp.weight", module: "gate", keepF32: true },
  { role: "exp_gate", hf: "model.layers.{L}.block_sparse_moe.experts.{E}.w1.weight", gguf: "blk.{L}.ffn_gate_exps.weight", module: "w1", expert: true },
  { role: "exp_down", hf: "model.layers.{L}.block_sparse_moe.experts.{E}.w2.weight", gguf: "blk.{L}.ffn_down_exps.weight", module: "w2", expert: true },
  { role: "exp_up", hf: "model.layers.{L}.block_sparse_moe.experts.{E}.w3.weight", gguf: "blk.{L}.ffn_up_exps.weight", module: "w3", expert: true },
  { role: "ffn_gate", hf: "model.layers.{L}.mlp.gate_proj.weight", gguf: "blk.{L}.ffn_gate.weight", module: "gate_proj" },
  { role: "ffn_down", hf: "model.layers.{L}.mlp.down_proj.weight", gguf: "blk.{L}.ffn_down.weight", module: "down_proj" },
  { role: "ffn_up", hf: "model.layers.{L}.mlp.up_proj.weight", gguf: "blk.{L}.ffn_up.weight", module: "up_proj" },
  { role: "norm", hf: "model.norm.weight", gguf: "output_norm.weight", module: "norm", vector: true, keepF32: true },
  { role: "output", hf: "lm_head.weight", gguf: "output.weight", module: "lm_head" },
];

export const RULE_BY_ROLE: ReadonlyMap<TensorRole, TensorNameRule> = new Map(TENSOR_NAMES.map((r) => [r.role, r]));

export function rule(role: TensorRole): TensorNameRule {
  return RULE_BY_ROLE.get(role)!;
}

/** A name matched against the table. */
export interface ParsedName {
  rule: TensorNameRule;
  layer?: number;
  expert?: number;
}

function compile(template: string): RegExp {
  const esc = template.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("\\{L\\}", "(\\d+)").replace("\\{E\\}", "(\\d+)");
  return new RegExp(`^${esc}$`);
}

const HF_RE = TENSOR_NAMES.map((r) => ({ r, re: compile(r.hf), hasL: r.hf.includes("{L}"), hasE: r.hf.includes("{E}") }));
const GGUF_RE = TENSOR_NAMES.map((r) => ({ r, re: compile(r.gguf), hasL: r.gguf.includes("{L}") }));
/** the old per-expert GGUF layout: blk.N.ffn_gate.E.weight */
const GGUF_LEGACY_EXPERT = /^blk\.(\d+)\.ffn_(gate|up|down)\.(\d+)\.weight$/;

/** Match a Hugging Face tensor name; undefined when it is not a Mixtral/Mistral/Llama tensor. */
export function parseHfName(name: string): ParsedName | undefined {
  for (const { r, re, hasL, hasE } of HF_RE) {
    const m = re.exec(name);
    if (!m) continue;
    const p: ParsedName = { rule: r };
    if (hasL) p.layer = Number(m[1]);
    if (hasE) p.expert = Number(m[2]);
    return p;
  }
  return undefined;
}

/** Match a GGUF tensor name (stacked experts have no `expert`; the legacy per-expert names do). */
export function parseGgufName(name: string): ParsedName | undefined {
  for (const { r, re, hasL } of GGUF_RE) {
    const m = re.exec(name);
    if (!m) continue;
    return hasL ? { rule: r, layer: Number(m[1]) } : { rule: r };
  }
  const m = GGUF_LEGACY_EXPERT.exec(name);
  if (m) {
    const role = ({ gate: "exp_gate", up: "exp_up", down: "exp_down" } as const)[m[2] as "gate" | "up" | "down"];
    return { rule: rule(role), layer: Number(m[1]), expert: Number(m[3]) };
  }
  return undefined;
}

function fill(template: string, layer?: number, expert?: number): string {
  return template.replace("{L}", String(layer ?? "{L}")).replace("{E}", String(expert ?? "{E}"));
}

export function hfName(r: TensorNameRule, layer?: number, expert?: number): string {
  return fill(r.hf, layer, expert);
}

export function ggufName(r: TensorNameRule, layer?: number): string {
  return fill(r.gguf, layer);
}

/** HF name -> GGUF name (experts map to their stacked tensor); undefined when unknown. */
export function hfToGguf(name: string): string | undefined {
  const p = parseHfName(name);
  return p && ggufName(p.rule, p.layer);
}

/** GGUF name -> the HF names it holds (one per expert for stacked tensors). */
export function ggufToHf(name: string, nExpert: number): string[] | undefined {
  const p = parseGgufName(name);
  if (!p) return undefined;
  if (p.rule.expert && p.expert === undefined) return Array.from({ length: nExpert }, (_, e) => hfName(p.rule, p.layer, e));
  return [hfName(p.rule, p.layer, p.expert)];
}

/** Row-major HF shape of a tensor for the given hyperparameters ([out, in] for matrices). */
export function hfShape(r: TensorNameRule, c: ModelConfig): number[] {
  const q = c.nHead * c.headDim, kv = c.nHeadKv * c.headDim;
  switch (r.role) {
    case "embed": case "output": return [c.nVocab, c.nEmbd];
    case "attn_norm": case "ffn_norm": case "norm": return [c.nEmbd];
    case "attn_q": return [q, c.nEmbd];
    case "attn_k": case "attn_v": return [kv, c.nEmbd];
    case "attn_o": return [c.nEmbd, q];
    case "router": return [c.nExpert, c.nEmbd];
    case "exp_gate": case "exp_up": case "ffn_gate": case "ffn_up": return [c.nFf, c.nEmbd];
    case "exp_down": case "ffn_down": return [c.nEmbd, c.nFf];
  }
}

/** ggml dims of the GGUF tensor (stacked experts get ne[2] = nExpert). */
export function ggufDims(r: TensorNameRule, c: ModelConfig): number[] {
  const d = [...hfShape(r, c)].reverse();
  return r.expert ? [...d, c.nExpert] : d;
}

/**
 * Every HF tensor of a model with these hyperparameters, in the order llama.cpp's converter
 * writes their GGUF counterparts (token_embd, then per layer, then output_norm and output).
 * `tied`: no lm_head (the output reuses the embeddings).
 */
export function modelTensors(c: ModelConfig, tied = false): ParsedName[] {
  const out: ParsedName[] = [{ rule: rule("embed") }];
  const moe = c.nExpert > 0;
  for (let l = 0; l < c.nLayer; l++) {
    for (const role of ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_o", "ffn_norm"] as const) out.push({ rule: rule(role), layer: l });
    if (moe) {
      out.push({ rule: rule("router"), layer: l });
      for (const role of ["exp_gate", "exp_down", "exp_up"] as const) out.push({ rule: rule(role), layer: l });
    } else {
      for (const role of ["ffn_gate", "ffn_down", "ffn_up"] as const) out.push({ rule: rule(role), layer: l });
    }
  }
  out.push({ rule: rule("norm") });
  if (!tied) out.push({ rule: rule("output") });
  return out;
}

/** HF tensor names that carry no weights a converter needs (RoPE tables some checkpoints store). */
export function isIgnorableHfTensor(name: string): boolean {
  return /\.rotary_emb\.inv_freq$/.test(name);
}
