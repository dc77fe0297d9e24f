/** Conversations and settings, kept in the browser's localStorage. */
import type { Msg, Sampling } from "./api.js";

export interface AnswerStats {
  tokens: number;
  tokensPerSecond: number;
  ttftMs: number;
  finish: string;
}

/** One generated token's routing, compact: e[l * k + j] is layer l's j-th expert, w the same in percent. */
export interface StoredToken {
  /** the text the token added to the answer */
  t: string;
  /** the token as the tokenizer shows it (tooltip) */
  p: string;
  e: number[];
  w: number[];
}

/** The experts of every token of an answer (answers generated with "colour by expert" on). */
export interface TurnExperts {
  /** experts per token and layer */
  k: number;
  tokens: StoredToken[];
}

export interface Turn extends Msg {
  stats?: AnswerStats;
  experts?: TurnExperts;
}

export interface Conversation {
  id: string;
  title: string;
  updated: number;
  turns: Turn[];
}

export interface Settings extends Sampling {
  system: string;
  apiKey: string;
  /** colour answers by the experts that generated them (asks the server for them) */
  expertView: boolean;
  /** the layer whose experts colour the tokens; -1: all layers */
  expertLayer: number;
}

// the server's defaults (the seed's): temperature 0.2, top_p 0.9, top_k 40, repetition penalty 1.1
export const DEFAULT_SETTINGS: Settings = {
  system: "", apiKey: "", temperature: 0.2, top_p: 0.9, top_k: 40, repetition_penalty: 1.1, max_tokens: 512,
  expertView: false, expertLayer: -1,
};

const CONV_KEY = "cmx.conversations.v1";
const SET_KEY = "cmx.settings.v1";

function read<T>(key: string, fallback: T): T {
  try {
    const s = localStorage.getItem(key);
    return s ? (JSON.parse(s) as T) : fallback;
  } catch {
    return fallback;
  }
}

export function loadConversations(): Conversation[] {
  const list = read<Conversation[]>(CONV_KEY, []);
  return Array.isArray(list) ? list.sort((a, b) => b.updated - a.updated) : [];
}

export function saveConversations(list: Conversation[]): void {
  try {
    localStorage.setItem(CONV_KEY, JSON.stringify(list));
  } catch {
    // storage full (expert data is large): keep the experts of the newest conversation only
    try {
      const lean = list.map((c, i) => (i === 0 ? c : { ...c, turns: c.turns.map(({ experts: _, ...t }) => t) }));
      localStorage.setItem(CONV_KEY, JSON.stringify(lean));
    } catch { /* storage full or disabled */ }
  }
}

export function loadSettings(): Settings {
  return { ...DEFAULT_SETTINGS, ...read<Partial<Settings>>(SET_KEY, {}) };
}

export function saveSettings(s: Settings): void {
  try { localStorage.setItem(SET_KEY, JSON.stringify(s)); } catch { /* ignore */ }
}

export function newConversation(): Conversation {
  return { id: `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`, title: "New chat", updated: Date.now(), turns: [] };
}
