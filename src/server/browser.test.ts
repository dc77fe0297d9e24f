/**
 * The web chat page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
 * type a question, see the answer stream in, press stop, regenerate. Skipped when Chromium or
 * the built page is absent. Screenshots go to tmp/serve-page*.png. A second test colours an
 * answer by expert (the server's `experts` extension), per layer and for all layers.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../model/default-model.js";
import { loadModel, type LoadedModel } from "../model/load.js";
import { startServer, type RunningServer } from "./server.js";
import { testModelPath } from "./testing.js";

// the page functions below run in the browser; this file is compiled without the DOM library
// eslint-disable-next-line @typescript-eslint/no-explicit-any
declare const document: any, localStorage: any, getComputedStyle: any;

const CHROMIUM = process.env.CMX_CHROMIUM ?? "/usr/bin/chromium";
const PAGE = join(PACKAGE_ROOT, "dist", "web", "index.html");
const skip = !existsSync(CHROMIUM) ? `no Chromium at ${CHROMIUM}` : !existsSync(PAGE) ? "the web page is not built (npm run build:web)" : false;

let loaded: LoadedModel;
let server: RunningServer;

before(async () => {
  if (skip) return;
  loaded = loadModel(testModelPath(), { threads: 1 });
  server = await startServer({ loaded, port: 0, parallel: 2, nCtx: 512 });
});

after(async () => {
  await server?.close();
});

test("web chat page: ask, watch the answer stream, stop, regenerate", { skip, timeout: 90_000 }, async () => {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "cmx-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    viewport: { width: 1200, height: 760 },
  });
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => document.getElementById("server-info")?.textContent?.startsWith("Model:"));

    // settings: greedy and long answers, so that there is time to press stop
    await page.click("#settings summary");
    await page.fill("#temperature", "0");
    await page.fill("#max_tokens", "400");
    await page.fill("#system", "You are a helpful assistant.");
    await page.locator("#max_tokens").dispatchEvent("change");
    await page.locator("#temperature").dispatchEvent("change");
    await page.locator("#system").dispatchEvent("change");

    await page.fill("#prompt", "Write a long story about a **lighthouse** and explain it with a code example.");
    await page.keyboard.press("Enter");
    const answer = page.locator(".msg.assistant").last();
    await answer.locator(".content").waitFor();
    // streamed: text appears while the answer is still being written
    await page.waitForFunction(() => {
      const a = [...document.querySelectorAll(".msg.assistant")].at(-1) as any;
      return a?.classList.contains("streaming") && (a.querySelector(".content")?.textContent?.length ?? 0) > 10;
    });
    const partial = (await answer.locator(".content").textContent())!.length;
    await page.waitForFunction((n) => (([...document.querySelectorAll(".msg.assistant .content")].at(-1) as any)?.textContent?.length ?? 0) > n, partial);
    assert.ok(await page.isVisible("#stop"));
    await page.screenshot({ path: shot("serve-page-streaming.png") });
    await page.click("#stop");
    await page.waitForFunction(() => !document.querySelector(".msg.streaming"));
    const stats = await answer.locator(".stats").textContent();
    assert.match(stats!, /tokens · [\d.]+ tok\/s .*stopped/);
    assert.ok(await page.isVisible("#send"));
    // the server noticed: the slot is free again
    const t0 = Date.now();
    while (server.scheduler.activeSlots > 0) {
      assert.ok(Date.now() - t0 < 3000, "slot freed after stop");
      await new Promise((r) => setTimeout(r, 20));
    }

    // the user's message and the conversation list
    assert.equal(await page.locator(".msg.user .content").first().textContent(), "Write a long story about a **lighthouse** and explain it with a code example.");
    assert.equal(await page.locator("#conversations .conv").count(), 1);
    assert.match((await page.locator("#conversations .conv-open").first().textContent())!, /^Write a long story/);

    // regenerate with a short answer that runs to its end
    await page.fill("#max_tokens", "12");
    await page.locator("#max_tokens").dispatchEvent("change");
    await page.click("#regenerate");
    await page.waitForFunction(() => {
      const a = [...document.querySelectorAll(".msg.assistant")].at(-1) as any;
      return a && !a.classList.contains("streaming") && /tok\/s/.test(a.querySelector(".stats")?.textContent ?? "");
    });
    assert.equal(await page.locator(".msg.assistant").count(), 1);
    assert.match((await page.locator(".msg.assistant .stats").textContent())!, /^\d+ tokens · [\d.]+ tok\/s/);

    await page.screenshot({ path: shot("serve-page.png") });

    // Markdown with code blocks is rendered, and sanitised: a stored conversation whose answer
    // holds markdown, a script and an event handler
    await page.evaluate(() => {
      const md = "## Plan\n\n- **one**\n- two\n\n```js\nconsole.log(\"hi\");\n```\n\n<script>window.pwned = 1</script><img src=\"data:,\" onerror=\"window.pwned = 2\">";
      const conv = { id: "stored", title: "Stored markdown", updated: Date.now() + 1000, turns: [{ role: "user", content: "show me" }, { role: "assistant", content: md }] };
      const list = JSON.parse(localStorage.getItem("cmx.conversations.v1") ?? "[]");
      localStorage.setItem("cmx.conversations.v1", JSON.stringify([conv, ...list]));
    });
    await page.reload();
    await page.locator("#conversations .conv-open", { hasText: "Stored markdown" }).click();
    const content = page.locator(".msg.assistant .content").first();
    assert.equal(await content.locator("h2").textContent(), "Plan");
    assert.equal(await content.locator("li strong").textContent(), "one");
    assert.equal(await content.locator(".code-block .code-bar span").textContent(), "js");
    assert.equal(await content.locator(".code-block pre code").textContent(), 'console.log("hi");\n');
    assert.equal(await content.locator("script").count(), 0);
    assert.equal(await content.locator("[onerror]").count(), 0);
    assert.equal(await page.evaluate(() => (globalThis as any).pwned), undefined);
    assert.equal(await page.locator("#conversations .conv").count(), 2);
    await page.screenshot({ path: shot("serve-page-markdown.png") });
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
});

test("web chat page: colour an answer by expert, per layer and for all layers", { skip, timeout: 90_000 }, async () => {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "cmx-chromium-"));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    viewport: { width: 1200, height: 760 },
  });
  const { nLayer, nExpert, nExpertUsed: k } = loaded.model.config;
  try {
    const page = ctx.pages()[0] ?? await ctx.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
    await page.goto(`${server.url}/`);
    await page.waitForFunction(() => document.getElementById("server-info")?.textContent?.startsWith("Model:"));
    await page.click("#settings summary");
    await page.fill("#temperature", "0");
    await page.fill("#max_tokens", "16");
    await page.locator("#max_tokens").dispatchEvent("change");
    await page.locator("#temperature").dispatchEvent("change");

    // off by default: no legend, the layer selector disabled
    assert.equal(await page.isVisible("#expert-legend"), false);
    assert.equal(await page.isDisabled("#expert-layer"), true);
    await page.check("#expert-view");
    assert.equal(await page.isVisible("#expert-legend"), true);
    assert.equal(await page.isDisabled("#expert-layer"), false);
    assert.equal(await page.locator("#expert-legend .swatch").count(), nExpert);
    assert.equal(await page.locator("#expert-layer option").count(), nLayer + 1);

    await page.fill("#prompt", "Tell me about <b>experts</b> & routers.");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => {
      const a = [...document.querySelectorAll(".msg.assistant")].at(-1) as any;
      return a && !a.classList.contains("streaming") && /tok\/s/.test(a.querySelector(".stats")?.textContent ?? "");
    });
    const content = page.locator(".msg.assistant .content").last();
    const stored = await page.evaluate(() => JSON.parse(localStorage.getItem("cmx.conversations.v1")!)[0].turns[1]);
    const tokens = Number(/^(\d+) tokens/.exec((await page.locator(".msg.assistant .stats").last().textContent())!)![1]);
    assert.equal(stored.experts.k, k);
    assert.equal(stored.experts.tokens.length, tokens, "the experts of every generated token");
    // all layers (the default): a bar per token, one segment per layer; the text is the answer's
    assert.equal(await content.textContent(), stored.content);
    const spans = content.locator(".tok");
    const n = await spans.count();
    assert.ok(n >= 1 && n <= tokens, `${n} coloured tokens of ${tokens}`);
    const first = stored.experts.tokens.findIndex((t: any) => t.t !== "");
    assert.equal(await spans.first().getAttribute("data-e"), Array.from({ length: nLayer }, (_, l) => stored.experts.tokens[first].e[l * k]).join(","));
    assert.match((await spans.first().evaluate((el: any) => el.style.backgroundImage))!, /^linear-gradient/);
    await page.screenshot({ path: shot("serve-page-experts-all.png") });

    // one layer: the fill is that layer's first expert, in the legend's colour
    await page.selectOption("#expert-layer", "1");
    assert.match((await page.locator("#expert-legend .legend-what").textContent())!, /^Layer 1: fill = first expert/);
    assert.equal(await spans.first().getAttribute("data-e"), String(stored.experts.tokens[first].e[1 * k]));
    const colours = await spans.evaluateAll((els: any[]) => els.map((el) => [Number(el.dataset.e), getComputedStyle(el).backgroundColor]));
    for (const [e, bg] of colours as [number, string][]) {
      assert.ok(e >= 0 && e < nExpert);
      const sw = await page.locator(`#expert-legend .swatch[data-e="${e}"] i`).evaluate((el: any) => getComputedStyle(el).backgroundColor);
      assert.equal(bg.replace(/^rgba?\((\d+), (\d+), (\d+).*$/, "$1,$2,$3"), sw.replace(/^rgba?\((\d+), (\d+), (\d+).*$/, "$1,$2,$3"));
    }
    assert.ok(new Set(colours.map((c: any) => c[1])).size >= 1);
    const tip = (await spans.first().getAttribute("title"))!.split("\n");
    assert.equal(tip.length, nLayer + 1);
    assert.match(tip[2]!, /^▶ L1: E\d+ \d+%/);
    await page.screenshot({ path: shot("serve-page-experts.png") });

    // the user's text is never HTML, and neither are token texts
    assert.equal(await page.locator(".msg.user .content b").count(), 0);
    await page.evaluate(() => {
      const ex = { k: 2, tokens: [{ t: "<i>hi</i><script>window.pwned=1</script>", p: "<i>", e: [0, 1, 2, 3], w: [60, 40, 70, 30] }, { t: " **bold**", p: " **", e: [4, 5, 6, 7], w: [50, 50, 90, 10] }] };
      const content = "<i>hi</i><script>window.pwned=1</script> **bold**";
      const conv = { id: "stored-x", title: "Stored experts", updated: Date.now() + 1000, turns: [{ role: "user", content: "hi" }, { role: "assistant", content, experts: ex }] };
      const list = JSON.parse(localStorage.getItem("cmx.conversations.v1") ?? "[]");
      localStorage.setItem("cmx.conversations.v1", JSON.stringify([conv, ...list]));
    });
    await page.reload();
    await page.locator("#conversations .conv-open", { hasText: "Stored experts" }).click();
    const sc = page.locator(".msg.assistant .content").first();
    assert.equal(await sc.locator(".tok").count(), 2);
    assert.equal(await sc.locator("i, script").count(), 0);
    assert.equal(await sc.textContent(), "<i>hi</i><script>window.pwned=1</script> **bold**");
    assert.equal(await page.evaluate(() => (globalThis as any).pwned), undefined);

    // off again: Markdown as before
    await page.uncheck("#expert-view");
    assert.equal(await sc.locator(".tok").count(), 0);
    assert.equal(await sc.locator("strong").textContent(), "bold");
    assert.equal(await sc.locator("i").textContent(), "hi");
    assert.equal(await sc.locator("script").count(), 0);
    assert.equal(await page.evaluate(() => (globalThis as any).pwned), undefined);
    assert.equal(await page.isVisible("#expert-legend"), false);
    assert.deepEqual(errors, []);
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
});

function shot(name: string): string {
  const dir = join(PACKAGE_ROOT, "tmp");
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
