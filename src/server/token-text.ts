/**
 * Per-token bytes and display texts, computed once per model: the constrained decoder checks
 * candidate tokens byte by byte, and logprobs report each token's text and bytes.
 */
import { SPACE_SYMBOL, TokenType, parseBytePiece } from "../tokenizer/vocab.js";
import type { SpmTokenizer } from "../tokenizer/spm.js";

export class TokenTable {
  /** Rendered bytes of each token; null for control/unknown tokens (BOS, EOS, <unk>). */
  readonly bytes: (Uint8Array | null)[];
  /** The same bytes as a "binary" string (one char per byte, codes 0..255), for prefix tests. */
  readonly bin: (string | null)[];
  private readonly texts: string[];

  constructor(readonly tokenizer: SpmTokenizer) {
    const v = tokenizer.vocab;
    const enc = new TextEncoder();
    const n = tokenizer.nVocab;
    this.bytes = new Array(n);
    this.bin = new Array(n);
    this.texts = new Array(n);
    for (let id = 0; id < n; id++) {
      const piece = v.tokens[id]!;
      let b: Uint8Array | null;
      switch (v.types[id]) {
        case TokenType.CONTROL:
        case TokenType.UNKNOWN:
          b = null;
          break;
        case TokenType.BYTE: {
          const x = parseBytePiece(piece);
          b = x >= 0 ? Uint8Array.of(x) : enc.encode(piece);
          break;
        }
        case TokenType.USER_DEFINED:
          b = enc.encode(piece);
          break;
        case TokenType.UNUSED:
          b = new Uint8Array(0);
          break;
        default:
          b = enc.encode(piece.split(SPACE_SYMBOL).join(" "));
      }
      this.bytes[id] = b;
      this.bin[id] = b === null ? null : String.fromCharCode(...b);
      this.texts[id] = b === null ? piece : new TextDecoder("utf-8", { ignoreBOM: true }).decode(b);
    }
  }

  /** Text of one token as shown in logprobs (special tokens by their piece, lone bytes as U+FFFD). */
  text(id: number): string {
    return this.texts[id] ?? "";
  }

  /** Bytes of one token as a plain array (OpenAI's `bytes` field). */
  byteList(id: number): number[] {
    const b = this.bytes[id];
    return b ? [...b] : [...new TextEncoder().encode(this.texts[id] ?? "")];
  }
}
