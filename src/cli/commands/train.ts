import { existsSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { loadSpmModel } from "../../tokenizer/from-spm-model.js";
import { writeSyntheticModel } from "../../model/synthetic.js";
import { TOKENIZER_V1 } from "../../model/default-model.js";
import { GgmlType } from "../../quant/format.js";
import { FULL_TARGETS, LORA_TARGETS, type FullTarget, type LoraTarget } from "../../train/model.js";
import { MERGE_TYPES, type MergeType } from "../../train/export.js";
import { SCHEDULES, type Schedule } from "../../train/optim.js";
import { Trainer, type TrainOptions } from "../../train/trainer.js";
import { num, parse } from "../args.js";

export const HELP = `cmx train: continued pre-training and instruction tuning with LoRA / QLoRA (the seed's recipe)

Usage:
  cmx train pt  --base MODEL.gguf --data FILE... --out DIR [options]   pre-training: one document per line
  cmx train sft --base MODEL.gguf --data FILE.json --out DIR [options] instruction tuning: Alpaca JSON / JSONL
  cmx train init --out MODEL.gguf [--layers N --embd N --ff N --heads N --kv-heads N --experts N --experts-used N --ctx N]
                 a new random Mixtral (Hugging Face's N(0, 0.02) initialisation, Mistral v1 vocabulary) to pre-train from scratch

The base is a GGUF of any supported type; a quantized base stays quantized in memory (QLoRA). A
Hugging Face folder is converted first: cmx convert DIR base.gguf --outtype f16.

LoRA and what is trained (defaults: the seed's):
      --lora-rank R          (64)            --lora-alpha A   (128)      --lora-dropout P (0.05)
      --lora-targets LIST    q_proj,k_proj,v_proj,o_proj,gate,w1,w2,w3 (gate = the router; none = no LoRA)
      --full-train LIST      embed,lm_head   (trained in full; also norm, attn, router, ffn, all, none)
Optimisation:
      --lr X (1e-4)  --schedule cosine|linear|constant  --warmup-ratio X (0.05)  --weight-decay X (0.1)
      --batch N (1)  --grad-accum N (8)  --seq-len N (1024)  --epochs N (pt 1, sft 3)  --max-steps N
      --max-grad-norm X (1.0)  --aux-loss-coef X (0.02, the router load-balancing loss)  --seed N (42)
      --no-recompute         keep every layer's activations (faster, more memory; default: recompute)
  -t, --threads N            (default: all cores)
Evaluation, logging, checkpoints:
      --eval-data FILE...    held-out data (same format); loss and perplexity every --eval-every steps (100)
      --eval-limit N         evaluate on the first N examples of it only
      --log-every N (10)     --save-every N (200)   --save-total-limit N (3)
      --resume DIR           continue from DIR (an output folder or one of its checkpoint-N folders)
      --stop-after N         stop (with a checkpoint) after N steps in this run, to train in stages
      --on-bad-data stop|skip  a bad record stops the run (default) or is skipped and counted
Output (in --out): metrics.jsonl, loss-curve.svg/png, checkpoint-N/, adapter_config.json and
adapter_model.safetensors (PEFT; cmx merge-lora and Hugging Face PEFT load it), and
      --merge-to OUT.gguf    also write the merged model (written to DIR/model.gguf anyway when
                             parts other than embed/lm_head are trained in full)
      --merge-type f32|f16|bf16|q8_0|base   type of the changed matrices (default: f16)
      --name NAME            general.name of the merged model

Ctrl-C finishes the current step and saves a checkpoint first.
`;

function list<T extends string>(v: unknown, allowed: readonly T[], name: string, dflt: readonly T[], all?: readonly T[]): T[] {
  if (v === undefined) return [...dflt];
  const s = String(v).trim();
  if (s === "" || s === "none") return [];
  if (s === "all" && all) return [...all];
  const out: T[] = [];
  for (const x of s.split(",").map((y) => y.trim()).filter(Boolean)) {
    if (!allowed.includes(x as T)) throw new ArgumentError(`--${name}: unknown "${x}" (expected ${allowed.join(", ")}${all ? ", all" : ""} or none)`);
    out.push(x as T);
  }
  return out;
}

export async function main(argv: string[]): Promise<void> {
  const [mode, ...rest] = argv;
  if (!mode || mode === "--help" || mode === "-h") { process.stdout.write(HELP); return; }
  if (mode === "init") return init(rest);
  if (mode !== "pt" && mode !== "sft") throw new ArgumentError(`train: expected pt, sft or init, got "${mode}" (see cmx train --help)`);
  const { values, positionals } = parse(rest, {
    base: { type: "string" }, data: { type: "string", multiple: true }, out: { type: "string" }, "eval-data": { type: "string", multiple: true }, "eval-limit": { type: "string" },
    "lora-rank": { type: "string" }, "lora-alpha": { type: "string" }, "lora-dropout": { type: "string" }, "lora-targets": { type: "string" },
    "full-train": { type: "string" }, lr: { type: "string" }, schedule: { type: "string" }, "warmup-ratio": { type: "string" },
    "weight-decay": { type: "string" }, batch: { type: "string" }, "grad-accum": { type: "string" }, "seq-len": { type: "string" },
    epochs: { type: "string" }, "max-steps": { type: "string" }, "aux-loss-coef": { type: "string" }, seed: { type: "string" },
    threads: { type: "string", short: "t" }, "eval-every": { type: "string" }, "log-every": { type: "string" }, "save-every": { type: "string" },
    "save-total-limit": { type: "string" }, resume: { type: "string" }, "stop-after": { type: "string" }, "on-bad-data": { type: "string" },
    "merge-to": { type: "string" }, "merge-type": { type: "string" }, name: { type: "string" }, "max-grad-norm": { type: "string" },
    "no-recompute": { type: "boolean" }, help: { type: "boolean", short: "h" },
  }, "train");
  if (values.help) { process.stdout.write(HELP); return; }
  const data = [...((values.data as string[] | undefined) ?? []), ...positionals];
  if (!values.base) throw new ArgumentError("train: give the base model with --base MODEL.gguf");
  if (!data.length) throw new ArgumentError("train: give the training data with --data FILE");
  if (!values.out) throw new ArgumentError("train: give the output folder with --out DIR");
  for (const f of [...data, ...((values["eval-data"] as string[] | undefined) ?? [])]) if (!existsSync(f)) throw new ArgumentError(`data file not found: ${f}`);
  const schedule = (values.schedule ?? "cosine") as Schedule;
  if (!SCHEDULES.includes(schedule)) throw new ArgumentError(`--schedule: expected ${SCHEDULES.join(", ")}, got "${values.schedule}"`);
  const mergeType = (values["merge-type"] ?? "f16") as MergeType;
  if (!MERGE_TYPES.includes(mergeType)) throw new ArgumentError(`--merge-type: expected ${MERGE_TYPES.join(", ")}, got "${values["merge-type"]}"`);
  const onBad = (values["on-bad-data"] ?? "stop") as "stop" | "skip";
  if (onBad !== "stop" && onBad !== "skip") throw new ArgumentError(`--on-bad-data: expected stop or skip, got "${onBad}"`);
  const loraTargets = list<LoraTarget>(values["lora-targets"], LORA_TARGETS, "lora-targets", LORA_TARGETS);
  const full = list<FullTarget>(values["full-train"], FULL_TARGETS, "full-train", ["embed", "lm_head"], FULL_TARGETS);
  const maxSteps = num(values["max-steps"], "max-steps", { int: true, min: 1 });
  const stopAfter = num(values["stop-after"], "stop-after", { int: true, min: 1 });
  const threads = num(values.threads, "threads", { int: true, min: 1 });
  const o: TrainOptions = {
    mode, base: values.base as string, data, out: values.out as string,
    ...(values["eval-data"] ? { evalData: values["eval-data"] as string[] } : {}),
    ...(values["eval-limit"] !== undefined ? { evalLimit: num(values["eval-limit"], "eval-limit", { int: true, min: 1 })! } : {}),
    setup: {
      loraRank: num(values["lora-rank"], "lora-rank", { int: true, min: 1 }) ?? 64,
      loraAlpha: num(values["lora-alpha"], "lora-alpha", { min: 0 }) ?? 128,
      loraDropout: num(values["lora-dropout"], "lora-dropout", { min: 0, max: 0.99 }) ?? 0.05,
      loraTargets, full,
      auxCoef: num(values["aux-loss-coef"], "aux-loss-coef", { min: 0 }) ?? 0.02,
      recompute: !values["no-recompute"],
      seed: num(values.seed, "seed", { int: true, min: 0 }) ?? 42,
    },
    lr: num(values.lr, "lr", { min: 0 }) ?? 1e-4,
    schedule,
    warmupRatio: num(values["warmup-ratio"], "warmup-ratio", { min: 0, max: 1 }) ?? 0.05,
    weightDecay: num(values["weight-decay"], "weight-decay", { min: 0 }) ?? 0.1,
    batch: num(values.batch, "batch", { int: true, min: 1 }) ?? 1,
    gradAccum: num(values["grad-accum"], "grad-accum", { int: true, min: 1 }) ?? 8,
    seqLen: num(values["seq-len"], "seq-len", { int: true, min: 2 }) ?? 1024,
    epochs: num(values.epochs, "epochs", { min: 0 }) ?? (mode === "pt" ? 1 : 3),
    ...(maxSteps !== undefined ? { maxSteps } : {}),
    evalEvery: num(values["eval-every"], "eval-every", { int: true, min: 0 }) ?? 100,
    saveEvery: num(values["save-every"], "save-every", { int: true, min: 0 }) ?? 200,
    saveTotalLimit: num(values["save-total-limit"], "save-total-limit", { int: true, min: 0 }) ?? 3,
    logEvery: num(values["log-every"], "log-every", { int: true, min: 1 }) ?? 10,
    maxGradNorm: num(values["max-grad-norm"], "max-grad-norm", { min: 0 }) ?? 1.0,
    ...(threads !== undefined ? { threads } : {}),
    ...(values.resume ? { resume: values.resume as string } : {}),
    onBadData: onBad,
    ...(values["merge-to"] ? { mergeTo: values["merge-to"] as string } : {}),
    mergeType,
    ...(values.name ? { name: values.name as string } : {}),
    ...(stopAfter !== undefined ? { stopAfter } : {}),
  };
  if (!loraTargets.length && !full.length) throw new ArgumentError("train: nothing to train (no --lora-targets and no --full-train)");
  const t = new Trainer(o);
  try {
    t.prepare();
    const r = await t.run();
    process.stderr.write(`${r.finished ? "done" : "stopped"} at step ${r.step}/${r.totalSteps}: loss ${r.lastLoss.toFixed(4)}${r.evalLoss !== undefined ? `, eval loss ${r.evalLoss.toFixed(4)}` : ""}, ${r.tokensPerSecond.toFixed(0)} tokens/s, peak training memory ${(r.peakMemoryBytes / 2 ** 20).toFixed(0)} MiB\n`);
    if (!r.finished) process.stderr.write(`continue with: cmx train ${mode} ... --resume ${o.out}\n`);
  } finally {
    t.close();
  }
}

async function init(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    out: { type: "string" }, layers: { type: "string" }, embd: { type: "string" }, ff: { type: "string" }, heads: { type: "string" },
    "kv-heads": { type: "string" }, experts: { type: "string" }, "experts-used": { type: "string" }, ctx: { type: "string" },
    seed: { type: "string" }, name: { type: "string" }, std: { type: "string" }, help: { type: "boolean", short: "h" },
  }, "train init");
  if (values.help) { process.stdout.write(HELP); return; }
  if (!values.out) throw new ArgumentError("train init: give the file to write with --out MODEL.gguf");
  const n = (k: string, d: number) => num(values[k], k, { int: true, min: 1 }) ?? d;
  const spec = {
    name: (values.name as string | undefined) ?? "mixtral-from-scratch",
    nLayer: n("layers", 4), nEmbd: n("embd", 256), nFf: n("ff", 512), nHead: n("heads", 8), nHeadKv: n("kv-heads", 4),
    nExpert: n("experts", 8), nExpertUsed: n("experts-used", 2), nCtx: n("ctx", 1024), seed: n("seed", 42),
    type: GgmlType.F32, std: num(values.std, "std", { min: 0 }) ?? 0.02, hfInit: true,
  };
  if (spec.nEmbd % spec.nHead !== 0) throw new ArgumentError(`--embd ${spec.nEmbd} is not a multiple of --heads ${spec.nHead}`);
  if (spec.nHead % spec.nHeadKv !== 0) throw new ArgumentError(`--heads ${spec.nHead} is not a multiple of --kv-heads ${spec.nHeadKv}`);
  if (spec.nExpertUsed > spec.nExpert) throw new ArgumentError(`--experts-used ${spec.nExpertUsed} is more than --experts ${spec.nExpert}`);
  writeSyntheticModel(values.out as string, spec, loadSpmModel(TOKENIZER_V1));
  process.stderr.write(`wrote ${values.out}: ${spec.nLayer} layers, d ${spec.nEmbd}, ${spec.nExpert} experts (top-${spec.nExpertUsed}), FFN ${spec.nFf}, heads ${spec.nHead}/${spec.nHeadKv}\n`);
}
