/**
 * Training speed: tokens/s of forward + backward + AdamW with the seed's recipe (LoRA r 64, alpha
 * 128, dropout 0.05 on q,k,v,o, router and experts; embed_tokens and lm_head in full; a quantized
 * base stays quantized: QLoRA) at a given sequence length, and peak memory.
 * npm run bench:train -- -m MODEL [-t N] [--seq-len 256] [--steps 3] [--full] [--no-recompute] [--json]
 * Prints the machine, Node version, threads and commit with the figures; never asserts.
 */
import { execSync } from "node:child_process";
import { availableParallelism, cpus } from "node:os";
import { parseArgs } from "node:util";
import { GgufReader } from "../io/gguf/reader.js";
import { defaultModelPath } from "../model/default-model.js";
import { TrainMemory } from "../train/gemm.js";
import { FULL_TARGETS, LORA_TARGETS, TrainModel } from "../train/model.js";
import { adamwStep, ADAMW_DEFAULTS, clipGradNorm } from "../train/optim.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", short: "m" }, threads: { type: "string", short: "t" }, "seq-len": { type: "string" },
    steps: { type: "string" }, full: { type: "boolean" }, "no-recompute": { type: "boolean" }, json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  process.stdout.write("npm run bench:train -- -m MODEL [-t THREADS] [--seq-len 256] [--steps 3] [--full] [--no-recompute] [--json]\n  --full: train every tensor instead of the seed's LoRA recipe\n");
  process.exit(0);
}
const path = values.model ?? defaultModelPath();
const threads = Number(values.threads ?? availableParallelism());
const T = Number(values["seq-len"] ?? 256), steps = Number(values.steps ?? 3);
let commit = "unknown";
try { commit = execSync("git rev-parse --short HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim(); } catch { /* not a checkout */ }

const r = new GgufReader(path);
const mem = new TrainMemory({ threads });
const setup = {
  loraRank: 64, loraAlpha: 128, loraDropout: 0.05, loraTargets: values.full ? [] : LORA_TARGETS,
  full: values.full ? FULL_TARGETS : (["embed", "lm_head"] as const), auxCoef: 0.02, recompute: !values["no-recompute"], seed: 1,
};
const t0 = performance.now();
const m = TrainModel.fromGguf(r, mem, setup);
const loadMs = performance.now() - t0;
const V = m.cfg.nVocab;
const tokens = Array.from({ length: T }, (_, i) => 300 + ((i * 7919) % (V - 300)));
const targets = [...tokens.slice(1), -1];
const times: number[] = [];
for (let s = 0; s < steps + 1; s++) {
  const t = performance.now();
  m.zeroGrad();
  m.stepMean(tokens, targets, 1, s);
  clipGradNorm(m.trainable(), 1);
  adamwStep(m.trainable(), s + 1, { ...ADAMW_DEFAULTS, lr: 1e-4, weightDecay: 0.1 });
  if (s > 0) times.push(performance.now() - t); // the first step warms up
}
const ms = times.reduce((a, b) => a + b, 0) / times.length;
const res = {
  model: path.split("/").pop(), recipe: values.full ? "full" : "lora-r64+embed+lm_head", threads, seq_len: T, steps,
  recompute: setup.recompute, train_tokens_per_s: (T * 1000) / ms, ms_per_step: ms, load_ms: loadMs,
  trainable_params: m.trainable().reduce((a, p) => a + p.size, 0),
  peak_wasm_bytes: mem.peak, peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
  cpu: cpus()[0]?.model ?? "?", node: process.version, commit,
};
mem.close();
r.close();
if (values.json) process.stdout.write(JSON.stringify(res) + "\n");
else {
  process.stdout.write(`# ${res.cpu}, ${cpus().length} cores, Node ${res.node}, ${threads} threads, commit ${commit}\n`);
  process.stdout.write(`${res.model}: ${res.recipe}, seq ${T}, recompute ${res.recompute}: ${res.train_tokens_per_s.toFixed(1)} tokens/s (${ms.toFixed(0)} ms per sequence incl. AdamW), ` +
    `${(res.trainable_params / 1e6).toFixed(2)}M trainable, peak training memory ${(res.peak_wasm_bytes / 2 ** 20).toFixed(0)} MiB, peak RSS ${(res.peak_rss_bytes / 2 ** 20).toFixed(0)} MiB\n`);
}
