/**
 * The storage node's HTTP API (protocol v1, see README.md in this folder): a thin layer that authenticates,
 * checks its input, and calls the BlobStore. Errors are always `{"error":{"code","message"}}` with the status
 * from ERROR_STATUS; bad input is a 4xx, never a 500.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Hono, type Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { BlobHeader, BlobStore } from '../blobstore/blob-store.js';
import { assert } from '../core/assert.js';
import { StrataError, errorStatus, type ErrorCode } from '../core/errors.js';
import { BLOB_ID_PATTERN, isValidBlobId } from '../core/ids.js';
import { LIMITS } from '../core/limits.js';
import { silentLogger, type Logger } from '../log/logger.js';
import { instrumentNodeApp } from '../metrics/http-metrics.js';
import type { NodeInstruments } from '../metrics/node-metrics.js';
import type { CapacityStatus } from '../reserve/disk-reserve.js';
import { NODE_API_PREFIX, NODE_HEADERS, parseDescriptorHeader, wireBlobInfo, type ListAnswer } from './protocol.js';

export interface StorageNodeAppOptions {
  store: BlobStore;
  /** The cluster's shared secret; every request must carry `Authorization: Bearer <token>`. */
  token: string;
  nodeId: string;
  /** Told about every 500 (a bug in the node). Defaults to console.error. */
  onInternalError?: (err: unknown) => void;
  /** Request lines (debug level, with the caller's X-Request-Id) and 500s go here; silent by default. */
  log?: Logger;
  /** Request metrics and `GET /metrics`; no /metrics route without them. */
  metrics?: NodeInstruments;
  /** The node's capacity report for GET /v1/health: whether it takes new blobs, and why not (internal/reserve). */
  capacity?: () => CapacityStatus;
}

const SHA256_HEX_PATTERN = /^[0-9a-f]{64}$/;

export function createStorageNodeApp(options: StorageNodeAppOptions): Hono {
  const { store, nodeId } = options;
  assert(typeof options.token === 'string' && options.token.length > 0, 'storage node token is non-empty');
  const onInternalError = options.onInternalError ?? ((err: unknown) => console.error('storage node:', err));
  // Compare digests, not the strings: equal lengths for timingSafeEqual, and nothing leaks the token's length.
  const tokenDigest = sha256(options.token);

  const app = new Hono();

  app.onError((err, c) => {
    if (err instanceof StrataError) return errorResponse(c, err.code, err.message);
    // A malformed percent-escape in the path reaches us as a URIError from decoding the route parameter.
    if (err instanceof URIError) {
      return errorResponse(c, 'INVALID_REQUEST', `malformed percent-encoding: ${err.message}`);
    }
    onInternalError(err);
    return errorResponse(c, 'INTERNAL', 'internal error in the storage node');
  });
  app.notFound((c) => errorResponse(c, 'ROUTE_NOT_FOUND', `no route ${c.req.method} ${c.req.path}`));

  // Before the token check: every request is measured and logged, and /metrics is served without the token.
  instrumentNodeApp(app, options.log ?? silentLogger, options.metrics);

  app.use('*', async (c, next) => {
    const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(c.req.header('authorization') ?? '');
    if (match === null || !timingSafeEqual(sha256(match[1] as string), tokenDigest)) {
      c.header('www-authenticate', 'Bearer');
      throw new StrataError('UNAUTHORIZED', 'missing or wrong bearer token');
    }
    await next();
  });

  // The capacity report: a full node stays healthy (it serves reads and deletes) but takes no new blobs.
  app.get(`${NODE_API_PREFIX}/health`, (c) => {
    const capacity = options.capacity?.() ?? { writable: true, reason: null };
    return c.json({ status: 'healthy', node: nodeId, writable: capacity.writable, reason: capacity.reason });
  });

  app.get(`${NODE_API_PREFIX}/usage`, async (c) => c.json(await store.usage()));

  app.get(`${NODE_API_PREFIX}/blobs`, async (c) => {
    const after = c.req.query('after') || null;
    const limit = parseLimit(c.req.query('limit'));
    const blobs = await store.list(after, limit);
    const last = blobs[blobs.length - 1];
    // Peek one past a full page so that `next` is null exactly when the inventory is exhausted.
    const more = last !== undefined && blobs.length === limit && (await store.list(last.id, 1)).length > 0;
    const answer: ListAnswer = { blobs: blobs.map(wireBlobInfo), next: more ? last.id : null };
    return c.json(answer);
  });

  app.put(`${NODE_API_PREFIX}/blobs/:id`, async (c) => {
    const id = blobIdParam(c);
    const header: BlobHeader = {
      id,
      key: decodedHeader(c, NODE_HEADERS.key, true),
      writeId: decodedHeader(c, NODE_HEADERS.writeId, true),
      part: decodedHeader(c, NODE_HEADERS.part, true),
      meta: decodedHeader(c, NODE_HEADERS.meta, false),
    };
    const format = c.req.header(NODE_HEADERS.format);
    if (format !== undefined) {
      if (format !== '2') throw new StrataError('INVALID_HEADER', `${NODE_HEADERS.format} must be 2 when given, got "${format.slice(0, 20)}"`);
      header.format = 2;
      const descriptor = c.req.header(NODE_HEADERS.descriptor);
      if (descriptor !== undefined) {
        const parsed = parseDescriptorHeader(descriptor);
        if (parsed === null) {
          throw new StrataError('INVALID_HEADER', `${NODE_HEADERS.descriptor} must be whole:<base64url> or fragment:<base64url> of at most 255 bytes`);
        }
        header.descriptor = parsed;
      }
    }
    const expectedChecksum = c.req.header(NODE_HEADERS.checksum);
    if (expectedChecksum !== undefined && !SHA256_HEX_PATTERN.test(expectedChecksum)) {
      throw new StrataError('INVALID_HEADER', `${NODE_HEADERS.checksum} is not lowercase sha256 hex`);
    }
    const data = await readBodyBounded(c.req.raw, LIMITS.blobBytesMax);
    if (expectedChecksum !== undefined) {
      const actual = createHash('sha256').update(data).digest('hex');
      if (actual !== expectedChecksum) {
        throw new StrataError(
          'INVALID_REQUEST',
          `body sha256 ${actual} != ${NODE_HEADERS.checksum} ${expectedChecksum}: damaged in transit`,
        );
      }
    }
    return c.json(wireBlobInfo(await store.put(header, data)), 201);
  });

  // Hono answers HEAD with the GET route (body dropped), so HEAD is told apart here: metadata, no payload read.
  app.get(`${NODE_API_PREFIX}/blobs/:id`, async (c) => {
    const id = blobIdParam(c);
    if (c.req.method === 'HEAD') {
      const info = await store.stat(id);
      if (info === null) return c.body(null, 404);
      return c.body(null, 200, {
        [NODE_HEADERS.checksum]: info.checksum,
        [NODE_HEADERS.size]: String(info.size),
      });
    }
    const { info, data } = await store.get(id);
    // A store's Buffer never sits on a SharedArrayBuffer; the cast only narrows the type.
    return c.body(new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.length), 200, {
      'content-type': 'application/octet-stream',
      [NODE_HEADERS.checksum]: info.checksum,
      [NODE_HEADERS.size]: String(info.size),
    });
  });

  app.get(`${NODE_API_PREFIX}/blobs/:id/info`, async (c) => {
    const info = await store.stat(blobIdParam(c));
    if (info === null) throw new StrataError('BLOB_NOT_FOUND', `blob ${c.req.param('id')} not found`);
    return c.json(wireBlobInfo(info));
  });

  app.delete(`${NODE_API_PREFIX}/blobs/:id`, async (c) => c.json({ deleted: await store.delete(blobIdParam(c)) }));

  app.post(`${NODE_API_PREFIX}/blobs/:id/verify`, async (c) => c.json({ result: await store.verify(blobIdParam(c)) }));

  // Known paths with a method they do not support: 405 rather than 404.
  for (const route of ['/health', '/usage', '/blobs', '/blobs/:id', '/blobs/:id/info', '/blobs/:id/verify']) {
    app.all(`${NODE_API_PREFIX}${route}`, (c) =>
      errorResponse(c, 'METHOD_NOT_ALLOWED', `${c.req.method} is not allowed on ${c.req.path}`),
    );
  }

  return app;
}

function errorResponse(c: Context, code: ErrorCode, message: string): Response {
  return c.json({ error: { code, message } }, errorStatus(code) as ContentfulStatusCode);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function blobIdParam(c: Context): string {
  const id = c.req.param('id') ?? '';
  if (!isValidBlobId(id)) {
    throw new StrataError(
      'INVALID_REQUEST',
      `blob id ${JSON.stringify(id.slice(0, 140))} is invalid: ` +
        `it must match ${BLOB_ID_PATTERN.source} and not contain ".."`,
    );
  }
  return id;
}

function parseLimit(text: string | undefined): number {
  if (text === undefined || text === '') return LIMITS.inventoryPageMax;
  const limit = /^\d{1,7}$/.test(text) ? Number(text) : NaN;
  if (!(limit >= 1 && limit <= LIMITS.inventoryPageMax)) {
    throw new StrataError(
      'INVALID_LIMIT',
      `limit ${JSON.stringify(text)} is not an integer in [1, ${LIMITS.inventoryPageMax}]`,
    );
  }
  return limit;
}

function decodedHeader(c: Context, name: string, required: boolean): string {
  const raw = c.req.header(name);
  if (raw === undefined) {
    if (required) throw new StrataError('INVALID_HEADER', `header ${name} is required`);
    return '';
  }
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new StrataError('INVALID_HEADER', `header ${name} is not valid percent-encoded UTF-8`);
  }
}

/**
 * The request body, refusing more than `bytesMax` bytes: a declared Content-Length beyond it is refused before a
 * byte is read, and a chunked body is cut off as soon as it passes it.
 */
async function readBodyBounded(request: Request, bytesMax: number): Promise<Buffer> {
  const declared = request.headers.get('content-length');
  let expected: number | null = null;
  if (declared !== null) {
    if (!/^\d{1,16}$/.test(declared)) throw new StrataError('INVALID_HEADER', 'content-length is not a byte count');
    expected = Number(declared);
    if (expected > bytesMax) {
      throw new StrataError('BLOB_TOO_LARGE', `blob is ${expected} bytes; blobBytesMax is ${bytesMax}`);
    }
  }
  if (request.body === null) return Buffer.alloc(0);
  const chunks: Uint8Array[] = [];
  let received = 0;
  const reader = request.body.getReader();
  let finished = false;
  try {
    for (;;) {
      let step: Awaited<ReturnType<typeof reader.read>>;
      try {
        step = await reader.read();
      } catch (err) {
        throw new StrataError('INVALID_REQUEST', `request body was cut off: ${(err as Error).message}`);
      }
      if (step.done) {
        finished = true;
        break;
      }
      received += step.value.length;
      if (received > bytesMax) {
        throw new StrataError('BLOB_TOO_LARGE', `blob is more than blobBytesMax ${bytesMax} bytes`);
      }
      chunks.push(step.value);
    }
  } finally {
    // Stop the upload we refused rather than buffer the rest of it.
    if (!finished) await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
  if (expected !== null && received !== expected) {
    throw new StrataError('INVALID_REQUEST', `body is ${received} bytes; content-length said ${expected}`);
  }
  return Buffer.concat(chunks, received);
}
