/**
 * Instantiate a kernel module over a given (shared) memory, filling its imports generically: the
 * memory import gets the memory, function imports (abort, trace) get stubs that throw.
 */
export function instantiateOver(module: WebAssembly.Module, memory: WebAssembly.Memory): WebAssembly.Instance {
  const imports: Record<string, Record<string, WebAssembly.ImportValue>> = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    const ns = (imports[imp.module] ??= {});
    if (imp.kind === "memory") ns[imp.name] = memory;
    else if (imp.kind === "function") {
      ns[imp.name] = (..._args: unknown[]) => { throw new Error(`wasm kernel called ${imp.module}.${imp.name}`); };
    }
  }
  return new WebAssembly.Instance(module, imports);
}
