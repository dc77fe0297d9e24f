// @ts-nocheck -- AssemblyScript (compiled by asc, see package.json build:wasm), not Node TypeScript.
// Entry point of the WebAssembly kernels (src/kernels/wasm/backend.ts loads the compiled module).
// No data segments and no allocator here: the JavaScript side owns the (shared, imported) memory
// above heapBase() and passes byte pointers.

export { matmul, matmulBlock, packRows } from "./matmul";
export { matmulUnits } from "./moe";
export { setIqTables } from "./matmul-iq";
export { actRowBytes, quantizeRows } from "./quantize";
export { matmulScratchBytes, setMatmulScratch } from "./tile";
export { attention, attentionRows, attentionScratchBytes, expF64, rmsNorm, rope, setScratch, softmax, swiglu } from "./ops";
export { attentionGgml, attentionGgmlScratchBytes, matmulGgml, matmulGgmlScratchBytes, matmulGgmlSupported, siluGgml } from "./ggml";

/** first byte the module's static data does not use */
export function heapBase(): usize {
  return __heap_base;
}
