import type { GatewayCapacity } from './capacity-view.js';
import type { NodePool } from '../cluster/node-pool.js';
import type { StrataConfig } from '../config/config.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../log/logger.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import type { ReadService } from '../readservice/read-service.js';
import type { WriteAheadLog } from '../wal/write-ahead-log.js';
import type { DocumentOps } from '../writeservice/document-ops.js';
import type { AccessRecorder } from '../tiering/access-recorder.js';
import type { BodyBudget } from './body-budget.js';
import type { DataFormatSource } from '../core/data-format.js';

/** Everything the gateway's routes use, wired in internal/wiring. */
export interface GatewayDeps {
  config: Readonly<StrataConfig>;
  metadata: MetadataStore;
  wal: WriteAheadLog;
  pool: NodePool;
  reads: ReadService;
  ops: DocumentOps;
  clock: Clock;
  log: Logger;
  /** Names of the backends in use, for /cluster. */
  backends: { metadata: string; wal: string };
  /** The healer leader lock's name, for /cluster. */
  healerLockName: string;
  /** The bound on document bodies held in memory (writes reserve, reads hold their response until sent). */
  bodies: BodyBudget;
  /** Access statistics and tiering records (GET/PUT /policy); absent in apps built without tiering. */
  tiering?: AccessRecorder;
  /** The local disk's reserve when this gateway's metadata and log are on it (the all-in-one). */
  capacity?: GatewayCapacity;
  /**
   * The cluster's data format as this process follows it (internal/cluster/format-version.ts); the all-in-one's is
   * fixed at DATA_FORMAT_MAX. GET /admin/format-version reports it when there is no cluster identity record.
   */
  dataFormat?: DataFormatSource;
}
