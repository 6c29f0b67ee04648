/**
 * The API suite of the core issue (test/api/*.test.ts), unchanged, against the local cluster through nginx: etcd,
 * Kafka, six storage nodes in three zones, three gateways and two healers, all separate processes
 * (scripts/local-cluster.ts), and the project's nginx.conf in front.
 *
 * How it works with vitest 4: this file imports every API test file inside a `describe` named after it (vitest
 * awaits async describe factories while it collects), so their suites become part of this file and run here, one
 * file after the other, in this file's worker. Its own `beforeAll` runs before any of theirs: it starts the cluster
 * and points test/api/support.ts at it through STRATA_TEST_TARGET_URL (nginx) and STRATA_TEST_TARGET_GATEWAY_ENV (a
 * gateway's environment, for the files that ask for a configuration of their own: each gets one more gateway,
 * behind an nginx of its own, on the same etcd, Kafka and nodes). Run by itself with
 * `npx vitest run test/cluster/api-through-nginx.test.ts`; the same files also run in-process as
 * test/api/*.test.ts. Tests that need the in-process cluster (stopping nodes in-process, calling the healer) skip
 * themselves and say why (support.ts, `internalsOrSkip`).
 *
 * The files share one cluster, hence one key space. storage-usage.test.ts expects an empty cluster (its first test
 * answers zero bytes, its last deletes every key it wrote and expects zero again), so it runs first, and
 * list.test.ts, which lists all keys, right after it; every other file keeps to key prefixes of its own.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe } from 'vitest';
import { TARGET_GATEWAY_ENV_VAR, TARGET_URL_VAR } from '../api/support.js';
import { CLUSTER_TEST_LIMITS, useLocalCluster } from './cluster-support.js';

const API_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'api');
/**
 * Files that must see no other file's keys, in this order: storage-usage.test.ts expects an empty cluster and
 * deletes every key it wrote; list.test.ts then lists every key without a prefix and expects its own alone.
 */
const FIRST = ['storage-usage.test.ts', 'list.test.ts'];

const files = readdirSync(API_DIR)
  .filter((name) => name.endsWith('.test.ts'))
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

function rank(file: string): number {
  const index = FIRST.indexOf(file);
  return index < 0 ? FIRST.length : index;
}

const cluster = useLocalCluster('api-through-nginx');

beforeAll(() => {
  process.env[TARGET_URL_VAR] = cluster().url;
  process.env[TARGET_GATEWAY_ENV_VAR] = JSON.stringify(cluster().gatewayEnv());
}, CLUSTER_TEST_LIMITS.startTimeoutMs);

describe('the API suite through nginx against the local cluster', () => {
  for (const file of files) {
    describe(file, async () => {
      // The extension in the literal part lets Vite see which files this can import (../api/*.test.ts).
      await import(`../api/${file.slice(0, -'.test.ts'.length)}.test.ts`);
    });
  }
});
