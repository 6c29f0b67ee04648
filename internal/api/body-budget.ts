/**
 * A gateway-wide bound on the bytes of document bodies it holds: request bodies being received and processed, and
 * response bodies not yet handed to the client's connection.
 *
 * The in-flight bound (access.ts) counts requests, and a request may carry up to STRATA_BODY_BYTES_MAX (16 MiB):
 * 256 of them is 4 GiB before any working copy. Worse, a client that stops reading keeps its response in this
 * process after the handler returned and the request no longer counts as in flight. So bodies are counted in bytes:
 *
 * - a write or patch reserves its Content-Length before reading a byte (chunked bodies: each chunk as it arrives);
 *   when the reservation does not fit, it is refused with 503 OVERLOADED and Retry-After, and nothing is read;
 * - a read reserves the document's size (or its hot part's, for a projection the hot fields answer) once its
 *   manifest is known and before any blob is fetched, and is refused the same way;
 * - everything a request reserved is released when its response is done: sent, or the connection closed. A client
 *   that stops reading is cut after STRATA_SOCKET_IDLE_TIMEOUT_MS without progress (http-server.ts), which closes
 *   the response and releases its bytes.
 *
 * One body larger than the whole budget is still admitted when nothing else is held, so that every document up to
 * STRATA_BODY_BYTES_MAX can be written whatever the budget. Small bodies (up to SMALL_BODY_BYTES per request) are
 * counted but never refused: the in-flight bound already caps them (256 x 64 KiB = 16 MiB), and a few clients
 * stalling on large documents must not stop the small reads and hot updates that make up most traffic.
 *
 * The bound is on bodies; the working copies made while a body is parsed, split and encoded are a small multiple of
 * it (BENCHMARKS.md records the gateway's RSS and what it is made of).
 */
import type { ServerResponse } from 'node:http';
import type { Context, Hono } from 'hono';
import { StrataError } from '../core/errors.js';

/** What the budget holds now, for /metrics and tests. */
export interface BodyBudgetStats {
  bytesMax: number;
  heldBytes: number;
  /** Requests refused because their body did not fit. */
  refused: number;
}

/** A request holding at most this many body bytes is never refused by the budget (see above). */
export const SMALL_BODY_BYTES = 64 * 1024;

export class BodyBudget {
  private held = 0;
  private refusedCount = 0;
  /** Bytes held per request, released together when its response is done. */
  private readonly byRequest = new WeakMap<Request, number>();

  constructor(readonly bytesMax: number) {}

  stats(): BodyBudgetStats {
    return { bytesMax: this.bytesMax, heldBytes: this.held, refused: this.refusedCount };
  }

  /**
   * Reserves `bytes` of request body for this request, or throws 503 OVERLOADED when they do not fit beside what
   * other requests hold.
   */
  reserve(c: Context, bytes: number): void {
    if (bytes <= 0) return;
    const mine = this.byRequest.get(c.req.raw) ?? 0;
    const othersHold = this.held - mine;
    if (mine + bytes > SMALL_BODY_BYTES && othersHold > 0 && this.held + bytes > this.bytesMax) {
      this.refusedCount++;
      throw overloaded(`${bytes} more bytes of body do not fit: this gateway holds ${this.held} of ${this.bytesMax} (STRATA_BODY_BUFFER_BYTES_MAX)`);
    }
    this.add(c, bytes);
  }

  /** Makes the request hold at least `bytes` (a response body already in memory, whether or not it fits). */
  holdAtLeast(c: Context, bytes: number): void {
    const extra = bytes - (this.byRequest.get(c.req.raw) ?? 0);
    if (extra > 0) this.add(c, extra);
  }

  /** Releases what the request holds once its response is done: now, or when the connection finishes with it. */
  settle(c: Context): void {
    const bytes = this.byRequest.get(c.req.raw);
    if (bytes === undefined) return;
    const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    const release = (): void => {
      if (!this.byRequest.delete(c.req.raw)) return;
      this.held -= bytes;
    };
    // node:http emits 'close' on a response once it is finished or its connection is gone, whichever comes first.
    if (outgoing && !outgoing.closed) outgoing.once('close', release);
    else release();
  }

  private add(c: Context, bytes: number): void {
    this.byRequest.set(c.req.raw, (this.byRequest.get(c.req.raw) ?? 0) + bytes);
    this.held += bytes;
  }
}

/** Releases each request's bodies when its response is done, however the handler ended. */
export function installBodyBudget(app: Hono, budget: BodyBudget): void {
  app.use('*', async (c, next) => {
    try {
      await next();
    } finally {
      budget.settle(c);
    }
  });
}

function overloaded(detail: string): StrataError {
  return new StrataError('OVERLOADED', `${detail}; retry shortly`);
}
