/**
 * The CLI's HTTP transport: the part of `fetch` that StrataClient uses, over node:http(s). A command makes one or a
 * few requests and exits, and loading the global fetch (undici, with its streams and compression) was the largest
 * single cost of a `strata get`: about 70 ms of CPU of some 200. Each request has its own connection (no agent), so
 * nothing keeps the process alive after the command ends.
 */
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';

// Required, not imported: importing node:http as an ES module reads every export, and one of them (its WebSocket)
// loads undici, which is what this transport exists to avoid.
const require = createRequire(import.meta.url);
const { request: httpRequest } = require('node:http') as typeof import('node:http');

/** What StrataClient reads of a response. */
class NodeResponse {
  readonly ok: boolean;
  readonly status: number;
  readonly headers: { get(name: string): string | null };
  private stream: ReadableStream<Uint8Array> | null = null;

  constructor(private readonly message: IncomingMessage) {
    this.status = message.statusCode ?? 0;
    this.ok = this.status >= 200 && this.status < 300;
    this.headers = {
      get: (name) => {
        const value = message.headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
      },
    };
  }

  /** A web stream of the body, made when asked for (the change feed reads it as one). */
  get body(): ReadableStream<Uint8Array> {
    this.stream ??= Readable.toWeb(this.message) as ReadableStream<Uint8Array>;
    return this.stream;
  }

  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of this.message) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }
}

/** `fetch` for StrataClient: method, headers, a string body and an abort signal; rejects as fetch does. */
export function nodeFetch(input: string | URL | Request, init: RequestInit = {}): Promise<Response> {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  const send = url.protocol === 'https:' ? (require('node:https') as typeof import('node:https')).request : httpRequest;
  const signal = init.signal ?? undefined;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const req = send(url, { method: init.method ?? 'GET', headers: init.headers as Record<string, string>, agent: false }, (message) => {
      signal?.removeEventListener('abort', onAbort);
      // An abort after the headers (the change feed's idle timeout, the caller stopping) ends the body stream.
      signal?.addEventListener('abort', () => message.destroy(signal.reason as Error), { once: true });
      resolve(new NodeResponse(message) as unknown as Response);
    });
    const onAbort = (): void => {
      req.destroy();
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    req.on('error', (error) => {
      signal?.removeEventListener('abort', onAbort);
      // Shaped as fetch's network failure: a TypeError whose cause says what happened.
      reject(new TypeError('fetch failed', { cause: error }));
    });
    if (typeof init.body === 'string') req.end(init.body);
    else req.end();
  });
}
