/**
 * A document's time to live (docs/api.md "Time to live"): `?ttl_ms=<ms>` on POST /write and PATCH /patch, or the
 * header `X-Strata-TTL-Ms` (the query wins when both are given). A whole number of milliseconds from 1 to
 * TTL_MS_MAX; anything else is 400 INVALID_TTL. The document reads as absent from the moment it expires.
 */
import type { Context } from 'hono';
import { StrataError } from '../core/errors.js';
import { rawQuery } from './request.js';

/** Ten years. */
export const TTL_MS_MAX = 10 * 365 * 24 * 60 * 60 * 1000;
export const TTL_HEADER = 'X-Strata-TTL-Ms';

/** `{ ttlMs }` when the request asks for a time to live, `{}` otherwise. */
export function ttlOption(c: Context): { ttlMs?: number } {
  const raw = rawQuery(c).get('ttl_ms') ?? c.req.header(TTL_HEADER);
  if (raw === undefined) return {};
  const text = raw.trim();
  if (!/^\d{1,15}$/.test(text) || Number(text) < 1 || Number(text) > TTL_MS_MAX) {
    throw new StrataError('INVALID_TTL', `ttl_ms must be a whole number of milliseconds from 1 to ${TTL_MS_MAX}; got "${raw.slice(0, 50)}"`);
  }
  return { ttlMs: Number(text) };
}
