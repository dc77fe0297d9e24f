/**
 * Continuous batching over a fixed set of slots, each with its own context (KV cache).
 *
 * Every step is one `model.forwardBatch` call: the next token of every generating slot plus a
 * chunk of the prompt of slots that are still reading theirs. A request that arrives while
 * others generate takes a free slot at once and joins the next step; when no slot is free it
 * waits in a bounded queue. Steps run one per event-loop turn (setImmediate), so the HTTP
 * server keeps accepting requests, writing streamed tokens and noticing disconnects between
 * them; a cancelled job leaves its slot at once, and the slot goes to the next queued job.
 *
 * A slot keeps the tokens of its last job in its cache: a new job whose prompt starts the same
 * way (the next turn of a chat) reuses that prefix, and free slots are given to jobs by the
 * longest shared prefix.
 *
 * Jobs that ask for `experts` get, for each generated token, the experts the router chose for
 * that token in every layer (and their weights): the token's row of the `ffn_moe_topk` and
 * `ffn_moe_weights_norm` intermediates when the model reads the token, in the step after the one
 * that sampled it. The trace is collected only in steps that hold such a job; a job that ends
 * on a token it has not read yet (max_tokens, a stop string, a complete JSON value) reads it in
 * one more step so that its last token is routed too.
 */
import { StopMatcher } from "../chat/stop.js";
import { CmxError } from "../errors.js";
import type { KvType } from "../model/kv-cache.js";
import type { BatchSegment, Mixtral, MixtralContext, TraceFn } from "../model/mixtral.js";
import { Sampler, type SamplingParams, type TokenLogprob } from "../sampling/index.js";
import { logSumExp, topLogprobs } from "../sampling/logprobs.js";
import type { SpmTokenizer } from "../tokenizer/spm.js";
import type { JsonConstraint } from "./json-constraint.js";

export type FinishReason = "stop" | "length";

export interface TokenEvent {
  id: number;
  /** text that became final with this token (may be "" while a stop string is pending) */
  text: string;
  logprob?: number;
  top?: TokenLogprob[];
}

/** The routing of one generated token (jobs with `experts`). */
export interface TokenExperts {
  /** position of the token among the generated ones (0-based) */
  index: number;
  id: number;
  /** the text this token added to the answer before stop strings ("" while a character's bytes are incomplete) */
  text: string;
  /** per layer, the experts chosen for the token, best first (k each) */
  layers: number[][];
  /** per layer, their renormalised routing weights (same order) */
  weights: number[][];
}

export interface JobResult {
  finishReason: FinishReason;
  promptTokens: number;
  /** prompt tokens taken from the slot's cache */
  cachedTokens: number;
  completionTokens: number;
  text: string;
  /** from job submission to the first generated token (ms); undefined when none */
  ttftMs?: number;
  /** time spent generating after the prompt (ms) */
  genMs: number;
  seed: number;
  /** embeddings jobs: the L2-normalised mean of the final hidden states */
  embedding?: Float32Array;
  /** echo + logprobs: per prompt token, its logprob (null for the first) and the best alternatives */
  promptLogprobs?: { logprob: number | null; top: TokenLogprob[] }[];
}

export interface JobSpec {
  prompt: number[];
  /** new tokens at most (0: only read the prompt) */
  maxTokens: number;
  sampling: Partial<SamplingParams>;
  stop: string[];
  /** null: no logprobs; k >= 0: the chosen token's logprob and the k best */
  logprobs: number | null;
  /** logprobs for the prompt's tokens too (completions with echo) */
  promptLogprobs?: boolean;
  constraint?: JsonConstraint;
  /** an embeddings job: read the prompt, return the mean final hidden state */
  embed?: boolean;
  /** route every generated token and report it through onExperts (costs a trace per step) */
  experts?: boolean;
  onToken?: (ev: TokenEvent) => void;
  /** jobs with `experts`: a generated token's routing, once the model has read the token (in order) */
  onExperts?: (e: TokenExperts) => void;
  onDone: (r: JobResult) => void;
  onError: (e: Error) => void;
}

export class QueueFullError extends CmxError {
  constructor(readonly retryAfterS: number, message: string) {
    super("E_QUEUE_FULL", message);
    this.name = "QueueFullError";
  }
}

interface Slot {
  id: number;
  ctx: MixtralContext;
  job: Job | null;
  lastUsed: number;
}

export class Job {
  /** "tail": finished, reading its last token once more for its routing (jobs with experts) */
  phase: "queued" | "prompt" | "gen" | "tail" | "done" = "queued";
  slot: Slot | null = null;
  pos = 0;
  cached = 0;
  pending = -1;
  generated = 0;
  text = "";
  readonly submitted = performance.now();
  genStart = 0;
  ttftMs: number | undefined;
  sampler: Sampler;
  stops: StopMatcher;
  decoder: { push(id: number): string; flush(): string };
  embSum: Float64Array | null = null;
  embCount = 0;
  promptLp: { logprob: number | null; top: TokenLogprob[] }[] | null = null;
  /** experts: the decoded text of `pending` (the token the next step reads) and how many tokens were routed */
  pendingText = "";
  routed = 0;
  /** experts: how the job ends after its tail step */
  tail: { reason: FinishReason; byStopString: boolean } | null = null;

  constructor(readonly spec: JobSpec, tokenizer: SpmTokenizer) {
    this.sampler = new Sampler(spec.sampling);
    this.stops = new StopMatcher(spec.stop);
    this.decoder = tokenizer.createStreamDecoder();
  }
}

export interface SchedulerOptions {
  parallel: number;
  nCtx: number;
  kvType?: KvType;
  /** llama.cpp's float arithmetic bit for bit (src/model/mixtral.ts exact contexts) */
  exact?: boolean;
  /** jobs that may wait for a slot */
  queueLimit: number;
  /** prompt tokens read per step, all slots together */
  promptChunk?: number;
}

export interface StepStats {
  /** tokens in the step (prompt chunks and generated) */
  tokens: number;
  generated: number;
  ms: number;
}

export class Scheduler {
  readonly slots: Slot[];
  private readonly queue: Job[] = [];
  private scheduled = false;
  private closed = false;
  private readonly promptChunk: number;
  readonly nCtx: number;
  /** called after each step (metrics) */
  onStep?: (s: StepStats) => void;

  constructor(readonly model: Mixtral, readonly tokenizer: SpmTokenizer, readonly opts: SchedulerOptions) {
    this.nCtx = opts.nCtx;
    this.promptChunk = Math.max(1, opts.promptChunk ?? 128);
    this.slots = Array.from({ length: opts.parallel }, (_, id) => ({
      id, ctx: model.newContext({ nCtx: opts.nCtx, kvType: opts.kvType ?? "f16", ...(opts.exact ? { exact: true } : {}) }), job: null, lastUsed: 0,
    }));
  }

  get queueLength(): number {
    return this.queue.length;
  }

  get activeSlots(): number {
    return this.slots.filter((s) => s.job).length;
  }

  /** Submit the jobs of one request together: all are accepted, or none (QueueFullError). */
  submit(specs: JobSpec[]): Job[] {
    if (this.closed) throw new QueueFullError(5, "the server is shutting down");
    const free = this.slots.filter((s) => !s.job).length;
    const waiting = Math.max(0, this.queue.length + specs.length - free);
    if (waiting > this.opts.queueLimit) {
      throw new QueueFullError(this.retryAfter(), `the server is busy: ${this.opts.parallel} slot(s) in use and ${this.queue.length} request(s) waiting (queue limit ${this.opts.queueLimit}); retry later`);
    }
    const jobs = specs.map((s) => new Job(s, this.tokenizer));
    this.queue.push(...jobs);
    this.admit();
    this.wake();
    return jobs;
  }

  /** Stop a job now (client gone): its slot is free for the next job at once. */
  cancel(job: Job): void {
    if (job.phase === "done") return;
    job.phase = "done";
    const qi = this.queue.indexOf(job);
    if (qi >= 0) this.queue.splice(qi, 1);
    this.release(job);
  }

  close(): void {
    this.closed = true;
    for (const j of [...this.queue]) this.cancel(j);
    for (const s of this.slots) if (s.job) this.cancel(s.job);
    for (const s of this.slots) s.ctx.dispose();
  }

  private retryAfter(): number {
    return Math.max(1, Math.min(30, Math.ceil(this.queue.length / Math.max(1, this.opts.parallel)) + 1));
  }

  private release(job: Job): void {
    const slot = job.slot;
    if (slot && slot.job === job) {
      slot.job = null;
      slot.lastUsed = performance.now();
    }
    job.slot = null;
    this.admit();
  }

  /** Give free slots to waiting jobs, preferring the slot whose cache shares the longest prefix. */
  private admit(): void {
    while (this.queue.length) {
      const free = this.slots.filter((s) => !s.job);
      if (!free.length) return;
      const job = this.queue.shift()!;
      const reusable = !job.spec.embed && !job.spec.promptLogprobs;
      let best = free[0]!, bestCommon = -1;
      for (const s of free) {
        const common = reusable ? s.ctx.reusablePrefix(job.spec.prompt) : 0;
        if (common > bestCommon || (common === bestCommon && s.lastUsed < best.lastUsed)) { best = s; bestCommon = common; }
      }
      best.job = job;
      job.slot = best;
      job.phase = "prompt";
      const common = Math.max(0, bestCommon);
      best.ctx.truncate(common);
      job.pos = common;
      job.cached = common;
      if (job.spec.embed) { job.embSum = new Float64Array(this.model.config.nEmbd); }
      if (job.spec.promptLogprobs) job.promptLp = job.spec.prompt.map(() => ({ logprob: null, top: [] }));
    }
  }

  private wake(): void {
    if (this.scheduled || this.closed) return;
    if (!this.slots.some((s) => s.job)) return;
    this.scheduled = true;
    setImmediate(() => this.tick());
  }

  private tick(): void {
    this.scheduled = false;
    const t0 = performance.now();
    const segs: BatchSegment[] = [];
    const owners: { job: Job; kind: "gen" | "tail" | "prompt"; n: number }[] = [];
    // generating slots first (one token each), then prompt chunks, oldest job first
    const active = this.slots.map((s) => s.job).filter((j): j is Job => j !== null).sort((a, b) => a.submitted - b.submitted);
    for (const job of active) {
      if (job.phase !== "gen" && job.phase !== "tail") continue;
      const tail = job.phase === "tail";
      segs.push({ ctx: job.slot!.ctx, tokens: [job.pending], logitRows: tail ? [] : [0] });
      owners.push({ job, kind: tail ? "tail" : "gen", n: 1 });
    }
    let budget = this.promptChunk;
    for (const job of active) {
      if (job.phase !== "prompt" || (budget <= 0 && segs.length)) continue;
      const p = job.spec.prompt;
      const take = Math.max(1, Math.min(budget, p.length - job.pos));
      const tokens = p.slice(job.pos, job.pos + take);
      const last = job.pos + take >= p.length;
      const rows = job.spec.promptLogprobs ? tokens.map((_, i) => i) : last && !job.spec.embed ? [take - 1] : [];
      segs.push({ ctx: job.slot!.ctx, tokens, logitRows: rows });
      owners.push({ job, kind: "prompt", n: take });
      budget -= take;
    }
    if (!segs.length) return;

    const offs: number[] = [];
    let off = 0;
    for (const s of segs) { offs.push(off); off += s.tokens.length; }
    const traces: TraceFn[] = [];
    // experts: per owner that wants them, the routing of its one token, layer by layer
    const routes = owners.map((o) => (o.kind !== "prompt" && o.job.spec.experts
      ? { layers: new Array<number[]>(this.model.config.nLayer), weights: new Array<number[]>(this.model.config.nLayer) } : null));
    if (routes.some((r) => r)) {
      traces.push((name, data, _nTok, width) => {
        if (!name.startsWith("ffn_moe_")) return;
        const m = /^ffn_moe_(topk|weights_norm)-(\d+)$/.exec(name);
        if (!m) return;
        const l = Number(m[2]), into = m[1] === "topk" ? "layers" : "weights";
        routes.forEach((r, i) => {
          if (!r) return;
          const row = offs[i]! * width;
          r[into][l] = Array.from(data.subarray(row, row + width));
        });
      });
    }
    if (owners.some((o) => o.job.spec.embed)) {
      const E = this.model.config.nEmbd;
      traces.push((name, data) => {
        if (name !== "result_norm") return;
        owners.forEach((o, i) => {
          if (!o.job.spec.embed || !o.job.embSum) return;
          const sum = o.job.embSum;
          for (let r = 0; r < o.n; r++) {
            const base = (offs[i]! + r) * E;
            for (let j = 0; j < E; j++) sum[j]! += data[base + j]!;
          }
          o.job.embCount += o.n;
        });
      });
    }
    const trace: TraceFn | undefined = traces.length === 0 ? undefined : traces.length === 1 ? traces[0]
      : (name, data, nTok, width) => { for (const t of traces) t(name, data, nTok, width); };

    let outs: Float32Array[];
    try {
      outs = this.model.forwardBatch(segs, trace);
    } catch (e) {
      for (const o of owners) {
        o.job.slot?.ctx.truncate(0);
        this.fail(o.job, e as Error);
      }
      this.wake();
      return;
    }

    let generated = 0;
    owners.forEach((o, i) => {
      const job = o.job;
      if (job.phase === "done") return;
      const logits = outs[i]!;
      try {
        const route = routes[i];
        if (route) this.reportExperts(job, route);
        if (o.kind === "tail") return this.finish(job, job.tail!.reason, job.tail!.byStopString);
        if (o.kind === "gen") {
          generated++;
          this.sampleNext(job, logits);
          return;
        }
        const V = this.model.config.nVocab;
        if (job.promptLp) {
          const p = job.spec.prompt, k = job.spec.logprobs ?? 0;
          for (let r = 0; r < o.n; r++) {
            const at = job.pos + r + 1;
            if (at >= p.length) break;
            const row = logits.subarray(r * V, (r + 1) * V);
            const lse = logSumExp(row);
            job.promptLp[at] = { logprob: row[p[at]!]! - lse, top: k > 0 ? topLogprobs(row, k, lse) : [] };
          }
        }
        job.pos += o.n;
        if (job.pos < job.spec.prompt.length) return;
        job.phase = "gen";
        job.genStart = performance.now();
        if (job.spec.embed) return this.finishEmbedding(job);
        if (job.spec.maxTokens <= 0) return this.finish(job, "length");
        const last = job.spec.promptLogprobs ? logits.subarray((o.n - 1) * V, o.n * V) : logits;
        this.sampleNext(job, last);
      } catch (e) {
        this.fail(job, e as Error);
      }
    });
    this.onStep?.({ tokens: segs.reduce((a, s) => a + s.tokens.length, 0), generated, ms: performance.now() - t0 });
    this.wake();
  }

  private sampleNext(job: Job, logits: Float32Array): void {
    const ctx = job.slot!.ctx, spec = job.spec;
    const budget = Math.min(spec.maxTokens - job.generated, ctx.nCtx - ctx.nPast);
    if (budget <= 0) return this.finish(job, "length");
    let l = logits;
    const c = spec.constraint;
    if (c) {
      const topK = job.sampler.params.topK;
      const want = job.sampler.params.temperature <= 0 ? 8 : topK > 0 ? topK : 64;
      const ids = c.allowedTokens(logits, want, budget, (id) => this.tokenizer.isEog(id));
      if (!ids.length) return this.finish(job, "length");
      l = new Float32Array(logits.length).fill(-Infinity);
      for (const id of ids) l[id] = logits[id]!;
    }
    let token: number, info: { logprob: number; top: TokenLogprob[] } | undefined;
    if (spec.logprobs !== null) {
      const r = job.sampler.sampleWithInfo(l, ctx.tokens, spec.logprobs);
      token = r.token;
      info = { logprob: r.logprob, top: r.top };
    } else {
      token = job.sampler.sample(l, ctx.tokens);
    }
    if (job.ttftMs === undefined) job.ttftMs = performance.now() - job.submitted;
    if (this.tokenizer.isEog(token)) return this.finish(job, "stop");
    job.generated++;
    c?.accept(token);
    const piece = job.decoder.push(token);
    const r = job.stops.push(piece);
    job.text += r.emit;
    job.pending = token;
    job.pendingText = piece;
    spec.onToken?.({ id: token, text: r.emit, ...(info ? { logprob: info.logprob, top: info.top } : {}) });
    if (r.stopped) return this.end(job, "stop", true);
    if (c?.complete) return this.end(job, "stop");
    if (job.generated >= spec.maxTokens || ctx.nPast + 1 > ctx.nCtx) return this.end(job, "length");
  }

  /** Finish after a newly sampled token; a job with experts first reads that token (when the context has room). */
  private end(job: Job, reason: FinishReason, byStopString = false): void {
    const ctx = job.slot!.ctx;
    if (!job.spec.experts || job.phase === "done" || ctx.nPast + 1 > ctx.nCtx) return this.finish(job, reason, byStopString);
    job.phase = "tail";
    job.tail = { reason, byStopString };
  }

  private reportExperts(job: Job, route: { layers: number[][]; weights: number[][] }): void {
    if (job.phase === "done") return;
    const e: TokenExperts = { index: job.routed++, id: job.pending, text: job.pendingText, layers: route.layers, weights: route.weights };
    try { job.spec.onExperts?.(e); } catch { /* a callback's failure is not the scheduler's */ }
  }

  private finish(job: Job, reason: FinishReason, byStopString = false): void {
    if (!byStopString) {
      const r = job.stops.push(job.decoder.flush());
      const tail = r.emit + (r.stopped ? "" : job.stops.flush());
      if (tail) {
        job.text += tail;
        job.spec.onToken?.({ id: -1, text: tail });
      }
      if (r.stopped) reason = "stop";
    }
    job.phase = "done";
    const result: JobResult = {
      finishReason: reason, promptTokens: job.spec.prompt.length, cachedTokens: job.cached,
      completionTokens: job.generated, text: job.text, genMs: job.genStart ? performance.now() - job.genStart : 0,
      seed: job.sampler.seed,
      ...(job.ttftMs !== undefined ? { ttftMs: job.ttftMs } : {}),
      ...(job.promptLp ? { promptLogprobs: job.promptLp } : {}),
    };
    this.release(job);
    try { job.spec.onDone(result); } catch { /* a callback's failure is not the scheduler's */ }
  }

  private finishEmbedding(job: Job): void {
    const sum = job.embSum!, n = Math.max(1, job.embCount);
    const v = new Float32Array(sum.length);
    let norm = 0;
    for (let j = 0; j < sum.length; j++) { const x = sum[j]! / n; v[j] = x; norm += x * x; }
    norm = Math.sqrt(norm);
    if (norm > 0) for (let j = 0; j < v.length; j++) v[j] = v[j]! / norm;
    job.phase = "done";
    this.release(job);
    try {
      job.spec.onDone({ finishReason: "stop", promptTokens: job.spec.prompt.length, cachedTokens: 0, completionTokens: 0, text: "", genMs: 0, seed: 0, embedding: v });
    } catch { /* ignore */ }
  }

  private fail(job: Job, e: Error): void {
    if (job.phase === "done") return;
    job.phase = "done";
    this.release(job);
    try { job.spec.onError(e); } catch { /* ignore */ }
  }
}

