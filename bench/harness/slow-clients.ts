/**
 * Scenario 7 (not in benchmarks.md; memory): the gateway's memory under large documents and slow
 * clients. Clients request 8 MiB documents and stop reading after the status line, while other clients write small
 * documents for the measured load. The figures: how many stalled reads were served and how many refused (the body
 * budget, STRATA_BODY_BUFFER_BYTES_MAX), what the gateway held, the small writes' throughput beside them, every
 * process's peak RSS, and how long until the stalled connections were cut (STRATA_SOCKET_IDLE_TIMEOUT_MS) and the
 * bytes released.
 */
import net from 'node:net';
import { runLoad, type LoadResult } from '../../internal/loadgen/node-loadgen.js';
import { allInOneMetrics } from './metrics-scrape.js';
import type { BenchTarget } from './target.js';

/** Documents the stalled clients ask for, round robin: each one is read by many clients at once. */
const LARGE_DOCS = 4;
const LARGE_DOC_BYTES = 8 * 1024 * 1024;
/** How long a stalled client waits for its status line before it counts as unanswered. */
const STATUS_WAIT_MS = 30_000;
const METRICS_POLL_MS = 250;

export interface SlowClientsOptions {
  prefix: string;
  clients: number;
  vus: number;
  durationMs: number;
  seed: string;
  /** The deployment's STRATA_SOCKET_IDLE_TIMEOUT_MS, to bound the wait for the release. */
  idleTimeoutMs: number;
  log: (line: string) => void;
}

export interface SlowClientsResult {
  stalledClients: number;
  documentBytes: number;
  /** Status lines the stalled clients got: 200 (the gateway holds the document for them) or 503 OVERLOADED. */
  served: number;
  refused: number;
  unanswered: number;
  /** What the gateway's body budget held while they stalled, and its bound (all-in-one: one gateway to ask). */
  heldBytes: number | null;
  budgetBytes: number | null;
  /**
   * From the moment the stalled clients had their status lines (and stopped reading) until the gateway held no body
   * bytes: about STRATA_SOCKET_IDLE_TIMEOUT_MS (null: not measured, or not within the wait).
   */
  releasedAfterSeconds: number | null;
  load: LoadResult;
}

interface Stalled {
  socket: net.Socket;
  status: Promise<number | null>;
}

function stalledRead(url: URL, key: string): Stalled {
  const socket = net.connect(Number(url.port || 80), url.hostname);
  socket.on('error', () => undefined);
  socket.write(`GET /read/${encodeURIComponent(key)} HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
  const status = new Promise<number | null>((resolve) => {
    let head = '';
    const timer = setTimeout(() => resolve(null), STATUS_WAIT_MS);
    const onData = (chunk: Buffer): void => {
      head += chunk.subarray(0, 64).toString('latin1');
      const match = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!match) return;
      socket.off('data', onData);
      // From here on the client reads nothing: the response piles up in the socket buffers, then in the gateway.
      socket.pause();
      clearTimeout(timer);
      resolve(Number(match[1]));
    };
    socket.on('data', onData);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(null);
    });
  });
  return { socket, status };
}

function bodyBudget(target: BenchTarget): Promise<{ held: number; max: number } | null> {
  return allInOneMetrics(target, { held: 'strata_body_buffer_bytes', max: 'strata_body_buffer_bytes_max' });
}

/** Seconds from `since` until the gateway holds no body bytes, or null when that does not happen within `waitMs`. */
async function watchRelease(target: BenchTarget, since: number, waitMs: number): Promise<number | null> {
  const deadline = since + waitMs;
  while (performance.now() < deadline) {
    const now = await bodyBudget(target);
    if (now !== null && now.held === 0) return (performance.now() - since) / 1000;
    await new Promise((r) => setTimeout(r, METRICS_POLL_MS));
  }
  return null;
}

export async function runSlowClients(target: BenchTarget, options: SlowClientsOptions): Promise<SlowClientsResult> {
  const { log } = options;
  const keys = Array.from({ length: LARGE_DOCS }, (_, i) => `${options.prefix}/slow-clients/${i}`);
  const document = JSON.stringify({ title: 'large', like_count: 0, body: 'x'.repeat(LARGE_DOC_BYTES) });
  for (const key of keys) {
    const res = await fetch(`${target.url}/write?key=${encodeURIComponent(key)}&strategy=field_hybrid`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: document,
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`writing ${key} for the slow clients answered ${res.status}`);
  }

  log(`${options.clients} clients read ${(document.length / 1024 ** 2).toFixed(0)} MiB documents and stop reading`);
  const url = new URL(target.url);
  const stalled = Array.from({ length: options.clients }, (_, i) => stalledRead(url, keys[i % keys.length]!));
  try {
    const statuses = await Promise.all(stalled.map((s) => s.status));
    const stalledAt = performance.now();
    const served = statuses.filter((s) => s === 200).length;
    const refused = statuses.filter((s) => s === 503).length;
    const held = await bodyBudget(target);
    log(`stalled reads: ${served} served, ${refused} refused; the gateway holds ${held ? `${(held.held / 1024 ** 2).toFixed(0)} of ${(held.max / 1024 ** 2).toFixed(0)} MiB` : 'an unknown amount'}`);

    // Watched while the load runs: the release comes about one idle timeout after the clients stopped reading.
    const released = held === null ? Promise.resolve(null) : watchRelease(target, stalledAt, options.idleTimeoutMs + options.durationMs + 30_000);
    const load = await runLoad({
      url: target.url,
      scenario: 'write',
      strategy: 'field_hybrid',
      doc: 'small',
      keys: 1000,
      iotKeys: 1,
      ycsbKeys: 1,
      prefix: `${options.prefix}/slow-clients-load`,
      seed: options.seed,
      vus: options.vus,
      durationMs: options.durationMs,
    });
    const releasedAfterSeconds = await released;
    return {
      stalledClients: options.clients,
      documentBytes: document.length,
      served,
      refused,
      unanswered: statuses.filter((s) => s === null).length,
      heldBytes: held?.held ?? null,
      budgetBytes: held?.max ?? null,
      releasedAfterSeconds,
      load,
    };
  } finally {
    for (const s of stalled) s.socket.destroy();
  }
}
