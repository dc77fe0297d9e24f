/**
 * Per-tensor type choice for `cmx quantize`, following llama-quantize's recipes (the mixes of the
 * _S/_M/_L file types, the MoE bumps, ffn_down layers that get more bits, output.weight at Q6_K,
 * and the fallbacks for rows that are not a multiple of a K-quant's 256-element block).
 * ../shared/reference/quant/quantize_recipes.json lists llama.cpp's choices for every tensor of
 * 32 files; the tests check this table against all of them.
 */
import { ArgumentError } from "../errors.js";
import { GgmlType, blockFormat } from "./format.js";

/** llama.cpp's llama_ftype values (stored as general.file_type). */
export const FTYPE = {
  F32: 0, F16: 1, Q4_0: 2, Q4_1: 3, Q8_0: 7, Q5_0: 8, Q5_1: 9, Q2_K: 10, Q3_K_S: 11, Q3_K_M: 12, Q3_K_L: 13,
  Q4_K_S: 14, Q4_K_M: 15, Q5_K_S: 16, Q5_K_M: 17, Q6_K: 18, IQ2_XXS: 19, IQ2_XS: 20, Q2_K_S: 21, IQ3_XS: 22,
  IQ3_XXS: 23, IQ1_S: 24, IQ4_NL: 25, IQ3_S: 26, IQ3_M: 27, IQ2_S: 28, IQ2_M: 29, IQ4_XS: 30, IQ1_M: 31, BF16: 32,
} as const;
export type FileTypeName = keyof typeof FTYPE;

interface FileTypeInfo {
  /** the type most tensors get */
  base: GgmlType;
  /** bits per weight of llama.cpp's 7B reference (as llama-quantize's help prints) */
  bpw: string;
  /** an importance matrix is required (IQ2/IQ3) */
  needsImatrix?: boolean;
}

export const FILE_TYPES: Partial<Record<FileTypeName, FileTypeInfo>> = {
  F32: { base: GgmlType.F32, bpw: "32.00" },
  F16: { base: GgmlType.F16, bpw: "16.00" },
  BF16: { base: GgmlType.BF16, bpw: "16.00" },
  Q8_0: { base: GgmlType.Q8_0, bpw: "8.50" },
  Q6_K: { base: GgmlType.Q6_K, bpw: "6.56" },
  Q5_K_M: { base: GgmlType.Q5_K, bpw: "5.67" },
  Q5_K_S: { base: GgmlType.Q5_K, bpw: "5.54" },
  Q5_1: { base: GgmlType.Q5_1, bpw: "6.00" },
  Q5_0: { base: GgmlType.Q5_0, bpw: "5.50" },
  Q4_K_M: { base: GgmlType.Q4_K, bpw: "4.89" },
  Q4_K_S: { base: GgmlType.Q4_K, bpw: "4.58" },
  Q4_1: { base: GgmlType.Q4_1, bpw: "5.00" },
  Q4_0: { base: GgmlType.Q4_0, bpw: "4.50" },
  Q3_K_L: { base: GgmlType.Q3_K, bpw: "4.27" },
  Q3_K_M: { base: GgmlType.Q3_K, bpw: "3.91" },
  Q3_K_S: { base: GgmlType.Q3_K, bpw: "3.50" },
  Q2_K: { base: GgmlType.Q2_K, bpw: "2.96" },
  IQ4_NL: { base: GgmlType.IQ4_NL, bpw: "4.50" },
  IQ4_XS: { base: GgmlType.IQ4_XS, bpw: "4.25" },
  IQ3_XXS: { base: GgmlType.IQ3_XXS, bpw: "3.06", needsImatrix: true },
  IQ2_XS: { base: GgmlType.IQ2_XS, bpw: "2.31", needsImatrix: true },
  IQ2_XXS: { base: GgmlType.IQ2_XXS, bpw: "2.06", needsImatrix: true },
};

export interface RecipeModel {
  nLayer: number;
  nExpert: number;
  nHead: number;
  nHeadKv: number;
  /** whether the file has a separate output.weight (else token_embd is the output) */
  hasOutput: boolean;
}

export interface TensorShape {
  name: string;
  dims: number[];
}

/** ggml types llama-quantize falls back to when a row is not a whole number of blocks. */
const FALLBACK: Partial<Record<GgmlType, GgmlType>> = {
  [GgmlType.IQ2_XXS]: GgmlType.IQ4_NL, [GgmlType.IQ2_XS]: GgmlType.IQ4_NL, [GgmlType.IQ2_S]: GgmlType.IQ4_NL,
  [GgmlType.IQ3_XXS]: GgmlType.IQ4_NL, [GgmlType.IQ3_S]: GgmlType.IQ4_NL, [GgmlType.IQ1_S]: GgmlType.IQ4_NL,
  [GgmlType.IQ1_M]: GgmlType.IQ4_NL, [GgmlType.Q2_K]: GgmlType.IQ4_NL, [GgmlType.Q3_K]: GgmlType.IQ4_NL,
  [GgmlType.IQ4_XS]: GgmlType.IQ4_NL, [GgmlType.Q4_K]: GgmlType.Q5_0, [GgmlType.Q5_K]: GgmlType.Q5_1,
  [GgmlType.Q6_K]: GgmlType.Q8_0,
};

/**
 * Whether llama-quantize refuses to write tensor `name` as `type` without an importance matrix:
 * the very low-bit IQ types, except for token_embd and output (llama-quant.cpp tensor_requires_imatrix).
 */
export function requiresImatrix(name: string, type: GgmlType): boolean {
  if (name === "token_embd.weight" || name === "output.weight") return false;
  return type === GgmlType.IQ3_XXS || type === GgmlType.IQ2_XXS || type === GgmlType.IQ2_XS || type === GgmlType.IQ2_S
    || type === GgmlType.IQ1_S || type === GgmlType.IQ1_M;
}

/** Whether llama-quantize quantizes this tensor at all (norms, the router and 1-D tensors stay). */
export function isQuantizable(t: TensorShape): boolean {
  return t.name.endsWith("weight") && t.dims.length >= 2 && !t.name.includes("_norm.weight") && !t.name.includes("ffn_gate_inp.weight");
}

/**
 * The chooser: call `typeFor` for the tensors in file order (the counters of attn_v follow the
 * order, as in llama-quantize).
 */
export class Recipe {
  private iAttnV = 0;
  private readonly nAttnV: number;
  readonly ftype: FileTypeName;
  readonly base: GgmlType;

  constructor(ftype: string, private m: RecipeModel, tensors: TensorShape[], private pure = false) {
    const f = ftype.toUpperCase() as FileTypeName;
    const info = FILE_TYPES[f];
    if (!info) throw new ArgumentError(`unknown quantization type "${ftype}"; one of ${Object.keys(FILE_TYPES).join(", ")}`);
    this.ftype = f;
    this.base = info.base;
    this.nAttnV = tensors.filter((t) => t.name.includes("attn_v.weight")).length;
  }

  /** More bits for the first and last eighth of the layers and every third in between. */
  private static moreBits(i: number, n: number): boolean {
    const e = Math.floor(n / 8);
    return i < e || i >= Math.floor((7 * n) / 8) || (i - e) % 3 === 2;
  }

  private static layerOf(name: string): number {
    const m = /^blk\.(\d+)\./.exec(name);
    return m ? Number(m[1]) : 0;
  }

  typeFor(t: TensorShape): GgmlType {
    if (!isQuantizable(t)) return GgmlType.F32;
    const f = this.ftype, name = t.name;
    let type = this.base;
    const quantized = !(f === "F32" || f === "F16" || f === "BF16");
    if (!this.pure && quantized) type = this.mix(t, type);
    else if (name.includes("attn_v.weight")) this.iAttnV++;
    // rows that are not whole blocks fall back as llama-quantize does
    const bs = blockFormat(type)!.blockSize;
    if (t.dims[0]! % bs !== 0) {
      const fb = FALLBACK[type];
      if (fb === undefined) throw new ArgumentError(`tensor "${name}": row length ${t.dims[0]} does not fit ${blockFormat(type)!.name} blocks`);
      type = t.dims[0]! % blockFormat(fb)!.blockSize === 0 ? fb : GgmlType.F16;
    }
    return type;
  }

  private mix(t: TensorShape, type: GgmlType): GgmlType {
    const f = this.ftype, m = this.m, name = t.name;
    const nGqa = m.nHead / m.nHeadKv;
    const iq12 = f === "IQ2_XXS" || f === "IQ2_XS" || f === "IQ1_S" || f === "IQ2_S" || f === "IQ2_M" || f === "IQ1_M";
    if (name === "output.weight" || (!m.hasOutput && name === "token_embd.weight")) {
      if (t.dims[0]! % 256 !== 0) return GgmlType.Q8_0;
      if (iq12 || f === "IQ3_XXS") return GgmlType.Q5_K;
      return type !== GgmlType.Q8_0 ? GgmlType.Q6_K : type;
    }
    if (name === "token_embd.weight") {
      if (f === "IQ2_XXS" || f === "IQ2_XS" || f === "IQ1_S" || f === "IQ1_M") return GgmlType.Q2_K;
      if (f === "IQ2_S" || f === "IQ2_M" || f === "IQ3_XXS") return GgmlType.IQ3_S;
      return type;
    }
    if (iq12) {
      if (name.includes("attn_v.weight")) {
        this.iAttnV++;
        if (nGqa >= 4 || m.nExpert >= 4) return GgmlType.Q4_K;
        return f === "IQ2_S" || f === "IQ2_M" ? GgmlType.IQ3_S : GgmlType.Q2_K;
      }
      if (m.nExpert === 8 && name.includes("attn_k.weight")) return GgmlType.Q4_K;
      if (name.includes("ffn_down")) {
        return Recipe.layerOf(name) < Math.floor(m.nLayer / 8) ? (f === "IQ2_S" || f === "IQ2_M" ? GgmlType.IQ3_S : GgmlType.Q2_K) : type;
      }
      if (name.includes("attn_output.weight")) {
        if (m.nExpert === 8) return GgmlType.Q5_K;
        if (f === "IQ1_S" || f === "IQ1_M") return GgmlType.IQ2_XXS;
        if (f === "IQ2_S" || f === "IQ2_M") return GgmlType.IQ3_S;
      }
      return type;
    }
    if (name.includes("attn_v.weight")) {
      const i = this.iAttnV++;
      if (f === "Q2_K") type = nGqa >= 4 ? GgmlType.Q4_K : GgmlType.Q3_K;
      else if (f === "IQ3_XXS") type = nGqa >= 4 ? GgmlType.Q4_K : GgmlType.IQ3_S;
      else if (f === "Q3_K_M") type = i < 2 ? GgmlType.Q5_K : GgmlType.Q4_K;
      else if (f === "Q3_K_L") type = GgmlType.Q5_K;
      else if ((f === "IQ4_NL" || f === "IQ4_XS") && nGqa >= 4) type = GgmlType.Q5_K;
      else if ((f === "Q4_K_M" || f === "Q5_K_M") && Recipe.moreBits(i, this.nAttnV)) type = GgmlType.Q6_K;
      else if (f === "Q4_K_S" && i < 4) type = GgmlType.Q5_K;
      // for 8-expert models the attention is a small share of the file: Q8_0
      if (m.nExpert === 8) type = GgmlType.Q8_0;
      return type;
    }
    if (name.includes("attn_k.weight")) {
      if (m.nExpert === 8) return GgmlType.Q8_0;
      return type;
    }
    if (name.includes("ffn_down")) {
      const i = Recipe.layerOf(name), n = m.nLayer;
      if (f === "Q2_K") return GgmlType.Q3_K;
      if (f === "IQ3_XXS") return i < Math.floor(n / 8) ? GgmlType.Q4_K : GgmlType.Q3_K;
      if (f === "Q3_K_M") return i < Math.floor(n / 16) ? GgmlType.Q5_K : GgmlType.Q4_K;
      if (f === "Q3_K_L") return GgmlType.Q5_K;
      if (f === "Q4_K_M") return Recipe.moreBits(i, n) ? GgmlType.Q6_K : type;
      if (i < Math.floor(n / 8) && (f === "IQ4_NL" || f === "IQ4_XS")) return GgmlType.Q5_K;
      if (f === "Q5_K_M" && Recipe.moreBits(i, n)) return GgmlType.Q6_K;
      if (f === "Q4_K_S" && i < Math.floor(n / 8)) return GgmlType.Q5_K;
      return type;
    }
    if (name.includes("attn_output.weight")) {
      if (m.nExpert === 8) {
        const bump: FileTypeName[] = ["Q2_K", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ4_XS"];
        return bump.includes(f) ? GgmlType.Q5_K : type;
      }
      if (f === "Q2_K") return GgmlType.Q3_K;
      if (f === "IQ3_XXS") return GgmlType.IQ3_S;
      if (f === "Q3_K_M") return GgmlType.Q4_K;
      if (f === "Q3_K_L") return GgmlType.Q5_K;
      return type;
    }
    return type;
  }
}
