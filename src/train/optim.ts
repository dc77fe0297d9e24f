/**
 * AdamW (decoupled weight decay, as torch.optim.AdamW, the Hugging Face Trainer's default), global
 * gradient-norm clipping (the Trainer's max_grad_norm, 1.0) and the learning-rate schedules of
 * transformers' get_scheduler (linear, cosine, constant, each with a linear warm-up).
 */
import type { Param } from "./model.js";

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: Omit<AdamWOptions, "lr" | "weightDecay"> = { beta1: 0.9, beta2: 0.999, eps: 1e-8 };

/**
 * One AdamW update of every trainable parameter at 1-based step t:
 * p ← p·(1 − lr·wd) (decayed parameters only); m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
 * p ← p − lr·(m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps).
 */
export function adamwStep(params: readonly Param[], t: number, o: AdamWOptions): void {
  const bc1 = 1 - Math.pow(o.beta1, t), bc2 = 1 - Math.pow(o.beta2, t);
  const stepSize = o.lr / bc1, sq2 = Math.sqrt(bc2);
  for (const p of params) {
    if (!p.trainable) continue;
    const w = p.value!.f, g = p.grad!.f, m = p.m!.f, v = p.v!.f;
    const decay = p.decay ? 1 - o.lr * o.weightDecay : 1;
    const b1 = o.beta1, b2 = o.beta2, c1 = 1 - b1, c2 = 1 - b2, eps = o.eps;
    for (let i = 0; i < w.length; i++) {
      const gi = g[i]!;
      const mi = b1 * m[i]! + c1 * gi;
      const vi = b2 * v[i]! + c2 * gi * gi;
      m[i] = mi;
      v[i] = vi;
      w[i] = w[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) / sq2 + eps);
    }
  }
}

/** The global L2 norm of the gradients; scales them down to maxNorm when above (maxNorm > 0). */
export function clipGradNorm(params: readonly Param[], maxNorm: number): number {
  let ss = 0;
  for (const p of params) {
    if (!p.grad) continue;
    const g = p.grad.f;
    for (let i = 0; i < g.length; i++) ss += g[i]! * g[i]!;
  }
  const norm = Math.sqrt(ss);
  if (maxNorm > 0 && norm > maxNorm) {
    const k = maxNorm / (norm + 1e-6);
    for (const p of params) {
      if (!p.grad) continue;
      const g = p.grad.f;
      for (let i = 0; i < g.length; i++) g[i] = g[i]! * k;
    }
  }
  return norm;
}

export type Schedule = "cosine" | "linear" | "constant";
export const SCHEDULES: readonly Schedule[] = ["cosine", "linear", "constant"];

/** Learning rate at 0-based optimizer step `step` of `total`, warm-up over `warmup` steps. */
export function learningRate(schedule: Schedule, lr: number, step: number, total: number, warmup: number): number {
  if (step < warmup) return (lr * step) / Math.max(1, warmup);
  if (schedule === "constant") return lr;
  const progress = (step - warmup) / Math.max(1, total - warmup);
  if (schedule === "linear") return lr * Math.max(0, 1 - progress);
  return lr * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}

/** Warm-up steps for a ratio, as transformers rounds it (ceil). */
export function warmupSteps(total: number, ratio: number): number {
  return Math.ceil(total * ratio);
}
