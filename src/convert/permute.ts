/**
 * The Q/K row permutation between Hugging Face's and GGUF's RoPE layouts.
 *
 * Hugging Face's Llama/Mistral/Mixtral rotate dimension i of a head with dimension i + d/2
 * ("rotate_half"); llama.cpp rotates the adjacent pairs (2i, 2i + 1). llama.cpp's converter
 * therefore reorders the rows of q_proj (per attention head) and k_proj (per KV head): within a
 * head of d rows, HF row i < d/2 becomes GGUF row 2i and HF row d/2 + i becomes GGUF row 2i + 1.
 * The same reordering applies to anything whose rows are q/k outputs (LoRA B matrices, deltas).
 */
import { ArgumentError } from "../errors.js";

/**
 * Reorder the rows of an [nRows, rowLen] row-major matrix, nHead heads of nRows / nHead rows each:
 * HF -> GGUF (`toGguf` true) or GGUF -> HF. Returns a new array (or `out`).
 */
export function permuteRopeRows(x: Float32Array, nRows: number, rowLen: number, nHead: number, toGguf: boolean, out = new Float32Array(nRows * rowLen)): Float32Array {
  if (nRows % nHead !== 0) throw new ArgumentError(`cannot split ${nRows} rows into ${nHead} heads`);
  const d = nRows / nHead;
  if (d % 2 !== 0) throw new ArgumentError(`head size ${d} is odd; RoPE needs pairs`);
  if (x.length < nRows * rowLen) throw new ArgumentError(`matrix holds ${x.length} values, ${nRows}x${rowLen} needed`);
  const half = d / 2;
  for (let h = 0; h < nHead; h++) {
    const base = h * d;
    for (let i = 0; i < half; i++) {
      for (const [hfRow, ggRow] of [[base + i, base + 2 * i], [base + half + i, base + 2 * i + 1]] as const) {
        const src = toGguf ? hfRow : ggRow, dst = toGguf ? ggRow : hfRow;
        out.set(x.subarray(src * rowLen, (src + 1) * rowLen), dst * rowLen);
      }
    }
  }
  return out;
}

/** The GGUF row that HF row `r` of a tensor with heads of `d` rows goes to. */
export function ggufRowOf(r: number, d: number): number {
  const h = Math.floor(r / d), i = r % d, half = d / 2;
  return h * d + (i < half ? 2 * i : 2 * (i - half) + 1);
}
