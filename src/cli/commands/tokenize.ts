import { readFileSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { defaultModelPath } from "../../model/default-model.js";
import { GgufReader } from "../../io/gguf/reader.js";
import { vocabFromGguf } from "../../model/load.js";
import { SpmTokenizer } from "../../tokenizer/spm.js";
import { parse } from "../args.js";
import { basename } from "node:path";

export const HELP = `cmx tokenize: print the token ids of a text as one JSON array

Usage: cmx tokenize [-m MODEL] [--no-bos] [--parse-special] [--pieces] (--file PATH | TEXT)

  -m, --model FILE      GGUF whose vocabulary to use (default: the built-in model)
      --no-bos          do not add BOS
      --parse-special   turn texts like <s> and </s> into their special tokens
      --pieces          print [{"id": .., "piece": ..}, ...] instead of bare ids
  -f, --file PATH       read the text from a file (exact bytes, UTF-8)
`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    model: { type: "string", short: "m" }, "no-bos": { type: "boolean" }, "parse-special": { type: "boolean" },
    pieces: { type: "boolean" }, file: { type: "string", short: "f" }, help: { type: "boolean", short: "h" },
  }, "tokenize");
  if (values.help) { process.stdout.write(HELP); return; }
  let text: string;
  if (values.file !== undefined) {
    try { text = readFileSync(values.file as string, "utf8"); } catch (e) { throw new ArgumentError(`--file: ${(e as Error).message}`); }
  } else if (positionals.length) text = positionals.join(" ");
  else throw new ArgumentError("tokenize: give a TEXT or --file PATH (see cmx tokenize --help)");
  // Only the metadata is needed: read the vocabulary without loading the weights.
  const path = (values.model as string | undefined) ?? defaultModelPath();
  const r = new GgufReader(path);
  let tok: SpmTokenizer;
  try { tok = new SpmTokenizer(vocabFromGguf(r.metadata, basename(path))); } finally { r.close(); }
  const ids = tok.encode(text, { addBos: !values["no-bos"] && tok.vocab.addBos, parseSpecial: !!values["parse-special"] });
  const out = values.pieces ? ids.map((id) => ({ id, piece: tok.tokenToPiece(id) })) : ids;
  process.stdout.write(JSON.stringify(out) + "\n");
}
