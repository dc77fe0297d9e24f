import { readFileSync } from "node:fs";
import { ArgumentError } from "../../errors.js";
import { generate } from "../../generate.js";
import { MODEL_HELP, MODEL_OPTIONS, SAMPLING_HELP, SAMPLING_OPTIONS, num, parse, samplingFrom } from "../args.js";
import { openModel } from "../session.js";

export const HELP = `cmx run: continue a prompt and stream the text

Usage: cmx run [-m MODEL] -p PROMPT [options]

  -p, --prompt TEXT         the prompt
  -f, --file PATH           read the prompt from a file
      --no-bos              do not put BOS in front of the prompt
      --parse-special       turn texts like </s> in the prompt into their special tokens
      --no-echo             do not print the prompt before the continuation
      --no-stats            do not print timings to stderr

${MODEL_HELP}

${SAMPLING_HELP}
`;

export async function main(argv: string[]): Promise<void> {
  const { values } = parse(argv, {
    ...MODEL_OPTIONS, ...SAMPLING_OPTIONS,
    prompt: { type: "string", short: "p" }, file: { type: "string", short: "f" },
    "no-bos": { type: "boolean" }, "parse-special": { type: "boolean" },
    "no-echo": { type: "boolean" }, "no-stats": { type: "boolean" },
  }, "run");
  if (values.help) { process.stdout.write(HELP); return; }
  let prompt = values.prompt as string | undefined;
  if (values.file !== undefined) {
    try { prompt = readFileSync(values.file as string, "utf8"); } catch (e) { throw new ArgumentError(`--file: ${(e as Error).message}`); }
  }
  if (prompt === undefined) throw new ArgumentError("run: give a prompt with -p TEXT or -f FILE (see cmx run --help)");
  const sampling = samplingFrom(values);
  const nPredict = num(values["n-predict"], "n-predict", { int: true, min: -1 }) ?? 256;
  const m = openModel(values);
  const tokens = m.tokenizer.encode(prompt, { addBos: !values["no-bos"] && m.tokenizer.vocab.addBos, parseSpecial: !!values["parse-special"] });
  if (!values["no-echo"]) process.stdout.write(prompt);
  const ac = new AbortController();
  const onSig = () => ac.abort();
  process.once("SIGINT", onSig);
  const r = await generate(m.ctx, m.tokenizer, tokens, {
    maxTokens: nPredict, sampling, stop: values.stop as string[] | undefined, signal: ac.signal,
    onText: (t) => process.stdout.write(t),
  });
  process.off("SIGINT", onSig);
  process.stdout.write("\n");
  if (!values["no-stats"]) {
    const pt = r.promptTokens - r.cachedTokens;
    process.stderr.write(
      `\nprompt: ${pt} tokens in ${r.promptMs.toFixed(0)} ms (${(pt / (r.promptMs / 1000)).toFixed(1)} t/s)` +
      ` | generation: ${r.tokens.length} tokens in ${r.genMs.toFixed(0)} ms (${(r.tokens.length / (r.genMs / 1000)).toFixed(1)} t/s)` +
      ` | finish: ${r.finishReason} | seed: ${r.seed}\n`);
    const ex = m.model.weights.experts?.stats;
    if (ex) {
      const n = ex.hits + ex.misses;
      process.stderr.write(`experts on demand: ${ex.slots} slots (${(ex.slotBytes / 2 ** 20).toFixed(1)} MiB), hit rate ${(100 * ex.hits / Math.max(1, n)).toFixed(1)}%, ` +
        `${(ex.bytesRead / 2 ** 20).toFixed(1)} MiB read, ${(ex.bytesRead / 2 ** 20 / Math.max(1, r.promptTokens + r.tokens.length)).toFixed(2)} MiB per token, ${ex.prefetched} prefetch reads\n`);
    }
  }
}
