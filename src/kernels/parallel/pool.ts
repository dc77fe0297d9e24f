/**
 * A pool of worker threads that run WebAssembly kernels over shared memories. The main thread is
 * participant 0 and computes too; a job's rows are split in units (multiples of `grain`, 4 weight
 * rows per pass in the matmul kernels) that the participants claim until none are left (see
 * protocol.ts), so a worker that is asleep, slow to wake or descheduled by other load delays a job
 * by at most the units it already holds. Waiting threads spin briefly, then sleep in
 * Atomics.wait, so no thread spins between jobs.
 */
import { Worker } from "node:worker_threads";
import { instantiateOver } from "./instantiate.js";
import { ACK, ARGS_OFFSET, CTRL_BYTES, DONE, EXIT_FN, FN, GRAIN, LEFT, MAX_ARGS, NARGS, NROWS, R0, R1, SEQ, SHARD, SPIN_POLLS, THREAD_ARG, THREAD_STRIDE, UNITS, UNITS_PER_THREAD, claimAndRun } from "./protocol.js";

export class KernelPool {
  readonly nThreads: number;
  private workers: Worker[] = [];
  private ctrl: Int32Array;
  private args: Float64Array;
  private fnIndex: Map<string, number>;
  private local: ((...a: number[]) => unknown)[][];

  private constructor(readonly module: WebAssembly.Module, private memories: WebAssembly.Memory[], readonly exportNames: string[], nThreads: number) {
    this.nThreads = Math.max(1, nThreads);
    const sab = new SharedArrayBuffer(CTRL_BYTES);
    this.ctrl = new Int32Array(sab, 0, ARGS_OFFSET / 4);
    this.args = new Float64Array(sab, ARGS_OFFSET, MAX_ARGS);
    this.fnIndex = new Map(exportNames.map((n, i) => [n, i]));
    this.local = this.instantiateAll(memories);
    for (let i = 1; i < this.nThreads; i++) {
      const w = new Worker(new URL("./worker.js", import.meta.url), {
        workerData: { module, memories, ctrl: sab, index: i, exportNames, startSeq: 0, nThreads: this.nThreads },
      });
      w.unref();
      this.workers.push(w);
    }
  }

  static create(module: WebAssembly.Module, memories: WebAssembly.Memory[], exportNames: string[], nThreads: number): KernelPool {
    return new KernelPool(module, memories, exportNames, nThreads);
  }

  private instantiateAll(memories: WebAssembly.Memory[]) {
    return memories.map((m) => {
      const ex = instantiateOver(this.module, m).exports as Record<string, (...a: number[]) => unknown>;
      return this.exportNames.map((n) => {
        const f = ex[n];
        if (typeof f !== "function") throw new Error(`kernel module has no export ${n}`);
        return f;
      });
    });
  }

  /**
   * Make a memory shard added after start known to every thread (synchronously: idle workers
   * pick the message up within their park interval and acknowledge through the control block).
   */
  addMemory(memory: WebAssembly.Memory): void {
    this.memories.push(memory);
    this.local.push(...this.instantiateAll([memory]));
    const target = Atomics.load(this.ctrl, ACK) + this.workers.length;
    for (const w of this.workers) w.postMessage({ memory });
    for (;;) {
      const a = Atomics.load(this.ctrl, ACK);
      if (a >= target) break;
      Atomics.wait(this.ctrl, ACK, a, 10);
    }
  }

  /** Run the main thread's own instance of an export (no parallelism). */
  call(shard: number, name: string, ...a: number[]): unknown {
    return this.local[shard]![this.fnIndex.get(name)!]!(...a);
  }

  /** Jobs started (parallel calls that used the workers), for profiles. */
  jobs = 0;

  /**
   * Run export `name` on shard `shard` over rows [0, nRows), split across threads: argument
   * positions r0Arg and r1Arg of `a` are replaced by row ranges (multiples of `grain`) that the
   * threads claim; when perThread is given, argument perThread.arg gets index * perThread.stride
   * added (per-thread scratch: the caller provides nThreads regions). maxThreads 1 runs on this
   * thread alone; any other value uses every thread of the pool.
   */
  parallel(shard: number, name: string, nRows: number, grain: number, r0Arg: number, r1Arg: number, a: number[],
    maxThreads = this.nThreads, perThread?: { arg: number; stride: number }): void {
    const fn = this.fnIndex.get(name);
    if (fn === undefined) throw new Error(`unknown kernel ${name}`);
    const f = this.local[shard]![fn]!;
    const n = this.nThreads;
    if (n === 1 || maxThreads <= 1 || nRows <= grain) {
      a[r0Arg] = 0; a[r1Arg] = nRows;
      f(...a);
      return;
    }
    // units: multiples of grain, at most UNITS_PER_THREAD per participant
    const base = Math.ceil(nRows / grain);
    const g = grain * Math.ceil(base / (UNITS_PER_THREAD * n));
    const units = Math.ceil(nRows / g);
    const c = this.ctrl;
    c[FN] = fn; c[SHARD] = shard; c[NROWS] = nRows; c[GRAIN] = g; c[UNITS] = units;
    c[R0] = r0Arg; c[R1] = r1Arg; c[NARGS] = a.length;
    c[THREAD_ARG] = perThread ? perThread.arg : -1; c[THREAD_STRIDE] = perThread ? perThread.stride : 0;
    for (let i = 0; i < a.length; i++) this.args[i] = a[i]!;
    Atomics.store(c, DONE, 0);
    Atomics.store(c, LEFT, units);
    Atomics.add(c, SEQ, 1);
    Atomics.notify(c, SEQ);
    this.jobs++;
    claimAndRun(c, n, (r0, r1) => { a[r0Arg] = r0; a[r1Arg] = r1; f(...a); });
    let spins = 0;
    for (;;) {
      const d = Atomics.load(c, DONE);
      if (d >= units) break;
      if (++spins > SPIN_POLLS) Atomics.wait(c, DONE, d, 1);
    }
  }

  close(): void {
    this.ctrl[FN] = EXIT_FN;
    Atomics.add(this.ctrl, SEQ, 1);
    Atomics.notify(this.ctrl, SEQ);
    for (const w of this.workers) void w.terminate();
    this.workers = [];
  }
}
