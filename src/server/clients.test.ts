/**
 * The real client libraries against the server: the official `openai` npm client and LangChain.js
 * (`ChatOpenAI` from @langchain/openai with configuration.baseURL), streaming and not.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { ChatOpenAI, OpenAIEmbeddings } from "@langchain/openai";
import { HumanMessage, SystemMessage } from "@langchain/core/messages";
import { z } from "zod";
import { loadModel, type LoadedModel } from "../model/load.js";
import { startServer, type RunningServer } from "./server.js";
import { testModelPath } from "./testing.js";

let loaded: LoadedModel;
let server: RunningServer;
let client: OpenAI;
let modelId: string;
const KEY = "sk-clients-test";

before(async () => {
  loaded = loadModel(testModelPath(), { threads: 1 });
  server = await startServer({ loaded, port: 0, parallel: 3, nCtx: 256, apiKey: KEY, webRoot: null });
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0 });
  modelId = (await client.models.list()).data[0]!.id;
});

after(async () => {
  await server?.close();
});

test("openai: models.list", async () => {
  const list = await client.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0]!.object, "model");
});

test("openai: chat.completions.create, not streamed, n=2, logprobs", async () => {
  const r = await client.chat.completions.create({
    model: modelId, messages: [{ role: "system", content: "You are terse." }, { role: "user", content: "Name a colour." }],
    max_tokens: 6, n: 2, seed: 7, temperature: 0.8, logprobs: true, top_logprobs: 2,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices.length, 2);
  for (const c of r.choices) {
    assert.equal(c.message.role, "assistant");
    assert.ok(["stop", "length"].includes(c.finish_reason));
    const lp = c.logprobs!.content!;
    assert.equal(lp.length, r.usage!.completion_tokens > 0 ? lp.length : 0);
    for (const t of lp) {
      assert.ok(t.logprob <= 0);
      assert.equal(t.top_logprobs.length, 2);
      assert.ok(Array.isArray(t.bytes));
    }
  }
  assert.ok(r.usage!.prompt_tokens > 0);
});

test("openai: chat.completions.create streamed, with usage", async () => {
  const stream = await client.chat.completions.create({
    model: modelId, messages: [{ role: "user", content: "Count to three." }], max_tokens: 8, stream: true, stream_options: { include_usage: true },
  });
  let text = "", finish: string | null = null, usage: OpenAI.CompletionUsage | undefined | null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    const c = chunk.choices[0];
    if (!c) continue;
    text += c.delta.content ?? "";
    finish = c.finish_reason ?? finish;
  }
  assert.ok(finish === "stop" || finish === "length");
  assert.ok(usage && usage.completion_tokens >= 1 && usage.completion_tokens <= 8);
  assert.equal(typeof text, "string");
});

test("openai: response_format json_object and json_schema give output that parses", async () => {
  const a = await client.chat.completions.create({
    model: modelId, messages: [{ role: "user", content: "Give me a JSON object." }], max_tokens: 30, response_format: { type: "json_object" },
  });
  assert.equal(typeof JSON.parse(a.choices[0]!.message.content!), "object");
  const b = await client.chat.completions.create({
    model: modelId, messages: [{ role: "user", content: "A city and its population." }], max_tokens: 40,
    response_format: {
      type: "json_schema",
      json_schema: { name: "city", strict: true, schema: { type: "object", properties: { city: { type: "string" }, population: { type: "integer" }, capital: { type: "boolean" } }, required: ["city", "population", "capital"], additionalProperties: false } },
    },
  });
  const v = JSON.parse(b.choices[0]!.message.content!) as { city: string; population: number; capital: boolean };
  assert.equal(typeof v.city, "string");
  assert.ok(Number.isInteger(v.population));
  assert.equal(typeof v.capital, "boolean");
});

test("openai: completions with echo and logprobs, and embeddings", async () => {
  const c = await client.completions.create({ model: modelId, prompt: "The quick brown fox", max_tokens: 0, echo: true, logprobs: 1 });
  assert.equal(c.choices[0]!.text, "The quick brown fox");
  assert.equal(c.choices[0]!.logprobs!.token_logprobs![0], null);
  const e = await client.embeddings.create({ model: modelId, input: ["one", "two", "three"] });
  assert.equal(e.data.length, 3);
  for (const d of e.data) assert.ok(Math.abs(Math.hypot(...d.embedding) - 1) < 1e-4);
});

test("openai: errors surface as the client's typed errors", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: modelId, messages: [{ role: "user", content: "x" }], tools: [{ type: "function", function: { name: "f", parameters: {} } }] }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && /"tools"/.test(e.message),
  );
  const anon = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "wrong", maxRetries: 0 });
  await assert.rejects(anon.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError);
});

test("LangChain ChatOpenAI: invoke, stream, structured output; OpenAIEmbeddings", async () => {
  const llm = new ChatOpenAI({ model: modelId, apiKey: KEY, configuration: { baseURL: `${server.url}/v1` }, maxTokens: 8, temperature: 0, maxRetries: 0 });
  const msg = await llm.invoke([new SystemMessage("Answer briefly."), new HumanMessage("What is 2+2?")]);
  assert.equal(typeof msg.content, "string");
  assert.ok(msg.usage_metadata && msg.usage_metadata.output_tokens >= 1);

  let streamed = "", chunks = 0;
  for await (const chunk of await llm.stream("Tell me a story.")) {
    streamed += chunk.content as string;
    chunks++;
  }
  assert.ok(chunks >= 2);
  assert.equal(typeof streamed, "string");

  const structured = new ChatOpenAI({ model: modelId, apiKey: KEY, configuration: { baseURL: `${server.url}/v1` }, maxTokens: 40, maxRetries: 0 })
    .withStructuredOutput(z.object({ answer: z.string(), sure: z.boolean() }), { method: "jsonSchema", name: "reply" });
  const out = await structured.invoke("Is the sky blue?");
  assert.equal(typeof out.answer, "string");
  assert.equal(typeof out.sure, "boolean");

  const emb = new OpenAIEmbeddings({ model: modelId, apiKey: KEY, configuration: { baseURL: `${server.url}/v1` }, maxRetries: 0 });
  const vec = await emb.embedQuery("hello");
  assert.equal(vec.length, loaded.model.config.nEmbd);
});
