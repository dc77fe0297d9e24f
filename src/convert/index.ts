/**
 * Hugging Face folders <-> GGUF.
 *
 *   convertHfToGguf("Mixtral-8x7B-v0.1/", "mixtral-f16.gguf", { outType: "f16" });
 *   exportGgufToHf("model.gguf", "hf-out/", { dtype: "bf16" });
 *
 * Both stream tensor by tensor through a ModelSource (source.ts), which shows either kind of
 * file in HF layout; write-gguf.ts and write-hf.ts write it out.
 */
import { openGgufModel, openHfModel } from "./source.js";
import { writeGgufModel, type GgufOutOptions } from "./write-gguf.js";
import { writeHfFolder, type HfOutOptions } from "./write-hf.js";

export function convertHfToGguf(dir: string, out: string, opts: GgufOutOptions) {
  const src = openHfModel(dir);
  try {
    return { config: src.config, ...writeGgufModel(src, out, opts) };
  } finally {
    src.close();
  }
}

export function exportGgufToHf(path: string, out: string, opts: HfOutOptions) {
  const src = openGgufModel(path);
  try {
    return { config: src.config, ...writeHfFolder(src, out, opts) };
  } finally {
    src.close();
  }
}

export { openGgufModel, openHfModel, openModel, type HfTensor, type ModelSource, type TensorStore } from "./source.js";
export { permuteRopeRows, ggufRowOf } from "./permute.js";
export { GGUF_OUT_TYPES, parseGgufOutType, writeGgufModel, type GgufOutOptions, type GgufOutType, type TensorTransform } from "./write-gguf.js";
export { HF_DTYPES, parseHfDtype, stageFolder, writeHfFolder, type HfDtype, type HfOutOptions } from "./write-hf.js";
