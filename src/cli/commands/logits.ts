import { closeSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { MODEL_OPTIONS, parse } from "../args.js";
import { openModel } from "../session.js";

export const HELP = `cmx logits: write the logits after given tokens as float32 little-endian

Usage: cmx logits [-m MODEL] --tokens 1,2,3 [--positions all|last|0,5,9] --out FILE

  --tokens IDS        comma-separated token ids (include BOS yourself)
  --positions P       rows to write: all, last (default) or a list of 0-based positions
  --out FILE          output: float32 LE, shape [positions, n_vocab]; row r is the logits
                      after token positions[r] (predicting the next token)
  --kv-type f16|f32   KV cache type (default here: f32, for exact comparisons)
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    ...MODEL_OPTIONS, tokens: { type: "string" }, positions: { type: "string" }, out: { type: "string", short: "o" },
  }, "logits");
  if (values.help) { process.stdout.write(HELP); return; }
  if (!values.tokens) throw new ArgumentError("logits: --tokens is required (see cmx logits --help)");
  if (!values.out) throw new ArgumentError("logits: --out FILE is required");
  const tokens = String(values.tokens).split(",").map((s) => {
    const x = Number(s.trim());
    if (s.trim() === "" || !Number.isInteger(x) || x < 0) throw new ArgumentError(`--tokens: "${s}" is not a token id`);
    return x;
  });
  const posArg = (values.positions as string | undefined) ?? "last";
  let rows: number[];
  if (posArg === "all") rows = tokens.map((_, i) => i);
  else if (posArg === "last") rows = [tokens.length - 1];
  else rows = posArg.split(",").map((s) => {
    const x = Number(s.trim());
    if (!Number.isInteger(x) || x < 0 || x >= tokens.length) throw new ArgumentError(`--positions: "${s}" is not a position in 0..${tokens.length - 1}`);
    return x;
  });
  const m = openModel({ "kv-type": "f32", "ctx-size": String(Math.max(tokens.length, 1)), ...values });
  const logits = m.ctx.eval(tokens, { logits: rows });
  const out = String(values.out);
  const tmp = `${out}.${process.pid}.tmp`;
  const fd = openSync(tmp, "w");
  try {
    writeSync(fd, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength));
  } catch (e) {
    closeSync(fd); rmSync(tmp, { force: true }); throw e;
  }
  closeSync(fd);
  renameSync(tmp, out);
  process.stderr.write(`wrote ${rows.length} x ${m.model.config.nVocab} logits to ${out}\n`);
}
