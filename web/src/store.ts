/** Conversations and settings, kept in the browser's localStorage. */
import type { Msg, Sampling } from "./api.js";

export interface AnswerStats {
  tokens: number;
  tokensPerSecond: number;
  ttftMs: number;
  finish: string;
}

export interface Turn extends Msg {
  stats?: AnswerStats;
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
}

// the server's defaults (the seed's): temperature 0.2, top_p 0.9, top_k 40, repetition penalty 1.1
export const DEFAULT_SETTINGS: Settings = {
  system: "", apiKey: "", temperature: 0.2, top_p: 0.9, top_k: 40, repetition_penalty: 1.1, max_tokens: 512,
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
  try { localStorage.setItem(CONV_KEY, JSON.stringify(list)); } catch { /* storage full or disabled */ }
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
