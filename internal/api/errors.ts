/**
 * The one place where errors become HTTP responses. A StrataError answers as its row of ERROR_TABLE says: its
 * status, Retry-After when retryable (and on every 503), and its own code only when client-facing; anything else
 * is a bug and answers 500 INTERNAL (logged with its stack), never with the internal message.
 */
import type { Context } from 'hono';
import { ERROR_TABLE, StrataError, type ErrorCode } from '../core/errors.js';
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
    const clientCode = clientFacingCode(error.code);
    const { status, retryable } = ERROR_TABLE[clientCode];
    if (retryable || status === 503) c.header('Retry-After', String(RETRY_AFTER_SECONDS));
    return c.json(errorBody(clientCode, error.message), status as 400);
  }
  log.error({ err: error, method: c.req.method, url: c.req.url }, 'unhandled error');
  return c.json(errorBody('INTERNAL', 'an internal error occurred; it has been logged'), 500);
}

/** The code a gateway client is told: node-level codes become INSUFFICIENT_NODES (ERROR_TABLE, clientFacing). */
export function clientFacingCode(code: ErrorCode): ErrorCode {
  return ERROR_TABLE[code].clientFacing ? code : 'INSUFFICIENT_NODES';
}
