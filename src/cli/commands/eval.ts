import { existsSync, mkdirSync, readdirSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { ArgumentError } from "../../errors.js";
import { EndpointBackend, LocalBackend, type EvalBackend } from "../../eval/backend.js";
import { DEFAULT_MAX_LENGTH, GREEDY_SAMPLING, LongBenchData, SEED_SAMPLING, ZH_TASKS, formatLongBenchTable, runLongBench } from "../../eval/longbench.js";
import { BENCHES, LAYOUTS, McqData, SPLITS, formatTable, resultName, type Bench, type TemplateMode } from "../../eval/mcq.js";
import { reportJson, runMcq, type McqMode } from "../../eval/mcq-run.js";
import { defaultModelPath } from "../../model/default-model.js";
import { vocabFromGguf } from "../../model/load.js";
import { readGgufHeader } from "../../io/gguf/reader.js";
import { SpmTokenizer } from "../../tokenizer/spm.js";
import { MODEL_HELP, MODEL_OPTIONS, num, parse } from "../args.js";
import { Progress } from "../progress.js";
import { kvTypeOption, loadFromOptions } from "../session.js";

export const HELP = `cmx eval: C-Eval, CMMLU, MMLU and LongBench, measured as the seed project measures them

Usage: cmx eval ceval|cmmlu|mmlu --data DIR [--split S] [--shots N] [--subjects a,b] [--template T]
                [--generate | --seed-scores] [--limit N] [--fit] [--out FILE] [-m MODEL | --endpoint URL]
       cmx eval longbench --data DIR [--tasks a,b] [--max-length N] [--limit N] [--sample] [--out FILE]

Multiple choice (ceval, cmmlu, mmlu):
      --data DIR          the benchmark's folder (layouts below)
      --split S           ceval: val (default), test, dev; cmmlu: test (default), dev; mmlu: val (default), test, dev
      --shots N           few-shot examples from the dev split (default 5; 0 = zero-shot; -1 = all dev rows)
      --subjects a,b      only these subjects (file keys, e.g. computer_network)
      --template T        none (default, the seed's --with_prompt False), instruct ([INST] ... [/INST]
                          as the seed's --with_prompt True), auto (instruct when the model's chat
                          template is [INST]-style); MMLU always runs without a template
      --generate          ceval/cmmlu: generate up to 20 tokens (greedy) and extract the letter with the
                          seed's regex cascade, instead of scoring the letters at the first position
      --seed-scores       score with the seed's processed scores (repetition penalty 1.1 over the prompt,
                          temperature 0.2) instead of the raw logits; local models only
      --limit N           only the first N questions of each subject
      --fit               drop few-shot examples (from the end) from prompts that do not fit the context
      --parallel N        sequences per batched step, or concurrent requests with --endpoint (default 4)

LongBench:
      --data DIR          folder with <task>.jsonl and config/dataset2{prompt,maxlen}.json
      --tasks a,b         default: the seed's Chinese tasks found in DIR (${ZH_TASKS.join(", ")})
      --max-length N      prompt budget in tokens; longer prompts lose their middle (default ${DEFAULT_MAX_LENGTH})
      --limit N           only the first N items of each task
      --sample            the seed's sampling (temperature 0.2, top-p 0.95, top-k 40, seed 42) instead of greedy
      --tokenizer GGUF    with --endpoint: the tokenizer for the truncation (default: -m, else the built-in model's,
                          which is Mixtral's vocabulary)

Both:
      --out FILE          results JSON (default: cmx-eval/<benchmark>-<split>-<shots>shot....json); answers so far are
                          kept in FILE's .cache folder, so an interrupted run continues where it stopped
      --no-cache          neither read nor write that cache
      --endpoint URL      evaluate a model served by an OpenAI-compatible server (/v1/completions with
                          echo and logprobs): vLLM, llama.cpp's server, cmx serve
      --api-key K         its API key (default: $OPENAI_API_KEY)
      --api-model NAME    the model name to send (default: the first of GET /v1/models)

Scores: per subject accuracy %, category averages (subject_mapping.json / categories.json), the
overall micro average (the seed's "All") and the mean over subjects, as a table and as JSON.

Expected layouts:
  ceval      ${LAYOUTS.ceval}
  cmmlu      ${LAYOUTS.cmmlu}
  mmlu       ${LAYOUTS.mmlu}
             (a folder holding one <layout> subfolder per release, like shared/data/mmlu, is searched for the split)

${MODEL_HELP}
`;

const OPTIONS = {
  ...MODEL_OPTIONS,
  data: { type: "string" }, split: { type: "string" }, shots: { type: "string" }, subjects: { type: "string" },
  template: { type: "string" }, generate: { type: "boolean" }, "seed-scores": { type: "boolean" },
  limit: { type: "string" }, fit: { type: "boolean" }, out: { type: "string" }, "no-cache": { type: "boolean" },
  parallel: { type: "string" }, endpoint: { type: "string" }, "api-key": { type: "string" }, "api-model": { type: "string" },
  tasks: { type: "string" }, "max-length": { type: "string" }, sample: { type: "boolean" }, tokenizer: { type: "string" },
} as const;

type Values = Record<string, unknown>;

function endpointBackend(values: Values, parallel: number): EndpointBackend {
  const key = (values["api-key"] as string | undefined) ?? process.env.OPENAI_API_KEY;
  const model = values["api-model"] as string | undefined;
  return new EndpointBackend({ url: values["endpoint"] as string, parallel, ...(key ? { apiKey: key } : {}), ...(model ? { model } : {}) });
}

function writeJson(file: string, obj: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(`${file}.tmp`, JSON.stringify(obj, null, 2) + "\n");
  renameSync(`${file}.tmp`, file);
}

const cacheDirOf = (out: string) => out.replace(/\.json$/i, "") + ".cache";

/**
 * Progress with ETA: the shared one-line display on a terminal; elsewhere (a log file, CI) a line
 * at every tenth of the work, since the evaluation advances in batches that skip the exact tenths.
 */
class EvalProgress {
  private bar: Progress | undefined;
  private readonly t0 = performance.now();
  private lastTenth = -1;
  constructor(private readonly label: string, private readonly stream = process.stderr) {}

  update(done: number, total: number, extra: string): void {
    if (this.stream.isTTY) {
      (this.bar ??= new Progress(this.label, Math.max(1, total), this.stream)).update(done, extra);
      return;
    }
    const tenth = total > 0 ? Math.floor((10 * done) / total) : 10;
    if (tenth === this.lastTenth) return;
    this.lastTenth = tenth;
    const el = (performance.now() - this.t0) / 1000;
    const eta = done > 0 && done < total ? `, ${((el / done) * (total - done)).toFixed(1)} s left` : "";
    this.stream.write(`${this.label} ${String(total ? Math.floor((100 * done) / total) : 100).padStart(3)}% ${done}/${total} | ${el.toFixed(1)} s${eta} | ${extra}\n`);
  }
}

/** A folder that has the split directly, or exactly one subfolder that has it (shared/data/mmlu/{original-2020,current}). */
function locateSplitDir(bench: Bench, dir: string, split: string): string {
  if (!existsSync(dir) || existsSync(join(dir, split))) return dir;
  const subs = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory() && existsSync(join(dir, d.name, split)));
  if (subs.length === 1) {
    process.stderr.write(`${bench}: using ${join(dir, subs[0]!.name)} (it has the ${split} split)\n`);
    return join(dir, subs[0]!.name);
  }
  return dir;
}

async function mcq(bench: Bench, values: Values): Promise<void> {
  if (!values["data"]) throw new ArgumentError(`eval ${bench}: give the data folder with --data DIR; expected layout: ${LAYOUTS[bench]}`);
  const split = (values["split"] as string | undefined) ?? SPLITS[bench].dflt;
  if (!SPLITS[bench].allowed.includes(split)) throw new ArgumentError(`--split: ${bench} has ${SPLITS[bench].allowed.join(", ")}, not "${split}"`);
  const shots = num(values["shots"], "shots", { int: true, min: -1 }) ?? 5;
  const limit = num(values["limit"], "limit", { int: true, min: 1 });
  const parallel = num(values["parallel"], "parallel", { int: true, min: 1, max: 64 }) ?? 4;
  const tpl = (values["template"] as string | undefined) ?? "none";
  if (!["auto", "instruct", "none"].includes(tpl)) throw new ArgumentError(`--template: expected auto, instruct or none, got "${tpl}"`);
  if (values["generate"] && values["seed-scores"]) throw new ArgumentError("--generate and --seed-scores do not go together");
  const mode: McqMode = values["generate"] ? "generate" : values["seed-scores"] ? "seed-scores" : "logits";
  const data = new McqData(bench, locateSplitDir(bench, values["data"] as string, split), split);
  let subjects: string[] | undefined;
  if (values["subjects"] !== undefined) {
    subjects = String(values["subjects"]).split(",").map((s) => s.trim()).filter(Boolean);
    const unknown = subjects.filter((s) => !data.subjects.includes(s));
    if (unknown.length) throw new ArgumentError(`--subjects: ${unknown.join(", ")} not in ${join(data.dir, split)} (it has: ${data.subjects.join(", ")})`);
  }

  let backend: EvalBackend;
  if (values["endpoint"]) {
    const eb = endpointBackend(values, parallel);
    await eb.init();
    backend = eb;
  } else {
    const loaded = loadFromOptions(values);
    const train = loaded.model.config.nCtxTrain;
    const nCtx = num(values["ctx-size"], "ctx-size", { int: true, min: 16 }) ?? Math.min(train, 4096);
    if (nCtx > train) throw new ArgumentError(`--ctx-size ${nCtx} is larger than the ${train} tokens this model was trained for`);
    backend = new LocalBackend(loaded, { nCtx, kvType: kvTypeOption(values), parallel, ...(values.exact ? { exact: true } : {}) });
  }
  const template: TemplateMode = bench === "mmlu" ? "none" : tpl === "auto" ? (backend.looksInstruct ? "instruct" : "none") : (tpl as TemplateMode);
  if (bench === "mmlu" && tpl === "instruct") throw new ArgumentError("mmlu: the seed evaluates MMLU without a chat template; use --template none");
  const out = (values["out"] as string | undefined) ?? join("cmx-eval", `${resultName(bench, split, shots, template, mode)}.json`);
  const cacheDir = values["no-cache"] ? null : cacheDirOf(out);
  process.stderr.write(`eval ${bench}: ${backend.label}, ${data.dir} ${split}, ${shots}-shot, template ${template}, ${mode === "generate" ? "generate + regex extraction" : mode === "seed-scores" ? "seed's processed scores" : "letter logits"}\n`);
  const prog = new EvalProgress(`eval ${bench}`);
  const report = await runMcq({
    data, shots, template, mode, ...(subjects ? { subjects } : {}), ...(limit ? { limit } : {}), fit: !!values["fit"],
    cacheDir, backend, log: (l) => process.stderr.write(l + "\n"),
    onProgress: (done, total, subject) => prog.update(done, total, subject),
  });
  backend.close();
  const title = `${bench} ${split}, ${shots}-shot, template ${template}, ${mode}${limit ? `, first ${limit} per subject` : ""} - ${backend.label}`;
  process.stdout.write("\n" + formatTable(report.summary, title));
  if (backend instanceof EndpointBackend && backend.unverified) process.stderr.write(`warning: ${backend.unverified} letter scores could not be read back from the server (prompt + letter tokenized differently); they count as -inf\n`);
  writeJson(out, reportJson(report));
  process.stdout.write(`\nwrote ${out}\n`);
}

function tokenizerFrom(path: string): SpmTokenizer {
  const h = readGgufHeader(path);
  return new SpmTokenizer(vocabFromGguf(h.metadata, basename(path)));
}

async function longbench(values: Values): Promise<void> {
  if (!values["data"]) throw new ArgumentError("eval longbench: give the data folder with --data DIR (<task>.jsonl files and config/)");
  const data = new LongBenchData(values["data"] as string);
  const tasks = values["tasks"] !== undefined
    ? String(values["tasks"]).split(",").map((s) => s.trim()).filter(Boolean)
    : ZH_TASKS.filter((t) => data.available().includes(t));
  if (tasks.length === 0) throw new ArgumentError(`eval longbench: none of the seed's Chinese tasks (${ZH_TASKS.join(", ")}) is in ${data.dir}; name tasks with --tasks`);
  const maxLength = num(values["max-length"], "max-length", { int: true, min: 16 }) ?? DEFAULT_MAX_LENGTH;
  const limit = num(values["limit"], "limit", { int: true, min: 1 });
  const parallel = num(values["parallel"], "parallel", { int: true, min: 1, max: 64 }) ?? 4;
  const sampling = values["sample"] ? SEED_SAMPLING : GREEDY_SAMPLING;
  const maxGen = Math.max(...tasks.map((t) => data.maxLen[t] ?? 0));
  let backend: EvalBackend;
  let tokenizer: SpmTokenizer;
  if (values["endpoint"]) {
    const eb = endpointBackend(values, parallel);
    await eb.init();
    backend = eb;
    tokenizer = tokenizerFrom((values["tokenizer"] as string | undefined) ?? (values["model"] as string | undefined) ?? defaultModelPath());
  } else {
    const loaded = loadFromOptions(values);
    const train = loaded.model.config.nCtxTrain;
    const nCtx = num(values["ctx-size"], "ctx-size", { int: true, min: 16 }) ?? Math.min(train, maxLength + maxGen + 64);
    if (nCtx > train) throw new ArgumentError(`--ctx-size ${nCtx} is larger than the ${train} tokens this model was trained for`);
    backend = new LocalBackend(loaded, { nCtx, kvType: kvTypeOption(values), parallel: 1, ...(values.exact ? { exact: true } : {}) });
    tokenizer = loaded.tokenizer;
  }
  const out = (values["out"] as string | undefined) ?? join("cmx-eval", `longbench-${maxLength}${values["sample"] ? "-sample" : ""}.json`);
  process.stderr.write(`eval longbench: ${backend.label}, tasks ${tasks.join(", ")}, max length ${maxLength}, ${values["sample"] ? "the seed's sampling" : "greedy"}\n`);
  const prog = new EvalProgress("eval longbench");
  const report = await runLongBench({
    data, tasks, backend, tokenizer, maxLength, sampling, ...(limit ? { limit } : {}),
    cacheDir: values["no-cache"] ? null : cacheDirOf(out), log: (l) => process.stderr.write(l + "\n"),
    onProgress: (done, total, task) => prog.update(done, total, task),
  });
  backend.close();
  process.stdout.write("\n" + formatLongBenchTable(report, `LongBench, max length ${maxLength}${limit ? `, first ${limit} per task` : ""} - ${backend.label}`));
  writeJson(out, report);
  process.stdout.write(`\nwrote ${out}\n`);
}

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, OPTIONS, "eval");
  if (values.help) { process.stdout.write(HELP); return; }
  const bench = positionals[0];
  if (!bench) throw new ArgumentError("eval: name a benchmark: ceval, cmmlu, mmlu or longbench (see cmx eval --help)");
  if (positionals.length > 1) throw new ArgumentError(`eval: unexpected argument "${positionals[1]}" (see cmx eval --help)`);
  if (bench === "longbench") return longbench(values);
  if (!(BENCHES as readonly string[]).includes(bench)) throw new ArgumentError(`eval: unknown benchmark "${bench}"; expected ceval, cmmlu, mmlu or longbench`);
  return mcq(bench as Bench, values);
}
