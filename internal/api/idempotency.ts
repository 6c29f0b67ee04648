/**
 * Idempotency-Key (api.md): a write, patch or delete retried with the same token within 24 hours returns the
 * first attempt's outcome instead of applying again. The token is reserved before the operation runs, so two
 * concurrent attempts cannot both apply; the second one is told to wait (409) until the first has finished.
 * Outcomes that changed nothing and may succeed later (503) release the token so that a retry runs again.
 */
import { createHash } from 'node:crypto';
import type { Context } from 'hono';
import { StrataError } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';
import type { IdempotentResponse } from '../metadata/metadata-store.js';
import type { GatewayDeps } from './gateway-deps.js';

export interface OperationIdentity {
  method: string;
  key: string;
  body: Buffer;
  /** Anything else that makes two requests different operations (query parameters, media type). */
  extra: string;
}

export async function withIdempotency(
  c: Context,
  deps: GatewayDeps,
  identity: OperationIdentity,
  run: () => Promise<IdempotentResponse>,
): Promise<Response> {
  const token = parseIdempotencyKey(c.req.header('idempotency-key'));
  if (token === undefined) return send(c, await run());
  const fingerprint = createHash('sha256')
    .update(`${identity.method}\n${identity.key}\n${identity.extra}\n`)
    .update(identity.body)
    .digest('hex');
  const now = deps.clock.nowMs();
  const existing = await deps.metadata.reserveIdempotency(token, fingerprint, now + LIMITS.idempotencyTtlMs);
  if (existing) {
    if (existing.fingerprint !== fingerprint) {
      throw new StrataError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used for a different request; use a fresh key per operation');
    }
    if (existing.state === 'pending') {
      throw new StrataError('IDEMPOTENCY_IN_PROGRESS', 'a request with this Idempotency-Key is still being processed; retry shortly');
    }
    c.header('Idempotent-Replayed', 'true');
    return send(c, existing.response);
  }
  let response: IdempotentResponse;
  try {
    response = await run();
  } catch (error) {
    if (error instanceof StrataError && error.status < 500) {
      await deps.metadata.completeIdempotency(token, {
        status: error.status,
        body: { error: { code: error.code, message: error.message } },
        headers: {},
      });
    } else {
      await deps.metadata.releaseIdempotency(token).catch(() => undefined);
    }
    throw error;
  }
  await deps.metadata.completeIdempotency(token, response);
  return send(c, response);
}

/** The `Idempotency-Key` header: absent, or 1 to 256 visible ASCII characters. */
export function parseIdempotencyKey(token: string | undefined): string | undefined {
  if (token === undefined) return undefined;
  if (token.length === 0 || Buffer.byteLength(token) > LIMITS.idempotencyKeyBytesMax || !/^[\x21-\x7e]+$/.test(token)) {
    throw new StrataError(
      'INVALID_HEADER',
      `Idempotency-Key must be 1 to ${LIMITS.idempotencyKeyBytesMax} visible ASCII characters`,
    );
  }
  return token;
}

function send(c: Context, response: IdempotentResponse): Response {
  for (const [name, value] of Object.entries(response.headers)) c.header(name, value);
  return c.json(response.body as object, response.status as 200);
}
