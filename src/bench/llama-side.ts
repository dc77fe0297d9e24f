/**
 * The llama.cpp side of `npm run bench -- --vs`: a child process (so its threads, memory and
 * peak RSS are its own) that loads the same file in node-llama-cpp 3.21.1 (prebuilt CPU build,
 * never downloaded or compiled) and runs one repetition of the same measurement per request.
 *
 * Protocol (process.send): the parent sends {model, threads, nP, nG, prompt}; the child answers
 * {ready: true} or {error}. Then each {run: true} is answered with {ppMs, tgMs}; {rss: true} with
 * {peakRssBytes}; {exit: true} ends it.
 */
interface Setup { model: string; threads: number; nP: number; nG: number; prompt: number[] }
type Msg = Setup | { run: true } | { rss: true } | { exit: true };

if (!process.send) {
  process.stderr.write("llama-side: run by `npm run bench -- --vs`, not directly\n");
  process.exit(2);
}
const send = (m: unknown) => process.send!(m);

let setup: Setup | undefined;
let llama: { dispose(): Promise<void> } | undefined;
let model: {
  createContext(o: object): Promise<{ getSequence(): Seq; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
} | undefined;
interface Seq {
  evaluateWithoutGeneratingNewTokens(t: number[]): Promise<void>;
  evaluate(t: number[], o: object): AsyncIterable<number>;
  clearHistory(): Promise<void>;
}

async function start(s: Setup): Promise<void> {
  setup = s;
  const { getLlama } = await import("node-llama-cpp");
  const l = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  llama = l;
  model = (await l.loadModel({ modelPath: s.model })) as never;
}

/** one repetition: the prompt in one batch on a fresh context, then nG greedy tokens after BOS */
async function once(): Promise<{ ppMs: number; tgMs: number }> {
  const s = setup!;
  const ctx = await model!.createContext({ contextSize: Math.max(256, s.nP + s.nG + 8), threads: s.threads, batchSize: Math.max(s.nP, 1), sequences: 1 });
  const seq = ctx.getSequence();
  let ppMs = 0, tgMs = 0;
  if (s.nP > 0) {
    const t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens([1, ...s.prompt.slice(0, s.nP - 1)]);
    ppMs = performance.now() - t;
    await seq.clearHistory();
  }
  if (s.nG > 0) {
    await seq.evaluateWithoutGeneratingNewTokens([1]);
    const t = performance.now();
    let n = 0;
    for await (const tok of seq.evaluate([1000], { temperature: 0 })) { void tok; if (++n >= s.nG) break; }
    tgMs = performance.now() - t;
  }
  await ctx.dispose();
  return { ppMs, tgMs };
}

process.on("message", (m: Msg) => {
  void (async () => {
    try {
      if ("model" in m) { await start(m); send({ ready: true }); }
      else if ("run" in m) send(await once());
      else if ("rss" in m) send({ peakRssBytes: process.resourceUsage().maxRSS * 1024 });
      else if ("exit" in m) {
        await model?.dispose();
        await llama?.dispose();
        process.exit(0);
      }
    } catch (e) {
      send({ error: e instanceof Error ? e.message : String(e) });
    }
  })();
});
