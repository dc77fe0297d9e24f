/**
 * Training data as the seed prepares it.
 *
 * Pre-training (run_clm_pt_with_peft.py): every line of every text file is a document tokenized
 * with BOS and EOS; groups of 1000 lines are concatenated and cut into blocks of seqLen tokens, the
 * remainder of each group dropped; labels are the inputs (every next token is scored). Empty lines
 * are skipped (the seed's datasets keep them as BOS EOS pairs).
 *
 * Instruction tuning (build_dataset.py): Alpaca records {instruction, input, output}; source
 * "[INST] {instruction}\n{input} [/INST]" ("\n{input}" only when input is not empty) with BOS,
 * target "{output}</s>" without BOS; the loss is on the target only; records whose source has
 * seqLen tokens or more are dropped, the rest truncated to seqLen. A file is a JSON array or JSON
 * lines.
 *
 * An example is tokens plus shifted targets: targets[t] is the token position t must predict
 * (−1: not scored), so the last position of a block never is.
 */
import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { DataError } from "../errors.js";
import type { SpmTokenizer } from "../tokenizer/spm.js";

export interface Example {
  tokens: Int32Array;
  targets: Int32Array;
}

export type OnBadData = "stop" | "skip";

export interface DataReport {
  examples: Example[];
  /** bad records skipped (with --on-bad-data skip) */
  skipped: number;
  /** records dropped because the source fills the sequence (SFT) */
  tooLong: number;
  /** tokens in all examples */
  tokens: number;
  /** the first few problems, "file:line: what" */
  problems: string[];
}

function readText(path: string): string {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    throw new DataError(`${path}: cannot read: ${(e as Error).message}`);
  }
  if (st.isDirectory()) throw new DataError(`${path} is a folder; give the data files themselves`);
  const text = readFileSync(path, "utf8");
  if (text.trim().length === 0) throw new DataError(`${path} is empty`);
  return text;
}

/** Shifted targets for a block whose every next token is scored. */
function lmExample(ids: number[]): Example {
  const tokens = Int32Array.from(ids);
  const targets = new Int32Array(ids.length).fill(-1);
  for (let t = 0; t + 1 < ids.length; t++) targets[t] = ids[t + 1]!;
  return { tokens, targets };
}

export function loadPretrainData(files: readonly string[], tok: SpmTokenizer, seqLen: number, groupLines = 1000): DataReport {
  const examples: Example[] = [];
  let tokens = 0;
  for (const f of files) {
    const lines = readText(f).split(/\r?\n/);
    const before = examples.length;
    for (let g = 0; g < lines.length; g += groupLines) {
      const ids: number[] = [];
      for (const line of lines.slice(g, g + groupLines)) {
        if (line.trim().length === 0) continue;
        for (const id of tok.encode(line, { addBos: true, addEos: true })) ids.push(id);
      }
      for (let o = 0; o + seqLen <= ids.length; o += seqLen) {
        examples.push(lmExample(ids.slice(o, o + seqLen)));
        tokens += seqLen;
      }
    }
    if (examples.length === before) {
      throw new DataError(`${f}: no complete block of ${seqLen} tokens (groups of ${groupLines} lines shorter than a block are dropped); use a shorter --seq-len or more text`);
    }
  }
  return { examples, skipped: 0, tooLong: 0, tokens, problems: [] };
}

export interface SftRecord {
  instruction: string;
  input?: string;
  output: string;
}

/** The records of one Alpaca file with their line numbers; bad ones reported (and skipped or thrown). */
export function readSftRecords(path: string, onBad: OnBadData, problems: string[]): { records: { r: SftRecord; line: number }[]; skipped: number } {
  const text = readText(path);
  const name = basename(path);
  const out: { r: SftRecord; line: number }[] = [];
  let skipped = 0;
  const bad = (line: number, what: string) => {
    const msg = `${name}:${line}: ${what}`;
    if (onBad === "stop") throw new DataError(`${msg} (use --on-bad-data skip to skip such records)`);
    skipped++;
    if (problems.length < 10) problems.push(msg);
  };
  const check = (v: unknown, line: number) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return bad(line, "a record must be a JSON object");
    const o = v as Record<string, unknown>;
    if (typeof o.instruction !== "string") return bad(line, 'the record has no "instruction" string');
    if (typeof o.output !== "string") return bad(line, 'the record has no "output" string');
    if (o.input !== undefined && o.input !== null && typeof o.input !== "string") return bad(line, '"input" must be a string');
    out.push({ r: { instruction: o.instruction, output: o.output, ...(typeof o.input === "string" ? { input: o.input } : {}) }, line });
  };
  const trimmed = text.trimStart();
  if (trimmed.startsWith("[")) {
    let arr: unknown;
    try {
      arr = JSON.parse(text);
    } catch (e) {
      throw new DataError(`${name}: not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(arr)) throw new DataError(`${name}: expected a JSON array of records`);
    // line numbers of array elements are not kept by JSON.parse: report the record number
    arr.forEach((v, i) => check(v, i + 1));
  } else {
    const lines = text.split(/\r?\n/);
    lines.forEach((l, i) => {
      if (l.trim().length === 0) return;
      let v: unknown;
      try {
        v = JSON.parse(l);
      } catch (e) {
        return bad(i + 1, `invalid JSON: ${(e as Error).message}`);
      }
      check(v, i + 1);
    });
  }
  if (out.length === 0 && skipped === 0) throw new DataError(`${name}: no records`);
  return { records: out, skipped };
}

/** The seed's prompt for a record. */
export function sftSource(r: SftRecord): string {
  const instruction = r.input ? `${r.instruction}\n${r.input}` : r.instruction;
  return `[INST] ${instruction} [/INST]`;
}

export function sftExample(r: SftRecord, tok: SpmTokenizer, seqLen: number): Example | undefined {
  const src = tok.encode(sftSource(r), { addBos: true, addEos: false });
  if (src.length >= seqLen) return undefined;
  const tgt = tok.encode(`${r.output}</s>`, { addBos: false, addEos: false, parseSpecial: true });
  const ids = [...src, ...tgt].slice(0, seqLen);
  const labels = [...src.map(() => -1), ...tgt].slice(0, seqLen);
  const tokens = Int32Array.from(ids);
  const targets = new Int32Array(ids.length).fill(-1);
  for (let t = 0; t + 1 < ids.length; t++) targets[t] = labels[t + 1]!;
  return { tokens, targets };
}

export function loadSftData(files: readonly string[], tok: SpmTokenizer, seqLen: number, onBad: OnBadData): DataReport {
  const examples: Example[] = [];
  const problems: string[] = [];
  let skipped = 0, tooLong = 0, tokens = 0;
  for (const f of files) {
    const { records, skipped: s } = readSftRecords(f, onBad, problems);
    skipped += s;
    for (const { r } of records) {
      const ex = sftExample(r, tok, seqLen);
      if (!ex) { tooLong++; continue; }
      examples.push(ex);
      tokens += ex.tokens.length;
    }
  }
  if (examples.length === 0) throw new DataError(`${files.join(", ")}: no usable records (${tooLong} too long for --seq-len ${seqLen}, ${skipped} bad)`);
  return { examples, skipped, tooLong, tokens, problems };
}

/** Seeded Fisher–Yates permutation of 0..n-1 (the order of one epoch). */
export function epochOrder(n: number, seed: number, epoch: number): Int32Array {
  const p = Int32Array.from({ length: n }, (_, i) => i);
  let s = (Math.imul(seed ^ 0x5bd1e995, 0x27d4eb2d) ^ Math.imul(epoch + 1, 0x165667b1)) >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const tmp = p[i]!; p[i] = p[j]!; p[j] = tmp;
  }
  return p;
}
