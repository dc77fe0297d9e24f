/**
 * PEFT LoRA adapters: reading (safetensors, or PyTorch .bin through a restricted unpickler),
 * checking against a base, merging into a file, or applying to weights in memory.
 *
 *   mergeLora({ base: "Mixtral-8x7B-v0.1/", lora: "chinese-mixtral-lora/", out: "merged.gguf", outType: "q8_0" });
 *   const m = loadModel("mixtral.gguf"); applyLoraToWeights(m.model, loadLoraAdapter("lora/"));
 *   attachLora(m.model, loadLoraAdapter("lora/"));  // at run time: s·B·(A·x) after each targeted product
 */
export { checkAdapter, KNOWN_MODULES, loadLoraAdapter, stripPeftPrefix, type LoraAdapter, type LoraPair, type LoraReplacement, type PeftConfig } from "./adapter.js";
export { addLoraDelta, applyLoraToWeights, isGgufPath, loraTransform, mergeLora, type MergeOptions, type MergeResult } from "./merge.js";
export { attachLora, RuntimeLora, type RuntimeLoraResult } from "./runtime.js";
export { unpickle, PyDict, PyList, PyTuple, StorageRef, TensorRef, type PyValue } from "./pickle.js";
export { TorchCheckpoint } from "./torch-bin.js";
export { ZipFile } from "./zip.js";
