/**
 * WebAssembly SIMD128 kernels (built from src/kernels/wasm/native by `npm run build:wasm` into
 * dist/kernels/wasm/kernels.wasm) over one imported shared memory, with a small allocator in
 * JavaScript. The module is compiled once; any number of instances (one per worker thread) can
 * run over the same memory, since the kernels keep no state in memory and write only their outputs.
 *
 * Everything is addressed by byte pointers into the memory. Results match the TypeScript reference
 * kernels (src/quant, src/kernels/js): quantized matmuls and the activation quantizers bit for bit,
 * float matmuls and attention to ~1e-7 relative (float64 sums in another order).
 *
 * @example
 *   const k = await WasmKernels.create();
 *   const w = k.put(weightBytes), x = k.put(xFloats);
 *   const dt = vecDotType(type), act = k.alloc(k.actRowBytes(dt, nIn) * nTok), out = k.alloc(4 * nOut * nTok);
 *   k.quantizeRows(dt, x, nTok, nIn, act);
 *   k.matmul(type, w, rowBytes(type, nIn), nIn, 0, nOut, act, k.actRowBytes(dt, nIn), nTok, out, nOut);
 *   k.f32(out, nOut * nTok);
 */
import { existsSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import { UnsupportedError } from "../../errors.js";
import { GgmlType, blockFormat, typeName } from "../../quant/format.js";
import { isSupported, vecDot } from "../../quant/index.js";
import { IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID } from "../../quant/iq-grids.js";

/** The compiled kernels, next to this file after the build. */
export const WASM_PATH = fileURLToPath(new URL("./kernels.wasm", import.meta.url));
/**
 * The same kernels built with relaxed SIMD (asc --enable relaxed-simd): the quantized products of
 * unsigned sub-8-bit weights use i16x8.relaxed_dot_i8x16_i7x16_s. Used where the engine validates it.
 */
export const WASM_RELAXED_PATH = fileURLToPath(new URL("./kernels-relaxed.wasm", import.meta.url));

let chosenPath: string | undefined;

/**
 * Which kernel build this process uses (decided once): the relaxed-SIMD one when it was built, the
 * engine validates it and CMX_WASM_RELAXED is not 0, else the SIMD128 one. Node 20 (V8 11.3) has
 * relaxed SIMD behind --experimental-wasm-relaxed-simd: the flag is turned on here, before any
 * kernel module is compiled (V8 flags are process-wide, so worker threads see it too; a module
 * compiled here and posted to them needs nothing more). Node 22 and later have it on by default.
 */
export function kernelsPath(): string {
  if (chosenPath) return chosenPath;
  chosenPath = WASM_PATH;
  if (process.env.CMX_WASM_RELAXED !== "0" && existsSync(WASM_RELAXED_PATH)) {
    const bytes = readFileSync(WASM_RELAXED_PATH);
    let ok = WebAssembly.validate(bytes);
    if (!ok) {
      try {
        v8.setFlagsFromString("--experimental-wasm-relaxed-simd");
        ok = WebAssembly.validate(bytes);
      } catch {
        ok = false;
      }
    }
    if (ok) chosenPath = WASM_RELAXED_PATH;
  }
  return chosenPath;
}

/** whether this process runs the relaxed-SIMD kernel build (kernelsPath) */
export function kernelsRelaxed(): boolean {
  return kernelsPath() === WASM_RELAXED_PATH;
}

/** The flag in a kernel's type argument that says the weight rows are packed (native/common.ts). */
export const PACKED = 0x100;

/** Pages (64 KiB) a kernel memory may grow to: 65536 = 4 GiB, the wasm32 limit. */
export const MAX_PAGES = 65536;
const PAGE = 65536;

/** The module's exports (pointers are byte offsets; i32 parameters take them modulo 2^32). */
export interface KernelExports {
  heapBase(): number;
  matmulBlock(type: number): number;
  /** pack (unpack = 0) or unpack the rows of a matrix in place (native/common.ts); tmp: 4·rowBytes bytes */
  packRows(w: number, nRows: number, rowBytes: number, blockBytes: number, tmp: number, unpack: number): number;
  matmul(type: number, w: number, rowBytes: number, nIn: number, r0: number, r1: number,
    act: number, actRowBytes: number, nTok: number, out: number, outStride: number): number;
  /** units [u0, u1) of the products described at desc (native/moe.ts); -1 when a type has no kernel */
  matmulUnits(desc: number, u0: number, u1: number): number;
  actRowBytes(type: number, n: number): number;
  quantizeRows(type: number, x: number, nRows: number, n: number, out: number): number;
  rmsNorm(x: number, weight: number, out: number, nRows: number, n: number, eps: number): void;
  rope(x: number, nTok: number, rowStride: number, nHeads: number, headDim: number, pos: number,
    cos: number, sin: number, nRot: number, mode: number): void;
  swiglu(gate: number, up: number, n: number): void;
  softmax(x: number, n: number): void;
  attentionScratchBytes(headDim: number, maxPos: number): number;
  /** scratch 0 = this instance's own (setScratch); returns -1 (nothing done) if that is too small */
  attention(q: number, nTok: number, pos: number, k: number, v: number, kvF16: number,
    nHead: number, nHeadKv: number, headDim: number, out: number, scratch: number, h0: number, h1: number): number;
  /** attention over units [u0, u1) of (token, head) of rows with their own caches (u32 K, V pointers per token at kv) */
  attentionRows(q: number, nTok: number, pos: number, kv: number, kvF16: number,
    nHead: number, nHeadKv: number, headDim: number, out: number, scratch: number, u0: number, u1: number): number;
  /** this instance's (thread's) attention scratch, used when attention gets scratch = 0 */
  setScratch(ptr: number, bytes: number): void;
  expF64(x: number): number;
  /** llama.cpp-exact kernels (native/ggml.ts) */
  matmulGgmlSupported(type: number): number;
  matmulGgmlScratchBytes(nTok: number): number;
  matmulGgml(type: number, w: number, rowBytes: number, nIn: number, r0: number, r1: number,
    act: number, actRowBytes: number, nTok: number, out: number, outStride: number, gemm: number, scratch: number): number;
  attentionGgmlScratchBytes(headDim: number, maxPos: number): number;
  siluGgml(x: number, nRows: number, n: number): void;
  attentionGgml(q: number, nTok: number, pos: number, k: number, v: number, kvF16: number,
    nHead: number, nHeadKv: number, headDim: number, out: number, scratch: number, h0: number, h1: number, gemm: number): void;
  /** bytes setMatmulScratch needs */
  matmulScratchBytes(nSlots: number, slotBytes: number): number;
  /** scratch slots for the multi-token matmul kernels of every instance over this memory (0: none) */
  setMatmulScratch(ptr: number, nSlots: number, slotBytes: number): void;
  /** where the IQ lattice tables (iqTables()) are in this memory, for every instance (0: IQ kernels off); -1 on a size mismatch */
  setIqTables(ptr: number, bytes: number): number;
}

/** The lattice tables the IQ kernels read (matmul-iq.ts), in the order and layout it expects. */
function iqTables(): Uint8Array {
  const grids = [IQ2XXS_GRID, IQ2XS_GRID, IQ2S_GRID, IQ3XXS_GRID, IQ3S_GRID, new Uint8Array(IQ1S_GRID.buffer)];
  const out = new Uint8Array(grids.reduce((a, g) => a + g.length, 0));
  let o = 0;
  for (const g of grids) { out.set(g, o); o += g.length; }
  return out;
}

let compiled: Promise<WebAssembly.Module> | undefined;
let compiledSync: WebAssembly.Module | undefined;

/** The compiled kernel module (compiled once per thread; a Module can also be posted to workers). */
export function compileKernels(): Promise<WebAssembly.Module> {
  if (compiledSync) return Promise.resolve(compiledSync);
  return (compiled ??= readFile(kernelsPath()).then(
    (b) => WebAssembly.compile(b).then((m) => (compiledSync = m)),
    (e: unknown) => {
      compiled = undefined;
      throw new UnsupportedError(`WebAssembly kernels not built (${kernelsPath()}): run npm run build:wasm (${String(e)})`);
    },
  ));
}

/** Synchronous variant of compileKernels (for a worker that has no Module posted to it). */
export function compileKernelsSync(): WebAssembly.Module {
  return (compiledSync ??= new WebAssembly.Module(readFileSync(kernelsPath())));
}

/** A shared memory for the kernels: `initialPages` now, growable to 4 GiB. */
export function newKernelMemory(initialPages = 16): WebAssembly.Memory {
  return new WebAssembly.Memory({ initial: initialPages, maximum: MAX_PAGES, shared: true });
}

/** Instantiate the kernels over a memory (shared with other threads or not); synchronous. */
export function instantiateOn(memory: WebAssembly.Memory, module: WebAssembly.Module): KernelExports {
  const imports: WebAssembly.Imports = { env: { memory } };
  return new WebAssembly.Instance(module, imports).exports as unknown as KernelExports;
}

/** RoPE cos/sin tables in kernel memory: [maxPos][nRot/2] float32 each. */
export interface WasmRopeTable {
  readonly nRot: number;
  readonly maxPos: number;
  readonly cosPtr: number;
  readonly sinPtr: number;
}

/** RoPE modes (ggml's rope type): adjacent pairs (llama, Mistral, Mixtral) or halves (NeoX). */
export const ROPE_NORMAL = 0;
export const ROPE_NEOX = 2;

/**
 * Scratch of the matmul kernels, per memory: an f16 -> f32 table and one slot per thread that may
 * run a matmul at the same time (a call that finds no free slot runs the plain kernels, same
 * results), each big enough for 16 tokens of 14336-element activations widened to i16.
 */
export const MATMUL_SLOT_BYTES = 640 << 10;
export const MATMUL_SLOTS = Math.min(64, Math.max(4, availableParallelism() + 2));

function alignUp(x: number, a: number): number {
  return Math.ceil(x / a) * a;
}

export class WasmKernels {
  readonly exports: KernelExports;
  /** first byte the allocator hands out */
  readonly base: number;
  private top: number;
  /** live allocations: ptr -> bytes */
  private live = new Map<number, number>();
  /** free blocks below top, sorted by address, coalesced: [ptr, bytes] */
  private freeList: [number, number][] = [];

  private constructor(readonly memory: WebAssembly.Memory, readonly module: WebAssembly.Module) {
    this.exports = instantiateOn(memory, module);
    this.top = alignUp(Math.max(this.exports.heapBase(), 1024), 64);
    // the matmul scratch sits below base, so no reset() can release it
    this.matmulScratch = this.alloc(this.exports.matmulScratchBytes(MATMUL_SLOTS, MATMUL_SLOT_BYTES), 64);
    this.exports.setMatmulScratch(this.matmulScratch, MATMUL_SLOTS, MATMUL_SLOT_BYTES);
    // the IQ lattice tables, below base too
    const tables = iqTables();
    const tp = this.alloc(tables.length, 64);
    this.u8(tp, tables.length).set(tables);
    if (this.exports.setIqTables(tp, tables.length) !== 0) throw new UnsupportedError(`WebAssembly kernels expect other IQ tables than ${tables.length} bytes (rebuild: npm run build:wasm)`);
    this.base = this.top;
  }

  private readonly matmulScratch: number;

  /**
   * Turn the scratch-slot matmul kernels (register-tiled for several tokens, pre-widened activations
   * for one) of every instance over this memory off or back on; without them every token runs
   * through the plain four-row kernels (same results, for tests and speed comparisons). Not while a
   * matmul runs on another thread.
   */
  setTiledMatmul(on: boolean): void {
    this.exports.setMatmulScratch(on ? this.matmulScratch : 0, MATMUL_SLOTS, MATMUL_SLOT_BYTES);
  }

  /**
   * Compile (once) and instantiate over `memory`, or over a new shared memory. The allocator of
   * this object owns the memory above heapBase: give other threads the memory and module
   * (instantiateOn) and pointers, not a second allocator over the same memory.
   */
  static async create(memory?: WebAssembly.Memory): Promise<WasmKernels> {
    return new WasmKernels(memory ?? newKernelMemory(), await compileKernels());
  }

  /** Synchronous create from an already compiled module. */
  static fromModule(module: WebAssembly.Module, memory?: WebAssembly.Memory): WasmKernels {
    return new WasmKernels(memory ?? newKernelMemory(), module);
  }

  // ---- memory ----

  /** Bytes between base and the highest allocation. */
  get used(): number {
    return this.top - this.base;
  }

  /** `bytes` bytes aligned to `align` (a power of two, >= 16 recommended); grows the memory. */
  alloc(bytes: number, align = 64): number {
    if (!Number.isInteger(bytes) || bytes < 0) throw new RangeError(`alloc: bad size ${bytes}`);
    if (!Number.isInteger(align) || align <= 0 || (align & (align - 1)) !== 0) throw new RangeError(`alloc: bad alignment ${align}`);
    const size = Math.max(16, alignUp(bytes, 16));
    for (let i = 0; i < this.freeList.length; i++) {
      const [fp, fs] = this.freeList[i]!;
      const p = alignUp(fp, align);
      if (p + size > fp + fs) continue;
      const rest: [number, number][] = [];
      if (p > fp) rest.push([fp, p - fp]);
      if (fp + fs > p + size) rest.push([p + size, fp + fs - p - size]);
      this.freeList.splice(i, 1, ...rest);
      this.live.set(p, size);
      return p;
    }
    const p = alignUp(this.top, align);
    const end = p + size;
    if (end > MAX_PAGES * PAGE) throw new RangeError(`kernel memory exhausted: ${end} bytes needed (4 GiB max)`);
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
    if (p > this.top) this.addFree(this.top, p - this.top);
    this.top = end;
    this.live.set(p, size);
    return p;
  }

  /** Release an allocation (its bytes may be handed out again). */
  free(ptr: number): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new RangeError(`free: ${ptr} is not a live allocation`);
    this.live.delete(ptr);
    this.addFree(ptr, size);
  }

  private addFree(ptr: number, size: number): void {
    const fl = this.freeList;
    let i = 0;
    while (i < fl.length && fl[i]![0] < ptr) i++;
    fl.splice(i, 0, [ptr, size]);
    // coalesce with the next and the previous block
    if (i + 1 < fl.length && fl[i]![0] + fl[i]![1] === fl[i + 1]![0]) {
      fl[i]![1] += fl[i + 1]![1];
      fl.splice(i + 1, 1);
    }
    if (i > 0 && fl[i - 1]![0] + fl[i - 1]![1] === fl[i]![0]) {
      fl[i - 1]![1] += fl[i]![1];
      fl.splice(i, 1);
      i--;
    }
    // a free block at the top lowers the top
    const last = fl[fl.length - 1];
    if (last && last[0] + last[1] === this.top) {
      this.top = last[0];
      fl.pop();
    }
  }

  /** The current top, for reset(): scratch allocated after mark() is released together. */
  mark(): number {
    return this.top;
  }

  /** Release every allocation at or above `mark` (from mark()). */
  reset(mark: number): void {
    if (mark < this.base || mark > this.top) throw new RangeError(`reset: bad mark ${mark}`);
    for (const [p, s] of this.live) if (p + s > mark) this.live.delete(p);
    this.freeList = this.freeList.filter(([p]) => p < mark).map(([p, s]) => [p, Math.min(s, mark - p)] as [number, number]);
    this.top = mark;
    const last = this.freeList[this.freeList.length - 1];
    if (last && last[0] + last[1] === this.top) {
      this.top = last[0];
      this.freeList.pop();
    }
  }

  /** Views of the memory (made fresh on each call, so valid after growth until the next one). */
  u8(ptr: number, len: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, ptr, len);
  }
  f32(ptr: number, len: number): Float32Array {
    return new Float32Array(this.memory.buffer, ptr, len);
  }
  u16(ptr: number, len: number): Uint16Array {
    return new Uint16Array(this.memory.buffer, ptr, len);
  }
  i32(ptr: number, len: number): Int32Array {
    return new Int32Array(this.memory.buffer, ptr, len);
  }

  /** Allocate and copy `src` in; returns the pointer. */
  put(src: ArrayBufferView, align = 64): number {
    const p = this.alloc(src.byteLength, align);
    this.u8(p, src.byteLength).set(new Uint8Array(src.buffer, src.byteOffset, src.byteLength));
    return p;
  }

  // ---- matmul ----

  /**
   * Pack (or unpack) the nRows rows (a multiple of 4) of rowBytes bytes at ptr in place, the
   * layout the kernels take with PACKED in the type (src/kernels/js/matmul.ts packedBlockOffset).
   */
  packRows(type: GgmlType, ptr: number, nRows: number, rowBytes: number, unpack = false): void {
    const tb = blockFormat(type)?.typeSize ?? 0;
    const tmp = this.alloc(4 * rowBytes, 64);
    try {
      if (this.exports.packRows(ptr, nRows, rowBytes, tb, tmp, unpack ? 1 : 0) !== 0) {
        throw new RangeError(`packRows: ${nRows} rows of ${rowBytes} bytes are not whole groups of four rows of ${typeName(type)} blocks`);
      }
    } finally {
      this.free(tmp);
    }
  }

  /** Whether weights of this type have a WebAssembly kernel (others run the TS reference). */
  hasMatmul(type: GgmlType): boolean {
    return this.exports.matmulBlock(type) !== 0;
  }

  /** Bytes of one activation row of n values quantized to dotType (Q8_0, Q8_1, Q8_K, F16, BF16, F32). */
  actRowBytes(dotType: GgmlType, n: number): number {
    const b = this.exports.actRowBytes(dotType, n);
    if (b === 0 && n !== 0) throw new UnsupportedError(`${typeName(dotType)} is not an activation type`);
    return b;
  }

  /**
   * Quantize nRows rows of n floats at xPtr to dotType (as ggml-cpu's from_float, bit-exact with
   * quantizeActivation), rows of actRowBytes(dotType, n) bytes at outPtr.
   */
  quantizeRows(dotType: GgmlType, xPtr: number, nRows: number, n: number, outPtr: number): void {
    const bs = blockFormat(dotType)?.blockSize ?? 0;
    if (bs === 0 || n % bs !== 0) throw new RangeError(`${typeName(dotType)}: row length ${n} is not a multiple of the block size ${bs}`);
    if ((xPtr & 3) !== 0) throw new RangeError("quantizeRows: x must be 4-byte aligned");
    if (this.exports.quantizeRows(dotType, xPtr, nRows, n, outPtr) !== 0) {
      throw new UnsupportedError(`${typeName(dotType)} is not an activation type`);
    }
  }

  /**
   * out[t*outStride + r] (float32) = W row r . activation row t, for rows r0 <= r < r1 and
   * t < nTok. W row r at wPtr + r*rowBytes (nIn elements of `type`); activation rows (quantized to
   * vecDotType(type)) at actPtr + t*actRowBytes, as quantizeRows writes them (the Q6_K kernel, like
   * the reference Q4_K/Q5_K/Q2_K ones, relies on the Q8_K block sums). outPtr must be 4-byte
   * aligned. A type without a wasm kernel runs the TypeScript reference vecDot over the same memory.
   */
  matmul(type: GgmlType, wPtr: number, rowBytes: number, nIn: number, r0: number, r1: number,
    actPtr: number, actRowBytes: number, nTok: number, outPtr: number, outStride: number, packed = false): void {
    const bs = blockFormat(type)?.blockSize ?? 0;
    if (bs === 0 || nIn % bs !== 0) throw new RangeError(`${typeName(type)}: row length ${nIn} is not a multiple of the block size ${bs}`);
    if ((outPtr & 3) !== 0) throw new RangeError("matmul: out must be 4-byte aligned");
    if (r1 <= r0 || nTok <= 0) return;
    if (this.exports.matmul(type | (packed ? PACKED : 0), wPtr, rowBytes, nIn, r0, r1, actPtr, actRowBytes, nTok, outPtr, outStride) === 0) return;
    if (packed) throw new UnsupportedError(`no WebAssembly kernel for packed ${typeName(type)} rows`);
    if (!isSupported(type)) throw new UnsupportedError(`tensor type ${typeName(type)} has no dot product`);
    const mem = new Uint8Array(this.memory.buffer);
    const out = new Float32Array(this.memory.buffer);
    for (let r = r0; r < r1; r++) {
      for (let t = 0; t < nTok; t++) {
        out[(outPtr >>> 2) + t * outStride + r] = vecDot(type, nIn, mem, wPtr + r * rowBytes, mem, actPtr + t * actRowBytes);
      }
    }
  }

  // ---- the other kernels ----

  /** RMSNorm of nRows rows of n floats (as src/kernels/js/rms-norm.ts rmsNormRows); out may equal x. */
  rmsNorm(xPtr: number, weightPtr: number, outPtr: number, nRows: number, n: number, eps: number): void {
    this.exports.rmsNorm(xPtr, weightPtr, outPtr, nRows, n, eps);
  }

  /** cos/sin tables computed exactly as src/kernels/js/rope.ts RopeTable does. */
  ropeTable(nRot: number, base: number, freqScale: number, maxPos: number): WasmRopeTable {
    const half = nRot / 2;
    const cosPtr = this.alloc(maxPos * half * 4);
    const sinPtr = this.alloc(maxPos * half * 4);
    const cos = this.f32(cosPtr, maxPos * half);
    const sin = this.f32(sinPtr, maxPos * half);
    const thetaScale = Math.fround(Math.pow(base, -2 / nRot));
    for (let p = 0; p < maxPos; p++) {
      let theta = Math.fround(p);
      for (let i = 0; i < half; i++) {
        const t = Math.fround(theta * freqScale);
        cos[p * half + i] = Math.cos(t);
        sin[p * half + i] = Math.sin(t);
        theta = Math.fround(theta * thetaScale);
      }
    }
    return { nRot, maxPos, cosPtr, sinPtr };
  }

  /**
   * Rotate nHeads heads of headDim floats in each of nTok rows (row t at xPtr + 4*t*rowStride) by
   * the positions at posPtr (int32[nTok], each < table.maxPos), in place. mode ROPE_NORMAL rotates
   * pairs (2i, 2i+1) as RopeTable.apply; ROPE_NEOX pairs (i, i + nRot/2).
   */
  rope(xPtr: number, nTok: number, rowStride: number, nHeads: number, headDim: number, posPtr: number, table: WasmRopeTable, mode = ROPE_NORMAL): void {
    const pos = this.i32(posPtr, nTok);
    for (let t = 0; t < nTok; t++) {
      if (!(pos[t]! >= 0 && pos[t]! < table.maxPos)) throw new RangeError(`rope: position ${pos[t]} outside the table (${table.maxPos})`);
    }
    if (mode !== ROPE_NORMAL && mode !== ROPE_NEOX) throw new RangeError(`rope: unknown mode ${mode}`);
    this.exports.rope(xPtr, nTok, rowStride, nHeads, headDim, posPtr, table.cosPtr, table.sinPtr, table.nRot, mode);
  }

  /** gate = silu(gate) * up over n floats (src/kernels/js/activations.ts swiglu). */
  swiglu(gatePtr: number, upPtr: number, n: number): void {
    this.exports.swiglu(gatePtr, upPtr, n);
  }

  /** Softmax in place over n floats (src/kernels/js/activations.ts softmax). */
  softmax(xPtr: number, n: number): void {
    this.exports.softmax(xPtr, n);
  }

  /** Scratch bytes one attention call (one thread) needs for positions up to maxPos. */
  attentionScratchBytes(headDim: number, maxPos: number): number {
    return this.exports.attentionScratchBytes(headDim, maxPos);
  }

  /**
   * Causal GQA attention as src/kernels/js/attention.ts: q and out [nTok][nHead*headDim] f32 at
   * qPtr/outPtr, positions int32[nTok] at posPtr (token t sees cache rows 0..pos[t]), K and V
   * caches at kPtr/vPtr with rows of nHeadKv*headDim elements of kvType. Heads [h0, h1) only (all
   * by default), so threads can split by head. scratchPtr: attentionScratchBytes(headDim, max
   * position) bytes per thread (allocated and released here when omitted). A worker pool that
   * broadcasts one argument list passes scratch 0 to the export instead, after giving each
   * instance its own region with exports.setScratch(ptr, bytes).
   */
  attention(qPtr: number, nTok: number, posPtr: number, kPtr: number, vPtr: number, kvType: "f32" | "f16",
    shape: { nHead: number; nHeadKv: number; headDim: number }, outPtr: number,
    scratchPtr?: number, h0 = 0, h1 = shape.nHead): void {
    const { nHead, nHeadKv, headDim } = shape;
    if (nHead % nHeadKv !== 0) throw new RangeError(`attention: ${nHead} heads are not a multiple of ${nHeadKv} KV heads`);
    let scratch = scratchPtr;
    if (scratch === undefined) {
      let maxPos = 0;
      for (const p of this.i32(posPtr, nTok)) maxPos = Math.max(maxPos, p);
      scratch = this.alloc(this.attentionScratchBytes(headDim, maxPos), 16);
    }
    try {
      if (scratch === 0) throw new RangeError("attention: scratch pointer 0 (omit it to allocate one)");
      this.exports.attention(qPtr, nTok, posPtr, kPtr, vPtr, kvType === "f16" ? 1 : 0, nHead, nHeadKv, headDim, outPtr, scratch, h0, h1);
    } finally {
      if (scratchPtr === undefined) this.free(scratch);
    }
  }
}
