/**
 * What training writes: the adapter in PEFT's format (adapter_config.json and
 * adapter_model.safetensors with PEFT's tensor names; the fully trained embed_tokens / lm_head as
 * PEFT saves modules_to_save), and a merged GGUF (base + s·B·A, trained tensors replaced).
 *
 * The trainer works in GGUF layout; PEFT's is Hugging Face's, so the rows of q_proj / k_proj LoRA
 * B matrices are permuted back from the interleaved RoPE order (src/convert/permute.ts), and the
 * stacked expert tensors are split into experts.E.w1 / w2 / w3.
 */
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gv, writeGguf, type GgufTensorSource } from "../io/gguf/writer.js";
import type { GgufReader } from "../io/gguf/reader.js";
import type { GgufEntry } from "../io/gguf/types.js";
import { writeSafetensors, type StTensorSource } from "../io/safetensors/index.js";
import { ggufToHf, parseGgufName } from "../io/tensor-names.js";
import { permuteRopeRows } from "../convert/permute.js";
import { addLoraDelta } from "../lora/merge.js";
import { GgmlType } from "../quant/format.js";
import { dequantize, quantizeWeights } from "../quant/index.js";
import type { LoraPair, Param, TrainModel } from "./model.js";

const PEFT_PREFIX = "base_model.model.";

/** The bytes of a float array (a copy: training arrays live in a shared memory). */
export function f32Bytes(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer.slice(x.byteOffset, x.byteOffset + x.byteLength));
}

/** Whether the trained tensors fit a PEFT adapter (LoRA pairs plus embed_tokens / lm_head in full). */
export function adapterExpressible(m: TrainModel): boolean {
  return m.trainable().every((p) => p.name.includes(".lora_") || p === m.tokEmb || p === m.output);
}

/** Every LoRA pair with the base tensor it belongs to. */
export function loraPairs(m: TrainModel): { base: Param; pair: LoraPair }[] {
  const out: { base: Param; pair: LoraPair }[] = [];
  for (const L of m.layers) {
    for (const lin of [L.q, L.k, L.v, L.o, L.router, L.w1, L.w3, L.w2]) if (lin?.lora) out.push({ base: lin.w, pair: lin.lora });
  }
  return out;
}

/** The adapter's tensors under PEFT's names (float32). */
export function adapterTensors(m: TrainModel): StTensorSource[] {
  const c = m.cfg;
  const out: StTensorSource[] = [];
  for (const { base, pair } of loraPairs(m)) {
    const hf = ggufToHf(base.name, c.nExpert);
    if (!hf || hf.length !== base.nMat) throw new Error(`no Hugging Face name for ${base.name}`);
    const role = parseGgufName(base.name)!.rule.rope;
    const r = pair.A.rows, nIn = base.cols, nOut = base.rows;
    hf.forEach((name, e) => {
      const module = PEFT_PREFIX + name.replace(/\.weight$/, "");
      const A = pair.A.value!.f.subarray(e * r * nIn, (e + 1) * r * nIn);
      let B = pair.B.value!.f.subarray(e * nOut * r, (e + 1) * nOut * r);
      if (role) B = permuteRopeRows(B, nOut, r, role === "q" ? c.nHead : c.nHeadKv, false);
      out.push({ name: `${module}.lora_A.weight`, dtype: "F32", shape: [r, nIn], data: f32Bytes(A) });
      out.push({ name: `${module}.lora_B.weight`, dtype: "F32", shape: [nOut, r], data: f32Bytes(B) });
    });
  }
  if (m.tokEmb.trainable) out.push({ name: `${PEFT_PREFIX}model.embed_tokens.weight`, dtype: "F32", shape: [c.nVocab, c.nEmbd], data: f32Bytes(m.tokEmb.value!.f) });
  if (m.output.trainable && m.output !== m.tokEmb) out.push({ name: `${PEFT_PREFIX}lm_head.weight`, dtype: "F32", shape: [c.nVocab, c.nEmbd], data: f32Bytes(m.output.value!.f) });
  return out;
}

export function adapterConfig(m: TrainModel, baseName: string): Record<string, unknown> {
  const s = m.setup;
  const save: string[] = [];
  if (m.tokEmb.trainable) save.push("embed_tokens");
  if (m.output.trainable && m.output !== m.tokEmb) save.push("lm_head");
  return {
    peft_type: "LORA", task_type: "CAUSAL_LM", base_model_name_or_path: baseName, inference_mode: true,
    r: s.loraRank, lora_alpha: s.loraAlpha, lora_dropout: s.loraDropout, target_modules: [...s.loraTargets],
    modules_to_save: save.length ? save : null, bias: "none", fan_in_fan_out: false, init_lora_weights: true,
    use_rslora: false, use_dora: false, rank_pattern: {}, alpha_pattern: {}, layers_to_transform: null, layers_pattern: null, revision: null,
  };
}

/** Write adapter_config.json and adapter_model.safetensors into dir (each atomically). */
export function writeAdapter(dir: string, m: TrainModel, baseName: string): void {
  mkdirSync(dir, { recursive: true });
  writeSafetensors(join(dir, "adapter_model.safetensors"), adapterTensors(m), { metadata: { format: "pt" } });
  const cfgPath = join(dir, "adapter_config.json");
  writeFileSync(`${cfgPath}.tmp`, JSON.stringify(adapterConfig(m, baseName), null, 2) + "\n");
  renameSync(`${cfgPath}.tmp`, cfgPath);
}

export type MergeType = "f32" | "f16" | "bf16" | "q8_0" | "base";
export const MERGE_TYPES: readonly MergeType[] = ["f32", "f16", "bf16", "q8_0", "base"];
const GGML_OF: Record<Exclude<MergeType, "base">, GgmlType> = { f32: GgmlType.F32, f16: GgmlType.F16, bf16: GgmlType.BF16, q8_0: GgmlType.Q8_0 };
const FTYPE_OF: Record<Exclude<MergeType, "base">, number> = { f32: 0, f16: 1, bf16: 32, q8_0: 7 };

/**
 * The trained model as a GGUF: the base's metadata and tensors, trained tensors replaced and LoRA
 * deltas merged (in float32), changed matrices written as `type` (norms and the router stay F32, as
 * llama.cpp keeps them; "base": each tensor's own type). Unchanged tensors keep their bytes.
 */
export function writeMergedGguf(path: string, base: GgufReader, m: TrainModel, type: MergeType, name?: string,
  onProgress?: (done: number, total: number) => void): void {
  const byName = new Map<string, { p?: Param; pairs: LoraPair[] }>();
  for (const p of m.trainable()) if (!p.name.includes(".lora_")) byName.set(p.name, { p, pairs: [] });
  for (const { base: b, pair } of loraPairs(m)) {
    const e = byName.get(b.name) ?? { pairs: [] };
    e.pairs.push(pair);
    byName.set(b.name, e);
  }
  const md = new Map<string, GgufEntry>(base.metadata);
  if (type !== "base") md.set("general.file_type", gv.u32(FTYPE_OF[type]));
  if (name) md.set("general.name", gv.str(name));
  const tensors: GgufTensorSource[] = base.tensors.map((t) => {
    const change = byName.get(t.name);
    if (!change) return { name: t.name, dims: [...t.dims], type: t.type, data: () => base.readTensorBytes(t) };
    const n = t.dims.reduce((a, b) => a * b, 1);
    const rowLen = t.dims[0]!;
    const vector = t.dims.filter((d) => d > 1).length <= 1;
    const keepF32 = vector || t.name.includes("ffn_gate_inp");
    const outType = keepF32 ? GgmlType.F32 : type === "base" ? t.type : GGML_OF[type];
    return {
      name: t.name, dims: [...t.dims], type: outType,
      data: () => {
        let x: Float32Array;
        if (change.p) x = Float32Array.from(change.p.value!.f);
        else {
          x = new Float32Array(n);
          dequantize(t.type, base.readTensorBytes(t), 0, x, 0, n);
        }
        for (const pair of change.pairs) {
          const r = pair.A.rows, nOut = pair.B.rows, nIn = pair.A.cols, nMat = pair.A.nMat;
          for (let e = 0; e < nMat; e++) {
            const W = x.subarray(e * nOut * nIn, (e + 1) * nOut * nIn);
            addLoraDelta({ kind: "linear", scale: pair.scale, rank: r }, W,
              pair.A.value!.f.subarray(e * r * nIn, (e + 1) * r * nIn), pair.B.value!.f.subarray(e * nOut * r, (e + 1) * nOut * r), nOut, nIn);
          }
        }
        return outType === GgmlType.F32 ? f32Bytes(x) : quantizeWeights(outType, x, n / rowLen, rowLen);
      },
    };
  });
  writeGguf(path, { metadata: md, tensors, ...(onProgress ? { onProgress: (d: number, tot: number) => onProgress(d, tot) } : {}) });
}
