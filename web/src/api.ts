/** The page talks to the server through the public OpenAI-compatible API only. */
import { createParser, type EventSourceMessage } from "eventsource-parser";

export interface Msg {
  role: "system" | "user" | "assistant";
  content: string;
}

export interface Sampling {
  temperature: number;
  top_p: number;
  top_k: number;
  repetition_penalty: number;
  max_tokens: number;
}

export interface StreamStats {
  completionTokens: number;
  promptTokens: number;
  finishReason: string | null;
  /** ms from sending the request to the first token */
  ttftMs: number;
  /** ms from the first token to the end */
  genMs: number;
}

/** The server's `experts` extension: one generated token's routing. */
export interface ExpertEntry {
  token: string;
  id: number;
  text: string;
  /** per layer, the experts chosen for the token (best first) */
  layers: number[][];
  weights: number[][];
}

export interface ModelInfo {
  id: string;
  meta?: Record<string, number>;
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function headers(apiKey: string): Record<string, string> {
  const h: Record<string, string> = { "Content-Type": "application/json" };
  if (apiKey) h.Authorization = `Bearer ${apiKey}`;
  return h;
}

async function errorOf(res: Response): Promise<ApiError> {
  let msg = `${res.status} ${res.statusText}`;
  try {
    const j = (await res.json()) as { error?: { message?: string } };
    if (j.error?.message) msg = j.error.message;
  } catch { /* not JSON */ }
  return new ApiError(res.status, msg);
}

export async function listModels(apiKey: string): Promise<ModelInfo[]> {
  const res = await fetch("v1/models", { headers: headers(apiKey) });
  if (!res.ok) throw await errorOf(res);
  return ((await res.json()) as { data: ModelInfo[] }).data;
}

/**
 * Stream a chat completion; `onText` receives each piece of text. Resolves with the statistics
 * when the stream ends; rejects with an AbortError when `signal` aborts. With `onExperts`, the
 * server is asked for each token's experts (they arrive a token behind the text).
 */
export async function streamChat(
  messages: Msg[], sampling: Sampling, apiKey: string, signal: AbortSignal, onText: (t: string) => void,
  onExperts?: (entries: ExpertEntry[]) => void,
): Promise<StreamStats> {
  const t0 = performance.now();
  const res = await fetch("v1/chat/completions", {
    method: "POST",
    headers: headers(apiKey),
    body: JSON.stringify({ messages, ...sampling, stream: true, stream_options: { include_usage: true }, ...(onExperts ? { experts: true } : {}) }),
    signal,
  });
  if (!res.ok || !res.body) throw await errorOf(res);
  const stats: StreamStats = { completionTokens: 0, promptTokens: 0, finishReason: null, ttftMs: 0, genMs: 0 };
  let first = 0;
  let failure: Error | null = null;
  const parser = createParser({
    onEvent(ev: EventSourceMessage) {
      if (ev.data === "[DONE]") return;
      const d = JSON.parse(ev.data) as {
        error?: { message: string };
        choices?: { delta?: { content?: string }; finish_reason?: string | null; experts?: ExpertEntry[] }[];
        usage?: { completion_tokens: number; prompt_tokens: number } | null;
      };
      if (d.error) { failure = new ApiError(500, d.error.message); return; }
      const c = d.choices?.[0];
      const text = c?.delta?.content;
      if (text) {
        if (!first) { first = performance.now(); stats.ttftMs = first - t0; }
        onText(text);
      }
      if (c?.experts?.length) onExperts?.(c.experts);
      if (c?.finish_reason) stats.finishReason = c.finish_reason;
      if (d.usage) { stats.completionTokens = d.usage.completion_tokens; stats.promptTokens = d.usage.prompt_tokens; }
    },
  });
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(value);
  }
  if (failure) throw failure;
  stats.genMs = first ? performance.now() - first : 0;
  return stats;
}
