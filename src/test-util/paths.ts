import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file is dist/test-util/paths.js after the build). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The shared folder beside the checkout (reference data, evaluation sets); CMX_SHARED overrides. */
export const SHARED_DIR = process.env.CMX_SHARED ?? resolve(REPO_ROOT, "..", "shared");
export const REFERENCE_DIR = join(SHARED_DIR, "reference");

export function refPath(...parts: string[]): string {
  return join(REFERENCE_DIR, ...parts);
}

export function haveReference(): boolean {
  return existsSync(join(REFERENCE_DIR, "manifest.json"));
}
