/**
 * LongBench's metrics (THUDM/LongBench `metrics.py`, used unchanged by the seed), reimplemented:
 * the same normalisation, tokenisation (jieba through @node-rs/jieba, a port of the same
 * dictionary and HMM), the `rouge` package's Rouge-L and fuzzywuzzy's ratio on difflib.
 * Every metric scores one prediction against one gold answer, in [0, 1].
 */
import { createRequire } from "node:module";
import { fuzzRatio } from "./difflib.js";

// ---- jieba -------------------------------------------------------------------------------------------

interface JiebaLike { cut(text: string, hmm?: boolean): string[] }
let jiebaInstance: JiebaLike | undefined;

/** `jieba.cut(text, cut_all=False)` (precise mode with HMM, jieba's default). */
export function jiebaCut(text: string): string[] {
  if (!jiebaInstance) {
    const require = createRequire(import.meta.url);
    const { Jieba } = require("@node-rs/jieba") as { Jieba: { withDict(d: Uint8Array): JiebaLike } };
    const { dict } = require("@node-rs/jieba/dict") as { dict: Uint8Array };
    jiebaInstance = Jieba.withDict(dict);
  }
  return text ? jiebaInstance.cut(text, true) : [];
}

// ---- Python string helpers -------------------------------------------------------------------------

/** Python's str.split() whitespace. */
const PY_WS = "\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";
const WS_RUN = new RegExp(`[${PY_WS}]+`, "g");
/** `s.split()` */
export function pySplit(s: string): string[] {
  return s.split(WS_RUN).filter((x) => x.length > 0);
}

/** Python's `string.punctuation`. */
export const ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";
const CN_PUNCTUATION = "！？｡。＂＃＄％＆＇（）＊＋，－／：；＜＝＞＠［＼］＾＿｀｛｜｝～｟｠｢｣､、〃》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟〰〾〿–—‘’‛“”„‟…‧﹏.";
const ZH_PUNCT = new Set(Array.from(ASCII_PUNCTUATION + CN_PUNCTUATION));
const EN_PUNCT = new Set(Array.from(ASCII_PUNCTUATION));

/** LongBench `normalize_zh_answer`: lowercase, drop ASCII and Chinese punctuation, drop whitespace. */
export function normalizeZhAnswer(s: string): string {
  const noPunct = Array.from(s.toLowerCase()).filter((c) => !ZH_PUNCT.has(c)).join("");
  return pySplit(noPunct).join("");
}

/** LongBench `normalize_answer` (SQuAD): lowercase, drop punctuation, articles, extra whitespace. */
export function normalizeAnswer(s: string): string {
  const noPunct = Array.from(s.toLowerCase()).filter((c) => !EN_PUNCT.has(c)).join("");
  // Python's \b is Unicode-aware: a word character is a letter, digit or underscore of any script
  const noArticles = noPunct.replace(/(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu, " ");
  return pySplit(noArticles).join(" ");
}

// ---- token F1 ------------------------------------------------------------------------------------

/** Multiset token F1 (`f1_score`). */
export function tokenF1(pred: string[], gold: string[]): number {
  const counts = new Map<string, number>();
  for (const t of gold) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of pred) {
    const c = counts.get(t) ?? 0;
    if (c > 0) { same++; counts.set(t, c - 1); }
  }
  if (same === 0) return 0;
  const p = same / pred.length, r = same / gold.length;
  return (2 * p * r) / (p + r);
}

/** `qa_f1_score`: English token F1 after SQuAD normalisation. */
export function qaF1Score(prediction: string, gold: string): number {
  return tokenF1(pySplit(normalizeAnswer(prediction)), pySplit(normalizeAnswer(gold)));
}

/** `qa_f1_zh_score`: jieba words, each normalised, empties dropped, token F1. */
export function qaF1ZhScore(prediction: string, gold: string): number {
  const norm = (s: string) => jiebaCut(s).map(normalizeZhAnswer).filter((t) => t.length > 0);
  return tokenF1(norm(prediction), norm(gold));
}

// ---- Rouge-L (the `rouge` package, 1.0.x) ------------------------------------------------------------

/** `rouge.Rouge` sentence split: on ".", whitespace collapsed, empty pieces dropped. */
function rougeSentences(text: string): string[] {
  return text.split(".").filter((x) => x.length > 0).map((x) => pySplit(x).join(" "));
}

/** The words of a reconstructed LCS of x and y (the rouge package's `_recon_lcs`, as a set). */
function reconLcs(x: string[], y: string[]): Set<string> {
  const n = x.length, m = y.length, w = m + 1;
  const t = new Int32Array((n + 1) * w);
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      t[i * w + j] = x[i - 1] === y[j - 1] ? t[(i - 1) * w + j - 1]! + 1 : Math.max(t[(i - 1) * w + j]!, t[i * w + j - 1]!);
    }
  }
  const out = new Set<string>();
  let i = n, j = m;
  while (i > 0 && j > 0) {
    if (x[i - 1] === y[j - 1]) { out.add(x[i - 1]!); i--; j--; }
    else if (t[(i - 1) * w + j]! > t[i * w + j - 1]!) i--;
    else j--;
  }
  return out;
}

/**
 * `Rouge().get_scores([hyp], [ref], avg=True)["rouge-l"]["f"]`: summary-level Rouge-L with the
 * package's set semantics (distinct words; the union LCS counts distinct words), F with +1e-8.
 * Returns null where the package raises (an empty hypothesis or reference), which LongBench's
 * `rouge_score` turns into 0. (Not reproduced: the package's recursive LCS also raises, hence 0,
 * for sentence pairs whose LCS path exceeds Python's recursion limit, about 1,000 steps.)
 */
export function rougeLF(hyp: string, ref: string): number | null {
  const h = rougeSentences(hyp), r = rougeSentences(ref);
  if (h.length === 0 || r.length === 0) return null;
  const words = (ss: string[]) => ss.flatMap((s) => s.split(" "));
  const m = new Set(words(r)).size, n = new Set(words(h)).size;
  const union = new Set<string>();
  let llcs = 0;
  for (const rs of r) {
    const prev = union.size;
    const rw = rs.split(" ");
    for (const hs of h) for (const x of reconLcs(rw, hs.split(" "))) union.add(x);
    llcs += union.size - prev;
  }
  const rl = llcs / m, pl = llcs / n;
  return 2 * ((pl * rl) / (pl + rl + 1e-8));
}

/** `rouge_score`: Rouge-L F, 0 where the package raises. */
export function rougeScore(prediction: string, gold: string): number {
  return rougeLF(prediction, gold) ?? 0;
}

/** `rouge_zh_score`: jieba words joined by spaces, then Rouge-L F. */
export function rougeZhScore(prediction: string, gold: string): number {
  return rougeScore(jiebaCut(prediction).join(" "), jiebaCut(gold).join(" "));
}

// ---- retrieval, count, classification, code ---------------------------------------------------------

function shareEqual(prediction: string, id: string): number {
  // Python's \d matches any Unicode decimal digit
  const nums = prediction.match(/\p{Nd}+/gu) ?? [];
  return nums.length === 0 ? 0 : nums.filter((x) => x === id).length / nums.length;
}

/** `retrieval_zh_score`: the gold paragraph number (`段落(\d+)`); share of numbers in the prediction equal to it. */
export function retrievalZhScore(prediction: string, gold: string): number {
  const m = /段落(\p{Nd}+)/u.exec(gold);
  if (!m) throw new Error(`retrieval_zh: the gold answer "${gold}" has no 段落N`);
  return shareEqual(prediction, m[1]!);
}

/** `retrieval_score` (English: `Paragraph (\d+)`). */
export function retrievalScore(prediction: string, gold: string): number {
  const m = /Paragraph (\p{Nd}+)/u.exec(gold);
  if (!m) throw new Error(`retrieval: the gold answer "${gold}" has no "Paragraph N"`);
  return shareEqual(prediction, m[1]!);
}

/** `count_score`: share of the numbers in the prediction equal to the gold count. */
export function countScore(prediction: string, gold: string): number {
  return shareEqual(prediction, String(gold));
}

/**
 * `classification_score`: the classes that occur in the prediction, minus those contained in the
 * gold class name (but not equal to it) - removed while iterating over the same Python list, which
 * skips the element after each removal, as reproduced here; then 1/len if the gold class is among
 * them, else 0. (The difflib fallback of metrics.py is unreachable: `em_match_list != 0` is always true.)
 */
export function classificationScore(prediction: string, gold: string, allClasses: readonly string[]): number {
  const list = allClasses.filter((c) => prediction.includes(c));
  for (let i = 0; i < list.length; i++) {
    const t = list[i]!;
    if (gold.includes(t) && t !== gold) list.splice(list.indexOf(t), 1);
  }
  return list.includes(gold) ? 1 / list.length : 0;
}

/** `code_sim_score`: the first line without "`", "#" or "//", fuzzywuzzy ratio / 100. */
export function codeSimScore(prediction: string, gold: string): number {
  const lines = prediction.replace(/^\n+/, "").split("\n");
  const line = lines.find((l) => !l.includes("`") && !l.includes("#") && !l.includes("//")) ?? "";
  return fuzzRatio(line, gold) / 100;
}

// ---- per task ----------------------------------------------------------------------------------------

export type Metric = (prediction: string, gold: string, allClasses: readonly string[]) => number;

export const TASK_METRIC: Record<string, { name: string; fn: Metric }> = {
  narrativeqa: { name: "qa_f1_score", fn: qaF1Score },
  qasper: { name: "qa_f1_score", fn: qaF1Score },
  multifieldqa_en: { name: "qa_f1_score", fn: qaF1Score },
  multifieldqa_zh: { name: "qa_f1_zh_score", fn: qaF1ZhScore },
  hotpotqa: { name: "qa_f1_score", fn: qaF1Score },
  "2wikimqa": { name: "qa_f1_score", fn: qaF1Score },
  musique: { name: "qa_f1_score", fn: qaF1Score },
  dureader: { name: "rouge_zh_score", fn: rougeZhScore },
  gov_report: { name: "rouge_score", fn: rougeScore },
  qmsum: { name: "rouge_score", fn: rougeScore },
  multi_news: { name: "rouge_score", fn: rougeScore },
  vcsum: { name: "rouge_zh_score", fn: rougeZhScore },
  trec: { name: "classification_score", fn: classificationScore },
  triviaqa: { name: "qa_f1_score", fn: qaF1Score },
  samsum: { name: "rouge_score", fn: rougeScore },
  lsht: { name: "classification_score", fn: classificationScore },
  passage_retrieval_en: { name: "retrieval_score", fn: retrievalScore },
  passage_count: { name: "count_score", fn: countScore },
  passage_retrieval_zh: { name: "retrieval_zh_score", fn: retrievalZhScore },
  lcc: { name: "code_sim_score", fn: codeSimScore },
  "repobench-p": { name: "code_sim_score", fn: codeSimScore },
};

/** Tasks whose prediction is cut to its first line before scoring (LongBench eval.py). */
export const FIRST_LINE_TASKS = new Set(["trec", "triviaqa", "samsum", "lsht"]);

/** One item's score: the best over its gold answers (eval.py `scorer`). */
export function itemScore(task: string, prediction: string, answers: readonly string[], allClasses: readonly string[] | null): number {
  const m = TASK_METRIC[task];
  if (!m) throw new Error(`no LongBench metric for task "${task}"`);
  let p = prediction;
  if (FIRST_LINE_TASKS.has(task)) p = p.replace(/^\n+/, "").split("\n")[0]!;
  let best = 0;
  for (const g of answers) best = Math.max(best, m.fn(p, g, allClasses ?? []));
  return best;
}

/** Python's round(x, 2): the nearest two-decimal number; exact ties (x = odd/8) to even. */
export function pyRound2(x: number): number {
  const e = x * 8;
  if (Number.isInteger(e) && e % 2 !== 0) {
    const n = Math.floor(x * 100);
    return (n % 2 === 0 ? n : n + 1) / 100;
  }
  return Number(x.toFixed(2));
}

/** Task score as LongBench's eval.py: round(100 x total / count, 2). */
export function taskScore(scores: readonly number[]): number {
  if (scores.length === 0) return NaN;
  const total = scores.reduce((a, b) => a + b, 0);
  return pyRound2((100 * total) / scores.length);
}
