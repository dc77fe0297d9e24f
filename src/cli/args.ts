/** Shared command-line option tables and parsing helpers (node:util parseArgs, strict). */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ArgumentError } from "../errors.js";
import type { SamplingParams } from "../sampling/index.js";

export type Options = NonNullable<ParseArgsConfig["options"]>;

export const MODEL_OPTIONS: Options = {
  model: { type: "string", short: "m" },
  "ctx-size": { type: "string", short: "c" },
  threads: { type: "string", short: "t" },
  "kv-type": { type: "string" },
  "disable-experts": { type: "string" },
  backend: { type: "string" },
  "max-memory": { type: "string" },
  exact: { type: "boolean" },
  lora: { type: "string", multiple: true },
  help: { type: "boolean", short: "h" },
};

export const SAMPLING_OPTIONS: Options = {
  temp: { type: "string" },
  "top-k": { type: "string" },
  "top-p": { type: "string" },
  "min-p": { type: "string" },
  "repeat-penalty": { type: "string" },
  "repeat-last-n": { type: "string" },
  "presence-penalty": { type: "string" },
  "frequency-penalty": { type: "string" },
  seed: { type: "string", short: "s" },
  "n-predict": { type: "string", short: "n" },
  stop: { type: "string", multiple: true },
};

export const MODEL_HELP = `Model options:
  -m, --model FILE          GGUF model (default: the built-in model)
  -c, --ctx-size N          context size in tokens (default: 4096, at most the model's)
  -t, --threads N           threads (default: all cores)
      --backend wasm|js     kernels: WebAssembly SIMD (default) or the plain-TypeScript reference
      --kv-type f16|f32     KV cache type (default: f16, as llama.cpp)
      --disable-experts L:E,...  switch experts off (the router picks among the rest)
      --max-memory SIZE     keep at most SIZE of weights in memory (e.g. 2G): experts are read
                            from the file on demand into a least-recently-used cache
      --exact               llama.cpp's float arithmetic bit for bit (its x86 CPU kernels): the
                            same logits as llama.cpp to the last bit, several times slower
      --lora DIR            apply a PEFT LoRA adapter at run time, without merging: after each
                            targeted product the model adds (alpha/r)·B·(A·x); repeatable
                            (modules_to_save tensors replace the base's in memory)`;

export const SAMPLING_HELP = `Sampling options (the seed's defaults):
  -n, --n-predict N         tokens to generate (default: 256; -1 = until the context is full)
      --temp T              temperature (default: 0.2; 0 = greedy)
      --top-k K             top-k (default: 40; 0 = off)
      --top-p P             top-p (default: 0.9; 1 = off)
      --min-p P             min-p (default: 0 = off)
      --repeat-penalty R    repetition penalty (default: 1.1; 1 = off)
      --repeat-last-n N     tokens the penalties look back on (default: 64)
      --presence-penalty P  (default: 0)
      --frequency-penalty P (default: 0)
  -s, --seed S              random seed (default: random; printed at the end)
      --stop TEXT           stop when TEXT is generated (repeatable)`;

export function parse(argv: string[], options: Options, command: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    const msg = (e as Error).message.split(". To specify")[0]!;
    throw new ArgumentError(`${msg} (see cmx ${command} --help)`);
  }
}

export function num(v: unknown, name: string, opts: { int?: boolean; min?: number; max?: number } = {}): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(x) || (opts.int && !Number.isInteger(x))) {
    throw new ArgumentError(`--${name}: expected ${opts.int ? "an integer" : "a number"}, got "${String(v)}"`);
  }
  if (opts.min !== undefined && x < opts.min) throw new ArgumentError(`--${name}: must be at least ${opts.min}, got ${x}`);
  if (opts.max !== undefined && x > opts.max) throw new ArgumentError(`--${name}: must be at most ${opts.max}, got ${x}`);
  return x;
}

export function samplingFrom(values: Record<string, unknown>): Partial<SamplingParams> {
  const p: Partial<SamplingParams> = {};
  const set = <K extends keyof SamplingParams>(k: K, v: number | undefined) => { if (v !== undefined) p[k] = v as SamplingParams[K]; };
  set("temperature", num(values["temp"], "temp", { min: 0 }));
  set("topK", num(values["top-k"], "top-k", { int: true, min: 0 }));
  set("topP", num(values["top-p"], "top-p", { min: 0, max: 1 }));
  set("minP", num(values["min-p"], "min-p", { min: 0, max: 1 }));
  set("repeatPenalty", num(values["repeat-penalty"], "repeat-penalty", { min: 0 }));
  set("repeatLastN", num(values["repeat-last-n"], "repeat-last-n", { int: true, min: -1 }));
  set("presencePenalty", num(values["presence-penalty"], "presence-penalty"));
  set("frequencyPenalty", num(values["frequency-penalty"], "frequency-penalty"));
  set("seed", num(values["seed"], "seed", { int: true, min: -1 }));
  return p;
}
