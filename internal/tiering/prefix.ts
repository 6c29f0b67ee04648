/**
 * The prefix rule: access statistics, the learned policy, pins and the lifecycle are kept per key prefix, and a
 * key's prefix is everything up to and including its first `:` or `/` (`user:1001` -> `user:`, `logs/2026/x` ->
 * `logs/`), provided that separator lies within the first TIERING_LIMITS.prefixBytesMax bytes. A key without one
 * belongs to the root prefix `""`. One separator, not the longest run of them, so that a prefix groups documents
 * of one kind (all users) rather than one document's neighbourhood, and the number of prefixes stays small.
 */
import { StrataError } from '../core/errors.js';
import { TIERING_LIMITS } from './limits.js';

export function prefixOf(key: string): string {
  const end = firstSeparator(key);
  if (end === -1) return '';
  const prefix = key.slice(0, end + 1);
  return Buffer.byteLength(prefix, 'utf8') <= TIERING_LIMITS.prefixBytesMax ? prefix : '';
}

function firstSeparator(text: string): number {
  const colon = text.indexOf(':');
  const slash = text.indexOf('/');
  if (colon === -1) return slash;
  if (slash === -1) return colon;
  return Math.min(colon, slash);
}

/** Checks that `prefix` is one the rule above produces (what /policy/:prefix accepts). */
export function validatePolicyPrefix(prefix: string): string {
  if (prefix === '') return prefix;
  const bytes = Buffer.byteLength(prefix, 'utf8');
  if (bytes > TIERING_LIMITS.prefixBytesMax) {
    throw new StrataError('INVALID_PREFIX', `the prefix is ${bytes} bytes; policy prefixes are at most ${TIERING_LIMITS.prefixBytesMax}`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(prefix)) throw new StrataError('INVALID_PREFIX', 'the prefix contains a control character');
  if (prefixOf(prefix) !== prefix) {
    throw new StrataError(
      'INVALID_PREFIX',
      `"${prefix.slice(0, 100)}" is not a policy prefix: a key's prefix runs up to and including its first ':' or '/' ` +
        `(e.g. "user:" for "user:1001"); use that, URL-encoded, or /policy/ for keys without a separator`,
    );
  }
  return prefix;
}
