/**
 * Request bodies: JSON.parse, and when it fails, the offset, line and column of the first error
 * (V8's messages do not always carry a position) from a small strict scanner.
 */

export class JsonSyntaxError extends Error {
  constructor(readonly position: number, readonly line: number, readonly column: number, readonly why: string) {
    super(`malformed JSON at position ${position} (line ${line}, column ${column}): ${why}`);
    this.name = "JsonSyntaxError";
  }
}

export function parseJsonBody(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const { pos, why } = locateJsonError(text);
    let line = 1, col = 1;
    for (let i = 0; i < pos && i < text.length; i++) {
      if (text[i] === "\n") { line++; col = 1; } else col++;
    }
    throw new JsonSyntaxError(pos, line, col, why);
  }
}

/** Where a text stops being JSON (RFC 8259), for texts that JSON.parse rejects. */
export function locateJsonError(s: string): { pos: number; why: string } {
  let i = 0;
  class Stop { constructor(readonly pos: number, readonly why: string) {} }
  const show = (p: number) => (p >= s.length ? "the end of the input" : `${JSON.stringify(s[p])}`);
  const fail = (why?: string): never => { throw new Stop(i, why ?? `unexpected ${show(i)}`); };
  const ws = () => { while (i < s.length && " \t\n\r".includes(s[i]!)) i++; };
  const lit = (word: string) => {
    for (let k = 0; k < word.length; k++, i++) if (s[i] !== word[k]) fail(`unexpected ${show(i)} (expected ${JSON.stringify(word)})`);
  };
  const str = () => {
    i++; // opening quote
    for (;;) {
      if (i >= s.length) fail("unterminated string");
      const c = s.charCodeAt(i);
      if (c === 0x22) { i++; return; }
      if (c < 0x20) fail("control character in a string (escape it)");
      if (c === 0x5c) {
        i++;
        const e = s[i];
        if (e === "u") {
          for (let k = 1; k <= 4; k++) if (!/[0-9a-fA-F]/.test(s[i + k] ?? "")) { i += k; fail("bad \\u escape"); }
          i += 5;
        } else if (e !== undefined && "\"\\/bfnrt".includes(e)) i++;
        else fail("bad escape in a string");
      } else i++;
    }
  };
  const digits = () => { const st = i; while (i < s.length && s[i]! >= "0" && s[i]! <= "9") i++; if (i === st) fail(`unexpected ${show(i)} (expected a digit)`); };
  const num = () => {
    if (s[i] === "-") i++;
    if (s[i] === "0") i++;
    else digits();
    if (s[i] === ".") { i++; digits(); }
    if (s[i] === "e" || s[i] === "E") { i++; if (s[i] === "+" || s[i] === "-") i++; digits(); }
  };
  const value = (depth: number): void => {
    if (depth > 512) fail("nested too deeply");
    ws();
    const c = s[i];
    if (c === "{") {
      i++; ws();
      if (s[i] === "}") { i++; return; }
      for (;;) {
        ws();
        if (s[i] !== '"') fail(`unexpected ${show(i)} (expected a property name in double quotes)`);
        str(); ws();
        if (s[i] !== ":") fail(`unexpected ${show(i)} (expected ":")`);
        i++;
        value(depth + 1); ws();
        if (s[i] === ",") { i++; continue; }
        if (s[i] === "}") { i++; return; }
        fail(`unexpected ${show(i)} (expected "," or "}")`);
      }
    }
    if (c === "[") {
      i++; ws();
      if (s[i] === "]") { i++; return; }
      for (;;) {
        value(depth + 1); ws();
        if (s[i] === ",") { i++; continue; }
        if (s[i] === "]") { i++; return; }
        fail(`unexpected ${show(i)} (expected "," or "]")`);
      }
    }
    if (c === '"') return str();
    if (c === "t") return lit("true");
    if (c === "f") return lit("false");
    if (c === "n") return lit("null");
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) return num();
    fail(i >= s.length ? "unexpected end of the input (expected a value)" : undefined);
  };
  try {
    if (s.charCodeAt(0) === 0xfeff) i++;
    value(0);
    ws();
    if (i < s.length) fail(`unexpected ${show(i)} after the JSON value`);
    return { pos: s.length, why: "invalid JSON" };
  } catch (e) {
    if (e instanceof Stop) return { pos: e.pos, why: e.why };
    throw e;
  }
}
