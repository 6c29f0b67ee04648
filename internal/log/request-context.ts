/**
 * Request ids: the id a gateway gives each request (the client's `X-Request-Id` when it is a safe one, a fresh
 * one otherwise), answered back in the same header, written on the request's log line and sent to every storage
 * node the request calls, whose own log lines then carry it too.
 *
 * The id travels through the write and read services without being a parameter of every call: the gateway runs
 * each request inside `RequestContext.run`, and the node clients read the current id from the same
 * RequestContext (an AsyncLocalStorage). Each process wires one RequestContext and hands it to both sides, so two
 * clusters in one test process never see each other's ids.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';

export const REQUEST_ID_HEADER = 'x-request-id';

export const REQUEST_ID_LIMITS = {
  /** Longest client-chosen id accepted: room for a UUID, a trace id or nginx's $request_id, not for a payload. */
  bytesMax: 128,
} as const;

/** Letters, digits and `- _ . : /`: nothing that could break a log line, a header or a shell. */
const REQUEST_ID_PATTERN = /^[A-Za-z0-9_.:/-]+$/;

/** Why `raw` is not an acceptable request id, or null when it is. */
export function requestIdProblem(raw: string): string | null {
  if (raw.length === 0) return 'X-Request-Id is empty';
  if (raw.length > REQUEST_ID_LIMITS.bytesMax) return `X-Request-Id is ${raw.length} characters; the limit is ${REQUEST_ID_LIMITS.bytesMax}`;
  if (!REQUEST_ID_PATTERN.test(raw)) return 'X-Request-Id may only contain letters, digits and - _ . : /';
  return null;
}

/**
 * A fresh id: a random UUID as 32 hex digits (the shape of nginx's $request_id). randomUUID draws from a
 * buffered pool; randomBytes per request cost a system call each (a few per cent of a cached read).
 */
export function newRequestId(): string {
  return randomUUID().replaceAll('-', '');
}

/** What the gateway knows about the request being served, readable from anywhere inside it. */
export interface RequestScope {
  readonly requestId: string;
  /** The strategy of the document the request wrote or read, once known (a metrics label). */
  strategy?: string;
}

export class RequestContext {
  private readonly storage = new AsyncLocalStorage<RequestScope>();

  run<T>(scope: RequestScope, fn: () => T): T {
    return this.storage.run(scope, fn);
  }

  current(): RequestScope | undefined {
    return this.storage.getStore();
  }

  /** The id of the request being served, or undefined outside any request (the healer, probes). */
  requestId(): string | undefined {
    return this.storage.getStore()?.requestId;
  }
}
