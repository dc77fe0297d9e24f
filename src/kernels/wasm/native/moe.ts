// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Several matrix products as one job (src/kernels/wasm-backend.ts moeFfn): the experts of a MoE
// layer. A descriptor lists the products; their output rows are cut into units of G rows, numbered
// product after product, and a thread runs units [u0, u1) (consecutive units of one product as one
// matmul call). In mode 1 the products are gate/up pairs: a unit computes its rows of both, applies
// SwiGLU to them (silu(gate)·up, as src/kernels/js/activations.ts swiglu) and quantizes them for the
// down product (G is a multiple of that type's block, so each unit quantizes whole blocks, which
// is what quantizing the whole row gives). Per (row, token) results are the single products'.
//
// Descriptor (i32 fields): [0] products P, [4] G, [8] mode; product j at 16 + 64j:
//   0 first unit, 4 type, 8 w, 12 rowBytes, 16 nIn, 20 nOut, 24 act, 28 actRowBytes, 32 nTok,
//   36 out, 40 outStride (floats), 44 up weights, 48 up out, 52 down activation type,
//   56 down activation rows, 60 down activation row bytes (mode 1)

import { matmul } from "./matmul";
import { swiglu } from "./ops";
import { actRowBytes, quantizeRows } from "./quantize";

const HDR: usize = 16;
const PB: usize = 64;

/** the units [u0, u1) of the products described at desc */
export function matmulUnits(desc: usize, u0: i32, u1: i32): i32 {
  const P = load<i32>(desc);
  const G = load<i32>(desc, 4);
  const mode = load<i32>(desc, 8);
  let j = 0;
  let u = u0;
  while (u < u1) {
    // the product holding unit u
    while (j + 1 < P && load<i32>(desc + HDR + <usize>(j + 1) * PB) <= u) j++;
    const p = desc + HDR + <usize>j * PB;
    const first = load<i32>(p);
    const end = j + 1 < P ? load<i32>(desc + HDR + <usize>(j + 1) * PB) : 0x7fffffff;
    const last = min(u1, end);
    const nOut = load<i32>(p, 20);
    const r0 = (u - first) * G;
    const r1 = min(nOut, (last - first) * G);
    if (r1 > r0) {
      const type = load<i32>(p, 4), rowBytes = load<i32>(p, 12), nIn = load<i32>(p, 16);
      const act = <usize>load<u32>(p, 24), arb = load<i32>(p, 28), nTok = load<i32>(p, 32);
      const out = <usize>load<u32>(p, 36), os = load<i32>(p, 40);
      if (matmul(type, <usize>load<u32>(p, 8), rowBytes, nIn, r0, r1, act, arb, nTok, out, os) != 0) return -1;
      if (mode == 1) {
        const out2 = <usize>load<u32>(p, 48);
        if (matmul(type, <usize>load<u32>(p, 44), rowBytes, nIn, r0, r1, act, arb, nTok, out2, os) != 0) return -1;
        const qType = load<i32>(p, 52);
        const qOut = <usize>load<u32>(p, 56), qRb = <usize>load<i32>(p, 60);
        const qOff = <usize>actRowBytes(qType, r0);
        for (let t = 0; t < nTok; t++) {
          const o = (<usize>t * <usize>os + <usize>r0) << 2;
          swiglu(out + o, out2 + o, r1 - r0);
          if (quantizeRows(qType, out + o, 1, r1 - r0, qOut + <usize>t * qRb + qOff) != 0) return -1;
        }
      }
    }
    u = last;
  }
  return 0;
}
