// Every backward operation against central finite differences of its forward, in float64 on small
// random inputs of awkward sizes: the analytic gradient of L = Σ r ⊙ f(x) (r random) is compared
// with (L(x + h) − L(x − h)) / 2h for every input element.
import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededNormal } from "../model/synthetic.js";
import {
  causalSoftmax, causalSoftmaxBackward, crossEntropyRows, rmsNormBackward, rmsNormForward, rope, ropeTables, swigluBackward, swigluForward,
} from "./ops.js";

const rng = new SeededNormal(42);
const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => rng.normal() * s);
const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => { let s = 0; for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!; return s; };

/** numeric gradient of loss(x) at x (x is perturbed in place and restored) */
function numeric(x: Float32Array, loss: () => number, h = 1e-2): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const old = x[i]!;
    x[i] = old + h; const up = loss();
    x[i] = old - h; const down = loss();
    x[i] = old;
    g[i] = (up - down) / (2 * h);
  }
  return g;
}

function close(a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = 2e-3): void {
  let scale = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]!));
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, scale), `${what}[${i}]: analytic ${a[i]}, numeric ${b[i]}`);
  }
}

test("RMSNorm backward (input and weight)", () => {
  const T = 3, n = 7, eps = 1e-5;
  const x = rand(T * n), w = rand(n), r = rand(T * n);
  const loss = () => { const y = new Float32Array(T * n); rmsNormForward(x, 0, w, 0, y, 0, new Float32Array(T), T, n, eps); return dot(y, r); };
  const rstd = new Float32Array(T);
  rmsNormForward(x, 0, w, 0, new Float32Array(T * n), 0, rstd, T, n, eps);
  const dx = new Float32Array(T * n), dw = new Float32Array(n);
  rmsNormBackward(x, 0, w, 0, rstd, r, 0, dx, 0, dw, 0, T, n, false);
  close(dx, numeric(x, loss, 1e-3), "dx");
  close(dw, numeric(w, loss, 1e-3), "dw");
});

test("RoPE backward is the inverse rotation (partial rotation too)", () => {
  const T = 5, nH = 3, hd = 8, nRot = 6;
  const tab = ropeTables(nRot, 10000, 1, T);
  const x = rand(T * nH * hd), r = rand(T * nH * hd);
  const loss = () => { const y = Float32Array.from(x); rope(y, 0, T, nH, hd, nRot, tab, false); return dot(y, r); };
  const g = Float32Array.from(r);
  rope(g, 0, T, nH, hd, nRot, tab, true);
  close(g, numeric(x, loss, 1e-3), "dx");
});

test("causal softmax backward", () => {
  const T = 6, scale = 0.37;
  const s = rand(T * T), r = rand(T * T);
  const loss = () => { const p = Float32Array.from(s); causalSoftmax(p, T, scale); return dot(p, r); };
  const P = Float32Array.from(s);
  causalSoftmax(P, T, scale);
  const g = Float32Array.from(r);
  causalSoftmaxBackward(P, g, T, scale);
  close(g, numeric(s, loss, 1e-3), "dS");
});

test("SwiGLU backward", () => {
  const n = 11;
  const gt = rand(n, 2), u = rand(n), r = rand(n);
  const loss = () => { const a = new Float32Array(n); swigluForward(gt, u, a, n); return dot(a, r); };
  const dg = new Float32Array(n), du = new Float32Array(n);
  swigluBackward(gt, u, r, dg, du, n);
  close(dg, numeric(gt, loss, 1e-3), "dgate");
  close(du, numeric(u, loss, 1e-3), "dup");
});

test("cross-entropy backward, with unscored rows", () => {
  const T = 4, V = 9, targets = [3, -1, 0, 8];
  const z = rand(T * V, 2);
  const loss = () => crossEntropyRows(Float32Array.from(z), T, V, targets, 0, 0);
  const g = Float32Array.from(z);
  const l = crossEntropyRows(g, T, V, targets, 0, 1);
  assert.ok(Math.abs(l - loss()) < 1e-9);
  close(g, numeric(z, loss, 1e-3), "dlogits");
  for (let v = 0; v < V; v++) assert.equal(g[V + v], 0);
});
