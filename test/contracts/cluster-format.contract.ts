import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DATA_FORMAT_MAX } from '../../internal/core/data-format.js';
import { isStrataError } from '../../internal/core/errors.js';
import { dataFormatOf } from '../../internal/metadata/cluster-identity-record.js';
import { PROCESS_REGISTRY_LIMITS, type ClusterIdentityRecord, type MetadataStore } from '../../internal/metadata/metadata-store.js';
import { sealText } from '../../internal/metadata/record-envelope.js';
import type { ContractClock } from './metadata-store.contract.js';

/** A data format this release does not know. */
const NEWER = DATA_FORMAT_MAX + 1;

/**
 * The MetadataStore contract for the cluster's data format (raiseClusterDataFormat) and the process registry
 * (registerProcess, deregisterProcess, listProcesses), run against every implementation. Beside the main contract
 * (./metadata-store.contract.ts) because it also needs to write a record as another release would.
 */
export interface ClusterFormatFixture {
  store: MetadataStore;
  clock: ContractClock;
  /** A second store on the same data, as another process would open it (closed by cleanup). */
  openAnother(): Promise<MetadataStore>;
  /** Stores `text` as the cluster identity record behind the store's back, as another release would write it. */
  writeIdentity(text: string): Promise<void>;
  cleanup(): Promise<void>;
}

/** The process ttl of these tests; etcd rounds the lingering lease (3 x ttl) up to whole seconds. */
const TTL_MS = 2_000;

const identity: ClusterIdentityRecord = { clusterId: 'c1', formatVersion: 2, createdAtMs: 1_700_000_000_000, nodes: ['node-1'], acceptedEmpty: [] };

/** A record exactly as the previous release seals it (record format 1, no data format). */
function previousReleaseRecord(): string {
  const content = JSON.stringify({ format: 'strata-cluster-identity', formatVersion: 1, clusterId: 'old', createdAtMs: 5, nodes: ['node-2'], acceptedEmpty: [] });
  return sealText('cluster-identity', 'cluster', content);
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (error: unknown) => (isStrataError(error) ? error.code : error),
  );
}

export function runClusterFormatContract(name: string, makeFixture: () => Promise<ClusterFormatFixture>): void {
  describe(`${name} cluster data format and process registry contract`, () => {
    let fx: ClusterFormatFixture;
    beforeEach(async () => {
      fx = await makeFixture();
    });
    afterEach(async () => {
      await fx.cleanup();
    });

    it('creates a record at data format 1 in record format 1, as the previous release wrote it', async () => {
      const created = await fx.store.createClusterIdentity(identity);
      expect(created.formatVersion).toBe(1);
      expect(created.dataFormat).toBeUndefined();
      expect(dataFormatOf(created)).toBe(1);
      expect(await fx.store.getClusterIdentity()).toEqual(created);
    });

    it('raises the data format to 2 in record format 2, seen by another process, keeping the node lists', async () => {
      await fx.store.createClusterIdentity(identity);
      const raised = await fx.store.raiseClusterDataFormat(2);
      expect(raised).toMatchObject({ clusterId: 'c1', formatVersion: 2, dataFormat: 2, nodes: ['node-1'] });
      const other = await fx.openAnother();
      expect(await other.getClusterIdentity()).toEqual(raised);
      // Node list changes keep the data format.
      const changed = await other.updateClusterNodes((c) => ({ nodes: [...c.nodes, 'node-9'], acceptedEmpty: c.acceptedEmpty }));
      expect(changed).toMatchObject({ formatVersion: 2, dataFormat: 2, nodes: ['node-1', 'node-9'] });
    });

    it('never lowers the data format: a raise to a lower or equal one leaves the record as it is', async () => {
      await fx.store.createClusterIdentity(identity);
      const raised = await fx.store.raiseClusterDataFormat(2);
      expect(await fx.store.raiseClusterDataFormat(1)).toEqual(raised);
      expect(await fx.store.raiseClusterDataFormat(2)).toEqual(raised);
      expect(await fx.store.getClusterIdentity()).toEqual(raised);
    });

    it('refuses to raise when there is no record (METADATA_UNAVAILABLE) and creates none', async () => {
      expect(await codeOf(fx.store.raiseClusterDataFormat(2))).toBe('METADATA_UNAVAILABLE');
      expect(await fx.store.getClusterIdentity()).toBeNull();
    });

    it('reads a record of record format 1 written by the previous release as data format 1, and raises it', async () => {
      await fx.writeIdentity(previousReleaseRecord());
      const read = await fx.store.getClusterIdentity();
      expect(read).toEqual({ clusterId: 'old', formatVersion: 1, createdAtMs: 5, nodes: ['node-2'], acceptedEmpty: [] });
      expect(dataFormatOf(read!)).toBe(1);
      expect(await fx.store.raiseClusterDataFormat(2)).toMatchObject({ clusterId: 'old', formatVersion: 2, dataFormat: 2, nodes: ['node-2'] });
    });

    it('returns a record of a data format newer than this release as read, and refuses to change it', async () => {
      const content = JSON.stringify({ format: 'strata-cluster-identity', formatVersion: 2, clusterId: 'c3', createdAtMs: 1, nodes: [], acceptedEmpty: [], dataFormat: NEWER });
      await fx.writeIdentity(sealText('cluster-identity', 'cluster', content));
      expect(await fx.store.getClusterIdentity()).toMatchObject({ formatVersion: 2, dataFormat: NEWER });
      expect(await codeOf(fx.store.raiseClusterDataFormat(2))).toBe('METADATA_UNAVAILABLE');
      expect(await codeOf(fx.store.updateClusterNodes(() => ({ nodes: ['node-1'], acceptedEmpty: [] })))).toBe('METADATA_UNAVAILABLE');
      expect(await fx.store.getClusterIdentity()).toMatchObject({ dataFormat: NEWER, nodes: [] });
    });

    it('lists registered processes in id order with their role and formatMax, to every process', async () => {
      await fx.store.registerProcess({ id: 'healer-1', role: 'healer', formatMax: 2 }, TTL_MS);
      await fx.store.registerProcess({ id: 'gateway-b', role: 'gateway', formatMax: 1 }, TTL_MS);
      await fx.store.registerProcess({ id: 'storage-node:node-1', role: 'storage-node', formatMax: 2 }, TTL_MS);
      const other = await fx.openAnother();
      const listed = await other.listProcesses();
      expect(listed.map((p) => [p.id, p.role, p.formatMax, p.alive])).toEqual([
        ['gateway-b', 'gateway', 1, true],
        ['healer-1', 'healer', 2, true],
        ['storage-node:node-1', 'storage-node', 2, true],
      ]);
      // A refresh replaces what the process announced (an upgraded process restarting under the same id).
      await fx.store.registerProcess({ id: 'gateway-b', role: 'gateway', formatMax: 2 }, TTL_MS);
      expect((await other.listProcesses()).find((p) => p.id === 'gateway-b')?.formatMax).toBe(2);
    });

    it('forgets a process that leaves on purpose at once; an unknown id is ignored', async () => {
      await fx.store.registerProcess({ id: 'gateway-1', role: 'gateway', formatMax: 2 }, TTL_MS);
      await fx.store.deregisterProcess('gateway-1');
      await fx.store.deregisterProcess('never-registered');
      await fx.store.deregisterProcess('not a valid id!');
      expect(await fx.store.listProcesses()).toEqual([]);
    });

    it(`keeps a process that stops announcing listed for ${PROCESS_REGISTRY_LIMITS.lingerTtls} ttls, then forgets it`, async () => {
      await fx.store.registerProcess({ id: 'gateway-paused', role: 'gateway', formatMax: 1 }, TTL_MS);
      // Past its ttl: no longer alive, still listed (a paused process may wake up and write).
      await fx.clock.advance(TTL_MS + 100);
      expect((await fx.store.listProcesses()).map((p) => [p.id, p.alive])).toEqual([['gateway-paused', false]]);
      // etcd expires the lingering lease by its own clock, in whole seconds: wait for it rather than assume when.
      await fx.clock.advance((PROCESS_REGISTRY_LIMITS.lingerTtls - 1) * TTL_MS);
      await expect.poll(async () => (await fx.store.listProcesses()).length, { timeout: 30_000, interval: 200 }).toBe(0);
    });
  });
}
