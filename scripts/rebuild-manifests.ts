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
import { parseArgs } from 'node:util';
import { loadConfig, type StrataConfig } from '../internal/config/config.js';
import { systemClock } from '../internal/core/clock.js';
import { DirLock } from '../internal/datadir/dir-lock.js';
import { ReedSolomonCode } from '../internal/ec/reed-solomon.js';
import { silentLogger } from '../internal/log/logger.js';
import { HttpNodeClient } from '../internal/nodeclient/http-node-client.js';
import { rebuildManifests } from '../internal/recovery/rebuild-manifests.js';
import { openMetadata } from '../internal/wiring/backends.js';
import { loadTls, nodeClientTls } from '../internal/wiring/tls.js';

const USAGE = `Usage: npm run recover:manifests -- [--data-dir DIR] [--nodes id=url,...]

Rebuilds every manifest from the storage nodes' blobs after the metadata store was lost. Stop every gateway and
healer first, and start them again afterwards.

  --data-dir DIR        the data directory of the embedded metadata store (default: $STRATA_DATA_DIR, else ./data)
  --nodes id=url,...    the storage nodes (default: $STRATA_NODES)
  -h, --help            this help

Environment: STRATA_CLUSTER_TOKEN (required: the nodes' token), STRATA_ETCD_ENDPOINTS (rebuild into etcd instead of
the embedded store), and the STRATA_* TLS settings of the nodes.
Exit status: 0 every manifest rebuilt; 1 the rebuild could not run; 2 some documents could not be recovered.
`;

async function main(): Promise<void> {
  let values: { 'data-dir'?: string; nodes?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: process.argv.slice(2),
      options: { 'data-dir': { type: 'string' }, nodes: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const env: Record<string, string | undefined> = { ...process.env };
  if (values['data-dir']) env['STRATA_DATA_DIR'] = values['data-dir'];
  if (values.nodes) env['STRATA_NODES'] = values.nodes;
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
