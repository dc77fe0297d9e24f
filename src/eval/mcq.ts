/**
 * Multiple-choice benchmarks as the seed project evaluates them: C-Eval and CMMLU (the seed's
 * `scripts/ceval`, `scripts/cmmlu`, modified from the official C-Eval code) and MMLU (the seed's
 * `scripts/mmlu/eval.py`, from Baichuan-7B). This module holds the pure parts: data layout,
 * prompt strings, answer scoring and extraction, and the summary.
 */
import { existsSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { pandasCells } from "./csv.js";
import { DataError, readCsvFile, readJsonFile, requireDir } from "./data.js";

export type Bench = "ceval" | "cmmlu" | "mmlu";
export const BENCHES: readonly Bench[] = ["ceval", "cmmlu", "mmlu"];
export const LETTERS = ["A", "B", "C", "D"] as const;
export type Letter = (typeof LETTERS)[number];
export type TemplateMode = "none" | "instruct";

export interface McqItem {
  question: string;
  options: [string, string, string, string];
  /** "A".."D", or null when the split has no answers (C-Eval test) */
  answer: Letter | null;
}

export interface SubjectInfo {
  subject: string;
  /** display name (the Chinese name for C-Eval/CMMLU, the words of the key for MMLU) */
  name: string;
  /** the group the seed reports it under ("STEM", ..., or "(unmapped)") */
  group: string;
  /** MMLU only: its subcategories */
  subcategories?: string[];
}

export interface SubjectData extends SubjectInfo {
  items: McqItem[];
  /** few-shot exemplars (the dev split), in file order */
  dev: McqItem[];
  files: string[];
}

export const LAYOUTS: Record<Bench, string> = {
  ceval: "DIR/{dev,val,test}/<subject>_{dev,val,test}.csv (UTF-8, header id,question,A,B,C,D,answer[,explanation]) and DIR/subject_mapping.json ({subject: [English name, Chinese name, group]})",
  cmmlu: "DIR/{dev,test}/<subject>.csv (UTF-8, header ,Question,A,B,C,D,Answer) and DIR/subject_mapping.json ({\"mapping\": {subject: [subject, Chinese name, group]}})",
  mmlu: "DIR/{dev,val,test}/<subject>_{dev,val,test}.csv (UTF-8, no header: question,A,B,C,D,answer) and categories.json ({\"subcategories\": {subject: [...]}, \"categories\": {category: [...]}}) in DIR or its parent",
};

export const SPLITS: Record<Bench, { allowed: string[]; dflt: string }> = {
  ceval: { allowed: ["val", "test", "dev"], dflt: "val" },
  cmmlu: { allowed: ["test", "dev"], dflt: "test" },
  mmlu: { allowed: ["val", "test", "dev"], dflt: "val" },
};

/** Group order in the seed's summaries. */
export const GROUP_ORDER: Record<Bench, string[]> = {
  ceval: ["STEM", "Social Science", "Humanities", "Other"],
  cmmlu: ["China specific", "STEM", "Social Science", "Humanities", "Other"],
  mmlu: ["STEM", "humanities", "social sciences", "other (business, health, misc.)"],
};

function fileOf(bench: Bench, dir: string, split: string, subject: string): string {
  return bench === "cmmlu" ? join(dir, split, `${subject}.csv`) : join(dir, split, `${subject}_${split}.csv`);
}

function subjectOfFile(bench: Bench, split: string, file: string): string | null {
  if (!file.endsWith(".csv")) return null;
  if (bench === "cmmlu") return file.slice(0, -4);
  const suf = `_${split}.csv`;
  return file.endsWith(suf) ? file.slice(0, -suf.length) : null;
}

/** A benchmark's data folder: which subjects it has, their groups, and loading them. */
export class McqData {
  readonly subjects: string[];
  private readonly info = new Map<string, SubjectInfo>();
  readonly groups: string[];
  /** the metadata file used for the groups (or null when none was found) */
  readonly mappingFile: string | null;

  constructor(readonly bench: Bench, readonly dir: string, readonly split: string) {
    const layout = LAYOUTS[bench];
    requireDir(dir, `${bench} data folder`, layout);
    requireDir(join(dir, split), `${bench} ${split} split folder`, layout);
    this.subjects = readdirSync(join(dir, split)).map((f) => subjectOfFile(bench, split, f)).filter((s): s is string => s !== null).sort();
    if (this.subjects.length === 0) throw new DataError(`${join(dir, split)} holds no ${bench === "cmmlu" ? "<subject>.csv" : `<subject>_${split}.csv`} files; expected layout: ${layout}`);
    this.groups = [...GROUP_ORDER[bench]];
    if (bench === "mmlu") {
      const f = [join(dir, "categories.json"), join(dirname(dir), "categories.json")].find((p) => existsSync(p)) ?? null;
      this.mappingFile = f;
      if (f) {
        const j = readJsonFile(f, layout) as { subcategories?: Record<string, string[]>; categories?: Record<string, string[]> };
        if (!j || typeof j.subcategories !== "object" || typeof j.categories !== "object") throw new DataError(`${f}: expected {"subcategories": {...}, "categories": {...}}; expected layout: ${layout}`);
        this.groups = Object.keys(j.categories!);
        for (const [s, subs] of Object.entries(j.subcategories!)) {
          // the seed appends a subject to every category containing one of its subcategories; each
          // MMLU subject has one subcategory in exactly one category
          const cats = this.groups.filter((c) => subs.some((x) => j.categories![c]!.includes(x)));
          this.info.set(s, { subject: s, name: s.replaceAll("_", " "), group: cats[0] ?? "(unmapped)", subcategories: subs });
        }
      }
    } else {
      const f = join(dir, "subject_mapping.json");
      this.mappingFile = existsSync(f) ? f : null;
      if (this.mappingFile) {
        const j = readJsonFile(f, layout) as Record<string, unknown>;
        const m = (bench === "cmmlu" ? j["mapping"] : j) as Record<string, unknown> | undefined;
        if (!m || typeof m !== "object") throw new DataError(`${f}: expected ${bench === "cmmlu" ? '{"mapping": {subject: [subject, Chinese name, group]}}' : "{subject: [English name, Chinese name, group]}"}`);
        for (const [s, v] of Object.entries(m)) {
          if (s.startsWith("_")) continue;
          if (!Array.isArray(v) || v.length < 3) throw new DataError(`${f}: "${s}" should be [name, Chinese name, group], got ${JSON.stringify(v)}`);
          this.info.set(s, { subject: s, name: String(v[1]), group: String(v[2]) });
        }
      }
    }
    for (const g of new Set([...this.info.values()].map((i) => i.group))) if (!this.groups.includes(g)) this.groups.push(g);
  }

  subjectInfo(subject: string): SubjectInfo {
    return this.info.get(subject) ?? { subject, name: subject.replaceAll("_", " "), group: "(unmapped)" };
  }

  testFile(subject: string): string {
    return fileOf(this.bench, this.dir, this.split, subject);
  }

  devFile(subject: string): string {
    return fileOf(this.bench, this.dir, "dev", subject);
  }

  /** Load a subject's rows (and its dev rows when `withDev`). */
  load(subject: string, withDev: boolean): SubjectData {
    if (!this.subjects.includes(subject)) {
      throw new DataError(`${this.bench}: no subject "${subject}" in ${join(this.dir, this.split)} (${this.subjects.length} subjects: ${this.subjects.slice(0, 8).join(", ")}${this.subjects.length > 8 ? ", ..." : ""})`);
    }
    const test = this.testFile(subject);
    const items = readItems(this.bench, test, this.split !== "test" || this.bench !== "ceval");
    const dev = withDev ? readItems(this.bench, this.devFile(subject), true) : [];
    return { ...this.subjectInfo(subject), items, dev, files: withDev ? [test, this.devFile(subject)] : [test] };
  }
}

/**
 * Rows of one CSV file as pandas gives them to the seed's scripts (see csv.ts). C-Eval and CMMLU
 * files have a header (columns found by name, case-insensitively); MMLU files have none.
 */
export function readItems(bench: Bench, file: string, needAnswers: boolean): McqItem[] {
  const layout = LAYOUTS[bench];
  const rows = readCsvFile(file, layout);
  let body: string[][];
  let col: { q: number; opts: number[]; ans: number };
  if (bench === "mmlu") {
    body = rows;
    col = { q: 0, opts: [1, 2, 3, 4], ans: 5 };
  } else {
    if (rows.length === 0) throw new DataError(`${file}: empty file; expected layout: ${layout}`);
    const hdr = rows[0]!.map((h) => h.trim().toLowerCase());
    const at = (name: string, required: boolean) => {
      const i = hdr.indexOf(name);
      if (i < 0 && required) throw new DataError(`${file}: no "${name}" column in the header (${rows[0]!.join(",")}); expected layout: ${layout}`);
      return i;
    };
    col = { q: at("question", true), opts: LETTERS.map((l) => at(l.toLowerCase(), true)), ans: at("answer", needAnswers) };
    body = rows.slice(1);
  }
  const width = Math.max(col.q, col.ans, ...col.opts) + 1;
  body.forEach((r, i) => {
    if (r.length < width) throw new DataError(`${file}: row ${i + 1} has ${r.length} fields, expected ${width}; expected layout: ${layout}`);
  });
  const cells = pandasCells(body);
  return cells.map((r, i) => {
    const a = col.ans >= 0 ? (body[i]![col.ans] ?? "").trim() : "";
    let answer: Letter | null = null;
    if ((LETTERS as readonly string[]).includes(a)) answer = a as Letter;
    else if (needAnswers) throw new DataError(`${file}: row ${i + 1}: answer "${a}" is not one of A, B, C, D; expected layout: ${layout}`);
    return { question: r[col.q]!, options: col.opts.map((c) => r[c]!) as McqItem["options"], answer };
  });
}

// ---- prompts -------------------------------------------------------------------------------------

/** `question\nA. ..\nB. ..\nC. ..\nD. ..` */
export function questionBlock(item: McqItem): string {
  return item.question + LETTERS.map((l, i) => `\n${l}. ${item.options[i]}`).join("");
}

/** The C-Eval/CMMLU header; `{subject}` is the subject's file key, as in the seed and official code. */
export function cevalHeader(subject: string): string {
  return `以下是中国关于${subject}考试的单项选择题，请选出其中的正确答案。\n\n`;
}

/**
 * The few-shot "history" of the seed's C-Eval/CMMLU evaluator (empty for 0-shot): without a
 * template, header + k x `Q\n答案：X\n\n`; with the instruct template,
 * `[INST] header [/INST]好的，我会结合{subject}相关知识回答` + k x `[INST] Q\n答案： [/INST]X\n`.
 */
export function cevalHistory(subject: string, dev: McqItem[], k: number, template: TemplateMode): string {
  if (k === 0) return "";
  const shots = k < 0 ? dev : dev.slice(0, k);
  if (template === "instruct") {
    let p = `[INST] ${cevalHeader(subject)} [/INST]好的，我会结合${subject}相关知识回答`;
    for (const d of shots) p += `[INST] ${questionBlock(d)}\n答案： [/INST]${d.answer ?? ""}\n`;
    return p;
  }
  let p = cevalHeader(subject);
  for (const d of shots) p += `${questionBlock(d)}\n答案：${d.answer ?? ""}\n\n`;
  return p;
}

/** The full C-Eval/CMMLU prompt for one question (tokenized with BOS by the caller). */
export function cevalPrompt(subject: string, dev: McqItem[], item: McqItem, k: number, template: TemplateMode): string {
  const q = `${questionBlock(item)}\n答案：`;
  return cevalHistory(subject, dev, k, template) + (template === "instruct" ? `[INST] ${q} [/INST]` : q);
}

/** MMLU's `format_subject`: every word preceded by a space, hence the double space after "about". */
export function mmluSubject(subject: string): string {
  return subject.split("_").map((w) => " " + w).join("");
}

/** The seed's MMLU prompt (Baichuan-7B's): header always, k dev examples with `Answer: X`, then the question. */
export function mmluPrompt(subject: string, dev: McqItem[], item: McqItem, k: number): string {
  const shots = k < 0 ? dev : dev.slice(0, k);
  let p = `The following are multiple choice questions (with answers) about ${mmluSubject(subject)}.\n\n`;
  for (const d of shots) p += `${questionBlock(d)}\nAnswer: ${d.answer ?? ""}\n\n`;
  return p + `${questionBlock(item)}\nAnswer:`;
}

export function buildPrompt(bench: Bench, subject: string, dev: McqItem[], item: McqItem, k: number, template: TemplateMode): string {
  return bench === "mmlu" ? mmluPrompt(subject, dev, item, k) : cevalPrompt(subject, dev, item, k, template);
}

// ---- scoring from logits ---------------------------------------------------------------------------

/** Token ids scored per letter: C-Eval/CMMLU add the two (`▁X` and `X`), MMLU uses `▁X` alone. */
export interface LetterTokens {
  /** `encode("X")[0]` (C-Eval/CMMLU) or `encode("X")[-1]` with BOS (MMLU): the piece `▁X` */
  spaced: number[];
  /** C-Eval/CMMLU: `encode("：X")[-1]`, the piece `X`; empty for MMLU */
  bare: number[];
}

export interface Encoder {
  encode(text: string, opts?: { addBos?: boolean; parseSpecial?: boolean }): number[];
}

export function letterTokens(tok: Encoder, bench: Bench): LetterTokens {
  if (bench === "mmlu") return { spaced: LETTERS.map((l) => tok.encode(l, { addBos: true }).at(-1)!), bare: [] };
  return {
    spaced: LETTERS.map((l) => tok.encode(l, { addBos: false })[0]!),
    bare: LETTERS.map((l) => tok.encode(`：${l}`, { addBos: false }).at(-1)!),
  };
}

/** Score per letter from one row of logits (or any id -> score function). */
export function letterScores(logit: (id: number) => number, t: LetterTokens): number[] {
  return LETTERS.map((_, i) => logit(t.spaced[i]!) + (t.bare.length ? logit(t.bare[i]!) : 0));
}

/** numpy's argmax: the first maximum. NaN wins like in numpy. */
export function argmaxFirst(xs: ArrayLike<number>): number {
  let best = 0;
  for (let i = 0; i < xs.length; i++) {
    if (Number.isNaN(xs[i]!)) return i;
    if (xs[i]! > xs[best]!) best = i;
  }
  return best;
}

/**
 * The seed's "processed scores" (`generate(..., output_scores=True)` with do_sample, repetition
 * penalty 1.1 and temperature 0.2; top-k 0 and top-p 1 leave them alone): logits of every token id
 * present in the prompt are divided by the penalty when positive and multiplied when negative,
 * then all logits are divided by the temperature.
 */
export function seedProcessedLogit(logits: Float32Array, promptIds: Iterable<number>, penalty = 1.1, temperature = 0.2): (id: number) => number {
  const seen = new Set(promptIds);
  return (id: number) => {
    let x = logits[id]!;
    if (seen.has(id)) x = x < 0 ? x * penalty : x / penalty;
    return x / temperature;
  };
}

export function softmax(xs: number[]): number[] {
  const m = Math.max(...xs);
  if (!Number.isFinite(m)) return xs.map(() => 1 / xs.length);
  const e = xs.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

// ---- answer extraction from generated text (the seed's regex cascade) ------------------------------

export type ExtractMethod = "so-answer" | "pattern" | "letter" | "option-text" | "random";

const ANSWER_PATTERNS = [
  /([ABCD])是正确的/, /选项([ABCD])正确/, /答案为([ABCD])/, /答案是([ABCD])/,
  /答案([ABCD])/, /选择([ABCD])/, /答案：([ABCD])/, /选择答案([ABCD])/,
];

const reEscape = (s: string) => s.replace(/[\\^$.*+?()[\]{}|/-]/g, "\\$&");

/**
 * The seed's `extract_answer`: (1) the last `所以答案是(.+?)。` if it is a letter; (2) the first
 * matching pattern of eight; (3) the first A-D anywhere; (4) the option text found first (a regex
 * alternation of the escaped option texts; a later duplicate text wins the letter, as the seed's
 * dict); (5) a random letter - drawn here from `random` (a seeded generator) so runs repeat.
 */
export function extractAnswer(response: string, options: readonly string[], random: () => number): { answer: Letter; method: ExtractMethod } {
  const so = [...response.matchAll(/所以答案是([^\n]+?)。/g)];
  if (so.length && (LETTERS as readonly string[]).includes(so.at(-1)![1]!)) return { answer: so.at(-1)![1] as Letter, method: "so-answer" };
  for (const p of ANSWER_PATTERNS) {
    const m = p.exec(response);
    if (m) return { answer: m[1] as Letter, method: "pattern" };
  }
  const l = /[ABCD]/.exec(response);
  if (l) return { answer: l[0] as Letter, method: "letter" };
  const byText = new Map<string, Letter>();
  options.forEach((o, i) => byText.set(o, LETTERS[i]!));
  const m = new RegExp(options.map(reEscape).join("|")).exec(response);
  if (m) return { answer: byText.get(m[0])!, method: "option-text" };
  return { answer: LETTERS[Math.min(3, Math.floor(random() * 4))]!, method: "random" };
}

/** A small deterministic generator (mulberry32) seeded from a string. */
export function seededRandom(key: string): () => number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  let a = h >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- summary ---------------------------------------------------------------------------------------

export interface Tally {
  num: number;
  correct: number;
  /** percent (100 x correct / num); null when nothing was scored */
  accuracy: number | null;
}

export interface SubjectResult extends SubjectInfo, Tally {
  /** questions without a gold answer (C-Eval test): predicted, not scored */
  unlabeled: number;
  /** predicted letter per question, by row index */
  predictions: Record<string, Letter>;
  /** generate mode: how the letters were extracted */
  extraction?: Partial<Record<ExtractMethod, number>>;
  /** questions whose prompt was cut to fewer shots to fit the context (--fit) */
  fewerShots?: number;
}

export interface McqSummary {
  subjects: SubjectResult[];
  groups: Record<string, Tally>;
  /** MMLU: per subcategory */
  subcategories?: Record<string, Tally>;
  /** micro average over all scored questions (the seed's "All") */
  overall: Tally;
  /** mean of the per-subject accuracies */
  macro: number | null;
}

export function tally(num: number, correct: number): Tally {
  return { num, correct, accuracy: num > 0 ? (100 * correct) / num : null };
}

export function summarize(results: SubjectResult[], groupOrder: string[]): McqSummary {
  const groups: Record<string, Tally> = {};
  const sub: Record<string, Tally> = {};
  const add = (rec: Record<string, Tally>, k: string, r: SubjectResult) => {
    const t = rec[k] ?? tally(0, 0);
    rec[k] = tally(t.num + r.num, t.correct + r.correct);
  };
  for (const g of groupOrder) if (results.some((r) => r.group === g)) groups[g] = tally(0, 0);
  for (const r of results) {
    add(groups, r.group, r);
    for (const s of r.subcategories ?? []) add(sub, s, r);
  }
  const num = results.reduce((a, r) => a + r.num, 0), correct = results.reduce((a, r) => a + r.correct, 0);
  const scored = results.filter((r) => r.accuracy !== null);
  return {
    subjects: results, groups,
    ...(results.some((r) => r.subcategories) ? { subcategories: sub } : {}),
    overall: tally(num, correct),
    macro: scored.length ? scored.reduce((a, r) => a + r.accuracy!, 0) / scored.length : null,
  };
}

const pct = (x: number | null) => (x === null ? "-" : x.toFixed(1));

/** The on-screen table (Markdown). */
export function formatTable(s: McqSummary, title: string): string {
  const lines = [`${title}`, "", "| subject | name | group | questions | correct | accuracy % |", "| --- | --- | --- | ---: | ---: | ---: |"];
  for (const r of s.subjects) lines.push(`| ${r.subject} | ${r.name} | ${r.group} | ${r.num}${r.unlabeled ? ` (+${r.unlabeled} unlabeled)` : ""} | ${r.correct} | ${pct(r.accuracy)} |`);
  for (const [g, t] of Object.entries(s.groups)) lines.push(`| **${g}** | | | ${t.num} | ${t.correct} | **${pct(t.accuracy)}** |`);
  lines.push(`| **overall (micro)** | | | ${s.overall.num} | ${s.overall.correct} | **${pct(s.overall.accuracy)}** |`);
  lines.push(`| **mean of subjects** | | | | | ${pct(s.macro)} |`);
  return lines.join("\n") + "\n";
}

/** The default results file name for a configuration. */
export function resultName(bench: Bench, split: string, shots: number, template: TemplateMode, mode: string): string {
  return `${bench}-${split}-${shots}shot${template === "instruct" ? "-instruct" : ""}${mode === "logits" ? "" : `-${mode}`}`;
}

