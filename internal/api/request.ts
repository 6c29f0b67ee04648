/**
 * Request parsing shared by the routes: keys from paths and queries, media types, bounded bodies, conditional
 * headers. Everything here turns bad input into a StrataError with a message a person can act on.
 */
import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { StrataError } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';
import type { BodyBudget } from './body-budget.js';

/** Validates a key per api.md: 1 to 1024 bytes of UTF-8 without control characters. */
export function validateKey(key: string | undefined | null): string {
  if (key === undefined || key === null || key === '') {
    throw new StrataError('INVALID_KEY', 'a key is required: give it as ?key=... on /write or in the path on other routes');
  }
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > LIMITS.keyBytesMax) {
    throw new StrataError('INVALID_KEY', `the key is ${bytes} bytes of UTF-8; the limit is ${LIMITS.keyBytesMax}`);
  }
  // eslint-disable-next-line no-control-regex
  const control = /[\u0000-\u001f\u007f]/.exec(key);
  if (control) {
    const code = control[0].charCodeAt(0).toString(16).padStart(4, '0').toUpperCase();
    throw new StrataError('INVALID_KEY', `the key contains the control character U+${code} at position ${control.index}; control characters are not allowed`);
  }
  if (/[\ud800-\udfff]/u.test(key.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) {
    throw new StrataError('INVALID_KEY', 'the key is not valid UTF-8 (it contains an unpaired surrogate)');
  }
  return key;
}

/** Percent-decodes one path or query component exactly once; malformed escapes are the client's error. */
export function decodeComponent(raw: string, what: string, plusIsSpace: boolean): string {
  try {
    return decodeURIComponent(plusIsSpace ? raw.replace(/\+/g, ' ') : raw);
  } catch {
    throw new StrataError(
      what === 'key' ? 'INVALID_KEY' : 'INVALID_REQUEST',
      `the ${what} "${raw.slice(0, 100)}" is not valid percent-encoded UTF-8`,
    );
  }
}

/**
 * The path of the request target as the client sent it, still percent-encoded. The node adapter builds the
 * Request URL with the WHATWG parser, which removes dot segments: `/read/..` and even `/read/%2E%2E` arrive
 * as `/`, so the keys "." and ".." (which api.md allows) could be written but never read, patched or
 * deleted. Routing (app.ts) and key extraction therefore use the raw target when node:http passes it, and
 * the URL only otherwise (another runtime, or an absolute-form target).
 */
export function rawRequestPath(url: string, env: unknown): string {
  const target = (env as { incoming?: IncomingMessage } | undefined)?.incoming?.url;
  const source = target !== undefined && target.startsWith('/') ? target : url.slice(url.indexOf('/', url.indexOf('//') + 2));
  const end = source.search(/[?#]/);
  return end === -1 ? source : source.slice(0, end);
}

/**
 * The key after a route prefix such as `/read/`, decoded from the raw path. We do not use the router's decoded
 * parameters because a key may contain `%` and `/`: only one decoding of the raw path gives back the key.
 */
export function keyFromPath(c: Context, prefix: string): string {
  const rawPath = rawRequestPath(c.req.url, c.env);
  if (!rawPath.startsWith(prefix)) throw new StrataError('INVALID_KEY', 'a key is required in the path');
  return validateKey(decodeComponent(rawPath.slice(prefix.length), 'key', false));
}

/** Raw (still percent-encoded) query parameters, so that lists can be split on literal commas first. */
export function rawQuery(c: Context): Map<string, string> {
  const url = c.req.url;
  const queryStart = url.indexOf('?');
  const params = new Map<string, string>();
  if (queryStart === -1) return params;
  const hash = url.indexOf('#', queryStart);
  const query = url.slice(queryStart + 1, hash === -1 ? undefined : hash);
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const name = decodeComponent(eq === -1 ? pair : pair.slice(0, eq), 'query parameter name', true);
    if (!params.has(name)) params.set(name, eq === -1 ? '' : pair.slice(eq + 1));
  }
  return params;
}

export function queryValue(params: Map<string, string>, name: string): string | undefined {
  const raw = params.get(name);
  return raw === undefined ? undefined : decodeComponent(raw, name === 'key' ? 'key' : `query parameter ${name}`, true);
}

/** The media type of the request without parameters, lower-cased. */
export function mediaType(c: Context): string | null {
  const header = c.req.header('content-type');
  if (!header) return null;
  return header.split(';')[0]!.trim().toLowerCase();
}

export function requireMediaType(c: Context, allowed: readonly string[]): string {
  const type = mediaType(c);
  if (type === null || !allowed.includes(type)) {
    throw new StrataError(
      'UNSUPPORTED_MEDIA_TYPE',
      `Content-Type must be ${allowed.join(' or ')}; got ${type === null ? 'none' : `"${type}"`}`,
    );
  }
  return type;
}

/**
 * The request body, refusing more than `limitBytes`: by Content-Length before reading anything when it is
 * given, and by counting while reading otherwise (chunked uploads). With a `budget`, the bytes are reserved in
 * the gateway's body budget first (by Content-Length, or chunk by chunk), and 503 OVERLOADED when they do not fit.
 */
export async function readBody(c: Context, limitBytes: number, budget: BodyBudget | null = null): Promise<Buffer> {
  const declared = c.req.header('content-length');
  const known = declared !== undefined;
  if (known) {
    const length = Number(declared);
    if (!Number.isSafeInteger(length) || length < 0) {
      throw new StrataError('INVALID_REQUEST', `Content-Length "${declared}" is not a byte count`);
    }
    if (length > limitBytes) throw tooLarge(length, limitBytes);
    budget?.reserve(c, length);
  }
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  if (!incoming) {
    const data = Buffer.from(await c.req.arrayBuffer());
    if (data.length > limitBytes) throw tooLarge(data.length, limitBytes);
    if (!known) budget?.reserve(c, data.length);
    return data;
  }
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = (): void => {
      incoming.off('data', onData);
      incoming.off('end', onEnd);
      incoming.off('error', onError);
      incoming.off('aborted', onAborted);
    };
    const refuse = (error: StrataError): void => {
      cleanup();
      incoming.resume();
      reject(error);
    };
    const onData = (chunk: Buffer): void => {
      total += chunk.length;
      if (total > limitBytes) return refuse(tooLarge(total, limitBytes, true));
      if (!known && budget) {
        try {
          budget.reserve(c, chunk.length);
        } catch (error) {
          return refuse(error as StrataError);
        }
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, total));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(new StrataError('INVALID_REQUEST', `the request body could not be read: ${error.message}`));
    };
    const onAborted = (): void => {
      cleanup();
      reject(new StrataError('INVALID_REQUEST', 'the client closed the connection before the body was complete'));
    };
    if (incoming.readableEnded) {
      resolve(Buffer.alloc(0));
      return;
    }
    incoming.on('data', onData);
    incoming.on('end', onEnd);
    incoming.on('error', onError);
    incoming.on('aborted', onAborted);
  });
}

function tooLarge(bytes: number, limitBytes: number, atLeast = false): StrataError {
  return new StrataError(
    'DOCUMENT_TOO_LARGE',
    `the body is ${atLeast ? 'more than ' : ''}${bytes} bytes; the limit is ${limitBytes} bytes`,
  );
}

/** `If-Match: "7"` (or W/"7") -> "7". Lists and `*` are refused with a clear message. */
export function ifMatchVersion(c: Context): string | undefined {
  return parseIfMatch(c.req.header('if-match'));
}

export function parseIfMatch(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^\s*(?:W\/)?"([1-9][0-9]{0,19})"\s*$/.exec(header);
  if (!match) {
    throw new StrataError('INVALID_HEADER', `If-Match must be one version in quotes, like "7" (from an ETag); got ${JSON.stringify(header.slice(0, 100))}`);
  }
  return match[1];
}

/** On writes only `If-None-Match: *` (create-only) is meaningful. */
export function ifNoneMatchStar(c: Context): boolean {
  return parseIfNoneMatchStar(c.req.header('if-none-match'));
}

export function parseIfNoneMatchStar(header: string | undefined): boolean {
  if (header === undefined) return false;
  if (header.trim() !== '*') {
    throw new StrataError('INVALID_HEADER', `on writes If-None-Match must be "*" (create only); got ${JSON.stringify(header.slice(0, 100))}`);
  }
  return true;
}

/**
 * On reads: the versions named by `If-None-Match` (a list, as RFC 9110 allows: `"7", W/"8"`), `*` for any
 * existing version, or undefined. Entries that are not versions of ours are ignored, as they can never match.
 */
export function ifNoneMatchForRead(c: Context): ReadonlySet<string> | '*' | undefined {
  return parseIfNoneMatchForRead(c.req.header('if-none-match'));
}

export function parseIfNoneMatchForRead(header: string | undefined): ReadonlySet<string> | '*' | undefined {
  if (header === undefined) return undefined;
  if (header.trim() === '*') return '*';
  const versions = new Set<string>();
  for (const match of header.matchAll(/(?:W\/)?"([0-9]{1,20})"/g)) versions.add(match[1]!);
  return versions;
}
