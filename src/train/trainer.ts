/**
 * The training loop: micro-batches with gradient accumulation, gradient clipping, AdamW with a
 * warm-up-then-decay schedule, evaluation, logging (terminal, metrics.jsonl, loss-curve image),
 * atomic checkpoints that resume exactly, and the outputs (PEFT adapter, merged GGUF).
 *
 * Everything a step depends on is a function of the step number: the data order (a seeded
 * permutation per epoch), the dropout masks (seeded by step and micro-batch), and the restored
 * parameters and optimizer moments. So a run resumed from a checkpoint continues with exactly the
 * losses the uninterrupted run has.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { ArgumentError, DataError, ModelError } from "../errors.js";
import { GgufReader } from "../io/gguf/reader.js";
import { SafetensorsFile, writeSafetensors, type StTensorSource } from "../io/safetensors/index.js";
import { vocabFromGguf } from "../model/load.js";
import { openModel } from "../convert/source.js";
import { writeGgufModel } from "../convert/write-gguf.js";
import { lineChartSvg, writeChart } from "../plot/chart.js";
import { SpmTokenizer } from "../tokenizer/spm.js";
import { epochOrder, loadPretrainData, loadSftData, type DataReport, type Example, type OnBadData } from "./data.js";
import { adapterExpressible, f32Bytes, writeAdapter, writeMergedGguf, type MergeType } from "./export.js";
import { TrainMemory } from "./gemm.js";
import { TrainModel, type TrainSetup } from "./model.js";
import { mixSeed } from "./ops.js";
import { adamwStep, ADAMW_DEFAULTS, clipGradNorm, learningRate, warmupSteps, type Schedule } from "./optim.js";

export interface TrainOptions {
  mode: "pt" | "sft";
  /** a GGUF file */
  base: string;
  data: string[];
  out: string;
  evalData?: string[];
  /** evaluate on at most this many examples of the eval data (the first ones) */
  evalLimit?: number;
  setup: TrainSetup;
  lr: number;
  schedule: Schedule;
  warmupRatio: number;
  weightDecay: number;
  batch: number;
  gradAccum: number;
  seqLen: number;
  epochs: number;
  maxSteps?: number;
  evalEvery: number;
  saveEvery: number;
  saveTotalLimit: number;
  logEvery: number;
  maxGradNorm: number;
  threads?: number;
  resume?: string;
  onBadData: OnBadData;
  mergeTo?: string;
  mergeType: MergeType;
  /** the merged model's general.name */
  name?: string;
  /** stop after this many optimizer steps in this process (then checkpoint), for staged runs */
  stopAfter?: number;
  /** print progress (default true) */
  verbose?: boolean;
}

export interface TrainResult {
  step: number;
  totalSteps: number;
  finished: boolean;
  lastLoss: number;
  evalLoss?: number;
  checkpoint?: string;
  tokensPerSecond: number;
  peakMemoryBytes: number;
}

interface Metric {
  step: number;
  loss?: number;
  lr?: number;
  tokens_per_s?: number;
  grad_norm?: number;
  aux_loss?: number;
  epoch?: number;
  eval_loss?: number;
  eval_ppl?: number;
}

const STATE = "trainer_state.json";

/** The options that must match when resuming (the rest may change, e.g. --save-every). */
function fingerprint(o: TrainOptions, base: { size: number; name: string }, nExamples: number): Record<string, unknown> {
  return {
    mode: o.mode, base: base.name, baseSize: base.size, nExamples, setup: { ...o.setup, recompute: undefined, residentBytes: undefined },
    evalLimit: o.evalLimit ?? null, lr: o.lr, schedule: o.schedule, warmupRatio: o.warmupRatio, weightDecay: o.weightDecay, batch: o.batch, gradAccum: o.gradAccum,
    seqLen: o.seqLen, epochs: o.epochs, maxSteps: o.maxSteps ?? null, maxGradNorm: o.maxGradNorm,
  };
}

/** The checkpoint folder to resume from: DIR itself, or the newest checkpoint-N inside it. */
export function findCheckpoint(dir: string): string {
  if (existsSync(join(dir, STATE))) return dir;
  if (!existsSync(dir)) throw new ArgumentError(`--resume ${dir}: no such folder`);
  const cks = readdirSync(dir).filter((n) => /^checkpoint-\d+$/.test(n) && existsSync(join(dir, n, STATE)))
    .sort((a, b) => Number(b.slice(11)) - Number(a.slice(11)));
  if (!cks.length) throw new ArgumentError(`--resume ${dir}: no checkpoint (a folder with ${STATE}) found`);
  return join(dir, cks[0]!);
}

export class Trainer {
  private mem!: TrainMemory;
  model!: TrainModel;
  private reader!: GgufReader;
  private tok!: SpmTokenizer;
  private train!: DataReport;
  private evalSet?: DataReport;
  totalSteps = 0;
  step = 0;
  private stopRequested = false;
  private metricsPath: string;
  private history: Metric[] = [];
  private print: (s: string) => void;

  /** the GGUF trained on (o.base, or its conversion) */
  basePath: string;

  constructor(readonly o: TrainOptions) {
    this.basePath = o.base;
    this.metricsPath = join(o.out, "metrics.jsonl");
    this.print = o.verbose === false ? () => {} : (s) => process.stderr.write(s);
  }

  /** Load the base, the data and (with --resume) the checkpoint. */
  prepare(): void {
    const o = this.o;
    if (!existsSync(o.base)) throw new ArgumentError(`--base ${o.base}: no such file`);
    mkdirSync(o.out, { recursive: true });
    if (statSync(o.base).isDirectory()) {
      // a Hugging Face folder: converted once (F16, as llama.cpp's converter) into the output folder
      const conv = join(o.out, "base.gguf");
      if (!existsSync(conv)) {
        this.print(`converting the Hugging Face folder ${o.base} to ${conv} (f16)\n`);
        const src = openModel(o.base);
        try {
          writeGgufModel(src, conv, { outType: "f16" });
        } finally {
          src.close?.();
        }
      }
      this.basePath = conv;
    }
    this.reader = new GgufReader(this.basePath);
    this.tok = new SpmTokenizer(vocabFromGguf(this.reader.metadata, basename(this.basePath)));
    this.train = o.mode === "pt" ? loadPretrainData(o.data, this.tok, o.seqLen) : loadSftData(o.data, this.tok, o.seqLen, o.onBadData);
    if (o.evalData?.length) {
      this.evalSet = o.mode === "pt" ? loadPretrainData(o.evalData, this.tok, o.seqLen) : loadSftData(o.evalData, this.tok, o.seqLen, o.onBadData);
      if (o.evalLimit !== undefined) this.evalSet.examples = this.evalSet.examples.slice(0, o.evalLimit);
    }
    const t = this.train;
    this.print(`train: ${t.examples.length} examples, ${t.tokens} tokens${t.skipped ? `, ${t.skipped} bad records skipped` : ""}${t.tooLong ? `, ${t.tooLong} dropped (source >= --seq-len)` : ""}\n`);
    for (const p of t.problems) this.print(`  skipped ${p}\n`);
    const microPerEpoch = Math.ceil(t.examples.length / o.batch);
    const fromEpochs = Math.ceil((microPerEpoch * o.epochs) / o.gradAccum);
    this.totalSteps = o.maxSteps ?? fromEpochs;
    if (this.totalSteps <= 0) throw new DataError("no optimizer steps to run (no data?)");
    this.mem = new TrainMemory(o.threads !== undefined ? { threads: o.threads } : {});
    this.model = TrainModel.fromGguf(this.reader, this.mem, o.setup);
    const nTrain = this.model.trainable().reduce((s, p) => s + p.size, 0);
    const nAll = this.model.params.filter((p) => !p.name.includes(".lora_")).reduce((s, p) => s + p.size, 0);
    this.print(`model: ${this.model.cfg.nLayer} layers, d ${this.model.cfg.nEmbd}, ${this.model.cfg.nExpert} experts; trainable ${nTrain.toLocaleString("en")} of ${nAll.toLocaleString("en")} (${((100 * nTrain) / nAll).toFixed(2)}%)\n`);
    if (o.resume) this.loadCheckpoint(findCheckpoint(o.resume));
    else {
      writeFileSync(this.metricsPath, "");
      writeFileSync(join(o.out, "train_args.json"), JSON.stringify({ ...o, resume: undefined }, null, 2) + "\n");
    }
  }

  private fp(): Record<string, unknown> {
    return fingerprint(this.o, { size: statSync(this.basePath).size, name: basename(this.o.base) }, this.train.examples.length);
  }

  /** The examples of global micro-batch g. */
  private batchAt(g: number): Example[] {
    const n = this.train.examples.length, B = this.o.batch;
    const perEpoch = Math.ceil(n / B);
    const epoch = Math.floor(g / perEpoch), within = g % perEpoch;
    const order = this.orderFor(epoch);
    const out: Example[] = [];
    for (let i = within * B; i < Math.min(n, within * B + B); i++) out.push(this.train.examples[order[i]!]!);
    return out;
  }
  private orders = new Map<number, Int32Array>();
  private orderFor(epoch: number): Int32Array {
    let o = this.orders.get(epoch);
    if (!o) {
      o = epochOrder(this.train.examples.length, this.o.setup.seed, epoch);
      this.orders.clear();
      this.orders.set(epoch, o);
    }
    return o;
  }

  /** Evaluation loss (mean cross-entropy over all scored tokens). */
  evaluate(): number | undefined {
    if (!this.evalSet) return undefined;
    let s = 0, n = 0;
    for (const ex of this.evalSet.examples) {
      const r = this.model.evalLoss(ex.tokens, ex.targets);
      s += r.lossSum;
      n += r.nTargets;
    }
    return n > 0 ? s / n : undefined;
  }

  /** Run until the last step (or stopAfter steps, or Ctrl-C); checkpoints on the way. */
  async run(): Promise<TrainResult> {
    const o = this.o;
    const onSig = () => {
      if (this.stopRequested) return;
      this.stopRequested = true;
      this.print("\ninterrupt: finishing this step and saving a checkpoint (Ctrl-C again to leave without one)\n");
      process.once("SIGINT", () => process.exit(130));
    };
    process.once("SIGINT", onSig);
    const warm = warmupSteps(this.totalSteps, o.warmupRatio);
    const t0 = performance.now();
    let tokensDone = 0, lastLoss = NaN, evalLoss: number | undefined, ran = 0, checkpoint: string | undefined;
    let logLoss = 0, logAux = 0, logN = 0, logTok = 0, logT = performance.now();
    try {
      while (this.step < this.totalSteps) {
        const lr = learningRate(o.schedule, o.lr, this.step, this.totalSteps, warm);
        this.model.zeroGrad();
        let stepLoss = 0, stepAux = 0, stepTok = 0;
        for (let micro = 0; micro < o.gradAccum; micro++) {
          const g = this.step * o.gradAccum + micro;
          const batch = this.batchAt(g);
          let nTgt = 0;
          for (const ex of batch) for (const y of ex.targets) if (y >= 0) nTgt++;
          let ce = 0, aux = 0;
          batch.forEach((ex, bi) => {
            const seed = mixSeed(o.setup.seed, g, bi);
            const r = this.model.step(ex.tokens, ex.targets, {
              ceScale: nTgt > 0 ? 1 / (nTgt * o.gradAccum) : 0, auxScale: 1 / (batch.length * o.gradAccum),
            }, seed);
            ce += r.lossSum;
            aux += r.aux / batch.length;
            stepTok += ex.tokens.length;
          });
          stepLoss += (nTgt > 0 ? ce / nTgt : 0) / o.gradAccum;
          stepAux += aux / o.gradAccum;
          await new Promise<void>((res) => setImmediate(res));
        }
        const gradNorm = clipGradNorm(this.model.trainable(), o.maxGradNorm);
        adamwStep(this.model.trainable(), this.step + 1, { ...ADAMW_DEFAULTS, lr, weightDecay: o.weightDecay });
        this.step++;
        ran++;
        tokensDone += stepTok;
        lastLoss = stepLoss;
        logLoss += stepLoss; logAux += stepAux; logN++; logTok += stepTok;
        if (this.step % o.logEvery === 0 || this.step === this.totalSteps) {
          const now = performance.now();
          const tps = (logTok * 1000) / Math.max(1, now - logT);
          const elapsed = (now - t0) / 1000;
          const eta = (elapsed / ran) * (Math.min(this.totalSteps, o.stopAfter !== undefined ? this.step - ran + o.stopAfter : Infinity) - this.step);
          const m: Metric = {
            step: this.step, loss: logLoss / logN, lr, tokens_per_s: Math.round(tps), grad_norm: gradNorm, aux_loss: logAux / logN,
            epoch: (this.step * o.gradAccum) / Math.ceil(this.train.examples.length / o.batch),
          };
          this.record(m);
          this.print(`step ${this.step}/${this.totalSteps} | loss ${m.loss!.toFixed(4)} | lr ${lr.toExponential(2)} | ${m.tokens_per_s} tok/s | grad ${gradNorm.toFixed(3)} | ETA ${fmtTime(eta)}\n`);
          logLoss = 0; logAux = 0; logN = 0; logTok = 0; logT = now;
        }
        if (this.evalSet && ((o.evalEvery > 0 && this.step % o.evalEvery === 0) || this.step === this.totalSteps)) {
          evalLoss = this.evaluate();
          if (evalLoss !== undefined) {
            this.record({ step: this.step, eval_loss: evalLoss, eval_ppl: Math.exp(evalLoss) });
            this.print(`eval at step ${this.step}: loss ${evalLoss.toFixed(4)}, perplexity ${Math.exp(evalLoss).toFixed(3)}\n`);
          }
        }
        const stopNow = this.stopRequested || (o.stopAfter !== undefined && ran >= o.stopAfter);
        if ((o.saveEvery > 0 && this.step % o.saveEvery === 0) || stopNow || this.step === this.totalSteps) {
          checkpoint = await this.saveCheckpoint();
        }
        if (stopNow) break;
      }
    } finally {
      process.removeListener("SIGINT", onSig);
    }
    const finished = this.step >= this.totalSteps;
    if (finished) await this.finish();
    const tokensPerSecond = (tokensDone * 1000) / Math.max(1, performance.now() - t0);
    return {
      step: this.step, totalSteps: this.totalSteps, finished, lastLoss, ...(evalLoss !== undefined ? { evalLoss } : {}),
      ...(checkpoint ? { checkpoint } : {}), tokensPerSecond, peakMemoryBytes: this.mem.peak,
    };
  }

  private record(m: Metric): void {
    this.history.push(m);
    appendFileSync(this.metricsPath, JSON.stringify(m) + "\n");
  }

  /** loss-curve.svg / .png from metrics.jsonl */
  async drawLossCurve(): Promise<void> {
    const train = this.history.filter((m) => m.loss !== undefined).map((m) => [m.step, m.loss!] as [number, number]);
    const ev = this.history.filter((m) => m.eval_loss !== undefined).map((m) => [m.step, m.eval_loss!] as [number, number]);
    if (!train.length) return;
    const svg = lineChartSvg([{ name: "train loss", points: train }, ...(ev.length ? [{ name: "eval loss", points: ev }] : [])], {
      title: `${this.o.mode === "pt" ? "Pre-training" : "Instruction tuning"}: ${basename(this.o.out)}`, xLabel: "optimizer step", yLabel: "cross-entropy (nats)",
    });
    await writeChart(join(this.o.out, "loss-curve"), svg);
  }

  /** Write checkpoint-STEP atomically (a temporary folder renamed), keep the newest saveTotalLimit. */
  async saveCheckpoint(): Promise<string> {
    const o = this.o;
    const final = join(o.out, `checkpoint-${this.step}`);
    const tmp = `${final}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    const params: StTensorSource[] = [], opt: StTensorSource[] = [];
    for (const p of this.model.trainable()) {
      const shape = [p.nMat, p.rows, p.cols];
      params.push({ name: p.name, dtype: "F32", shape, data: f32Bytes(p.value!.f) });
      opt.push({ name: `${p.name}.exp_avg`, dtype: "F32", shape, data: f32Bytes(p.m!.f) });
      opt.push({ name: `${p.name}.exp_avg_sq`, dtype: "F32", shape, data: f32Bytes(p.v!.f) });
    }
    writeSafetensors(join(tmp, "params.safetensors"), params);
    writeSafetensors(join(tmp, "optimizer.safetensors"), opt);
    if (adapterExpressible(this.model)) writeAdapter(tmp, this.model, o.base);
    const perEpoch = Math.ceil(this.train.examples.length / o.batch), g = this.step * o.gradAccum;
    const state = {
      step: this.step, total_steps: this.totalSteps,
      // where the run continues; all three follow from the step and the seed, and are checked on resume
      data_position: { epoch: Math.floor(g / perEpoch), micro_batch: g % perEpoch, micro_batches_per_epoch: perEpoch },
      schedule: { next_lr: learningRate(o.schedule, o.lr, this.step, this.totalSteps, warmupSteps(this.totalSteps, o.warmupRatio)) },
      random_state: { seed: o.setup.seed, dropout_masks: "mixSeed(seed, micro-batch index, sequence)", data_order: "epochOrder(examples, seed, epoch)" },
      fingerprint: this.fp(), saved: new Date().toISOString(),
    };
    writeFileSync(join(tmp, STATE), JSON.stringify(state, null, 2) + "\n");
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    // prune
    const cks = readdirSync(o.out).filter((n) => /^checkpoint-\d+$/.test(n)).sort((a, b) => Number(a.slice(11)) - Number(b.slice(11)));
    while (o.saveTotalLimit > 0 && cks.length > o.saveTotalLimit) rmSync(join(o.out, cks.shift()!), { recursive: true, force: true });
    await this.drawLossCurve().catch(() => {});
    this.print(`checkpoint: ${final}\n`);
    return final;
  }

  private loadCheckpoint(dir: string): void {
    let state: { step: number; total_steps: number; fingerprint: Record<string, unknown> };
    try {
      state = JSON.parse(readFileSync(join(dir, STATE), "utf8"));
    } catch (e) {
      throw new ArgumentError(`--resume: ${join(dir, STATE)} is unreadable: ${(e as Error).message}`);
    }
    const want = JSON.stringify(this.fp()), have = JSON.stringify(state.fingerprint);
    if (want !== have) {
      const a = this.fp(), b = state.fingerprint;
      const diff = Object.keys(a).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
      throw new ArgumentError(`--resume ${dir}: the checkpoint was made with other settings (${diff.join(", ")} differ); resume with the same base, data and hyperparameters`);
    }
    const ps = new SafetensorsFile(join(dir, "params.safetensors"));
    const os = new SafetensorsFile(join(dir, "optimizer.safetensors"));
    try {
      for (const p of this.model.trainable()) {
        for (const [f, name, buf] of [[ps, p.name, p.value!], [os, `${p.name}.exp_avg`, p.m!], [os, `${p.name}.exp_avg_sq`, p.v!]] as const) {
          const t = f.tensor(name);
          if (!t) throw new ModelError(`${dir}: tensor ${name} is missing from the checkpoint`);
          const n = t.shape.reduce((a, b) => a * b, 1);
          if (n !== buf.n || t.dtype !== "F32") throw new ModelError(`${dir}: tensor ${name} is ${t.dtype} [${t.shape.join(", ")}], expected F32 with ${buf.n} values`);
          f.readF32(name, buf.f);
        }
      }
    } finally {
      ps.close();
      os.close();
    }
    this.step = state.step;
    // metrics: keep what was logged up to the checkpoint
    if (existsSync(this.metricsPath)) {
      const kept = readFileSync(this.metricsPath, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Metric).filter((m) => m.step <= this.step);
      this.history = kept;
      writeFileSync(this.metricsPath, kept.map((m) => JSON.stringify(m) + "\n").join(""));
    }
    this.print(`resumed from ${dir} at step ${this.step}/${this.totalSteps}\n`);
  }

  /** The final outputs: adapter (PEFT), merged GGUF, loss curve. */
  async finish(): Promise<void> {
    const o = this.o;
    if (adapterExpressible(this.model)) {
      writeAdapter(o.out, this.model, o.base);
      this.print(`adapter: ${join(o.out, "adapter_model.safetensors")} (PEFT)\n`);
    }
    const mergeTo = o.mergeTo ?? (adapterExpressible(this.model) ? undefined : join(o.out, "model.gguf"));
    if (mergeTo) {
      writeMergedGguf(mergeTo, this.reader, this.model, o.mergeType, o.name);
      this.print(`model: ${mergeTo}\n`);
    }
    await this.drawLossCurve();
  }

  close(): void {
    this.mem?.close();
    this.reader?.close();
  }
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s) || s < 0) return "?";
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}
