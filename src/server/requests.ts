/**
 * Validation of the OpenAI request bodies. Every field is checked; a field the server does not
 * implement is a 400 that names it (a null value counts as absent, as in OpenAI's API).
 */
import type { ChatMessage } from "../chat/template.js";
import type { SamplingParams } from "../sampling/index.js";
import { compileSchema, jsonObjectSchema, type SchemaNode } from "./json-constraint.js";

export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null,
    readonly type = "invalid_request_error", readonly code: string | null = null, readonly headers: Record<string, string> = {}) {
    super(message);
    this.name = "HttpError";
  }
}

export const bad = (message: string, param: string | null = null, code: string | null = null): never => {
  throw new HttpError(400, message, param, "invalid_request_error", code);
};

export type Body = Record<string, unknown>;

/** The seed's defaults for max_tokens. */
export const DEFAULT_MAX_TOKENS = 512;
const MAX_N = 16;
const MAX_STOPS = 16;

function checkFields(body: Body, allowed: Set<string>, what: string): void {
  for (const [k, v] of Object.entries(body)) {
    if (v === null || allowed.has(k)) continue;
    bad(`unsupported field "${k}" in ${what} (this server does not implement it)`, k, "unsupported_field");
  }
}

function opt<T>(body: Body, key: string, check: (v: unknown, name: string) => T): T | undefined {
  const v = body[key];
  return v === undefined || v === null ? undefined : check(v, key);
}

export const numberIn = (min: number, max: number, int = false) => (v: unknown, name: string): number => {
  if (typeof v !== "number" || !Number.isFinite(v) || (int && !Number.isInteger(v))) bad(`"${name}" must be ${int ? "an integer" : "a number"}, got ${JSON.stringify(v)}`, name);
  const x = v as number;
  if (x < min || x > max) bad(`"${name}" must be between ${min} and ${max}, got ${x}`, name);
  return x;
};

const bool = (v: unknown, name: string): boolean => {
  if (typeof v !== "boolean") bad(`"${name}" must be true or false, got ${JSON.stringify(v)}`, name);
  return v as boolean;
};

function stops(v: unknown, name: string): string[] {
  const list = typeof v === "string" ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) bad(`"${name}" must be a string or an array of strings`, name);
  if ((list as string[]).length > MAX_STOPS) bad(`"${name}" may hold at most ${MAX_STOPS} strings`, name);
  return list as string[];
}

/** Fields shared by chat and text completions. */
export interface GenParams {
  stream: boolean;
  includeUsage: boolean;
  maxTokens: number;
  n: number;
  stop: string[];
  sampling: Partial<SamplingParams>;
  schema?: SchemaNode;
  /** extension: report the experts chosen for each generated token */
  experts: boolean;
}

const SAMPLING_FIELDS = ["temperature", "top_p", "top_k", "min_p", "repetition_penalty", "repeat_penalty", "repeat_last_n", "presence_penalty", "frequency_penalty", "seed"];

function genParams(body: Body, maxTokensMin: number): GenParams {
  const stream = opt(body, "stream", bool) ?? false;
  let includeUsage = false;
  const so = body.stream_options;
  if (so !== undefined && so !== null) {
    if (!stream) bad('"stream_options" is only allowed with "stream": true', "stream_options");
    if (typeof so !== "object" || Array.isArray(so)) bad('"stream_options" must be an object', "stream_options");
    for (const k of Object.keys(so as object)) if (k !== "include_usage") bad(`unsupported field "stream_options.${k}"`, `stream_options.${k}`, "unsupported_field");
    includeUsage = opt(so as Body, "include_usage", (v) => bool(v, "stream_options.include_usage")) ?? false;
  }
  const mt = opt(body, "max_tokens", numberIn(maxTokensMin, 1 << 20, true));
  const mct = opt(body, "max_completion_tokens", numberIn(maxTokensMin, 1 << 20, true));
  if (mt !== undefined && mct !== undefined && mt !== mct) bad('"max_tokens" and "max_completion_tokens" disagree; give one', "max_completion_tokens");
  const sampling: Partial<SamplingParams> = {};
  const set = <K extends keyof SamplingParams>(k: K, v: number | undefined) => { if (v !== undefined) sampling[k] = v as SamplingParams[K]; };
  set("temperature", opt(body, "temperature", numberIn(0, 2)));
  set("topP", opt(body, "top_p", numberIn(0, 1)));
  set("topK", opt(body, "top_k", numberIn(0, 1 << 20, true)));
  set("minP", opt(body, "min_p", numberIn(0, 1)));
  const rp = opt(body, "repetition_penalty", numberIn(0.01, 10));
  const rp2 = opt(body, "repeat_penalty", numberIn(0.01, 10));
  if (rp !== undefined && rp2 !== undefined && rp !== rp2) bad('"repetition_penalty" and "repeat_penalty" disagree; give one', "repeat_penalty");
  set("repeatPenalty", rp ?? rp2);
  set("repeatLastN", opt(body, "repeat_last_n", numberIn(-1, 1 << 20, true)));
  set("presencePenalty", opt(body, "presence_penalty", numberIn(-2, 2)));
  set("frequencyPenalty", opt(body, "frequency_penalty", numberIn(-2, 2)));
  set("seed", opt(body, "seed", numberIn(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true)));
  const out: GenParams = {
    stream, includeUsage,
    maxTokens: mt ?? mct ?? DEFAULT_MAX_TOKENS,
    n: opt(body, "n", numberIn(1, MAX_N, true)) ?? 1,
    stop: opt(body, "stop", stops) ?? [],
    sampling,
    experts: opt(body, "experts", bool) ?? false,
  };
  const rf = body.response_format;
  if (rf !== undefined && rf !== null) {
    const schema = responseFormat(rf);
    if (schema) out.schema = schema;
  }
  return out;
}

function responseFormat(rf: unknown): SchemaNode | undefined {
  if (typeof rf !== "object" || rf === null || Array.isArray(rf)) bad('"response_format" must be an object', "response_format");
  const o = rf as Body;
  const type = o.type;
  const only = (keys: string[]) => {
    for (const k of Object.keys(o)) if (!keys.includes(k)) bad(`unsupported field "response_format.${k}"`, `response_format.${k}`, "unsupported_field");
  };
  if (type === "text") { only(["type"]); return undefined; }
  if (type === "json_object") { only(["type"]); return jsonObjectSchema(); }
  if (type === "json_schema") {
    only(["type", "json_schema"]);
    const js = o.json_schema;
    if (typeof js !== "object" || js === null || Array.isArray(js)) bad('"response_format.json_schema" must be an object with a "schema"', "response_format.json_schema");
    const j = js as Body;
    for (const k of Object.keys(j)) {
      if (!["name", "description", "schema", "strict"].includes(k)) bad(`unsupported field "response_format.json_schema.${k}"`, `response_format.json_schema.${k}`, "unsupported_field");
    }
    if (j.schema === undefined || j.schema === null) bad('"response_format.json_schema.schema" is required', "response_format.json_schema.schema");
    try {
      return compileSchema(j.schema, "response_format.json_schema.schema");
    } catch (e) {
      return bad((e as Error).message, "response_format.json_schema.schema");
    }
  }
  return bad(`"response_format.type" must be "text", "json_object" or "json_schema", got ${JSON.stringify(type)}`, "response_format.type");
}

// ---- /v1/chat/completions ------------------------------------------------------------------------

const CHAT_FIELDS = new Set(["model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "n", "stop",
  "logprobs", "top_logprobs", "response_format", "user", "experts", ...SAMPLING_FIELDS]);

export interface ChatRequest extends GenParams {
  messages: ChatMessage[];
  logprobs: boolean;
  topLogprobs: number;
}

export function parseChatRequest(body: Body): ChatRequest {
  checkFields(body, CHAT_FIELDS, "a chat completion request");
  const msgs = body.messages;
  if (!Array.isArray(msgs) || msgs.length === 0) bad('"messages" must be a non-empty array', "messages");
  const messages = (msgs as unknown[]).map((m, i): ChatMessage => {
    const p = `messages[${i}]`;
    if (typeof m !== "object" || m === null || Array.isArray(m)) bad(`"${p}" must be an object`, p);
    const o = m as Body;
    for (const [k, v] of Object.entries(o)) {
      if (v !== null && !["role", "content"].includes(k)) bad(`unsupported field "${p}.${k}"`, `${p}.${k}`, "unsupported_field");
    }
    let role = o.role;
    if (role === "developer") role = "system";
    if (role !== "system" && role !== "user" && role !== "assistant") bad(`"${p}.role" must be "system", "user" or "assistant", got ${JSON.stringify(o.role)}`, `${p}.role`);
    let content = o.content;
    if (content === null || content === undefined) {
      if (role !== "assistant") bad(`"${p}.content" is required`, `${p}.content`);
      content = "";
    }
    if (Array.isArray(content)) {
      content = content.map((part: unknown, j) => {
        const pp = `${p}.content[${j}]`;
        const q = part as Body;
        if (typeof part !== "object" || part === null || q.type !== "text" || typeof q.text !== "string") {
          bad(`"${pp}" must be {"type":"text","text":...} (only text parts are supported, got type ${JSON.stringify(q?.type)})`, pp);
        }
        return q.text as string;
      }).join("\n");
    }
    if (typeof content !== "string") bad(`"${p}.content" must be a string or an array of text parts`, `${p}.content`);
    return { role: role as ChatMessage["role"], content: content as string };
  });
  const logprobs = opt(body, "logprobs", bool) ?? false;
  const topLogprobs = opt(body, "top_logprobs", numberIn(0, 20, true));
  if (topLogprobs !== undefined && !logprobs) bad('"top_logprobs" requires "logprobs": true', "top_logprobs");
  return { ...genParams(body, 1), messages, logprobs, topLogprobs: topLogprobs ?? 0 };
}

// ---- /v1/completions -------------------------------------------------------------------------------

const COMPLETION_FIELDS = new Set(["model", "prompt", "stream", "stream_options", "max_tokens", "n", "stop", "logprobs", "echo",
  "response_format", "user", "experts", ...SAMPLING_FIELDS]);

export interface CompletionRequest extends GenParams {
  /** each prompt as text or as token ids */
  prompts: (string | number[])[];
  /** null: no logprobs; k: the chosen token's and the k best */
  logprobs: number | null;
  echo: boolean;
}

function tokenArray(v: unknown, name: string, nVocab: number): number[] {
  if (!Array.isArray(v) || v.length === 0) bad(`"${name}" must be a non-empty array of token ids`, name);
  for (const t of v as unknown[]) {
    if (typeof t !== "number" || !Number.isInteger(t) || t < 0 || t >= nVocab) bad(`"${name}" holds ${JSON.stringify(t)}, not a token id (0..${nVocab - 1})`, name);
  }
  return v as number[];
}

/** string | string[] | number[] | number[][] -> a list of prompts. */
export function promptList(v: unknown, name: string, nVocab: number): (string | number[])[] {
  if (typeof v === "string") return [v];
  if (!Array.isArray(v) || v.length === 0) return bad(`"${name}" must be a string, an array of strings, an array of token ids or an array of such arrays`, name);
  if (v.every((x) => typeof x === "number")) return [tokenArray(v, name, nVocab)];
  if (v.every((x) => typeof x === "string")) return v as string[];
  if (v.every((x) => Array.isArray(x))) return v.map((x, i) => tokenArray(x, `${name}[${i}]`, nVocab));
  return bad(`"${name}" mixes strings, numbers and arrays`, name);
}

export function parseCompletionRequest(body: Body, nVocab: number): CompletionRequest {
  checkFields(body, COMPLETION_FIELDS, "a completion request");
  if (body.prompt === undefined || body.prompt === null) bad('"prompt" is required', "prompt");
  const prompts = promptList(body.prompt, "prompt", nVocab);
  if (prompts.length > MAX_N) bad(`at most ${MAX_N} prompts per request`, "prompt");
  const logprobs = opt(body, "logprobs", numberIn(0, 20, true)) ?? null;
  const echo = opt(body, "echo", bool) ?? false;
  const g = genParams(body, 0);
  if (prompts.length * g.n > MAX_N) bad(`prompts x n must be at most ${MAX_N}`, "n");
  return { ...g, prompts, logprobs, echo };
}

// ---- /v1/embeddings --------------------------------------------------------------------------------

const EMBEDDING_FIELDS = new Set(["model", "input", "encoding_format", "user"]);

export interface EmbeddingRequest {
  inputs: (string | number[])[];
  base64: boolean;
}

export function parseEmbeddingRequest(body: Body, nVocab: number): EmbeddingRequest {
  checkFields(body, EMBEDDING_FIELDS, "an embeddings request");
  if (body.input === undefined || body.input === null) bad('"input" is required', "input");
  const inputs = promptList(body.input, "input", nVocab);
  if (inputs.length > 256) bad("at most 256 inputs per request", "input");
  const fmt = body.encoding_format ?? "float";
  if (fmt !== "float" && fmt !== "base64") bad(`"encoding_format" must be "float" or "base64", got ${JSON.stringify(fmt)}`, "encoding_format");
  return { inputs, base64: fmt === "base64" };
}
