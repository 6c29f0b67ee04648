import { noop } from 'cockatiel';
import {
  ClientClosedError,
  Etcd3,
  GRPCAbortedError,
  GRPCCancelledError,
  GRPCDeadlineExceededError,
  GRPCInternalError,
  GRPCResourceExhastedError,
  GRPCUnavailableError,
  GRPCUnknownError,
  type KVClient,
} from 'etcd3';
import { AssertionError, assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';

/**
 * The connection to etcd: one `etcd3` client, a deadline on every call, retries where they are safe, and the
 * mapping of etcd and gRPC failures to METADATA_UNAVAILABLE and COMMIT_UNKNOWN, and of etcd's exhausted space quota to
 * DISK_FULL (README: "etcd", "Errors").
 */

export const ETCD_RPC_LIMITS = {
  /** Deadline of one store call, all of its round trips and retries together. */
  requestTimeoutMs: 5_000,
  /** Round trips one RPC may take when etcd could not be reached (or, for reads, answered nothing usable). */
  attemptsMax: 8,
  /** Back-off between those attempts, doubling from min to max (8 attempts ≈ 1.6 s when etcd is down). */
  retryDelayMsMin: 20,
  retryDelayMsMax: 500,
  /** Largest gRPC response accepted: a scan page of 1000 erasure-coded manifests is several MiB. */
  responseBytesMax: 64 * 1024 * 1024,
} as const;

/**
 * How a kind of call may be retried after a failure:
 * - `idempotent`: repeating it cannot change the outcome (reads, lease keep-alives), so any transient failure
 *   is retried;
 * - `once`: retried only when the request surely never reached etcd;
 * - `commit`: like `once`, and a failure after the request may have reached etcd is COMMIT_UNKNOWN.
 */
export type CallKind = 'idempotent' | 'once' | 'commit';

/** Per-call gRPC options (the deadline), typed through etcd3 so that @grpc/grpc-js stays its business. */
export type CallOptions = NonNullable<Parameters<KVClient['range']>[1]>;

/** Absolute wall-clock time (ms) by which a store call must be done. */
export type Deadline = number;

interface Failure {
  /** 'maybe': the request may have reached etcd and been applied. */
  sent: 'no' | 'maybe';
  transient: boolean;
}

/** Answers from etcd that may hide an applied change: a proposal that timed out or lost its leader can commit. */
const ETCD_AMBIGUOUS = /etcdserver: (request timed out|leader changed)/;
/**
 * etcd's answer to a put (or a transaction with one, or a lease grant) while its space quota is exhausted: gRPC
 * RESOURCE_EXHAUSTED, surfaced by etcd3 as GRPCResourceExhastedError with this text (the same in etcd 3.4 and 3.5).
 * etcd raises its NOSPACE alarm with the first such refusal and refuses every put until an operator disarms it.
 */
const ETCD_NO_SPACE = /etcdserver: mvcc: database space exceeded/;

/** Whether `err` is etcd refusing a change because its space quota is exhausted (NOSPACE). */
export function isEtcdNoSpace(err: unknown): boolean {
  return ETCD_NO_SPACE.test(err instanceof Error ? err.message : String(err));
}

/**
 * What a client is told while etcd's NOSPACE alarm is raised: what is full, what still works, and the recovery
 * (docs/disk-full.md, "etcd"). Deletes are refused too: a delete stores a tombstone, and etcd refuses every put.
 */
export function etcdNoSpaceMessage(endpoints: readonly string[]): string {
  return (
    `etcd (${endpoints.join(', ')}) has exhausted its space quota (--quota-backend-bytes) and raised its NOSPACE alarm: ` +
    'it refuses every change (writes, patches, and deletes, which store a tombstone) until an operator frees space; ' +
    'reads still work. Recover with `etcdctl compact <current revision>`, `etcdctl defrag --cluster`, then ' +
    '`etcdctl alarm disarm` (and raise --quota-backend-bytes if the live data needs it); writes resume on their own'
  );
}

/** Refusals from etcd that are worth another try (nothing was applied). */
const ETCD_TRANSIENT = /etcdserver: (no leader|too many requests|not capable|unhealthy cluster|server stopped)/;

/**
 * Whether a failed RPC may have reached etcd. The evidence is grpc-js's own wording: "No connection established"
 * (UNAVAILABLE) and "Waiting for LB pick" (DEADLINE_EXCEEDED) are said only of calls that never got a
 * transport. Anything unrecognised counts as possibly sent, the safe side for a commit.
 */
export function classify(err: unknown): Failure {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof ClientClosedError) return { sent: 'no', transient: false };
  if (message.includes('etcdserver:')) {
    if (ETCD_AMBIGUOUS.test(message)) return { sent: 'maybe', transient: true };
    // Every other answer from etcd itself is a refusal: the request was not applied.
    return { sent: 'no', transient: ETCD_TRANSIENT.test(message) };
  }
  if (err instanceof GRPCUnavailableError) {
    return { sent: message.includes('No connection established') ? 'no' : 'maybe', transient: true };
  }
  if (err instanceof GRPCDeadlineExceededError) {
    return { sent: message.includes('Waiting for LB pick') ? 'no' : 'maybe', transient: true };
  }
  if (
    err instanceof GRPCCancelledError ||
    err instanceof GRPCInternalError ||
    err instanceof GRPCUnknownError ||
    err instanceof GRPCAbortedError ||
    err instanceof GRPCResourceExhastedError
  ) {
    return { sent: 'maybe', transient: true };
  }
  // Invalid argument, permission denied and the like: refused before anything was applied, and the same request
  // would be refused again.
  return { sent: 'no', transient: false };
}

export interface EtcdRpcOptions {
  endpoints: string[];
  requestTimeoutMs?: number;
  attemptsMax?: number;
}

export class EtcdRpc {
  readonly client: Etcd3;
  readonly endpoints: readonly string[];
  readonly requestTimeoutMs: number;
  private readonly attemptsMax: number;
  private closed = false;

  constructor(options: EtcdRpcOptions) {
    assert(options.endpoints.length > 0, 'at least one etcd endpoint');
    for (const endpoint of options.endpoints) assert(endpoint.length > 0, 'etcd endpoints are non-empty');
    this.endpoints = [...options.endpoints];
    this.requestTimeoutMs = options.requestTimeoutMs ?? ETCD_RPC_LIMITS.requestTimeoutMs;
    this.attemptsMax = options.attemptsMax ?? ETCD_RPC_LIMITS.attemptsMax;
    assert(Number.isInteger(this.requestTimeoutMs) && this.requestTimeoutMs > 0, 'requestTimeoutMs is an integer > 0');
    assert(Number.isInteger(this.attemptsMax) && this.attemptsMax > 0, 'attemptsMax is an integer > 0');
    this.client = new Etcd3({
      hosts: [...this.endpoints],
      // The client's own fault handling would retry a commit whose first attempt may have been applied (the
      // retried compare-and-set then reports a conflict with itself) and would stop calling a member for 5 s
      // after three failures, delaying recovery. Retries are done here instead, knowing which calls are safe.
      faultHandling: { host: () => noop, global: noop },
      grpcOptions: {
        'grpc.max_receive_message_length': ETCD_RPC_LIMITS.responseBytesMax,
        // Reconnect quickly once etcd is back, and notice a dead peer on an idle connection. etcd refuses pings
        // more often than every 5 s (--grpc-keepalive-min-time).
        'grpc.initial_reconnect_backoff_ms': 100,
        'grpc.max_reconnect_backoff_ms': 1_000,
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
      },
    });
  }

  /** The deadline of a store call that starts now. */
  deadline(): Deadline {
    if (this.closed) throw this.closedError();
    // A gRPC deadline is wall-clock time, so this is Date.now() and not an injected clock.
    return Date.now() + this.requestTimeoutMs;
  }

  /**
   * Sends one RPC, retrying as `kind` allows until `deadline`, and turns etcd and gRPC failures into
   * METADATA_UNAVAILABLE or COMMIT_UNKNOWN. Errors that are not the client's (assertions) pass through.
   */
  async call<T>(what: string, kind: CallKind, deadline: Deadline, send: (options: CallOptions) => Promise<T>): Promise<T> {
    let delayMs: number = ETCD_RPC_LIMITS.retryDelayMsMin;
    for (let attempt = 1; ; attempt++) {
      if (this.closed) throw this.closedError();
      try {
        return await send({ deadline: new Date(deadline) });
      } catch (err) {
        if (err instanceof AssertionError || err instanceof StrataError) throw err;
        const failure = classify(err);
        const retryable = failure.transient && (failure.sent === 'no' || kind === 'idempotent');
        const timeLeft = Date.now() + delayMs < deadline;
        if (!retryable || !timeLeft || attempt >= this.attemptsMax || this.closed) {
          throw this.toStrataError(what, kind, failure, err);
        }
        // Real time, like the deadline that bounds it; an injected manual clock would never wake it.
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(delayMs * 2, ETCD_RPC_LIMITS.retryDelayMsMax);
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }

  private closedError(): StrataError {
    return new StrataError('METADATA_UNAVAILABLE', 'metadata store (etcd) is closed');
  }

  private toStrataError(what: string, kind: CallKind, failure: Failure, err: unknown): StrataError {
    const cause = err instanceof Error ? err.message : String(err);
    const where = `etcd (${this.endpoints.join(', ')})`;
    if (kind === 'commit' && failure.sent === 'maybe') {
      return new StrataError(
        'COMMIT_UNKNOWN',
        `${where}: the ${what} was sent but its answer never came (deadline ${this.requestTimeoutMs} ms); it may or may not have been applied: ${cause}`,
      );
    }
    if (this.closed) return new StrataError('METADATA_UNAVAILABLE', `metadata store (etcd) closed during ${what}`);
    // A refusal (nothing applied), and not one that goes away by retrying: 507, not 503 "retry later".
    if (isEtcdNoSpace(err)) return new StrataError('DISK_FULL', `${etcdNoSpaceMessage(this.endpoints)}; the ${what} was refused, nothing was written`);
    const outcome = failure.sent === 'maybe' && kind !== 'idempotent' ? ' (its outcome is unknown)' : '';
    return new StrataError('METADATA_UNAVAILABLE', `${where} is unavailable: ${what} failed${outcome}: ${cause}`);
  }
}
