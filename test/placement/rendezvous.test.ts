import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { chooseNodes, rankNodes, type PlacementNode } from '../../internal/placement/rendezvous.js';

const KEYS = Array.from({ length: 10_000 }, (_, index) => `tenant-${index % 7}/document-${index}`);

function nodesNamed(count: number, healthy = true): PlacementNode[] {
  return Array.from({ length: count }, (_, index) => ({ id: `node-${index + 1}`, healthy }));
}

/** Three zones of two nodes: a-1, a-2, b-1, b-2, c-1, c-2. */
function zonedNodes(): PlacementNode[] {
  return ['a', 'b', 'c'].flatMap((zone) => [1, 2].map((n) => ({ id: `${zone}-${n}`, zone, healthy: true })));
}

function zoneCounts(ids: readonly string[], nodes: readonly PlacementNode[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const id of ids) {
    const zone = nodes.find((node) => node.id === id)?.zone ?? '?';
    counts.set(zone, (counts.get(zone) ?? 0) + 1);
  }
  return counts;
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

describe('rankNodes', () => {
  it('ranks every node, the same way on every run, process and Node version (pinned SHA-256 ranking)', () => {
    const nodes = nodesNamed(6);
    expect(rankNodes('users/42/hot', nodes).map((node) => node.id)).toEqual([
      'node-3', 'node-4', 'node-5', 'node-6', 'node-2', 'node-1',
    ]);
    expect(rankNodes('users/42/hot', [...nodes].reverse())).toEqual(rankNodes('users/42/hot', nodes));
    expect(nodes.map((node) => node.id)).toEqual(['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6']);
  });
});

describe('chooseNodes', () => {
  it('is deterministic and independent of the order nodes are listed in', () => {
    const nodes = nodesNamed(6);
    expect(chooseNodes('users/42/cold', nodes, 6)).toEqual([
      'node-1', 'node-2', 'node-6', 'node-3', 'node-4', 'node-5',
    ]);
    for (const key of KEYS.slice(0, 200)) {
      expect(chooseNodes(`${key}/hot`, [...nodes].reverse(), 3)).toEqual(chooseNodes(`${key}/hot`, nodes, 3));
    }
  });

  it('chooses distinct nodes, even when a node is listed twice', () => {
    const nodes = [...nodesNamed(6), ...nodesNamed(6)];
    for (const key of KEYS.slice(0, 500)) {
      const chosen = chooseNodes(`${key}/cold`, nodes, 6);
      expect(new Set(chosen).size).toBe(6);
    }
  });

  it('chooses the hot and cold sets independently', () => {
    const nodes = nodesNamed(6);
    let sameFirstChoice = 0;
    for (const key of KEYS) {
      if (chooseNodes(`${key}/hot`, nodes, 1)[0] === chooseNodes(`${key}/cold`, nodes, 1)[0]) sameFirstChoice++;
    }
    // Independent choices agree about 1/6 of the time (1667 of 10,000).
    expect(sameFirstChoice).toBeGreaterThan(1400);
    expect(sameFirstChoice).toBeLessThan(1950);
  });

  it('prefers healthy nodes and uses unhealthy ones, in rank order, only when too few are healthy', () => {
    const nodes = nodesNamed(6);
    const down = new Set(['node-2', 'node-5']);
    const withDown = nodes.map((node) => ({ ...node, healthy: !down.has(node.id) }));
    for (const key of KEYS.slice(0, 500)) {
      const hot = chooseNodes(`${key}/hot`, withDown, 3);
      expect(hot.some((id) => down.has(id))).toBe(false);
      // The healthy ones keep their relative rank order.
      const rankedHealthy = rankNodes(`${key}/hot`, withDown).filter((node) => node.healthy).map((node) => node.id);
      expect(hot).toEqual(rankedHealthy.slice(0, 3));

      const cold = chooseNodes(`${key}/cold`, withDown, 6);
      expect(cold.slice(0, 4).every((id) => !down.has(id))).toBe(true);
      const rankedDown = rankNodes(`${key}/cold`, withDown).filter((node) => !node.healthy).map((node) => node.id);
      expect(cold.slice(4)).toEqual(rankedDown);
    }
  });

  it('chooses unhealthy nodes in rank order when none is healthy', () => {
    const nodes = nodesNamed(6, false);
    expect(chooseNodes('k/hot', nodes, 3)).toEqual(rankNodes('k/hot', nodes).slice(0, 3).map((node) => node.id));
  });

  it('moves only about 1/7 of first choices when a seventh node joins six', () => {
    const six = nodesNamed(6);
    const seven = nodesNamed(7);
    let moved = 0;
    for (const key of KEYS) {
      const before = chooseNodes(`${key}/cold`, six, 1)[0];
      const after = chooseNodes(`${key}/cold`, seven, 1)[0];
      if (before === after) continue;
      moved++;
      // A key only ever moves to the new node, never between old ones.
      expect(after).toBe('node-7');
    }
    // Expected 10,000 / 7 = 1429, standard deviation about 35: the bounds are about 5 deviations either side.
    expect(moved).toBeGreaterThan(1250);
    expect(moved).toBeLessThan(1610);
  });

  it('spreads keys evenly over the nodes', () => {
    const nodes = nodesNamed(6);
    const firstChoices = new Map<string, number>();
    const anyChoices = new Map<string, number>();
    for (const key of KEYS) {
      const chosen = chooseNodes(`${key}/hot`, nodes, 3);
      const first = chosen[0] ?? '';
      firstChoices.set(first, (firstChoices.get(first) ?? 0) + 1);
      for (const id of chosen) anyChoices.set(id, (anyChoices.get(id) ?? 0) + 1);
    }
    expect(firstChoices.size).toBe(6);
    // Expected 1667 first choices and 5000 replicas per node; allow 12% and 6% (more than 5 deviations).
    for (const count of firstChoices.values()) expect(Math.abs(count - 10_000 / 6)).toBeLessThan(200);
    for (const count of anyChoices.values()) expect(Math.abs(count - 5000)).toBeLessThan(300);
  });

  it('puts the three hot replicas in three zones and two shards in each of three zones', () => {
    const nodes = zonedNodes();
    for (const key of KEYS.slice(0, 2000)) {
      const hot = chooseNodes(`${key}/hot`, nodes, 3);
      expect([...zoneCounts(hot, nodes).values()].sort()).toEqual([1, 1, 1]);
      const cold = chooseNodes(`${key}/cold`, nodes, 6);
      expect(new Set(cold).size).toBe(6);
      expect(cold.slice(0, 3).map((id) => id[0]).sort()).toEqual(['a', 'b', 'c']);
      expect([...zoneCounts(cold, nodes).values()]).toEqual([2, 2, 2]);
    }
  });

  it('spreads over the zones that still have healthy nodes when a zone is down', () => {
    const nodes = zonedNodes().map((node) => ({ ...node, healthy: node.zone !== 'a' }));
    for (const key of KEYS.slice(0, 500)) {
      const hot = chooseNodes(`${key}/hot`, nodes, 3);
      const counts = zoneCounts(hot, nodes);
      expect(counts.get('a')).toBeUndefined();
      expect([...counts.values()].sort()).toEqual([1, 2]);
      const cold = chooseNodes(`${key}/cold`, nodes, 6);
      expect(cold.slice(4).every((id) => id.startsWith('a-'))).toBe(true);
    }
  });

  it('treats each unlabeled node as its own zone', () => {
    const nodes: PlacementNode[] = [
      { id: 'a-1', zone: 'a', healthy: true },
      { id: 'a-2', zone: 'a', healthy: true },
      { id: 'a-3', zone: 'a', healthy: true },
      { id: 'free-1', healthy: true },
      { id: 'free-2', healthy: true },
    ];
    for (const key of KEYS.slice(0, 500)) {
      const chosen = chooseNodes(`${key}/hot`, nodes, 3);
      expect(chosen.filter((id) => id.startsWith('a-'))).toHaveLength(1);
    }
  });

  it('never chooses an excluded node', () => {
    const nodes = nodesNamed(8);
    const exclude = new Set(['node-1', 'node-8']);
    for (const key of KEYS.slice(0, 500)) {
      const chosen = chooseNodes(`${key}/cold`, nodes, 6, { exclude });
      expect(chosen.some((id) => exclude.has(id))).toBe(false);
    }
  });

  it('never chooses a draining node, even when the other nodes are down', () => {
    const nodes = nodesNamed(7).map((node) => (node.id === 'node-3' ? { ...node, draining: true } : node));
    for (const key of KEYS.slice(0, 500)) expect(chooseNodes(`${key}/cold`, nodes, 6)).not.toContain('node-3');
    const down = nodes.map((node) => (node.id === 'node-3' ? node : { ...node, healthy: false }));
    expect(chooseNodes('k/hot', down, 3)).not.toContain('node-3');
    const tooFew = thrown(() => chooseNodes('k/cold', nodes.slice(1), 6));
    expect((tooFew as Error).message).toBe('5 storage nodes available (1 draining), 6 needed');
  });

  it('fails with INSUFFICIENT_NODES when there are too few nodes', () => {
    const tooFew = thrown(() => chooseNodes('k/cold', nodesNamed(5), 6));
    expect(isStrataError(tooFew, 'INSUFFICIENT_NODES')).toBe(true);
    expect((tooFew as Error).message).toBe('5 storage nodes available, 6 needed');

    const excluded = thrown(() => chooseNodes('k/cold', nodesNamed(6), 6, { exclude: new Set(['node-3']) }));
    expect(isStrataError(excluded, 'INSUFFICIENT_NODES')).toBe(true);
    expect((excluded as Error).message).toBe('5 storage nodes available (after excluding 1), 6 needed');

    const duplicated = thrown(() => chooseNodes('k/hot', [...nodesNamed(2), ...nodesNamed(2)], 3));
    expect(isStrataError(duplicated, 'INSUFFICIENT_NODES')).toBe(true);

    expect(chooseNodes('k/hot', [], 0)).toEqual([]);
  });
});
