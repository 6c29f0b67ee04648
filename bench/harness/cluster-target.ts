/**
 * The cluster mode: `npm run cluster`'s processes (scripts/local-cluster.ts) in a temporary directory: etcd,
 * Kafka, six storage nodes, three gateways, two healers and nginx in front, all separate processes on this machine.
 */
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { startLocalCluster } from '../../scripts/local-cluster.js';
import type { BenchTarget, TargetOptions } from './target.js';

export async function startClusterTarget(options: TargetOptions): Promise<BenchTarget> {
  const cluster = await startLocalCluster({
    dataDir: options.dataDir,
    env: { STRATA_LOG_LEVEL: 'warn', ...options.env },
    onUnexpectedExit: (proc, code, signal) => options.log(`cluster process ${proc.name} exited unexpectedly (code ${code}, signal ${signal})`),
  });
  const nodeById = new Map(cluster.nodes.map((n) => [n.name, n]));
  const node = (id: string) => {
    const proc = nodeById.get(id);
    if (!proc) throw new Error(`no storage node ${id}`);
    return proc;
  };
  return {
    mode: 'cluster',
    url: cluster.url,
    token: cluster.token,
    nodes: cluster.nodes.map((n) => ({ id: n.name, address: n.address! })),
    backends: { metadata: 'etcd', wal: 'Kafka' },
    description:
      'separate processes on this machine (npm run cluster): etcd, Kafka (KRaft), 6 storage nodes, 3 gateways, 2 healers, ' +
      'nginx in front of the gateways; the load goes through nginx',
    processes: () =>
      cluster
        .procs()
        .filter((p) => p.running && p.pid !== null)
        .map((p) => ({ name: p.name, pid: p.pid! })),
    stopNode: (id) => node(id).stop(),
    async startNode(id, { empty }) {
      // A storage node keeps its blobs in <data>/nodes/<id> (internal/wiring/processes.ts).
      if (empty) await rm(path.join(cluster.dataDir, 'nodes', id), { recursive: true, force: true });
      await node(id).start();
    },
    async stop() {
      await cluster.stop();
      await rm(options.dataDir, { recursive: true, force: true });
    },
  };
}
