/**
 * Answers for requests node:http never hands to a request listener, in the error shape of every Strata API
 * (`{"error":{"code","message"}}`), written straight to the socket. Shared by the gateway's and the storage
 * nodes' listeners.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * How long a refused CONNECT's socket stays open after its answer was written, for the client to read it and close
 * its side. Past that it is destroyed: such a socket is no longer an HTTP connection, so neither the server's idle
 * timeouts nor a graceful close would ever reach it.
 */
export const REFUSED_SOCKET_LINGER_MS = 5_000;

/** A complete HTTP/1.1 response carrying the error body, after which the connection closes. */
export function rawJsonError(status: number, reason: string, code: string, message: string, headers: Record<string, string> = {}): string {
  const body = JSON.stringify({ error: { code, message } });
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return (
    `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `${extra}Connection: close\r\n\r\n${body}`
  );
}

/**
 * CONNECT asks a proxy for a tunnel. node:http emits 'connect' for it instead of a request, and destroys the socket
 * when nothing listens, so the client sees a connection reset where every other method it cannot use gets a 405.
 * This answers it with 405 METHOD_NOT_ALLOWED, `allow` naming the methods the server's routes take.
 */
export function refuseConnect(server: Server, allow: string): void {
  server.on('connect', (request: IncomingMessage, socket: Duplex) => {
    // node:http has handed the socket over with none of its own listeners: an error here must not reach the process.
    socket.on('error', () => socket.destroy());
    // Drain what the client sends meanwhile, so that no unread bytes turn the close into a reset that drops the answer.
    socket.resume();
    const target = JSON.stringify(String(request.url ?? '').slice(0, 100));
    const message = `CONNECT ${target} is not supported: this server is not a proxy; use ${allow}`;
    socket.end(rawJsonError(405, 'Method Not Allowed', 'METHOD_NOT_ALLOWED', message, { Allow: allow }));
    const linger = setTimeout(() => socket.destroy(), REFUSED_SOCKET_LINGER_MS);
    linger.unref();
    socket.once('close', () => clearTimeout(linger));
  });
}
