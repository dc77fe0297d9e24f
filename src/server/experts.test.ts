/**
 * The `experts` extension of /v1/chat/completions and /v1/completions: every generated token
 * carries the experts its router chose in each layer, equal to what a direct evaluation of the
 * same tokens traces (ffn_moe_topk / ffn_moe_weights_norm), streamed and not; requests without
 * the field are unchanged. Runs on the reference model B (4 layers, 8 experts, top-2); skipped
 * when it is absent.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import OpenAI from "openai";
import { renderChat } from "../chat/template.js";
import { loadModel, type LoadedModel } from "../model/load.js";
import { modelPath } from "../test-util/reference.js";
import { startServer, type RunningServer } from "./server.js";
import { readSse } from "./testing.js";

const MODEL = modelPath("B-Q4_K_M");
const skip = MODEL ? false : "the reference model B-Q4_K_M is absent";
const N_CTX = 256;

let loaded: LoadedModel;
let nLayer = 0, nExpert = 0, k = 0;

before(() => {
  if (skip) return;
  loaded = loadModel(MODEL!, { threads: 1 });
  ({ nLayer, nExpert, nExpertUsed: k } = loaded.model.config);
});

after(() => {
  loaded?.model.close();
});

/** A fresh server for each check: no cached prefix, so its steps are those of the direct evaluation below. */
async function withServer<T>(fn: (s: RunningServer) => Promise<T>, parallel = 1, nCtx = N_CTX): Promise<T> {
  const s = await startServer({ loaded, host: "127.0.0.1", port: 0, nCtx, parallel, closeModel: false, webRoot: null });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

const post = (s: RunningServer, path: string, body: unknown) =>
  fetch(`${s.url}${path}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

interface Entry { token: string; id: number; text: string; layers: number[][]; weights: number[][] }

/** Route `gen` after `prompt` as the server does: the prompt in one step, then one token per step. */
function direct(prompt: number[], gen: number[]): { layers: number[][]; weights: number[][] }[] {
  const ctx = loaded.model.newContext({ nCtx: N_CTX, kvType: "f16" });
  try {
    ctx.eval(prompt, { logits: "last" });
    return gen.map((t) => {
      const r = { layers: [] as number[][], weights: [] as number[][] };
      ctx.eval([t], {
        logits: "none",
        trace: (name, data, nTok, width) => {
          const m = /^ffn_moe_(topk|weights_norm)-(\d+)$/.exec(name);
          if (!m) return;
          assert.equal(nTok, 1);
          (m[1] === "topk" ? r.layers : r.weights)[Number(m[2])] = Array.from(data.subarray(0, width));
        },
      });
      return r;
    });
  } finally {
    ctx.dispose();
  }
}

function checkEntries(entries: Entry[], completionTokens: number, prompt: number[] | null): void {
  assert.equal(entries.length, completionTokens, "one entry per generated token");
  for (const e of entries) {
    assert.ok(Number.isInteger(e.id) && typeof e.token === "string" && typeof e.text === "string");
    assert.equal(e.layers.length, nLayer);
    assert.equal(e.weights.length, nLayer);
    for (let l = 0; l < nLayer; l++) {
      assert.equal(e.layers[l]!.length, k);
      assert.equal(new Set(e.layers[l]).size, k, "distinct experts");
      for (const x of e.layers[l]!) assert.ok(Number.isInteger(x) && x >= 0 && x < nExpert, `expert ${x}`);
      assert.equal(e.weights[l]!.length, k);
      assert.ok(Math.abs(e.weights[l]!.reduce((a, b) => a + b, 0) - 1) < 1e-3, "weights sum to 1");
    }
  }
  if (!prompt) return;
  const want = direct(prompt, entries.map((e) => e.id));
  entries.forEach((e, i) => {
    assert.deepEqual(e.layers, want[i]!.layers, `token ${i}: experts`);
    e.weights.forEach((ws, l) => ws.forEach((w, j) => assert.ok(Math.abs(w - want[i]!.weights[l]![j]!) <= 1e-4, `token ${i} layer ${l}: weight ${w} vs ${want[i]!.weights[l]![j]}`)));
  });
}

function chatPrompt(messages: { role: "system" | "user" | "assistant"; content: string }[]): number[] {
  const tk = loaded.tokenizer;
  const text = renderChat(messages, {
    ...(loaded.chatTemplate ? { template: loaded.chatTemplate } : {}),
    bosToken: tk.tokenToPiece(tk.vocab.bosId), eosToken: tk.tokenToPiece(tk.vocab.eosId), addGenerationPrompt: true,
  });
  return tk.encode(text, { addBos: false, parseSpecial: true });
}

const PROMPT = [1, 415, 5255, 2995, 754];
const hello = [{ role: "user" as const, content: "Hello, which experts do you use?" }];

test("completions, not streamed: each generated token's experts equal a direct evaluation", { skip }, async () => {
  await withServer(async (s) => {
    const j = await (await post(s, "/v1/completions", { prompt: PROMPT, max_tokens: 7, temperature: 0, experts: true })).json() as any;
    const c = j.choices[0];
    assert.equal(typeof c.text, "string");
    assert.equal(c.finish_reason, "length");
    checkEntries(c.experts, j.usage.completion_tokens, PROMPT);
    assert.equal(c.experts.map((e: Entry) => e.text).join(""), c.text);
  });
});

test("chat, streamed: experts arrive in the chunks (choices[].experts), one per token, equal to a direct evaluation", { skip }, async () => {
  await withServer(async (s) => {
    const r = await post(s, "/v1/chat/completions", { messages: hello, max_tokens: 8, temperature: 0, experts: true, stream: true, stream_options: { include_usage: true } });
    assert.equal(r.status, 200);
    const entries: Entry[] = [];
    let content = "", usage: any = null, finish = "";
    await readSse(r, (d: any) => {
      if (d === "[DONE]") return;
      if (d.usage) usage = d.usage;
      const c = d.choices[0];
      if (!c) return;
      assert.equal(d.object, "chat.completion.chunk");
      content += c.delta.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
      if (c.experts) {
        assert.ok(Array.isArray(c.experts) && c.experts.length > 0);
        entries.push(...c.experts);
      }
      assert.equal(c.delta.experts, undefined, "the delta keeps the OpenAI fields only");
    });
    assert.ok(["stop", "length"].includes(finish));
    checkEntries(entries, usage.completion_tokens, chatPrompt(hello));
    assert.equal(entries.map((e) => e.text).join(""), content);
  });
});

test("chat, not streamed, and completions streamed with a stop string: the last token is routed too", { skip }, async () => {
  await withServer(async (s) => {
    const j = await (await post(s, "/v1/chat/completions", { messages: hello, max_tokens: 5, temperature: 0, experts: true })).json() as any;
    assert.equal(j.choices[0].message.content, j.choices[0].experts.map((e: Entry) => e.text).join(""));
    assert.deepEqual(Object.keys(j.choices[0].message).sort(), ["content", "refusal", "role"]);
    checkEntries(j.choices[0].experts, j.usage.completion_tokens, chatPrompt(hello));
  });
  // a stop string: the answer ends on a token the model has not read yet; it is read once more
  const free = await withServer(async (s) => (await (await post(s, "/v1/completions", { prompt: PROMPT, max_tokens: 10, temperature: 0 })).json() as any).choices[0].text as string);
  const stop = free.slice(4, 6);
  await withServer(async (s) => {
    const r = await post(s, "/v1/completions", { prompt: PROMPT, max_tokens: 10, temperature: 0, stop, experts: true, stream: true, stream_options: { include_usage: true } });
    const entries: Entry[] = [];
    let text = "", finish = "", usage: any = null;
    await readSse(r, (d: any) => {
      if (d === "[DONE]") return;
      if (d.usage) usage = d.usage;
      const c = d.choices[0];
      if (!c) return;
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
      if (c.experts) entries.push(...c.experts);
    });
    assert.equal(finish, "stop");
    assert.equal(text, free.slice(0, free.indexOf(stop)));
    checkEntries(entries, usage.completion_tokens, PROMPT);
    assert.ok(entries.map((e) => e.text).join("").startsWith(text + stop));
  });
  // the context fills up: the answer stops where its last token still fits the cache, so it is routed too
  await withServer(async (s) => {
    const j = await (await post(s, "/v1/completions", { prompt: PROMPT, max_tokens: 100, temperature: 0, experts: true })).json() as any;
    assert.equal(j.choices[0].finish_reason, "length");
    assert.equal(j.usage.prompt_tokens + j.usage.completion_tokens, 24);
    checkEntries(j.choices[0].experts, j.usage.completion_tokens, PROMPT);
  }, 1, 24);
});

test("n > 1 batched together: every choice has its own experts; without the field nothing changes", { skip }, async () => {
  await withServer(async (s) => {
    const j = await (await post(s, "/v1/chat/completions", { messages: hello, max_tokens: 4, n: 2, seed: 3, temperature: 1, experts: true })).json() as any;
    assert.equal(j.choices.length, 2);
    assert.equal(j.usage.completion_tokens, j.choices.reduce((a: number, c: any) => a + c.experts.length, 0));
    for (const c of j.choices) checkEntries(c.experts, c.experts.length, null);

    for (const experts of [undefined, false]) {
      const plain = await (await post(s, "/v1/chat/completions", { messages: hello, max_tokens: 4, temperature: 0, experts })).json() as any;
      assert.ok(!("experts" in plain.choices[0]));
      const r = await post(s, "/v1/completions", { prompt: PROMPT, max_tokens: 4, temperature: 0, stream: true, experts });
      await readSse(r, (d: any) => { if (d !== "[DONE]") assert.ok(!("experts" in d.choices[0]), JSON.stringify(d)); });
    }
    const bad = await post(s, "/v1/chat/completions", { messages: hello, experts: "yes" });
    assert.equal(bad.status, 400);
    assert.equal((await bad.json() as any).error.param, "experts");
    assert.equal((await post(s, "/v1/embeddings", { input: "x", experts: true })).status, 400);
    const m = await (await fetch(`${s.url}/v1/models`)).json() as any;
    assert.deepEqual([m.data[0].meta.n_layer, m.data[0].meta.n_expert, m.data[0].meta.n_expert_used], [nLayer, nExpert, k]);
  }, 2);
});

test("the openai client accepts responses with experts, streamed and not", { skip }, async () => {
  await withServer(async (s) => {
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "none", maxRetries: 0 });
    const extra = { experts: true } as Record<string, unknown>;
    const r = await client.chat.completions.create({ model: "m", messages: hello, max_tokens: 3, temperature: 0, ...extra });
    assert.equal(r.choices[0]!.message.role, "assistant");
    assert.equal((r.choices[0] as any).experts.length, r.usage!.completion_tokens);
    const stream = await client.chat.completions.create({ model: "m", messages: hello, max_tokens: 3, temperature: 0, stream: true, ...extra });
    let n = 0, text = "";
    for await (const ch of stream) {
      text += ch.choices[0]?.delta.content ?? "";
      n += (ch.choices[0] as any)?.experts?.length ?? 0;
    }
    assert.equal(text, r.choices[0]!.message.content);
    assert.ok(n >= 1);
  });
});
