/**
 * Load test for `cmx serve`: starts the server (a child process, as users run it), then C clients
 * each send streaming chat requests back to back for D seconds. Prints requests/s, generated
 * tokens/s for all clients together (over the whole run, and over the D-second window alone, which
 * leaves out the requests still finishing after it), and time to first token p50/p95.
 *
 *   npm run bench:serve -- [-m MODEL] [-c CONCURRENCY] [-d SECONDS] [-n MAX_TOKENS] [-t THREADS]
 *                          [--parallel N] [--ctx N] [--url URL] [--json]
 *
 * --url benchmarks a server that is already running instead (then -m/-t/--parallel are unused).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { availableParallelism, cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PACKAGE_ROOT, defaultModelPath } from "../model/default-model.js";

const { values } = parseArgs({
  options: {
    model: { type: "string", short: "m" }, concurrency: { type: "string", short: "c" }, duration: { type: "string", short: "d" },
    "max-tokens": { type: "string", short: "n" }, threads: { type: "string", short: "t" }, parallel: { type: "string" },
    ctx: { type: "string" }, url: { type: "string" }, "api-key": { type: "string" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" },
  },
  allowPositionals: false,
});
if (values.help) {
  process.stdout.write("npm run bench:serve -- [-m MODEL] [-c CONCURRENCY=4] [-d SECONDS=30] [-n MAX_TOKENS=128] [-t THREADS] [--parallel N (default C)] [--ctx N=512] [--url URL] [--api-key KEY] [--json]\n");
  process.exit(0);
}
const int = (v: string | undefined, d: number, name: string) => {
  const x = v === undefined ? d : Number(v);
  if (!Number.isInteger(x) || x < 1) { process.stderr.write(`bench:serve: ${name} must be a positive integer\n`); process.exit(2); }
  return x;
};
const C = int(values.concurrency, 4, "-c");
const D = Number(values.duration ?? 30);
const N = int(values["max-tokens"], 128, "-n");
const threads = int(values.threads, availableParallelism(), "-t");
const parallel = int(values.parallel, C, "--parallel");
const ctx = int(values.ctx, 512, "--ctx");
const model = values.model ?? defaultModelPath();

async function startChild(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [join(PACKAGE_ROOT, "dist", "cli", "main.js"), "serve", "-m", model, "--port", "0",
    "--parallel", String(parallel), "-t", String(threads), "-c", String(ctx), "--queue", String(4 * C), "--quiet"], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d: Buffer) => { err += d.toString(); });
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`the server exited (${code}): ${err}`)));
  });
  return { url, child };
}

/** tokens: completion tokens of the request; inWindow: those streamed before the deadline (pro rata of the chunks) */
interface Sample { ttftMs: number; tokens: number; ms: number; inWindow: number }

/** end of the measuring window (performance.now() time); Infinity during the warm-up */
let deadline = Infinity;

async function oneRequest(url: string, i: number, headers: Record<string, string>): Promise<Sample> {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: "POST", headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify({
      messages: [{ role: "user", content: `Write a short story about a lighthouse keeper and the sea, number ${i}.` }],
      max_tokens: N, stream: true, stream_options: { include_usage: true },
    }),
  });
  if (!res.ok) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = -1, tokens = 0, buf = "", chunks = 0, early = 0;
  const dec = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    let k: number;
    while ((k = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, k);
      buf = buf.slice(k + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const d = JSON.parse(line.slice(6)) as { choices: { delta?: { content?: string } }[]; usage?: { completion_tokens: number } | null };
      if (ttft < 0 && d.choices[0]?.delta?.content) ttft = performance.now() - t0;
      if (typeof d.choices[0]?.delta?.content === "string") {
        chunks++;
        if (performance.now() <= deadline) early++;
      }
      if (d.usage) tokens = d.usage.completion_tokens;
    }
  }
  return { ttftMs: ttft < 0 ? performance.now() - t0 : ttft, tokens, ms: performance.now() - t0, inWindow: chunks ? (tokens * early) / chunks : 0 };
}

/** CPU seconds (user + system, all threads) of a process so far, from /proc (Linux); undefined elsewhere. */
function cpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return undefined;
  }
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

const started = values.url ? { url: values.url, child: null } : await startChild();
const headers: Record<string, string> = values["api-key"] ? { Authorization: `Bearer ${values["api-key"]}` } : {};
try {
  // warm-up: one short request (first-use costs are not part of the figures)
  await oneRequest(started.url, -1, headers);
  const samples: Sample[] = [];
  const cpu0 = cpuSeconds(started.child?.pid);
  const t0 = performance.now();
  deadline = t0 + D * 1000;
  let next = 0;
  await Promise.all(Array.from({ length: C }, async () => {
    while (performance.now() < deadline) samples.push(await oneRequest(started.url, next++, headers));
  }));
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = cpuSeconds(started.child?.pid);
  const tokens = samples.reduce((a, s) => a + s.tokens, 0);
  // steady state: the tokens streamed within the D-second window (the requests still running at
  // its end, with fewer and fewer clients, are left out)
  const windowTokens = samples.reduce((a, s) => a + s.inWindow, 0);
  // the server's CPU time over its threads: what the wall time would be with the cores to itself
  const cpuWall = cpu0 !== undefined && cpu1 !== undefined ? (cpu1 - cpu0) / threads : undefined;
  const r = {
    model: values.url ?? model, concurrency: C, parallel, threads, maxTokens: N, seconds: +wall.toFixed(2), requests: samples.length,
    requestsPerSecond: +(samples.length / wall).toFixed(3), tokensPerSecond: +(tokens / wall).toFixed(2),
    windowTokensPerSecond: +(windowTokens / D).toFixed(2),
    ttftP50Ms: +pct(samples.map((s) => s.ttftMs), 50).toFixed(0), ttftP95Ms: +pct(samples.map((s) => s.ttftMs), 95).toFixed(0),
    ...(cpuWall ? { serverCpuSeconds: +(cpuWall * threads).toFixed(2), tokensPerCpuWallSecond: +(tokens / cpuWall).toFixed(2) } : {}),
    cpu: cpus()[0]?.model ?? "unknown", cores: availableParallelism(), node: process.version,
  };
  if (values.json) process.stdout.write(JSON.stringify(r) + "\n");
  else {
    process.stdout.write(`bench:serve  ${values.url ?? model}  (${r.cpu}, ${r.cores} cores, ${threads} threads, node ${r.node})\n`);
    process.stdout.write(`  clients ${C}, slots ${parallel}, max_tokens ${N}, ${r.seconds} s, ${r.requests} requests\n`);
    process.stdout.write(`  requests/s ${r.requestsPerSecond}   generated tokens/s (all clients) ${r.tokensPerSecond}   TTFT p50 ${r.ttftP50Ms} ms, p95 ${r.ttftP95Ms} ms\n`);
    process.stdout.write(`  within the ${D} s window: ${r.windowTokensPerSecond} generated tokens/s (the tail of requests still running at its end left out)\n`);
    if (cpuWall) process.stdout.write(`  server CPU ${(cpuWall * threads).toFixed(1)} s over ${threads} threads: ${(tokens / cpuWall).toFixed(2)} tokens per second of ${threads}-thread CPU time (less sensitive to other load)\n`);
  }
} finally {
  started.child?.kill("SIGTERM");
}
