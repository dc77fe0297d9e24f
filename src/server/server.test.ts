/**
 * End-to-end tests of the HTTP API with plain fetch: shapes, every error path, the queue (429),
 * disconnects, continuous batching, security (API key, CORS) and metrics.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../model/default-model.js";
import { loadModel, type LoadedModel } from "../model/load.js";
import { startServer, type RunningServer } from "./server.js";
import { readSse, testModelPath } from "./testing.js";

let loaded: LoadedModel;
let main: RunningServer, tight: RunningServer, keyed: RunningServer;
const KEY = "sk-test-0123456789";

before(async () => {
  loaded = loadModel(testModelPath(), { threads: 1 });
  const common = { loaded, host: "127.0.0.1", port: 0, nCtx: 256, closeModel: false, webRoot: null } as const;
  main = await startServer({ ...common, parallel: 2, queueLimit: 4, maxBodyBytes: 64 * 1024 });
  tight = await startServer({ ...common, parallel: 1, queueLimit: 0 });
  keyed = await startServer({ ...common, parallel: 1, apiKey: KEY, cors: "http://example.test" });
});

after(async () => {
  await Promise.all([main?.close(), tight?.close(), keyed?.close()]);
  loaded?.model.close();
});

const post = (s: RunningServer, path: string, body: unknown, init: RequestInit = {}) =>
  fetch(`${s.url}${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: typeof body === "string" ? body : JSON.stringify(body), ...init });

const hello = [{ role: "user", content: "Hello, who are you?" }];

test("GET /health and /v1/models", async () => {
  const h = await (await fetch(`${main.url}/health`)).json() as Record<string, unknown>;
  assert.equal(h.status, "ok");
  assert.equal(h.slots_idle, 2);
  const m = await (await fetch(`${main.url}/v1/models`)).json() as { object: string; data: { id: string; object: string; owned_by: string }[] };
  assert.equal(m.object, "list");
  assert.equal(m.data.length, 1);
  assert.equal(m.data[0]!.object, "model");
  const one = await fetch(`${main.url}/v1/models/${m.data[0]!.id}`);
  assert.equal(one.status, 200);
  assert.equal((await fetch(`${main.url}/v1/models/gpt-4`)).status, 404);
});

test("chat completion: OpenAI shape, usage, finish_reason length", async () => {
  const r = await post(main, "/v1/chat/completions", { model: "x", messages: hello, max_tokens: 6, temperature: 0 });
  assert.equal(r.status, 200);
  const j = await r.json() as any;
  assert.match(j.id, /^chatcmpl-/);
  assert.equal(j.object, "chat.completion");
  assert.ok(Number.isInteger(j.created));
  assert.equal(j.choices.length, 1);
  assert.equal(j.choices[0].message.role, "assistant");
  assert.equal(typeof j.choices[0].message.content, "string");
  assert.ok(["stop", "length"].includes(j.choices[0].finish_reason));
  assert.ok(j.usage.prompt_tokens > 5);
  assert.ok(j.usage.completion_tokens <= 6);
  assert.equal(j.usage.total_tokens, j.usage.prompt_tokens + j.usage.completion_tokens);
});

test("chat completion: streaming with include_usage ends with data: [DONE]", async () => {
  const r = await post(main, "/v1/chat/completions", { messages: hello, max_tokens: 5, stream: true, stream_options: { include_usage: true } });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /text\/event-stream/);
  const chunks: any[] = [];
  let doneSeen = false;
  await readSse(r, (d) => { if (d === "[DONE]") doneSeen = true; else chunks.push(d); });
  assert.ok(doneSeen);
  assert.equal(chunks[0].choices[0].delta.role, "assistant");
  assert.ok(chunks.every((c) => c.object === "chat.completion.chunk" && c.id === chunks[0].id));
  const finish = chunks.find((c) => c.choices[0]?.finish_reason);
  assert.ok(["stop", "length"].includes(finish.choices[0].finish_reason));
  const last = chunks.at(-1);
  assert.deepEqual(last.choices, []);
  assert.ok(last.usage.completion_tokens >= 1 && last.usage.completion_tokens <= 5);
});

test("stop strings cut the output before them", async () => {
  const body = { prompt: "Once upon a time", max_tokens: 12, temperature: 0 };
  const free = await (await post(main, "/v1/completions", body)).json() as any;
  const text: string = free.choices[0].text;
  assert.ok(text.length > 4, text);
  const stop = text.slice(3, 5);
  const cut = await (await post(main, "/v1/completions", { ...body, stop: [stop, "never-there"] })).json() as any;
  assert.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, "stop");
});

test("completions: echo + logprobs + max_tokens 0 scores the prompt", async () => {
  const r = await post(main, "/v1/completions", { prompt: "The cat sat on the mat", max_tokens: 0, echo: true, logprobs: 3 });
  const j = await r.json() as any;
  assert.equal(j.object, "text_completion");
  const c = j.choices[0];
  assert.equal(c.text, "The cat sat on the mat");
  assert.equal(c.finish_reason, "length");
  const lp = c.logprobs;
  assert.equal(lp.tokens.length, j.usage.prompt_tokens);
  assert.equal(lp.token_logprobs[0], null);
  assert.ok(lp.token_logprobs.slice(1).every((x: number) => x < 0 && Number.isFinite(x)));
  assert.ok(lp.top_logprobs.slice(1).every((d: Record<string, number>) => Object.keys(d).length >= 1 && Object.keys(d).length <= 3));
  for (let i = 1; i < lp.text_offset.length; i++) assert.ok(lp.text_offset[i] >= lp.text_offset[i - 1]);
  assert.equal(c.text.slice(lp.text_offset[2]).startsWith("cat") || c.text.slice(lp.text_offset[2]).startsWith(" cat"), true);
  assert.equal(j.usage.completion_tokens, 0);
});

test("completions: token-array prompt, n > 1, seed reproducible, logprobs of generated tokens", async () => {
  const body = { prompt: [1, 415, 5255, 2995], max_tokens: 4, n: 3, seed: 42, temperature: 1, logprobs: 2 };
  const a = await (await post(main, "/v1/completions", body)).json() as any;
  const b = await (await post(main, "/v1/completions", body)).json() as any;
  assert.equal(a.choices.length, 3);
  assert.deepEqual(a.choices.map((c: any) => c.index), [0, 1, 2]);
  assert.deepEqual(a.choices.map((c: any) => c.text), b.choices.map((c: any) => c.text));
  for (const c of a.choices) {
    assert.equal(c.logprobs.tokens.length, c.logprobs.token_logprobs.length);
    assert.ok(c.logprobs.token_logprobs.every((x: number) => x <= 0));
  }
  assert.equal(a.usage.prompt_tokens, 4);
});

test("completions: streaming", async () => {
  const r = await post(main, "/v1/completions", { prompt: "Hello", max_tokens: 4, stream: true });
  let text = "", finish = "", done = false;
  await readSse(r, (d: any) => {
    if (d === "[DONE]") { done = true; return; }
    text += d.choices[0].text;
    if (d.choices[0].finish_reason) finish = d.choices[0].finish_reason;
  });
  assert.ok(done && ["stop", "length"].includes(finish));
});

test("embeddings: L2-normalised, one per input, float and base64", async () => {
  const r = await post(main, "/v1/embeddings", { input: ["hello world", "another text"] });
  const j = await r.json() as any;
  assert.equal(j.object, "list");
  assert.equal(j.data.length, 2);
  const v: number[] = j.data[0].embedding;
  assert.equal(v.length, loaded.model.config.nEmbd);
  assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4);
  assert.notDeepEqual(j.data[0].embedding, j.data[1].embedding);
  assert.ok(j.usage.prompt_tokens > 2);
  const b = await (await post(main, "/v1/embeddings", { input: "hello world", encoding_format: "base64" })).json() as any;
  const buf = Buffer.from(b.data[0].embedding, "base64");
  const f = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  f.forEach((x, i) => assert.ok(Math.abs(x - v[i]!) < 1e-5));
});

test("response_format json_object and json_schema: the output parses", async () => {
  const a = await (await post(main, "/v1/chat/completions", { messages: hello, max_tokens: 40, response_format: { type: "json_object" } })).json() as any;
  const obj = JSON.parse(a.choices[0].message.content);
  assert.equal(typeof obj, "object");
  const schema = { type: "object", properties: { answer: { type: "string", maxLength: 20 }, score: { type: "integer" } }, required: ["answer", "score"], additionalProperties: false };
  const b = await (await post(main, "/v1/chat/completions", { messages: hello, max_tokens: 40, response_format: { type: "json_schema", json_schema: { name: "r", schema, strict: true } } })).json() as any;
  const v = JSON.parse(b.choices[0].message.content);
  assert.deepEqual(Object.keys(v), ["answer", "score"]);
  assert.ok(Number.isInteger(v.score));
  const bad = await post(main, "/v1/chat/completions", { messages: hello, response_format: { type: "json_schema", json_schema: { schema: { type: "string", format: "email" } } } });
  assert.equal(bad.status, 400);
  assert.match(((await bad.json()) as any).error.message, /"format" is not supported/);
});

test("400: an unsupported field is named", async () => {
  for (const [path, body, field] of [
    ["/v1/chat/completions", { messages: hello, tools: [{ type: "function" }] }, "tools"],
    ["/v1/chat/completions", { messages: hello, logit_bias: { "1": 5 } }, "logit_bias"],
    ["/v1/completions", { prompt: "x", best_of: 2 }, "best_of"],
    ["/v1/embeddings", { input: "x", dimensions: 8 }, "dimensions"],
  ] as const) {
    const r = await post(main, path, body);
    assert.equal(r.status, 400);
    const e = (await r.json()) as any;
    assert.equal(e.error.param, field);
    assert.match(e.error.message, new RegExp(`"${field}"`));
  }
  const r = await post(main, "/v1/chat/completions", { messages: [{ role: "user", content: "x", name: "bob" }] });
  assert.equal(((await r.json()) as any).error.param, "messages[0].name");
  const t = await post(main, "/v1/chat/completions", { messages: hello, temperature: "hot" });
  assert.equal(t.status, 400);
  assert.match(((await t.json()) as any).error.message, /temperature/);
});

test("400: malformed JSON gives the position of the error", async () => {
  const r = await post(main, "/v1/chat/completions", '{"messages": [}');
  assert.equal(r.status, 400);
  const e = (await r.json()) as any;
  assert.match(e.error.message, /position 14 \(line 1, column 15\)/);
});

test("400: a prompt longer than the context states both lengths", async () => {
  const long = "lorem ipsum dolor sit amet ".repeat(60);
  const r = await post(main, "/v1/chat/completions", { messages: [{ role: "user", content: long }] });
  assert.equal(r.status, 400);
  const e = (await r.json()) as any;
  assert.match(e.error.message, /the prompt is \d+ tokens, longer than the context size 256/);
  assert.equal(e.error.code, "context_length_exceeded");
});

test("413: request bodies are size-limited", async () => {
  const big = JSON.stringify({ messages: [{ role: "user", content: "x".repeat(200 * 1024) }] });
  const r = await post(main, "/v1/chat/completions", big);
  assert.equal(r.status, 413);
  assert.match(((await r.json()) as any).error.message, /larger than the limit of 65536 bytes/);
  // the server still serves
  assert.equal((await fetch(`${main.url}/health`)).status, 200);
});

test("404 and 405", async () => {
  assert.equal((await fetch(`${main.url}/v1/nothing`)).status, 404);
  assert.equal((await fetch(`${main.url}/v1/chat/completions`)).status, 405);
});

test("401: the API key guards every endpoint but /health, compared in constant time", async () => {
  assert.equal((await fetch(`${keyed.url}/health`)).status, 200);
  const none = await fetch(`${keyed.url}/v1/models`);
  assert.equal(none.status, 401);
  assert.equal(((await none.json()) as any).error.type, "authentication_error");
  assert.equal((await fetch(`${keyed.url}/v1/models`, { headers: { Authorization: `Bearer ${KEY}x` } })).status, 401);
  assert.equal((await fetch(`${keyed.url}/metrics`)).status, 401);
  assert.equal((await post(keyed, "/v1/chat/completions", { messages: hello })).status, 401);
  assert.equal((await fetch(`${keyed.url}/v1/models`, { headers: { Authorization: `Bearer ${KEY}` } })).status, 200);
});

test("CORS is off by default and on for the --cors origin", async () => {
  const plain = await fetch(`${main.url}/v1/models`, { headers: { Origin: "http://evil.test" } });
  assert.equal(plain.headers.get("access-control-allow-origin"), null);
  assert.equal((await fetch(`${main.url}/v1/models`, { method: "OPTIONS" })).status, 405);
  const pre = await fetch(`${keyed.url}/v1/chat/completions`, { method: "OPTIONS", headers: { Origin: "http://example.test", "Access-Control-Request-Method": "POST" } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "http://example.test");
  assert.match(pre.headers.get("access-control-allow-headers")!, /Authorization/);
  const other = await fetch(`${keyed.url}/health`, { headers: { Origin: "http://evil.test" } });
  assert.equal(other.headers.get("access-control-allow-origin"), null);
});

/** A streamed request that is known to run to max_tokens (greedy), for the queue tests. */
async function longStream(s: RunningServer, signal: AbortSignal): Promise<Response> {
  const r = await post(s, "/v1/completions", { prompt: "Once upon a time", max_tokens: 200, temperature: 0, stream: true }, { signal });
  assert.equal(r.status, 200);
  return r;
}

async function firstChunk(r: Response): Promise<void> {
  const reader = r.body!.getReader();
  await reader.read();
  reader.releaseLock();
}

test("429 with Retry-After when the slots and the queue are full; a disconnect frees the slot at once", async () => {
  const ac = new AbortController();
  const r = await longStream(tight, ac.signal);
  await firstChunk(r);
  const busy = await post(tight, "/v1/chat/completions", { messages: hello, max_tokens: 2 });
  assert.equal(busy.status, 429);
  assert.ok(Number(busy.headers.get("retry-after")) >= 1);
  assert.equal(((await busy.json()) as any).error.code, "queue_full");
  ac.abort();
  const t0 = Date.now();
  for (;;) {
    const h = (await (await fetch(`${tight.url}/health`)).json()) as any;
    if (h.slots_processing === 0) break;
    assert.ok(Date.now() - t0 < 2000, "the slot is freed after the client left");
    await new Promise((res) => setTimeout(res, 10));
  }
  const ok = await post(tight, "/v1/chat/completions", { messages: hello, max_tokens: 2 });
  assert.equal(ok.status, 200);
  const metrics = await (await fetch(`${tight.url}/metrics`)).text();
  assert.match(metrics, /cmx_requests_total\{endpoint="\/v1\/completions",status="499"\} 1/);
});

test("continuous batching: a second stream joins a running one and both progress", async () => {
  const events: string[] = [];
  const run = async (name: string, n: number) => {
    const r = await post(main, "/v1/completions", { prompt: `Story ${name}:`, max_tokens: n, temperature: 0, stream: true });
    await readSse(r, (d: any) => { if (d !== "[DONE]" && d.choices[0]?.text) events.push(name); });
    events.push(`${name}-end`);
  };
  const a = run("A", 40);
  // B starts once A is generating
  while (!events.includes("A")) await new Promise((res) => setTimeout(res, 5));
  const b = run("B", 10);
  await Promise.all([a, b]);
  const firstB = events.indexOf("B"), endB = events.indexOf("B-end"), endA = events.indexOf("A-end");
  assert.ok(firstB > 0 && firstB < endA, `B started before A ended: ${events.join(" ")}`);
  assert.ok(endB < endA, `B (10 tokens) finished while A (40) was still running: ${events.join(" ")}`);
  assert.ok(events.slice(firstB, endB).includes("A"), `A kept generating while B ran: ${events.join(" ")}`);
  // some forward steps carried tokens of both requests
  const m = await (await fetch(`${main.url}/metrics`)).text();
  const le1 = Number(/cmx_batch_tokens_bucket\{le="1"\} (\d+)/.exec(m)![1]);
  const all = Number(/cmx_batch_tokens_count (\d+)/.exec(m)![1]);
  assert.ok(all - le1 > 0, "steps with more than one token");
});

test("GET /metrics: Prometheus text with requests, tokens, queue, TTFT, tokens/s", async () => {
  const r = await fetch(`${main.url}/metrics`);
  assert.match(r.headers.get("content-type")!, /text\/plain/);
  const m = await r.text();
  for (const name of ["cmx_requests_total", "cmx_prompt_tokens_total", "cmx_generated_tokens_total", "cmx_queue_length", "cmx_time_to_first_token_seconds_bucket", "cmx_tokens_per_second", "cmx_slots_busy"]) {
    assert.match(m, new RegExp(`^${name}`, "m"), name);
  }
  assert.ok(Number(/^cmx_generated_tokens_total (\d+)/m.exec(m)![1]) > 0);
});

test("cmx serve: binds loopback, prints the URL when ready, stops on SIGTERM", async () => {
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, "dist", "cli", "main.js"), "serve", "-m", testModelPath(), "--port", "0", "-t", "1", "-c", "128", "--parallel", "1", "--quiet"], { stdio: ["ignore", "pipe", "pipe"] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "", err = "";
      child.stdout.on("data", (d: Buffer) => { out += d; const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out); if (m) resolve(m[1]!); });
      child.stderr.on("data", (d: Buffer) => { err += d; });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const h = (await (await fetch(`${url}/health`)).json()) as { status: string };
    assert.equal(h.status, "ok");
  } finally {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
  }
});
