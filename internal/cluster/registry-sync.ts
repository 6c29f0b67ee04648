/**
 * Keeps a NodePool in step with the node registry: gateways and healers that have no static STRATA_NODES list
 * read the registry every `intervalMs`, so a node added at runtime takes new writes within one interval, a
 * drained one leaves placement, and one that stopped heartbeating is down (NodePool.syncFromRegistry).
 */
import type { Logger } from '../log/logger.js';
import type { NodeRegistry } from '../metadata/metadata-store.js';
import type { MakeNodeClient, NodePool } from './node-pool.js';

/** How often gateways and healers re-read the registry. */
export const REGISTRY_SYNC_INTERVAL_MS = 1_000;

export interface RegistrySyncOptions {
  registry: NodeRegistry;
  pool: NodePool;
  makeClient: MakeNodeClient;
  log: Logger;
  intervalMs?: number;
}

export class RegistrySync {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<unknown> | null = null;
  private stopped = false;
  private failing = false;
  private readonly intervalMs: number;

  constructor(private readonly options: RegistrySyncOptions) {
    this.intervalMs = options.intervalMs ?? REGISTRY_SYNC_INTERVAL_MS;
  }

  /** One read of the registry; true when it answered. Never throws: the pool keeps its last view meanwhile. */
  async syncOnce(): Promise<boolean> {
    const { registry, pool, makeClient, log } = this.options;
    try {
      const nodes = await registry.listNodes();
      const { added, removed } = pool.syncFromRegistry(nodes, makeClient);
      if (added.length > 0) log.info({ nodes: added }, 'storage nodes joined (node registry)');
      if (removed.length > 0) log.info({ nodes: removed }, 'storage nodes removed (node registry)');
      if (this.failing) log.info('node registry reachable again');
      this.failing = false;
      return true;
    } catch (error) {
      if (!this.failing) log.warn({ err: error }, 'cannot read the node registry; keeping the last known storage nodes');
      this.failing = true;
      return false;
    }
  }

  start(): void {
    if (this.timer || this.stopped) return;
    const tick = (): void => {
      this.running = this.syncOnce().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.intervalMs);
      });
    };
    this.timer = setTimeout(tick, this.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}
