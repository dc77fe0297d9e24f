/**
 * Running the benchmarks: the batched local backend against plain evaluation, the endpoint backend
 * against this project's server, the cache, and `cmx eval` end to end on the reference model.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel, type LoadedModel } from "../model/load.js";
import { startServer, type RunningServer } from "../server/server.js";
import { REPO_ROOT, SHARED_DIR } from "../test-util/paths.js";
import { modelPath } from "../test-util/reference.js";
import { EndpointBackend, LocalBackend, encodePrompt, type EvalBackend } from "./backend.js";
import { LongBenchData, formatTemplate, runLongBench, truncateMiddle, GREEDY_SAMPLING } from "./longbench.js";
import { McqData, buildPrompt } from "./mcq.js";
import { runMcq } from "./mcq-run.js";

const B = modelPath("B-Q4_K_M");
const DATA = join(SHARED_DIR, "data");
const haveCmmlu = existsSync(join(DATA, "cmmlu", "test"));
const haveLongBench = existsSync(join(DATA, "longbench", "passage_retrieval_zh.jsonl"));
const tmp = mkdtempSync(join(tmpdir(), "cmx-eval-"));
const CLI = join(REPO_ROOT, "dist", "cli", "main.js");

let loaded: LoadedModel | undefined;
let server: RunningServer | undefined;

before(async () => {
  if (!B) return;
  loaded = loadModel(B, { threads: 2 });
  server = await startServer({ loaded, host: "127.0.0.1", port: 0, nCtx: 512, parallel: 2, queueLimit: 64, closeModel: false, webRoot: null });
});

after(async () => {
  await server?.close();
  loaded?.model.close();
});

const PROMPTS = [
  "以下是中国关于agronomy考试的单项选择题，请选出其中的正确答案。\n\n下列鸭品种中，产蛋量最高的品种是\nA. 高邮鸭\nB. 北京鸭\nC. 樱桃谷鸭\nD. 绍鸭\n答案：D\n\n牛的发情周期平均为\nA. 16～17天\nB. 21天\nC. 28天\nD. 19～20天\n答案：",
  "以下是中国关于agronomy考试的单项选择题，请选出其中的正确答案。\n\n下列鸭品种中，产蛋量最高的品种是\nA. 高邮鸭\nB. 北京鸭\nC. 樱桃谷鸭\nD. 绍鸭\n答案：D\n\n羊胴体中，肉质较好的部位是\nA. 胸下肉\nB. 肩胛肉\nC. 后腿肉\nD. 小腿肉\n答案：",
  "[INST] 水的化学式是\nA. H2O\nB. CO2\nC. O2\nD. NaCl\n答案： [/INST]",
];

test("local backend: batched steps over cached prefixes give the logits of plain evaluation", { skip: !B && "reference model B absent" }, () => {
  const be = new LocalBackend(loaded!, { nCtx: 512, parallel: 2 });
  const tok = loaded!.tokenizer;
  // two rounds so that the second reuses the first round's cached prefixes
  const got = [...be.lastLogits(PROMPTS.slice(0, 2).map((p) => encodePrompt(tok, p))), ...be.lastLogits([PROMPTS[1]!, PROMPTS[0]!].map((p) => encodePrompt(tok, p)))];
  const ctx = loaded!.model.newContext({ nCtx: 512, kvType: "f16" });
  const want = [0, 1, 1, 0].map((i) => { ctx.truncate(0); return ctx.eval(encodePrompt(tok, PROMPTS[i]!), { logits: "last" }); });
  got.forEach((g, k) => {
    let d = 0;
    for (let i = 0; i < g.length; i++) d = Math.max(d, Math.abs(g[i]! - want[k]![i]!));
    assert.ok(d < 2e-3, `sequence ${k}: max |diff| ${d}`);
  });
  be.close();
});

test("endpoint backend: the letters' log-probabilities from cmx serve rank the letters as the local logits", { skip: !B && "reference model B absent" }, async () => {
  const local = new LocalBackend(loaded!, { nCtx: 512, parallel: 2 });
  const ep = new EndpointBackend({ url: `${server!.url}/v1`, parallel: 2 });
  await ep.init();
  for (const bench of ["cmmlu", "mmlu"] as const) {
    const prompts = bench === "mmlu" ? ["The following are multiple choice questions (with answers) about  astronomy.\n\nWhat is the Sun?\nA. a star\nB. a planet\nC. a moon\nD. a comet\nAnswer:"] : PROMPTS.slice(1);
    const a = await local.scoreLetters(prompts, bench);
    const b = await ep.scoreLetters(prompts, bench);
    a.forEach((x, i) => {
      const y = b[i]!.scores;
      assert.ok(y.every(Number.isFinite), `${bench} ${i}: ${y}`);
      // log-probabilities = logits - logZ (twice for C-Eval's two tokens): the differences agree
      for (let l = 1; l < 4; l++) {
        const dl = x.scores[l]! - x.scores[0]!, de = y[l]! - y[0]!;
        assert.ok(Math.abs(dl - de) < 5e-3, `${bench} prompt ${i} letter ${l}: local ${dl} vs endpoint ${de}`);
      }
    });
  }
  assert.equal(ep.unverified, 0);
  const [text] = await ep.generate([PROMPTS[2]!], { maxTokens: 4 });
  assert.equal(typeof text, "string");
  local.close();
});

/** Wraps a backend and counts the prompts it is asked about. */
function counting(be: EvalBackend): EvalBackend & { asked: number } {
  const c = Object.create(be) as EvalBackend & { asked: number };
  c.asked = 0;
  c.scoreLetters = async (p, bench, o) => { c.asked += p.length; return be.scoreLetters(p, bench, o); };
  c.generate = async (p, s) => { c.asked += p.length; return be.generate(p, s); };
  return c;
}

test("runMcq: results, the cache continues an interrupted run, --generate extraction, --fit", { skip: (!B && "reference model B absent") || (!haveCmmlu && "shared/data absent") }, async () => {
  const data = new McqData("cmmlu", join(DATA, "cmmlu"), "test");
  const be = counting(new LocalBackend(loaded!, { nCtx: 512, parallel: 2 }));
  const cacheDir = join(tmp, "cache-a");
  const base = { data, shots: 0, template: "none" as const, mode: "logits" as const, subjects: ["arts", "agronomy"], cacheDir, backend: be };
  const r1 = await runMcq({ ...base, limit: 3 });
  assert.equal(be.asked, 6);
  assert.deepEqual(r1.summary.subjects.map((s) => [s.subject, s.num]), [["arts", 3], ["agronomy", 3]]);
  assert.equal(r1.summary.overall.num, 6);
  // more questions: only the new ones are evaluated; the first three keep their answers
  const r2 = await runMcq({ ...base, limit: 5 });
  assert.equal(be.asked, 6 + 4);
  assert.deepEqual(Object.entries(r2.summary.subjects[0]!.predictions).slice(0, 3), Object.entries(r1.summary.subjects[0]!.predictions));
  // the same again: nothing to do
  await runMcq({ ...base, limit: 5 });
  assert.equal(be.asked, 10);
  // another configuration does not reuse those answers
  const g = await runMcq({ ...base, limit: 2, mode: "generate" });
  assert.equal(be.asked, 14);
  const ex = g.summary.subjects[0]!.extraction!;
  assert.equal(Object.values(ex).reduce((a, b) => a + b!, 0), 2);
  // 5-shot prompts of ancient_chinese exceed B's 512-token context from the first question on:
  // the run stops before evaluating anything, and --fit drops examples until they fit
  const asked = be.asked;
  await assert.rejects(runMcq({ ...base, subjects: ["arts", "ancient_chinese"], shots: 5, limit: 2, cacheDir: null }), /ancient_chinese question 0 .*more than the context of 512.*--fit/);
  assert.equal(be.asked, asked);
  const f = await runMcq({ ...base, subjects: ["ancient_chinese"], shots: 5, limit: 2, cacheDir: null, fit: true });
  assert.ok(f.summary.subjects[0]!.fewerShots! >= 1);
});

test("cmx eval cmmlu --subjects: end to end on the reference model, then continued from the cache", { skip: (!B && "reference model B absent") || (!haveCmmlu && "shared/data absent") }, () => {
  const out = join(tmp, "cmmlu.json");
  const args = ["eval", "cmmlu", "--data", join(DATA, "cmmlu"), "--subjects", "college_mathematics,college_actuarial_science", "--limit", "6", "--shots", "5", "--fit", "-m", B!, "-t", "2", "--out", out];
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| college_mathematics \| 大学数学 \| STEM \| 6 \|/);
  assert.match(r.stdout, /overall \(micro\)\*\* \| \| \| 12 \|/);
  assert.match(r.stderr, /eval cmmlu +100% 12\/12 \| [0-9.]+ s \| college_actuarial_science/);
  const j = JSON.parse(readFileSync(out, "utf8"));
  assert.equal(j.benchmark, "cmmlu");
  assert.equal(j.shots, 5);
  assert.equal(j.overall.num, 12);
  assert.ok(j.overall.accuracy >= 0 && j.overall.accuracy <= 100);
  assert.deepEqual(Object.keys(j.groups), ["STEM"]);
  assert.equal(Object.keys(j.submission.college_mathematics).length, 6);
  assert.ok(existsSync(join(tmp, "cmmlu.cache", "college_mathematics.jsonl")));
  const again = spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 120_000 });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /college_mathematics: 6 of 6 questions from the cache/);
  assert.deepEqual(JSON.parse(readFileSync(out, "utf8")).submission, j.submission);
});

test("cmx eval: clear errors for a missing data folder and unknown subjects", () => {
  const r = spawnSync(process.execPath, [CLI, "eval", "ceval", "--data", join(tmp, "nowhere")], { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /nowhere does not exist; expected layout: DIR\/\{dev,val,test\}\/<subject>_\{dev,val,test\}\.csv/);
  const h = spawnSync(process.execPath, [CLI, "eval", "--help"], { encoding: "utf8" });
  assert.equal(h.status, 0);
  assert.match(h.stdout, /Usage: cmx eval/);
  if (haveCmmlu) {
    const u = spawnSync(process.execPath, [CLI, "eval", "cmmlu", "--data", join(DATA, "cmmlu"), "--subjects", "astrology"], { encoding: "utf8" });
    assert.equal(u.status, 1);
    assert.match(u.stderr, /--subjects: astrology not in/);
  }
});

// ---- LongBench -------------------------------------------------------------------------------------

test("LongBench prompt: the template filled as str.format, middle truncation to the budget", { skip: !B && "reference model B absent" }, () => {
  assert.equal(formatTemplate("问题：{input}\n{context}{{x}}", { input: "谁？", context: "文" }), "问题：谁？\n文{x}");
  const tok = loaded!.tokenizer;
  const text = "开头的话。" + "中间的内容很长。".repeat(300) + "结尾的问题？";
  const t = truncateMiddle(tok, text, 100);
  assert.ok(t.truncated);
  assert.ok(t.prompt.startsWith("开头的话。"));
  assert.ok(t.prompt.endsWith("结尾的问题？"));
  assert.ok(Math.abs(t.tokens - 100) <= 4, `${t.tokens} tokens`);
  assert.deepEqual(truncateMiddle(tok, "短", 100), { prompt: "短", truncated: false, tokens: encodePrompt(tok, "短").length });
});

test("LongBench end to end on the reference model (two items per task, a short budget)", { skip: (!B && "reference model B absent") || (!haveLongBench && "shared/data absent") }, async () => {
  const data = new LongBenchData(join(DATA, "longbench"));
  assert.deepEqual(data.available(), ["multifieldqa_zh", "passage_retrieval_zh"]);
  const be = new LocalBackend(loaded!, { nCtx: 512, parallel: 1 });
  const r = await runLongBench({ data, tasks: ["multifieldqa_zh", "passage_retrieval_zh"], backend: be, tokenizer: loaded!.tokenizer, maxLength: 400, limit: 2, sampling: GREEDY_SAMPLING, cacheDir: join(tmp, "lb") });
  assert.deepEqual(r.tasks.map((t) => [t.task, t.metric, t.num, t.truncated]), [["multifieldqa_zh", "qa_f1_zh_score", 2, 2], ["passage_retrieval_zh", "retrieval_zh_score", 2, 2]]);
  for (const t of r.tasks) assert.ok(t.score >= 0 && t.score <= 100);
  assert.deepEqual(Object.keys(r.categories), ["Single-Doc QA", "Synthetic"]);
  const lines = readFileSync(join(tmp, "lb", "passage_retrieval_zh.jsonl"), "utf8").trim().split("\n");
  assert.equal(lines.length, 3);
  assert.deepEqual(JSON.parse(lines[1]!).answers.length, 1);
  await assert.rejects(runLongBench({ data, tasks: ["multifieldqa_zh"], backend: be, tokenizer: loaded!.tokenizer, maxLength: 3584, sampling: GREEDY_SAMPLING, cacheDir: null }), /do not fit the context of 512/);
  be.close();
});

test("endpoint backend on a stricter server: max_tokens >= 1, one prompt per request, API key, model from /v1/models", async () => {
  const { createServer } = await import("node:http");
  const LP: Record<string, number> = { " A": -3, A: -1, " B": -0.5, B: -4, " C": -2, C: -2, " D": -5, D: -0.1 };
  const seen: { auth?: string; model?: unknown; maxTokens?: unknown }[] = [];
  const srv = createServer((req, res) => {
    const send = (code: number, o: unknown) => { res.writeHead(code, { "Content-Type": "application/json" }); res.end(JSON.stringify(o)); };
    if (req.headers.authorization !== "Bearer k1") return send(401, { error: { message: "bad key" } });
    if (req.method === "GET" && req.url === "/v1/models") return send(200, { object: "list", data: [{ id: "fake-model", object: "model" }] });
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const j = JSON.parse(body) as { prompt: unknown; max_tokens: number; model: string };
      seen.push({ auth: req.headers.authorization!, model: j.model, maxTokens: j.max_tokens });
      if (j.max_tokens < 1) return send(400, { error: { message: "max_tokens must be at least 1" } });
      if (typeof j.prompt !== "string") return send(400, { error: { message: "prompt must be a string" } });
      const m = /( ?[A-D])$/.exec(j.prompt)!;
      const tokens = ["<s>", j.prompt.slice(0, m.index), m[1]!, "x"];
      send(200, { choices: [{ index: 0, text: j.prompt + "x", logprobs: { tokens, token_logprobs: [null, -1, LP[m[1]!], -1] }, finish_reason: "length" }] });
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  try {
    const ep = new EndpointBackend({ url: `http://127.0.0.1:${port}/`, apiKey: "k1", parallel: 2 });
    await ep.init();
    assert.equal(ep.label, `http://127.0.0.1:${port} (model fake-model)`);
    const [r] = await ep.scoreLetters(["问题\n答案："], "ceval");
    assert.deepEqual(r!.scores, [-4, -4.5, -4, -5.1]);
    const [m] = await ep.scoreLetters(["Q\nAnswer:"], "mmlu");
    assert.deepEqual(m!.scores, [-3, -0.5, -2, -5]);
    assert.equal(ep.unverified, 0);
    assert.ok(seen.every((x) => x.model === "fake-model"));
    await assert.rejects(new EndpointBackend({ url: `http://127.0.0.1:${port}`, apiKey: "nope" }).init(), /HTTP 401: .*bad key/);
  } finally {
    srv.close();
  }
});
