/**
 * The shared control block between the main thread and the kernel workers.
 *
 * Int32 slots: SEQ (job number; bumped to wake the workers for a job), DONE (units finished),
 * FN (export index), SHARD (which memory), NROWS, GRAIN (rows per unit), R0/R1 (positions of the
 * row-range arguments), NARGS, THREAD_ARG/THREAD_STRIDE, LEFT (units not yet claimed), UNITS (the
 * job's units). Arguments are f64 slots after that (wasm i32/f32/f64 parameters all convert from
 * a JS number).
 *
 * Work is claimed, not assigned: every participant (the main thread too) takes units off LEFT with
 * a compare-exchange until none are left, so a thread that is slow to wake or was descheduled by
 * other load does not hold the others up: the rest take its share. A job's parameters are read
 * after a successful claim: while a thread holds unfinished units the job cannot end, so they are
 * the live job's (the claimed range is derived from the counter value and UNITS alone, so a stale
 * counter value that happens to equal the next job's is harmless).
 */
export const SEQ = 0, DONE = 1, FN = 2, SHARD = 3, NROWS = 5, GRAIN = 6, R0 = 7, R1 = 8, NARGS = 9;
/** argument that gets `index * THREAD_STRIDE` added per participant (-1: none), e.g. per-thread scratch */
export const THREAD_ARG = 10, THREAD_STRIDE = 11;
/** workers that have instantiated the kernels over a memory added after start */
export const ACK = 12;
export const LEFT = 13, UNITS = 14;
export const EXIT_FN = -1;
export const MAX_ARGS = 24;
export const CTRL_INTS = 16;
export const CTRL_BYTES = CTRL_INTS * 4 + MAX_ARGS * 8;
export const ARGS_OFFSET = CTRL_INTS * 4;

/** Spin this many polls before sleeping in Atomics.wait (tens of microseconds). */
export const SPIN_POLLS = 20000;

/** At most this many units per participant in a job (fewer, larger units cost fewer claims). */
export const UNITS_PER_THREAD = 8;

/** Units to take when `left` remain, with `n` participants: large at first, single ones at the end. */
export function claimSize(left: number, n: number): number {
  return Math.max(1, Math.floor(left / (2 * n)));
}

/**
 * Run the units of the live job that this participant can claim; returns when none are left.
 * `run(r0, r1)` computes rows [r0, r1).
 */
export function claimAndRun(ctrl: Int32Array, n: number, run: (r0: number, r1: number) => void): void {
  for (;;) {
    const left = Atomics.load(ctrl, LEFT);
    if (left <= 0) return;
    const c = Math.min(left, claimSize(left, n));
    if (Atomics.compareExchange(ctrl, LEFT, left, left - c) !== left) continue;
    const units = ctrl[UNITS]!, grain = ctrl[GRAIN]!, nRows = ctrl[NROWS]!;
    const u0 = units - left;
    run(Math.min(nRows, u0 * grain), Math.min(nRows, (u0 + c) * grain));
    if (Atomics.add(ctrl, DONE, c) + c === units) Atomics.notify(ctrl, DONE);
  }
}

/** Rows [r0, r1) for participant `index` of `n`, splitting `rows` in units of `grain`. */
export function partition(rows: number, n: number, index: number, grain: number): [number, number] {
  const units = Math.ceil(rows / grain);
  const per = Math.floor(units / n), extra = units % n;
  const u0 = index * per + Math.min(index, extra);
  const u1 = u0 + per + (index < extra ? 1 : 0);
  return [Math.min(rows, u0 * grain), Math.min(rows, u1 * grain)];
}
