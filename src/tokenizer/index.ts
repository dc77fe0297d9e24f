/**
 * Tokenizer for Mistral / Mixtral (SentencePiece BPE with byte fallback), giving the same ids as
 * llama.cpp's llm_tokenizer_spm and python sentencepiece.
 *
 *   const tok = new SpmTokenizer(loadSpmModel("tokenizer.model"));   // or loadHfTokenizer(dir).vocab
 *   tok.encode("[INST] Hi [/INST]", { parseSpecial: true });          // BOS + ids
 *   tok.decode(ids, { skipSpecial: true });
 */
export { SpmTokenizer, type EncodeOptions, type DecodeOptions, type StreamDecoder, type StreamDecoderOptions } from "./spm.js";
export { TokenType, SPACE_SYMBOL, bytePiece, parseBytePiece, type Vocab, type TokenTypeValue } from "./vocab.js";
export { loadSpmModel, parseSpmModel } from "./from-spm-model.js";
export { loadHfTokenizer, parseHfTokenizer, type HfTokenizer } from "./from-hf.js";
