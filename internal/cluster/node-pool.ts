import type { Clock } from '../core/clock.js';
import { isStrataError } from '../core/errors.js';
import type { RegisteredNode } from '../metadata/metadata-store.js';
import type { NodeClient } from '../nodeclient/node-client.js';
import type { PlacementNode } from '../placement/rendezvous.js';

export type NodeState = 'healthy' | 'down';

export interface NodeView {
  id: string;
  address: string;
  zone?: string;
  /** 'down' when calls or probes fail, or when the registry says the node's heartbeat lease expired. */
  state: NodeState;
  /** An operator is draining the node: it takes no new writes, serves reads, and the healer empties it. */
  draining: boolean;
  lastSeenMs: number | null;
  lastError: string | null;
  /** Takes new blobs: false while its capacity report says its disk is down to the reserve, or after a DISK_FULL. */
  writable: boolean;
  /** Why it takes no new blobs (the node's own message); null while writable. */
  fullReason: string | null;
}

/** What the pool says about room for new blobs (GET /cluster, /health/ready, strata_writable). */
export interface PoolCapacity {
  /** Healthy nodes, not draining, that take new blobs. */
  nodesWithRoom: number;
  /** Healthy nodes, not draining (with room or not). */
  nodesUp: number;
}

/** Builds the client of a node the registry announced (wiring decides the transport and the token). */
export type MakeNodeClient = (node: RegisteredNode) => NodeClient;

export interface RegistrySyncResult {
  added: string[];
  removed: string[];
}

/** How long a node that refused a put with DISK_FULL is left out of placement before it is tried again. */
const DISK_FULL_AVOID_MS = 30_000;

interface Member {
  client: NodeClient;
  zone?: string;
  /** As observed by calls and probes. */
  state: NodeState;
  lastSeenMs: number | null;
  lastError: string | null;
  /** The registry's view of the node's heartbeat lease; a member the registry never listed counts as alive. */
  leaseAlive: boolean;
  lastHeartbeatMs: number | null;
  draining: boolean;
  /** Listed by the registry at least once: it leaves the pool when the registry stops listing it. */
  registered: boolean;
  /** When this pool first saw the node down since it was last healthy (its own clock); null while healthy. */
  downSinceMs: number | null;
  /** A put was refused with DISK_FULL: new blobs go elsewhere until this time (reads are unaffected). */
  fullUntilMs?: number;
  /** The message of that refusal. */
  fullMessage?: string;
  /** The node's last capacity report said it takes no new blobs, with this reason; null when it has room. */
  reportedFull: string | null;
  /**
   * Why the node is out of service whatever its probes say (its directory could not be opened at start-up, see
   * `holdDown`); shown as its last error until the hold is lifted. Null when not held.
   */
  heldDownReason: string | null;
}

/**
 * The storage nodes a gateway or healer knows, with their health as last observed. A node is `down` once a
 * call to it fails with NODE_UNAVAILABLE or a probe fails, and `healthy` again after a probe succeeds. Probes
 * run every `probeIntervalMs` so a recovered node is back in placement within one interval.
 *
 * Membership is either static (the constructor's list: STRATA_NODES, the all-in-one's six nodes) or kept in
 * step with the node registry by `syncFromRegistry`: new nodes join at once, nodes whose heartbeat lease
 * expired are down whatever their probes say, draining nodes stay readable but leave placement, and nodes the
 * registry no longer lists (removed) leave the pool. Both can mix: a static member the registry lists is
 * managed by it from then on.
 */
export class NodePool {
  private readonly members = new Map<string, Member>();
  private timer: NodeJS.Timeout | null = null;
  private probing = false;

  constructor(
    clients: readonly { client: NodeClient; zone?: string }[],
    private readonly options: { clock: Clock; probeIntervalMs: number; probeTimeoutMs: number },
  ) {
    for (const { client, zone } of clients) this.members.set(client.nodeId, newMember(client, zone));
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
    const m = this.members.get(nodeId);
    return m !== undefined && isUp(m);
  }

  isDraining(nodeId: string): boolean {
    return this.members.get(nodeId)?.draining === true;
  }

  healthyCount(): number {
    let n = 0;
    for (const m of this.members.values()) if (isUp(m)) n++;
    return n;
  }

  /** Every member; draining ones are flagged so that placement leaves them out of new writes. */
  placementNodes(): PlacementNode[] {
    const out: PlacementNode[] = [];
    for (const [id, m] of this.members) {
      // A full node is chosen last, only when there are not enough others (placement skips it otherwise).
      const node: PlacementNode = { id, healthy: isUp(m) };
      if (this.isFull(m)) node.full = true;
      if (m.zone !== undefined) node.zone = m.zone;
      if (m.draining) node.draining = true;
      out.push(node);
    }
    return out;
  }

  views(): NodeView[] {
    return [...this.members.entries()].map(([id, m]) => {
      const view: NodeView = {
        id,
        address: m.client.address,
        state: isUp(m) ? 'healthy' : 'down',
        draining: m.draining,
        lastSeenMs: m.lastSeenMs,
        lastError: m.heldDownReason ?? (m.leaseAlive ? m.lastError : (m.lastError ?? 'heartbeat lease expired (registry)')),
        writable: !this.isFull(m),
        fullReason: this.isFull(m) ? (m.reportedFull ?? m.fullMessage ?? 'its disk is full (it refused a put with DISK_FULL)') : null,
      };
      if (m.zone !== undefined) view.zone = m.zone;
      return view;
    });
  }

  capacity(): PoolCapacity {
    let nodesWithRoom = 0;
    let nodesUp = 0;
    for (const m of this.members.values()) {
      if (!isUp(m) || m.draining) continue;
      nodesUp++;
      if (!this.isFull(m)) nodesWithRoom++;
    }
    return { nodesWithRoom, nodesUp };
  }

  private isFull(m: Member): boolean {
    return m.reportedFull !== null || (m.fullUntilMs !== undefined && m.fullUntilMs > this.options.clock.nowMs());
  }

  /**
   * How long the node has been down: 0 while it is up, otherwise since this pool first saw it down or, when the
   * registry says its lease expired, since its last heartbeat, whichever is earlier (the registry remembers
   * across healer restarts; this pool does not). Unknown nodes: null.
   */
  downForMs(nodeId: string): number | null {
    const m = this.members.get(nodeId);
    if (m === undefined) return null;
    if (isUp(m)) return 0;
    const nowMs = this.options.clock.nowMs();
    let sinceMs = m.downSinceMs ?? nowMs;
    if (!m.leaseAlive && m.lastHeartbeatMs !== null) sinceMs = Math.min(sinceMs, m.lastHeartbeatMs);
    return Math.max(0, nowMs - sinceMs);
  }

  /**
   * Brings membership in line with the registry's list (see the class comment). A new node is taken as healthy
   * at once, so that placement gives it new writes before the next probe; a node whose address changed gets a
   * new client. Returns the ids that joined and left.
   */
  syncFromRegistry(nodes: readonly RegisteredNode[], makeClient: MakeNodeClient): RegistrySyncResult {
    const result: RegistrySyncResult = { added: [], removed: [] };
    const listed = new Set<string>();
    for (const node of nodes) {
      listed.add(node.id);
      let m = this.members.get(node.id);
      if (m === undefined || m.client.address !== node.address) {
        if (m !== undefined) void m.client.close().catch(() => undefined);
        else result.added.push(node.id);
        m = newMember(makeClient(node), node.zone);
        this.members.set(node.id, m);
      }
      if (node.zone === undefined) delete m.zone;
      else m.zone = node.zone;
      m.draining = node.state === 'draining';
      m.leaseAlive = node.alive;
      m.lastHeartbeatMs = node.lastHeartbeatMs;
      m.registered = true;
      if (!node.alive) m.downSinceMs ??= this.options.clock.nowMs();
    }
    for (const [id, m] of this.members) {
      if (!m.registered || listed.has(id)) continue;
      this.members.delete(id);
      void m.client.close().catch(() => undefined);
      result.removed.push(id);
    }
    return result;
  }

  /** Called after every node call: only unavailability marks a node down (a missing blob is not the node's fault). */
  observe(nodeId: string, error: unknown): void {
    const m = this.members.get(nodeId);
    if (!m) return;
    if (error === null || error === undefined) {
      this.markUp(m);
    } else if (isStrataError(error, 'NODE_UNAVAILABLE')) {
      this.markDown(m, error.message);
    } else if (isStrataError(error, 'DISK_FULL')) {
      m.fullUntilMs = this.options.clock.nowMs() + DISK_FULL_AVOID_MS;
      m.fullMessage = error.message;
      m.lastError = error.message;
    }
  }

  /**
   * Keeps a node down, with `reason` as its last error in views (GET /cluster), until `liftHold`: the wiring
   * says so when it could not open the node's directory, so that a probe cannot make it look merely unreachable.
   */
  holdDown(nodeId: string, reason: string): void {
    const m = this.members.get(nodeId);
    if (!m) return;
    m.heldDownReason = reason;
    this.markDown(m, reason);
  }

  /** The node was opened after all: probes and calls decide its state again (it is taken as up at once). */
  liftHold(nodeId: string): void {
    const m = this.members.get(nodeId);
    if (!m || m.heldDownReason === null) return;
    m.heldDownReason = null;
    this.markUp(m);
  }

  /** One probe of every node, in parallel. */
  async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await Promise.all(
        [...this.members.values()].map(async (m) => {
          const options = { timeoutMs: this.options.probeTimeoutMs };
          const report = m.client.probe ? await m.client.probe(options) : { up: await m.client.ping(options), writable: true, reason: null };
          if (!report.up) {
            this.markDown(m, 'health probe failed');
            return;
          }
          this.markUp(m);
          // The node's own report wins over an earlier refusal: once compaction gave space back it takes blobs again.
          if (report.writable) {
            // Only a node that reported itself full lifts its own pause; a refusal from a node that reports no
            // capacity (an ENOSPC without a reserve) keeps its 30 s pause.
            if (m.reportedFull !== null) delete m.fullUntilMs;
            m.reportedFull = null;
          } else {
            m.reportedFull = report.reason ?? `${m.client.nodeId}: disk full`;
          }
        }),
      );
    } finally {
      this.probing = false;
    }
  }

  private markUp(m: Member): void {
    m.state = 'healthy';
    m.lastSeenMs = this.options.clock.nowMs();
    m.lastError = null;
    if (m.leaseAlive && m.heldDownReason === null) m.downSinceMs = null;
  }

  private markDown(m: Member, why: string): void {
    m.state = 'down';
    m.lastError = why;
    m.downSinceMs ??= this.options.clock.nowMs();
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

function newMember(client: NodeClient, zone: string | undefined): Member {
  const member: Member = {
    client,
    state: 'healthy',
    lastSeenMs: null,
    lastError: null,
    leaseAlive: true,
    lastHeartbeatMs: null,
    draining: false,
    registered: false,
    downSinceMs: null,
    heldDownReason: null,
    reportedFull: null,
  };
  if (zone !== undefined) member.zone = zone;
  return member;
}

/** Reachable as last observed, and (for registered nodes) still heartbeating. */
function isUp(m: Member): boolean {
  return m.state === 'healthy' && m.leaseAlive && m.heldDownReason === null;
}
