/**
 * The CLI's fetch over node:http (internal/cli/http-transport.ts): what StrataClient reads of an answer, network
 * failures shaped as fetch's, and cancellation before and after the answer's headers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeFetch } from '../../internal/cli/http-transport.js';
import { waitUntil } from '../helpers/wait.js';

let server: Server;
let url: string;
let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
const received: string[] = [];
const closed: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push(req.url ?? '');
    req.on('close', () => closed.push(req.url ?? ''));
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('nodeFetch', () => {
  it('sends the method, headers and body, and gives the status, headers and body back', async () => {
    handler = (req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'application/json', 'x-strata-version': '7', 'set-cookie': ['a=1', 'b=2'] });
        res.end(JSON.stringify({ method: req.method, auth: req.headers.authorization, body }));
      });
    };
    const res = await nodeFetch(`${url}/write?key=k`, { method: 'POST', headers: { authorization: 'Bearer t' }, body: '{"a":1}' });
    expect(res.status).toBe(201);
    expect(res.ok).toBe(true);
    expect(res.headers.get('X-Strata-Version')).toBe('7');
    expect(res.headers.get('set-cookie')).toBe('a=1, b=2');
    expect(res.headers.get('etag')).toBeNull();
    expect(await res.json()).toEqual({ method: 'POST', auth: 'Bearer t', body: '{"a":1}' });
  });

  it('reports a refused connection as fetch does: a TypeError whose cause names the failure', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const error = await nodeFetch(`http://127.0.0.1:${port}/health`).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(((error as TypeError).cause as NodeJS.ErrnoException).code).toBe('ECONNREFUSED');
  });

  it('rejects with the signal\'s reason and closes the connection when aborted before the answer', async () => {
    handler = () => undefined; // never answers
    const controller = new AbortController();
    const pending = nodeFetch(`${url}/slow`, { signal: controller.signal });
    await waitUntil('the server has the request', () => received.includes('/slow'));
    controller.abort(new Error('stopped by the caller'));
    await expect(pending).rejects.toThrow('stopped by the caller');
    await waitUntil('the connection is closed', () => closed.includes('/slow'));
  });

  it('ends the body stream when aborted after the headers', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: ready\n\n');
    };
    const controller = new AbortController();
    const res = await nodeFetch(`${url}/watch`, { signal: controller.signal });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('event: ready\n\n');
    controller.abort(new Error('idle'));
    await expect(reader.read()).rejects.toThrow();
    await waitUntil('the connection is closed', () => closed.includes('/watch'));
  });
});
