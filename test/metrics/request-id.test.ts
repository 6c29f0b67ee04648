/**
 * Request ids: the gateway answers with the client's X-Request-Id (or one it made up), writes it on the request's
 * log line, and the storage nodes the request called log it too, over HTTP and in-process alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../internal/config/config.js';
import { REQUEST_ID_LIMITS } from '../../internal/log/request-context.js';
import { startAllInOne, type AllInOne } from '../../internal/wiring/all-in-one.js';

interface LogLine {
  msg?: string;
  reqId?: string;
  component?: string;
  node?: string;
  route?: string;
  status?: number;
  method?: string;
  durationMs?: number;
}

/** An all-in-one cluster whose JSON log lines (debug level and up) are kept in memory. */
async function startCapturing(transport: 'local' | 'http'): Promise<{ cluster: AllInOne; lines: () => LogLine[]; dir: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-reqid-'));
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString('utf8'));
      done();
    },
  });
  const log = pino({ level: 'debug' }, sink);
  const config = loadConfig({
    STRATA_DATA_DIR: dir,
    STRATA_PORT: '0',
    STRATA_NODE_PORT_BASE: '0',
    STRATA_NODE_TRANSPORT: transport,
    STRATA_SCRUB_INTERVAL_MS: '0',
  });
  const cluster = await startAllInOne(config, { log, startHealer: false });
  const lines = (): LogLine[] =>
    chunks
      .join('')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as LogLine);
  return { cluster, lines, dir };
}

const doc = JSON.stringify({ like_count: 1, text: 'x'.repeat(100) });

describe('request ids', () => {
  let cleanup: (() => Promise<void>) | null = null;
  afterEach(async () => {
    await cleanup?.();
    cleanup = null;
  });

  it('echoes the client\'s id, logs the request with it, and the storage nodes called over HTTP log it too', async () => {
    const { cluster, lines, dir } = await startCapturing('http');
    cleanup = async () => {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    };
    const res = await fetch(`${cluster.url}/write?key=reqid%2Fone`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'client-chosen.id:42' },
      body: doc,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toBe('client-chosen.id:42');
    const mine = lines().filter((l) => l.reqId === 'client-chosen.id:42');
    const gatewayLine = mine.find((l) => l.msg === 'request');
    expect(gatewayLine).toMatchObject({ method: 'POST', route: '/write', status: 200 });
    expect(typeof gatewayLine!.durationMs).toBe('number');
    // Three hot replicas went to three nodes, each logging the PUT under the gateway's id.
    const nodeLines = mine.filter((l) => l.msg === 'node request' && l.method === 'PUT');
    expect(new Set(nodeLines.map((l) => l.node)).size).toBeGreaterThanOrEqual(2);
    for (const line of nodeLines) expect(line.route).toBe('/v1/blobs/:id');
  });

  it('passes the id to in-process storage nodes, which log it', async () => {
    const { cluster, lines, dir } = await startCapturing('local');
    cleanup = async () => {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    };
    const res = await fetch(`${cluster.url}/write?key=reqid%2Ftwo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'local-7' },
      body: doc,
    });
    expect(res.status).toBe(200);
    const nodeLines = lines().filter((l) => l.reqId === 'local-7' && l.msg === 'node call (in-process)');
    expect(nodeLines.length).toBeGreaterThanOrEqual(2);
  });

  it('makes up an id when the client sends none, different for each request', async () => {
    const { cluster, dir } = await startCapturing('local');
    cleanup = async () => {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    };
    const a = (await fetch(`${cluster.url}/health`)).headers.get('x-request-id');
    const b = (await fetch(`${cluster.url}/health`)).headers.get('x-request-id');
    expect(a).toMatch(/^[0-9a-f]{32}$/);
    expect(b).toMatch(/^[0-9a-f]{32}$/);
    expect(a).not.toBe(b);
  });

  it('refuses an id that is too long or has unsafe characters with 400 INVALID_HEADER', async () => {
    const { cluster, dir } = await startCapturing('local');
    cleanup = async () => {
      await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    };
    for (const bad of ['x'.repeat(REQUEST_ID_LIMITS.bytesMax + 1), 'has space', 'quote"d', 'semi;colon']) {
      const res = await fetch(`${cluster.url}/read/anything`, { headers: { 'x-request-id': bad } });
      expect(res.status, bad).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('INVALID_HEADER');
      expect(body.error.message).toContain('X-Request-Id');
      expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f]{32}$/);
    }
    const ok = await fetch(`${cluster.url}/health`, { headers: { 'x-request-id': 'x'.repeat(REQUEST_ID_LIMITS.bytesMax) } });
    expect(ok.status).toBe(200);
  });
});
