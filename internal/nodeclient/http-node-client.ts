/**
 * NodeClient over HTTP (storage-node protocol v1, internal/storagenode/protocol.ts), with one undici Pool of
 * keep-alive connections per node. Every call has a deadline: the client's default or the call's `timeoutMs`.
 *
 * Error mapping:
 * - an error answer from the node becomes a StrataError with the node's code (and its message, prefixed with the
 *   node id), except INTERNAL: a bug inside one node is that node failing the call, so it is NODE_UNAVAILABLE
 *   and the caller fails over instead of answering 500;
 * - refused, reset or timed-out connections, a closed client, and answers that do not follow the protocol are
 *   NODE_UNAVAILABLE, with a message naming the node and the cause;
 * - a call aborted through the caller's own `signal` rejects with that signal's reason.
 *
 * Load: at most `connectionsMax` requests are on the wire to one node at a time; undici queues the rest, each
 * still under its own deadline. Beyond `callsInFlightMax` calls (on the wire plus queued) a call fails at once
 * with NODE_UNAVAILABLE rather than queue without bound behind a slow node.
 *
 * TLS: an https:// node is verified with `ca` (or the system's CAs). With `requireTls`, an http:// address is
 * refused before anything is sent, so the cluster token never crosses the network in clear.
 */
import { createHash } from 'node:crypto';
import { Pool, type Dispatcher } from 'undici';
import type { BlobHeader, BlobInfo, StoreUsage } from '../blobstore/blob-store.js';
import { assert } from '../core/assert.js';
import { ERROR_STATUS, StrataError, type ErrorCode } from '../core/errors.js';
import { BLOB_ID_PATTERN, isValidBlobId } from '../core/ids.js';
import { LIMITS } from '../core/limits.js';
import { checksumMatches } from '../blobio/checksum.js';
import { REQUEST_ID_HEADER } from '../log/request-context.js';
import {
  NODE_API_PREFIX,
  NODE_ERROR_BODY_BYTES_MAX,
  NODE_HEADERS,
  NODE_SERVER_KEEP_ALIVE_MS,
  blobPath,
  descriptorHeaderValue,
  parseBlobInfo,
  parseStoreUsage,
  parseVerifyResult,
} from '../storagenode/protocol.js';
import type { CallOptions, NodeClient, NodeProbe } from './node-client.js';

export const NODE_CONNECTIONS_DEFAULT = 32;
export const NODE_CALL_TIMEOUT_MS_DEFAULT = 10_000;
export const NODE_CONNECT_TIMEOUT_MS_DEFAULT = 2_000;
/** Calls to one node on the wire or queued at most (16 per connection); beyond it a call fails fast. */
export const NODE_CALLS_IN_FLIGHT_MAX_DEFAULT = 512;
/** Far below the node's keep-alive (NODE_SERVER_KEEP_ALIVE_MS), so the client never reuses a socket the node is closing. */
export const NODE_KEEP_ALIVE_MS_DEFAULT = 4_000;
assert(NODE_KEEP_ALIVE_MS_DEFAULT * 10 <= NODE_SERVER_KEEP_ALIVE_MS, 'clients close idle node connections long before nodes do');
/**
 * A JSON answer (an inventory page of 1000 entries with 8 KiB of meta each is the largest) is read up to this.
 * Blob payloads are bounded by LIMITS.blobBytesMax exactly.
 */
export const NODE_ANSWER_BYTES_MAX = LIMITS.blobBytesMax + 1024 * 1024;

export interface HttpNodeClientOptions {
  nodeId: string;
  /** Base URL of the node, e.g. http://10.0.0.7:7000. */
  address: string;
  /** The cluster's shared token, sent as `Authorization: Bearer <token>`. */
  token: string;
  /** Connections kept to this node at most. */
  connectionsMax?: number;
  /** Deadline of a call, from its start to the last byte of the answer, unless the call sets `timeoutMs`. */
  timeoutMs?: number;
  connectTimeoutMs?: number;
  keepAliveMs?: number;
  /** Calls on the wire plus queued for a connection, at most; beyond it NODE_UNAVAILABLE at once. */
  callsInFlightMax?: number;
  /** PEM CA certificate(s) an https:// node's certificate must chain to; default: the system's CAs. */
  ca?: Buffer | string;
  /** Refuse to send anything to an http:// address (internal TLS is configured). */
  requireTls?: boolean;
  /**
   * The id of the request being served, if any (internal/log/request-context.ts): sent as `X-Request-Id` so that
   * the node's log lines carry the gateway's request id.
   */
  requestId?: () => string | undefined;
}

interface Call {
  /** Names the call in messages, e.g. "get abc.hot-0". */
  op: string;
  method: Dispatcher.HttpMethod;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

type Answer = { status: number; headers: Dispatcher.ResponseData['headers']; body: Buffer };

/** Marks an abort caused by the call's own deadline (as opposed to the caller's signal). */
class DeadlineExceeded extends Error {}

export class HttpNodeClient implements NodeClient {
  readonly nodeId: string;
  readonly address: string;
  private readonly pool: Pool;
  private readonly authorization: string;
  private readonly timeoutMs: number;
  private readonly callsInFlightMax: number;
  private readonly requestId: (() => string | undefined) | undefined;
  private inFlight = 0;
  /** Why every call is refused before sending (an http:// node while TLS is required); null = none. */
  private readonly refusal: string | null;

  constructor(options: HttpNodeClientOptions) {
    assert(typeof options.nodeId === 'string' && options.nodeId.length > 0, 'nodeId is non-empty');
    assert(typeof options.token === 'string' && options.token.length > 0, 'token is non-empty');
    const url = new URL(options.address);
    assert(url.protocol === 'http:' || url.protocol === 'https:', 'node address is an http(s) URL');
    this.timeoutMs = options.timeoutMs ?? NODE_CALL_TIMEOUT_MS_DEFAULT;
    assert(this.timeoutMs > 0, 'timeoutMs > 0');
    this.nodeId = options.nodeId;
    this.address = url.origin;
    this.authorization = `Bearer ${options.token}`;
    this.requestId = options.requestId;
    this.callsInFlightMax = options.callsInFlightMax ?? NODE_CALLS_IN_FLIGHT_MAX_DEFAULT;
    assert(this.callsInFlightMax >= 1, 'callsInFlightMax >= 1');
    this.refusal =
      options.requireTls === true && url.protocol === 'http:'
        ? `is at a plain http:// address but internal TLS is required (STRATA_TLS_CA): nothing is sent to it`
        : null;
    this.pool = new Pool(url.origin, {
      connections: options.connectionsMax ?? NODE_CONNECTIONS_DEFAULT,
      keepAliveTimeout: options.keepAliveMs ?? NODE_KEEP_ALIVE_MS_DEFAULT,
      connect: {
        timeout: options.connectTimeoutMs ?? Math.min(NODE_CONNECT_TIMEOUT_MS_DEFAULT, this.timeoutMs),
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
      },
    });
  }

  /** Calls on the wire or queued right now (for tests and diagnostics). */
  get callsInFlight(): number {
    return this.inFlight;
  }

  async put(header: BlobHeader, data: Buffer, options?: CallOptions): Promise<BlobInfo> {
    requireValidId(header.id);
    // Refused here rather than after pushing up to 64 MiB at a node that will refuse it.
    if (data.length > LIMITS.blobBytesMax) {
      throw new StrataError('BLOB_TOO_LARGE', `blob is ${data.length} bytes; blobBytesMax is ${LIMITS.blobBytesMax}`);
    }
    const answer = await this.call(
      {
        op: `put ${header.id}`,
        method: 'PUT',
        path: blobPath(header.id),
        headers: {
          'content-type': 'application/octet-stream',
          [NODE_HEADERS.key]: encodeField('key', header.key),
          [NODE_HEADERS.writeId]: encodeField('writeId', header.writeId),
          [NODE_HEADERS.part]: encodeField('part', header.part),
          [NODE_HEADERS.meta]: encodeField('meta', header.meta),
          // The node checks it, so bytes damaged on the way are refused instead of stored.
          [NODE_HEADERS.checksum]: createHash('sha256').update(data).digest('hex'),
          ...(header.format === 2 ? { [NODE_HEADERS.format]: '2' } : {}),
          ...(header.descriptor !== undefined ? { [NODE_HEADERS.descriptor]: descriptorHeaderValue(header.descriptor) } : {}),
        },
        body: data,
      },
      options,
      NODE_ERROR_BODY_BYTES_MAX,
    );
    return this.expectJson(answer, `put ${header.id}`, parseBlobInfo);
  }

  async get(id: string, options?: CallOptions): Promise<Buffer> {
    requireValidId(id);
    const answer = await this.call(
      { op: `get ${id}`, method: 'GET', path: blobPath(id) },
      options,
      LIMITS.blobBytesMax,
    );
    const expected = answer.headers[NODE_HEADERS.checksum];
    if (typeof expected !== 'string') throw this.protocolError(`get ${id}`, `no ${NODE_HEADERS.checksum} header`);
    const actual = createHash('sha256').update(answer.body).digest('hex');
    if (!checksumMatches(expected, actual)) {
      throw new StrataError(
        'BLOB_CORRUPT',
        `node ${this.nodeId}: blob ${id} arrived with sha256 ${actual}, not ${expected}`,
        { nodeId: this.nodeId },
      );
    }
    return answer.body;
  }

  async stat(id: string, options?: CallOptions): Promise<BlobInfo | null> {
    requireValidId(id);
    try {
      const answer = await this.call(
        { op: `stat ${id}`, method: 'GET', path: `${blobPath(id)}/info` },
        options,
        NODE_ANSWER_BYTES_MAX,
      );
      return this.expectJson(answer, `stat ${id}`, parseBlobInfo);
    } catch (err) {
      if (err instanceof StrataError && err.code === 'BLOB_NOT_FOUND') return null;
      throw err;
    }
  }

  async delete(id: string, options?: CallOptions): Promise<boolean> {
    requireValidId(id);
    const answer = await this.call(
      { op: `delete ${id}`, method: 'DELETE', path: blobPath(id) },
      options,
      NODE_ERROR_BODY_BYTES_MAX,
    );
    return this.expectJson(answer, `delete ${id}`, (v) => {
      const deleted = (v as { deleted?: unknown } | null)?.deleted;
      return typeof deleted === 'boolean' ? deleted : null;
    });
  }

  async list(after: string | null, limit: number, options?: CallOptions): Promise<BlobInfo[]> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after !== null) query.set('after', after);
    const answer = await this.call(
      { op: 'list', method: 'GET', path: `${NODE_API_PREFIX}/blobs?${query.toString()}` },
      options,
      NODE_ANSWER_BYTES_MAX,
    );
    return this.expectJson(answer, 'list', (v) => {
      const blobs = (v as { blobs?: unknown } | null)?.blobs;
      if (!Array.isArray(blobs)) return null;
      const infos = blobs.map(parseBlobInfo);
      return infos.every((info): info is BlobInfo => info !== null) ? infos : null;
    });
  }

  async verify(id: string, options?: CallOptions): Promise<'ok' | 'corrupt' | 'missing'> {
    requireValidId(id);
    const answer = await this.call(
      { op: `verify ${id}`, method: 'POST', path: `${blobPath(id)}/verify` },
      options,
      NODE_ERROR_BODY_BYTES_MAX,
    );
    return this.expectJson(answer, `verify ${id}`, parseVerifyResult);
  }

  async usage(options?: CallOptions): Promise<StoreUsage> {
    const answer = await this.call(
      { op: 'usage', method: 'GET', path: `${NODE_API_PREFIX}/usage` },
      options,
      NODE_ERROR_BODY_BYTES_MAX,
    );
    return this.expectJson(answer, 'usage', parseStoreUsage);
  }

  async ping(options?: CallOptions): Promise<boolean> {
    return (await this.probe(options)).up;
  }

  async probe(options?: CallOptions): Promise<NodeProbe> {
    try {
      const answer = await this.call(
        { op: 'ping', method: 'GET', path: `${NODE_API_PREFIX}/health` },
        options,
        NODE_ERROR_BODY_BYTES_MAX,
      );
      const body = JSON.parse(answer.body.toString('utf8')) as { status?: unknown; writable?: unknown; reason?: unknown } | null;
      // A node of an earlier release reports no capacity: it is taken as writable, as before.
      return {
        up: body?.status === 'healthy',
        writable: body?.writable !== false,
        reason: typeof body?.reason === 'string' ? body.reason : null,
      };
    } catch {
      return { up: false, writable: false, reason: null };
    }
  }

  /** Waits for calls in flight, then closes every connection; later calls fail with NODE_UNAVAILABLE. */
  async close(): Promise<void> {
    if (!this.pool.closed) await this.pool.close();
  }

  /**
   * Sends one request and reads the whole answer, at most `bytesMax` bytes of body, before the deadline.
   * Resolves only for 2xx; any other status throws the error the body describes.
   */
  private async call(call: Call, options: CallOptions | undefined, bytesMax: number): Promise<Answer> {
    const timeoutMs = options?.timeoutMs ?? this.timeoutMs;
    const callerSignal = options?.signal;
    if (callerSignal?.aborted === true) throw callerSignal.reason;
    if (this.refusal !== null) throw this.unavailable(this.refusal);
    if (this.inFlight >= this.callsInFlightMax) {
      throw this.unavailable(`has ${this.inFlight} calls in flight from this process (callsInFlightMax); ${call.op} was not sent`);
    }
    this.inFlight++;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new DeadlineExceeded()), timeoutMs);
    const onCallerAbort = (): void => controller.abort(callerSignal?.reason);
    callerSignal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      const requestId = this.requestId?.();
      const response = await this.pool.request({
        method: call.method,
        path: call.path,
        headers: {
          authorization: this.authorization,
          ...(requestId !== undefined ? { [REQUEST_ID_HEADER]: requestId } : {}),
          ...call.headers,
        },
        body: call.body ?? null,
        signal: controller.signal,
        // The deadline above bounds the call; undici's own timers must not cut a longer per-call deadline short.
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const ok = response.statusCode >= 200 && response.statusCode < 300;
      const body = await readBounded(response, ok ? bytesMax : NODE_ERROR_BODY_BYTES_MAX);
      if (body === null) {
        throw this.protocolError(call.op, `answered with more than ${ok ? bytesMax : NODE_ERROR_BODY_BYTES_MAX} bytes`);
      }
      if (!ok) throw this.errorFromAnswer(call.op, response.statusCode, body);
      return { status: response.statusCode, headers: response.headers, body };
    } catch (err) {
      if (err instanceof StrataError) throw err;
      // Re-read: the signal may have fired since the check at the top (TypeScript's narrowing says otherwise).
      if ((callerSignal as AbortSignal | undefined)?.aborted === true) throw callerSignal?.reason;
      if (controller.signal.reason instanceof DeadlineExceeded) {
        throw this.unavailable(`did not answer ${call.op} within ${timeoutMs} ms`);
      }
      // undici's InvalidArgumentError is our bug, not the node's state.
      if (errorCode(err) === 'UND_ERR_INVALID_ARG') throw err;
      throw this.unavailable(`failed ${call.op}: ${describe(err)}`);
    } finally {
      this.inFlight--;
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onCallerAbort);
    }
  }

  private expectJson<T>(answer: Answer, op: string, parse: (value: unknown) => T | null): T {
    let value: unknown;
    try {
      value = JSON.parse(answer.body.toString('utf8'));
    } catch {
      throw this.protocolError(op, 'answered with a body that is not JSON');
    }
    const parsed = parse(value);
    if (parsed === null) throw this.protocolError(op, 'answered with JSON of the wrong shape');
    return parsed;
  }

  private errorFromAnswer(op: string, status: number, body: Buffer): StrataError {
    let code: unknown;
    let message: unknown;
    try {
      const error = (JSON.parse(body.toString('utf8')) as { error?: { code?: unknown; message?: unknown } }).error;
      code = error?.code;
      message = error?.message;
    } catch {
      // Not a Strata error body: handled below as a protocol violation.
    }
    const details = { nodeId: this.nodeId, status, nodeCode: code };
    if (typeof code !== 'string' || !Object.hasOwn(ERROR_STATUS, code)) {
      return this.protocolError(op, `answered HTTP ${status} without a Strata error body`);
    }
    const text = typeof message === 'string' ? message : code;
    if (code === 'INTERNAL') return this.unavailable(`failed ${op} internally: ${text}`, details);
    return new StrataError(code as ErrorCode, `node ${this.nodeId}: ${text}`, details);
  }

  private protocolError(op: string, what: string): StrataError {
    return this.unavailable(`${what} to ${op}`);
  }

  private unavailable(what: string, details?: Record<string, unknown>): StrataError {
    const message = `node ${this.nodeId} (${this.address}) ${what}`;
    return new StrataError('NODE_UNAVAILABLE', message, details ?? { nodeId: this.nodeId });
  }
}

/** The whole body, or null (and the body destroyed) once it passes `bytesMax`. */
async function readBounded(response: Dispatcher.ResponseData, bytesMax: number): Promise<Buffer | null> {
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > bytesMax) {
    response.body.destroy();
    return null;
  }
  // With a declared length, bytes go straight into one buffer of that size: no second copy of a 64 MiB blob.
  const target = Number.isSafeInteger(declared) && declared >= 0 ? Buffer.allocUnsafeSlow(declared) : null;
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    if (received + chunk.length > (target?.length ?? bytesMax)) {
      response.body.destroy();
      return null;
    }
    if (target !== null) chunk.copy(target, received);
    else chunks.push(chunk);
    received += chunk.length;
  }
  if (target !== null) return received === target.length ? target : target.subarray(0, received);
  return Buffer.concat(chunks, received);
}

/** Percent-encoded UTF-8 for a header value; a string that is not valid UTF-16 has no UTF-8 form. */
function encodeField(name: string, value: string): string {
  if (typeof value !== 'string') throw new StrataError('INVALID_REQUEST', `header.${name} is not a string`);
  try {
    return encodeURIComponent(value);
  } catch {
    throw new StrataError('INVALID_REQUEST', `header.${name} contains a lone surrogate and cannot be sent as UTF-8`);
  }
}

function requireValidId(id: string): void {
  if (typeof id !== 'string' || !isValidBlobId(id)) {
    const shown = typeof id === 'string' ? JSON.stringify(id.slice(0, 140)) : typeof id;
    throw new StrataError(
      'INVALID_REQUEST',
      `blob id ${shown} is invalid: it must match ${BLOB_ID_PATTERN.source} and not contain ".."`,
    );
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** "ECONNREFUSED: connect ECONNREFUSED 127.0.0.1:1234", following `cause` for the root code. */
function describe(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  const cause = err instanceof Error ? (err as Error & { cause?: unknown }).cause : undefined;
  const code = errorCode(err) ?? errorCode(cause);
  const causeMessage = cause instanceof Error && cause.message !== message ? ` (${cause.message})` : '';
  return `${code ?? 'error'}: ${message}${causeMessage}`;
}
