/**
 * A model source (HF folder or GGUF, seen in HF layout) written as a GGUF the way llama.cpp's
 * converter writes Mixtral/Mistral/Llama: general.architecture "llama" with the llama.* hyper-
 * parameters, the SentencePiece vocabulary and chat template, q/k rows permuted to the
 * interleaved RoPE layout, experts stacked into ffn_*_exps, norms and the router kept F32.
 *
 * Tensors are produced one at a time when the writer reaches them (stacked experts one expert
 * at a time into the output tensor), so memory stays near the largest output tensor. The file
 * is written to a temporary name and renamed when complete.
 */
import { ArgumentError, ModelError } from "../errors.js";
import { gv, writeGguf, type GgufTensorSource } from "../io/gguf/writer.js";
import type { GgufEntry } from "../io/gguf/types.js";
import { fromF32 } from "../io/safetensors/format.js";
import { ggufDims, ggufName, hfName, modelTensors, type ParsedName } from "../io/tensor-names.js";
import type { ModelConfig } from "../model/config.js";
import { vocabMetadata } from "../model/synthetic.js";
import { GgmlType, rowBytes, typeName } from "../quant/format.js";
import { quantizeWeights } from "../quant/index.js";
import type { Vocab } from "../tokenizer/vocab.js";
import { permuteRopeRows } from "./permute.js";
import type { HfTensor, ModelSource } from "./source.js";

export type GgufOutType = "f32" | "f16" | "bf16" | "q8_0";
export const GGUF_OUT_TYPES: readonly GgufOutType[] = ["f32", "f16", "bf16", "q8_0"];

const OUT: Record<GgufOutType, { type: GgmlType; fileType: number }> = {
  f32: { type: GgmlType.F32, fileType: 0 },
  f16: { type: GgmlType.F16, fileType: 1 },
  q8_0: { type: GgmlType.Q8_0, fileType: 7 },
  bf16: { type: GgmlType.BF16, fileType: 32 },
};

export function parseGgufOutType(s: string): GgufOutType {
  const t = s.toLowerCase() as GgufOutType;
  if (!GGUF_OUT_TYPES.includes(t)) throw new ArgumentError(`--outtype: "${s}" is not one of ${GGUF_OUT_TYPES.join(", ")}`);
  return t;
}

/** Called with each HF tensor's values (HF layout) before permutation and encoding; may return replacement values. */
export type TensorTransform = (t: HfTensor, x: Float32Array) => Float32Array | void;

export interface GgufOutOptions {
  outType: GgufOutType;
  /** general.name (default: the source's) */
  name?: string;
  /** chat template to write instead of the source's */
  chatTemplate?: string;
  transform?: TensorTransform;
  onTensor?: (done: number, total: number, name: string, type: GgmlType) => void;
}

/** The type llama.cpp's converter gives a tensor for an output type. */
export function tensorType(p: ParsedName, dims: number[], outType: GgufOutType): GgmlType {
  if (p.rule.vector || p.rule.keepF32) return GgmlType.F32;
  const t = OUT[outType].type;
  if (t === GgmlType.Q8_0 && dims[0]! % 32 !== 0) return GgmlType.F16; // as llama.cpp: fall back when rows do not split into blocks
  return t;
}

function fmtFloat(x: number): number {
  for (let p = 1; p <= 17; p++) {
    const y = Number(x.toPrecision(p));
    if (Math.fround(y) === Math.fround(x)) return y;
  }
  return x;
}
export { fmtFloat as shortestF32 };

/** The llama.* hyperparameter keys llama.cpp writes for these hyperparameters. */
export function hparamMetadata(c: ModelConfig, name: string, fileType: number): [string, GgufEntry][] {
  const md: [string, GgufEntry][] = [
    ["general.architecture", gv.str("llama")],
    ["general.name", gv.str(name)],
    ["llama.block_count", gv.u32(c.nLayer)],
    ["llama.context_length", gv.u32(c.nCtxTrain)],
    ["llama.embedding_length", gv.u32(c.nEmbd)],
    ["llama.feed_forward_length", gv.u32(c.nFf)],
    ["llama.attention.head_count", gv.u32(c.nHead)],
    ["llama.attention.head_count_kv", gv.u32(c.nHeadKv)],
    ["llama.rope.freq_base", gv.f32(c.ropeTheta)],
    ["llama.attention.layer_norm_rms_epsilon", gv.f32(c.rmsEps)],
  ];
  if (c.nExpert > 0) {
    md.push(["llama.expert_count", gv.u32(c.nExpert)], ["llama.expert_used_count", gv.u32(c.nExpertUsed)]);
  }
  md.push(["general.file_type", gv.u32(fileType)]);
  md.push(["llama.vocab_size", gv.u32(c.nVocab)]);
  md.push(["llama.rope.dimension_count", gv.u32(c.nRot)]);
  if (c.headDim * c.nHead !== c.nEmbd) {
    md.push(["llama.attention.key_length", gv.u32(c.headDim)], ["llama.attention.value_length", gv.u32(c.headDim)]);
  }
  if (c.ropeScale !== 1) {
    md.push(["llama.rope.scaling.type", gv.str("linear")], ["llama.rope.scaling.factor", gv.f32(fmtFloat(1 / c.ropeScale))]);
    md.push(["llama.rope.scale_linear", gv.f32(fmtFloat(1 / c.ropeScale))]);
  }
  return md;
}

export function tokenizerMetadata(v: Vocab, chatTemplate: string | undefined): [string, GgufEntry][] {
  const md = vocabMetadata(v);
  if (v.padId >= 0) md.push(["tokenizer.ggml.padding_token_id", gv.u32(v.padId)]);
  md.push(["tokenizer.ggml.add_space_prefix", gv.bool(v.addSpacePrefix)]);
  if (chatTemplate !== undefined) md.push(["tokenizer.chat_template", gv.str(chatTemplate)]);
  return md;
}

/** Metadata of a GGUF source carried over (everything but the keys the writer sets itself). */
const REWRITTEN = new Set(["general.file_type", "general.quantization_version", "general.alignment", "tokenizer.chat_template"]);

function encodeInto(type: GgmlType, x: Float32Array, rowLen: number, out: Uint8Array, off: number): void {
  if (type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16) {
    fromF32(type === GgmlType.F32 ? "F32" : type === GgmlType.F16 ? "F16" : "BF16", x, out, off);
    return;
  }
  out.set(quantizeWeights(type, x, x.length / rowLen, rowLen), off);
}

/** Write `src` as a GGUF at `out` (atomically). */
export function writeGgufModel(src: ModelSource, out: string, opts: GgufOutOptions): { tensors: number; bytes: number } {
  const c = src.config;
  const vocab = src.vocab;
  const chatTemplate = opts.chatTemplate ?? src.chatTemplate;
  const { fileType } = OUT[opts.outType];
  let md: [string, GgufEntry][];
  if (src.kind === "gguf" && src.metadata) {
    md = [...src.metadata].filter(([k]) => !REWRITTEN.has(k));
    md.splice(2, 0, ["general.file_type", gv.u32(fileType)]);
    if (chatTemplate !== undefined) md.push(["tokenizer.chat_template", gv.str(chatTemplate)]);
  } else {
    if (!vocab) throw new ModelError(`${src.path}: no tokenizer; a GGUF needs one (tokenizer.model or tokenizer.json)`);
    if (vocab.tokens.length !== c.nVocab) throw new ModelError(`${src.path}: the tokenizer has ${vocab.tokens.length} tokens but the model ${c.nVocab}`);
    md = [...hparamMetadata(c, opts.name ?? c.name, fileType), ...tokenizerMetadata(vocab, chatTemplate)];
  }
  if (opts.name !== undefined) md = md.map(([k, v]) => (k === "general.name" ? [k, gv.str(opts.name!)] : [k, v]));
  const plan = modelTensors(c, src.tied);
  const quantized = plan.some((p) => tensorType(p, ggufDims(p.rule, c), opts.outType) === GgmlType.Q8_0);
  if (quantized) md.push(["general.quantization_version", gv.u32(2)]);

  const valuesOf = (name: string): Float32Array => {
    const t = src.tensors.get(name);
    if (!t) throw new ModelError(`${src.path}: tensor "${name}" is missing`);
    let x = t.read();
    if (opts.transform) x = opts.transform(t, x) ?? x;
    return x;
  };
  const tensors: GgufTensorSource[] = plan.map((p) => {
    const dims = ggufDims(p.rule, c);
    const type = tensorType(p, dims, opts.outType);
    const name = ggufName(p.rule, p.layer);
    return {
      name, dims, type,
      data: () => {
        const rowLen = dims[0]!;
        if (p.rule.expert) {
          const per = rowBytes(type, rowLen) * dims[1]!;
          const bytes = new Uint8Array(per * c.nExpert);
          for (let e = 0; e < c.nExpert; e++) encodeInto(type, valuesOf(hfName(p.rule, p.layer, e)), rowLen, bytes, e * per);
          return bytes;
        }
        let x = valuesOf(hfName(p.rule, p.layer));
        if (p.rule.rope) x = permuteRopeRows(x, dims[1]!, rowLen, p.rule.rope === "q" ? c.nHead : c.nHeadKv, true);
        if (type === GgmlType.F32) return new Uint8Array(x.buffer, x.byteOffset, x.byteLength); // little-endian hosts: the bytes as they are
        const bytes = new Uint8Array(rowBytes(type, rowLen) * (x.length / rowLen));
        encodeInto(type, x, rowLen, bytes, 0);
        return bytes;
      },
    };
  });
  let bytes = 0;
  writeGguf(out, {
    metadata: md,
    tensors,
    onProgress: (done, total, name) => {
      const t = tensors[done - 1]!;
      bytes += rowBytes(t.type, t.dims[0]!) * (t.dims.reduce((a, b) => a * b, 1) / t.dims[0]!);
      opts.onTensor?.(done, total, name, t.type);
    },
  });
  return { tensors: tensors.length, bytes };
}

export { typeName };
