import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

// The chat page is built into dist/web, which `cmx serve` serves at /.
export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  base: "./",
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL("../dist/web", import.meta.url)),
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    reportCompressedSize: false,
  },
  logLevel: "warn",
});
