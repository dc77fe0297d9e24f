/**
 * Generate a random-weight Mixtral GGUF for benchmarks and scale tests.
 * node dist/bench/make-model.js --preset bench|big [--type Q4_0] [--embd N --layers N ...] --out FILE
 *   --type: a block type, or the mix Q4_K_M (Q4_K; Q6_K for output, and for attn_v and ffn_down in
 *   the layers llama.cpp gives more bits: the first and last eighth, and every third in between)
 *   bench: dim 1024, 8 layers, 16/4 heads, 8 experts top-2, ffn 2816 (the reference BENCH preset)
 *   big:   a model over 5 GiB (F32 by default) to prove models larger than one WebAssembly memory
 */
import { parseArgs } from "node:util";
import { GgmlType, typeByName } from "../quant/format.js";
import { loadSpmModel } from "../tokenizer/from-spm-model.js";
import { TOKENIZER_V1 } from "../model/default-model.js";
import { writeSyntheticModel, type SyntheticSpec } from "../model/synthetic.js";

const PRESETS: Record<string, Omit<SyntheticSpec, "type" | "name">> = {
  bench: { nEmbd: 1024, nLayer: 8, nHead: 16, nHeadKv: 4, nExpert: 8, nExpertUsed: 2, nFf: 2816, nCtx: 32768, seed: 4004 },
  // 24 layers x 8 experts x 3 x 1024 x 2816 x 4 bytes = 6.6 GB of F32 expert weights
  big: { nEmbd: 1024, nLayer: 24, nHead: 16, nHeadKv: 4, nExpert: 8, nExpertUsed: 2, nFf: 2816, nCtx: 32768, seed: 5005 },
};

const USAGE = `usage: node dist/bench/make-model.js [--preset bench|big] [--type Q4_0|Q4_K_M|F16|...] --out FILE
  shape (overrides the preset): [--embd N] [--layers N] [--heads N] [--kv-heads N] [--experts N]
  [--experts-used N] [--ff N] [--ctx N] [--seed N]
`;
const SHAPE = { embd: "nEmbd", layers: "nLayer", heads: "nHead", "kv-heads": "nHeadKv", experts: "nExpert", "experts-used": "nExpertUsed", ff: "nFf", ctx: "nCtx", seed: "seed" } as const;
let values: Record<string, string | boolean | undefined>;
try {
  values = parseArgs({
    options: {
      preset: { type: "string" }, type: { type: "string" }, out: { type: "string" }, help: { type: "boolean", short: "h" },
      ...Object.fromEntries(Object.keys(SHAPE).map((k) => [k, { type: "string" as const }])),
    },
  }).values;
} catch (e) {
  process.stderr.write(`make-model: ${(e as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (values.help) { process.stdout.write(USAGE); process.exit(0); }
const base = PRESETS[String(values.preset ?? "bench")];
if (!base || typeof values.out !== "string") {
  process.stderr.write(USAGE);
  process.exit(2);
}
const preset = { ...base };
for (const [opt, field] of Object.entries(SHAPE)) {
  const v = values[opt];
  if (v === undefined) continue;
  const n = Number(v);
  if (!Number.isInteger(n) || n < (field === "seed" ? 0 : 1)) { process.stderr.write(`make-model: --${opt} must be a positive whole number, got "${String(v)}"\n`); process.exit(2); }
  preset[field] = n;
}
if (preset.nHead % preset.nHeadKv || preset.nEmbd % preset.nHead || preset.nExpertUsed > preset.nExpert) {
  process.stderr.write(`make-model: the heads (${preset.nHead}) must divide the width (${preset.nEmbd}) and be a multiple of the KV heads (${preset.nHeadKv}), and the experts used (${preset.nExpertUsed}) at most the experts (${preset.nExpert})\n`);
  process.exit(2);
}
const type = typeof values.type === "string" ? values.type : undefined;
const mix = type?.toUpperCase() === "Q4_K_M";
const fmt = typeByName(mix ? "Q4_K" : type ?? (values.preset === "big" ? "F32" : "Q4_0"));
if (!fmt) { process.stderr.write(`make-model: unknown type "${type}"\n`); process.exit(2); }
/** Q4_K_M: Q6_K for output, and attn_v / ffn_down where llama.cpp's use_more_bits holds */
function q4kmType(name: string): GgmlType | undefined {
  if (name === "output.weight") return GgmlType.Q6_K;
  const m = /^blk\.(\d+)\.(attn_v|ffn_down)/.exec(name);
  if (!m) return undefined;
  const i = Number(m[1]), n = preset.nLayer;
  return i < n / 8 || i >= (7 * n) / 8 || (i - Math.floor(n / 8)) % 3 === 2 ? GgmlType.Q6_K : undefined;
}
const t0 = performance.now();
const name = `random-mixtral-${values.preset ?? "bench"}-${mix ? "Q4_K_M" : fmt.name}`;
writeSyntheticModel(values.out as string, { ...preset, type: fmt.type, name, std: 0.02, tensorType: mix ? q4kmType : undefined }, loadSpmModel(TOKENIZER_V1));
process.stderr.write(`wrote ${values.out} in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
