import { test } from "node:test";
import assert from "node:assert/strict";
import { Rng } from "../sampling/rng.js";
import { StopMatcher } from "./stop.js";

/** Push the pieces; return everything emitted (plus the flush when not stopped) and the state. */
function feed(stops: string[], pieces: string[]): { text: string; stopped: boolean; emits: string[] } {
  const m = new StopMatcher(stops);
  const emits: string[] = [];
  for (const p of pieces) {
    const r = m.push(p);
    emits.push(r.emit);
    if (r.stopped) return { text: emits.join(""), stopped: true, emits };
  }
  emits.push(m.flush());
  return { text: emits.join(""), stopped: false, emits };
}

/** One-shot reference: cut at the earliest-ending stop (ties: the longer one). */
function reference(stops: string[], text: string): { text: string; stopped: boolean } {
  let bestStart = -1, bestEnd = Infinity;
  for (const s of stops) {
    if (!s) continue;
    const i = text.indexOf(s);
    if (i >= 0 && (i + s.length < bestEnd || (i + s.length === bestEnd && i < bestStart))) {
      bestStart = i;
      bestEnd = i + s.length;
    }
  }
  return bestStart < 0 ? { text, stopped: false } : { text: text.slice(0, bestStart), stopped: true };
}

test("stop string split across pushes", () => {
  const m = new StopMatcher(["</s>"]);
  assert.deepEqual(m.push("Hello wor"), { emit: "Hello wor", stopped: false });
  assert.deepEqual(m.push("ld<"), { emit: "ld", stopped: false }); // "<" held back
  assert.deepEqual(m.push("/"), { emit: "", stopped: false });
  assert.deepEqual(m.push("s> and more"), { emit: "", stopped: true });
  assert.equal(m.stopped, true);
  assert.equal(m.matched, "</s>");
  assert.deepEqual(m.push("ignored"), { emit: "", stopped: true });
  assert.equal(m.flush(), "");
});

test("a held-back partial match is released when it stops matching", () => {
  const m = new StopMatcher(["</s>"]);
  assert.deepEqual(m.push("a </"), { emit: "a ", stopped: false });
  assert.deepEqual(m.push("b>"), { emit: "</b>", stopped: false });
  assert.deepEqual(m.push("x</"), { emit: "x", stopped: false });
  assert.equal(m.flush(), "</"); // end of generation: the tail is real text
  assert.equal(m.stopped, false);
});

test("text before the stop in the same push is emitted", () => {
  assert.deepEqual(new StopMatcher(["\nUser:"]).push("Sure.\nUser: hi"), { emit: "Sure.", stopped: true });
  assert.deepEqual(new StopMatcher(["END"]).push("END"), { emit: "", stopped: true });
});

test("overlapping prefixes: the match may start inside the held text", () => {
  // "aab" inside "aaab": after "aa" is held, a third "a" must release only one "a"
  const m = new StopMatcher(["aab"]);
  assert.deepEqual(m.push("a"), { emit: "", stopped: false });
  assert.deepEqual(m.push("a"), { emit: "", stopped: false });
  assert.deepEqual(m.push("a"), { emit: "a", stopped: false });
  assert.deepEqual(m.push("b!"), { emit: "", stopped: true });
  // "ababx" in "abababx": the held "abab" shifts by two before the match completes

  assert.deepEqual(feed(["ababx"], ["aba", "bab", "x"]), { text: "ab", stopped: true, emits: ["", "ab", ""] });
  // a partial that breaks off is released in full
  assert.deepEqual(feed(["abab"], ["ab", "a", "c"]).text, "abac");
});

test("multiple stops: the first to complete wins; held text covers the longest candidate", () => {
  assert.deepEqual(feed(["###", "User:"], ["Answer", " 42 ##", "# User:"]).text, "Answer 42 ");
  assert.deepEqual(feed(["###", "User:"], ["Answer User", ": ###"]).text, "Answer ");
  // one stop is a prefix of another: the shorter completes first
  assert.deepEqual(feed(["<|im_end|>", "<|im"], ["x<|", "im_end|>"]).text, "x");
  // "abc" vs "b": "b" is complete before "abc" could be, whatever the chunking
  assert.deepEqual(feed(["abc", "b"], ["abc"]).text, "a");
  assert.deepEqual(feed(["abc", "b"], ["a", "b", "c"]).text, "a");
  // same end: the longer stop wins, so none of it leaks
  const m = new StopMatcher(["c", "bc"]);
  assert.deepEqual(m.push("abc"), { emit: "a", stopped: true });
  assert.equal(m.matched, "bc");
  // a partial match of one stop is held while another can still match later
  const n = new StopMatcher(["xyz", "yq"]);
  assert.deepEqual(n.push("1xy"), { emit: "1", stopped: false });
  assert.deepEqual(n.push("q"), { emit: "x", stopped: true });
});

test("no stops, empty stops, empty pushes, non-ASCII", () => {
  assert.deepEqual(feed([], ["a", "b"]), { text: "ab", stopped: false, emits: ["a", "b", ""] });
  assert.deepEqual(feed(["", ""], ["a", "b"]).text, "ab");
  const m = new StopMatcher(["。\n"]);
  assert.deepEqual(m.push(""), { emit: "", stopped: false });
  assert.deepEqual(m.push("你好。"), { emit: "你好", stopped: false });
  assert.deepEqual(m.push("\n再见"), { emit: "", stopped: true });
});

test("chunking never changes the result (random texts, stops and splits)", () => {
  const rng = new Rng(2024);
  const alphabet = "ab<>/s";
  const pick = (n: number): string => Array.from({ length: n }, () => alphabet[Math.floor(rng.next() * alphabet.length)]).join("");
  for (let trial = 0; trial < 3000; trial++) {
    const stops = Array.from({ length: 1 + Math.floor(rng.next() * 3) }, () => pick(1 + Math.floor(rng.next() * 4)));
    const text = pick(Math.floor(rng.next() * 30));
    const pieces: string[] = [];
    for (let i = 0; i < text.length; ) {
      const len = Math.floor(rng.next() * 5);
      pieces.push(text.slice(i, i + len));
      i += len;
    }
    const expected = reference(stops, text);
    const chunked = feed(stops, pieces);
    const perChar = feed(stops, [...text]);
    const ctx = JSON.stringify({ stops, text, pieces });
    assert.deepEqual({ text: chunked.text, stopped: chunked.stopped }, expected, ctx);
    assert.deepEqual({ text: perChar.text, stopped: perChar.stopped }, expected, ctx);
    // nothing is emitted that later turns out to be part of a stop: every emit is a prefix of the result
    let acc = "";
    for (const e of chunked.emits) {
      acc += e;
      assert.ok(expected.text.startsWith(acc), ctx);
    }
  }
});
