import "./style.css";
import { ApiError, listModels, streamChat, type Msg } from "./api.js";
import { expertsSeen, layersOf, renderExpertTokens, renderLegend, storeEntries } from "./experts.js";
import { setMarkdown } from "./markdown.js";
import {
  DEFAULT_SETTINGS, loadConversations, loadSettings, newConversation, saveConversations, saveSettings,
  type Conversation, type Settings, type Turn,
} from "./store.js";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const els = {
  conversations: $("conversations"), newChat: $<HTMLButtonElement>("new-chat"), messages: $("messages"),
  title: $("chat-title"), error: $("error"), form: $<HTMLFormElement>("composer"), prompt: $<HTMLTextAreaElement>("prompt"),
  send: $<HTMLButtonElement>("send"), stop: $<HTMLButtonElement>("stop"), regenerate: $<HTMLButtonElement>("regenerate"),
  system: $<HTMLTextAreaElement>("system"), apiKey: $<HTMLInputElement>("api_key"), serverInfo: $("server-info"),
  reset: $<HTMLButtonElement>("reset-settings"),
  expertView: $<HTMLInputElement>("expert-view"), expertLayer: $<HTMLSelectElement>("expert-layer"), legend: $("expert-legend"),
};
const NUMERIC = ["temperature", "top_p", "top_k", "repetition_penalty", "max_tokens"] as const;

let conversations: Conversation[] = loadConversations();
let current: Conversation = conversations[0] ?? newConversation();
let settings: Settings = loadSettings();
let running: AbortController | null = null;
/** the served model's sizes (/v1/models meta: n_layer, n_expert, ...) */
let meta: Record<string, number> = {};
/** the turn shown by each message's content element */
const shown = new WeakMap<HTMLElement, Turn>();

// ---- settings -------------------------------------------------------------------------------------

function showSettings(): void {
  els.system.value = settings.system;
  els.apiKey.value = settings.apiKey;
  for (const k of NUMERIC) $<HTMLInputElement>(k).value = String(settings[k]);
}

function readSettings(): void {
  const next: Settings = { ...settings, system: els.system.value, apiKey: els.apiKey.value.trim() };
  for (const k of NUMERIC) {
    const v = Number($<HTMLInputElement>(k).value);
    if ($<HTMLInputElement>(k).value !== "" && Number.isFinite(v)) next[k] = v;
  }
  settings = next;
  saveSettings(settings);
}

for (const id of ["system", "api_key", ...NUMERIC]) $(id).addEventListener("change", () => { readSettings(); if (id === "api_key") void loadServerInfo(); });
els.reset.addEventListener("click", () => {
  settings = { ...DEFAULT_SETTINGS, apiKey: settings.apiKey, expertView: settings.expertView, expertLayer: settings.expertLayer };
  saveSettings(settings);
  showSettings();
});

// ---- colour by expert -----------------------------------------------------------------------------

/** Layers to offer: the model's, else those of the data shown. */
function layerCount(): number {
  if (meta.n_layer) return meta.n_layer;
  let n = 0;
  for (const t of current.turns) if (t.experts) n = Math.max(n, layersOf(t.experts));
  return n;
}

function showExpertControls(): void {
  els.expertView.checked = settings.expertView;
  const n = layerCount();
  const want = ["-1", ...Array.from({ length: n }, (_, l) => String(l))];
  if ([...els.expertLayer.options].map((o) => o.value).join() !== want.join()) {
    els.expertLayer.replaceChildren(...want.map((v) => new Option(v === "-1" ? "All layers" : `Layer ${v}`, v)));
  }
  if (settings.expertLayer >= n && n > 0) settings.expertLayer = -1;
  els.expertLayer.value = want.includes(String(settings.expertLayer)) ? String(settings.expertLayer) : "-1";
  els.expertLayer.disabled = !settings.expertView;
  els.legend.hidden = !settings.expertView;
  if (settings.expertView) {
    let nExpert = meta.n_expert ?? 0, k = meta.n_expert_used ?? 0;
    for (const t of current.turns) if (t.experts) { nExpert = Math.max(nExpert, expertsSeen(t.experts)); k = k || t.experts.k; }
    renderLegend(els.legend, nExpert || 8, settings.expertLayer, k || 2);
  }
}

/** Draw an answer: Markdown, or with "colour by expert" its tokens as coloured spans. */
function renderContent(el: HTMLElement, t: Turn, streaming = false): void {
  shown.set(el, t);
  if (t.role !== "assistant") { el.textContent = t.content; return; }
  if (settings.expertView && t.experts) {
    renderExpertTokens(el, t.content, t.experts, settings.expertLayer);
    return;
  }
  el.classList.remove("experts");
  setMarkdown(el, t.content);
  if (settings.expertView && !streaming && t.content) {
    const note = document.createElement("p");
    note.className = "expert-note";
    note.textContent = "No expert data for this answer: it was written with “Colour by expert” off. Regenerate it to see its experts.";
    el.append(note);
  }
}

function onExpertSettings(): void {
  settings = { ...settings, expertView: els.expertView.checked, expertLayer: Number(els.expertLayer.value) };
  saveSettings(settings);
  showExpertControls();
  for (const el of els.messages.querySelectorAll<HTMLElement>(".msg.assistant .content")) {
    const t = shown.get(el);
    if (t) renderContent(el, t, el.closest(".streaming") !== null);
  }
}

els.expertView.addEventListener("change", onExpertSettings);
els.expertLayer.addEventListener("change", onExpertSettings);

// ---- conversations --------------------------------------------------------------------------------

function persist(): void {
  if (current.turns.length && !conversations.includes(current)) conversations.unshift(current);
  conversations.sort((a, b) => b.updated - a.updated);
  saveConversations(conversations);
  renderList();
}

function renderList(): void {
  els.conversations.replaceChildren(...conversations.map((c) => {
    const row = document.createElement("div");
    row.className = "conv" + (c === current ? " active" : "");
    const open = document.createElement("button");
    open.type = "button";
    open.className = "conv-open";
    open.textContent = c.title;
    open.title = c.title;
    open.addEventListener("click", () => { if (!running) { current = c; renderAll(); } });
    const del = document.createElement("button");
    del.type = "button";
    del.className = "conv-delete";
    del.textContent = "×";
    del.setAttribute("aria-label", `Delete "${c.title}"`);
    del.addEventListener("click", () => {
      if (running && c === current) return;
      conversations = conversations.filter((x) => x !== c);
      if (c === current) current = conversations[0] ?? newConversation();
      saveConversations(conversations);
      renderAll();
    });
    row.append(open, del);
    return row;
  }));
}

els.newChat.addEventListener("click", () => {
  if (running) return;
  current = newConversation();
  renderAll();
  els.prompt.focus();
});

// ---- messages -------------------------------------------------------------------------------------

function statsText(t: Turn): string {
  const s = t.stats;
  if (!s) return "";
  const parts = [`${s.tokens} tokens`, `${s.tokensPerSecond.toFixed(1)} tok/s`, `first token ${Math.round(s.ttftMs)} ms`];
  if (s.finish === "length") parts.push("cut at max tokens");
  if (s.finish === "stopped") parts.push("stopped");
  return parts.join(" · ");
}

function messageEl(t: Turn): { root: HTMLElement; content: HTMLElement; stats: HTMLElement } {
  const root = document.createElement("article");
  root.className = `msg ${t.role}`;
  const who = document.createElement("div");
  who.className = "who";
  who.textContent = t.role === "user" ? "You" : "Assistant";
  const content = document.createElement("div");
  content.className = "content";
  renderContent(content, t);
  const stats = document.createElement("div");
  stats.className = "stats";
  stats.textContent = statsText(t);
  root.append(who, content, stats);
  return { root, content, stats };
}

function renderMessages(): void {
  if (!current.turns.length) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = "Start a conversation: type a message below.";
    els.messages.replaceChildren(empty);
  } else {
    els.messages.replaceChildren(...current.turns.map((t) => messageEl(t).root));
  }
  els.title.textContent = current.title;
  els.messages.scrollTop = els.messages.scrollHeight;
}

function renderAll(): void {
  renderList();
  showExpertControls();
  renderMessages();
  updateButtons();
}

function updateButtons(): void {
  const busy = running !== null;
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.prompt.disabled = false;
  els.regenerate.disabled = busy || !current.turns.some((t) => t.role === "assistant") || current.turns.at(-1)?.role !== "assistant";
}

function showError(msg: string | null): void {
  els.error.hidden = msg === null;
  els.error.textContent = msg ?? "";
}

// ---- generation -----------------------------------------------------------------------------------

async function answer(): Promise<void> {
  readSettings();
  showError(null);
  const history: Msg[] = current.turns.map((t) => ({ role: t.role, content: t.content }));
  if (settings.system.trim()) history.unshift({ role: "system", content: settings.system.trim() });
  const turn: Turn = { role: "assistant", content: "" };
  const withExperts = settings.expertView;
  if (withExperts) turn.experts = { k: 0, tokens: [] };
  current.turns.push(turn);
  const view = messageEl(turn);
  view.root.classList.add("streaming");
  els.messages.querySelector(".empty")?.remove();
  els.messages.append(view.root);
  running = new AbortController();
  updateButtons();
  let pending = false;
  const paint = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      renderContent(view.content, turn, true);
      const nearBottom = els.messages.scrollHeight - els.messages.scrollTop - els.messages.clientHeight < 120;
      if (nearBottom) els.messages.scrollTop = els.messages.scrollHeight;
    });
  };
  const t0 = performance.now();
  let firstAt = 0, pieces = 0;
  try {
    const { temperature, top_p, top_k, repetition_penalty, max_tokens } = settings;
    const s = await streamChat(history, { temperature, top_p, top_k, repetition_penalty, max_tokens }, settings.apiKey, running.signal, (t) => {
      if (!firstAt) firstAt = performance.now();
      pieces++;
      turn.content += t;
      paint();
    }, withExperts ? (entries) => {
      const ex = turn.experts!;
      ex.k ||= entries[0]!.layers[0]?.length ?? 0;
      ex.tokens.push(...storeEntries(entries));
      paint();
    } : undefined);
    turn.stats = { tokens: s.completionTokens, tokensPerSecond: s.genMs > 0 ? (s.completionTokens - 1) / (s.genMs / 1000) : 0, ttftMs: s.ttftMs, finish: s.finishReason ?? "stop" };
  } catch (e) {
    const aborted = (e as Error).name === "AbortError";
    if (aborted) {
      const genMs = firstAt ? performance.now() - firstAt : 0;
      turn.stats = { tokens: pieces, tokensPerSecond: genMs > 0 ? (pieces - 1) / (genMs / 1000) : 0, ttftMs: firstAt ? firstAt - t0 : 0, finish: "stopped" };
    } else {
      showError(e instanceof ApiError && e.status === 401 ? "The server needs an API key: enter it under Settings." : `Error: ${(e as Error).message}`);
      if (!turn.content) current.turns.pop();
    }
  } finally {
    running = null;
    if (turn.experts && !turn.experts.tokens.length) delete turn.experts;
    renderContent(view.content, turn);
    view.root.classList.remove("streaming");
    view.stats.textContent = statsText(turn);
    current.updated = Date.now();
    persist();
    updateButtons();
  }
}

els.form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = els.prompt.value.trim();
  if (!text || running) return;
  if (!current.turns.length) current.title = text.length > 48 ? text.slice(0, 47) + "…" : text;
  current.turns.push({ role: "user", content: text });
  els.prompt.value = "";
  renderMessages();
  persist();
  void answer();
});

els.prompt.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
    ev.preventDefault();
    els.form.requestSubmit();
  }
});

els.stop.addEventListener("click", () => running?.abort());

els.regenerate.addEventListener("click", () => {
  if (running || current.turns.at(-1)?.role !== "assistant") return;
  current.turns.pop();
  renderMessages();
  void answer();
});

// ---- start ----------------------------------------------------------------------------------------

async function loadServerInfo(): Promise<void> {
  try {
    const models = await listModels(settings.apiKey);
    const m = models[0];
    els.serverInfo.textContent = m ? `Model: ${m.id}${m.meta?.n_ctx ? ` · context ${m.meta.n_ctx}` : ""}` : "No model";
    meta = m?.meta ?? {};
    showExpertControls();
  } catch (e) {
    els.serverInfo.textContent = e instanceof ApiError && e.status === 401 ? "API key needed (Settings)" : "Server unreachable";
  }
}

showSettings();
renderAll();
void loadServerInfo();
