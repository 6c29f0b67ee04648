/**
 * Rendezvous (highest random weight) hashing: every node gets a score hash(nodeId, seed) and a key's blobs go to
 * the nodes with the highest scores. Every gateway and healer computes the same answer from the node list alone,
 * with no shared table, and adding or removing one node of n moves only about 1/n of the choices.
 *
 * The gateway seeds with `key + '/hot'` for the three hot replicas and `key + '/cold'` for the six shards, so the
 * two sets are chosen independently of each other.
 */
import { hash } from 'node:crypto';
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';

export interface PlacementNode {
  id: string;
  /** Failure domain (rack, zone). A node without one is a failure domain by itself. */
  zone?: string;
  healthy: boolean;
  /** Being decommissioned: never chosen for new blobs (reads of what it holds go through the manifest). */
  draining?: boolean;
  /** Its disk is down to its reserve (capacity report or a DISK_FULL refusal): chosen only after every other node. */
  full?: boolean;
}

/** Hex digits of the digest used as the score: 64 bits. */
const SCORE_HEX_DIGITS = 16;

/**
 * The node's score for `seed`: the first 64 bits of SHA-256, as 16 lowercase hex digits, so that comparing the
 * strings compares the numbers. SHA-256 is fixed by its standard, so every process on every Node version agrees.
 * The id is length-prefixed so that no two (id, seed) pairs hash the same text ("a" + "bc" vs "ab" + "c").
 */
function score(nodeId: string, seed: string): string {
  return hash('sha256', `${nodeId.length}:${nodeId}${seed}`, 'hex').slice(0, SCORE_HEX_DIGITS);
}

/**
 * All `nodes`, highest score for `seed` first (ties, which need a 64-bit collision, go to the smaller id).
 * `seed`: any string, usually derived from the object key. `nodes`: ids are compared exactly; not modified.
 */
export function rankNodes(seed: string, nodes: readonly PlacementNode[]): PlacementNode[] {
  assert(typeof seed === 'string', "typeof seed != 'string'");
  const scored = nodes.map((node) => {
    assert(typeof node.id === 'string', "typeof node.id != 'string'");
    return { node, score: score(node.id, seed) };
  });
  scored.sort((a, b) => compareDescending(a.score, b.score) || compareAscending(a.node.id, b.node.id));
  return scored.map(({ node }) => node);
}

/**
 * `count` distinct node ids for `seed`, best first:
 * 1. healthy nodes in rank order, spread over zones: no zone gets another pick while some other zone that still
 *    has a healthy unpicked node has fewer picks;
 * 2. only when there are fewer than `count` healthy nodes with room, unhealthy ones in rank order (the write will
 *    miss them and be marked partial, and the healer completes it);
 * 3. last, full nodes in rank order: they refuse the blob (nothing is stored there) and the write is partial, or
 *    refused with DISK_FULL below its quorum (nodesWithRoom says how many have room).
 *
 * `seed`: any string. `nodes`: an id listed twice counts once (its first entry wins). `count`: an integer >= 0.
 * `options.exclude`: ids never chosen (e.g. nodes that already hold another part of the same key); draining nodes
 * are never chosen either. Throws INSUFFICIENT_NODES when fewer than `count` distinct nodes remain after both.
 */
export function chooseNodes(
  seed: string,
  nodes: readonly PlacementNode[],
  count: number,
  options?: { exclude?: ReadonlySet<string> },
): string[] {
  assert(Number.isSafeInteger(count), '!Number.isSafeInteger(count)');
  assert(count >= 0, 'count < 0');
  const exclude = options?.exclude;
  const candidates = distinctById(nodes).filter((node) => node.draining !== true && !exclude?.has(node.id));
  if (candidates.length < count) {
    const draining = distinctById(nodes).filter((node) => node.draining === true).length;
    throw new StrataError(
      'INSUFFICIENT_NODES',
      `${candidates.length} storage nodes available` +
        (exclude && exclude.size > 0 ? ` (after excluding ${exclude.size})` : '') +
        (draining > 0 ? ` (${draining} draining)` : '') +
        `, ${count} needed`,
      { nodesAvailable: candidates.length, nodesNeeded: count },
    );
  }
  const ranked = rankNodes(seed, candidates);
  const chosen = spreadOverZones(ranked.filter((node) => node.healthy && node.full !== true), count);
  for (const node of ranked) {
    if (chosen.length === count) break;
    if (!node.healthy && node.full !== true) chosen.push(node.id);
  }
  for (const node of ranked) {
    if (chosen.length === count) break;
    if (node.full === true) chosen.push(node.id);
  }
  assert(chosen.length === count, 'chosen.length != count');
  return chosen;
}

/**
 * Checks that at least `quorum` nodes can take a new blob: healthy, not draining, not full. When fullness is what
 * makes them too few, DISK_FULL (507: free space, then retry), naming the full nodes' reasons; otherwise the caller's
 * own INSUFFICIENT_NODES check applies.
 */
export function requireRoom(nodes: readonly PlacementNode[], quorum: number, what: string, fullReasons: readonly string[] = []): void {
  const open = distinctById(nodes).filter((node) => node.healthy && node.draining !== true);
  const withRoom = open.filter((node) => node.full !== true).length;
  if (withRoom >= quorum || open.length < quorum) return;
  throw new StrataError(
    'DISK_FULL',
    `only ${withRoom} of ${open.length} storage nodes have room for new blobs; ${quorum} are needed to store ${what}. ` +
      (fullReasons.length > 0 ? `${fullReasons[0]!}` : 'Free space by deleting documents; compaction gives it back and writes resume.'),
    { nodesWithRoom: withRoom, nodesNeeded: quorum },
  );
}

/**
 * Up to `count` ids from `ranked` (best first): each pick is the best-ranked node of a zone with the fewest picks
 * so far among the zones that still have an unpicked node. Without zone labels this is simply rank order.
 */
function spreadOverZones(ranked: readonly PlacementNode[], count: number): string[] {
  const picksByZone = new Map<string, number>();
  const remaining = [...ranked];
  const chosen: string[] = [];
  while (chosen.length < count && remaining.length > 0) {
    let fewestPicks = Infinity;
    for (const node of remaining) fewestPicks = Math.min(fewestPicks, picksByZone.get(zoneOf(node)) ?? 0);
    const index = remaining.findIndex((node) => (picksByZone.get(zoneOf(node)) ?? 0) === fewestPicks);
    const [node] = remaining.splice(index, 1);
    assert(node !== undefined, 'no node in a zone with the fewest picks');
    chosen.push(node.id);
    picksByZone.set(zoneOf(node), fewestPicks + 1);
  }
  return chosen;
}

/** A node without a zone label is its own failure domain; the prefix keeps it apart from every real zone name. */
function zoneOf(node: PlacementNode): string {
  return node.zone === undefined ? `\u0000node:${node.id}` : `zone:${node.zone}`;
}

function distinctById(nodes: readonly PlacementNode[]): PlacementNode[] {
  const seen = new Set<string>();
  const distinct: PlacementNode[] = [];
  for (const node of nodes) {
    if (seen.has(node.id)) continue;
    seen.add(node.id);
    distinct.push(node);
  }
  return distinct;
}

function compareAscending(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareDescending(a: string, b: string): number {
  return compareAscending(b, a);
}
