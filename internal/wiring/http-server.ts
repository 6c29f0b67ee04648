/**
 * Serving a hono app on node:http with the protections every Strata listener needs: bounded headers (431),
 * a request deadline (408) and JSON bodies for the errors Node answers itself.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { RequestError, getRequestListener } from '@hono/node-server';
import type { Hono } from 'hono';
import { LIMITS } from '../core/limits.js';

export interface HttpServerHandle {
  server: Server;
  port: number;
  address: string;
  close(): Promise<void>;
}

/** A request must arrive whole (headers and body) within this time. */
export const REQUEST_TIMEOUT_MS = 120_000;
export const HEADERS_TIMEOUT_MS = 30_000;

function jsonError(status: number, reason: string, code: string, message: string): string {
  const body = JSON.stringify({ error: { code, message } });
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

export async function serveApp(app: Hono, host: string, port: number): Promise<HttpServerHandle> {
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
  const server = createServer(
    {
      maxHeaderSize: LIMITS.headerBytesMax,
      requestTimeout: REQUEST_TIMEOUT_MS,
      headersTimeout: HEADERS_TIMEOUT_MS,
      keepAliveTimeout: 65_000,
      // Node itself answers an HTTP/1.1 request without Host with an empty 400; let it through to the adapter,
      // which refuses it with the JSON INVALID_REQUEST above like every other malformed request. (nginx passes an
      // HTTP/1.0 request without Host on as HTTP/1.1 without Host.)
      requireHostHeader: false,
    },
    listener,
  );
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable) return socket.destroy();
    if (error.code === 'HPE_HEADER_OVERFLOW') {
      socket.end(jsonError(431, 'Request Header Fields Too Large', 'HEADERS_TOO_LARGE', `the request headers exceed ${LIMITS.headerBytesMax} bytes`));
    } else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      socket.end(jsonError(408, 'Request Timeout', 'REQUEST_TIMEOUT', 'the request was not received in time'));
    } else {
      socket.end(jsonError(400, 'Bad Request', 'INVALID_REQUEST', `the request is not valid HTTP/1.1: ${error.code ?? error.message}`));
    }
  });
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
    address: `http://${host.includes(':') ? `[${host}]` : host}:${actual}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // Give in-flight requests a moment, then cut what is left.
        setTimeout(() => {
          for (const s of sockets) s.destroy();
        }, 2000).unref();
      }),
  };
}
