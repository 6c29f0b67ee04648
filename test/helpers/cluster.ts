/**
 * An in-process all-in-one cluster for tests: six storage nodes, a gateway on a free loopback port, the
 * embedded backends in a temporary directory. The healer does not run by itself; tests call
 * `cluster.healer.runOnce()` so that what it does is deterministic.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type StrataConfig } from '../../internal/config/config.js';
import type { Clock } from '../../internal/core/clock.js';
import { silentLogger } from '../../internal/log/logger.js';
import { startAllInOne, type AllInOne } from '../../internal/wiring/all-in-one.js';
import type { WriteHooks } from '../../internal/writeservice/write-service.js';

export interface TestClusterOptions {
  /** 'http' sends every blob through the nodes' HTTP servers (the real network path); default 'local'. */
  transport?: 'local' | 'http';
  /** Extra STRATA_* variables. */
  env?: Record<string, string>;
  overrides?: Partial<StrataConfig>;
  hooks?: WriteHooks;
  clock?: Clock;
  /** Reuse a data directory (to test restarts). */
  dataDir?: string;
}

export interface TestCluster extends AllInOne {
  dataDir: string;
  config: Readonly<StrataConfig>;
  /** fetch() against the gateway. */
  fetch(pathAndQuery: string, init?: RequestInit): Promise<Response>;
  /** POST /write with a JSON body (object or raw text). */
  write(key: string, body: unknown, query?: string, headers?: Record<string, string>): Promise<Response>;
  read(key: string, query?: string, headers?: Record<string, string>): Promise<Response>;
  /** Stops everything and removes the data directory. */
  destroy(): Promise<void>;
}

export async function startTestCluster(options: TestClusterOptions = {}): Promise<TestCluster> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'strata-test-')));
  const config = loadConfig(
    {
      STRATA_DATA_DIR: dataDir,
      STRATA_PORT: '0',
      STRATA_NODE_PORT_BASE: '0',
      STRATA_NODE_TRANSPORT: options.transport ?? 'local',
      STRATA_LOG_LEVEL: 'silent',
      // A node call's deadline. Generous: on a busy machine calls queue behind each other (a test's concurrent
      // writes over HTTP), and one that times out marks its node down, so that writes find too few nodes. Tests of
      // slow or hung nodes set their own.
      STRATA_NODE_TIMEOUT_MS: '30000',
      STRATA_HEDGE_AFTER_MS: '50',
      STRATA_SCRUB_INTERVAL_MS: '0',
      // Reads go to the nodes, so that tests of degraded, hedged and failing reads see the nodes' behaviour; the
      // read cache has its own tests (test/readservice/part-cache.test.ts).
      STRATA_READ_CACHE_BYTES: '0',
      ...options.env,
    },
    options.overrides,
  );
  const cluster = await startAllInOne(config, {
    log: silentLogger,
    startHealer: false,
    ...(options.hooks ? { hooks: options.hooks } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  });
  const base = cluster.url;
  const doFetch = (p: string, init?: RequestInit): Promise<Response> => fetch(`${base}${p}`, init);
  return Object.assign(cluster, {
    dataDir,
    config,
    fetch: doFetch,
    write: (key: string, body: unknown, query = '', headers: Record<string, string> = {}) =>
      doFetch(`/write?key=${encodeURIComponent(key)}${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
      }),
    read: (key: string, query = '', headers: Record<string, string> = {}) =>
      doFetch(`/read/${encodeURIComponent(key)}${query}`, { headers }),
    async destroy() {
      await cluster.stop();
      if (!options.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  });
}

/** Every blob each node holds, as `node/blobId` strings (for "what did the nodes receive" assertions). */
export async function inventory(cluster: AllInOne): Promise<Map<string, { node: string; id: string; part: string; size: number }>> {
  const out = new Map<string, { node: string; id: string; part: string; size: number }>();
  for (const node of cluster.nodes) {
    if (!node.server) continue;
    let after: string | null = null;
    for (;;) {
      const page = await node.server.store.list(after, 1000);
      for (const b of page) out.set(`${node.id}/${b.id}`, { node: node.id, id: b.id, part: b.part, size: b.size });
      if (page.length < 1000) break;
      after = page[page.length - 1]!.id;
    }
  }
  return out;
}
