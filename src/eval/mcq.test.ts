import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { SHARED_DIR } from "../test-util/paths.js";
import { defaultModelPath } from "../model/default-model.js";
import { loadModel } from "../model/load.js";
import { parseCsv, pandasCells, pyFloatRepr } from "./csv.js";
import {
  McqData, argmaxFirst, buildPrompt, cevalPrompt, extractAnswer, letterScores, letterTokens, mmluPrompt,
  seededRandom, seedProcessedLogit, summarize, tally, type McqItem, type SubjectResult,
} from "./mcq.js";
import { DataError } from "./data.js";

const DATA = join(SHARED_DIR, "data");
const haveData = existsSync(join(DATA, "cmmlu", "test"));

const q1: McqItem = { question: "1+1=____", options: ["1", "2", "3", "4"], answer: "B" };
const q2: McqItem = { question: "天空是什么颜色", options: ["红", "绿", "蓝", "黑"], answer: "C" };
const t: McqItem = { question: "水的化学式是", options: ["H2O", "CO2", "O2", "NaCl"], answer: "A" };

// ---- prompt strings ------------------------------------------------------------------------------

test("C-Eval/CMMLU prompt, 0-shot, no template: the question block and 答案：", () => {
  assert.equal(cevalPrompt("chemistry", [q1, q2], t, 0, "none"), "水的化学式是\nA. H2O\nB. CO2\nC. O2\nD. NaCl\n答案：");
});

test("C-Eval/CMMLU prompt, 0-shot, instruct template", () => {
  assert.equal(cevalPrompt("chemistry", [q1, q2], t, 0, "instruct"), "[INST] 水的化学式是\nA. H2O\nB. CO2\nC. O2\nD. NaCl\n答案： [/INST]");
});

test("C-Eval/CMMLU prompt, few-shot, no template: header with the subject key, examples with answers", () => {
  assert.equal(cevalPrompt("chemistry", [q1, q2], t, 2, "none"),
    "以下是中国关于chemistry考试的单项选择题，请选出其中的正确答案。\n\n" +
    "1+1=____\nA. 1\nB. 2\nC. 3\nD. 4\n答案：B\n\n" +
    "天空是什么颜色\nA. 红\nB. 绿\nC. 蓝\nD. 黑\n答案：C\n\n" +
    "水的化学式是\nA. H2O\nB. CO2\nC. O2\nD. NaCl\n答案：");
});

test("C-Eval/CMMLU prompt, few-shot, instruct template: the seed's with_prompt history", () => {
  assert.equal(cevalPrompt("chemistry", [q1, q2], t, 2, "instruct"),
    "[INST] 以下是中国关于chemistry考试的单项选择题，请选出其中的正确答案。\n\n [/INST]好的，我会结合chemistry相关知识回答" +
    "[INST] 1+1=____\nA. 1\nB. 2\nC. 3\nD. 4\n答案： [/INST]B\n" +
    "[INST] 天空是什么颜色\nA. 红\nB. 绿\nC. 蓝\nD. 黑\n答案： [/INST]C\n" +
    "[INST] 水的化学式是\nA. H2O\nB. CO2\nC. O2\nD. NaCl\n答案： [/INST]");
});

test("MMLU prompt: two spaces after 'about', header even at 0-shot, 'Answer: X' examples", () => {
  const e: McqItem = { question: "2+2?", options: ["3", "4", "5", "6"], answer: "B" };
  const x: McqItem = { question: "3+3?", options: ["6", "7", "8", "9"], answer: "A" };
  assert.equal(mmluPrompt("high_school_mathematics", [e], x, 0),
    "The following are multiple choice questions (with answers) about  high school mathematics.\n\n3+3?\nA. 6\nB. 7\nC. 8\nD. 9\nAnswer:");
  assert.equal(mmluPrompt("high_school_mathematics", [e, e], x, 1),
    "The following are multiple choice questions (with answers) about  high school mathematics.\n\n" +
    "2+2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer: B\n\n3+3?\nA. 6\nB. 7\nC. 8\nD. 9\nAnswer:");
});

const sha = (s: string) => createHash("sha256").update(s).digest("hex").slice(0, 16);

test("prompts from the real files: C-Eval val and CMMLU test, 0- and 5-shot, with and without template", { skip: !haveData && "shared/data absent" }, () => {
  const ce = new McqData("ceval", join(DATA, "ceval"), "val");
  const net = ce.load("computer_network", true);
  assert.equal(net.items.length, 19);
  assert.equal(net.name, "计算机网络");
  assert.equal(net.group, "STEM");
  assert.equal(buildPrompt("ceval", "computer_network", net.dev, net.items[1]!, 0, "none"),
    "在802.3标准中，发送帧之前需要____\nA. 等待冲突\nB. 等待令牌\nC. 监听介质\nD. 接受一个帧\n答案：");
  const five = buildPrompt("ceval", "computer_network", net.dev, net.items[1]!, 5, "none");
  assert.ok(five.startsWith("以下是中国关于computer_network考试的单项选择题，请选出其中的正确答案。\n\n下列设备属于资源子网的是____。\nA. 计算机软件\nB. 网桥\nC. 交换机\nD. 路由器\n答案：A\n\n滑动窗口的作用是____。"));
  assert.ok(five.endsWith("\nD. 100Mbps\n答案：C\n\n在802.3标准中，发送帧之前需要____\nA. 等待冲突\nB. 等待令牌\nC. 监听介质\nD. 接受一个帧\n答案："));
  assert.equal(sha(five), "9c58a2e8ae34172a");

  const cm = new McqData("cmmlu", join(DATA, "cmmlu"), "test");
  const ag = cm.load("agronomy", true);
  assert.equal(ag.group, "Other");
  const inst = buildPrompt("cmmlu", "agronomy", ag.dev, ag.items[0]!, 5, "instruct");
  assert.ok(inst.startsWith("[INST] 以下是中国关于agronomy考试的单项选择题，请选出其中的正确答案。\n\n [/INST]好的，我会结合agronomy相关知识回答[INST] 肉牛屠宰后，胴体的哪个部位肉质较好\nA. 胸\nB. 腹\nC. 大腿\nD. 小腿\n答案： [/INST]C\n[INST] "));
  assert.ok(inst.endsWith(`[INST] ${ag.items[0]!.question}\nA. ${ag.items[0]!.options[0]}\nB. ${ag.items[0]!.options[1]}\nC. ${ag.items[0]!.options[2]}\nD. ${ag.items[0]!.options[3]}\n答案： [/INST]`));
  assert.equal(inst.split("[INST]").length - 1, 7);
  assert.equal(sha(inst), "80f17ae99c9293ce");
});

test("MMLU from the file: pandas turns an option 'None' into 'nan' in the seed's prompt", { skip: !haveData && "shared/data absent" }, () => {
  const m = new McqData("mmlu", join(DATA, "mmlu", "original-2020"), "val");
  const cp = m.load("conceptual_physics", true);
  assert.equal(cp.group, "STEM");
  assert.deepEqual(cp.subcategories, ["physics"]);
  const row = cp.items[16]!;
  assert.equal(row.options[0], "nan");
  assert.ok(mmluPrompt("conceptual_physics", cp.dev, row, 5).includes("\nA. nan\nB. "));
});

test("missing or malformed data: errors name the file and the expected layout", () => {
  assert.throws(() => new McqData("cmmlu", "/nonexistent/cmmlu", "test"), (e: Error) => e instanceof DataError && /\/nonexistent\/cmmlu/.test(e.message) && /expected layout: DIR\/\{dev,test\}\/<subject>\.csv/.test(e.message));
});

// ---- CSV and pandas' cells --------------------------------------------------------------------------

test("CSV: quotes, escaped quotes, newlines in fields, CRLF, BOM, blank lines", () => {
  assert.deepEqual(parseCsv('\ufeffa,b,c\r\n1,"x, ""y""\nz",\n\n2,3,4'), [["a", "b", "c"], ["1", 'x, "y"\nz', ""], ["2", "3", "4"]]);
});

test("pandas cells: NA strings, int and float columns, booleans, text columns", () => {
  const rows = [["None", "007", "2", "true", "x"], ["b", "+5", "2.50", "False", ""], ["c", "10", "", "TRUE", "1"]];
  assert.deepEqual(pandasCells(rows), [["nan", "7", "2.0", "True", "x"], ["b", "5", "2.5", "False", "nan"], ["c", "10", "nan", "True", "1"]]);
  assert.deepEqual([1e16, 1e-5, 0.0001, 123, 1.5e300, -2.5, 0.1 + 0.2].map(pyFloatRepr), ["1e+16", "1e-05", "0.0001", "123.0", "1.5e+300", "-2.5", "0.30000000000000004"]);
});

// ---- answer scoring -------------------------------------------------------------------------------------

test("letter tokens: ▁X and X (C-Eval/CMMLU), ▁X (MMLU) in the Mixtral vocabulary", () => {
  const tok = loadModel(defaultModelPath(), { backend: "js" }).tokenizer;
  const ce = letterTokens(tok, "cmmlu");
  assert.deepEqual(ce.spaced.map((i) => tok.tokenToPiece(i)), ["▁A", "▁B", "▁C", "▁D"]);
  assert.deepEqual(ce.bare.map((i) => tok.tokenToPiece(i)), ["A", "B", "C", "D"]);
  const mm = letterTokens(tok, "mmlu");
  assert.deepEqual(mm.spaced, ce.spaced);
  assert.deepEqual(mm.bare, []);
});

test("answer from hand-made logits: C-Eval adds ▁X and X, MMLU takes ▁X, ties go to the first", () => {
  const ids = { spaced: [10, 11, 12, 13], bare: [20, 21, 22, 23] };
  const l = new Float32Array(32);
  l.set([1, 3, 2, 0], 10); // ▁A ▁B ▁C ▁D: B best alone
  l.set([0, -2, 1.5, 0], 20); // A B C D: C best in the sum (3.5 vs 1)
  const f = (id: number) => l[id]!;
  assert.deepEqual(letterScores(f, ids), [1, 1, 3.5, 0]);
  assert.equal(argmaxFirst(letterScores(f, ids)), 2);
  assert.equal(argmaxFirst(letterScores(f, { spaced: ids.spaced, bare: [] })), 1);
  assert.equal(argmaxFirst([2, 5, 5, 1]), 1);
});

test("the seed's processed scores: repetition penalty on prompt tokens, then temperature", () => {
  const l = new Float32Array([0, 2, 2.1, -1, -1]);
  const f = seedProcessedLogit(l, [2, 4]);
  assert.ok(Math.abs(f(1) - 10) < 1e-6); // 2 / 0.2
  assert.ok(Math.abs(f(2) - 2.1 / 1.1 / 0.2) < 1e-5); // in the prompt, positive: / 1.1
  assert.ok(Math.abs(f(4) - -1.1 / 0.2) < 1e-5); // in the prompt, negative: x 1.1
  // token 2 beats token 1 on raw logits, but loses after the penalty
  assert.equal(argmaxFirst([l[1]!, l[2]!]), 1);
  assert.equal(argmaxFirst([f(1), f(2)]), 0);
});

// ---- the regex cascade --------------------------------------------------------------------------------

test("generated answers: the seed's extraction cascade in order", () => {
  const opts = ["北京", "上海", "广州", "深圳"];
  const rnd = () => 0.6;
  const x = (s: string) => extractAnswer(s, opts, rnd);
  assert.deepEqual(x("所以答案是A。后来想想所以答案是C。"), { answer: "C", method: "so-answer" });
  assert.deepEqual(x("所以答案是北京。选项B正确"), { answer: "B", method: "pattern" });
  assert.deepEqual(x("答案是D，不过C是正确的"), { answer: "C", method: "pattern" }); // first pattern in the list wins
  assert.deepEqual(x("我选择B"), { answer: "B", method: "pattern" });
  assert.deepEqual(x("应该是 D 吧"), { answer: "D", method: "letter" });
  assert.deepEqual(x("我认为是广州或者北京"), { answer: "C", method: "option-text" }); // leftmost occurrence
  assert.deepEqual(x("不知道"), { answer: "C", method: "random" });
  // a duplicated option text maps to the later letter, as the seed's dict
  assert.deepEqual(extractAnswer("是对的", ["对", "错", "对", "不知道"], rnd), { answer: "C", method: "option-text" });
  // the random fallback is seeded: the same question gets the same letter
  assert.equal(extractAnswer("?", opts, seededRandom("s:1")).answer, extractAnswer("?", opts, seededRandom("s:1")).answer);
});

// ---- summary -------------------------------------------------------------------------------------------

test("summary: per-group and overall micro averages, mean of subjects", () => {
  const r = (subject: string, group: string, num: number, correct: number): SubjectResult => ({ subject, name: subject, group, unlabeled: 0, predictions: {}, ...tally(num, correct) });
  const s = summarize([r("a", "STEM", 10, 5), r("b", "STEM", 30, 6), r("c", "Other", 20, 20)], ["Humanities", "STEM", "Other"]);
  assert.deepEqual(Object.keys(s.groups), ["STEM", "Other"]);
  assert.deepEqual(s.groups["STEM"], { num: 40, correct: 11, accuracy: 27.5 });
  assert.deepEqual(s.overall, { num: 60, correct: 31, accuracy: (100 * 31) / 60 });
  assert.ok(Math.abs(s.macro! - (50 + 20 + 100) / 3) < 1e-12);
});
