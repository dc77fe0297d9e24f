/** A kernel worker: waits for jobs on the control block and runs its share of rows. */
import { parentPort, workerData } from "node:worker_threads";
import { instantiateOver } from "./instantiate.js";
import { ACK, ARGS_OFFSET, EXIT_FN, FN, LEFT, MAX_ARGS, NARGS, R0, R1, SEQ, SHARD, SPIN_POLLS, THREAD_ARG, THREAD_STRIDE, claimAndRun } from "./protocol.js";

interface Init {
  module: WebAssembly.Module;
  memories: WebAssembly.Memory[];
  ctrl: SharedArrayBuffer;
  index: number;
  exportNames: string[];
  startSeq: number;
  nThreads: number;
}

const init = workerData as Init;
const ctrl = new Int32Array(init.ctrl, 0, ARGS_OFFSET / 4);
const args = new Float64Array(init.ctrl, ARGS_OFFSET, MAX_ARGS);
let fns: ((...a: number[]) => unknown)[][] = init.memories.map((m) => {
  const ex = instantiateOver(init.module, m).exports as Record<string, (...a: number[]) => unknown>;
  return init.exportNames.map((n) => ex[n]!);
});

parentPort!.on("message", (msg: { memory?: WebAssembly.Memory }) => {
  // a memory shard added after start
  if (msg.memory) {
    const ex = instantiateOver(init.module, msg.memory).exports as Record<string, (...a: number[]) => unknown>;
    fns.push(init.exportNames.map((n) => ex[n]!));
    Atomics.add(ctrl, ACK, 1);
    Atomics.notify(ctrl, ACK);
  }
});

/**
 * The last job seen, kept across returns to the event loop. It starts at the pool's initial job
 * number (not the current one): a job posted while this worker was starting must still be run.
 */
let last = init.startSeq;

function run(r0: number, r1: number): void {
  const a = Array.from(args.subarray(0, ctrl[NARGS]!));
  a[ctrl[R0]!] = r0;
  a[ctrl[R1]!] = r1;
  if (ctrl[THREAD_ARG]! >= 0) a[ctrl[THREAD_ARG]!] += init.index * ctrl[THREAD_STRIDE]!;
  fns[ctrl[SHARD]!]![ctrl[FN]!]!(...a);
}

function loop(): void {
  for (;;) {
    let spins = 0;
    while (Atomics.load(ctrl, SEQ) === last) {
      if (++spins > SPIN_POLLS) {
        // park; come back through the event loop now and then so messages (new shards) are seen
        if (Atomics.wait(ctrl, SEQ, last, 50) === "timed-out") return void setImmediate(loop);
        spins = 0;
      }
    }
    last = Atomics.load(ctrl, SEQ);
    if (ctrl[FN] === EXIT_FN && Atomics.load(ctrl, LEFT) <= 0) process.exit(0);
    claimAndRun(ctrl, init.nThreads, run);
  }
}
loop();
