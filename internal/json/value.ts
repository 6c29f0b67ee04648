/**
 * The document model. JSON.parse is not enough for an object store that promises round trips: it reorders
 * integer-like member names ("10" before "2"), rounds numbers to doubles (12345678901234567890, 1.0, -0, 1E400
 * all change) and keeps the last of duplicate members silently. So a document is a tree of Maps (which keep
 * insertion order for every name), arrays, strings, booleans, null and JsonNumber (the number's text as
 * written). Trees are treated as immutable once built: patches copy on write, projections share subtrees.
 */
import { StrataError } from '../core/errors.js';

/** A JSON number exactly as written in the document (`1.0`, `-0`, `1E400`, `12345678901234567890`). */
export class JsonNumber {
  constructor(readonly text: string) {}
}

export type JsonObject = Map<string, JsonValue>;
export type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | JsonObject;

/**
 * Hard ceiling on nesting for the recursive tree walks (serialize, equals, clone, merge patch). Parsed
 * documents are bounded far below it by the configured depthMax; trees built by patches can reach at most
 * about twice that. Beyond it we answer DOCUMENT_TOO_DEEP instead of overflowing the stack.
 */
export const NESTING_DEPTH_HARD_MAX = 1000;

export function isJsonObject(v: JsonValue | undefined): v is JsonObject {
  return v instanceof Map;
}

export function checkNestingDepth(depth: number): void {
  if (depth > NESTING_DEPTH_HARD_MAX) {
    throw new StrataError('DOCUMENT_TOO_DEEP', `document nests deeper than ${NESTING_DEPTH_HARD_MAX} levels`);
  }
}

/**
 * Plain JS value to JsonValue, for tests and tools. Numbers become String(n) (so -0 becomes "0" and 1e21
 * becomes "1e+21"); members of plain objects come in JS property order. Maps and JsonNumbers pass through.
 */
export function fromPlain(x: unknown, depth = 0): JsonValue {
  checkNestingDepth(depth);
  if (x === null || typeof x === 'boolean' || typeof x === 'string') return x;
  if (x instanceof JsonNumber) return x;
  if (typeof x === 'number') {
    if (!Number.isFinite(x)) throw new TypeError(`fromPlain: ${x} has no JSON form`);
    return new JsonNumber(String(x));
  }
  if (typeof x === 'bigint') return new JsonNumber(x.toString());
  if (Array.isArray(x)) return x.map((e) => fromPlain(e, depth + 1));
  if (x instanceof Map) {
    const out: JsonObject = new Map();
    for (const [k, v] of x) out.set(String(k), fromPlain(v, depth + 1));
    return out;
  }
  if (typeof x === 'object') {
    const out: JsonObject = new Map();
    for (const [k, v] of Object.entries(x)) if (v !== undefined) out.set(k, fromPlain(v, depth + 1));
    return out;
  }
  throw new TypeError(`fromPlain: a ${typeof x} has no JSON form`);
}

/** JsonValue to plain JS (numbers become JS numbers, so precision may be lost): for tests and tools. */
export function toPlain(v: JsonValue, depth = 0): unknown {
  checkNestingDepth(depth);
  if (v instanceof JsonNumber) return Number(v.text);
  if (Array.isArray(v)) return v.map((e) => toPlain(e, depth + 1));
  // Object.fromEntries defines properties, so a member named "__proto__" stays a member.
  if (isJsonObject(v)) return Object.fromEntries([...v].map(([k, e]) => [k, toPlain(e, depth + 1)]));
  return v;
}

/**
 * Deep equality as RFC 6902 `test` defines it: numbers equal when their values are equal ("1.0" = "1" =
 * "10e-1", "-0" = "0"), compared on the decimal text so no float rounding is involved; objects equal when
 * they have the same members regardless of order; arrays element by element.
 */
export function jsonEquals(a: JsonValue, b: JsonValue, depth = 0): boolean {
  checkNestingDepth(depth);
  if (a === b) return true;
  if (a instanceof JsonNumber) return b instanceof JsonNumber && numbersEqual(a.text, b.text);
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEquals(a[i]!, b[i]!, depth + 1)) return false;
    return true;
  }
  if (isJsonObject(a)) {
    if (!isJsonObject(b) || a.size !== b.size) return false;
    for (const [k, av] of a) {
      const bv = b.get(k);
      if (bv === undefined || !jsonEquals(av, bv, depth + 1)) return false;
    }
    return true;
  }
  return false; // null, booleans and strings are equal only when identical (a === b above)
}

/** Deep copy: fresh arrays and Maps; strings and JsonNumbers are immutable and shared. */
export function cloneJson(v: JsonValue, depth = 0): JsonValue {
  checkNestingDepth(depth);
  if (Array.isArray(v)) return v.map((e) => cloneJson(e, depth + 1));
  if (isJsonObject(v)) {
    const out: JsonObject = new Map();
    for (const [k, e] of v) out.set(k, cloneJson(e, depth + 1));
    return out;
  }
  return v;
}

interface Decimal {
  negative: boolean;
  /** Significant digits without leading or trailing zeros; '' for zero. */
  digits: string;
  /** value = digits * 10^exponent. BigInt because "1e99999999999999999999" is valid JSON. */
  exponent: bigint;
}

const NUMBER_RE = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;

function toDecimal(text: string): Decimal {
  const m = NUMBER_RE.exec(text);
  if (m === null) throw new TypeError(`not a JSON number: ${text}`);
  const frac = m[3] ?? '';
  let digits = (m[2]! + frac).replace(/^0+/, '');
  let exponent = BigInt(m[4] ?? '0') - BigInt(frac.length);
  const trimmed = digits.replace(/0+$/, '');
  exponent += BigInt(digits.length - trimmed.length);
  digits = trimmed;
  if (digits === '') return { negative: false, digits: '', exponent: 0n };
  return { negative: m[1] === '-', digits, exponent };
}

export function numbersEqual(a: string, b: string): boolean {
  if (a === b) return true;
  const x = toDecimal(a);
  const y = toDecimal(b);
  return x.negative === y.negative && x.digits === y.digits && x.exponent === y.exponent;
}
