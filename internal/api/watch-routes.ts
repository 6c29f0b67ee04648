/**
 * GET /watch: the change feed (docs/api.md "Change feed"). Committed changes of keys under a prefix as
 * server-sent events, one per commit, resumable from a version: the event id of a change is its version (the
 * store's revision at commit), and `?since=V` or the standard `Last-Event-ID` header resumes after V. The store
 * replays what its history still holds (MetadataStore.watchChanges), so a resumed stream has no gaps and no
 * repeats; from further back the answer is 410 HISTORY_COMPACTED and the client must list again.
 *
 * Bounds: STRATA_WATCH_STREAMS_MAX streams per gateway (503 TOO_MANY_WATCHERS beyond). Flow control: at most
 * STRATA_WATCH_BUFFER_BYTES_MAX bytes wait for one client; when they do, the stream stops following the store
 * (its store watch is closed) and follows it again from its last event once the client has read half of them, so
 * a slow reader gets every change, later. A client that leaves a full buffer unread for STRATA_WATCH_STALL_MS
 * gets a final WATCH_TOO_SLOW error event and the stream ends: a stalled client costs a bounded amount of memory.
 */
import type { Context, Env, Hono } from 'hono';
import { StrataError } from '../core/errors.js';
import type { ManifestChange, ManifestWatch } from '../metadata/metadata-store.js';
import { RETRY_AFTER_SECONDS, clientFacingCode, errorBody } from './errors.js';
import type { GatewayDeps } from './gateway-deps.js';
import { queryValue, rawQuery, validateKey } from './request.js';

export const WATCH_LIMITS = {
  /** Digits of a version in `since` or `Last-Event-ID` (2^53 has 16). */
  versionDigitsMax: 16,
  /** How long an EventSource waits before reconnecting after the stream ends (the SSE `retry` field). */
  reconnectDelayMs: 2_000,
} as const;

/** What a /watch stream is told, in order: `ready` once, then `change` per commit; `error` ends it. */
type WatchEvent =
  | { event: 'ready'; id: number; data: { prefix: string; version: string } }
  | { event: 'change'; id: number; data: { key: string; version: string; kind: 'put' | 'delete' } }
  | { event: 'error'; data: { error: { code: string; message: string } } };

const encoder = new TextEncoder();

function encodeEvent(e: WatchEvent): Uint8Array {
  const id = 'id' in e ? `id: ${e.id}\n` : '';
  // JSON never contains a raw newline, so one `data:` line carries the whole payload.
  return encoder.encode(`event: ${e.event}\n${id}data: ${JSON.stringify(e.data)}\n\n`);
}

/** The live streams of one gateway (one app), for the limit and for tests. */
export interface WatchStreams {
  readonly active: number;
}

export function registerWatchRoutes<E extends Env>(app: Hono<E>, deps: GatewayDeps): WatchStreams {
  let active = 0;

  app.get('/watch', async (c) => {
    const { prefix, since } = parseWatchRequest(c);
    const current = await deps.metadata.currentRevision();
    if (since !== null && since > current) {
      throw new StrataError('INVALID_REQUEST', `version ${since} is ahead of this cluster's latest version ${current}; resume from a version this cluster gave you`);
    }
    if (active >= deps.config.watchStreamsMax) {
      c.header('Retry-After', String(RETRY_AFTER_SECONDS));
      return c.json(
        errorBody('TOO_MANY_WATCHERS', `this gateway already serves ${deps.config.watchStreamsMax} change-feed streams (STRATA_WATCH_STREAMS_MAX); retry shortly or use another gateway`),
        503,
      );
    }
    active++;
    const from = since ?? current;
    const pump = new FeedPump(deps, prefix, from, () => active--);
    // The first store watch is started before answering, so that HISTORY_COMPACTED is a plain 410 (and
    // METADATA_UNAVAILABLE a 503) rather than an error event after a 200.
    try {
      await pump.start();
    } catch (error) {
      pump.stream.cancel();
      throw error;
    }
    return new Response(pump.stream.readable, {
      headers: {
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache, no-transform',
        // nginx (and proxies that honour it) must pass events on as they come instead of buffering them.
        'X-Accel-Buffering': 'no',
      },
    });
  });

  return {
    get active() {
      return active;
    },
  };
}

function parseWatchRequest(c: Context): { prefix: string; since: number | null } {
  const query = rawQuery(c);
  const prefix = queryValue(query, 'prefix') ?? '';
  // A prefix obeys the key rules (it is the start of keys), except that it may be empty.
  if (prefix !== '') {
    try {
      validateKey(prefix);
    } catch (error) {
      throw new StrataError('INVALID_REQUEST', `prefix: ${(error as Error).message}`);
    }
  }
  // An EventSource reconnecting sends Last-Event-ID with the URL it first used: the header is the newer news.
  const lastEventId = c.req.header('last-event-id');
  const sinceText = lastEventId !== undefined && lastEventId !== '' ? lastEventId : queryValue(query, 'since');
  const where = lastEventId !== undefined && lastEventId !== '' ? 'Last-Event-ID' : 'since';
  if (sinceText === undefined || sinceText === '') return { prefix, since: null };
  if (!/^\d+$/.test(sinceText) || sinceText.length > WATCH_LIMITS.versionDigitsMax || !Number.isSafeInteger(Number(sinceText))) {
    throw new StrataError('INVALID_REQUEST', `${where} must be a version (a decimal integer such as an X-Strata-Version or an event id), not "${sinceText.slice(0, 40)}"`);
  }
  return { prefix, since: Number(sinceText) };
}

/**
 * Moves changes from the store to one client's stream, with flow control: while the stream's buffer is full the
 * store watch is closed, and it is started again from the last change sent once the client has read enough. The
 * store replays from its history, so pausing loses nothing and repeats nothing.
 */
class FeedPump {
  readonly stream: FeedStream;
  /** The revision of the last change sent (or the starting point): where a restarted watch resumes. */
  private last: number;
  private watch: ManifestWatch | null = null;
  /** Each store watch's callbacks carry its generation; those of a closed one are ignored. */
  private generation = 0;
  private paused = false;
  private stallTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly deps: GatewayDeps,
    private readonly prefix: string,
    from: number,
    release: () => void,
  ) {
    this.last = from;
    this.stream = new FeedStream(deps.config.watchBufferBytesMax, deps.config.watchHeartbeatMs, () => this.onDrained());
    this.stream.onClose(() => {
      release();
      this.stopWatch();
      if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    });
    this.stream.send({ event: 'ready', id: from, data: { prefix, version: String(from) } });
  }

  /** Starts (or restarts) the store watch from the last change sent. */
  async start(): Promise<void> {
    const generation = ++this.generation;
    const watch = await this.deps.metadata.watchChanges(this.prefix, this.last, {
      onChange: (change) => {
        if (generation === this.generation) this.forward(change);
      },
      onEnd: (error) => {
        if (generation === this.generation) this.stream.fail(clientFacingCode(error.code), error.message);
      },
    });
    if (generation !== this.generation || this.stream.isClosed) void watch.close();
    else this.watch = watch;
  }

  private forward(change: ManifestChange): void {
    // A restarted watch starts after `last`; this only guards the promise of no repeats.
    if (this.paused || change.revision <= this.last) return;
    this.stream.send({ event: 'change', id: change.revision, data: { key: change.key, version: String(change.revision), kind: change.kind } });
    this.last = change.revision;
    if (this.stream.isFull) this.pause();
  }

  private pause(): void {
    this.paused = true;
    this.stopWatch();
    this.stallTimer = setTimeout(() => {
      this.stream.fail(
        'WATCH_TOO_SLOW',
        `the client left ${this.deps.config.watchBufferBytesMax} bytes of the change feed unread for ${this.deps.config.watchStallMs} ms (STRATA_WATCH_BUFFER_BYTES_MAX, STRATA_WATCH_STALL_MS); resume with Last-Event-ID: ${this.last}`,
      );
    }, this.deps.config.watchStallMs);
    this.stallTimer.unref();
  }

  /** The client read half of what was waiting: follow the store again. */
  private onDrained(): void {
    if (!this.paused || this.stream.isClosed) return;
    this.paused = false;
    if (this.stallTimer !== null) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    this.start().catch((error: unknown) => {
      const failure = error instanceof StrataError ? error : new StrataError('METADATA_UNAVAILABLE', (error as Error).message);
      this.stream.fail(clientFacingCode(failure.code), failure.message);
    });
  }

  private stopWatch(): void {
    this.generation++;
    const watch = this.watch;
    this.watch = null;
    if (watch !== null) void watch.close();
  }
}

/**
 * The byte stream of one /watch response: events are queued for the HTTP adapter, which reads them only as fast
 * as the client's socket takes them. `isFull` tells the pump to pause; `onDrained` is called when the client has
 * read the queue down to half. The heartbeat keeps idle proxies from closing the connection.
 */
class FeedStream {
  readonly readable: ReadableStream<Uint8Array>;
  private controller!: ReadableStreamDefaultController<Uint8Array>;
  private closed = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly closeHandlers: Array<() => void> = [];

  constructor(
    private readonly bufferBytesMax: number,
    heartbeatMs: number,
    onDrained: () => void,
  ) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
          controller.enqueue(encoder.encode(`retry: ${WATCH_LIMITS.reconnectDelayMs}\n\n`));
        },
        // Called as the adapter reads; desiredSize is the room left below the high-water mark.
        pull: (controller) => {
          if ((controller.desiredSize ?? 0) >= this.bufferBytesMax / 2) onDrained();
        },
        // The client went away (the adapter cancels the body when the socket closes).
        cancel: () => this.finish(),
      },
      new ByteLengthQueuingStrategy({ highWaterMark: bufferBytesMax }),
    );
    // A full buffer already has something for the client to read: no heartbeat is needed then.
    this.heartbeat = setInterval(() => {
      if (!this.isFull) this.push(encoder.encode(': heartbeat\n\n'));
    }, heartbeatMs);
    this.heartbeat.unref();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get isFull(): boolean {
    return (this.controller.desiredSize ?? 0) <= 0;
  }

  send(event: WatchEvent): void {
    this.push(encodeEvent(event));
  }

  /** Ends the stream with a final error event (after which an EventSource reconnects from its last id). */
  fail(code: string, message: string): void {
    if (this.closed) return;
    this.controller.enqueue(encodeEvent({ event: 'error', data: errorBody(code, message) }));
    this.controller.close();
    this.finish();
  }

  /** Drops the stream before its response was sent. */
  cancel(): void {
    this.finish();
  }

  onClose(handler: () => void): void {
    if (this.closed) handler();
    else this.closeHandlers.push(handler);
  }

  private push(bytes: Uint8Array): void {
    if (this.closed) return;
    // The pump pauses as soon as the buffer is full, so the queue exceeds bufferBytesMax by one event at most.
    this.controller.enqueue(bytes);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const handler of this.closeHandlers.splice(0)) {
      try {
        handler();
      } catch {
        // a close handler's failure must not keep the others from running
      }
    }
  }
}
