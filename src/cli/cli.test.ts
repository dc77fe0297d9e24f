import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, haveReference, refPath } from "../test-util/paths.js";
import { manifest, readF32 } from "../test-util/reference.js";

const CLI = join(REPO_ROOT, "dist", "cli", "main.js");
const dir = mkdtempSync(join(tmpdir(), "cmx-cli-"));
const A = refPath("models", "A-F32.gguf");
const ref = haveReference();

function cmx(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8", timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test("cmx --help lists the commands; each command has --help", () => {
  const r = cmx(["--help"]);
  assert.equal(r.code, 0);
  for (const c of ["run", "chat", "tokenize", "logits", "inspect"]) {
    assert.match(r.out, new RegExp(`\\b${c}\\b`));
    const h = cmx([c, "--help"]);
    assert.equal(h.code, 0, `${c} --help`);
    assert.match(h.out, new RegExp(`Usage: cmx ${c}`));
  }
});

test("cmx tokenize gives llama.cpp's ids", { skip: !ref }, () => {
  const strings = JSON.parse(readFileSync(refPath("tokenizer", "test_strings.json"), "utf8")).strings as { text: string; llama_cpp: Record<string, number[]> }[];
  for (const s of strings.slice(0, 8)) {
    const r = cmx(["tokenize", "-m", A, "--", s.text]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out), s.llama_cpp["bos"]);
    const nb = cmx(["tokenize", "-m", A, "--no-bos", "--", s.text]);
    assert.deepEqual(JSON.parse(nb.out), s.llama_cpp["no_bos"]);
  }
  const p = cmx(["tokenize", "-m", A, "--pieces", "--parse-special", "--no-bos", "</s>你好"]);
  assert.deepEqual(JSON.parse(p.out)[0], { id: 2, piece: "</s>" });
});

test("cmx logits writes llama.cpp's logits", { skip: !ref }, () => {
  const run = manifest().runs.find((r) => r.model === "A-F32" && r.sequence === "short")!;
  const out = join(dir, "l.f32");
  const r = cmx(["logits", "-m", A, "--tokens", manifest().sequences.short!.token_ids.join(","), "--positions", run.logits.positions.join(","), "--out", out]);
  assert.equal(r.code, 0, r.err);
  const b = readFileSync(out);
  const ours = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  const theirs = readF32(run.logits.file);
  assert.equal(ours.length, theirs.length);
  let d = 0;
  for (let i = 0; i < ours.length; i++) d = Math.max(d, Math.abs(ours[i]! - theirs[i]!));
  assert.ok(d < 1e-3, `max |Δ| ${d}`);
});

test("cmx inspect shows configuration, parameters and tensors", { skip: !ref }, () => {
  const r = cmx(["inspect", refPath("models", "B-Q4_K_M.gguf")]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /8 per layer, 2 used per token/);
  assert.match(r.out, /11\.54 M total, 9\.18 M active per token/);
  assert.match(r.out, /blk\.0\.ffn_down_exps\.weight\s+\[256, 128, 8\]\s+Q4_K/);
  const j = JSON.parse(cmx(["inspect", "--json", refPath("models", "B-Q4_K_M.gguf")]).out);
  assert.equal(j.config.nExpert, 8);
  assert.equal(j.tensors.length, 43);
});

test("cmx run is reproducible with a seed and greedy; stop strings and -n work", { skip: !ref }, () => {
  const a = cmx(["run", "-m", A, "-p", "你好", "-n", "12", "--seed", "7", "--temp", "0.8", "--no-stats"]);
  const b = cmx(["run", "-m", A, "-p", "你好", "-n", "12", "--seed", "7", "--temp", "0.8", "--no-stats"]);
  assert.equal(a.code, 0, a.err);
  assert.equal(a.out, b.out);
  assert.ok(a.out.startsWith("你好"));
  const g = cmx(["run", "-m", A, "-p", "Hello", "-n", "8", "--temp", "0", "--no-echo"]);
  assert.equal(g.code, 0);
  assert.match(g.err, /generation: 8 tokens/);
  const word = g.out.trim().split(/\s+/)[1];
  if (word) {
    const s = cmx(["run", "-m", A, "-p", "Hello", "-n", "8", "--temp", "0", "--no-echo", "--stop", word]);
    assert.ok(!s.out.includes(word), `stop string "${word}" should not be printed: ${s.out}`);
    assert.match(s.err, /finish: stop/);
  }
});

test("cmx chat answers piped turns, /reset and /exit", { skip: !ref }, () => {
  const r = cmx(["chat", "-m", A, "-n", "6", "--temp", "0", "--system", "You are helpful"], "你好\n再说一遍\n/reset\nHi\n/exit\n");
  assert.equal(r.code, 0, r.err);
  const lines = r.out.split("\n");
  assert.ok(lines.includes("(new conversation)"));
  assert.ok(lines.filter((l) => l.length > 0).length >= 4, r.out);
});

test("bad arguments and files give one clear line, no stack trace", { skip: !ref }, () => {
  const cases: [string[], RegExp][] = [
    [["run", "-m", join(dir, "nope.gguf"), "-p", "x"], /model file not found/],
    [["run", "-m", A], /give a prompt/],
    [["run", "-m", A, "-p", "x", "--temp", "hot"], /--temp: expected a number/],
    [["run", "-m", A, "-p", "x", "--bogus"], /Unknown option '--bogus'/],
    [["run", "-m", A, "-p", "x", "-c", "100000"], /larger than the 256 tokens/],
    [["run", "-m", A, "-p", "word ".repeat(40), "-c", "16"], /longer than the context size 16/],
    [["run", "-m", refPath("tokenizer", "tokenizer.model.v1"), "-p", "x"], /not a GGUF file/],
    [["logits", "-m", A, "--tokens", "1,x", "--out", join(dir, "x")], /"x" is not a token id/],
    [["run", "-m", A, "-p", "x", "--disable-experts", "0:9"], /outside 2 layers x 4 experts/],
    [["serve", "-m", A, "--port", "0", "--disable-experts", "0:9"], /outside 2 layers x 4 experts/],
    [["serve", "-m", A, "--port", "0", "--max-memory", "1M"], /--max-memory .* is too small/],
    [["frobnicate"], /unknown command/],
  ];
  for (const [args, re] of cases) {
    const r = cmx(args);
    assert.notEqual(r.code, 0, args.join(" "));
    assert.match(r.err, re, args.join(" "));
    assert.doesNotMatch(r.err, /\n\s+at /, "no stack trace");
  }
  assert.ok(!existsSync(join(dir, "x")));
});

test("cmx perplexity prints llama-perplexity's figure; --sweep writes a table, JSON, SVG and PNG", { skip: !ref }, () => {
  const text = refPath("inputs", "perplexity.txt");
  const r = cmx(["perplexity", "-m", A, "-f", text, "-c", "128", "--kv-type", "f32"]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^\[1\]66253\.4\d+,\[2\]53458\.4\d+/);
  assert.match(r.out, /PPL = 54983\.9\d+ \+\/- 2902\.3\d+/);
  const out = join(dir, "sweep");
  const s = cmx(["perplexity", "-m", A, "-f", text, "--sweep", "32,64", "--out", out]);
  assert.equal(s.code, 0, s.err);
  assert.match(s.out, /\| 32 \| 24 \|/);
  const png = readFileSync(join(out, "ppl-vs-context.png"));
  assert.equal(png.subarray(1, 4).toString(), "PNG");
  assert.match(readFileSync(join(out, "ppl-vs-context.svg"), "utf8"), /<svg/);
  assert.equal(JSON.parse(readFileSync(join(out, "ppl-vs-context.json"), "utf8")).results.length, 2);
  const short = cmx(["perplexity", "-m", A, "-f", text, "-c", "4096"]);
  assert.notEqual(short.code, 0);
  assert.match(short.err, /larger than the 256 tokens|fewer than one window/);
});
