/**
 * Serving a hono app on node:http with the protections every Strata listener needs: bounded headers (431),
 * a request deadline (408) and JSON bodies for the errors Node answers itself, including 405 for the methods it
 * never passes on (CONNECT, and methods its parser does not know).
 */
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { RequestError, getRequestListener } from '@hono/node-server';
import type { Hono } from 'hono';
import { closeServer } from '../core/close-server.js';
import { rawJsonError, refuseConnect } from '../core/http-refusals.js';
import { LIMITS } from '../core/limits.js';
import type { ServerTls } from './tls.js';

export interface HttpServerHandle {
  server: Server;
  port: number;
  address: string;
  /**
   * Stops accepting and lets requests in flight finish for up to `graceMs` (default CLOSE_GRACE_MS_DEFAULT), then
   * cuts the rest. Resolves false when some had to be cut.
   */
  close(graceMs?: number): Promise<boolean>;
}

/** How long close() lets requests in flight finish when the caller names no grace period (tests, all-in-one). */
export const CLOSE_GRACE_MS_DEFAULT = 2000;

/** A request must arrive whole (headers and body) within this time. */
export const REQUEST_TIMEOUT_MS = 120_000;
export const HEADERS_TIMEOUT_MS = 30_000;

const jsonError = rawJsonError;

/** Every method the gateway's routes take: the Allow of a 405 that node:http answers before any route is known. */
export const SERVED_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';

/**
 * The method of a request line node:http's parser refused as an unknown method (HPE_INVALID_METHOD), when it is a
 * well-formed method token (RFC 9110 5.6.2) followed by a space: a method this server does not implement, not
 * garbage. Null otherwise.
 */
export function unknownMethodOf(rawPacket: Buffer | undefined): string | null {
  if (rawPacket === undefined) return null;
  const match = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}) /.exec(rawPacket.subarray(0, 80).toString('latin1'));
  return match === null ? null : match[1]!;
}

/**
 * A connection with no progress either way for this long is closed, unless the caller names its own: a client that
 * stopped reading would otherwise keep its response in memory for as long as it keeps the connection open.
 */
export const SOCKET_IDLE_TIMEOUT_MS_DEFAULT = 60_000;

export interface ServeOptions {
  tls?: ServerTls | null;
  socketIdleTimeoutMs?: number;
}

/** With `tls`, the app is served over HTTPS only: a plaintext client fails its handshake and is disconnected. */
export async function serveApp(app: Hono, host: string, port: number, options: ServeOptions = {}): Promise<HttpServerHandle> {
  const tls = options.tls ?? null;
  // Requests the adapter cannot even turn into a Request (a backslash in the path, a bad Host header) are the
  // client's error; they get the same JSON error shape as everything else instead of an empty 400.
  const listener = getRequestListener(app.fetch, {
    errorHandler: (error) => {
      const badRequest = error instanceof RequestError;
      const body = badRequest
        ? { error: { code: 'INVALID_REQUEST', message: `the request is malformed: ${(error as Error).message}` } }
        : { error: { code: 'INTERNAL', message: 'an internal error occurred' } };
      return new Response(JSON.stringify(body), { status: badRequest ? 400 : 500, headers: { 'content-type': 'application/json' } });
    },
  });
  const serverOptions = {
    maxHeaderSize: LIMITS.headerBytesMax,
    requestTimeout: REQUEST_TIMEOUT_MS,
    headersTimeout: HEADERS_TIMEOUT_MS,
    keepAliveTimeout: 65_000,
    // Node itself answers an HTTP/1.1 request without Host with an empty 400; let it through to the adapter,
    // which refuses it with the JSON INVALID_REQUEST above like every other malformed request. (nginx passes an
    // HTTP/1.0 request without Host on as HTTP/1.1 without Host.)
    requireHostHeader: false,
  };
  const server: Server =
    tls === null ? createServer(serverOptions, listener) : createHttpsServer({ ...serverOptions, cert: tls.cert, key: tls.key }, listener);
  // Without a 'timeout' listener node:http destroys the socket, which closes the response and frees what it held.
  server.setTimeout(options.socketIdleTimeoutMs ?? SOCKET_IDLE_TIMEOUT_MS_DEFAULT);
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    if (error.code === 'HPE_HEADER_OVERFLOW') {
      socket.end(jsonError(431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', `the request headers exceed ${LIMITS.headerBytesMax} bytes`));
    } else if (error.code === 'HPE_INVALID_METHOD' && unknownMethodOf((error as { rawPacket?: Buffer }).rawPacket) !== null) {
      const method = unknownMethodOf((error as { rawPacket?: Buffer }).rawPacket)!;
      socket.end(jsonError(405, 'Method Not Allowed', 'METHOD_NOT_ALLOWED', `${method} is not a method this server takes; use ${SERVED_METHODS}`, { Allow: SERVED_METHODS }));
    } else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.end(jsonError(408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request was not received in time'));
    } else {
      socket.end(jsonError(400, 'Bad Request', 'INVALID_REQUEST', `the request is not valid HTTP/1.1: ${error.code ?? error.message}`));
    }
  });
  refuseConnect(server, SERVED_METHODS);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    port: actual,
    address: `${tls === null ? 'http' : 'https'}://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    close: async (graceMs = CLOSE_GRACE_MS_DEFAULT) => {
      const finished = await closeServer(server, graceMs);
      // Upgraded or half-open sockets node:http no longer tracks as connections.
      for (const s of sockets) s.destroy();
      return finished;
    },
  };
}
