import { test } from "node:test";
import assert from "node:assert/strict";
import { SequenceMatcher, fuzzRatio, pyRound } from "./difflib.js";
import {
  classificationScore, codeSimScore, countScore, itemScore, jiebaCut, normalizeAnswer, normalizeZhAnswer, pyRound2,
  qaF1Score, qaF1ZhScore, retrievalScore, retrievalZhScore, rougeLF, rougeScore, rougeZhScore, taskScore,
} from "./metrics.js";

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} vs ${b}`);

test("jieba (precise mode, HMM): the usual segmentation", () => {
  assert.deepEqual(jiebaCut("我来到北京清华大学"), ["我", "来到", "北京", "清华大学"]);
  assert.deepEqual(jiebaCut(""), []);
});

test("qa_f1_zh: jieba words, punctuation and whitespace removed, multiset F1", () => {
  assert.equal(normalizeZhAnswer("  Hello，世界！ A.b "), "hello世界ab");
  close(qaF1ZhScore("厦门大学", "厦门大学。"), 1);
  close(qaF1ZhScore("我来到北京清华大学", "清华大学"), 0.4); // P = 1/4, R = 1
  close(qaF1ZhScore("北京 北京", "北京"), 2 / 3); // multiset: P = 1/2, R = 1
  assert.equal(qaF1ZhScore("上海", "北京"), 0);
  assert.equal(qaF1ZhScore("。。。", "北京"), 0);
});

test("qa_f1 (English): SQuAD normalisation", () => {
  assert.equal(normalizeAnswer("The  Cat, an apple!"), "cat apple");
  close(qaF1Score("the cat sat", "a cat"), 2 / 3); // [cat, sat] vs [cat]
});

test("retrieval_zh: share of the numbers in the prediction equal to the gold paragraph", () => {
  assert.equal(retrievalZhScore("段落27", "段落27"), 1);
  assert.equal(retrievalZhScore("答案是段落27，不是段落3", "段落27"), 0.5);
  assert.equal(retrievalZhScore("我不知道", "段落27"), 0);
  assert.equal(retrievalZhScore("段落127", "段落27"), 0);
  assert.equal(retrievalScore("Paragraph 4, or 4?", "Paragraph 4"), 1);
  assert.equal(countScore("There are 12 unique paragraphs, not 13", "12"), 0.5);
});

test("Rouge-L: the rouge package's summary-level score with its set semantics", () => {
  // LCS "the cat on the mat": distinct words {the, cat, on, mat} = 4; 5 distinct words each side
  close(rougeLF("the cat sat on the mat", "the cat is on the mat")!, 2 * ((0.8 * 0.8) / (1.6 + 1e-8)));
  // repeated words count once: a plain Rouge-L would give P = 2/3
  close(rougeLF("a a b", "a b")!, 2 * (1 / (2 + 1e-8)));
  // sentences split on ".": union LCS over the hypothesis sentences
  close(rougeLF("a b. c d", "c d a b")!, 2 * (1 / (2 + 1e-8)));
  assert.equal(rougeLF("", "a"), null); // the package raises: LongBench scores 0
  assert.equal(rougeScore("...", "a b"), 0);
  assert.equal(rougeScore("x y", "a b"), 0);
});

test("Rouge-L zh: jieba words joined by spaces", () => {
  close(rougeZhScore("我来到北京清华大学", "我来到北京清华大学"), 2 * (1 / (2 + 1e-8)));
  // 4 words vs [清华大学]: LCS 1; R = 1, P = 1/4
  close(rougeZhScore("我来到北京清华大学", "清华大学"), 2 * ((0.25 * 1) / (1.25 + 1e-8)));
});

test("classification: matched classes minus those inside the gold name, with metrics.py's skip-after-remove", () => {
  assert.equal(classificationScore("这是体育新闻", "体育", ["体育", "财经", "娱乐"]), 1);
  assert.equal(classificationScore("体育和财经", "体育", ["体育", "财经", "娱乐"]), 0.5);
  assert.equal(classificationScore("娱乐", "体育", ["体育", "财经", "娱乐"]), 0);
  // "体" is removed (inside the gold "体育"), which makes the loop skip "育": 1/2, not 1
  assert.equal(classificationScore("体育", "体育", ["体", "育", "体育"]), 0.5);
  // lsht-style items are cut to the first line before scoring
  assert.equal(itemScore("lsht", "\n\n财经\n体育", ["财经"], ["体育", "财经"]), 1);
});

test("code similarity: first line without ` # //, fuzzywuzzy ratio over difflib", () => {
  assert.equal(fuzzRatio("fuzzy wuzzy was a bear", "wuzzy fuzzy was a bear"), 91); // fuzzywuzzy's README
  assert.equal(fuzzRatio("this is a test", "this is a test!"), 97);
  assert.equal(fuzzRatio("", ""), 100);
  assert.equal(fuzzRatio("", "a"), 0);
  // values from Python's difflib (3.11) and round()
  assert.equal(fuzzRatio("    return self.model.forward(input_ids, attention_mask=mask)", "        return self.model(input_ids=input_ids, attention_mask=attention_mask)"), 77);
  const a = "x".repeat(150) + "abc".repeat(40) + "y", b = "ab".repeat(120) + "x".repeat(90) + "c"; // autojunk: b has 332 >= 200 elements
  close(new SequenceMatcher(a, b).ratio(), 0.0033222591362126247, 1e-15);
  assert.equal(codeSimScore("```python\n# a comment\nx = foo(1)\n```", "x = foo(1)"), 1);
  assert.equal(codeSimScore("", "x"), 0);
});

test("task score: round(100 x mean, 2) with Python's rounding", () => {
  assert.equal(pyRound(12.5), 12);
  assert.equal(pyRound(13.5), 14);
  assert.equal(pyRound2(12.125), 12.12);
  assert.equal(pyRound2(2.675), 2.67);
  assert.equal(pyRound2(33.335), 33.34);
  assert.equal(taskScore([1, 0, 0.5]), 50);
  assert.equal(taskScore([1, 0, 0]), 33.33);
});
