import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { FTYPE, Recipe, type FileTypeName, type TensorShape } from "./quantize-model.js";
import { typeName } from "./format.js";
import { haveReference, refPath } from "../test-util/paths.js";

const PRESETS: Record<string, { n_embd: number; n_layer: number; n_head: number; n_head_kv: number; n_expert: number; n_ff: number }> = {
  A: { n_embd: 64, n_layer: 2, n_head: 4, n_head_kv: 2, n_expert: 4, n_ff: 128 },
  B: { n_embd: 128, n_layer: 4, n_head: 8, n_head_kv: 4, n_expert: 8, n_ff: 256 },
  B2: { n_embd: 256, n_layer: 2, n_head: 4, n_head_kv: 2, n_expert: 4, n_ff: 512 },
  BENCH: { n_embd: 1024, n_layer: 8, n_head: 16, n_head_kv: 4, n_expert: 8, n_ff: 2816 },
};

/** Tensors of a preset in the order llama.cpp's writer (and make_tiny_mixtral.py) puts them. */
function tensorsOf(names: string[], p: (typeof PRESETS)[string]): TensorShape[] {
  const hd = p.n_embd / p.n_head, V = 32000;
  return names.map((name) => {
    const base = name.replace(/^blk\.\d+\./, "");
    const dims: Record<string, number[]> = {
      "token_embd.weight": [p.n_embd, V], "output.weight": [p.n_embd, V], "output_norm.weight": [p.n_embd],
      "attn_norm.weight": [p.n_embd], "ffn_norm.weight": [p.n_embd],
      "attn_q.weight": [p.n_embd, p.n_head * hd], "attn_k.weight": [p.n_embd, p.n_head_kv * hd], "attn_v.weight": [p.n_embd, p.n_head_kv * hd],
      "attn_output.weight": [p.n_head * hd, p.n_embd], "ffn_gate_inp.weight": [p.n_embd, p.n_expert],
      "ffn_gate_exps.weight": [p.n_embd, p.n_ff, p.n_expert], "ffn_up_exps.weight": [p.n_embd, p.n_ff, p.n_expert],
      "ffn_down_exps.weight": [p.n_ff, p.n_embd, p.n_expert],
    };
    return { name, dims: dims[base]! };
  });
}

test("per-tensor types equal llama-quantize's for all 32 reference files", { skip: !haveReference() }, () => {
  const files = JSON.parse(readFileSync(refPath("quant", "quantize_recipes.json"), "utf8")).files as Record<string, { "general.file_type": number; tensor_types: Record<string, string> }>;
  const byValue = new Map<number, FileTypeName>(Object.entries(FTYPE).map(([k, v]) => [v as number, k as FileTypeName]));
  let checked = 0;
  for (const [file, info] of Object.entries(files)) {
    const preset = file.split("-")[0]!;
    const p = PRESETS[preset]!;
    const pure = file.includes("-pure-");
    const ftype = byValue.get(info["general.file_type"])!;
    // tensor order: as llama.cpp sorts a converted Mixtral (attention, then experts per layer)
    const names = Object.keys(info.tensor_types);
    const tensors = tensorsOf(names, p);
    const r = new Recipe(ftype, { nLayer: p.n_layer, nExpert: p.n_expert, nHead: p.n_head, nHeadKv: p.n_head_kv, hasOutput: true }, tensors, pure);
    for (const t of tensors) {
      assert.equal(typeName(r.typeFor(t)), info.tensor_types[t.name], `${file}: ${t.name}`);
      checked++;
    }
  }
  assert.ok(checked > 700);
});
