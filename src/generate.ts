/**
 * prompt -> tokens -> forward -> sample -> stop -> text, streaming. Reuses the KV cache for the
 * longest common prefix with what the context already holds (multi-turn chat re-evaluates only
 * the new turn).
 */
import { StopMatcher } from "./chat/stop.js";
import { ContextFullError } from "./errors.js";
import type { MixtralContext } from "./model/mixtral.js";
import { Sampler, type SamplingParams } from "./sampling/index.js";
import type { SpmTokenizer } from "./tokenizer/spm.js";

export type FinishReason = "stop" | "length" | "abort";

export interface GenerateOptions {
  /** maximum new tokens (-1: until the context is full) */
  maxTokens?: number;
  sampling?: Partial<SamplingParams>;
  stop?: string[];
  signal?: AbortSignal;
  /** called with each piece of text as soon as it is final */
  onText?: (text: string) => void;
  /** called with each generated token id and its logits (before sampling) */
  onToken?: (token: number, logits: Float32Array) => void;
  /** when false, hitting the context size throws instead of finishing with "length" */
  stopAtContextEnd?: boolean;
}

export interface GenerateResult {
  text: string;
  tokens: number[];
  finishReason: FinishReason;
  promptTokens: number;
  /** prompt tokens that were taken from the cache instead of evaluated */
  cachedTokens: number;
  promptMs: number;
  genMs: number;
  seed: number;
}

const yieldToEventLoop = () => new Promise<void>((r) => setImmediate(r));

/** Evaluate `prompt` in ctx (reusing the cached prefix) and return the logits of its last token. */
export function ingestPrompt(ctx: MixtralContext, prompt: number[]): { logits: Float32Array; cached: number } {
  if (prompt.length === 0) throw new ContextFullError("the prompt is empty: nothing to continue");
  if (prompt.length > ctx.nCtx) {
    throw new ContextFullError(`the prompt is ${prompt.length} tokens, longer than the context size ${ctx.nCtx} (raise it with -c)`);
  }
  const common = ctx.reusablePrefix(prompt);
  ctx.truncate(common);
  const logits = ctx.eval(prompt.slice(common), { logits: "last" });
  return { logits, cached: common };
}

export async function generate(ctx: MixtralContext, tokenizer: SpmTokenizer, prompt: number[], opts: GenerateOptions = {}): Promise<GenerateResult> {
  const t0 = performance.now();
  let { logits, cached } = ingestPrompt(ctx, prompt);
  const t1 = performance.now();
  const sampler = new Sampler(opts.sampling ?? {});
  const stops = new StopMatcher(opts.stop ?? []);
  const decoder = tokenizer.createStreamDecoder();
  const maxTokens = opts.maxTokens ?? -1;
  const out: number[] = [];
  let text = "";
  let finishReason: FinishReason = "length";
  let stoppedByString = false;
  const emit = (s: string) => {
    if (!s) return;
    text += s;
    opts.onText?.(s);
  };
  for (;;) {
    if (opts.signal?.aborted) { finishReason = "abort"; break; }
    if (maxTokens >= 0 && out.length >= maxTokens) { finishReason = "length"; break; }
    if (ctx.nPast >= ctx.nCtx) {
      // prompt + completion never exceed the context
      if (opts.stopAtContextEnd === false) throw new ContextFullError(`context is full (${ctx.nCtx} tokens)`);
      finishReason = "length";
      break;
    }
    const token = sampler.sample(logits, ctx.tokens);
    opts.onToken?.(token, logits);
    if (tokenizer.isEog(token)) { finishReason = "stop"; break; }
    out.push(token);
    const r = stops.push(decoder.push(token));
    emit(r.emit);
    if (r.stopped) { finishReason = "stop"; stoppedByString = true; break; }
    logits = ctx.eval([token], { logits: "last" });
    await yieldToEventLoop();
  }
  if (!stoppedByString) {
    const r = stops.push(decoder.flush());
    emit(r.emit);
    if (!r.stopped) emit(stops.flush());
  }
  return {
    text, tokens: out, finishReason, promptTokens: prompt.length, cachedTokens: cached,
    promptMs: t1 - t0, genMs: performance.now() - t1, seed: sampler.seed,
  };
}
