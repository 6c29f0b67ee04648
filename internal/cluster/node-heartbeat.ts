/**
 * A storage node's registration in the node registry: one `registerNode` at start, then one every ttl/3, so
 * that two heartbeats in a row can be lost (or slow) before the node's lease lapses and gateways and healers
 * take it for down.
 */
import { assert } from '../core/assert.js';
import type { Logger } from '../log/logger.js';
import type { NodeRegistration, NodeRegistry } from '../metadata/metadata-store.js';

/** Heartbeats per ttl: the lease survives this many minus one missed heartbeats. */
export const HEARTBEATS_PER_TTL = 3;

export interface NodeHeartbeatOptions {
  registry: NodeRegistry;
  node: NodeRegistration;
  ttlMs: number;
  log: Logger;
}

export class NodeHeartbeat {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Failures are logged when they start and when they end, not on every beat. */
  private failing = false;
  readonly intervalMs: number;

  constructor(private readonly options: NodeHeartbeatOptions) {
    assert(Number.isSafeInteger(options.ttlMs) && options.ttlMs >= HEARTBEATS_PER_TTL, 'ttlMs >= HEARTBEATS_PER_TTL');
    this.intervalMs = Math.floor(options.ttlMs / HEARTBEATS_PER_TTL);
  }

  /** One registration; true when the registry took it. Never throws: an unreachable registry is logged. */
  async beatOnce(): Promise<boolean> {
    const { registry, node, ttlMs, log } = this.options;
    try {
      await registry.registerNode(node, ttlMs);
      if (this.failing) log.info({ node: node.id }, 'node registry reachable again; heartbeats resumed');
      this.failing = false;
      return true;
    } catch (error) {
      if (!this.failing) {
        log.warn(
          { err: error, node: node.id },
          `cannot register storage node ${node.id} in the node registry; gateways and healers that find nodes through it will see it as down until this succeeds`,
        );
      }
      this.failing = true;
      return false;
    }
  }

  /** Registers once (awaited, so that the node is known before it reports ready), then every ttl/3. */
  async start(): Promise<boolean> {
    const first = await this.beatOnce();
    this.schedule();
    return first;
  }

  /** Stops heartbeating; the registration stays and its lease runs out after ttl (the node is then down). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }

  /**
   * Graceful shutdown: stops heartbeating and ends the registration's liveness now, so that gateways and healers
   * stop calling this node at their next registry read instead of after the ttl. True when the registry took it;
   * an unreachable registry is logged, and the lease then lapses by itself.
   */
  async leave(): Promise<boolean> {
    await this.stop();
    const { registry, node, log } = this.options;
    try {
      await registry.deregisterNode(node.id);
      log.info({ node: node.id }, 'left the node registry');
      return true;
    } catch (error) {
      log.warn({ err: error, node: node.id }, 'could not leave the node registry; the registration lapses after its ttl');
      return false;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.beatOnce().then(() => this.schedule());
    }, this.intervalMs);
  }
}
