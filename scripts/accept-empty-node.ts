/**
 * `npm run node:accept-empty`: the operator's answer to "the directory of node-3 is empty but node-3 held data"
 * after replacing or wiping that node's disk.
 *
 * - All-in-one: `npm run node:accept-empty -- --data-dir ./data node-3`. With Strata stopped (it takes the data
 *   directory's lock and refuses otherwise), it writes a fresh identity into the node's empty directory; the next
 *   `npm start` opens it as a new empty node and the healer refills it from the other five. A directory that holds
 *   data or an identity is refused and left as it is (internal/datadir/cluster-directory.ts).
 * - Separate processes (STRATA_ETCD_ENDPOINTS set, or a data directory without an all-in-one's identity): it
 *   records the acceptance in the cluster identity in the metadata store; the node's next start initialises its
 *   empty directory and uses the acceptance up (internal/datadir/cluster-membership.ts). It needs no access to the
 *   node's directory, and refuses while the node is registered and alive.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type StrataConfig } from '../internal/config/config.js';
import { systemClock } from '../internal/core/clock.js';
import { acceptEmptyNode } from '../internal/datadir/cluster-directory.js';
import { acceptEmptyClusterNode } from '../internal/datadir/cluster-membership.js';
import { CLUSTER_IDENTITY_FILE } from '../internal/datadir/identity.js';
import { createLogger } from '../internal/log/logger.js';
import { NODE_ID_PATTERN } from '../internal/metadata/metadata-store.js';
import { openMetadata } from '../internal/wiring/backends.js';

const USAGE = 'usage: npm run node:accept-empty -- [--data-dir ./data] <node id>';

async function acceptInCluster(config: Readonly<StrataConfig>, nodeId: string): Promise<void> {
  const { metadata, name } = await openMetadata(config, systemClock, createLogger('warn', 'strata-accept-empty'));
  try {
    const { acceptance, clusterId } = await acceptEmptyClusterNode(metadata, nodeId);
    if (acceptance === 'not-needed') {
      console.log(`${nodeId} was never initialised in cluster ${clusterId} (${name}): it joins as a new node when it starts; nothing to accept`);
      return;
    }
    console.log(
      `${nodeId}'s empty directory is accepted in cluster ${clusterId} (${name}): start ${nodeId}; it starts as a new empty node ` +
        'and the healer refills it from the other nodes',
    );
  } finally {
    await metadata.close();
  }
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--data-dir');
  const env: Record<string, string | undefined> = { ...process.env };
  if (at >= 0) {
    env['STRATA_DATA_DIR'] = args[at + 1];
    args.splice(at, 2);
  }
  const nodeId = args[0];
  if (nodeId === undefined || !NODE_ID_PATTERN.test(nodeId)) {
    console.error(USAGE);
    process.exitCode = 2;
    return;
  }
  const config = loadConfig(env as Record<string, string>);
  const allInOne = config.etcdEndpoints.length === 0 && existsSync(path.join(config.dataDir, CLUSTER_IDENTITY_FILE));
  if (!allInOne) return acceptInCluster(config, nodeId);
  if (!/^node-\d+$/.test(nodeId)) {
    console.error(`${USAGE} (the all-in-one's nodes are node-1 to node-6)`);
    process.exitCode = 2;
    return;
  }
  const dir = await acceptEmptyNode(config.dataDir, nodeId, Date.now());
  console.log(`${dir} is accepted as a new empty ${nodeId}: start Strata; the healer refills it from the other nodes`);
}

main().catch((error: unknown) => {
  console.error(`node:accept-empty failed: ${(error as Error).message}`);
  process.exitCode = 1;
});
