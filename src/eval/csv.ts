/**
 * CSV reading for the evaluation sets, and pandas' view of the cells.
 *
 * The seed's scripts read every CSV with `pandas.read_csv` and put the cell values into the prompt
 * with Python's `str()`/f-strings. pandas does not hand back the text of the file: it infers a type
 * per column and turns some cells into NaN. What reaches the prompt is therefore:
 *  - a cell equal to one of pandas' default NA strings ("", "NA", "None", "null", "nan", ...) -> "nan"
 *    (MMLU has options that are literally "None": the seed's prompt shows "nan" there);
 *  - a column whose non-NA cells are all integers (and that has no NA) -> each as Python int ("007" -> "7");
 *  - a column whose non-NA cells are all numbers, otherwise -> Python float repr ("2" -> "2.0", NA -> "nan");
 *  - a column of only True/False spellings (no NA) -> "True" / "False";
 *  - any other column: the text as it is (NA cells still "nan").
 * `pandasCells` reproduces this so that prompts are byte-identical with the seed's.
 */

/** Parse RFC 4180 CSV (quoted fields, "" escapes, newlines inside quotes, CRLF or LF, UTF-8 BOM). */
export function parseCsv(text: string): string[][] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const rows: string[][] = [];
  let row: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  let fieldStarted = false;
  const n = text.length;
  const endField = () => { row.push(field); field = ""; fieldStarted = false; };
  const endRow = () => {
    endField();
    // pandas skips blank lines (skip_blank_lines=True)
    if (!(row.length === 1 && row[0] === "")) rows.push(row);
    row = [];
  };
  while (i < n) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      field += c; i++; continue;
    }
    if (c === '"' && !fieldStarted) { quoted = true; fieldStarted = true; i++; continue; }
    if (c === ",") { endField(); i++; continue; }
    if (c === "\r") { endRow(); i += text[i + 1] === "\n" ? 2 : 1; continue; }
    if (c === "\n") { endRow(); i++; continue; }
    field += c; fieldStarted = true; i++;
  }
  if (quoted) throw new Error("unterminated quoted field at the end of the file");
  if (field !== "" || row.length > 0) endRow();
  return rows;
}

/** pandas' default `na_values` (pandas >= 2.0, which added "None"). */
export const PANDAS_NA = new Set([
  "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
  "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
]);

const INT_RE = /^\s*[+-]?\d+\s*$/;
const FLOAT_RE = /^\s*[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|inf|infinity)\s*$/i;
const TRUE_SET = new Set(["True", "TRUE", "true"]);
const FALSE_SET = new Set(["False", "FALSE", "false"]);

/** Python's repr() of a float: shortest round-trip digits, fixed notation for exponents -4..15. */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const sign = x < 0 ? "-" : "";
  const [mant, expS] = Math.abs(x).toExponential().split("e") as [string, string];
  const digits = mant.replace(".", "");
  const e = Number(expS);
  if (e >= -4 && e < 16) {
    let s: string;
    if (e >= digits.length - 1) s = digits + "0".repeat(e - digits.length + 1) + ".0";
    else if (e >= 0) s = digits.slice(0, e + 1) + "." + digits.slice(e + 1);
    else s = "0." + "0".repeat(-e - 1) + digits;
    return sign + s;
  }
  const m = digits.length > 1 ? digits[0] + "." + digits.slice(1) : digits;
  return `${sign}${m}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}

/** Python's str() of an int parsed from text ("+007" -> "7"). */
function pyInt(s: string): string {
  return BigInt(s.trim()).toString();
}

/**
 * The cells as the seed's scripts see them after `pandas.read_csv` and `str()`: columns typed as
 * pandas infers them (see the file comment). `rows` are the data rows (no header).
 */
export function pandasCells(rows: string[][]): string[][] {
  const nCol = rows.reduce((m, r) => Math.max(m, r.length), 0);
  const out = rows.map((r) => r.slice());
  for (let c = 0; c < nCol; c++) {
    const vals = rows.map((r) => r[c] ?? "");
    const na = vals.map((v) => PANDAS_NA.has(v));
    const present = vals.filter((_, i) => !na[i]);
    const anyNa = na.some(Boolean);
    let render: (v: string) => string;
    if (present.length > 0 && present.every((v) => INT_RE.test(v)) && !anyNa) render = pyInt;
    else if (present.length > 0 && present.every((v) => INT_RE.test(v) || FLOAT_RE.test(v))) render = (v) => pyFloatRepr(Number(v.trim().replace(/^([+-]?)inf(inity)?$/i, "$1Infinity")));
    else if (present.length > 0 && !anyNa && present.every((v) => TRUE_SET.has(v) || FALSE_SET.has(v))) render = (v) => (TRUE_SET.has(v) ? "True" : "False");
    else render = (v) => v;
    for (let r = 0; r < rows.length; r++) {
      if (c >= rows[r]!.length) continue;
      out[r]![c] = na[r] ? "nan" : render(vals[r]!);
    }
  }
  return out;
}
