/**
 * The cluster data format and process registry contract (test/contracts/cluster-format.contract.ts) on a real
 * etcd (scripts/infra/etcd.ts), each test under its own key prefix. etcd expires leases by its own clock, so the
 * fixture's clock is real time.
 */
import { randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll } from 'vitest';
import { systemClock } from '../../internal/core/clock.js';
import { EtcdMetadataStore } from '../../internal/metadata/etcd-metadata-store.js';
import { startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import type { ContractClock } from '../contracts/metadata-store.contract.js';
import { runClusterFormatContract, type ClusterFormatFixture } from '../contracts/cluster-format.contract.js';
import { outlastRealTimer } from '../helpers/wait.js';

let etcd: RunningEtcd;
let admin: Etcd3;

beforeAll(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: [etcd.endpoints] });
});
afterAll(async () => {
  admin?.close();
  await etcd?.stop();
});

const realClock: ContractClock & { sleep(ms: number): Promise<void> } = {
  nowMs: () => systemClock.nowMs(),
  advance: (ms) => outlastRealTimer(ms),
  sleep: (ms) => systemClock.sleep(ms),
};

runClusterFormatContract('EtcdMetadataStore', async () => {
  const prefix = `test/${randomUUID()}/`;
  const open = () => EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix, clock: realClock });
  const others: EtcdMetadataStore[] = [];
  const fx: ClusterFormatFixture = {
    store: await open(),
    clock: realClock,
    async openAnother() {
      const another = await open();
      others.push(another);
      return another;
    },
    async writeIdentity(text) {
      await admin.put(`${prefix}cluster-identity`).value(text);
    },
    async cleanup() {
      for (const other of others) await other.close();
      await fx.store.close();
      await admin.delete().prefix(prefix);
    },
  };
  return fx;
});
