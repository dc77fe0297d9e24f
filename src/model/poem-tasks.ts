/**
 * How the built-in model's held-out instructions are judged (docs/default-model.md states the same):
 *
 * - write    "以《T》为题，写一首五言绝句。": right when the answer is a poem of the asked form: 4 lines
 *            (绝句) or 8 lines (律诗), each of 5 (五言) or 7 (七言) Chinese characters, lines ended by
 *            "，" / "。" (or line breaks). Its content is not judged.
 * - continue "续写下一句。" + a line: right when the answer is one line of as many Chinese characters
 *            as the given line (punctuation at its end allowed).
 * - form     "…五言诗还是七言诗？": right when the answer is exactly the right one.
 * - count    "…有几句？": right when the answer is exactly "四句" or "八句" as the poem has.
 * - author, title: right when the answer equals the expected text (memory of poems read in stage 2;
 *            reported separately, not part of the held-out score).
 */
export type PoemTask = "write" | "continue" | "form" | "count" | "author" | "title";

export interface PoemInstruction {
  task: PoemTask;
  instruction: string;
  input: string;
  output: string;
}

/**
 * Tokens to allow for an answer: a written poem needs room (a Chinese character outside the
 * vocabulary's pieces takes 3 byte-fallback tokens; an eight-line poem of seven characters is 64
 * characters with its punctuation), the other answers are one line or a word.
 */
export function maxTokensFor(task: PoemTask): number {
  return task === "write" ? 200 : 80;
}

const HAN = /^[\u4e00-\u9fff]+$/;

/** Lines of a poem answer: split on line breaks and on the end-of-line punctuation. */
export function poemLines(text: string): string[] {
  return text.split(/[，。！？；、,.!?;\n]+/).map((s) => s.trim()).filter(Boolean);
}

export function judgePoemAnswer(q: PoemInstruction, answer: string): boolean {
  const a = answer.trim();
  switch (q.task) {
    case "write": {
      const m = /写一首(五|七)言(绝句|律诗)/.exec(q.instruction);
      if (!m) return false;
      const len = m[1] === "五" ? 5 : 7, n = m[2] === "绝句" ? 4 : 8;
      const lines = poemLines(a);
      return lines.length === n && lines.every((l) => l.length === len && HAN.test(l));
    }
    case "continue": {
      const lines = poemLines(a);
      return lines.length === 1 && HAN.test(lines[0]!) && lines[0]!.length === q.input.trim().length;
    }
    case "form":
    case "count":
    case "author":
    case "title":
      return a === q.output;
  }
}
