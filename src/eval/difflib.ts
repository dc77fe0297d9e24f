/**
 * Python's `difflib.SequenceMatcher(None, a, b).ratio()` (with its default autojunk heuristic), and
 * fuzzywuzzy's `fuzz.ratio` built on it (fuzzywuzzy falls back to difflib when python-Levenshtein is
 * not installed, which LongBench's requirements do not list). Strings are compared by Unicode code
 * point, as Python does.
 */

interface Match { a: number; b: number; size: number }

export class SequenceMatcher {
  private readonly a: string[];
  private readonly b: string[];
  private readonly b2j = new Map<string, number[]>();

  constructor(a: string | string[], b: string | string[], autojunk = true) {
    this.a = typeof a === "string" ? Array.from(a) : a;
    this.b = typeof b === "string" ? Array.from(b) : b;
    this.b.forEach((x, i) => {
      const l = this.b2j.get(x);
      if (l) l.push(i);
      else this.b2j.set(x, [i]);
    });
    const n = this.b.length;
    if (autojunk && n >= 200) {
      const ntest = Math.floor(n / 100) + 1;
      for (const [x, idx] of [...this.b2j]) if (idx.length > ntest) this.b2j.delete(x);
    }
  }

  /** CPython's find_longest_match (no junk function: only "popular" elements are left out of b2j). */
  findLongestMatch(alo: number, ahi: number, blo: number, bhi: number): Match {
    const { a, b, b2j } = this;
    let besti = alo, bestj = blo, bestsize = 0;
    let j2len = new Map<number, number>();
    for (let i = alo; i < ahi; i++) {
      const newj2len = new Map<number, number>();
      for (const j of b2j.get(a[i]!) ?? []) {
        if (j < blo) continue;
        if (j >= bhi) break;
        const k = (j2len.get(j - 1) ?? 0) + 1;
        newj2len.set(j, k);
        if (k > bestsize) { besti = i - k + 1; bestj = j - k + 1; bestsize = k; }
      }
      j2len = newj2len;
    }
    // extend by equal (non-junk; popular elements are not junk) elements on both ends
    while (besti > alo && bestj > blo && a[besti - 1] === b[bestj - 1]) { besti--; bestj--; bestsize++; }
    while (besti + bestsize < ahi && bestj + bestsize < bhi && a[besti + bestsize] === b[bestj + bestsize]) bestsize++;
    return { a: besti, b: bestj, size: bestsize };
  }

  matchingBlocks(): Match[] {
    const queue: [number, number, number, number][] = [[0, this.a.length, 0, this.b.length]];
    const blocks: Match[] = [];
    while (queue.length) {
      const [alo, ahi, blo, bhi] = queue.pop()!;
      const m = this.findLongestMatch(alo, ahi, blo, bhi);
      if (m.size) {
        blocks.push(m);
        if (alo < m.a && blo < m.b) queue.push([alo, m.a, blo, m.b]);
        if (m.a + m.size < ahi && m.b + m.size < bhi) queue.push([m.a + m.size, ahi, m.b + m.size, bhi]);
      }
    }
    return blocks.sort((x, y) => x.a - y.a || x.b - y.b);
  }

  ratio(): number {
    const matches = this.matchingBlocks().reduce((s, m) => s + m.size, 0);
    const t = this.a.length + this.b.length;
    return t ? (2 * matches) / t : 1;
  }
}

/** Python's round() of a float to an integer (halves to even). */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** fuzzywuzzy `fuzz.ratio`: equal strings 100, an empty one 0, else round(100 x difflib ratio). */
export function fuzzRatio(s1: string, s2: string): number {
  if (s1 === s2) return 100;
  if (s1.length === 0 || s2.length === 0) return 0;
  return pyRound(100 * new SequenceMatcher(s1, s2).ratio());
}
