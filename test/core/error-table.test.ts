/**
 * The one error table (internal/core/errors.ts) replaced three lists: the statuses, the retryable codes and the
 * 5xx codes a gateway client may see. These expectations are those lists as they stood before the merge, copied by
 * hand, so that the table cannot drift from what clients were promised; a deliberate change edits both.
 */
import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { clientFacingCode, errorResponse } from '../../internal/api/errors.js';
import { ERROR_STATUS, ERROR_TABLE, StrataError, errorStatus, type ErrorCode } from '../../internal/core/errors.js';
import { silentLogger } from '../../internal/log/logger.js';

const RETRY = true;
const FINAL = false;
/** A gateway answers with the code itself. */
const SHOWN = true;
/** A gateway answers 503 INSUFFICIENT_NODES instead. */
const HIDDEN = false;

/** Code: [status, retryable, client-facing], as ERROR_STATUS, RETRYABLE_CODES and CLIENT_FACING_5XX had them. */
const BEFORE: Record<string, [number, boolean, boolean]> = {
  INVALID_KEY: [400, FINAL, SHOWN],
  INVALID_REQUEST: [400, FINAL, SHOWN],
  INVALID_LIMIT: [400, FINAL, SHOWN],
  INVALID_CURSOR: [400, FINAL, SHOWN],
  INVALID_FIELDS: [400, FINAL, SHOWN],
  INVALID_HEADER: [400, FINAL, SHOWN],
  UNKNOWN_PARAMETER: [400, FINAL, SHOWN],
  INVALID_PREFIX: [400, FINAL, SHOWN],
  INVALID_TTL: [400, FINAL, SHOWN],
  UNAUTHORIZED: [401, FINAL, SHOWN],
  FORBIDDEN: [403, FINAL, SHOWN],
  NOT_FOUND: [404, FINAL, SHOWN],
  ROUTE_NOT_FOUND: [404, FINAL, SHOWN],
  METHOD_NOT_ALLOWED: [405, FINAL, SHOWN],
  REQUEST_TIMEOUT: [408, FINAL, SHOWN],
  IDEMPOTENCY_IN_PROGRESS: [409, FINAL, SHOWN],
  HISTORY_COMPACTED: [410, FINAL, SHOWN],
  NODE_NOT_FOUND: [404, FINAL, SHOWN],
  NODE_NOT_DRAINED: [409, FINAL, SHOWN],
  NODE_NOT_EMPTY: [409, FINAL, SHOWN],
  TOO_FEW_ACTIVE_NODES: [409, FINAL, SHOWN],
  FORMAT_BUMP_BLOCKED: [409, FINAL, SHOWN],
  FORMAT_DOWNGRADE_REFUSED: [409, FINAL, SHOWN],
  VERSION_MISMATCH: [412, FINAL, SHOWN],
  ALREADY_EXISTS: [412, FINAL, SHOWN],
  DOCUMENT_TOO_LARGE: [413, FINAL, SHOWN],
  UNSUPPORTED_MEDIA_TYPE: [415, FINAL, SHOWN],
  INVALID_JSON: [422, FINAL, SHOWN],
  NOT_AN_OBJECT: [422, FINAL, SHOWN],
  INVALID_STRATEGY: [422, FINAL, SHOWN],
  INVALID_HOT_FIELDS: [422, FINAL, SHOWN],
  DOCUMENT_TOO_DEEP: [422, FINAL, SHOWN],
  TOO_MANY_FIELDS: [422, FINAL, SHOWN],
  PATCH_FAILED: [422, FINAL, SHOWN],
  INVALID_POLICY: [422, FINAL, SHOWN],
  IDEMPOTENCY_KEY_REUSED: [422, FINAL, SHOWN],
  RATE_LIMITED: [429, RETRY, SHOWN],
  HEADERS_TOO_LARGE: [431, FINAL, SHOWN],
  INTERNAL: [500, FINAL, SHOWN],
  INSUFFICIENT_NODES: [503, RETRY, SHOWN],
  METADATA_UNAVAILABLE: [503, RETRY, SHOWN],
  METADATA_CORRUPT: [503, FINAL, SHOWN],
  WAL_UNAVAILABLE: [503, RETRY, SHOWN],
  WRITE_ABORTED: [503, RETRY, SHOWN],
  OVERLOADED: [503, RETRY, SHOWN],
  COMMIT_UNKNOWN: [504, FINAL, SHOWN],
  TOO_MANY_WATCHERS: [503, RETRY, SHOWN],
  WATCH_TOO_SLOW: [503, FINAL, SHOWN],
  BLOB_NOT_FOUND: [404, FINAL, SHOWN],
  BLOB_EXISTS: [409, FINAL, SHOWN],
  BLOB_CORRUPT: [409, FINAL, SHOWN],
  BLOB_TOO_LARGE: [413, FINAL, SHOWN],
  DISK_FULL: [507, FINAL, SHOWN],
  NODE_UNAVAILABLE: [503, RETRY, HIDDEN],
  DATA_DIR_LOCKED: [503, FINAL, HIDDEN],
  DATA_DIR_UNUSABLE: [503, FINAL, HIDDEN],
  FORMAT_UNSUPPORTED: [503, FINAL, HIDDEN],
};

/** The CLIENT_FACING_5XX list of internal/api/errors.ts before the merge. */
const CLIENT_FACING_5XX_BEFORE = [
  'INTERNAL',
  'INSUFFICIENT_NODES',
  'METADATA_UNAVAILABLE',
  'METADATA_CORRUPT',
  'WAL_UNAVAILABLE',
  'WRITE_ABORTED',
  'COMMIT_UNKNOWN',
  'OVERLOADED',
  'TOO_MANY_WATCHERS',
  'WATCH_TOO_SLOW',
  'DISK_FULL',
];

const codes = Object.keys(ERROR_TABLE) as ErrorCode[];

describe('the error table', () => {
  it('has exactly the codes there were before', () => {
    expect([...codes].sort()).toEqual(Object.keys(BEFORE).sort());
  });

  it.each(Object.entries(BEFORE))('keeps %s at its status, retryability and visibility', (code, row) => {
    const [status, retryable, shown] = row;
    expect(ERROR_TABLE[code as ErrorCode]).toMatchObject({ status, retryable, clientFacing: shown });
    expect(ERROR_STATUS[code as ErrorCode]).toBe(status);
    expect(errorStatus(code)).toBe(status);
    expect(new StrataError(code as ErrorCode, 'why').status).toBe(status);
  });

  it('answers 500 for a code it does not have, also one named like an Object property', () => {
    expect(errorStatus('NO_SUCH_CODE')).toBe(500);
    expect(errorStatus('toString')).toBe(500);
  });

  it('marks only 429 and 5xx codes retryable', () => {
    for (const code of codes.filter((c) => ERROR_TABLE[c].retryable)) {
      expect(ERROR_TABLE[code].status === 429 || ERROR_TABLE[code].status >= 500, code).toBe(true);
    }
  });

  it('hides only 5xx codes from a gateway client', () => {
    for (const code of codes.filter((c) => !ERROR_TABLE[c].clientFacing)) {
      expect(ERROR_TABLE[code].status, code).toBeGreaterThanOrEqual(500);
    }
  });

  it('shows a gateway client the same 5xx codes as before, each of them a code of the table', () => {
    for (const code of CLIENT_FACING_5XX_BEFORE) expect(Object.hasOwn(ERROR_TABLE, code), code).toBe(true);
    const shown5xx = codes.filter((c) => ERROR_TABLE[c].status >= 500 && ERROR_TABLE[c].clientFacing);
    expect(shown5xx.sort()).toEqual([...CLIENT_FACING_5XX_BEFORE].sort());
  });

  it('is frozen, so that no module can change what another one answers', () => {
    expect(Object.isFrozen(ERROR_TABLE)).toBe(true);
    expect(Object.isFrozen(ERROR_STATUS)).toBe(true);
  });
});

describe('the code a gateway client is told (answers and change-feed error events alike)', () => {
  it('is the code itself when client-facing, else INSUFFICIENT_NODES', () => {
    for (const [code, spec] of Object.entries(ERROR_TABLE) as [ErrorCode, (typeof ERROR_TABLE)[ErrorCode]][]) {
      expect(clientFacingCode(code), code).toBe(spec.clientFacing ? code : 'INSUFFICIENT_NODES');
    }
    expect(clientFacingCode('FORMAT_UNSUPPORTED')).toBe('INSUFFICIENT_NODES');
  });
});

describe('errorResponse', () => {
  const app = new Hono();
  app.get('/fail/:code', (c) => {
    throw new StrataError(c.req.param('code') as ErrorCode, `failed with ${c.req.param('code')}`);
  });
  app.get('/bug', () => {
    throw new TypeError('x is undefined');
  });
  app.onError((error, c) => errorResponse(c, error, silentLogger));

  async function answer(path: string): Promise<{ status: number; retryAfter: string | null; body: unknown }> {
    const res = await app.request(path);
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: await res.json() };
  }

  const hidden = Object.keys(BEFORE).filter((code) => !BEFORE[code]![2]);
  const shown5xx = Object.keys(BEFORE).filter((code) => BEFORE[code]![0] >= 500 && BEFORE[code]![2]);

  it('hides some codes at all (the test below is not empty)', () => {
    expect(hidden.length).toBeGreaterThan(0);
  });

  it.each(hidden)('answers a gateway client 503 INSUFFICIENT_NODES with Retry-After for %s', async (code) => {
    expect(await answer(`/fail/${code}`)).toEqual({
      status: 503,
      retryAfter: '1',
      body: { error: { code: 'INSUFFICIENT_NODES', message: `failed with ${code}` } },
    });
  });

  it.each(shown5xx)('answers a gateway client with %s itself', async (code) => {
    const [status, retryable] = BEFORE[code]!;
    expect(await answer(`/fail/${code}`)).toEqual({
      status,
      retryAfter: retryable || status === 503 ? '1' : null,
      body: { error: { code, message: `failed with ${code}` } },
    });
  });

  it('answers every 4xx code as itself, with Retry-After only for 429 RATE_LIMITED', async () => {
    expect((await answer('/fail/RATE_LIMITED')).retryAfter).toBe('1');
    for (const code of Object.keys(BEFORE).filter((c) => BEFORE[c]![0] < 500 && c !== 'RATE_LIMITED')) {
      const { status, retryAfter, body } = await answer(`/fail/${code}`);
      expect({ status, retryAfter, body }).toEqual({
        status: BEFORE[code]![0],
        retryAfter: null,
        body: { error: { code, message: `failed with ${code}` } },
      });
    }
  });

  it('answers anything that is not a StrataError as 500 INTERNAL without its message', async () => {
    expect(await answer('/bug')).toEqual({
      status: 500,
      retryAfter: null,
      body: { error: { code: 'INTERNAL', message: 'an internal error occurred; it has been logged' } },
    });
  });
});
