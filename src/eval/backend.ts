/**
 * What an evaluation runs on: this engine (a loaded GGUF) or any OpenAI-compatible server's
 * `/v1/completions` (vLLM, llama.cpp's server, `cmx serve`).
 *
 * Both answer the same two questions: the score of each answer letter at the first generated
 * position, and a generated continuation. Locally the scores are logits (or the seed's processed
 * scores); over HTTP they are log-probabilities, which differ from the logits by the same constant
 * for every token of one position, so the argmax and the ranking are the same (C-Eval's sum of two
 * tokens shifts by twice the constant, for every letter alike).
 */
import { ArgumentError, CmxError, ContextFullError } from "../errors.js";
import { generate } from "../generate.js";
import type { LoadedModel } from "../model/load.js";
import type { KvType } from "../model/kv-cache.js";
import type { MixtralContext } from "../model/mixtral.js";
import type { SamplingParams } from "../sampling/index.js";
import type { SpmTokenizer } from "../tokenizer/spm.js";
import { LETTERS, argmaxFirst, letterScores, letterTokens, seedProcessedLogit, type Bench, type LetterTokens } from "./mcq.js";

export interface LetterResult {
  /** one score per letter A..D; higher is better (-Infinity: not available) */
  scores: number[];
  /** the most likely next token's text (what greedy decoding would write first) */
  top?: string;
}

export interface GenerateSpec {
  maxTokens: number;
  /** default greedy (temperature 0) */
  sampling?: Partial<SamplingParams>;
}

export interface EvalBackend {
  /** identity for the result cache (model file and size, or endpoint and model id) */
  readonly id: string;
  /** for the report */
  readonly label: string;
  /** prompts handled per call */
  readonly parallel: number;
  /** the model's chat template is Mixtral-Instruct-like ([INST]); null: unknown */
  readonly looksInstruct: boolean | null;
  scoreLetters(prompts: string[], bench: Bench, opts?: { seedScores?: boolean }): Promise<LetterResult[]>;
  generate(prompts: string[], spec: GenerateSpec): Promise<string[]>;
  /** prompt length in tokens, BOS included, when the backend can tell */
  countTokens?(prompt: string): number;
  /** the context size prompts must fit in, when known */
  readonly contextSize?: number;
  close(): void;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Tokens of a prompt as the seed's Hugging Face tokenizer gives them: BOS, and "<s>"-style text parsed. */
export function encodePrompt(tok: SpmTokenizer, text: string): number[] {
  return tok.encode(text, { addBos: true, parseSpecial: true });
}

// ---- this engine ----------------------------------------------------------------------------------

export interface LocalOptions {
  nCtx: number;
  kvType?: KvType;
  /** llama.cpp's float arithmetic bit for bit */
  exact?: boolean;
  /** sequences evaluated together in one forward step (default 4) */
  parallel?: number;
}

/** Rows per batched step beyond which a sequence's new tokens are first fed on their own. */
const BATCH_TAIL = 256;

export class LocalBackend implements EvalBackend {
  readonly id: string;
  readonly label: string;
  readonly parallel: number;
  readonly looksInstruct: boolean;
  readonly contextSize: number;
  private readonly slots: MixtralContext[] = [];
  private readonly letterIds = new Map<Bench, LetterTokens>();

  constructor(readonly loaded: LoadedModel, private readonly opts: LocalOptions) {
    this.parallel = Math.max(1, opts.parallel ?? 4);
    this.contextSize = opts.nCtx;
    this.id = `local:${loaded.model.config.name}:${loaded.fileSize}`;
    this.label = `${loaded.path} (${loaded.model.config.name})`;
    this.looksInstruct = (loaded.chatTemplate ?? "").includes("[INST]");
  }

  get tokenizer(): SpmTokenizer {
    return this.loaded.tokenizer;
  }

  countTokens(prompt: string): number {
    return encodePrompt(this.tokenizer, prompt).length;
  }

  private slot(i: number): MixtralContext {
    while (this.slots.length <= i) this.slots.push(this.loaded.model.newContext({ nCtx: this.opts.nCtx, kvType: this.opts.kvType ?? "f16", ...(this.opts.exact ? { exact: true } : {}) }));
    return this.slots[i]!;
  }

  private tooLong(n: number): never {
    throw new ContextFullError(`a prompt of ${n} tokens does not fit the context of ${this.opts.nCtx} (raise -c up to the model's trained context, use fewer --shots, or --fit)`);
  }

  /**
   * Logits after the last token of each sequence (at most `parallel` at once): every slot keeps its
   * last sequence in its cache, so only what follows the common prefix (the shared few-shot
   * history) is evaluated; the new tokens of all slots go through the model in one batched step.
   */
  lastLogits(seqs: number[][]): Float32Array[] {
    if (seqs.length > this.parallel) throw new ArgumentError(`internal: ${seqs.length} sequences for ${this.parallel} slots`);
    const segs = seqs.map((t, i) => {
      if (t.length > this.opts.nCtx) this.tooLong(t.length);
      const ctx = this.slot(i);
      let common = 0;
      while (common < ctx.tokens.length && common < t.length && ctx.tokens[common] === t[common]) common++;
      if (common === t.length) common--;
      ctx.truncate(common);
      let rest = t.slice(common);
      if (rest.length > BATCH_TAIL) {
        ctx.eval(rest.slice(0, rest.length - BATCH_TAIL), { logits: "none" });
        rest = rest.slice(rest.length - BATCH_TAIL);
      }
      return { ctx, tokens: rest, logitRows: [rest.length - 1] };
    });
    return this.loaded.model.forwardBatch(segs);
  }

  async scoreLetters(prompts: string[], bench: Bench, opts: { seedScores?: boolean } = {}): Promise<LetterResult[]> {
    let ids = this.letterIds.get(bench);
    if (!ids) this.letterIds.set(bench, (ids = letterTokens(this.tokenizer, bench)));
    const out: LetterResult[] = [];
    for (let b = 0; b < prompts.length; b += this.parallel) {
      const toks = prompts.slice(b, b + this.parallel).map((p) => encodePrompt(this.tokenizer, p));
      const logits = this.lastLogits(toks);
      logits.forEach((l, i) => {
        const f = opts.seedScores ? seedProcessedLogit(l, toks[i]!) : (id: number) => l[id]!;
        out.push({ scores: letterScores(f, ids!), top: this.tokenizer.tokenToPiece(argmaxFirst(l)) });
      });
      await tick();
    }
    return out;
  }

  async generate(prompts: string[], spec: GenerateSpec): Promise<string[]> {
    const out: string[] = [];
    for (const p of prompts) {
      const toks = encodePrompt(this.tokenizer, p);
      if (toks.length > this.opts.nCtx) this.tooLong(toks.length);
      const r = await generate(this.slot(0), this.tokenizer, toks, { maxTokens: spec.maxTokens, sampling: spec.sampling ?? { temperature: 0 } });
      out.push(this.tokenizer.decode(r.tokens, { skipSpecial: true }));
    }
    return out;
  }

  close(): void {
    for (const c of this.slots) c.dispose();
    this.slots.length = 0;
  }
}

// ---- an OpenAI-compatible server ----------------------------------------------------------------------

export interface EndpointOptions {
  /** server root or its /v1 */
  url: string;
  apiKey?: string;
  /** model id to send; default: the first of GET /v1/models */
  model?: string;
  /** concurrent requests (default 4) */
  parallel?: number;
  /** per request (default 600 s) */
  timeoutMs?: number;
  fetchImpl?: typeof fetch;
}

interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
}
interface CompletionChoice { index?: number; text: string; logprobs?: CompletionLogprobs | null; finish_reason?: string }
interface CompletionResponse { choices: CompletionChoice[]; usage?: { prompt_tokens?: number; completion_tokens?: number } }

export class EndpointError extends CmxError {
  constructor(message: string) {
    super("E_ENDPOINT", message);
    this.name = "EndpointError";
  }
}

/** Run fn over items with at most `limit` in flight; results in order. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export class EndpointBackend implements EvalBackend {
  readonly parallel: number;
  readonly looksInstruct = null;
  private readonly base: string;
  private model: string | undefined;
  private readonly fetch: typeof fetch;
  /** candidate scores that could not be read (the prompt + letter tokenized differently) */
  unverified = 0;
  private singlePrompts = false;
  private echoTokens = 0;

  constructor(private readonly opts: EndpointOptions) {
    let u = opts.url.trim().replace(/\/+$/, "");
    if (!/^https?:\/\//.test(u)) throw new ArgumentError(`--endpoint: expected an http(s) URL, got "${opts.url}"`);
    u = u.replace(/\/v1$/, "");
    this.base = u;
    this.model = opts.model;
    this.parallel = Math.max(1, opts.parallel ?? 4);
    this.fetch = opts.fetchImpl ?? fetch;
  }

  get id(): string {
    return `endpoint:${this.base}:${this.model ?? "?"}`;
  }

  get label(): string {
    return `${this.base} (model ${this.model ?? "?"})`;
  }

  private async request(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (this.opts.apiKey) headers["Authorization"] = `Bearer ${this.opts.apiKey}`;
    for (let attempt = 0; ; attempt++) {
      let res: Response;
      try {
        res = await this.fetch(`${this.base}${path}`, {
          method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(this.opts.timeoutMs ?? 600_000),
        });
      } catch (e) {
        const err = e as Error & { cause?: { code?: string } };
        if (attempt < 3 && err.name !== "TimeoutError") { await new Promise((r) => setTimeout(r, 500 * 2 ** attempt)); continue; }
        throw new EndpointError(`${method} ${this.base}${path}: ${err.cause?.code ?? err.message}`);
      }
      if ((res.status === 429 || res.status === 503) && attempt < 6) {
        await res.arrayBuffer().catch(() => undefined);
        const after = Number(res.headers.get("retry-after"));
        await new Promise((r) => setTimeout(r, Number.isFinite(after) && after > 0 ? Math.min(after, 30) * 1000 : 250 * 2 ** attempt));
        continue;
      }
      const text = await res.text();
      if (!res.ok) throw new EndpointError(`${method} ${this.base}${path}: HTTP ${res.status}: ${text.slice(0, 400)}`);
      try {
        return JSON.parse(text);
      } catch {
        throw new EndpointError(`${method} ${this.base}${path}: the answer is not JSON: ${text.slice(0, 200)}`);
      }
    }
  }

  /** Pick the model id from GET /v1/models unless one was given. */
  async init(): Promise<void> {
    if (this.model) return;
    const j = await this.request("GET", "/v1/models") as { data?: { id?: string }[] };
    const id = j?.data?.[0]?.id;
    if (typeof id !== "string") throw new EndpointError(`GET ${this.base}/v1/models lists no model; give one with --api-model`);
    this.model = id;
  }

  private async complete(body: Record<string, unknown>): Promise<CompletionResponse> {
    await this.init();
    const j = await this.request("POST", "/v1/completions", { model: this.model, ...body }) as CompletionResponse;
    if (!j || !Array.isArray(j.choices) || j.choices.length === 0) throw new EndpointError(`POST ${this.base}/v1/completions: no choices in the answer`);
    return j;
  }

  async scoreLetters(prompts: string[], bench: Bench, opts: { seedScores?: boolean } = {}): Promise<LetterResult[]> {
    if (opts.seedScores) throw new ArgumentError("--seed-scores needs the raw logits: it works with a local model, not with --endpoint");
    return mapLimit(prompts, this.parallel, (p) => this.scoreOne(p, bench));
  }

  /**
   * The letters' log-probabilities read from the server's echo of the prompt: one request with the
   * prompt followed by each candidate (" A".." D", and "A".."D" for C-Eval/CMMLU), echo, logprobs;
   * the candidate's log-probability is the echoed one at the prompt's length. This is exact on any
   * server (prompt log-probabilities are the model's, before any sampling penalty or top-k cut),
   * and it is checked: every candidate must tokenize as the same prompt tokens plus its own token.
   */
  private async scoreOne(prompt: string, bench: Bench): Promise<LetterResult> {
    const keys = (l: string) => (bench === "mmlu" ? [` ${l}`] : [` ${l}`, l]);
    const cand = LETTERS.flatMap((l) => keys(l));
    // max_tokens 0 (nothing generated, only the prompt scored), else 1 for servers that refuse 0
    const body = { max_tokens: this.echoTokens, temperature: 0, logprobs: 1, echo: true };
    let lps: (CompletionLogprobs | null | undefined)[];
    if (!this.singlePrompts) {
      try {
        const r = await this.complete({ prompt: cand.map((k) => prompt + k), ...body });
        lps = cand.map((_, i) => (r.choices.find((c) => c.index === i) ?? r.choices[i])?.logprobs);
      } catch (e) {
        if (!(e instanceof EndpointError) || !/HTTP 4\d\d/.test(e.message)) throw e;
        if (this.echoTokens === 0 && /max_tokens/.test(e.message)) this.echoTokens = 1;
        else this.singlePrompts = true; // a server that takes one prompt per request
        return this.scoreOne(prompt, bench);
      }
    } else {
      lps = await Promise.all(cand.map(async (k) => (await this.complete({ prompt: prompt + k, ...body })).choices[0]!.logprobs));
    }
    for (const lp of lps) {
      if (!lp || !Array.isArray(lp.tokens) || !Array.isArray(lp.token_logprobs)) {
        throw new EndpointError(`POST ${this.base}/v1/completions: no logprobs in the answer (the server must support "logprobs" with "echo")`);
      }
    }
    const t0 = lps[0]!.tokens, t1 = lps[1]!.tokens;
    let n = 0;
    while (n < t0.length && n < t1.length && t0[n] === t1[n]) n++;
    const got = cand.map((k, i) => {
      const lp = lps[i]!;
      const ok = lp.tokens.length > n && lp.tokens[n] === k && t0.slice(0, n).every((t, j) => lp.tokens[j] === t);
      const v = ok ? lp.token_logprobs[n] : null;
      if (typeof v === "number") return v;
      this.unverified++;
      return -Infinity;
    });
    const per = bench === "mmlu" ? 1 : 2;
    const scores = LETTERS.map((_, li) => got.slice(li * per, li * per + per).reduce((a, b) => a + b, 0));
    return { scores };
  }

  async generate(prompts: string[], spec: GenerateSpec): Promise<string[]> {
    const s = spec.sampling ?? { temperature: 0 };
    return mapLimit(prompts, this.parallel, async (prompt) => {
      const r = await this.complete({
        prompt, max_tokens: spec.maxTokens, temperature: s.temperature ?? 0,
        ...(s.topP !== undefined ? { top_p: s.topP } : {}), ...(s.seed !== undefined ? { seed: s.seed } : {}),
      });
      return r.choices[0]!.text ?? "";
    });
  }

  close(): void {}
}
