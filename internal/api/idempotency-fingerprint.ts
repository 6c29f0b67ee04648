/**
 * What makes two requests "the same request" for an Idempotency-Key (idempotency.ts): the fingerprint stored with
 * the token's record. A retry whose fingerprint differs is refused (422 IDEMPOTENCY_KEY_REUSED) rather than
 * answered with the first request's outcome, so the fingerprint must cover every input that can change the outcome:
 * the operation and its key, the body, the media type, every query parameter, the conditional and TTL headers and
 * the API key the request was authenticated with (its id, never its secret).
 *
 * Versions. The stored fingerprint is a string the metadata stores keep opaque, so its version travels inside it:
 * `v2:<sha256 hex>`. Fingerprints written before versions existed are a bare sha256 hex digest of the operation, the
 * key, `extra` (a route's choice of parameters) and the body only; a record holding one is still compared that way,
 * so a retry in flight across an upgrade is judged as it was when its first attempt was recorded.
 */
import { createHash } from 'node:crypto';
import type { Context } from 'hono';
import { authenticatedKeyId } from './access.js';
import { TTL_HEADER } from './ttl.js';
import { mediaType } from './request.js';

export const FINGERPRINT_V2_PREFIX = 'v2:';

/** The request headers that change what a write, patch or delete does. */
const FINGERPRINTED_HEADERS = ['if-match', 'if-none-match', TTL_HEADER.toLowerCase()] as const;

/** Everything about an HTTP request, besides operation, key and body, that can change its outcome (canonical). */
export interface RequestInputs {
  /** The HTTP method as sent. */
  httpMethod: string;
  /** Every query parameter as [name, value] in canonicalQuery's order, repeats kept. */
  query: readonly (readonly [string, string])[];
  /** The media type without parameters, lower-cased (the routes ignore the parameters); null without Content-Type. */
  mediaType: string | null;
  /** FINGERPRINTED_HEADERS' values as sent, trimmed; null when absent. */
  headers: Readonly<Record<string, string | null>>;
  /** The id of the API key the request was authenticated with; null on a gateway without keys. */
  apiKeyId: string | null;
}

export interface OperationIdentity {
  /** The operation: write, patch or delete. */
  method: string;
  key: string;
  body: Buffer;
  /** What unversioned fingerprints covered besides method, key and body (query parameters, media type). */
  extra: string;
  /** The rest of the request (requestInputs); absent where there is no HTTP request (the simulator). */
  inputs?: RequestInputs;
}

/** The inputs of `c` that a fingerprint covers. */
export function requestInputs(c: Context): RequestInputs {
  const headers: Record<string, string | null> = {};
  for (const name of FINGERPRINTED_HEADERS) headers[name] = c.req.header(name)?.trim() ?? null;
  return {
    httpMethod: c.req.method,
    query: canonicalQuery(queryString(c.req.url)),
    mediaType: mediaType(c),
    headers,
    apiKeyId: authenticatedKeyId(c),
  };
}

/**
 * The query's parameters in an order-independent form that still tells apart everything a route could act on:
 * - parameters are sorted by name, stably, so `a=1&b=2` equals `b=2&a=1` but `a=1&a=2` does not equal `a=2&a=1`
 *   (a route reads the first of repeated parameters), and repeats are kept (`a=1&a=1` is not `a=1`);
 * - percent-encoding is normalised as RFC 3986 6.2.2 allows (hex digits upper-cased, unreserved characters
 *   decoded), and nothing further: a route splits some values on literal commas before decoding them (hot_fields),
 *   so `%2C` and `,` stay different;
 * - `a` and `a=` are the same (both are the empty value to every route).
 */
export function canonicalQuery(query: string): [string, string][] {
  const pairs: [string, string][] = [];
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const value = eq === -1 ? '' : pair.slice(eq + 1);
    pairs.push([normalisePercentEncoding(name), normalisePercentEncoding(value)]);
  }
  // Array.prototype.sort is stable: repeats of one name keep their order.
  return pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The current (versioned) fingerprint of an operation. */
export function fingerprintOf(identity: OperationIdentity): string {
  const described = JSON.stringify({ method: identity.method, key: identity.key, inputs: identity.inputs ?? null });
  const digest = createHash('sha256').update(described).update('\n').update(identity.body).digest('hex');
  return `${FINGERPRINT_V2_PREFIX}${digest}`;
}

/** The fingerprint as computed before versions: records that hold one are compared with this. */
export function unversionedFingerprintOf(identity: OperationIdentity): string {
  return createHash('sha256').update(`${identity.method}\n${identity.key}\n${identity.extra}\n`).update(identity.body).digest('hex');
}

export function isVersionedFingerprint(fingerprint: string): boolean {
  return fingerprint.startsWith(FINGERPRINT_V2_PREFIX);
}

/** Whether a stored fingerprint, of whichever version, describes `identity`. */
export function fingerprintMatches(recorded: string, identity: OperationIdentity): boolean {
  return recorded === (isVersionedFingerprint(recorded) ? fingerprintOf(identity) : unversionedFingerprintOf(identity));
}

function queryString(url: string): string {
  const start = url.indexOf('?');
  if (start === -1) return '';
  const hash = url.indexOf('#', start);
  return url.slice(start + 1, hash === -1 ? undefined : hash);
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

function normalisePercentEncoding(text: string): string {
  return text.replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(char) ? char : `%${hex.toUpperCase()}`;
  });
}
