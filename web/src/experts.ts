/**
 * "Colour by expert": an answer drawn token by token, each token coloured by the experts the
 * router chose for it (the server's `experts` extension). One layer: the fill is the first
 * choice, the underline the second. All layers: a bar under each token with one segment per
 * layer (layer 0 at the left), each the layer's first choice. The tooltip lists every layer.
 * Token texts go in as text nodes: model output is never HTML here.
 */
import type { ExpertEntry } from "./api.js";
import type { StoredToken, TurnExperts } from "./store.js";

/** 16 colours told apart easily (the first 8, Mixtral's experts, most of all); more experts wrap. */
export const PALETTE = [
  "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1", "#edc948", "#17becf", "#ff9da7",
  "#9c755f", "#76b7b2", "#bcbd22", "#3b4cc0", "#8e0152", "#bab0ac", "#a6d854", "#6a3d9a",
];

export const expertColour = (e: number): string => PALETTE[((e % PALETTE.length) + PALETTE.length) % PALETTE.length]!;

/** Server entries to the compact stored form. */
export function storeEntries(entries: ExpertEntry[]): StoredToken[] {
  return entries.map((x) => ({
    t: x.text, p: x.token,
    e: x.layers.flat(),
    w: x.weights.flat().map((w) => Math.round(w * 100)),
  }));
}

export function layersOf(ex: TurnExperts): number {
  const first = ex.tokens[0];
  return first && ex.k > 0 ? Math.floor(first.e.length / ex.k) : 0;
}

/** Highest expert index in the data + 1 (the legend's size when the server does not say). */
export function expertsSeen(ex: TurnExperts): number {
  let m = -1;
  for (const t of ex.tokens) for (const e of t.e) if (e > m) m = e;
  return m + 1;
}

function tooltip(tok: StoredToken, k: number, layer: number): string {
  const n = Math.floor(tok.e.length / k);
  const lines = [JSON.stringify(tok.p)];
  for (let l = 0; l < n; l++) {
    const picks = [];
    for (let j = 0; j < k; j++) picks.push(`E${tok.e[l * k + j]} ${tok.w[l * k + j]}%`);
    lines.push(`${l === layer ? "▶ " : ""}L${l}: ${picks.join(", ")}`);
  }
  return lines.join("\n");
}

function tokenSpan(text: string, tok: StoredToken, k: number, layer: number): HTMLSpanElement {
  const s = document.createElement("span");
  s.className = "tok";
  s.textContent = text;
  s.title = tooltip(tok, k, layer);
  const n = Math.floor(tok.e.length / k);
  if (layer >= 0) {
    if (layer >= n) return s;
    const first = tok.e[layer * k]!;
    s.dataset.e = String(first);
    s.style.backgroundColor = expertColour(first) + "66";
    if (k > 1) s.style.borderBottomColor = expertColour(tok.e[layer * k + 1]!);
  } else {
    s.classList.add("bars");
    s.dataset.e = Array.from({ length: n }, (_, l) => tok.e[l * k]).join(",");
    const stops = Array.from({ length: n }, (_, l) => {
      const c = expertColour(tok.e[l * k]!);
      return `${c} ${(100 * l / n).toFixed(3)}% ${(100 * (l + 1) / n).toFixed(3)}%`;
    });
    s.style.backgroundImage = `linear-gradient(to right, ${stops.join(", ")})`;
  }
  return s;
}

/**
 * Draw `text` (the answer as shown) token by token. Tokens whose experts have not arrived yet,
 * and text after the tokens (a stop string's cut, the decoder's tail), are drawn plain.
 */
export function renderExpertTokens(el: HTMLElement, text: string, ex: TurnExperts, layer: number): void {
  const frag = document.createDocumentFragment();
  let pos = 0;
  for (const tok of ex.tokens) {
    if (!tok.t) continue; // a byte of a character that a later token completes
    if (!text.startsWith(tok.t, pos)) {
      // the answer ends inside this token (a stop string): colour the part that is shown
      let n = 0;
      while (pos + n < text.length && n < tok.t.length && text[pos + n] === tok.t[n]) n++;
      if (n) frag.append(tokenSpan(tok.t.slice(0, n), tok, ex.k, layer));
      pos += n;
      break;
    }
    frag.append(tokenSpan(tok.t, tok, ex.k, layer));
    pos += tok.t.length;
  }
  if (pos < text.length) {
    const rest = document.createElement("span");
    rest.className = "tok-rest";
    rest.textContent = text.slice(pos);
    frag.append(rest);
  }
  el.classList.add("experts");
  el.replaceChildren(frag);
}

/** The legend: one swatch per expert and what the colours mean. */
export function renderLegend(el: HTMLElement, nExpert: number, layer: number, k: number): void {
  const what = document.createElement("span");
  what.className = "legend-what";
  what.textContent = layer >= 0
    ? `Layer ${layer}: fill = first expert${k > 1 ? ", underline = second" : ""}. Hover a token for every layer.`
    : "All layers: one bar segment per layer (layer 0 at the left), the first expert of each. Hover a token for details.";
  const swatches = Array.from({ length: nExpert }, (_, e) => {
    const s = document.createElement("span");
    s.className = "swatch";
    s.dataset.e = String(e);
    const dot = document.createElement("i");
    dot.style.backgroundColor = expertColour(e);
    s.append(dot, `E${e}`);
    return s;
  });
  el.replaceChildren(what, ...swatches);
}
