/**
 * Rotary position embedding, "normal" mode (adjacent pairs (2i, 2i+1) rotate together), as used by
 * llama/Mistral/Mixtral GGUF files. theta_i = pos * freqScale * base^(-2i/nRot), computed the way
 * ggml does (theta multiplied by theta_scale in float32 per pair).
 *
 * With `glibc` set, the table is llama.cpp's to the last bit: theta_scale by powf and cos/sin by
 * cosf/sinf as glibc computes them (see libm.ts); applyGgml then rotates with llama.cpp's rounding.
 */
import { cosf, fmaf, powf, sinf } from "./libm.js";

export class RopeTable {
  private cos: Float32Array;
  private sin: Float32Array;
  constructor(readonly nRot: number, readonly base: number, readonly freqScale: number, private maxPos: number, readonly glibc = false) {
    this.cos = new Float32Array(0);
    this.sin = new Float32Array(0);
    this.grow(maxPos);
  }

  private grow(maxPos: number): void {
    const half = this.nRot / 2;
    const cos = new Float32Array(maxPos * half);
    const sin = new Float32Array(maxPos * half);
    const g = this.glibc;
    const thetaScale = g ? powf(Math.fround(this.base), Math.fround(-2 / this.nRot)) : Math.fround(Math.pow(this.base, -2 / this.nRot));
    for (let p = 0; p < maxPos; p++) {
      let theta = Math.fround(p);
      for (let i = 0; i < half; i++) {
        const t = Math.fround(theta * this.freqScale);
        cos[p * half + i] = g ? cosf(t) : Math.cos(t);
        sin[p * half + i] = g ? sinf(t) : Math.sin(t);
        theta = Math.fround(theta * thetaScale);
      }
    }
    this.cos = cos;
    this.sin = sin;
    this.maxPos = maxPos;
  }

  /** Rotate nHeads heads of size headDim stored contiguously at x[off...] for position pos. */
  apply(x: Float32Array, off: number, nHeads: number, headDim: number, pos: number): void {
    if (pos >= this.maxPos) this.grow(Math.max(pos + 1, this.maxPos * 2));
    const half = this.nRot / 2;
    const c = this.cos, s = this.sin, base = pos * half;
    for (let h = 0; h < nHeads; h++) {
      const o = off + h * headDim;
      for (let i = 0; i < half; i++) {
        const x0 = x[o + 2 * i]!, x1 = x[o + 2 * i + 1]!;
        const ci = c[base + i]!, si = s[base + i]!;
        x[o + 2 * i] = x0 * ci - x1 * si;
        x[o + 2 * i + 1] = x0 * si + x1 * ci;
      }
    }
  }

  /**
   * apply with llama.cpp's arithmetic (ggml_compute_forward_rope_f32 as GCC compiles it): each output
   * is one fused multiply-add, x0*cos - x1*sin = fma(x0, cos, -(x1*sin)), x0*sin + x1*cos = fma(x0, sin, x1*cos).
   */
  applyGgml(x: Float32Array, off: number, nHeads: number, headDim: number, pos: number): void {
    if (pos >= this.maxPos) this.grow(Math.max(pos + 1, this.maxPos * 2));
    const half = this.nRot / 2;
    const c = this.cos, s = this.sin, base = pos * half;
    for (let h = 0; h < nHeads; h++) {
      const o = off + h * headDim;
      for (let i = 0; i < half; i++) {
        const x0 = x[o + 2 * i]!, x1 = x[o + 2 * i + 1]!;
        const ci = c[base + i]!, si = s[base + i]!;
        x[o + 2 * i] = fmaf(x0, ci, -Math.fround(x1 * si));
        x[o + 2 * i + 1] = fmaf(x0, si, Math.fround(x1 * ci));
      }
    }
  }
}
