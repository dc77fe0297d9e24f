/** Prometheus metrics of the server (GET /metrics), on a private prom-client registry. */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { Scheduler, StepStats } from "./scheduler.js";

export class ServerMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<"endpoint" | "status">;
  readonly promptTokens: Counter;
  readonly generatedTokens: Counter;
  readonly ttft: Histogram;
  readonly requestTps: Histogram;
  readonly steps: Histogram;
  /** (time ms, generated tokens) of recent steps, for the throughput gauge */
  private recent: { t: number; n: number }[] = [];

  constructor(scheduler: Scheduler) {
    const registers = [this.registry];
    this.requests = new Counter({ name: "cmx_requests_total", help: "HTTP requests by endpoint and status code", labelNames: ["endpoint", "status"], registers });
    this.promptTokens = new Counter({ name: "cmx_prompt_tokens_total", help: "Prompt tokens read (tokens in)", registers });
    this.generatedTokens = new Counter({ name: "cmx_generated_tokens_total", help: "Tokens generated (tokens out)", registers });
    new Gauge({ name: "cmx_queue_length", help: "Jobs waiting for a slot", registers, collect() { this.set(scheduler.queueLength); } });
    new Gauge({ name: "cmx_slots_busy", help: "Slots processing a job", registers, collect() { this.set(scheduler.activeSlots); } });
    new Gauge({ name: "cmx_slots_total", help: "Slots (--parallel)", registers, collect() { this.set(scheduler.slots.length); } });
    this.ttft = new Histogram({
      name: "cmx_time_to_first_token_seconds", help: "From request to first generated token", registers,
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    });
    this.requestTps = new Histogram({
      name: "cmx_request_tokens_per_second", help: "Generation speed of each finished job (tokens/s after the prompt)", registers,
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
    });
    this.steps = new Histogram({
      name: "cmx_batch_tokens", help: "Tokens per batched forward step", registers, buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    });
    const recent = () => this.recent;
    new Gauge({
      name: "cmx_tokens_per_second", help: "Tokens generated per second over the last 10 s, all slots together", registers,
      collect() {
        const now = performance.now(), r = recent().filter((x) => now - x.t <= 10_000);
        this.set(r.reduce((a, x) => a + x.n, 0) / 10);
      },
    });
  }

  onStep(s: StepStats): void {
    this.steps.observe(s.tokens);
    if (s.generated) {
      const now = performance.now();
      this.recent.push({ t: now, n: s.generated });
      while (this.recent.length && now - this.recent[0]!.t > 10_000) this.recent.shift();
    }
  }

  onJob(r: { promptTokens: number; cachedTokens: number; completionTokens: number; ttftMs?: number; genMs: number }): void {
    this.promptTokens.inc(r.promptTokens - r.cachedTokens);
    this.generatedTokens.inc(r.completionTokens);
    if (r.ttftMs !== undefined) this.ttft.observe(r.ttftMs / 1000);
    if (r.completionTokens > 1 && r.genMs > 0) this.requestTps.observe(r.completionTokens / (r.genMs / 1000));
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
