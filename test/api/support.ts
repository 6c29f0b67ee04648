/**
 * Shared helpers for the API suite (test/api/*.test.ts). Every request goes through `ApiClient`, which
 * fails the test on any 5xx: api.md says a 500 is a bug and bad input never produces one, and the 503s of a
 * healthy cluster would be bugs too. The few routes where a 503 is the documented answer (GET /health/ready
 * with nodes down) opt out per request with `allow5xx`.
 *
 * Where the requests go (`apiTarget`): by default an in-process cluster per file (test/helpers/cluster.ts). When
 * STRATA_TEST_TARGET_URL is set, every file sends its requests to that base URL instead and has nothing but HTTP
 * (`internals` is null; tests that need the in-process cluster skip themselves through `internalsOrSkip`). That is
 * how test/cluster/api-through-nginx.test.ts runs the suite, unchanged, against the local cluster through nginx.
 * A file that asks for a configuration of its own (`startApi({ env })`) needs a gateway configured so: when
 * STRATA_TEST_TARGET_GATEWAY_ENV holds the environment of a gateway of the target cluster (JSON, without
 * STRATA_PORT), such a file gets one more gateway with its variables added, behind an nginx of its own, on the same
 * etcd, Kafka and storage nodes; without it, the file fails with a message saying so.
 */
import http from 'node:http';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { expect, type TestContext } from 'vitest';
import { startExtraGateway } from '../../scripts/local-cluster.js';
import { startTestCluster, type TestCluster, type TestClusterOptions } from '../helpers/cluster.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

/** The base URL of an external cluster to run the API suite against (see the header). */
export const TARGET_URL_VAR = 'STRATA_TEST_TARGET_URL';
/** JSON: the environment of one more gateway of that cluster, without STRATA_PORT (see the header). */
export const TARGET_GATEWAY_ENV_VAR = 'STRATA_TEST_TARGET_GATEWAY_ENV';

/** What a test file talks to: an in-process cluster, or an external one reached over HTTP only. */
export interface ApiTarget {
  /** The base URL every request goes to. */
  url: string;
  /** The in-process cluster (its nodes, pool, healer, stores), or null when the target is external. */
  internals: TestCluster | null;
  fetch(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  /** POST /write with a JSON body (object or raw text). */
  write(key: string, body: unknown, query?: string, headers?: Record<string, string>): Promise<Response>;
  read(key: string, query?: string, headers?: Record<string, string>): Promise<Response>;
  /** Stops what this target started (the in-process cluster, or a gateway started for this file's configuration). */
  destroy(): Promise<void>;
}

/** The external base URL when one is configured, else null (the default: in-process clusters). */
export function externalTargetUrl(): string | null {
  const url = process.env[TARGET_URL_VAR];
  return url === undefined || url === '' ? null : url.replace(/\/$/, '');
}

/**
 * The target of one test file: an in-process cluster started with `options`, or the external one. An external
 * target honours `env` only (see the header); hooks, clocks, overrides and data directories are in-process
 * concepts, and asking for them there is an error rather than a silently different test.
 */
export async function apiTarget(options: TestClusterOptions = {}): Promise<ApiTarget> {
  const external = externalTargetUrl();
  if (external === null) {
    const cluster = await startTestCluster(options);
    return { url: cluster.url, internals: cluster, fetch: cluster.fetch, write: cluster.write, read: cluster.read, destroy: () => cluster.destroy() };
  }
  const inProcessOnly = (['hooks', 'clock', 'overrides', 'dataDir'] as const).filter((name) => options[name] !== undefined);
  if (inProcessOnly.length > 0) {
    throw new Error(`this test file needs an in-process cluster (${inProcessOnly.join(', ')}); it cannot run against ${TARGET_URL_VAR}=${external}`);
  }
  const env = options.env ?? {};
  if (Object.keys(env).length === 0) return httpTarget(external, async () => undefined);
  const raw = process.env[TARGET_GATEWAY_ENV_VAR];
  if (raw === undefined || raw === '') {
    throw new Error(
      `this test file needs a gateway configured with ${Object.keys(env).join(', ')}; against ${TARGET_URL_VAR}=${external} ` +
        `that takes ${TARGET_GATEWAY_ENV_VAR} (the environment of a gateway of that cluster, as JSON)`,
    );
  }
  const gatewayEnv = JSON.parse(raw) as Record<string, string>;
  const dataDir = gatewayEnv['STRATA_DATA_DIR'];
  if (dataDir === undefined) throw new Error(`${TARGET_GATEWAY_ENV_VAR} must include STRATA_DATA_DIR (logs go there)`);
  const logDir = path.join(dataDir, 'logs');
  await mkdir(logDir, { recursive: true });
  const gateway = await startExtraGateway({ env: { ...gatewayEnv, ...env }, logDir });
  return httpTarget(gateway.url, () => gateway.stop());
}

function httpTarget(url: string, destroy: () => Promise<void>): ApiTarget {
  const doFetch = (p: string, init?: RequestInit): Promise<Response> => fetch(`${url}${p}`, init);
  return {
    url,
    internals: null,
    fetch: doFetch,
    write: (key, body, query = '', headers = {}) =>
      doFetch(`/write?key=${encodeURIComponent(key)}${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    read: (key, query = '', headers = {}) => doFetch(`/read/${encodeURIComponent(key)}${query}`, { headers }),
    destroy,
  };
}

/**
 * The in-process cluster behind `api`; when the target is external, skips the running test, saying what it needs
 * that HTTP alone cannot give.
 */
export function internalsOrSkip(api: ApiClient, context: TestContext, needs: string): TestCluster {
  const internals = api.cluster.internals;
  if (internals === null) return context.skip(`needs the in-process cluster (${needs}); ${TARGET_URL_VAR} points at an external one`);
  return internals;
}

export interface ApiRequestInit extends RequestInit {
  /** The documented 503 of /health/ready; nothing else should set it. */
  allow5xx?: boolean;
}

export interface ApiError {
  code: string;
  message: string;
}

/** What a reader can see of a key: used to prove that a refused request changed nothing. */
export interface KeySnapshot {
  status: number;
  version: string | null;
  body: string | null;
  stat: unknown;
}

export function expectNot5xx(status: number, what: string): void {
  expect(status, `${what} answered ${status}; no request may produce a 5xx`).toBeLessThan(500);
}

export class ApiClient {
  constructor(readonly cluster: ApiTarget) {}

  async fetch(pathAndQuery: string, init: ApiRequestInit = {}): Promise<Response> {
    const { allow5xx, ...rest } = init;
    const res = await this.cluster.fetch(pathAndQuery, rest);
    if (!allow5xx) expectNot5xx(res.status, `${rest.method ?? 'GET'} ${pathAndQuery.slice(0, 200)}`);
    return res;
  }

  /** POST /write?key=K&...; `body` is sent as is when a string or bytes, else as JSON. */
  write(key: string, body: unknown, query = '', headers: Record<string, string> = {}): Promise<Response> {
    return this.fetch(`/write?key=${encodeURIComponent(key)}${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: bodyOf(body),
    });
  }

  read(key: string, query = '', headers: Record<string, string> = {}): Promise<Response> {
    return this.fetch(`/read/${encodeURIComponent(key)}${query}`, { headers });
  }

  patch(key: string, body: unknown, contentType = 'application/json', headers: Record<string, string> = {}): Promise<Response> {
    return this.fetch(`/patch/${encodeURIComponent(key)}`, {
      method: 'PATCH',
      headers: { 'content-type': contentType, ...headers },
      body: bodyOf(body),
    });
  }

  delete(key: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.fetch(`/delete/${encodeURIComponent(key)}`, { method: 'DELETE', headers });
  }

  stat(key: string): Promise<Response> {
    return this.fetch(`/stat/${encodeURIComponent(key)}`);
  }

  async list(query: string): Promise<Response> {
    return this.fetch(`/list${query === '' ? '' : `?${query}`}`);
  }

  /** Writes and returns the parsed 200 body (fails the test on any other status). */
  async put(key: string, body: unknown, query = '', headers: Record<string, string> = {}): Promise<WriteBody> {
    const res = await this.write(key, body, query, headers);
    const json = await res.json();
    expect(res.status, `write ${key}: ${JSON.stringify(json)}`).toBe(200);
    return json as WriteBody;
  }

  /** Everything a reader can see of the key right now. */
  async snapshot(key: string): Promise<KeySnapshot> {
    const read = await this.read(key);
    const body = await read.text();
    const stat = await this.stat(key);
    const statBody = await stat.json();
    expect(stat.status).toBe(read.status);
    return {
      status: read.status,
      version: read.headers.get('x-strata-version'),
      body: read.status === 200 ? body : null,
      stat: stat.status === 200 ? statBody : null,
    };
  }

  /** Asserts the key is exactly as `before` (same version, same bytes, same manifest), or still absent. */
  async expectUnchanged(key: string, before: KeySnapshot): Promise<void> {
    const after = await this.snapshot(key);
    expect(after).toEqual(before);
  }
}

export interface WriteBody {
  status: string;
  key: string;
  version: string;
  strategy: string;
  is_pure_hot_update: boolean;
  hot_fields: string[];
  bytes: { logical: number; hot: number; cold: number };
  partial: boolean;
  latency_ms: number;
}

export interface StatBody {
  key: string;
  version: string;
  strategy: string;
  hot_fields: string[];
  bytes: { logical: number; hot: number; cold: number; physical: number };
  cold_hash: string | null;
  dirty: boolean;
  created_at: string;
  updated_at: string;
  hot: { node: string; blob: string; state: string }[];
  cold: { index: number; node: string; blob: string; state: string }[];
}

function bodyOf(body: unknown): RequestInit['body'] {
  if (typeof body === 'string' || body instanceof Uint8Array) return body as RequestInit['body'];
  return JSON.stringify(body);
}

/** Asserts an error response: the status, the exact code, a message a person can act on. */
export async function expectError(res: Response, status: number, code: string): Promise<ApiError> {
  const text = await res.text();
  let parsed: { error?: ApiError } = {};
  try {
    parsed = JSON.parse(text);
  } catch {
    // fall through to the assertions, which show the text
  }
  expect({ status: res.status, code: parsed.error?.code }, text).toEqual({ status, code });
  expect(res.headers.get('content-type') ?? '').toMatch(/^application\/json/);
  expect(typeof parsed.error?.message).toBe('string');
  expect(parsed.error!.message.trim().length).toBeGreaterThan(0);
  return parsed.error!;
}

/** One target per test file: an in-process cluster, or the external one (see `apiTarget`). */
export async function startApi(options: TestClusterOptions = {}): Promise<ApiClient> {
  return new ApiClient(await apiTarget(options));
}

/** Compact JSON's UTF-8 byte count: api.md's `logical` size. */
export function logicalBytes(doc: unknown): number {
  return Buffer.byteLength(JSON.stringify(doc), 'utf8');
}

/** A quoted version for If-Match / If-None-Match. */
export function quoted(version: string): string {
  return `"${version}"`;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * A request through node:http, for what fetch will not send as is (oversized headers, a raw request target
 * such as `/read/%2E%2E` that the WHATWG URL parser would normalise). Asserts no 5xx.
 */
export function rawRequest(
  baseUrl: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string },
): Promise<RawResponse> {
  const base = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.hostname, port: Number(base.port), method: options.method ?? 'GET', path: options.path, headers: options.headers ?? {}, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          expectNot5xx(res.statusCode ?? 0, `${options.method ?? 'GET'} ${options.path.slice(0, 200)}`);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/**
 * Sends bytes on a plain TCP socket and returns everything the server answers until it closes, or until the socket
 * has been idle for `idleMs` (then whatever came, perhaps nothing). The default only guards against a server that
 * never answers a request that ends its connection (Connection: close, HTTP/1.0, not HTTP at all); a hostile client
 * that gives up on a connection it left hanging passes its own.
 */
export function rawSocket(baseUrl: string, request: string | Buffer, idleMs: number = CONDITION_TIMEOUT_MS): Promise<string> {
  const base = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(base.port), base.hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('error', (err) => (chunks.length > 0 ? resolve(Buffer.concat(chunks).toString('utf8')) : reject(err)));
    socket.setTimeout(idleMs, () => socket.destroy());
    socket.write(request);
  });
}

/** Status line and JSON body of a raw HTTP/1.1 answer; asserts no 5xx. */
export function parseRawAnswer(answer: string): { status: number; headers: string; body: string } {
  const match = /^HTTP\/1\.1 (\d{3})[^\r\n]*\r\n([\s\S]*?)\r\n\r\n([\s\S]*)$/.exec(answer);
  expect(match, `not an HTTP answer: ${answer.slice(0, 200)}`).not.toBeNull();
  const status = Number(match![1]);
  expectNot5xx(status, 'raw request');
  return { status, headers: match![2]!, body: match![3]! };
}
