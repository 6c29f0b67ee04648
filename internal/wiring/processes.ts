/**
 * Wiring of the separate processes (`cmd/api`, `cmd/storage-node`, `cmd/healer`): on etcd and Kafka when they
 * are configured, otherwise on the embedded backends in a data directory the processes share (one machine).
 */
import path from 'node:path';
import { NodePool } from '../cluster/node-pool.js';
import { ConfigError, type StrataConfig } from '../config/config.js';
import { systemClock } from '../core/clock.js';
import { ReedSolomonCode } from '../ec/reed-solomon.js';
import { buildHealer } from './healer.js';
import type { Logger } from '../log/logger.js';
import { HttpNodeClient } from '../nodeclient/http-node-client.js';
import { startStorageNode } from '../storagenode/server.js';
import { openBackends } from './backends.js';
import { buildGateway } from './gateway.js';
import { serveApp } from './http-server.js';

export interface Running {
  describe: string;
  stop(): Promise<void>;
}

function requireToken(config: Readonly<StrataConfig>): string {
  if (!config.clusterToken) throw new ConfigError('STRATA_CLUSTER_TOKEN is required when processes run separately');
  return config.clusterToken;
}

function nodePool(config: Readonly<StrataConfig>): NodePool {
  if (config.nodes.length < 6) throw new ConfigError('STRATA_NODES must list at least 6 storage nodes (id=http://host:port,...)');
  const token = requireToken(config);
  const pool = new NodePool(
    config.nodes.map((n) => ({
      client: new HttpNodeClient({ nodeId: n.id, address: n.address, token, timeoutMs: config.nodeTimeoutMs }),
      ...(n.zone ? { zone: n.zone } : {}),
    })),
    { clock: systemClock, probeIntervalMs: config.nodeProbeIntervalMs, probeTimeoutMs: Math.min(1000, config.nodeTimeoutMs) },
  );
  pool.start();
  return pool;
}


export async function runGateway(config: Readonly<StrataConfig>, log: Logger): Promise<Running> {
  const pool = nodePool(config);
  await pool.probe();
  const { metadata, wal, names } = await openBackends(config, systemClock, log);
  const gateway = buildGateway({ config, metadata, wal, pool, ec: new ReedSolomonCode(), clock: systemClock, log, backends: names });
  const http = await serveApp(gateway.app, config.host, config.port);
  return {
    describe: `gateway listening on ${http.address}`,
    async stop() {
      await http.close();
      await gateway.writes.drain();
      await pool.close();
      await wal.close();
      await metadata.close();
    },
  };
}

export async function runStorageNode(config: Readonly<StrataConfig>, log: Logger): Promise<Running> {
  const node = await startStorageNode({
    nodeId: config.nodeId,
    dataDir: path.join(config.dataDir, 'nodes', config.nodeId),
    host: config.host,
    port: config.port,
    token: requireToken(config),
    ...(config.scrubIntervalMs > 0 ? { scrubIntervalMs: config.scrubIntervalMs, scrubBytesPerSecMax: config.scrubBytesPerSecMax } : {}),
    onError: (err) => log.error({ err }, 'storage node error'),
  });
  return { describe: `storage node ${config.nodeId} listening on ${node.address}`, stop: () => node.stop() };
}

export async function runHealer(config: Readonly<StrataConfig>, log: Logger): Promise<Running> {
  const pool = nodePool(config);
  const { metadata, wal } = await openBackends(config, systemClock, log);
  const healer = buildHealer(config, { metadata, wal, pool, ec: new ReedSolomonCode(), clock: systemClock, log });
  healer.start();
  return {
    describe: 'healer running (it leads when it holds the lease)',
    async stop() {
      await healer.stop();
      await pool.close();
      await wal.close();
      await metadata.close();
    },
  };
}
