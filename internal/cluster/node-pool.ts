import type { Clock } from '../core/clock.js';
import { isStrataError } from '../core/errors.js';
import type { NodeClient } from '../nodeclient/node-client.js';
import type { PlacementNode } from '../placement/rendezvous.js';

export type NodeState = 'healthy' | 'down';

export interface NodeView {
  id: string;
  address: string;
  zone?: string;
  state: NodeState;
  lastSeenMs: number | null;
  lastError: string | null;
}

interface Member {
  client: NodeClient;
  zone?: string;
  state: NodeState;
  lastSeenMs: number | null;
  lastError: string | null;
}

/**
 * The storage nodes a gateway or healer knows, with their health as last observed. A node is `down` once a
 * call to it fails with NODE_UNAVAILABLE or a probe fails, and `healthy` again after a probe succeeds. Probes
 * run every `probeIntervalMs` so a recovered node is back in placement within one interval.
 */
export class NodePool {
  private readonly members = new Map<string, Member>();
  private timer: NodeJS.Timeout | null = null;
  private probing = false;

  constructor(
    clients: readonly { client: NodeClient; zone?: string }[],
    private readonly options: { clock: Clock; probeIntervalMs: number; probeTimeoutMs: number },
  ) {
    for (const { client, zone } of clients) {
      const member: Member = { client, state: 'healthy', lastSeenMs: null, lastError: null };
      if (zone !== undefined) member.zone = zone;
      this.members.set(client.nodeId, member);
    }
  }

  get size(): number {
    return this.members.size;
  }

  client(nodeId: string): NodeClient | undefined {
    return this.members.get(nodeId)?.client;
  }

  ids(): string[] {
    return [...this.members.keys()];
  }

  isHealthy(nodeId: string): boolean {
    return this.members.get(nodeId)?.state === 'healthy';
  }

  healthyCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (m.state === 'healthy') n++;
    return n;
  }

  placementNodes(): PlacementNode[] {
    const out: PlacementNode[] = [];
    for (const [id, m] of this.members) {
      const node: PlacementNode = { id, healthy: m.state === 'healthy' };
      if (m.zone !== undefined) node.zone = m.zone;
      out.push(node);
    }
    return out;
  }

  views(): NodeView[] {
    return [...this.members.entries()].map(([id, m]) => {
      const view: NodeView = {
        id,
        address: m.client.address,
        state: m.state,
        lastSeenMs: m.lastSeenMs,
        lastError: m.lastError,
      };
      if (m.zone !== undefined) view.zone = m.zone;
      return view;
    });
  }

  /** Called after every node call: only unavailability marks a node down (a missing blob is not the node's fault). */
  observe(nodeId: string, error: unknown): void {
    const m = this.members.get(nodeId);
    if (!m) return;
    if (error === null || error === undefined) {
      m.state = 'healthy';
      m.lastSeenMs = this.options.clock.nowMs();
      m.lastError = null;
    } else if (isStrataError(error, 'NODE_UNAVAILABLE')) {
      m.state = 'down';
      m.lastError = error.message;
    }
  }

  /** One probe of every node, in parallel. */
  async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await Promise.all(
        [...this.members.values()].map(async (m) => {
          const ok = await m.client.ping({ timeoutMs: this.options.probeTimeoutMs });
          if (ok) {
            m.state = 'healthy';
            m.lastSeenMs = this.options.clock.nowMs();
            m.lastError = null;
          } else {
            m.state = 'down';
            m.lastError = 'health probe failed';
          }
        }),
      );
    } finally {
      this.probing = false;
    }
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.probe(), this.options.probeIntervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.members.values()].map((m) => m.client.close()));
  }
}
