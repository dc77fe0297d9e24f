/**
 * The web chat page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
 * type a question, see the answer stream in, press stop, regenerate. Skipped when Chromium or
 * the built page is absent. A screenshot goes to tmp/serve-page.png.
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
declare const document: any, localStorage: any;

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

function shot(name: string): string {
  const dir = join(PACKAGE_ROOT, "tmp");
  mkdirSync(dir, { recursive: true });
  return join(dir, name);
}
