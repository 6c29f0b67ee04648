/**
 * `npm run recover:manifests`: rebuilds every manifest from the storage nodes' blobs after the metadata store was
 * lost (internal/recovery/rebuild-manifests.ts has the rules). Run it with every gateway and healer stopped (a
 * healer would collect the blobs that no manifest references yet), then start them again.
 *
 *   npm run recover:manifests -- --data-dir ./data --nodes node-1=http://10.0.0.1:8101,node-2=...
 *   STRATA_ETCD_ENDPOINTS=... STRATA_NODES=... STRATA_CLUSTER_TOKEN=... npm run recover:manifests
 * The embedded store is used unless STRATA_ETCD_ENDPOINTS is set; nodes come from --nodes or STRATA_NODES; the
 * cluster token from STRATA_CLUSTER_TOKEN. With the embedded store it takes the data directory's lock
 * (internal/datadir/dir-lock.ts) and refuses, exit status 1, while an all-in-one holds it.
 */
import { loadConfig, type StrataConfig } from '../internal/config/config.js';
import { systemClock } from '../internal/core/clock.js';
import { DirLock } from '../internal/datadir/dir-lock.js';
import { ReedSolomonCode } from '../internal/ec/reed-solomon.js';
import { silentLogger } from '../internal/log/logger.js';
import { HttpNodeClient } from '../internal/nodeclient/http-node-client.js';
import { rebuildManifests } from '../internal/recovery/rebuild-manifests.js';
import { openMetadata } from '../internal/wiring/backends.js';
import { loadTls, nodeClientTls } from '../internal/wiring/tls.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const env: Record<string, string | undefined> = { ...process.env };
  const dataDir = arg('--data-dir');
  if (dataDir) env['STRATA_DATA_DIR'] = dataDir;
  const nodes = arg('--nodes');
  if (nodes) env['STRATA_NODES'] = nodes;
  const config = loadConfig(env as Record<string, string>);
  if (config.nodes.length === 0) throw new Error('no storage nodes: pass --nodes id=url,... or set STRATA_NODES');
  if (!config.clusterToken) throw new Error('STRATA_CLUSTER_TOKEN is required to call the storage nodes');
  // The embedded store lives in the data directory: take its lock first, so that the rebuild never runs beside an
  // all-in-one (or another rebuild) that owns it. The nodes are reached over HTTP and keep their own locks.
  const lock = config.etcdEndpoints.length === 0 ? DirLock.acquire(config.dataDir) : null;
  try {
    await rebuild(config);
  } finally {
    lock?.release();
  }
}

async function rebuild(config: Readonly<StrataConfig>): Promise<void> {
  const { metadata, name } = await openMetadata(config, systemClock, silentLogger);
  const clientTls = nodeClientTls(loadTls(config));
  const clients = config.nodes.map((n) => new HttpNodeClient({ nodeId: n.id, address: n.address, token: config.clusterToken!, timeoutMs: config.nodeTimeoutMs, ...clientTls }));
  console.log(`rebuilding manifests into ${name} from ${clients.length} nodes`);
  try {
    const report = await rebuildManifests({ nodes: clients, metadata, ec: new ReedSolomonCode(), progress: (l) => console.log(l) });
    console.log(JSON.stringify(report, null, 2));
    if (report.unrecoverable.length > 0) process.exitCode = 2;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await metadata.close();
  }
}

main().catch((error: unknown) => {
  console.error(`recover:manifests failed: ${(error as Error).message}`);
  process.exitCode = 1;
});
