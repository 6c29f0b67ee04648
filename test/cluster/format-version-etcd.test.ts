/**
 * The data format bump on a real etcd (scripts/infra/etcd.ts), as separate processes see it: a gateway of the
 * previous data format registered in the process registry blocks the bump by name until its entry has lapsed
 * (etcd expires it by its own clock, so the test waits for that); a process following the record switches to the
 * new format when its watch on the record reports the bump. The same rules with a manual clock: format-version.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClusterDataFormat, bumpDataFormat, type FormatVersionContext } from '../../internal/cluster/format-version.js';
import { systemClock } from '../../internal/core/clock.js';
import { DATA_FORMAT_MAX, fixedDataFormat } from '../../internal/core/data-format.js';
import { isStrataError } from '../../internal/core/errors.js';
import { silentLogger } from '../../internal/log/logger.js';
import { loadConfig } from '../../internal/config/config.js';
import { EtcdMetadataStore } from '../../internal/metadata/etcd-metadata-store.js';
import { sealText } from '../../internal/metadata/record-envelope.js';
import { runGateway, runHealer } from '../../internal/wiring/processes.js';
import { startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import { CONDITION_TIMEOUT_MS } from '../helpers/wait.js';

/** A data format this release does not know. */
const NEWER = DATA_FORMAT_MAX + 1;

/** Heartbeat ttl of the processes here: entries linger 3 x this (etcd leases in whole seconds). */
const TTL_MS = 2_000;

let etcd: RunningEtcd;
let admin: Etcd3;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: [etcd.endpoints] });
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
afterAll(async () => {
  admin?.close();
  await etcd?.stop();
});

async function openStore(prefix: string): Promise<EtcdMetadataStore> {
  const store = await EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix });
  cleanups.push(() => store.close());
  return store;
}

async function withCluster(): Promise<{ store: EtcdMetadataStore; context: FormatVersionContext; prefix: string }> {
  const prefix = `test/${randomUUID()}/`;
  cleanups.push(async () => void (await admin.delete().prefix(prefix)));
  const store = await openStore(prefix);
  await store.createClusterIdentity({ clusterId: 'c-etcd', formatVersion: 1, createdAtMs: 1, nodes: [], acceptedEmpty: [] });
  return { store, prefix, context: { store, clock: systemClock, nodeTtlMs: TTL_MS, source: fixedDataFormat(1) } };
}

async function bumpCode(context: FormatVersionContext): Promise<string> {
  return bumpDataFormat(context, 2).then(
    (outcome) => `changed:${outcome.changed}`,
    (error: unknown) => (isStrataError(error) ? `${error.code}: ${error.message}` : String(error)),
  );
}

describe('data format bump on etcd', () => {
  it('is refused while a format-1 gateway is registered, naming it, and allowed once its entry has lapsed', async () => {
    const { prefix, context } = await withCluster();
    // The old gateway is another process, with its own client and lease; it announces once and then dies without
    // leaving (a crash, or a pause): its entry outlives its ttl by 2 x ttl, then etcd drops the lease.
    const old = await openStore(prefix);
    await old.registerProcess({ id: 'gateway-old', role: 'gateway', formatMax: 1 }, TTL_MS);
    await old.close();
    const refused = await bumpCode(context);
    expect(refused).toMatch(/^FORMAT_BUMP_BLOCKED: .*gateway-old \(gateway: reads data formats up to 1/);
    await expect.poll(() => bumpCode(context), { timeout: CONDITION_TIMEOUT_MS, interval: 500 }).toBe('changed:true');
  });

  it('a process following the record switches to format 2 at the bump, told by its watch (its poll is an hour)', async () => {
    const { store, context, prefix } = await withCluster();
    const follower = await openStore(prefix);
    const source = new ClusterDataFormat({ clock: systemClock, log: silentLogger, pollIntervalMs: 3_600_000, onNewer: () => undefined });
    cleanups.push(() => source.stop());
    await source.follow(follower, 'etcd');
    expect(source.current()).toBe(1);
    expect(await bumpCode(context)).toBe('changed:true');
    expect((await store.getClusterIdentity())?.dataFormat).toBe(2);
    await expect.poll(() => source.current(), { timeout: CONDITION_TIMEOUT_MS, interval: 50 }).toBe(2);
  });

  it('a gateway and a healer refuse to start against a cluster of a newer data format; a running gateway announces itself and stops when the cluster becomes newer', async () => {
    const prefix = `test/${randomUUID()}/`;
    cleanups.push(async () => void (await admin.delete().prefix(prefix)));
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'strata-format-etcd-'));
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    const config = loadConfig({
      STRATA_DATA_DIR: dataDir,
      STRATA_HOST: '127.0.0.1',
      STRATA_PORT: '0',
      STRATA_HEALER_PORT: '0',
      STRATA_CLUSTER_TOKEN: 'format-test-token-0123456789abcdef',
      STRATA_ETCD_ENDPOINTS: etcd.endpoints,
      STRATA_ETCD_PREFIX: prefix,
      STRATA_NODE_TTL_MS: String(TTL_MS),
      STRATA_LOG_LEVEL: 'silent',
    });
    const store = await openStore(prefix);
    await store.createClusterIdentity({ clusterId: 'c-run', formatVersion: 1, createdAtMs: 1, nodes: [], acceptedEmpty: [] });
    const newer: string[] = [];
    const gateway = await runGateway(config, silentLogger, { processMetrics: false, onNewerDataFormat: (reason) => newer.push(reason) });
    cleanups.push(async () => void (await gateway.stop()));
    expect((await store.listProcesses()).map((p) => [p.role, p.formatMax, p.alive])).toEqual([['gateway', DATA_FORMAT_MAX, true]]);

    const record = JSON.stringify({ format: 'strata-cluster-identity', formatVersion: 2, clusterId: 'c-run', createdAtMs: 1, nodes: [], acceptedEmpty: [], dataFormat: NEWER });
    await admin.put(`${prefix}cluster-identity`).value(sealText('cluster-identity', 'cluster', record));
    await expect.poll(() => newer.length, { timeout: CONDITION_TIMEOUT_MS, interval: 50 }).toBe(1);
    expect(newer[0]).toMatch(new RegExp(`run a release that reads data format ${NEWER}`));

    for (const start of [() => runGateway(config, silentLogger, { processMetrics: false }), () => runHealer(config, silentLogger, { processMetrics: false })]) {
      const refused = await start().then(
        async (running) => {
          await running.stop();
          return 'started';
        },
        (error: unknown) => (isStrataError(error) ? `${error.code}: ${error.message}` : String(error)),
      );
      expect(refused).toMatch(new RegExp(`^FORMAT_UNSUPPORTED: .*data format is ${NEWER}, newer than this release reads`));
    }
  });
});
