import { test } from "node:test";
import assert from "node:assert/strict";
import { rng } from "../../quant/testing.js";
import { cosf, expf, fmaf, powf, sinf } from "./libm.js";
import { hsum8, reduce16, softmaxRow, vexpf } from "./ggml.js";

const fr = Math.fround;
const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);
/** distance in float32 units in the last place */
function ulps(a: number, b: number): number {
  f32[0] = a; const ia = u32[0]! | 0;
  f32[0] = b; const ib = u32[0]! | 0;
  return Math.abs((ia < 0 ? 0x80000000 - ia : ia) - (ib < 0 ? 0x80000000 - ib : ib));
}

/** float32 fma with one rounding, by exact integer arithmetic */
function fmaExact(a: number, b: number, c: number): number {
  const parts = (x: number): [bigint, number] => {
    if (x === 0) return [0n, 0];
    const e = Math.floor(Math.log2(Math.abs(x))) - 52;
    return [BigInt(x / 2 ** e), e];
  };
  const [ma, ea] = parts(a), [mb, eb] = parts(b), [mc, ec] = parts(c);
  const ep = ea + eb, e = Math.min(ep, ec);
  let m = ma * mb * (1n << BigInt(ep - e)) + mc * (1n << BigInt(ec - e));
  if (m === 0n) return 0;
  const neg = m < 0n;
  if (neg) m = -m;
  let ex = e;
  const bits = m.toString(2).length;
  if (bits > 24) {
    const sh = BigInt(bits - 24), q = m >> sh, rem = m - (q << sh), half = 1n << (sh - 1n);
    m = rem > half || (rem === half && (q & 1n) === 1n) ? q + 1n : q;
    ex += Number(sh);
  }
  const v = Number(m) * 2 ** ex;
  return fr(neg ? -v : v);
}

test("fmaf rounds once, also where the float64 sum lands halfway between two floats", () => {
  const u = rng(5);
  for (let i = 0; i < 20000; i++) {
    const a = fr(u() * 4 - 2), b = fr(u() * 4 - 2), c = fr((u() - 0.5) * 2 ** Math.floor(u() * 60 - 30));
    assert.equal(fmaf(a, b, c), fmaExact(a, b, c), `fmaf(${a}, ${b}, ${c})`);
  }
  let naiveWrong = 0;
  for (let i = 1; i <= 11; i++) {
    for (const sign of [1, -1]) {
      for (const c of [2 ** -70, -(2 ** -70), 2 ** -60, -(2 ** -61), 0]) {
        // (1 + 2^-i)(1 + 2^-(24-i)) = 1 + 2^-i + 2^-(24-i) + 2^-24: exactly between two floats
        const a = fr(sign * (1 + 2 ** -i)), b = fr(1 + 2 ** -(24 - i));
        const want = fmaExact(a, b, fr(c));
        assert.equal(fmaf(a, b, fr(c)), want, `fmaf(${a}, ${b}, ${c})`);
        if (fr(a * b + fr(c)) !== want) naiveWrong++;
      }
    }
  }
  assert.ok(naiveWrong > 0, "the cases exercise double rounding");
});

test("glibc expf, sinf, cosf, powf are within one ulp of the exact value", () => {
  const u = rng(11);
  for (let i = 0; i < 20000; i++) {
    const x = fr((u() - 0.7) * 150);
    assert.ok(ulps(expf(x), fr(Math.exp(x))) <= 1, `expf(${x}) = ${expf(x)}`);
    const y = fr((u() - 0.5) * (i % 2 ? 20 : 4000));
    assert.ok(ulps(sinf(y), fr(Math.sin(y))) <= 1, `sinf(${y}) = ${sinf(y)}`);
    assert.ok(ulps(cosf(y), fr(Math.cos(y))) <= 1, `cosf(${y}) = ${cosf(y)}`);
    const b = fr(u() * 1e6 + 1e-3), e = fr((u() - 0.5) * 3);
    assert.ok(ulps(powf(b, e), fr(Math.pow(b, e))) <= 1, `powf(${b}, ${e}) = ${powf(b, e)}`);
  }
  assert.equal(expf(-Infinity), 0);
  assert.equal(expf(0), 1);
  assert.equal(expf(100), Infinity);
  assert.equal(cosf(0), 1);
  assert.equal(sinf(-0), -0);
});

test("sinf rounds as glibc where that is not the nearest float (RoPE angles of the reference data)", () => {
  // theta, and the float next to the correctly rounded sine that glibc (and so llama.cpp's RoPE) returns
  const cases: [number, number][] = [
    [0.13496190309524536, 0.13455256819725037], [34, 0.5290826559066772], [0.20244288444519043, 0.20106293261051178],
    [0.20806628465652466, 0.20656828582286835], [12.803611755371094, 0.2350219488143921],
  ];
  for (const [theta, want] of cases) {
    assert.equal(sinf(theta), want, `sinf(${theta})`);
    assert.equal(ulps(sinf(theta), fr(Math.sin(theta))), 1);
  }
});

test("ggml_v_expf: within 2 ulp of exp, zero for -Infinity", () => {
  const u = rng(3);
  for (let i = 0; i < 20000; i++) {
    const x = fr(-u() * 87);
    assert.ok(ulps(vexpf(x), fr(Math.exp(x))) <= 2, `vexpf(${x}) = ${vexpf(x)}`);
  }
  assert.equal(vexpf(-Infinity), 0);
  assert.equal(vexpf(fr(-200)), 0);
});

test("lane reductions add in ggml's order", () => {
  // values whose float sum depends on the order: big and small lanes
  const l = [2 ** 24, 1, 1, 1, -(2 ** 24), 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3];
  // _mm512_reduce_add_ps: (l[i+8] + l[i]) for 8, then (t[i+4] + t[i]) for 4, then (u0+u2) + (u1+u3)
  const t = l.slice(0, 8).map((v, i) => fr(l[i + 8]! + v));
  const w = t.slice(0, 4).map((v, i) => fr(t[i + 4]! + v));
  assert.equal(reduce16(l), fr(fr(w[0]! + w[2]!) + fr(w[1]! + w[3]!)));
  const h = l.slice(0, 4).map((v, i) => fr(l[i + 4]! + v));
  assert.equal(hsum8(l), fr(fr(h[0]! + h[2]!) + fr(h[1]! + h[3]!)));
  const row = new Float32Array([0, -1, -Infinity, 2, 0.5, -3, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 4, -2]);
  softmaxRow(row, 0, row.length);
  let s = 0;
  for (const v of row) s += v;
  assert.ok(Math.abs(s - 1) < 1e-6);
  assert.equal(row[2], 0);
});
