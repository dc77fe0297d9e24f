/**
 * LongBench as the seed runs it (`scripts/longbench/pred_mixtral.py` + LongBench's `eval.py`):
 * prompt = the task's template from config/dataset2prompt.json filled with the item; when it is
 * longer than max_length tokens, the middle is cut (the first and last max_length/2 tokens are
 * decoded and the two texts joined, then tokenized again); no chat template; at most
 * dataset2maxlen[task] new tokens; scored with the task's official metric.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ArgumentError } from "../errors.js";
import type { SamplingParams } from "../sampling/index.js";
import type { SpmTokenizer } from "../tokenizer/spm.js";
import { encodePrompt, type EvalBackend } from "./backend.js";
import { DataError, readJsonFile, readJsonlFile, requireDir } from "./data.js";
import { TASK_METRIC, itemScore, taskScore } from "./metrics.js";

export const LONGBENCH_LAYOUT = "DIR/<task>.jsonl (JSON Lines with context, input, answers, all_classes, length) and DIR/config/dataset2prompt.json + DIR/config/dataset2maxlen.json (from THUDM/LongBench)";

/** The seed's `--predict_on zh` tasks, and the rest of LongBench. */
export const ZH_TASKS = ["dureader", "multifieldqa_zh", "vcsum", "lsht", "passage_retrieval_zh"];

/** The six categories of the seed's LongBench table (its "average" is the mean of these). */
export const TASK_CATEGORY: Record<string, string> = {
  narrativeqa: "Single-Doc QA", qasper: "Single-Doc QA", multifieldqa_en: "Single-Doc QA", multifieldqa_zh: "Single-Doc QA",
  hotpotqa: "Multi-Doc QA", "2wikimqa": "Multi-Doc QA", musique: "Multi-Doc QA", dureader: "Multi-Doc QA",
  gov_report: "Summarization", qmsum: "Summarization", multi_news: "Summarization", vcsum: "Summarization",
  trec: "Few-shot", triviaqa: "Few-shot", samsum: "Few-shot", lsht: "Few-shot",
  passage_count: "Synthetic", passage_retrieval_en: "Synthetic", passage_retrieval_zh: "Synthetic",
  lcc: "Code", "repobench-p": "Code",
};

export const DEFAULT_MAX_LENGTH = 3584;

/** The seed's sampling (--sample): temperature 0.2, top-p 0.95, top-k 40, repetition penalty 1.1 over the whole input, seed 42. */
export const SEED_SAMPLING: Partial<SamplingParams> = { temperature: 0.2, topP: 0.95, topK: 40, repeatPenalty: 1.1, repeatLastN: -1, minP: 0, seed: 42 };
/** The default: greedy, with the seed's repetition penalty over the whole input. */
export const GREEDY_SAMPLING: Partial<SamplingParams> = { temperature: 0, repeatPenalty: 1.1, repeatLastN: -1 };

export interface LongBenchItem {
  input: string;
  context: string;
  answers: string[];
  all_classes: string[] | null;
  length: number;
  _id?: string;
  [k: string]: unknown;
}

/** Python's `str.format(**item)` for the templates: `{name}` fields, `{{`/`}}` escapes. */
export function formatTemplate(template: string, item: Record<string, unknown>): string {
  return template.replace(/\{\{|\}\}|\{([^{}]*)\}/g, (m, name: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    if (!(name! in item)) throw new DataError(`the prompt template needs "{${name}}", which the item does not have`);
    const v = item[name!];
    return typeof v === "string" ? v : pyStr(v);
  });
}

function pyStr(v: unknown): string {
  if (v === null || v === undefined) return "None";
  if (typeof v === "boolean") return v ? "True" : "False";
  return String(v);
}

/**
 * Middle truncation: if the prompt's tokens (BOS included, as the seed's tokenizer call) exceed
 * maxLength, keep decode(first half) + decode(last half), half = floor(maxLength / 2).
 * Returns the (possibly shortened) prompt text and whether it was cut.
 */
export function truncateMiddle(tok: SpmTokenizer, prompt: string, maxLength: number): { prompt: string; truncated: boolean; tokens: number } {
  const ids = encodePrompt(tok, prompt);
  if (ids.length <= maxLength) return { prompt, truncated: false, tokens: ids.length };
  const half = Math.floor(maxLength / 2);
  const text = tok.decode(ids.slice(0, half), { skipSpecial: true }) + tok.decode(ids.slice(ids.length - half), { skipSpecial: true });
  return { prompt: text, truncated: true, tokens: encodePrompt(tok, text).length };
}

/** A LongBench data folder: task files and the two config files. */
export class LongBenchData {
  readonly prompts: Record<string, string>;
  readonly maxLen: Record<string, number>;
  readonly configDir: string;

  constructor(readonly dir: string) {
    requireDir(dir, "LongBench data folder", LONGBENCH_LAYOUT);
    const cands = [join(dir, "config"), dir, join(dirname(dir), "config")];
    const cfg = cands.find((c) => existsSync(join(c, "dataset2prompt.json")));
    if (!cfg) throw new DataError(`no dataset2prompt.json in ${cands.join(" or ")}; expected layout: ${LONGBENCH_LAYOUT}`);
    this.configDir = cfg;
    this.prompts = readJsonFile(join(cfg, "dataset2prompt.json"), LONGBENCH_LAYOUT) as Record<string, string>;
    this.maxLen = readJsonFile(join(cfg, "dataset2maxlen.json"), LONGBENCH_LAYOUT) as Record<string, number>;
  }

  /** Tasks with a data file here. */
  available(): string[] {
    return Object.keys(TASK_METRIC).filter((t) => existsSync(this.file(t)));
  }

  file(task: string): string {
    return join(this.dir, `${task}.jsonl`);
  }

  load(task: string): LongBenchItem[] {
    if (!TASK_METRIC[task]) throw new ArgumentError(`longbench: unknown task "${task}" (known: ${Object.keys(TASK_METRIC).join(", ")})`);
    const f = this.file(task);
    if (!existsSync(f)) {
      throw new DataError(`${f} is missing (tasks present in ${this.dir}: ${this.available().join(", ") || "none"}); expected layout: ${LONGBENCH_LAYOUT}`);
    }
    if (typeof this.prompts[task] !== "string") throw new DataError(`${join(this.configDir, "dataset2prompt.json")} has no prompt for "${task}"`);
    if (!Number.isInteger(this.maxLen[task])) throw new DataError(`${join(this.configDir, "dataset2maxlen.json")} has no length for "${task}"`);
    return readJsonlFile(f, LONGBENCH_LAYOUT).map((o, i) => {
      const bad = (what: string) => new DataError(`${f}:${i + 1}: ${what}; expected layout: ${LONGBENCH_LAYOUT}`);
      if (typeof o["context"] !== "string" || typeof o["input"] !== "string") throw bad('"context" and "input" must be strings');
      if (!Array.isArray(o["answers"]) || !o["answers"].every((a) => typeof a === "string")) throw bad('"answers" must be a list of strings');
      const ac = o["all_classes"];
      if (ac !== null && ac !== undefined && !(Array.isArray(ac) && ac.every((a) => typeof a === "string"))) throw bad('"all_classes" must be null or a list of strings');
      return { ...o, all_classes: (ac as string[] | null | undefined) ?? null, length: Number(o["length"] ?? 0) } as LongBenchItem;
    });
  }
}

export interface LongBenchRunOptions {
  data: LongBenchData;
  tasks: string[];
  backend: EvalBackend;
  /** the tokenizer used for middle truncation (the model's) */
  tokenizer: SpmTokenizer;
  maxLength: number;
  limit?: number;
  sampling: Partial<SamplingParams>;
  cacheDir: string | null;
  log?: (line: string) => void;
  onProgress?: (done: number, total: number, task: string) => void;
}

export interface TaskResult {
  task: string;
  category: string;
  metric: string;
  num: number;
  /** round(100 x mean, 2) */
  score: number;
  truncated: number;
}

export interface LongBenchReport {
  model: string;
  data: string;
  maxLength: number;
  sampling: Partial<SamplingParams>;
  limit: number | null;
  date: string;
  tasks: TaskResult[];
  /** mean score per category over the tasks run */
  categories: Record<string, number>;
  /** mean of the category scores (the seed's "average") */
  average: number;
}

interface CachedPred { i: number; pred: string; answers: string[]; all_classes: string[] | null; length: number; truncated: boolean; score: number }

function fingerprint(o: LongBenchRunOptions, task: string): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ v: 1, task, model: o.backend.id, maxLength: o.maxLength, sampling: o.sampling, prompt: o.data.prompts[task], maxGen: o.data.maxLen[task] }));
  h.update(readFileSync(o.data.file(task)));
  return h.digest("hex").slice(0, 32);
}

export async function runLongBench(o: LongBenchRunOptions): Promise<LongBenchReport> {
  const log = o.log ?? (() => {});
  const all = o.tasks.map((t) => ({ task: t, items: o.data.load(t) }));
  const count = (n: number) => Math.min(n, o.limit ?? Infinity);
  const total = all.reduce((a, t) => a + count(t.items.length), 0);
  if (o.backend.contextSize !== undefined) {
    const need = o.maxLength + Math.max(...o.tasks.map((t) => o.data.maxLen[t]!));
    if (need > o.backend.contextSize) {
      throw new ArgumentError(`longbench: --max-length ${o.maxLength} + up to ${need - o.maxLength} generated tokens do not fit the context of ${o.backend.contextSize}; use --max-length ${Math.max(64, o.backend.contextSize - (need - o.maxLength) - 16)} or less`);
    }
  }
  if (o.cacheDir) mkdirSync(o.cacheDir, { recursive: true });
  let done = 0;
  const results: TaskResult[] = [];
  for (const { task, items } of all) {
    const n = count(items.length);
    const fp = fingerprint(o, task);
    const file = o.cacheDir ? join(o.cacheDir, `${task}.jsonl`) : null;
    const have = new Map<number, CachedPred>();
    if (file && existsSync(file)) {
      const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.trim());
      let head: { fingerprint?: string } = {};
      try { head = JSON.parse(lines[0] ?? "{}"); } catch { /* unreadable: start again */ }
      if (head.fingerprint === fp) {
        for (const l of lines.slice(1)) {
          try { const p = JSON.parse(l) as CachedPred; if (Number.isInteger(p.i) && typeof p.pred === "string") have.set(p.i, p); } catch { /* a cut line */ }
        }
      } else log(`cache ${file}: made with another configuration, model or data; starting this task again`);
    }
    if (file && have.size === 0) writeFileSync(file, JSON.stringify({ fingerprint: fp, task }) + "\n");
    const reused = [...have.keys()].filter((i) => i < n).length;
    if (reused) log(`${task}: ${reused} of ${n} items from the cache`);
    done += reused;
    o.onProgress?.(done, total, task);
    const template = o.data.prompts[task]!, maxGen = o.data.maxLen[task]!;
    for (let i = 0; i < n; i++) {
      if (have.has(i)) continue;
      const it = items[i]!;
      const t = truncateMiddle(o.tokenizer, formatTemplate(template, it), o.maxLength);
      const [pred] = await o.backend.generate([t.prompt], { maxTokens: maxGen, sampling: o.sampling });
      const p: CachedPred = {
        i, pred: pred!, answers: it.answers, all_classes: it.all_classes, length: it.length, truncated: t.truncated,
        score: itemScore(task, pred!, it.answers, it.all_classes),
      };
      if (file) appendFileSync(file, JSON.stringify(p) + "\n");
      have.set(i, p);
      done++;
      o.onProgress?.(done, total, task);
    }
    const scores: number[] = [];
    let truncated = 0;
    for (let i = 0; i < n; i++) {
      const p = have.get(i)!;
      // scored again from the prediction, so a metric fix applies to cached runs too
      scores.push(itemScore(task, p.pred, p.answers, p.all_classes));
      if (p.truncated) truncated++;
    }
    results.push({ task, category: TASK_CATEGORY[task] ?? "Other", metric: TASK_METRIC[task]!.name, num: n, score: taskScore(scores), truncated });
  }
  const byCat = new Map<string, number[]>();
  for (const r of results) byCat.set(r.category, [...(byCat.get(r.category) ?? []), r.score]);
  const categories = Object.fromEntries([...byCat].map(([c, v]) => [c, v.reduce((a, b) => a + b, 0) / v.length]));
  const cv = Object.values(categories);
  return {
    model: o.backend.label, data: o.data.dir, maxLength: o.maxLength, sampling: o.sampling, limit: o.limit ?? null, date: new Date().toISOString(),
    tasks: results, categories, average: cv.length ? cv.reduce((a, b) => a + b, 0) / cv.length : NaN,
  };
}

export function formatLongBenchTable(r: LongBenchReport, title: string): string {
  const lines = [title, "", "| task | category | metric | items | truncated | score |", "| --- | --- | --- | ---: | ---: | ---: |"];
  for (const t of r.tasks) lines.push(`| ${t.task} | ${t.category} | ${t.metric} | ${t.num} | ${t.truncated} | ${t.score.toFixed(2)} |`);
  for (const [c, v] of Object.entries(r.categories)) lines.push(`| **${c}** | | | | | ${v.toFixed(2)} |`);
  lines.push(`| **average of categories** | | | | | **${r.average.toFixed(2)}** |`);
  return lines.join("\n") + "\n";
}
