/**
 * A model source written as a Hugging Face folder: config.json, safetensors (sharded with
 * model.safetensors.index.json when bigger than the shard size), generation_config.json and the
 * tokenizer (the source folder's files copied, or tokenizer.model + tokenizer.json +
 * tokenizer_config.json + special_tokens_map.json written from the vocabulary).
 *
 * Everything is written into a temporary folder beside the destination, which is renamed to
 * the destination only when complete: an interrupted run leaves no folder that looks finished.
 */
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { ArgumentError } from "../errors.js";
import { fromF32, type FloatDtype } from "../io/safetensors/format.js";
import { writeSafetensorsSharded, type StTensorSource } from "../io/safetensors/writer.js";
import { hfName, modelTensors } from "../io/tensor-names.js";
import type { ModelConfig } from "../model/config.js";
import { TokenType } from "../tokenizer/vocab.js";
import { shortestF32, type TensorTransform } from "./write-gguf.js";
import type { ModelSource } from "./source.js";
import { specialTokensMapJson, spmModelBytes, tokenizerConfigJson, tokenizerJson } from "./tokenizer-files.js";

export type HfDtype = "f32" | "f16" | "bf16";
export const HF_DTYPES: readonly HfDtype[] = ["f32", "f16", "bf16"];

const ST: Record<HfDtype, FloatDtype> = { f32: "F32", f16: "F16", bf16: "BF16" };
const TORCH: Record<HfDtype, string> = { f32: "float32", f16: "float16", bf16: "bfloat16" };

export function parseHfDtype(s: string): HfDtype | "auto" {
  const t = s.toLowerCase();
  if (t === "auto") return "auto";
  if (!(HF_DTYPES as readonly string[]).includes(t)) throw new ArgumentError(`--dtype: "${s}" is not one of auto, ${HF_DTYPES.join(", ")}`);
  return t as HfDtype;
}

/** The dtype a source's weights are best kept in: their own float type, or f16 for quantized ones. */
export function autoDtype(src: ModelSource): HfDtype {
  const kinds = new Set([...src.tensors.values()].filter((t) => t.shape.length === 2).map((t) => t.srcType.toUpperCase()));
  if (kinds.size === 1) {
    const k = [...kinds][0]!;
    if (k === "F32") return "f32";
    if (k === "BF16") return "bf16";
    if (k === "F16") return "f16";
  }
  if ([...kinds].every((k) => k === "F32" || k === "F16" || k === "BF16")) return kinds.has("BF16") ? "bf16" : kinds.has("F32") ? "f32" : "f16";
  return "f16";
}

export interface HfOutOptions {
  dtype: HfDtype | "auto";
  /** bytes of tensor data per shard (default 5 GB) */
  maxShardBytes?: number;
  transform?: TensorTransform;
  chatTemplate?: string;
  onTensor?: (done: number, total: number, name: string) => void;
}

/** config.json for hyperparameters (MixtralForCausalLM, or LlamaForCausalLM for dense models). */
export function hfConfigJson(c: ModelConfig, src: ModelSource, dtype: HfDtype): Record<string, unknown> {
  if (src.hfConfig) return { ...src.hfConfig, torch_dtype: TORCH[dtype] };
  const moe = c.nExpert > 0;
  const v = src.vocab;
  return {
    _name_or_path: c.name,
    architectures: [moe ? "MixtralForCausalLM" : "LlamaForCausalLM"],
    model_type: moe ? "mixtral" : "llama",
    attention_dropout: 0.0,
    ...(moe ? {} : { attention_bias: false, mlp_bias: false, pretraining_tp: 1 }),
    bos_token_id: v && v.bosId >= 0 ? v.bosId : 1,
    eos_token_id: v && v.eosId >= 0 ? v.eosId : 2,
    ...(c.headDim * c.nHead !== c.nEmbd ? { head_dim: c.headDim } : {}),
    hidden_act: "silu",
    hidden_size: c.nEmbd,
    initializer_range: 0.02,
    intermediate_size: c.nFf,
    max_position_embeddings: c.nCtxTrain,
    num_attention_heads: c.nHead,
    ...(moe ? { num_experts_per_tok: c.nExpertUsed } : {}),
    num_hidden_layers: c.nLayer,
    num_key_value_heads: c.nHeadKv,
    ...(moe ? { num_local_experts: c.nExpert, output_router_logits: false, router_aux_loss_coef: 0.02, sliding_window: null } : {}),
    rms_norm_eps: shortestF32(c.rmsEps),
    rope_scaling: c.ropeScale !== 1 ? { type: "linear", factor: shortestF32(1 / c.ropeScale) } : null,
    rope_theta: shortestF32(c.ropeTheta),
    tie_word_embeddings: src.tied,
    torch_dtype: TORCH[dtype],
    use_cache: true,
    vocab_size: c.nVocab,
  };
}

const TOKENIZER_FILES = ["tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja", "generation_config.json"];

/**
 * A temporary folder for `out` and the step that moves it into place. `out` must not exist or
 * be an empty folder.
 */
export function stageFolder(out: string): { dir: string; commit: () => void; abort: () => void } {
  const target = resolve(out);
  if (existsSync(target)) {
    if (!statSync(target).isDirectory()) throw new ArgumentError(`${out} exists and is not a folder`);
    if (readdirSync(target).length) throw new ArgumentError(`${out} is not empty; give a new or empty folder`);
  }
  mkdirSync(dirname(target), { recursive: true });
  const dir = join(dirname(target), `.${basename(target)}.${process.pid}.tmp`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  return {
    dir,
    commit: () => {
      if (existsSync(target)) rmdirSync(target); // empty, checked above
      renameSync(dir, target);
    },
    abort: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Write `src` as a Hugging Face folder at `out`. Returns the files written. */
export function writeHfFolder(src: ModelSource, out: string, opts: HfOutOptions): { files: string[]; dtype: HfDtype; totalBytes: number; notes: string[] } {
  const c = src.config;
  const dtype = opts.dtype === "auto" ? autoDtype(src) : opts.dtype;
  const st = ST[dtype];
  const chatTemplate = opts.chatTemplate ?? src.chatTemplate;
  const tensors: StTensorSource[] = [];
  for (const p of modelTensors(c, src.tied)) {
    const names = p.rule.expert ? Array.from({ length: c.nExpert }, (_, e) => hfName(p.rule, p.layer, e)) : [hfName(p.rule, p.layer)];
    for (const name of names) {
      const t = src.tensors.get(name)!;
      tensors.push({
        name, dtype: st, shape: t.shape,
        data: () => {
          let x = t.read();
          if (opts.transform) x = opts.transform(t, x) ?? x;
          return fromF32(st, x);
        },
      });
    }
  }
  const stage = stageFolder(out);
  const notes: string[] = [];
  try {
    let done = 0;
    const res = writeSafetensorsSharded(stage.dir, tensors, {
      ...(opts.maxShardBytes !== undefined ? { maxShardBytes: opts.maxShardBytes } : {}),
      metadata: { format: "pt" },
      onTensor: (name) => opts.onTensor?.(++done, tensors.length, name),
    });
    const files = [...res.files];
    const json = (name: string, v: unknown) => {
      writeFileSync(join(stage.dir, name), JSON.stringify(v, null, 2) + "\n");
      files.push(name);
    };
    json("config.json", hfConfigJson(c, src, dtype));
    if (src.tokenizerDir) {
      for (const f of TOKENIZER_FILES) {
        const p = join(src.tokenizerDir, f);
        if (!existsSync(p)) continue;
        if (f === "tokenizer_config.json" && opts.chatTemplate !== undefined) {
          const cfg = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
          json(f, { ...cfg, chat_template: opts.chatTemplate });
        } else {
          copyFileSync(p, join(stage.dir, f));
          files.push(f);
        }
      }
    } else if (!src.vocab) {
      notes.push("the GGUF has no SentencePiece vocabulary (tokenizer.ggml.model \"llama\"): no tokenizer files written");
    } else {
      const v = src.vocab;
      if (v.types.some((t) => t === TokenType.NORMAL || t === TokenType.BYTE)) {
        writeFileSync(join(stage.dir, "tokenizer.model"), spmModelBytes(v));
        files.push("tokenizer.model");
      }
      json("tokenizer.json", tokenizerJson(v));
      json("tokenizer_config.json", tokenizerConfigJson(v, chatTemplate, c.nCtxTrain));
      json("special_tokens_map.json", specialTokensMapJson(v));
      json("generation_config.json", {
        _from_model_config: true,
        ...(v.bosId >= 0 ? { bos_token_id: v.bosId } : {}),
        ...(v.eosId >= 0 ? { eos_token_id: v.eosId } : {}),
      });
    }
    stage.commit();
    return { files, dtype, totalBytes: res.totalBytes, notes };
  } catch (e) {
    stage.abort();
    throw e;
  }
}
