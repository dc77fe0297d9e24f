/**
 * The tokenizer vocabulary shared by every loader (SentencePiece tokenizer.model, Hugging Face
 * tokenizer.json, GGUF metadata) and the SentencePiece-BPE tokenizer in spm.ts.
 */

/** SentencePiece piece types (sentencepiece_model.proto, ModelProto.SentencePiece.Type). */
export const TokenType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type TokenTypeValue = (typeof TokenType)[keyof typeof TokenType];

export interface Vocab {
  /** Pieces, with U+2581 for space and byte pieces like "<0x0A>". */
  tokens: string[];
  scores: Float32Array;
  /** SentencePiece types: 1 NORMAL, 2 UNKNOWN, 3 CONTROL, 4 USER_DEFINED, 5 UNUSED, 6 BYTE. */
  types: Int32Array;
  /** -1 when absent. */
  bosId: number;
  eosId: number;
  unkId: number;
  padId: number;
  addBos: boolean;
  addEos: boolean;
  /** SentencePiece add_dummy_prefix (true for Llama/Mistral). */
  addSpacePrefix: boolean;
  /** SentencePiece trainer_spec.byte_fallback; informational (byte pieces are used whenever present). */
  byteFallback?: boolean;
  /** Extra end-of-generation ids besides eosId (e.g. "<|im_end|>"); optional. */
  eogIds?: number[];
}

/** The SentencePiece meta symbol for a space, U+2581 LOWER ONE EIGHTH BLOCK. */
export const SPACE_SYMBOL = "\u2581";

/** "<0x0A>" -> 10; anything else -> -1. */
export function parseBytePiece(piece: string): number {
  if (piece.length !== 6 || !piece.startsWith("<0x") || piece[5] !== ">") return -1;
  const hex = piece.slice(3, 5);
  if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return -1;
  return parseInt(hex, 16);
}

/** 10 -> "<0x0A>" (upper-case hex, as SentencePiece writes byte pieces). */
export function bytePiece(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`;
}
