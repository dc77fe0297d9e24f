/**
 * A restricted unpickler for PyTorch checkpoints (the data.pkl of a torch.save archive).
 *
 * Python's pickle format can call any importable function; this reader never runs or imports
 * anything. It understands the opcodes that encode plain data (None, bools, ints, floats,
 * strings, bytes, tuples, lists, dicts, the memo) and accepts exactly these globals:
 *
 *   collections.OrderedDict            -> a dict
 *   torch._utils._rebuild_tensor_v2,   -> a tensor reference (storage, offset, shape, stride)
 *   torch._utils._rebuild_tensor
 *   torch._utils._rebuild_parameter    -> the tensor inside
 *   torch.<Dtype>Storage               -> only as the storage type in a persistent id
 *
 * and persistent ids of the form ("storage", torch.XStorage, key, location, numel); a state
 * dict's `_metadata` attribute (set by BUILD) is ignored. Any other
 * global, any opcode that builds arbitrary objects (INST, OBJ, NEWOBJ, ...) and any call of a
 * value that is not one of the functions above is refused with a FormatError.
 */
import { FormatError } from "../errors.js";

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export class PyList {
  constructor(readonly items: PyValue[]) {}
}
export type PyKey = string | number | bigint | boolean | null;
export class PyDict {
  readonly map = new Map<PyKey, PyValue>();
}

/** A storage type global, e.g. torch.FloatStorage. */
export class StorageType {
  constructor(readonly name: string, readonly dtype: TorchDtype) {}
}
/** A storage named by a persistent id: the archive entry data/<key>. */
export class StorageRef {
  constructor(readonly key: string, readonly dtype: TorchDtype, readonly numel: number, readonly location: string) {}
}
export class TensorRef {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly shape: number[], readonly stride: number[]) {}
}
class AllowedFunction {
  constructor(readonly name: string) {}
}

export type PyValue =
  | null | boolean | number | bigint | string | Uint8Array
  | PyTuple | PyList | PyDict | StorageType | StorageRef | TensorRef | AllowedFunction;

export type TorchDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

const STORAGE_TYPES: Record<string, TorchDtype> = {
  DoubleStorage: "F64", FloatStorage: "F32", HalfStorage: "F16", BFloat16Storage: "BF16",
  LongStorage: "I64", IntStorage: "I32", ShortStorage: "I16", CharStorage: "I8", ByteStorage: "U8", BoolStorage: "BOOL",
};

const FUNCTIONS = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_tensor",
  "torch._utils._rebuild_parameter",
]);

const MARK = Symbol("mark");
type StackItem = PyValue | typeof MARK;

const MAX_STACK = 1 << 20;

export function unpickle(data: Uint8Array, file: string): PyValue {
  const fail = (pos: number, msg: string): never => { throw new FormatError(file, `pickle at byte ${pos}`, msg); };
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  let pos = 0;
  const need = (n: number) => { if (pos + n > data.length) fail(pos, "truncated"); };
  const u8 = () => { need(1); return data[pos++]!; };
  const u16 = () => { need(2); const v = dv.getUint16(pos, true); pos += 2; return v; };
  const u32 = () => { need(4); const v = dv.getUint32(pos, true); pos += 4; return v; };
  const i32 = () => { need(4); const v = dv.getInt32(pos, true); pos += 4; return v; };
  const u64 = () => { need(8); const v = dv.getBigUint64(pos, true); pos += 8; if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(pos, "length too large"); return Number(v); };
  const bytes = (n: number) => { need(n); const b = data.subarray(pos, pos + n); pos += n; return b; };
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const str = (n: number) => { const b = bytes(n); try { return utf8.decode(b); } catch { return fail(pos, "invalid UTF-8 in a string"); } };
  const line = () => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) fail(pos, "unterminated line");
    const s = Buffer.from(data.subarray(pos, end)).toString("latin1");
    pos = end + 1;
    return s;
  };
  const push = (v: StackItem) => { if (stack.length >= MAX_STACK) fail(pos, "stack too deep"); stack.push(v); };
  const pop = (): PyValue => {
    const v = stack.pop();
    if (v === undefined) fail(pos, "stack underflow");
    if (v === MARK) fail(pos, "unexpected mark");
    return v as PyValue;
  };
  const top = (): PyValue => {
    const v = stack[stack.length - 1];
    if (v === undefined || v === MARK) fail(pos, "stack underflow");
    return v as PyValue;
  };
  const popMark = (): PyValue[] => {
    const items: PyValue[] = [];
    for (;;) {
      const v = stack.pop();
      if (v === undefined) fail(pos, "mark not found");
      if (v === MARK) return items.reverse();
      items.push(v as PyValue);
    }
  };
  const key = (k: PyValue): PyKey => {
    if (k === null || typeof k === "string" || typeof k === "number" || typeof k === "bigint" || typeof k === "boolean") return k;
    return fail(pos, "dict keys must be strings or numbers");
  };
  const setItems = (d: PyValue, kv: PyValue[]) => {
    if (!(d instanceof PyDict)) fail(pos, "SETITEM(S) on something that is not a dict");
    if (kv.length % 2) fail(pos, "odd number of items for a dict");
    for (let i = 0; i < kv.length; i += 2) (d as PyDict).map.set(key(kv[i]!), kv[i + 1]!);
  };
  const global = (module: string, name: string): PyValue => {
    const full = `${module}.${name}`;
    if (module === "torch" && name in STORAGE_TYPES) return new StorageType(name, STORAGE_TYPES[name]!);
    if (FUNCTIONS.has(full)) return new AllowedFunction(full);
    return fail(pos, `refusing global ${full}: only tensor storages and tensor rebuild functions are allowed (this file is not a plain state dict of tensors)`);
  };
  const int = (v: PyValue, what: string): number => {
    if (typeof v === "number" && Number.isInteger(v)) return v;
    if (typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    return fail(pos, `${what} should be an integer`);
  };
  const ints = (v: PyValue, what: string): number[] => {
    if (!(v instanceof PyTuple) && !(v instanceof PyList)) fail(pos, `${what} should be a tuple of integers`);
    return (v as PyTuple).items.map((x) => int(x, what));
  };
  const call = (f: PyValue, args: PyValue): PyValue => {
    if (!(f instanceof AllowedFunction)) return fail(pos, "refusing to call a value that is not an allowed function");
    if (!(args instanceof PyTuple)) return fail(pos, "call arguments should be a tuple");
    const a = args.items;
    switch (f.name) {
      case "collections.OrderedDict":
        if (a.length !== 0) fail(pos, "OrderedDict with arguments");
        return new PyDict();
      case "torch._utils._rebuild_tensor":
      case "torch._utils._rebuild_tensor_v2": {
        if (a.length < 4) fail(pos, `${f.name} needs storage, offset, size and stride`);
        const st = a[0];
        if (!(st instanceof StorageRef)) return fail(pos, `${f.name}: first argument is not a storage`);
        return new TensorRef(st, int(a[1]!, "storage offset"), ints(a[2]!, "size"), ints(a[3]!, "stride"));
      }
      case "torch._utils._rebuild_parameter": {
        if (!(a[0] instanceof TensorRef)) return fail(pos, "_rebuild_parameter of something that is not a tensor");
        return a[0];
      }
    }
    return fail(pos, `refusing to call ${f.name}`);
  };
  const persistent = (pid: PyValue): PyValue => {
    if (!(pid instanceof PyTuple) || pid.items[0] !== "storage" || pid.items.length < 5) return fail(pos, "persistent id is not a (\"storage\", type, key, location, numel) tuple");
    const [, type, k, loc, n] = pid.items;
    if (!(type instanceof StorageType)) return fail(pos, "persistent id names no storage type");
    if (typeof k !== "string" || !/^[A-Za-z0-9_.-]+$/.test(k)) return fail(pos, `bad storage key ${JSON.stringify(k)}`);
    return new StorageRef(k, type.dtype, int(n!, "storage size"), typeof loc === "string" ? loc : "cpu");
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME
      case 0x2e: { // STOP
        const v = pop();
        return v;
      }
      case 0x28: push(MARK); break; // MARK
      case 0x4e: push(null); break; // NONE
      case 0x88: push(true); break; // NEWTRUE
      case 0x89: push(false); break; // NEWFALSE
      case 0x4a: push(i32()); break; // BININT
      case 0x4b: push(u8()); break; // BININT1
      case 0x4d: push(u16()); break; // BININT2
      case 0x8a: case 0x8b: { // LONG1, LONG4
        const n = op === 0x8a ? u8() : u32();
        if (n > 64) fail(at, "integer too long");
        const b = bytes(n);
        let v = 0n;
        for (let i = n - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
        if (n > 0 && b[n - 1]! & 0x80) v -= 1n << BigInt(8 * n);
        push(v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
        break;
      }
      case 0x47: { need(8); push(dv.getFloat64(pos, false)); pos += 8; break; } // BINFLOAT (big-endian)
      case 0x58: push(str(u32())); break; // BINUNICODE
      case 0x8c: push(str(u8())); break; // SHORT_BINUNICODE
      case 0x8d: push(str(u64())); break; // BINUNICODE8
      case 0x54: push(Buffer.from(bytes(u32())).toString("latin1")); break; // BINSTRING
      case 0x55: push(Buffer.from(bytes(u8())).toString("latin1")); break; // SHORT_BINSTRING
      case 0x42: push(bytes(u32()).slice()); break; // BINBYTES
      case 0x43: push(bytes(u8()).slice()); break; // SHORT_BINBYTES
      case 0x8e: push(bytes(u64()).slice()); break; // BINBYTES8
      case 0x29: push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x85: push(new PyTuple([pop()])); break; // TUPLE1
      case 0x86: { const b = pop(), a = pop(); push(new PyTuple([a, b])); break; } // TUPLE2
      case 0x87: { const c = pop(), b = pop(), a = pop(); push(new PyTuple([a, b, c])); break; } // TUPLE3
      case 0x74: push(new PyTuple(popMark())); break; // TUPLE
      case 0x5d: push(new PyList([])); break; // EMPTY_LIST
      case 0x6c: push(new PyList(popMark())); break; // LIST
      case 0x61: { const v = pop(); const l = top(); if (!(l instanceof PyList)) fail(at, "APPEND to a non-list"); (l as PyList).items.push(v); break; }
      case 0x65: { const vs = popMark(); const l = top(); if (!(l instanceof PyList)) fail(at, "APPENDS to a non-list"); (l as PyList).items.push(...vs); break; }
      case 0x7d: push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { const kv = popMark(); const d = new PyDict(); setItems(d, kv); push(d); break; } // DICT
      case 0x73: { const v = pop(), k = pop(); setItems(top(), [k, v]); break; } // SETITEM
      case 0x75: { const kv = popMark(); setItems(top(), kv); break; } // SETITEMS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: case 0x6a: { // BINGET, LONG_BINGET
        const i = op === 0x68 ? u8() : u32();
        if (!memo.has(i)) fail(at, `memo entry ${i} is not set`);
        push(memo.get(i)!);
        break;
      }
      case 0x63: { const m = line(); const n = line(); push(global(m, n)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const n = pop(), m = pop();
        if (typeof m !== "string" || typeof n !== "string") fail(at, "STACK_GLOBAL needs two strings");
        push(global(m as string, n as string));
        break;
      }
      case 0x52: { const args = pop(), f = pop(); push(call(f, args)); break; } // REDUCE
      case 0x51: push(persistent(pop())); break; // BINPERSID
      case 0x62: { // BUILD: only a dict's empty state or a state_dict's "_metadata" attribute, which are ignored
        const state = pop();
        const obj = top();
        const ignorable = state === null || (state instanceof PyTuple && state.items.length === 0) ||
          (state instanceof PyDict && [...state.map.keys()].every((k) => k === "_metadata"));
        if (!(obj instanceof PyDict) || !ignorable) fail(at, "refusing BUILD (setting object state)");
        break;
      }
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: push(top()); break; // DUP
      default:
        return fail(at, `refusing opcode 0x${op.toString(16).padStart(2, "0")} (${JSON.stringify(String.fromCharCode(op))}): only plain data and tensors are allowed`);
    }
  }
}
