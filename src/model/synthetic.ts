/**
 * Random-weight Mixtral GGUF files generated from a seed: the stand-in default model (until the
 * trained one ships), test fixtures, and big files for scale tests. Weights are N(0, std) from a
 * seeded generator, norms are ones; the tokenizer is a real SentencePiece vocabulary.
 */
import { ArgumentError } from "../errors.js";
import { gv, writeGguf, type GgufTensorSource } from "../io/gguf/writer.js";
import type { GgufEntry } from "../io/gguf/types.js";
import { GgmlType } from "../quant/format.js";
import { quantizeWeights } from "../quant/index.js";
import type { Vocab } from "../tokenizer/vocab.js";
import { MIXTRAL_INSTRUCT_TEMPLATE } from "../chat/template.js";

export interface SyntheticSpec {
  name: string;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nExpert: number;
  nExpertUsed: number;
  nFf: number;
  nCtx: number;
  seed: number;
  type: GgmlType;
  /** write the old per-expert layout (blk.N.ffn_gate.E.weight) */
  legacyExperts?: boolean;
  /** no experts: a dense llama/Mistral model */
  dense?: boolean;
  std?: number;
  /** Hugging Face's initialisation for training from scratch: every matrix N(0, std), embeddings and router included */
  hfInit?: boolean;
  /** standard deviation of token_embd and output (default 1, or std with hfInit) */
  embdStd?: number;
  /** the type of one tensor (by name) when not `type`, for mixes such as Q4_K_M */
  tensorType?: (name: string) => GgmlType | undefined;
}

/** Small fast PRNG (mulberry32) with Box-Muller normals. */
export class SeededNormal {
  private s: number;
  private spare: number | undefined;
  constructor(seed: number) { this.s = seed >>> 0; }
  uniform(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  normal(): number {
    if (this.spare !== undefined) { const v = this.spare; this.spare = undefined; return v; }
    const u = Math.max(this.uniform(), 1e-12), v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  fill(n: number, std: number): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.normal() * std;
    return a;
  }
}

export function vocabMetadata(v: Vocab): [string, GgufEntry][] {
  return [
    ["tokenizer.ggml.model", gv.str("llama")],
    ["tokenizer.ggml.pre", gv.str("default")],
    ["tokenizer.ggml.tokens", gv.strs(v.tokens)],
    ["tokenizer.ggml.scores", gv.f32s(v.scores)],
    ["tokenizer.ggml.token_type", gv.i32s(v.types)],
    ["tokenizer.ggml.bos_token_id", gv.u32(v.bosId)],
    ["tokenizer.ggml.eos_token_id", gv.u32(v.eosId)],
    ["tokenizer.ggml.unknown_token_id", gv.u32(v.unkId)],
    ["tokenizer.ggml.add_bos_token", gv.bool(v.addBos)],
    ["tokenizer.ggml.add_eos_token", gv.bool(v.addEos)],
  ];
}

export function writeSyntheticModel(path: string, spec: SyntheticSpec, vocab: Vocab): void {
  const { nEmbd, nLayer, nHead, nHeadKv, nExpert, nFf } = spec;
  if (nEmbd % nHead !== 0) throw new ArgumentError(`nEmbd ${nEmbd} is not a multiple of nHead ${nHead}`);
  const headDim = nEmbd / nHead;
  const nVocab = vocab.tokens.length;
  const rng = new SeededNormal(spec.seed);
  const std = spec.std ?? 0.02;
  const md: [string, GgufEntry][] = [
    ["general.architecture", gv.str("llama")],
    ["general.name", gv.str(spec.name)],
    ["llama.vocab_size", gv.u32(nVocab)],
    ["llama.context_length", gv.u32(spec.nCtx)],
    ["llama.embedding_length", gv.u32(nEmbd)],
    ["llama.block_count", gv.u32(nLayer)],
    ["llama.feed_forward_length", gv.u32(nFf)],
    ["llama.rope.dimension_count", gv.u32(headDim)],
    ["llama.attention.head_count", gv.u32(nHead)],
    ["llama.attention.head_count_kv", gv.u32(nHeadKv)],
    ["llama.rope.freq_base", gv.f32(1e6)],
    ["llama.attention.layer_norm_rms_epsilon", gv.f32(1e-5)],
    ...(spec.dense ? [] : [
      ["llama.expert_count", gv.u32(nExpert)],
      ["llama.expert_used_count", gv.u32(spec.nExpertUsed)],
    ] as [string, GgufEntry][]),
    ...vocabMetadata(vocab),
    ["tokenizer.chat_template", gv.str(MIXTRAL_INSTRUCT_TEMPLATE)],
    ["general.quantization_version", gv.u32(2)],
  ];
  const tensors: GgufTensorSource[] = [];
  // Lazily generated so big files never hold more than one tensor in memory; the order of
  // generation is the order of the list, so the file is deterministic.
  const mat = (name: string, dims: number[], type = spec.type, s = std): void => {
    tensors.push({
      name, dims, type: (type = spec.tensorType?.(name) ?? type),
      data: () => {
        const n = dims.reduce((a, b) => a * b, 1);
        const x = rng.fill(n, s);
        return quantizeWeights(type, x, n / dims[0]!, dims[0]!);
      },
    });
  };
  const ones = (name: string, n: number): void => {
    tensors.push({ name, dims: [n], type: GgmlType.F32, data: () => new Uint8Array(new Float32Array(n).fill(1).buffer) });
  };
  const big = spec.hfInit ? std : 1;
  mat("token_embd.weight", [nEmbd, nVocab], spec.type, spec.embdStd ?? big);
  for (let l = 0; l < nLayer; l++) {
    const p = `blk.${l}.`;
    ones(p + "attn_norm.weight", nEmbd);
    mat(p + "attn_q.weight", [nEmbd, nHead * headDim]);
    mat(p + "attn_k.weight", [nEmbd, nHeadKv * headDim]);
    mat(p + "attn_v.weight", [nEmbd, nHeadKv * headDim]);
    mat(p + "attn_output.weight", [nHead * headDim, nEmbd]);
    ones(p + "ffn_norm.weight", nEmbd);
    if (spec.dense) {
      mat(p + "ffn_gate.weight", [nEmbd, nFf]);
      mat(p + "ffn_down.weight", [nFf, nEmbd]);
      mat(p + "ffn_up.weight", [nEmbd, nFf]);
      continue;
    }
    mat(p + "ffn_gate_inp.weight", [nEmbd, nExpert], GgmlType.F32, big);
    if (spec.legacyExperts) {
      for (let e = 0; e < nExpert; e++) {
        mat(`${p}ffn_gate.${e}.weight`, [nEmbd, nFf]);
        mat(`${p}ffn_down.${e}.weight`, [nFf, nEmbd]);
        mat(`${p}ffn_up.${e}.weight`, [nEmbd, nFf]);
      }
    } else {
      mat(p + "ffn_gate_exps.weight", [nEmbd, nFf, nExpert]);
      mat(p + "ffn_down_exps.weight", [nFf, nEmbd, nExpert]);
      mat(p + "ffn_up_exps.weight", [nEmbd, nFf, nExpert]);
    }
  }
  ones("output_norm.weight", nEmbd);
  mat("output.weight", [nEmbd, nVocab], spec.type, spec.embdStd ?? big);
  writeGguf(path, { metadata: md, tensors });
}
