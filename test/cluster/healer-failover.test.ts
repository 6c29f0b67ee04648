/**
 * Two healers, one leader (architecture.md, "Healer"): SIGKILLing the leading healer hands leadership to the other
 * once its lease (the default 10 s) runs out, and the new leader does the work, here repairing a blob a storage node
 * lost after the old leader died. That the old leader's in-flight manifest writes cannot land once it has lost
 * leadership (they are fenced by its term) is proven at the store level by the MetadataStore contract suite
 * against real etcd; this file proves the end-to-end effect with separate processes.
 */
import { describe, expect, it } from 'vitest';
import { outlastRealTimer } from '../helpers/wait.js';
import { docOf, healerLeader, healerProcOf, readDoc, request, statDoc, useLocalCluster, waitFor, writeDoc } from './cluster-support.js';

interface Ref {
  node: string;
  blob: string;
  state: string;
}

/** What the test reads of GET /stat. */
interface StatView {
  version: string;
  hot: Ref[];
  cold: Ref[];
}

/**
 * How long the test waits for the hand-over: the 10 s lease plus generous room for a busy machine. The issue's
 * bound (15 s) is what the hand-over takes on a quiet machine; it is recorded as an annotation, not asserted, so
 * that a loaded machine cannot fail the test while a hand-over that does not happen (or only after a restart, or
 * after several leases) still does.
 */
const HAND_OVER_WAIT_MS = 30_000;
/** Rounds often enough that the new leader's repair shows within seconds of its taking over. */
const HEALER_INTERVAL_MS = 1000;

describe('healer failover', () => {
  const cluster = useLocalCluster('healer-failover', {
    env: {
      // The default lease (10 s), so that the hand-over is measured as it would happen in production; rounds and
      // audits often enough that the new leader's repair shows within seconds of its taking over.
      STRATA_HEALER_LEASE_MS: '10000',
      STRATA_HEALER_INTERVAL_MS: String(HEALER_INTERVAL_MS),
      STRATA_AUDIT_INTERVAL_MS: '2000',
    },
  });

  it('hands leadership to the other healer once a SIGKILLed leader\'s lease runs out, and the new leader repairs a lost blob', async (context) => {
    const { url } = cluster();
    const oldHolder = await waitFor('a healer to lead', () => healerLeader(url), 30_000);
    const oldLeader = healerProcOf(cluster(), oldHolder);
    expect(oldLeader, `${oldHolder} is one of the cluster's healers`).toBeDefined();
    const other = cluster().healers.find((h) => h !== oldLeader)!;

    const key = 'failover/doc';
    const written = await writeDoc(url, key, docOf(7), '&strategy=field_hybrid&hot_fields=like_count');
    expect(written.status, written.text).toBe(200);
    const before = (await statDoc(url, key)).json as StatView;

    await cluster().kill(oldLeader!);
    const killedAtMs = Date.now();

    // A storage node loses a hot replica after the old leader died: only a healer alive now can put it back.
    const lost = before.hot[0]!;
    const node = cluster().nodes.find((n) => n.name === lost.node)!;
    const auth = { authorization: `Bearer ${cluster().token}` };
    const onItsNode = async (ref: Ref): Promise<boolean> => {
      const holder = cluster().nodes.find((n) => n.name === ref.node)!;
      return (await request(holder.address!, `/v1/blobs/${encodeURIComponent(ref.blob)}/info`, { headers: auth })).status === 200;
    };
    const removed = await request(node.address!, `/v1/blobs/${encodeURIComponent(lost.blob)}`, { method: 'DELETE', headers: auth });
    expect(removed.json).toEqual({ deleted: true });
    expect(await onItsNode(lost)).toBe(false);

    // The hand-over waits for etcd to expire the dead leader's lease, which is real time in another process; how
    // long it takes beyond that on a busy machine is recorded, not asserted (bench/ measures it on a quiet one).
    const newHolder = await waitFor(
      'the other healer to lead',
      async () => {
        const holder = await healerLeader(url);
        return holder !== null && holder !== oldHolder ? holder : null;
      },
      HAND_OVER_WAIT_MS,
      100,
    );
    const failoverMs = Date.now() - killedAtMs;
    expect(healerProcOf(cluster(), newHolder)).toBe(other);
    await context.annotate(`hand-over took ${failoverMs} ms`);

    // Repaired: every replica and shard the manifest names is on its node again (where, and under which blob id,
    // is the repairer's choice).
    const after = await waitFor(
      'the new leader to repair the lost replica',
      async () => {
        const view = (await statDoc(url, key)).json as StatView;
        const refs = [...view.hot, ...view.cold];
        const present = await Promise.all(refs.map(onItsNode));
        return view.hot.length === 3 && present.every(Boolean) ? view : null;
      },
      30_000,
    );
    // A repair changes placement, never the version; the document reads back whole.
    expect(after.version).toBe(before.version);
    expect([...after.hot, ...after.cold].map((r) => r.state)).toEqual([...before.hot, ...before.cold].map(() => 'ok'));
    const read = await readDoc(url, key);
    expect(read.json).toEqual(docOf(7));

    // The old healer back: it follows, and the leader stays the one that took over.
    // The old healer back (restart resolves once it has started): it follows. Were it to take the lease back, it
    // would on its first rounds; healers serve nothing in the local cluster that would show a follower's rounds, so
    // real time passes for a few of them (a busy machine could make this pass without the rounds having run, never
    // fail a correct healer).
    await cluster().restart(oldLeader!);
    await outlastRealTimer(3 * HEALER_INTERVAL_MS);
    expect(await healerLeader(url)).toBe(newHolder);
  });
});
