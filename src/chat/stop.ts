/**
 * Incremental stop-string matching for streaming generation.
 *
 * Feed the detokenized text piece by piece with `push`. Text is emitted as soon as it can no
 * longer be part of a stop string; a tail that could still grow into one is held back. When a
 * stop string is complete, `push` emits the text before it and reports `stopped`; the stop
 * string itself and anything after it are dropped, and later pushes emit nothing. At the end of
 * generation (EOS, length limit) call `flush` to get the held-back tail.
 *
 * Which stop wins: generation stops at the first position where *any* stop string is complete
 * (the earliest end), as a token-by-token generator would; if two complete at the same position,
 * the longer one (the earlier start) wins, so none of its text leaks. With this rule the output
 * does not depend on how the text is split into pushes: one push of the whole text, one push per
 * character and anything between give the same result. (Example: stops ["abc", "b"] on "abc"
 * stop at "b" and emit "a", because "b" is complete before "abc" could be.)
 *
 * Empty stop strings are ignored. Cost per push is O(chunk + longest stop) per stop string for
 * the search plus O(longest stop^2) for the hold-back check; the held text never exceeds the
 * longest stop string minus one character.
 */
import { ArgumentError } from "../errors.js";

export interface StopPushResult {
  /** Text that is final and can be sent to the client. */
  emit: string;
  /** True once a stop string has been seen (on this push or an earlier one). */
  stopped: boolean;
}

export class StopMatcher {
  private readonly stops: readonly string[];
  private readonly maxLen: number;
  private held = "";
  private done = false;
  private matchedStop: string | undefined;

  constructor(stops: readonly string[]) {
    if (!Array.isArray(stops)) throw new ArgumentError("stop: expected an array of strings");
    for (const s of stops) {
      if (typeof s !== "string") throw new ArgumentError(`stop: expected strings, got ${JSON.stringify(s)}`);
    }
    this.stops = [...new Set(stops.filter((s) => s.length > 0))];
    this.maxLen = this.stops.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /** True once a stop string has matched. */
  get stopped(): boolean {
    return this.done;
  }

  /** The stop string that matched, if any (e.g. for an OpenAI-style `stop` finish reason). */
  get matched(): string | undefined {
    return this.matchedStop;
  }

  push(text: string): StopPushResult {
    if (this.done) return { emit: "", stopped: true };
    if (this.maxLen === 0) return { emit: text, stopped: false };
    const prevLen = this.held.length;
    const buf = this.held + text;

    // Earliest-ending complete stop. The held text contains no complete stop, so a new match must
    // end inside `text`: start searching where that becomes possible.
    let bestStart = -1;
    let bestEnd = Infinity;
    let best: string | undefined;
    for (const s of this.stops) {
      const idx = buf.indexOf(s, Math.max(0, prevLen - s.length + 1));
      if (idx < 0) continue;
      const end = idx + s.length;
      if (end < bestEnd || (end === bestEnd && idx < bestStart)) {
        bestStart = idx;
        bestEnd = end;
        best = s;
      }
    }
    if (best !== undefined) {
      this.done = true;
      this.matchedStop = best;
      this.held = "";
      return { emit: buf.slice(0, bestStart), stopped: true };
    }

    // Hold back the longest tail that is a proper prefix of some stop string.
    const keep = this.partialTail(buf);
    this.held = buf.slice(buf.length - keep);
    return { emit: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** End of generation: the held-back tail (empty after a stop). */
  flush(): string {
    const out = this.done ? "" : this.held;
    this.held = "";
    return out;
  }

  private partialTail(buf: string): number {
    for (let len = Math.min(buf.length, this.maxLen - 1); len > 0; len--) {
      const tail = buf.slice(buf.length - len);
      for (const s of this.stops) {
        if (s.length > len && s.startsWith(tail)) return len;
      }
    }
    return 0;
  }
}
