/**
 * Picks the metadata store and write-ahead log from configuration: etcd and Kafka/Redpanda when their
 * addresses are configured, the embedded SQLite ones in the data directory otherwise. A distributed backend that
 * cannot be reached at start-up is reported once, clearly, and the process starts anyway: its requests answer
 * 503 METADATA_UNAVAILABLE / WAL_UNAVAILABLE until the backend is back, with no restart needed.
 */
import path from 'node:path';
import type { StrataConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { DataFormatSource } from '../core/data-format.js';
import type { Logger } from '../log/logger.js';
import { EtcdMetadataStore } from '../metadata/etcd-metadata-store.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { SqliteMetadataStore } from '../metadata/sqlite-metadata-store.js';
import { KafkaWriteAheadLog } from '../wal/kafka-wal.js';
import { LazyWriteAheadLog } from '../wal/lazy-wal.js';
import { SqliteWriteAheadLog } from '../wal/sqlite-wal.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';

/** After a failed connection to Kafka, requests fail fast for this long before the next attempt. */
const WAL_REOPEN_AFTER_MS = 1000;

export interface Backends {
  metadata: MetadataStore;
  wal: WriteAheadLog;
  names: { metadata: string; wal: string };
}

/**
 * The metadata store alone: what a storage node needs for the node registry (it never touches the WAL).
 * Unreachable etcd is logged, not thrown, as for openBackends. `dataFormat` is the cluster's data format as this
 * process follows it (internal/cluster/format-version.ts): the etcd store writes binary manifests only at 2.
 */
export async function openMetadata(
  config: Readonly<StrataConfig>,
  clock: Clock,
  log: Logger,
  dataFormat?: DataFormatSource,
): Promise<{ metadata: MetadataStore; name: string }> {
  if (config.etcdEndpoints.length > 0) {
    const name = `etcd (${config.etcdEndpoints.join(', ')})`;
    const metadata = await EtcdMetadataStore.open({
      endpoints: config.etcdEndpoints,
      prefix: config.etcdPrefix,
      clock,
      checkReachable: false,
      log: log.child({ component: 'metadata' }),
      ...(dataFormat ? { dataFormat } : {}),
    });
    try {
      await metadata.currentRevision();
    } catch (error) {
      log.error(
        { err: error },
        `etcd at ${config.etcdEndpoints.join(', ')} cannot be reached; requests answer 503 METADATA_UNAVAILABLE until it is (check STRATA_ETCD_ENDPOINTS)`,
      );
    }
    return { metadata, name };
  }
  const metadata = await SqliteMetadataStore.open({ path: path.join(config.dataDir, 'metadata', 'strata.db'), clock, log: log.child({ component: 'metadata' }) });
  return { metadata, name: 'embedded (SQLite)' };
}

/** The metadata store and the WAL; both write the formats `dataFormat` allows (default: format 1). */
export async function openBackends(config: Readonly<StrataConfig>, clock: Clock, log: Logger, dataFormat?: DataFormatSource): Promise<Backends> {
  const { metadata, name: metadataName } = await openMetadata(config, clock, log, dataFormat);

  let wal: WriteAheadLog;
  let walName: string;
  if (config.kafkaBrokers.length > 0) {
    walName = `kafka (${config.kafkaBrokers.join(', ')}, topic ${config.kafkaTopic})`;
    const lazy = new LazyWriteAheadLog(
      () =>
        KafkaWriteAheadLog.open({
          brokers: config.kafkaBrokers,
          topic: config.kafkaTopic,
          partitions: config.kafkaPartitions,
          ...(config.kafkaReplicationFactor > 0 ? { replicationFactor: config.kafkaReplicationFactor } : {}),
          clientId: 'strata',
          clock,
          ...(dataFormat ? { dataFormat } : {}),
        }),
      clock,
      WAL_REOPEN_AFTER_MS,
      walName,
    );
    if (!(await lazy.tryOpen())) {
      log.error(
        `Kafka at ${config.kafkaBrokers.join(', ')} cannot be reached (${lazy.lastOpenError}); writes answer 503 WAL_UNAVAILABLE until it is (check STRATA_KAFKA_BROKERS)`,
      );
    }
    wal = lazy;
  } else {
    walName = 'embedded (SQLite)';
    wal = await SqliteWriteAheadLog.open({ path: path.join(config.dataDir, 'wal', 'wal.db'), clock, thread: 'worker' });
  }
  return { metadata, wal, names: { metadata: metadataName, wal: walName } };
}
