/** Test helpers: the tokenizer reference data in shared/reference (see its README). */
import { readFileSync } from "node:fs";
import { refPath } from "../test-util/paths.js";

export interface RefString {
  index: number;
  text: string;
  utf8_hex: string;
  llama_cpp: {
    no_bos: number[];
    bos: number[];
    bos_parse_special: number[];
    llama_tokenize_cli: number[];
    detokenized_no_bos: string;
  };
  sentencepiece: { ids: number[]; pieces: string[]; decoded: string };
}

export interface ChatRef {
  template: string;
  conversations: { llama_chat_apply_template: string; token_ids_bos_parse_special: number[] }[];
}

export function spmModelPath(): string {
  return refPath("tokenizer", "tokenizer.model.v1");
}

export function loadRefStrings(): RefString[] {
  const d = JSON.parse(readFileSync(refPath("tokenizer", "test_strings.json"), "utf8")) as { strings: RefString[] };
  return d.strings;
}

export function loadChatRef(): ChatRef {
  return JSON.parse(readFileSync(refPath("tokenizer", "chat_template.json"), "utf8")) as ChatRef;
}

export function loadManifest(): {
  tokenizer: Record<string, unknown>;
  sequences: Record<string, { text: string; token_ids: number[] }>;
} {
  return JSON.parse(readFileSync(refPath("manifest.json"), "utf8"));
}
