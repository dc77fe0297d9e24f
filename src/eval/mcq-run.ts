/**
 * Running a multiple-choice benchmark over subjects on a backend, with a per-subject cache: every
 * answered question is appended to `<cacheDir>/<subject>.jsonl` (after a header line holding a
 * fingerprint of the configuration, model and data files), so an interrupted run continues where
 * it stopped, and a run with a larger --limit only evaluates the new questions.
 */
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError, ContextFullError } from "../errors.js";
import type { EvalBackend } from "./backend.js";
import {
  GROUP_ORDER, LETTERS, argmaxFirst, buildPrompt, extractAnswer, seededRandom, summarize, tally,
  type Bench, type ExtractMethod, type Letter, type McqData, type McqSummary, type SubjectData, type SubjectResult, type TemplateMode,
} from "./mcq.js";

export type McqMode = "logits" | "seed-scores" | "generate";

/** New tokens in --generate mode (the seed's max_new_tokens). */
export const GENERATE_TOKENS = 20;

export interface McqRunOptions {
  data: McqData;
  /** few-shot examples from the dev split (0 = zero-shot; -1 = all dev rows) */
  shots: number;
  template: TemplateMode;
  mode: McqMode;
  /** subjects to run (default: all of the split) */
  subjects?: string[];
  /** at most this many questions per subject (the first ones) */
  limit?: number;
  /** drop few-shot examples from the end until the prompt fits the backend's context */
  fit?: boolean;
  /** where per-subject progress is kept; null: no cache */
  cacheDir: string | null;
  backend: EvalBackend;
  log?: (line: string) => void;
  onProgress?: (done: number, total: number, subject: string) => void;
  signal?: AbortSignal;
}

export interface McqReport {
  benchmark: Bench;
  split: string;
  shots: number;
  template: TemplateMode;
  scoring: McqMode;
  model: string;
  data: string;
  limit: number | null;
  date: string;
  summary: McqSummary;
}

interface CachedItem {
  i: number;
  pred: Letter;
  gold: Letter | null;
  /** letter scores (logits or log-probabilities) */
  scores?: number[];
  /** generate mode: the generated text and how the letter was found */
  response?: string;
  method?: ExtractMethod;
  /** shots actually used when fewer than asked (--fit) */
  shots?: number;
}

function fingerprint(o: McqRunOptions, sd: SubjectData): string {
  const h = createHash("sha256");
  h.update(JSON.stringify({ v: 1, bench: o.data.bench, split: o.data.split, subject: sd.subject, shots: o.shots, template: o.template, mode: o.mode, model: o.backend.id, fit: !!o.fit }));
  for (const f of sd.files) h.update(readFileSync(f));
  return h.digest("hex").slice(0, 32);
}

function readCache(file: string, fp: string, log: (s: string) => void): Map<number, CachedItem> {
  const got = new Map<number, CachedItem>();
  if (!existsSync(file)) return got;
  const lines = readFileSync(file, "utf8").split("\n").filter((l) => l.trim());
  try {
    const head = JSON.parse(lines[0] ?? "{}") as { fingerprint?: string };
    if (head.fingerprint !== fp) {
      log(`cache ${file}: made with another configuration, model or data; starting this subject again`);
      return got;
    }
  } catch {
    return got;
  }
  for (const l of lines.slice(1)) {
    try {
      const it = JSON.parse(l) as CachedItem;
      if (Number.isInteger(it.i) && (LETTERS as readonly string[]).includes(it.pred)) got.set(it.i, it);
    } catch {
      // a line cut by an interruption: that question is evaluated again
    }
  }
  return got;
}

export async function runMcq(o: McqRunOptions): Promise<McqReport> {
  const { data, backend } = o;
  const bench = data.bench;
  const log = o.log ?? (() => {});
  if (bench === "mmlu" && o.template === "instruct") throw new ArgumentError("mmlu: the seed evaluates MMLU without a chat template; use --template none");
  if (bench === "mmlu" && o.mode === "generate") throw new ArgumentError("mmlu: the seed's MMLU method scores the letters' logits; --generate is for ceval and cmmlu");
  const subjects = o.subjects ?? data.subjects;
  const loaded = subjects.map((s) => data.load(s, o.shots !== 0));
  for (const sd of loaded) {
    if (o.shots > sd.dev.length) {
      throw new ArgumentError(`${data.devFile(sd.subject)} has ${sd.dev.length} rows, fewer than --shots ${o.shots}`);
    }
  }
  if (data.split === "dev" && o.shots !== 0) log("note: evaluating the dev split with few-shot examples taken from the same dev split");
  const count = (sd: SubjectData) => Math.min(sd.items.length, o.limit ?? Infinity);
  const total = loaded.reduce((a, sd) => a + count(sd), 0);
  let done = 0;
  if (o.cacheDir) mkdirSync(o.cacheDir, { recursive: true });
  const results: SubjectResult[] = [];
  const budget = backend.contextSize !== undefined ? backend.contextSize - (o.mode === "generate" ? GENERATE_TOKENS : 0) : undefined;

  const promptFor = (sd: SubjectData, i: number): { prompt: string; shots: number } => {
    const item = sd.items[i]!;
    let k = o.shots;
    let p = buildPrompt(bench, sd.subject, sd.dev, item, k, o.template);
    if (budget !== undefined && backend.countTokens) {
      let len = backend.countTokens(p);
      if (o.fit) {
        if (k < 0) k = sd.dev.length;
        while (len > budget && k > 0) {
          k--;
          p = buildPrompt(bench, sd.subject, sd.dev, item, k, o.template);
          len = backend.countTokens(p);
        }
      }
      if (len > budget) {
        throw new ContextFullError(`${sd.subject} question ${i} (${data.testFile(sd.subject)} row ${i + 1}): the prompt is ${len} tokens${o.mode === "generate" ? ` + ${GENERATE_TOKENS} to generate` : ""}, more than the context of ${backend.contextSize}` +
          (o.fit ? " even without examples" : "; raise -c (up to the model's trained context), use fewer --shots, or --fit to drop examples until it fits"));
      }
    }
    return { prompt: p, shots: k };
  };

  // the cache, and every prompt still to evaluate, before evaluating anything (a prompt that does
  // not fit stops the run now, not hours later)
  const plans = loaded.map((sd) => {
    const n = count(sd);
    const fp = fingerprint(o, sd);
    const cacheFile = o.cacheDir ? join(o.cacheDir, `${sd.subject}.jsonl`) : null;
    const have = cacheFile ? readCache(cacheFile, fp, log) : new Map<number, CachedItem>();
    const pending: number[] = [];
    for (let i = 0; i < n; i++) if (!have.has(i)) pending.push(i);
    return { sd, n, fp, cacheFile, have, pending, prompts: pending.map((i) => promptFor(sd, i)) };
  });

  for (const { sd, n, fp, cacheFile, have, pending, prompts: planned } of plans) {
    if (cacheFile && (have.size === 0 || !existsSync(cacheFile))) writeFileSync(cacheFile, JSON.stringify({ fingerprint: fp, subject: sd.subject }) + "\n");
    const reused = n - pending.length;
    if (reused > 0) log(`${sd.subject}: ${reused} of ${n} questions from the cache`);
    done += reused;
    o.onProgress?.(done, total, sd.subject);

    const step = Math.max(1, backend.parallel) * 2;
    for (let b = 0; b < pending.length; b += step) {
      if (o.signal?.aborted) throw new Error("aborted");
      const idx = pending.slice(b, b + step);
      const ps = planned.slice(b, b + step);
      const prompts = ps.map((p) => p.prompt);
      let got: CachedItem[];
      if (o.mode === "generate") {
        const texts = await backend.generate(prompts, { maxTokens: GENERATE_TOKENS, sampling: { temperature: 0, repeatPenalty: 1.1, repeatLastN: -1 } });
        got = idx.map((i, j) => {
          const item = sd.items[i]!;
          const r = extractAnswer(texts[j]!, item.options, seededRandom(`${sd.subject}:${i}`));
          return { i, pred: r.answer, gold: item.answer, response: texts[j]!, method: r.method };
        });
      } else {
        const sc = await backend.scoreLetters(prompts, bench, { seedScores: o.mode === "seed-scores" });
        got = idx.map((i, j) => {
          const s = sc[j]!.scores;
          if (s.some((x) => Number.isNaN(x))) throw new Error(`${sd.subject} question ${i}: a letter's score is NaN`);
          return { i, pred: LETTERS[argmaxFirst(s)]!, gold: sd.items[i]!.answer, scores: s.map((x) => Math.round(x * 1e4) / 1e4) };
        });
      }
      got.forEach((g, j) => { if (ps[j]!.shots !== o.shots) g.shots = ps[j]!.shots; });
      if (cacheFile) appendFileSync(cacheFile, got.map((g) => JSON.stringify(g) + "\n").join(""));
      for (const g of got) have.set(g.i, g);
      done += got.length;
      o.onProgress?.(done, total, sd.subject);
    }

    let num = 0, correct = 0, unlabeled = 0, fewer = 0;
    const predictions: Record<string, Letter> = {};
    const extraction: Partial<Record<ExtractMethod, number>> = {};
    for (let i = 0; i < n; i++) {
      const g = have.get(i)!;
      predictions[String(i)] = g.pred;
      const gold = sd.items[i]!.answer;
      if (gold === null) unlabeled++;
      else { num++; if (g.pred === gold) correct++; }
      if (g.method) extraction[g.method] = (extraction[g.method] ?? 0) + 1;
      if (g.shots !== undefined) fewer++;
    }
    results.push({
      subject: sd.subject, name: sd.name, group: sd.group, ...(sd.subcategories ? { subcategories: sd.subcategories } : {}),
      ...tally(num, correct), unlabeled, predictions,
      ...(o.mode === "generate" ? { extraction } : {}), ...(fewer ? { fewerShots: fewer } : {}),
    });
  }
  return {
    benchmark: bench, split: data.split, shots: o.shots, template: o.template, scoring: o.mode, model: backend.label,
    data: data.dir, limit: o.limit ?? null, date: new Date().toISOString(), summary: summarize(results, data.groups.length ? data.groups : GROUP_ORDER[bench]),
  };
}

/** The JSON written to disk: the seed's summary fields (percent everywhere) and the submission. */
export function reportJson(r: McqReport): unknown {
  const s = r.summary;
  return {
    benchmark: r.benchmark, split: r.split, shots: r.shots, template: r.template, scoring: r.scoring,
    model: r.model, data: r.data, limit: r.limit, date: r.date,
    overall: s.overall, macro_average: s.macro,
    groups: s.groups,
    ...(s.subcategories ? { subcategories: s.subcategories } : {}),
    subjects: Object.fromEntries(s.subjects.map((x) => [x.subject, {
      name: x.name, group: x.group, num: x.num, correct: x.correct, accuracy: x.accuracy,
      ...(x.unlabeled ? { unlabeled: x.unlabeled } : {}), ...(x.extraction ? { extraction: x.extraction } : {}),
      ...(x.fewerShots ? { fewer_shots: x.fewerShots } : {}),
    }])),
    submission: Object.fromEntries(s.subjects.map((x) => [x.subject, x.predictions])),
  };
}

