/**
 * Profile of one batched decode step (no HTTP): `model.forwardBatch` with B sequences of one new
 * token each (every sequence with `--past` tokens already in its cache), for each B of `-b`,
 * interleaved over `-r` rounds. Prints wall ms per step, tokens/s, the ratio to B=1 and, with
 * `--phases`, the time per kind of work: products by weight and row count, attention, activation
 * quantization, and the rest (TypeScript-side elementwise work, copies, routing), plus the
 * worker-pool jobs per step.
 *
 *   node dist/bench/batch-step.js -m models/bench-q4_0.gguf [-t 2] [-b 1,4,8] [-r 5] [-s 8] [--past 48] [--phases] [--cpu]
 */
import { availableParallelism, cpus } from "node:os";
import { parseArgs } from "node:util";
import { loadModel } from "../model/load.js";
import { defaultModelPath } from "../model/default-model.js";
import type { MixtralContext } from "../model/mixtral.js";
import { KernelPool } from "../kernels/parallel/pool.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", short: "m" }, threads: { type: "string", short: "t" }, batches: { type: "string", short: "b" },
    rounds: { type: "string", short: "r" }, steps: { type: "string", short: "s" }, past: { type: "string" },
    phases: { type: "boolean" }, cpu: { type: "boolean" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
  },
  allowPositionals: false,
});
if (values.help) {
  process.stdout.write("node dist/bench/batch-step.js [-m MODEL] [-t THREADS] [-b 1,4,8] [-r ROUNDS=5] [-s STEPS=8] [--past 48] [--phases] [--cpu] [--json]\n");
  process.exit(0);
}
const threads = Number(values.threads ?? availableParallelism());
const Bs = (values.batches ?? "1,4,8").split(",").map(Number);
const rounds = Number(values.rounds ?? 5), steps = Number(values.steps ?? 8), past = Number(values.past ?? 48);
/** --cpu: the process's CPU time instead of wall time (with -t 1, the one computing thread's: robust to other load) */
const now = values.cpu ? () => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; } : () => performance.now();
const lm = loadModel(values.model ?? defaultModelPath(), { threads });
const m = lm.model, c = m.config;

// per-phase timers: wrap the backend's methods (and count pool jobs)
const phase = new Map<string, { ms: number; n: number }>();
let jobs = 0;
const add = (k: string, ms: number) => { const p = phase.get(k) ?? { ms: 0, n: 0 }; p.ms += ms; p.n++; phase.set(k, p); };
if (values.phases) {
  const be = m.backend as unknown as Record<string, (...a: unknown[]) => unknown>;
  const kind = (name: string) => name.replace(/^blk\.\d+\./, "").replace(/\.weight$/, "");
  for (const fn of ["matmul", "matmulMany", "quantizeRows", "attention", "attentionBatch", "moeFfn"]) {
    const f = be[fn];
    if (typeof f !== "function") continue;
    be[fn] = function (this: unknown, ...a: unknown[]) {
      const t = now();
      const r = f.apply(this, a);
      let key = fn;
      if (fn === "matmul") {
        const w = a[0] as { name: string }, act = a[2] as { nRows: number }, rows = a[4] as ArrayLike<number> | undefined;
        key = `matmul ${kind(w.name)} x${rows ? rows.length : act.nRows}`;
      } else if (fn === "quantizeRows") key = `quantize x${a[2] as number}`;
      else if (fn === "attention") key = "attention";
      add(key, now() - t);
      return r;
    };
  }
  const par = KernelPool.prototype.parallel;
  KernelPool.prototype.parallel = function (this: KernelPool, ...a: Parameters<KernelPool["parallel"]>) {
    jobs++;
    return par.apply(this, a);
  };
}

const tok = (i: number) => 300 + ((i * 7919) % (c.nVocab - 300));
function contexts(B: number): MixtralContext[] {
  const ctxs = Array.from({ length: B }, () => m.newContext({ nCtx: past + steps + 8, kvType: "f16" }));
  // prefill every sequence with `past` tokens (one batched step)
  if (past > 0) m.forwardBatch(ctxs.map((ctx, s) => ({ ctx, tokens: Array.from({ length: past }, (_, i) => tok(i + 31 * s)), logitRows: [past - 1] })));
  return ctxs;
}

const res = new Map<number, number[]>();
const phases = new Map<number, Map<string, { ms: number; n: number }>>();
const jobsPer = new Map<number, number>();
for (let r = 0; r < rounds + 1; r++) {
  for (const B of Bs) {
    const ctxs = contexts(B);
    phase.clear();
    jobs = 0;
    const t0 = now();
    for (let s = 0; s < steps; s++) m.forwardBatch(ctxs.map((ctx, i) => ({ ctx, tokens: [tok(1000 + s * 13 + i)], logitRows: [0] })));
    const ms = (now() - t0) / steps;
    for (const ctx of ctxs) ctx.dispose();
    if (r === 0) continue; // warm-up round
    (res.get(B) ?? res.set(B, []).get(B)!).push(ms);
    if (values.phases) {
      const acc = phases.get(B) ?? phases.set(B, new Map()).get(B)!;
      for (const [k, v] of phase) { const p = acc.get(k) ?? { ms: 0, n: 0 }; p.ms += v.ms / steps; p.n += v.n / steps; acc.set(k, p); }
      jobsPer.set(B, jobs / steps);
    }
  }
}
const median = (a: number[]) => { const s = [...a].sort((x, y) => x - y); return s[s.length >> 1]!; };
const base = 1000 / median(res.get(Bs[0]!)!) * Bs[0]!;
const out = Bs.map((B) => ({ B, msPerStep: median(res.get(B)!), tokPerS: (1000 / median(res.get(B)!)) * B, all: res.get(B)! }));
if (values.json) {
  process.stdout.write(JSON.stringify({ threads, past, steps, rounds, results: out }) + "\n");
} else {
  process.stdout.write(`${cpus()[0]?.model ?? "?"}, ${availableParallelism()} cores, threads ${threads}, Node ${process.version}; ${c.nLayer} layers, ${c.nExpert} experts top-${c.nExpertUsed}; ${past} tokens cached per sequence, medians of ${rounds} rounds x ${steps} steps\n`);
  for (const o of out) {
    process.stdout.write(`B=${o.B}: ${o.msPerStep.toFixed(1)} ms/step, ${o.tokPerS.toFixed(1)} tok/s (${(o.tokPerS / base).toFixed(2)}x B=${Bs[0]}) [${o.all.map((x) => x.toFixed(1)).join(" ")}]\n`);
  }
  if (values.phases) {
    for (const B of Bs) {
      const acc = phases.get(B)!;
      const total = median(res.get(B)!);
      let known = 0;
      process.stdout.write(`\nB=${B} per step (averaged over rounds; pool jobs ${(jobsPer.get(B) ?? 0).toFixed(0)}):\n`);
      const rows = [...acc].map(([k, v]) => [k, v.ms / rounds, v.n / rounds] as const).sort((a, b) => b[1] - a[1]);
      for (const [k, ms, n] of rows) {
        if (!k.startsWith("quantize") || true) known += ms;
        process.stdout.write(`  ${k.padEnd(32)} ${ms.toFixed(2).padStart(8)} ms  ${n.toFixed(1).padStart(6)} calls\n`);
      }
      process.stdout.write(`  ${"rest (TS-side)".padEnd(32)} ${(total - known).toFixed(2).padStart(8)} ms\n`);
    }
  }
}
m.close();
