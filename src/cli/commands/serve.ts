import { ArgumentError } from "../../errors.js";
import { DEFAULT_PORT, startServer } from "../../server/server.js";
import { num, parse } from "../args.js";
import { contextSizeOption, kvTypeOption, loadFromOptions } from "../session.js";

export const HELP = `cmx serve: an OpenAI-compatible API server with a web chat page

Usage: cmx serve [-m MODEL] [options]

Endpoints: GET /v1/models, POST /v1/chat/completions, POST /v1/completions,
POST /v1/embeddings, GET /health, GET /metrics (Prometheus), and the chat page at /.

  -m, --model FILE          GGUF model (default: the built-in model)
      --host HOST           address to listen on (default: 127.0.0.1, this machine only)
      --port N              port (default: ${DEFAULT_PORT}; 0 = any free port)
      --api-key KEY         require "Authorization: Bearer KEY" on every endpoint but /health
                            (also read from CMX_API_KEY)
      --parallel N          requests generated at once, batched together (default: 4)
  -c, --ctx-size N          context size of each slot in tokens (default: 4096, at most the model's)
      --queue N             requests that may wait for a slot; beyond that 429 (default: 64)
      --cors ORIGIN         allow browser pages from ORIGIN ("*" for any); off by default
  -t, --threads N           threads (default: all cores)
      --backend wasm|js     kernels: WebAssembly SIMD (default) or the plain-TypeScript reference
      --kv-type f16|f32     KV cache type (default: f16)
      --disable-experts L:E,...  switch experts off (the router picks among the rest)
      --max-memory SIZE     keep at most SIZE of weights in memory; experts are read on demand
      --lora DIR            apply a PEFT LoRA adapter at run time, without merging (repeatable)
      --quiet               do not log each request

See docs/serve.md for the API, examples with the openai client, LangChain.js and curl.
`;

export async function main(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    model: { type: "string", short: "m" },
    host: { type: "string" },
    port: { type: "string" },
    "api-key": { type: "string" },
    parallel: { type: "string" },
    "ctx-size": { type: "string", short: "c" },
    queue: { type: "string" },
    cors: { type: "string" },
    threads: { type: "string", short: "t" },
    backend: { type: "string" },
    "kv-type": { type: "string" },
    "disable-experts": { type: "string" },
    "max-memory": { type: "string" },
    lora: { type: "string", multiple: true },
    quiet: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  }, "serve");
  if (values.help) { process.stdout.write(HELP); return; }
  if (positionals.length) throw new ArgumentError(`serve: unexpected argument "${positionals[0]}" (see cmx serve --help)`);
  const port = num(values.port, "port", { int: true, min: 0, max: 65535 }) ?? DEFAULT_PORT;
  const parallel = num(values.parallel, "parallel", { int: true, min: 1, max: 256 }) ?? 4;
  const queueLimit = num(values.queue, "queue", { int: true, min: 0, max: 1_000_000 }) ?? 64;
  const kv = kvTypeOption(values);
  const apiKey = (values["api-key"] as string | undefined) ?? process.env.CMX_API_KEY;
  if (apiKey !== undefined && apiKey.length < 1) throw new ArgumentError("--api-key: the key is empty");
  const cors = values.cors as string | undefined;
  if (cors !== undefined && cors !== "*" && !/^https?:\/\/[^/\s]+$/.test(cors)) {
    throw new ArgumentError(`--cors: expected an origin like https://example.com (scheme, host, optional port) or "*", got "${cors}"`);
  }
  const host = (values.host as string | undefined) ?? "127.0.0.1";

  const loaded = loadFromOptions(values);
  const { path, threads } = loaded;
  const nCtx = contextSizeOption(values, loaded.model.config.nCtxTrain, 4096, 16);

  const quiet = !!values.quiet;
  const s = await startServer({
    loaded, host, port, parallel, nCtx, queueLimit, kvType: kv, ...(values.exact ? { exact: true } : {}),
    ...(apiKey !== undefined ? { apiKey } : {}), ...(cors !== undefined ? { cors } : {}),
    log: (line) => { if (!quiet) process.stderr.write(`${new Date().toISOString()} ${line}\n`); },
  });
  const c = loaded.model.config;
  process.stderr.write(`cmx serve: ${c.name ?? "model"} (${path}), ${parallel} slot(s) x ${nCtx} tokens of context, ${threads} thread(s)` +
    `${apiKey !== undefined ? ", API key required" : ""}${cors ? `, CORS for ${cors}` : ""}\n`);
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "::1" && apiKey === undefined) {
    process.stderr.write(`cmx serve: warning: listening on ${host} without --api-key: anyone who can reach this port can use the model\n`);
  }
  process.stdout.write(`listening on ${s.url}  (chat page: ${s.url}/, API: ${s.url}/v1)\n`);
  await new Promise<void>((resolve) => {
    const stop = () => { process.stderr.write("cmx serve: shutting down\n"); s.close().then(resolve, resolve); };
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
}
