import assert from "node:assert/strict";
import { test } from "node:test";
import { SeededNormal } from "../model/synthetic.js";
import { gemmNNRef, gemmNTRef, TrainMemory } from "./gemm.js";

function fill(mem: TrainMemory, n: number, rng: SeededNormal) {
  const b = mem.alloc(n);
  for (let i = 0; i < n; i++) b.f[i] = rng.normal();
  return b;
}

for (const threads of [1, 2]) {
  test(`wasm gemmNT and gemmNN equal the TypeScript reference bit for bit (${threads} thread${threads > 1 ? "s" : ""})`, () => {
    const mem = new TrainMemory({ threads });
    const rng = new SeededNormal(11);
    try {
      for (const [M, N, K] of [[1, 1, 1], [5, 7, 3], [4, 4, 4], [13, 9, 37], [33, 70, 129], [64, 200, 300], [3, 1000, 17]] as const) {
        for (const acc of [false, true]) {
          // NT with padded strides and offsets
          const lda = K + 3, ldb = K + 1, ldc = N + 2;
          const A = fill(mem, 2 + M * lda, rng), B = fill(mem, 5 + N * ldb, rng);
          const C = fill(mem, 1 + M * ldc, rng);
          const want = Float32Array.from(C.f);
          gemmNTRef(A.f, 2, lda, B.f, 5, ldb, want, 1, ldc, M, N, K, acc);
          mem.gemmNT(A, 2, lda, B, 5, ldb, C, 1, ldc, M, N, K, acc);
          assert.deepEqual(C.f, want, `gemmNT ${M}x${N}x${K} acc=${acc}`);
          // NN, A plain and transposed
          for (const trans of [false, true]) {
            const sam = trans ? 1 : K + 2, sak = trans ? M + 1 : 1;
            const A2 = fill(mem, 3 + (trans ? K * (M + 1) : M * (K + 2)), rng);
            const B2 = fill(mem, K * (N + 4), rng);
            const C2 = fill(mem, M * ldc, rng);
            const want2 = Float32Array.from(C2.f);
            gemmNNRef(A2.f, 3, sam, sak, B2.f, 0, N + 4, want2, 0, ldc, M, N, K, acc);
            mem.gemmNN(A2, 3, sam, sak, B2, 0, N + 4, C2, 0, ldc, M, N, K, acc);
            assert.deepEqual(C2.f, want2, `gemmNN ${M}x${N}x${K} acc=${acc} trans=${trans}`);
          }
        }
      }
    } finally {
      mem.close();
    }
  });
}

test("the TypeScript-only memory (threads 0) runs the reference products", () => {
  const mem = new TrainMemory({ threads: 0 });
  const A = mem.alloc(6), B = mem.alloc(6), C = mem.alloc(4);
  A.f.set([1, 2, 3, 4, 5, 6]);
  B.f.set([1, 0, 1, 0, 1, 0]);
  mem.gemmNT(A, 0, 3, B, 0, 3, C, 0, 2, 2, 2, 3, false);
  assert.deepEqual([...C.f], [4, 2, 10, 5]);
});
