/**
 * The one place where errors become HTTP responses. StrataErrors carry their status from ERROR_STATUS; anything
 * else is a bug and answers 500 INTERNAL (logged with its stack), never with the internal message.
 */
import type { Context } from 'hono';
import { RETRYABLE_CODES, StrataError } from '../core/errors.js';
import type { Logger } from '../log/logger.js';

export interface ErrorBody {
  error: { code: string; message: string };
}

/** Seconds a client should wait before retrying a 503 or 429. */
export const RETRY_AFTER_SECONDS = 1;

export function errorBody(code: string, message: string): ErrorBody {
  return { error: { code, message } };
}

export function errorResponse(c: Context, error: unknown, log: Logger): Response {
  if (error instanceof StrataError) {
    // Node-level codes never leak to clients as such: a gateway client sees "the cluster could not do it".
    const clientCode = error.status >= 500 && !isClientFacing(error.code) ? 'INSUFFICIENT_NODES' : error.code;
    const status = clientCode === error.code ? error.status : 503;
    if (RETRYABLE_CODES.has(error.code) || status === 503) c.header('Retry-After', String(RETRY_AFTER_SECONDS));
    return c.json(errorBody(clientCode, error.message), status as 400);
  }
  log.error({ err: error, method: c.req.method, url: c.req.url }, 'unhandled error');
  return c.json(errorBody('INTERNAL', 'an internal error occurred; it has been logged'), 500);
}

const CLIENT_FACING_5XX = new Set(['INTERNAL', 'INSUFFICIENT_NODES', 'METADATA_UNAVAILABLE', 'METADATA_CORRUPT', 'WAL_UNAVAILABLE', 'WRITE_ABORTED', 'COMMIT_UNKNOWN', 'OVERLOADED', 'TOO_MANY_WATCHERS', 'WATCH_TOO_SLOW', 'DISK_FULL']);

function isClientFacing(code: string): boolean {
  return CLIENT_FACING_5XX.has(code);
}
