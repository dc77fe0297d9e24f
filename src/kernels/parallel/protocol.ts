/**
 * The shared control block between the main thread and the kernel workers.
 *
 * Int32 slots: SEQ (job number; bumped to start a job), DONE (workers finished), FN (export
 * index), SHARD (which memory), NTHREADS (participants incl. main), NROWS, GRAIN (rows per unit),
 * R0/R1 (positions of the row-range arguments), NARGS, THREAD_ARG/THREAD_STRIDE. Arguments are f64 slots after that (wasm
 * i32/f32/f64 parameters all convert from a JS number).
 */
export const SEQ = 0, DONE = 1, FN = 2, SHARD = 3, NTHREADS = 4, NROWS = 5, GRAIN = 6, R0 = 7, R1 = 8, NARGS = 9;
/** argument that gets `index * THREAD_STRIDE` added per participant (-1: none), e.g. per-thread scratch */
export const THREAD_ARG = 10, THREAD_STRIDE = 11;
/** workers that have instantiated the kernels over a memory added after start */
export const ACK = 12;
export const EXIT_FN = -1;
export const MAX_ARGS = 24;
export const CTRL_INTS = 16;
export const CTRL_BYTES = CTRL_INTS * 4 + MAX_ARGS * 8;
export const ARGS_OFFSET = CTRL_INTS * 4;

/** Spin this many polls before sleeping in Atomics.wait (tens of microseconds). */
export const SPIN_POLLS = 20000;

/** Rows [r0, r1) for participant `index` of `n`, splitting `rows` in units of `grain`. */
export function partition(rows: number, n: number, index: number, grain: number): [number, number] {
  const units = Math.ceil(rows / grain);
  const per = Math.floor(units / n), extra = units % n;
  const u0 = index * per + Math.min(index, extra);
  const u1 = u0 + per + (index < extra ? 1 : 0);
  return [Math.min(rows, u0 * grain), Math.min(rows, u1 * grain)];
}
