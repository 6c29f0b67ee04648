/**
 * What the healer does when membership changes (architecture.md, "Healer"; README "Membership"):
 *
 * - drain: blobs on a draining node move to nodes that placement picks among the healthy active ones the
 *   document's tier does not use yet; a draining node that no manifest references any more is reported empty,
 *   so an operator can remove it;
 * - rebalance: when a node holds much less than the average (a new node: short by more than the tolerance and
 *   by at least `rebalanceDeficitBytesMin`), blobs move onto it at a bounded rate until it is within the
 *   tolerance of the average, choosing first the blobs whose key now ranks that node among its placement (what
 *   rendezvous hashing would have chosen had the node been there from the start), then others by how highly
 *   their key ranks it;
 * - long-down nodes: see Healer.goneNodes (the repairer rebuilds their blobs on spare nodes).
 *
 * Every move goes through blob-mover.ts (copy, commit, then delete), so no document ever drops below the
 * protection it had.
 */
import type { NodePool } from '../cluster/node-pool.js';
import { chooseNodes, rankNodes, type PlacementNode } from '../placement/rendezvous.js';
import type { BlobRef, Manifest } from '../manifest/manifest.js';
import type { BlobMove, Tier } from './blob-mover.js';
import type { Inventory } from './repairer.js';

export const MEMBERSHIP_LIMITS = {
  /**
   * A node holding less than (1 - this) times the average of the active nodes is rebalanced onto, until it
   * holds at least that much; no move takes a donor below it either.
   */
  rebalanceToleranceRatio: 0.1,
  /** Rebalance moves planned by one audit and carried out over the following rounds. */
  rebalanceQueueMax: 10_000,
  /** Blobs moved off draining nodes in one audit pass (the rest wait for the next pass). */
  drainBlobsPerPassMax: 100_000,
} as const;

/** Nodes that may receive blobs: healthy (reachable, heartbeating) and not draining. */
export function activeNodes(pool: NodePool): PlacementNode[] {
  return pool.placementNodes().filter((n) => n.healthy && n.draining !== true);
}

function tierRefs(manifest: Manifest, tier: Tier): BlobRef[] {
  return tier === 'hot' ? manifest.hot : manifest.cold;
}

const TIERS: readonly Tier[] = ['hot', 'cold'];

/**
 * The new node of a ref leaving `tier`: the best-ranked node of the tier's full placement among `active` that the
 * tier does not use yet (so zones stay spread as placement spreads them), else the best-ranked unused one.
 */
function replacementFor(key: string, tier: Tier, refs: readonly BlobRef[], active: readonly PlacementNode[], taken: ReadonlySet<string>): string | null {
  const seed = `${key}/${tier}`;
  const free = active.filter((n) => !taken.has(n.id));
  if (free.length === 0) return null;
  const desired = chooseNodes(seed, active, Math.min(refs.length, active.length));
  return desired.find((id) => !taken.has(id)) ?? rankNodes(seed, free)[0]!.id;
}

/** The moves that take every ref of `manifest` off draining nodes (none when no node can take one). */
export function drainMoves(manifest: Manifest, pool: NodePool): BlobMove[] {
  const active = activeNodes(pool);
  const moves: BlobMove[] = [];
  for (const tier of TIERS) {
    const refs = tierRefs(manifest, tier);
    const taken = new Set(refs.map((r) => r.node));
    refs.forEach((ref, index) => {
      if (!pool.isDraining(ref.node)) return;
      const to = replacementFor(manifest.key, tier, refs, active, taken);
      if (to === null) return;
      taken.add(to);
      moves.push({ tier, index, to });
    });
  }
  return moves;
}

/** A planned rebalance move, re-checked against the current manifest when it is carried out. */
export interface RebalanceMove {
  key: string;
  tier: Tier;
  part: string;
  from: string;
  to: string;
  size: number;
}

interface Candidate extends RebalanceMove {
  /** The target is among the tier's placement for this key now: rendezvous would put it there. */
  preferred: boolean;
  /** The target's position in the key's ranking (0 = first choice). */
  rank: number;
}

/**
 * One audit's rebalance plan: built from the node inventories (bytes each active node stores), fed every
 * healthy manifest of the audit walk, and turned into a bounded queue of moves by `finish`.
 */
export class RebalancePlanner {
  private readonly usage = new Map<string, number>();
  private readonly averageBytes: number;
  private readonly floorBytes: number;
  private readonly targets: Set<string>;
  private readonly active: PlacementNode[];
  private readonly preferred: Candidate[] = [];
  private readonly fallback: Candidate[] = [];

  constructor(pool: NodePool, inventories: ReadonlyMap<string, Inventory>, deficitBytesMin: number) {
    this.active = activeNodes(pool);
    let total = 0;
    let complete = this.active.length > 1;
    for (const node of this.active) {
      const inventory = inventories.get(node.id);
      if (!inventory) {
        // Not listed this pass: its usage is unknown, and planning on a guess could move data the wrong way.
        complete = false;
        continue;
      }
      let bytes = 0;
      for (const info of inventory.values()) bytes += info.size;
      this.usage.set(node.id, bytes);
      total += bytes;
    }
    this.averageBytes = complete ? total / this.active.length : 0;
    this.floorBytes = this.averageBytes * (1 - MEMBERSHIP_LIMITS.rebalanceToleranceRatio);
    const underfull = (id: string) => {
      const bytes = this.usage.get(id) ?? 0;
      return bytes < this.floorBytes && this.averageBytes - bytes >= deficitBytesMin;
    };
    this.targets = new Set(complete ? this.active.filter((n) => underfull(n.id)).map((n) => n.id) : []);
  }

  /** Nodes below the tolerance at the start of this audit. */
  underfull(): string[] {
    return [...this.targets];
  }

  /** Considers the refs of a manifest whose blobs are all healthy. */
  consider(manifest: Manifest): void {
    if (this.targets.size === 0) return;
    for (const tier of TIERS) {
      const candidate = this.candidateFor(manifest, tier);
      if (candidate === null) continue;
      const list = candidate.preferred ? this.preferred : this.fallback;
      if (list.length < MEMBERSHIP_LIMITS.rebalanceQueueMax) list.push(candidate);
    }
  }

  /**
   * The moves to carry out, best first: those rendezvous prefers, then the others by how highly the key ranks
   * the target. Each is kept only while its target is still below the floor and its donor stays above it, as
   * projected from the moves kept before it.
   */
  finish(): RebalanceMove[] {
    const projected = new Map(this.usage);
    const byRank = (a: Candidate, b: Candidate) => a.rank - b.rank || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
    const queue: RebalanceMove[] = [];
    for (const c of [...this.preferred.sort(byRank), ...this.fallback.sort(byRank)]) {
      if (queue.length >= MEMBERSHIP_LIMITS.rebalanceQueueMax) break;
      const toBytes = projected.get(c.to) ?? 0;
      const fromBytes = projected.get(c.from) ?? 0;
      if (toBytes >= this.floorBytes || fromBytes - c.size < this.floorBytes) continue;
      projected.set(c.to, toBytes + c.size);
      projected.set(c.from, fromBytes - c.size);
      queue.push({ key: c.key, tier: c.tier, part: c.part, from: c.from, to: c.to, size: c.size });
    }
    return queue;
  }

  private candidateFor(manifest: Manifest, tier: Tier): Candidate | null {
    const refs = tierRefs(manifest, tier);
    if (refs.length === 0 || refs.length > this.active.length) return null;
    const used = new Set(refs.map((r) => r.node));
    const seed = `${manifest.key}/${tier}`;
    const ranking = rankNodes(seed, this.active).map((n) => n.id);
    // The target: the underfull node this key ranks highest among those the tier does not use.
    const to = ranking.find((id) => this.targets.has(id) && !used.has(id));
    if (to === undefined) return null;
    const desired = new Set(chooseNodes(seed, this.active, refs.length));
    // The donor: a ref on an active node that the key's placement no longer includes, the fullest first; else
    // (fallback) the ref on the fullest node.
    const movable = refs.filter((r) => r.state === 'ok' && this.usage.has(r.node) && !this.targets.has(r.node));
    const fuller = (a: BlobRef, b: BlobRef) => (this.usage.get(b.node) ?? 0) - (this.usage.get(a.node) ?? 0);
    const displaced = movable.filter((r) => !desired.has(r.node)).sort(fuller);
    const from = displaced[0] ?? movable.sort(fuller)[0];
    if (from === undefined) return null;
    if (!this.keepsZoneSpread(refs, from.node, to)) return null;
    return {
      key: manifest.key,
      tier,
      part: from.part,
      from: from.node,
      to,
      size: from.size,
      preferred: desired.has(to),
      rank: ranking.indexOf(to),
    };
  }

  /** A move must not put the tier in fewer failure domains than it is in now. */
  private keepsZoneSpread(refs: readonly BlobRef[], from: string, to: string): boolean {
    const zoneOf = (id: string) => {
      const zone = this.active.find((n) => n.id === id)?.zone;
      return zone === undefined ? `node:${id}` : `zone:${zone}`;
    };
    const before = new Set(refs.map((r) => zoneOf(r.node)));
    const after = new Set(refs.map((r) => zoneOf(r.node === from ? to : r.node)));
    return after.size >= before.size;
  }
}
