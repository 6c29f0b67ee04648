/**
 * The all-in-one cluster as `npm start` builds it (internal/wiring/all-in-one.ts), run by the bench harness in a
 * child process of its own, so that the gateway's CPU and memory are measured apart from the load generator.
 * Configured only through STRATA_* variables (internal/config). It answers the harness over the IPC channel:
 * the benchmarks stop and start in-process storage nodes (degraded reads, heal), which has no HTTP route on
 * purpose. Messages and answers are in all-in-one-target.ts.
 */
import { readFile, rm } from 'node:fs/promises';
import { loadConfig } from '../../internal/config/config.js';
import { createLogger } from '../../internal/log/logger.js';
import { startAllInOne } from '../../internal/wiring/all-in-one.js';
import type { ChildAnswer, ChildRequest } from './all-in-one-target.js';

const config = loadConfig();
const log = createLogger(config.logLevel, 'strata-bench-all-in-one');
// Process metrics (heap, external memory) on /metrics, so that the harness can say what the RSS is made of.
const cluster = await startAllInOne(config, { log, processMetrics: true });
// startAllInOne keeps the node token it generated here; the harness needs it to list the nodes' inventories.
const token = config.clusterToken ?? (await readFile(`${config.dataDir}/cluster-token`, 'utf8')).trim();

let stopping: Promise<void> | null = null;
const stopOnce = (): Promise<void> => (stopping ??= cluster.stop());

function answer(message: ChildAnswer): void {
  process.send?.(message);
}

async function handle(request: ChildRequest): Promise<ChildAnswer> {
  const node = 'node' in request ? cluster.nodes.find((n) => n.id === request.node) : undefined;
  if ('node' in request && !node) return { id: request.id, ok: false, error: `no node ${request.node}` };
  switch (request.type) {
    case 'stop-node':
      await node!.stop();
      return { id: request.id, ok: true };
    case 'start-node':
      // An empty node is a replaced disk: its blobs are gone and the healer must rebuild them.
      if (request.empty) await rm(node!.dataDir, { recursive: true, force: true });
      await node!.start();
      return { id: request.id, ok: true };
    case 'stop':
      await stopOnce();
      return { id: request.id, ok: true };
  }
}

process.on('message', (request: ChildRequest) => {
  handle(request).then(answer, (error: unknown) => answer({ id: request.id, ok: false, error: (error as Error).message }));
});
// The harness going away must not leave a cluster behind.
process.on('disconnect', () => void stopOnce().finally(() => process.exit(0)));

answer({
  id: 0,
  ok: true,
  ready: { url: cluster.url, token, nodes: cluster.nodes.map((n) => ({ id: n.id, address: n.address })) },
});
