/**
 * The cluster data format and process registry contract (test/contracts/cluster-format.contract.ts) on the
 * embedded store, with a manual clock.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteMetadataStore } from '../../internal/metadata/sqlite-metadata-store.js';
import { runClusterFormatContract, type ClusterFormatFixture } from '../contracts/cluster-format.contract.js';
import { ManualClock } from '../helpers/manual-clock.js';

runClusterFormatContract('SqliteMetadataStore', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'strata-cluster-format-'));
  const path = join(dir, 'metadata.sqlite');
  const clock = new ManualClock();
  const others: SqliteMetadataStore[] = [];
  const fx: ClusterFormatFixture = {
    store: await SqliteMetadataStore.open({ path, clock }),
    clock,
    async openAnother() {
      const another = await SqliteMetadataStore.open({ path, clock });
      others.push(another);
      return another;
    },
    async writeIdentity(text) {
      const db = new Database(path);
      try {
        db.exec("CREATE TABLE IF NOT EXISTS cluster_identity (name TEXT PRIMARY KEY CHECK (name = 'cluster'), record TEXT NOT NULL)");
        db.prepare("INSERT OR REPLACE INTO cluster_identity (name, record) VALUES ('cluster', ?)").run(text);
      } finally {
        db.close();
      }
    },
    async cleanup() {
      for (const other of others) await other.close();
      await fx.store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return fx;
});
