/**
 * Float32 buffers and matrix products for training: one shared WebAssembly memory holds every
 * parameter, gradient, optimizer state and activation; the products run in the SIMD kernels of
 * src/train/native over a worker pool (rows split across threads), or in the plain-TypeScript
 * reference below, which gives the same bits (tests compare them).
 *
 * Two product shapes (strides in elements, offsets in elements):
 *   gemmNT: C[m, n] (+)= Σ_k A[m, k]·B[n, k]
 *   gemmNN: C[m, j] (+)= Σ_k a(m, k)·B[k, j],  a(m, k) = A[m·sam + k·sak]
 */
import { readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { ResourceError, UnsupportedError } from "../errors.js";
import { KernelPool } from "../kernels/parallel/pool.js";
import { instantiateOver } from "../kernels/parallel/instantiate.js";

export const TRAIN_WASM_PATH = fileURLToPath(new URL("./train.wasm", import.meta.url));
const PAGE = 65536;
const MAX_PAGES = 65536;

interface TrainExports {
  heapBase(): number;
  gemmNT(a: number, lda: number, b: number, ldb: number, c: number, ldc: number, N: number, K: number, acc: number, m0: number, m1: number): void;
  gemmNN(a: number, sam: number, sak: number, b: number, ldb: number, c: number, ldc: number, N: number, K: number, acc: number, m0: number, m1: number): void;
  fill0(p: number, bytes: number): void;
  copy(dst: number, src: number, bytes: number): void;
}

/** A float32 array in the training memory. */
export class Buf {
  /** a view of the elements (valid for the memory's lifetime: shared memories never detach) */
  readonly f: Float32Array;
  constructor(readonly ptr: number, readonly n: number, buffer: ArrayBufferLike, private readonly fill0?: (p: number, bytes: number) => void) {
    this.f = new Float32Array(buffer, ptr, n);
  }
  zero(): this {
    if (this.fill0) this.fill0(this.ptr, this.n * 4);
    else this.f.fill(0);
    return this;
  }
}

export interface GemmOptions {
  /** kernel threads (default: all cores); 0 = the TypeScript reference */
  threads?: number;
  /** initial memory in bytes */
  initialBytes?: number;
}

/**
 * The training memory with a bump allocator (mark/reset for per-step scratch) and the products.
 */
export class TrainMemory {
  readonly memory: WebAssembly.Memory;
  readonly threads: number;
  private ex?: TrainExports;
  private pool?: KernelPool;
  private top: number;
  /** highest top seen (bytes), for memory reports */
  peak = 0;

  constructor(opts: GemmOptions = {}) {
    const pages = Math.max(16, Math.ceil((opts.initialBytes ?? 16 << 20) / PAGE));
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
    this.threads = opts.threads ?? availableParallelism();
    let base = 1024;
    if (this.threads > 0) {
      let module: WebAssembly.Module;
      try {
        module = new WebAssembly.Module(readFileSync(TRAIN_WASM_PATH));
      } catch (e) {
        throw new UnsupportedError(`training kernels not built (${TRAIN_WASM_PATH}): run npm run build:wasm (${String(e)})`);
      }
      this.ex = instantiateOver(module, this.memory).exports as unknown as TrainExports;
      base = Math.max(base, this.ex.heapBase());
      if (this.threads > 1) this.pool = KernelPool.create(module, [this.memory], ["gemmNT", "gemmNN"], this.threads);
    }
    this.top = Math.ceil(base / 64) * 64;
  }

  /** n floats, 64-byte aligned, uninitialised (reused scratch may hold old values). */
  alloc(n: number): Buf {
    const p = this.top;
    const end = p + Math.ceil((n * 4) / 64) * 64;
    if (end > MAX_PAGES * PAGE) {
      throw new ResourceError(`training memory exhausted: ${(end / 2 ** 30).toFixed(2)} GiB needed, a WebAssembly memory holds 4 GiB (use a shorter --seq-len, --recompute, or a smaller model)`);
    }
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    this.top = end;
    this.peak = Math.max(this.peak, end);
    return new Buf(p, n, this.memory.buffer, this.ex?.fill0);
  }
  zeros(n: number): Buf {
    return this.alloc(n).zero();
  }
  /** bytes in use */
  get used(): number {
    return this.top;
  }
  mark(): number {
    return this.top;
  }
  reset(mark: number): void {
    this.top = mark;
  }

  /** C[m, n] (+)= Σ_k A[m, k]·B[n, k] for m < M, n < N (offsets and strides in elements). */
  gemmNT(A: Buf, aOff: number, lda: number, B: Buf, bOff: number, ldb: number, C: Buf, cOff: number, ldc: number,
    M: number, N: number, K: number, acc: boolean): void {
    if (M <= 0 || N <= 0) return;
    const a = A.ptr + 4 * aOff, b = B.ptr + 4 * bOff, c = C.ptr + 4 * cOff;
    if (!this.ex) return gemmNTRef(A.f, aOff, lda, B.f, bOff, ldb, C.f, cOff, ldc, M, N, K, acc);
    const args = [a, lda, b, ldb, c, ldc, N, K, acc ? 1 : 0, 0, M];
    if (this.pool && M * N * K >= 1 << 16) this.pool.parallel(0, "gemmNT", M, 4, 9, 10, args);
    else this.ex.gemmNT(a, lda, b, ldb, c, ldc, N, K, acc ? 1 : 0, 0, M);
  }

  /** C[m, j] (+)= Σ_k A[m·sam + k·sak]·B[k, j] for m < M, j < N. */
  gemmNN(A: Buf, aOff: number, sam: number, sak: number, B: Buf, bOff: number, ldb: number, C: Buf, cOff: number, ldc: number,
    M: number, N: number, K: number, acc: boolean): void {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
      if (!acc) for (let m = 0; m < M; m++) C.f.fill(0, cOff + m * ldc, cOff + m * ldc + N);
      return;
    }
    const a = A.ptr + 4 * aOff, b = B.ptr + 4 * bOff, c = C.ptr + 4 * cOff;
    if (!this.ex) return gemmNNRef(A.f, aOff, sam, sak, B.f, bOff, ldb, C.f, cOff, ldc, M, N, K, acc);
    const args = [a, sam, sak, b, ldb, c, ldc, N, K, acc ? 1 : 0, 0, M];
    if (this.pool && M * N * K >= 1 << 16) this.pool.parallel(0, "gemmNN", M, 4, 10, 11, args);
    else this.ex.gemmNN(a, sam, sak, b, ldb, c, ldc, N, K, acc ? 1 : 0, 0, M);
  }

  close(): void {
    this.pool?.close();
    this.pool = undefined;
  }
}

const fr = Math.fround;

/** Reference for gemmNT, in the kernel's summation order (4 lanes over k, then (s0+s2)+(s1+s3), tail, then C). */
export function gemmNTRef(A: Float32Array, aOff: number, lda: number, B: Float32Array, bOff: number, ldb: number, C: Float32Array, cOff: number, ldc: number,
  M: number, N: number, K: number, acc: boolean): void {
  const K4 = K & ~3;
  for (let m = 0; m < M; m++) {
    const ao = aOff + m * lda;
    for (let n = 0; n < N; n++) {
      const bo = bOff + n * ldb;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < K4; k += 4) {
        s0 = fr(s0 + fr(A[ao + k]! * B[bo + k]!));
        s1 = fr(s1 + fr(A[ao + k + 1]! * B[bo + k + 1]!));
        s2 = fr(s2 + fr(A[ao + k + 2]! * B[bo + k + 2]!));
        s3 = fr(s3 + fr(A[ao + k + 3]! * B[bo + k + 3]!));
      }
      let r = fr(fr(s0 + s2) + fr(s1 + s3));
      for (let k = K4; k < K; k++) r = fr(r + fr(A[ao + k]! * B[bo + k]!));
      const ci = cOff + m * ldc + n;
      C[ci] = acc ? fr(C[ci]! + r) : r;
    }
  }
}

/** Reference for gemmNN: each element summed over k in order, from C (acc) or 0. */
export function gemmNNRef(A: Float32Array, aOff: number, sam: number, sak: number, B: Float32Array, bOff: number, ldb: number,
  C: Float32Array, cOff: number, ldc: number, M: number, N: number, K: number, acc: boolean): void {
  for (let m = 0; m < M; m++) {
    for (let j = 0; j < N; j++) {
      const ci = cOff + m * ldc + j;
      let s = acc ? C[ci]! : 0;
      for (let k = 0; k < K; k++) s = fr(s + fr(A[aOff + m * sam + k * sak]! * B[bOff + k * ldb + j]!));
      C[ci] = s;
    }
  }
}
