/**
 * A document's time to live (docs/api.md "Time to live"): `?ttl_ms=<ms>` on POST /write and PATCH /patch, or the
 * header `X-Strata-TTL-Ms` (the query wins when both are given). A whole number of milliseconds from 1 to
 * TTL_MS_MAX; anything else is 400 INVALID_TTL. The document reads as absent from the moment it expires.
 */
import { StrataError } from '../core/errors.js';

/** Ten years. */
export const TTL_MS_MAX = 10 * 365 * 24 * 60 * 60 * 1000;
export const TTL_HEADER = 'X-Strata-TTL-Ms';

/** A time to live as the query or header gives it: undefined when absent, else INVALID_TTL unless in range. */
export function parseTtl(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (!/^\d{1,15}$/.test(text) || Number(text) < 1 || Number(text) > TTL_MS_MAX) {
    throw new StrataError('INVALID_TTL', `ttl_ms must be a whole number of milliseconds from 1 to ${TTL_MS_MAX}; got "${raw.slice(0, 50)}"`);
  }
  return Number(text);
}

/** `{ ttlMs }` when the request asks for a time to live (the query wins over the header), `{}` otherwise. */
export function ttlOption(query: number | undefined, header: number | undefined): { ttlMs?: number } {
  const ttlMs = query ?? header;
  return ttlMs === undefined ? {} : { ttlMs };
}
