/**
 * The OpenAI-compatible HTTP server (node:http): routing, authentication, CORS, body limits,
 * the endpoints, and the web chat page's static files. Generation goes through the Scheduler
 * (continuous batching over --parallel slots).
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, extname, join, normalize, sep } from "node:path";
import { renderChat } from "../chat/template.js";
import { CmxError } from "../errors.js";
import { PACKAGE_ROOT } from "../model/default-model.js";
import type { KvType } from "../model/kv-cache.js";
import type { LoadedModel } from "../model/load.js";
import type { TokenLogprob } from "../sampling/index.js";
import { JsonSyntaxError, parseJsonBody } from "./json-body.js";
import { JsonConstraint } from "./json-constraint.js";
import { ServerMetrics } from "./metrics.js";
import {
  HttpError, bad, parseChatRequest, parseCompletionRequest, parseEmbeddingRequest, type Body, type GenParams,
} from "./requests.js";
import { QueueFullError, Scheduler, type Job, type JobResult, type JobSpec, type TokenEvent, type TokenExperts } from "./scheduler.js";
import { TokenTable } from "./token-text.js";

export interface ServerOptions {
  loaded: LoadedModel;
  /** the id reported by /v1/models (default: the file name without .gguf) */
  modelId?: string;
  host?: string;
  /** 0: any free port */
  port?: number;
  apiKey?: string;
  parallel?: number;
  /** context size of each slot */
  nCtx?: number;
  kvType?: KvType;
  exact?: boolean;
  /** allowed origin for CORS ("*" for any); CORS headers are sent only when set */
  cors?: string;
  /** jobs that may wait for a slot before requests get 429 */
  queueLimit?: number;
  maxBodyBytes?: number;
  /** folder of the built web page (default: the package's dist/web); null: no page */
  webRoot?: string | null;
  /** close the model when the server closes (default true) */
  closeModel?: boolean;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  port: number;
  server: Server;
  scheduler: Scheduler;
  metrics: ServerMetrics;
  close(): Promise<void>;
}

export const DEFAULT_PORT = 19327;
export const DEFAULT_MAX_BODY = 4 * 1024 * 1024;

const MIME: Record<string, string> = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon", ".json": "application/json", ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8", ".map": "application/json",
};

const PAGE_CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

function newId(prefix: string): string {
  return prefix + randomBytes(12).toString("base64url");
}

function sendJson(res: ServerResponse, status: number, obj: unknown, headers: Record<string, string> = {}): void {
  const body = JSON.stringify(obj);
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), ...headers });
  res.end(body);
}

function sendError(res: ServerResponse, e: HttpError): void {
  if (res.headersSent) return;
  sendJson(res, e.status, { error: { message: e.message, type: e.type, param: e.param, code: e.code } }, e.headers);
}

function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, `the request body is larger than the limit of ${limit} bytes`, null, "invalid_request_error", "body_too_large", { Connection: "close" });
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) {
      req.resume();
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0, over = false;
    req.on("data", (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > limit) { over = true; chunks.length = 0; reject(tooLarge()); return; }
      chunks.push(c);
    });
    req.on("end", () => { if (!over) resolve(Buffer.concat(chunks).toString("utf8")); });
    req.on("error", (e) => reject(e));
  });
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const { loaded } = opts;
  const { model, tokenizer } = loaded;
  const modelId = opts.modelId ?? basename(loaded.path).replace(/\.gguf$/i, "");
  const created = Math.floor(Date.now() / 1000);
  const nCtx = opts.nCtx ?? Math.min(model.config.nCtxTrain, 4096);
  const parallel = opts.parallel ?? 4;
  const scheduler = new Scheduler(model, tokenizer, {
    parallel, nCtx, queueLimit: opts.queueLimit ?? 64, ...(opts.kvType ? { kvType: opts.kvType } : {}), ...(opts.exact ? { exact: true } : {}),
  });
  const metrics = new ServerMetrics(scheduler);
  scheduler.onStep = (s) => metrics.onStep(s);
  const table = new TokenTable(tokenizer);
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const keyHash = opts.apiKey !== undefined ? createHash("sha256").update(opts.apiKey).digest() : null;
  const webRoot = opts.webRoot === null ? null : opts.webRoot ?? join(PACKAGE_ROOT, "dist", "web");
  const bosText = tokenizer.vocab.bosId >= 0 ? tokenizer.tokenToPiece(tokenizer.vocab.bosId) : "";
  const eosText = tokenizer.vocab.eosId >= 0 ? tokenizer.tokenToPiece(tokenizer.vocab.eosId) : "";
  const log = opts.log ?? (() => {});

  const authorized = (req: IncomingMessage): boolean => {
    if (!keyHash) return true;
    const h = req.headers.authorization ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    // compare fixed-length digests in constant time (no early exit on the first differing byte)
    const given = createHash("sha256").update(m ? m[1]! : "\u0000no-key").digest();
    return timingSafeEqual(given, keyHash) && m !== null;
  };

  const corsHeaders = (req: IncomingMessage): Record<string, string> => {
    if (!opts.cors) return {};
    const origin = req.headers.origin;
    if (opts.cors === "*") return { "Access-Control-Allow-Origin": "*" };
    if (origin === opts.cors) return { "Access-Control-Allow-Origin": origin, Vary: "Origin" };
    return { Vary: "Origin" };
  };

  const checkLength = (n: number, what: string, param: string) => {
    if (n > nCtx) bad(`${what} is ${n} tokens, longer than the context size ${nCtx} (start the server with a larger -c)`, param, "context_length_exceeded");
    if (n === 0) bad(`${what} is empty`, param);
  };

  const submit = (specs: JobSpec[]): Job[] => {
    try {
      return scheduler.submit(specs);
    } catch (e) {
      if (e instanceof QueueFullError) {
        throw new HttpError(429, e.message, null, "server_busy", "queue_full", { "Retry-After": String(e.retryAfterS) });
      }
      throw e;
    }
  };

  /** Run jobs; cancel them all when the client goes away before they finish. */
  const watch = (res: ServerResponse, jobs: () => Job[]) => {
    res.on("close", () => {
      if (res.writableFinished) return;
      for (const j of jobs()) scheduler.cancel(j);
    });
  };

  const sse = (res: ServerResponse) => {
    res.writeHead(200, { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", Connection: "keep-alive", "X-Accel-Buffering": "no" });
    res.flushHeaders();
    return (obj: unknown) => { if (!res.writableEnded && !res.destroyed) res.write(`data: ${JSON.stringify(obj)}\n\n`); };
  };

  const streamError = (res: ServerResponse, e: Error) => {
    const err = toHttpError(e);
    if (!res.headersSent) return sendError(res, err);
    if (!res.writableEnded) res.end(`data: ${JSON.stringify({ error: { message: err.message, type: err.type, param: err.param, code: err.code } })}\n\n`);
  };

  const isMoe = model.config.nExpert > 0 && model.weights.layers.every((l) => l.gateInp);
  const checkExperts = (g: GenParams) => {
    if (g.experts && !isMoe) bad('"experts" needs a mixture-of-experts model; this one is dense', "experts");
  };

  const genSpec = (g: GenParams, prompt: number[], index: number, extra: Partial<JobSpec>): Omit<JobSpec, "onDone" | "onError"> => {
    const sampling = { ...g.sampling };
    if (sampling.seed !== undefined && sampling.seed !== -1) sampling.seed = sampling.seed + index;
    return {
      prompt, maxTokens: g.maxTokens, sampling, stop: g.stop, logprobs: null,
      ...(g.schema ? { constraint: new JsonConstraint(g.schema, table) } : {}),
      ...(g.experts ? { experts: true } : {}),
      ...extra,
    };
  };

  /** The `experts` extension: one generated token's routing as sent to clients. */
  const expertsJson = (e: TokenExperts) => ({
    token: table.text(e.id), id: e.id, text: e.text, layers: e.layers,
    weights: e.weights.map((ws) => ws.map((w) => Math.round(w * 1e4) / 1e4)),
  });
  type ExpertsJson = ReturnType<typeof expertsJson>;
  /** `experts` for a choice: all of them (not streamed) or those not yet sent (streamed) */
  const withExperts = (list: ExpertsJson[] | undefined, stream: boolean) =>
    !list || (stream && list.length === 0) ? {} : { experts: stream ? list.splice(0) : list };

  const usageOf = (results: JobResult[], promptTokens: number, cached: number) => ({
    prompt_tokens: promptTokens,
    completion_tokens: results.reduce((a, r) => a + r.completionTokens, 0),
    total_tokens: promptTokens + results.reduce((a, r) => a + r.completionTokens, 0),
    prompt_tokens_details: { cached_tokens: cached },
  });

  const chatLogprob = (id: number, logprob: number, top: TokenLogprob[]) => ({
    token: table.text(id), logprob, bytes: table.byteList(id),
    top_logprobs: top.map((t) => ({ token: table.text(t.token), logprob: t.logprob, bytes: table.byteList(t.token) })),
  });

  // ---- /v1/chat/completions ----
  const chat = (body: Body, res: ServerResponse) => {
    const r = parseChatRequest(body);
    checkExperts(r);
    let text: string;
    try {
      text = renderChat(r.messages, { ...(loaded.chatTemplate ? { template: loaded.chatTemplate } : {}), bosToken: bosText, eosToken: eosText, addGenerationPrompt: true });
    } catch (e) {
      return bad((e as Error).message, "messages");
    }
    const prompt = tokenizer.encode(text, { addBos: false, parseSpecial: true });
    checkLength(prompt.length, "the prompt", "messages");
    const id = newId("chatcmpl-"), now = Math.floor(Date.now() / 1000);
    const base = { id, created: now, model: modelId, system_fingerprint: null };
    const results: JobResult[] = [];
    const logs: ReturnType<typeof chatLogprob>[][] = Array.from({ length: r.n }, () => []);
    const experts: ExpertsJson[][] | null = r.experts ? Array.from({ length: r.n }, () => []) : null;
    let remaining = r.n, failed = false;
    let jobs: Job[] = [];
    let emit: ((o: unknown) => void) | null = null;
    const done = () => {
      const cached = Math.min(...results.map((x) => x.cachedTokens));
      const usage = usageOf(results, prompt.length, cached);
      if (r.stream) {
        if (r.includeUsage) emit!({ ...base, object: "chat.completion.chunk", choices: [], usage });
        res.end("data: [DONE]\n\n");
        return;
      }
      sendJson(res, 200, {
        ...base, object: "chat.completion",
        choices: results.map((x, i) => ({
          index: i, message: { role: "assistant", content: x.text, refusal: null },
          logprobs: r.logprobs ? { content: logs[i], refusal: null } : null, finish_reason: x.finishReason,
          ...withExperts(experts?.[i], false),
        })),
        usage,
      });
    };
    const specs: JobSpec[] = Array.from({ length: r.n }, (_, i) => ({
      ...genSpec(r, prompt, i, { logprobs: r.logprobs ? r.topLogprobs : null }),
      onToken: (ev: TokenEvent) => {
        const lp = ev.id >= 0 && ev.logprob !== undefined ? chatLogprob(ev.id, ev.logprob, ev.top ?? []) : null;
        if (lp) logs[i]!.push(lp);
        if (r.stream && (ev.text || lp || experts?.[i]!.length)) {
          emit!({ ...base, object: "chat.completion.chunk", choices: [{ index: i, delta: { content: ev.text }, logprobs: lp ? { content: [lp], refusal: null } : null, finish_reason: null, ...withExperts(experts?.[i], true) }], ...(r.includeUsage ? { usage: null } : {}) });
        }
      },
      onExperts: (e: TokenExperts) => { experts?.[i]!.push(expertsJson(e)); },
      onDone: (x: JobResult) => {
        results[i] = x;
        metrics.onJob(x);
        if (r.stream) emit!({ ...base, object: "chat.completion.chunk", choices: [{ index: i, delta: {}, logprobs: null, finish_reason: x.finishReason, ...withExperts(experts?.[i], true) }], ...(r.includeUsage ? { usage: null } : {}) });
        if (--remaining === 0 && !failed) done();
      },
      onError: (e: Error) => {
        if (failed) return;
        failed = true;
        for (const j of jobs) scheduler.cancel(j);
        streamError(res, e);
      },
    }));
    jobs = submit(specs);
    watch(res, () => jobs);
    if (r.stream) {
      emit = sse(res);
      for (let i = 0; i < r.n; i++) {
        emit({ ...base, object: "chat.completion.chunk", choices: [{ index: i, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }], ...(r.includeUsage ? { usage: null } : {}) });
      }
    }
  };

  // ---- /v1/completions ----
  const completions = (body: Body, res: ServerResponse) => {
    const r = parseCompletionRequest(body, tokenizer.nVocab);
    checkExperts(r);
    const prompts = r.prompts.map((p) => (typeof p === "string" ? tokenizer.encode(p, { addBos: tokenizer.vocab.addBos, parseSpecial: true }) : p));
    prompts.forEach((p, i) => checkLength(p.length, prompts.length > 1 ? `prompt ${i}` : "the prompt", "prompt"));
    const id = newId("cmpl-"), now = Math.floor(Date.now() / 1000);
    const base = { id, object: "text_completion", created: now, model: modelId, system_fingerprint: null };
    const nChoices = prompts.length * r.n;
    const results: JobResult[] = [];
    const texts: string[] = new Array(nChoices).fill("");
    const experts: ExpertsJson[][] | null = r.experts ? Array.from({ length: nChoices }, () => []) : null;
    type Lp = { tokens: string[]; token_logprobs: (number | null)[]; top_logprobs: (Record<string, number> | null)[]; text_offset: number[] };
    const lps: Lp[] = Array.from({ length: nChoices }, () => ({ tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] }));
    const topDict = (top: TokenLogprob[]) => Object.fromEntries(top.map((t) => [table.text(t.token), t.logprob]));
    let remaining = nChoices, failed = false;
    let jobs: Job[] = [];
    let emit: ((o: unknown) => void) | null = null;
    const wantLp = r.logprobs !== null;

    /** echo: the prompt's text and (with logprobs) its tokens, offsets and logprobs */
    const echoPart = (pi: number, res0: JobResult | null): { text: string; lp: Lp } => {
      const p = prompts[pi]!, src = r.prompts[pi]!;
      const text = typeof src === "string" ? src : tokenizer.decode(p);
      const lp: Lp = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
      if (wantLp) {
        const dec = tokenizer.createStreamDecoder({ skipSpecial: true });
        let off = 0;
        p.forEach((t, k) => {
          lp.tokens.push(table.text(t));
          lp.text_offset.push(off);
          off += dec.push(t).length;
          const e = res0?.promptLogprobs?.[k];
          lp.token_logprobs.push(e?.logprob ?? null);
          lp.top_logprobs.push(e && e.logprob !== null ? topDict(e.top) : null);
        });
      }
      return { text, lp };
    };
    const echoes: ({ text: string; lp: Lp } | null)[] = new Array(nChoices).fill(null);

    const done = () => {
      const usage = usageOf(results, prompts.reduce((a, p) => a + p.length, 0), results.reduce((a, x) => a + x.cachedTokens, 0));
      if (r.stream) {
        if (r.includeUsage) emit!({ ...base, choices: [], usage });
        res.end("data: [DONE]\n\n");
        return;
      }
      sendJson(res, 200, {
        ...base,
        choices: results.map((x, c) => {
          const e = echoes[c];
          const lp = wantLp ? (e ? { tokens: [...e.lp.tokens, ...lps[c]!.tokens], token_logprobs: [...e.lp.token_logprobs, ...lps[c]!.token_logprobs], top_logprobs: [...e.lp.top_logprobs, ...lps[c]!.top_logprobs], text_offset: [...e.lp.text_offset, ...lps[c]!.text_offset] } : lps[c]) : null;
          return { index: c, text: (e ? e.text : "") + x.text, logprobs: lp, finish_reason: x.finishReason, ...withExperts(experts?.[c], false) };
        }),
        usage,
      });
    };
    const specs: JobSpec[] = [];
    prompts.forEach((p, pi) => {
      for (let i = 0; i < r.n; i++) {
        const c = pi * r.n + i;
        let offset = 0;
        let echoSent = false;
        const sendEcho = (res0: JobResult | null) => {
          if (!r.echo || echoSent) return;
          echoSent = true;
          const e = echoPart(pi, res0);
          echoes[c] = e;
          offset = e.text.length;
          if (r.stream) emit!({ ...base, choices: [{ index: c, text: e.text, logprobs: wantLp ? e.lp : null, finish_reason: null }] });
        };
        specs.push({
          ...genSpec(r, p, c, { logprobs: r.logprobs, promptLogprobs: r.echo && wantLp }),
          onToken: (ev) => {
            if (r.echo && !echoSent) sendEcho(null);
            const one: Lp = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
            if (wantLp && ev.id >= 0) {
              one.tokens.push(table.text(ev.id));
              one.token_logprobs.push(ev.logprob ?? null);
              one.top_logprobs.push(topDict(ev.top ?? []));
              one.text_offset.push(offset);
              const l = lps[c]!;
              l.tokens.push(...one.tokens); l.token_logprobs.push(...one.token_logprobs); l.top_logprobs.push(...one.top_logprobs); l.text_offset.push(...one.text_offset);
            }
            texts[c] += ev.text;
            offset += ev.text.length;
            if (r.stream && (ev.text || one.tokens.length || experts?.[c]!.length)) emit!({ ...base, choices: [{ index: c, text: ev.text, logprobs: wantLp ? one : null, finish_reason: null, ...withExperts(experts?.[c], true) }] });
          },
          onExperts: (e) => { experts?.[c]!.push(expertsJson(e)); },
          onDone: (x) => {
            results[c] = x;
            metrics.onJob(x);
            sendEcho(x);
            if (r.stream) emit!({ ...base, choices: [{ index: c, text: "", logprobs: null, finish_reason: x.finishReason, ...withExperts(experts?.[c], true) }] });
            if (--remaining === 0 && !failed) done();
          },
          onError: (e) => {
            if (failed) return;
            failed = true;
            for (const j of jobs) scheduler.cancel(j);
            streamError(res, e);
          },
        });
      }
    });
    jobs = submit(specs);
    watch(res, () => jobs);
    if (r.stream) emit = sse(res);
  };

  // ---- /v1/embeddings ----
  const embeddings = (body: Body, res: ServerResponse) => {
    const r = parseEmbeddingRequest(body, tokenizer.nVocab);
    const inputs = r.inputs.map((x) => (typeof x === "string" ? tokenizer.encode(x, { addBos: tokenizer.vocab.addBos }) : x));
    inputs.forEach((p, i) => checkLength(p.length, inputs.length > 1 ? `input ${i}` : "the input", "input"));
    const out: Float32Array[] = [];
    let remaining = inputs.length, failed = false;
    let jobs: Job[] = [];
    const specs: JobSpec[] = inputs.map((p, i) => ({
      prompt: p, maxTokens: 0, sampling: {}, stop: [], logprobs: null, embed: true,
      onDone: (x) => {
        out[i] = x.embedding!;
        metrics.onJob(x);
        if (--remaining > 0 || failed) return;
        const total = inputs.reduce((a, q) => a + q.length, 0);
        sendJson(res, 200, {
          object: "list", model: modelId,
          data: out.map((v, index) => ({
            object: "embedding", index,
            embedding: r.base64 ? Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString("base64") : Array.from(v),
          })),
          usage: { prompt_tokens: total, total_tokens: total },
        });
      },
      onError: (e) => {
        if (failed) return;
        failed = true;
        for (const j of jobs) scheduler.cancel(j);
        streamError(res, e);
      },
    }));
    jobs = submit(specs);
    watch(res, () => jobs);
  };

  const modelCard = () => ({
    id: modelId, object: "model", created, owned_by: "cmx",
    meta: {
      n_ctx: nCtx, n_ctx_train: model.config.nCtxTrain, n_vocab: model.config.nVocab, n_embd: model.config.nEmbd,
      n_layer: model.config.nLayer, n_expert: model.config.nExpert, n_expert_used: model.config.nExpertUsed,
      n_params_file_bytes: loaded.fileSize, parallel,
    },
  });

  const serveStatic = (path: string, res: ServerResponse, head: boolean): boolean => {
    if (!webRoot) return false;
    let rel = decodeURIComponent(path);
    if (rel === "/" || rel === "/index.html") rel = "/index.html";
    const file = normalize(join(webRoot, rel));
    if (!file.startsWith(normalize(webRoot) + sep) || !existsSync(file) || !statSync(file).isFile()) return false;
    const data = readFileSync(file);
    const hashed = rel.startsWith("/assets/");
    res.writeHead(200, {
      "Content-Type": MIME[extname(file)] ?? "application/octet-stream", "Content-Length": data.length,
      "Cache-Control": hashed ? "public, max-age=31536000, immutable" : "no-cache",
      "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
      ...(extname(file) === ".html" ? { "Content-Security-Policy": PAGE_CSP, "X-Frame-Options": "DENY" } : {}),
    });
    res.end(head ? undefined : data);
    return true;
  };

  const route = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const method = req.method ?? "GET";
    if (path === "/health" || path === "/v1/health") {
      if (method !== "GET" && method !== "HEAD") throw new HttpError(405, `${method} ${path}: use GET`);
      return sendJson(res, 200, { status: "ok", slots_idle: scheduler.slots.length - scheduler.activeSlots, slots_processing: scheduler.activeSlots, queue: scheduler.queueLength });
    }
    const api = path.startsWith("/v1/") || path === "/metrics";
    if (!api) {
      if ((method === "GET" || method === "HEAD") && serveStatic(path, res, method === "HEAD")) return;
      if (path === "/" && webRoot) throw new HttpError(404, "the web page is not built (run npm run build)", null, "not_found_error");
      throw new HttpError(404, `no such endpoint: ${method} ${path}`, null, "not_found_error");
    }
    if (!authorized(req)) {
      throw new HttpError(401, "missing or wrong API key: send the header Authorization: Bearer KEY", null, "authentication_error", "invalid_api_key", { "WWW-Authenticate": "Bearer" });
    }
    if (method === "GET") {
      if (path === "/v1/models") return sendJson(res, 200, { object: "list", data: [modelCard()] });
      if (path === `/v1/models/${modelId}`) return sendJson(res, 200, modelCard());
      if (path.startsWith("/v1/models/")) throw new HttpError(404, `no such model: ${path.slice(11)} (this server has ${modelId})`, "model", "not_found_error", "model_not_found");
      if (path === "/metrics") {
        const text = await metrics.text();
        res.writeHead(200, { "Content-Type": metrics.contentType });
        res.end(text);
        return;
      }
    }
    const handlers: Record<string, (b: Body, r: ServerResponse) => void> = {
      "/v1/chat/completions": chat, "/v1/completions": completions, "/v1/embeddings": embeddings,
    };
    const h = handlers[path];
    if (!h) throw new HttpError(404, `no such endpoint: ${method} ${path}`, null, "not_found_error");
    if (method !== "POST") throw new HttpError(405, `${method} ${path}: use POST`, null, "invalid_request_error", null, { Allow: "POST" });
    const text = await readBody(req, maxBody);
    let body: unknown;
    try {
      body = parseJsonBody(text);
    } catch (e) {
      if (e instanceof JsonSyntaxError) throw new HttpError(400, e.message, null, "invalid_request_error", "invalid_json");
      throw e;
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) bad("the request body must be a JSON object");
    h(body as Body, res);
  };

  const endpointLabel = (path: string) =>
    ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/models", "/health", "/metrics"].includes(path) ? path
      : path.startsWith("/v1/models/") ? "/v1/models/{id}" : path.startsWith("/v1/") ? "other" : "static";

  const server = createServer((req, res) => {
    const t0 = performance.now();
    let path = "/";
    try { path = new URL(req.url ?? "/", "http://localhost").pathname; } catch { /* keep "/" */ }
    for (const [k, v] of Object.entries(corsHeaders(req))) res.setHeader(k, v);
    res.on("close", () => {
      const status = res.writableFinished ? String(res.statusCode) : "499";
      metrics.requests.inc({ endpoint: endpointLabel(path), status });
      log(`${req.method} ${path} ${status} ${(performance.now() - t0).toFixed(0)} ms`);
    });
    if (req.method === "OPTIONS") {
      if (opts.cors) {
        res.writeHead(204, { "Access-Control-Allow-Methods": "GET, POST, OPTIONS", "Access-Control-Allow-Headers": "Authorization, Content-Type", "Access-Control-Max-Age": "600" });
        res.end();
      } else {
        sendError(res, new HttpError(405, "CORS is not enabled on this server (start it with --cors ORIGIN)", null, "invalid_request_error", null, { Allow: "GET, POST" }));
      }
      return;
    }
    route(req, res, path).catch((e: unknown) => {
      const err = toHttpError(e);
      if (err.status >= 500) log(`internal error on ${req.method} ${path}: ${(e as Error)?.stack ?? String(e)}`);
      if (res.headersSent) {
        if (!res.writableEnded) res.end();
        return;
      }
      sendError(res, err);
    });
  });
  server.requestTimeout = 0; // long generations stream for as long as they take
  server.headersTimeout = 60_000;

  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? DEFAULT_PORT, host, () => { server.off("error", reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  let closed = false;
  return {
    url: `http://${shownHost}:${port}`, port, server, scheduler, metrics,
    close: async () => {
      if (closed) return;
      closed = true;
      scheduler.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (opts.closeModel !== false) model.close();
    },
  };
}

function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof QueueFullError) return new HttpError(429, e.message, null, "server_busy", "queue_full", { "Retry-After": String(e.retryAfterS) });
  if (e instanceof CmxError) return new HttpError(400, e.message, null, "invalid_request_error", e.code);
  return new HttpError(500, "internal server error", null, "server_error");
}
