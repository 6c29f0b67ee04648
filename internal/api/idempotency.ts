/**
 * Idempotency-Key (api.md): a write, patch or delete retried with the same token within 24 hours returns the
 * first attempt's outcome instead of applying again (docs/decisions.md 15). What makes a retry the same request
 * (every input that can change the outcome) is its fingerprint: idempotency-fingerprint.ts.
 *
 * - Before the operation runs, the attempt claims the token: a pending record with a random attempt id and a lease.
 *   A concurrent retry finds it pending and is told to wait (409, `Retry-After` = the rest of the lease).
 * - The outcome of a mutation that commits is part of its commit: the metadata transaction that stores the manifest
 *   also checks that the claim still holds the token and turns the record done with the response (the version is
 *   the commit's revision, filled in on replay). A gateway that dies after the commit loses nothing: the retry
 *   replays the outcome.
 * - An outcome that changed nothing and would be the same again (4xx) is recorded as done, so the retry replays it.
 * - Any other failure (503, 504 COMMIT_UNKNOWN, a crash) releases the claim, or leaves it pending when even that
 *   fails (or the gateway died). Either way the claim is void for commits from then on (release deletes it, a
 *   take-over replaces it), so the failed attempt can never commit afterwards, even if its commit request is still
 *   in flight: a retry after a release runs the operation again, and exactly one of the two can ever commit; if
 *   the first one did commit before the release, the record is done and the retry replays it.
 * - A pending record whose lease lapsed (its gateway died) is taken over by the retry, which runs the operation
 *   again. The lease outlasts the longest an attempt can still try to commit (the commit deadline, write-service.ts),
 *   so a live attempt is not cut off; safety does not depend on it (the claim check above does).
 */
import { randomBytes } from 'node:crypto';
import type { Context } from 'hono';
import type { Clock } from '../core/clock.js';
import { StrataError, isStrataError } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';
import type { IdempotencyClaim, IdempotentResponse, MetadataStore } from '../metadata/metadata-store.js';
import type { CommittedWrite, IdempotentOutcome } from '../writeservice/write-service.js';
import type { GatewayDeps } from './gateway-deps.js';
import {
  fingerprintMatches,
  fingerprintOf,
  isVersionedFingerprint,
  requestInputs,
  unversionedFingerprintOf,
  type OperationIdentity,
} from './idempotency-fingerprint.js';

export type { OperationIdentity } from './idempotency-fingerprint.js';

export const IDEMPOTENCY_LIMITS = {
  /**
   * Added to the longest an attempt can still commit, for what the commit deadline does not cover: planning before
   * the intent, the commit request in flight after the deadline check (the metadata store's request deadline, 5 s
   * by default) and clock skew between gateways.
   */
  leaseMarginMs: 30_000,
  /** Random bytes of an attempt id. */
  attemptIdBytes: 16,
} as const;

/**
 * How long an attempt holds its token before a retry may take it over: the commit-race window (a write keeps
 * re-planning that long) plus the commit deadline of its last attempt (the GC grace period, internal/wiring) plus
 * the margin.
 */
export function idempotencyLeaseMs(commitDeadlineMs: number): number {
  return LIMITS.commitRetryWindowMs + commitDeadlineMs + IDEMPOTENCY_LIMITS.leaseMarginMs;
}

export interface IdempotencyContext {
  metadata: MetadataStore;
  clock: Clock;
  leaseMs: number;
}

export interface IdempotentAnswer {
  response: IdempotentResponse;
  /** The outcome of an earlier attempt, replayed. */
  replayed: boolean;
}

/**
 * The protocol above without HTTP (the gateway's routes and the simulator use it). `run` performs the mutation,
 * passing `outcome` to the write path when a token is given; `respond` turns a committed write into the response.
 * Throws what `run` throws, IDEMPOTENCY_KEY_REUSED, or IDEMPOTENCY_IN_PROGRESS (details.retryAfterMs).
 */
export async function runIdempotent(
  ctx: IdempotencyContext,
  token: string | undefined,
  identity: OperationIdentity,
  respond: (write: CommittedWrite) => IdempotentResponse,
  run: (outcome: IdempotentOutcome | undefined) => Promise<CommittedWrite>,
): Promise<IdempotentAnswer> {
  if (token === undefined) return { response: respond(await run(undefined)), replayed: false };
  const now = ctx.clock.nowMs();
  let claim: IdempotencyClaim = {
    token,
    fingerprint: fingerprintOf(identity),
    attemptId: randomBytes(IDEMPOTENCY_LIMITS.attemptIdBytes).toString('hex'),
    leaseUntilMs: now + ctx.leaseMs,
    expiresAtMs: now + LIMITS.idempotencyTtlMs,
  };
  let existing = await ctx.metadata.reserveIdempotency(claim);
  if (existing?.state === 'pending' && !isVersionedFingerprint(existing.fingerprint) && existing.fingerprint === unversionedFingerprintOf(identity)) {
    // A pending record from before fingerprints had versions, for this request. The stores let a claim take over a
    // lapsed lease only under the fingerprint the record holds, so this attempt claims the token under that one.
    claim = { ...claim, fingerprint: existing.fingerprint };
    existing = await ctx.metadata.reserveIdempotency(claim);
  }
  if (existing) {
    if (!fingerprintMatches(existing.fingerprint, identity)) {
      throw new StrataError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used for a different request; use a fresh key per operation');
    }
    if (existing.state === 'pending') {
      const retryAfterMs = Math.max(0, existing.leaseUntilMs - now);
      throw new StrataError(
        'IDEMPOTENCY_IN_PROGRESS',
        'a request with this Idempotency-Key is still being processed; retry shortly (should its gateway have failed, ' +
          `a retry takes it over in ${Math.ceil(retryAfterMs / 1000)} s)`,
        { retryAfterMs },
      );
    }
    const response = existing.version === null ? existing.response : responseWithVersion(existing.response, existing.version);
    return { response, replayed: true };
  }
  let write: CommittedWrite;
  try {
    write = await run({ claim, respond });
  } catch (error) {
    if (isStrataError(error) && error.status < 500 && error.code !== 'IDEMPOTENCY_IN_PROGRESS') {
      // Refused before anything changed, and a retry would be refused the same way: that is the outcome. A failure
      // to record it leaves the claim pending until its lease lapses; the client still gets the real answer.
      const refused = { status: error.status, body: { error: { code: error.code, message: error.message } }, headers: {} };
      await ctx.metadata.completeIdempotency(claim, refused).catch(() => false);
    } else {
      // Nothing recorded: release the claim so that a retry runs again at once. This is safe even when the commit's
      // outcome is unknown: a commit that landed made the record done (a no-op release, the retry replays it), and
      // one still in flight finds its claim gone and is refused. If the release fails too, the lease runs out.
      await ctx.metadata.releaseIdempotency(claim).catch(() => undefined);
    }
    throw error;
  }
  if (write.recordedResponse !== undefined) {
    return { response: responseWithVersion(write.recordedResponse, write.manifest.version), replayed: false };
  }
  // A mutation whose commit did not record the outcome (none today): record it now.
  const response = respond(write);
  await ctx.metadata.completeIdempotency(claim, response);
  return { response, replayed: false };
}

/**
 * The routes' wrapper: reads the header, adds the request's other inputs to `identity` (requestInputs), answers,
 * and sets `Idempotent-Replayed` and `Retry-After`.
 */
export async function withIdempotency(
  c: Context,
  deps: GatewayDeps,
  identity: OperationIdentity,
  respond: (write: CommittedWrite) => IdempotentResponse,
  run: (outcome: IdempotentOutcome | undefined) => Promise<CommittedWrite>,
): Promise<Response> {
  const token = parseIdempotencyKey(c.req.header('idempotency-key'));
  const ctx: IdempotencyContext = { metadata: deps.metadata, clock: deps.clock, leaseMs: idempotencyLeaseMs(deps.config.gcGraceMs) };
  let answer: IdempotentAnswer;
  try {
    answer = await runIdempotent(ctx, token, { ...identity, inputs: requestInputs(c) }, respond, run);
  } catch (error) {
    if (isStrataError(error, 'IDEMPOTENCY_IN_PROGRESS')) {
      const retryAfterMs = typeof error.details?.retryAfterMs === 'number' ? error.details.retryAfterMs : 0;
      c.header('Retry-After', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    }
    throw error;
  }
  if (answer.replayed) c.header('Idempotent-Replayed', 'true');
  return send(c, answer.response);
}

/**
 * A recorded response with its version filled in. The commit that records a response cannot know its own version
 * beforehand, so the response is stored as a template and the version put where write and delete answers carry
 * it: `body.version`, `ETag` and `X-Strata-Version`.
 */
export function responseWithVersion(template: IdempotentResponse, version: string): IdempotentResponse {
  const body = template.body;
  const filled =
    typeof body === 'object' && body !== null && !Array.isArray(body) && 'version' in body ? { ...body, version } : body;
  const headers = { ...template.headers };
  if ('ETag' in headers) headers.ETag = `"${version}"`;
  if ('X-Strata-Version' in headers) headers['X-Strata-Version'] = version;
  return { status: template.status, body: filled, headers };
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
