/** Shared test helpers for the document model: a seeded random source and error expectations. */
import { expect } from 'vitest';
import { isStrataError, type ErrorCode } from '../../internal/core/errors.js';
import { parseJson } from '../../internal/json/parse.js';
import type { JsonValue } from '../../internal/json/value.js';

export const LIMITS_FOR_TESTS = { depthMax: 64, membersMax: 100_000 };

export function parse(text: string | Buffer): JsonValue {
  return parseJson(text, LIMITS_FOR_TESTS);
}

/** Runs f, expects a StrataError with this code, returns its message. */
export function expectStrataError(f: () => unknown, code: ErrorCode): string {
  let caught: unknown;
  try {
    f();
  } catch (err) {
    caught = err;
  }
  expect(caught, 'an error is thrown').toBeDefined();
  if (!isStrataError(caught)) throw caught;
  expect(caught.code).toBe(code);
  return caught.message;
}

/** mulberry32: small, fast and seedable, so a failing property case can be replayed from its seed. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
