/** Reading evaluation data files with errors that name the file and the layout that was expected. */
import { existsSync, readFileSync, statSync } from "node:fs";
import { CmxError } from "../errors.js";
import { parseCsv } from "./csv.js";

/** An evaluation data folder or file that is missing or malformed. */
export class DataError extends CmxError {
  constructor(message: string) {
    super("E_DATA", message);
    this.name = "DataError";
  }
}

export function requireDir(dir: string, what: string, layout: string): void {
  if (!existsSync(dir)) throw new DataError(`${what} ${dir} does not exist; expected layout: ${layout}`);
  if (!statSync(dir).isDirectory()) throw new DataError(`${what} ${dir} is not a folder; expected layout: ${layout}`);
}

export function readText(file: string, layout: string): string {
  if (!existsSync(file)) throw new DataError(`${file} is missing; expected layout: ${layout}`);
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new DataError(`${file}: ${(e as Error).message}`);
  }
}

export function readCsvFile(file: string, layout: string): string[][] {
  const text = readText(file, layout);
  try {
    return parseCsv(text);
  } catch (e) {
    throw new DataError(`${file}: not valid CSV (${(e as Error).message}); expected layout: ${layout}`);
  }
}

export function readJsonFile(file: string, layout: string): unknown {
  const text = readText(file, layout);
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new DataError(`${file}: not valid JSON (${(e as Error).message}); expected layout: ${layout}`);
  }
}

/** JSON Lines: one object per non-empty line. */
export function readJsonlFile(file: string, layout: string): Record<string, unknown>[] {
  const text = readText(file, layout);
  const out: Record<string, unknown>[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.trim()) return;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      throw new DataError(`${file}:${i + 1}: not valid JSON (${(e as Error).message}); expected layout: ${layout}`);
    }
    if (!v || typeof v !== "object" || Array.isArray(v)) throw new DataError(`${file}:${i + 1}: expected a JSON object per line; expected layout: ${layout}`);
    out.push(v as Record<string, unknown>);
  });
  return out;
}
