/**
 * Scenario 6, heal: stop one storage node, write N bytes of iot documents (their shards for that node are
 * missed: partial writes), bring the node back empty (a replaced disk), and time until every object is fully
 * protected again. "Fully protected" is checked against the nodes, not taken from the healer: every manifest
 * clean, every replica and shard `ok`, and each one present in its node's inventory. Repair MB/s is the payload
 * bytes the nodes gained while healing over the time it took.
 */
import { StrataClient, type StatResult } from '../../internal/client/strata-client.js';
import { preloadGroup } from '../../internal/loadgen/node-loadgen.js';
import { DOC_SIZES, keyOf } from '../../internal/loadgen/workloads.js';
import { listInventories, payloadBytesByNode } from './node-inventory.js';
import { waitForNodeStates } from './node-states.js';
import type { BenchTarget } from './target.js';

export const HEAL_LIMITS = {
  /** Polling period of the fully-protected check. */
  pollIntervalMs: 500,
  /** A heal that takes longer is reported as not finished. */
  healTimeoutMs: 15 * 60_000,
  statConcurrency: 16,
} as const;

export interface HealResult {
  node: string;
  keys: number;
  bytesWritten: number;
  writeSeconds: number;
  writesPerSec: number;
  writeMbPerSec: number;
  healed: boolean;
  healSeconds: number;
  bytesRebuilt: number;
  repairMbPerSec: number;
  /** Manifests not yet fully protected when the check gave up (0 when healed). */
  unprotectedKeys: number;
}

async function unprotectedKeys(target: BenchTarget, client: StrataClient, keys: string[]): Promise<number> {
  const inventories = await listInventories(target);
  const present = new Set<string>();
  for (const [node, blobs] of inventories) for (const b of blobs) present.add(`${node}/${b.id}`);
  let bad = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      let s: StatResult;
      try {
        s = await client.stat(key);
      } catch {
        bad++;
        continue;
      }
      const refs = [...s.hot, ...s.cold];
      if (s.dirty || refs.some((r) => r.state !== 'ok' || !present.has(`${r.node}/${r.blob}`))) bad++;
    }
  };
  await Promise.all(Array.from({ length: HEAL_LIMITS.statConcurrency }, worker));
  return bad;
}

export async function runHeal(target: BenchTarget, options: { prefix: string; healBytes: number; node: string; log: (line: string) => void }): Promise<HealResult> {
  const { node, log } = options;
  const client = new StrataClient({ baseUrl: target.url, retries: 2, timeoutMs: 60_000 });
  const docBytes = DOC_SIZES.iotLogBytes;
  const count = Math.max(1, Math.ceil(options.healBytes / docBytes));
  const group = { group: 'heal', kind: 'iot' as const, strategy: 'field_hybrid' as const, keys: count };
  const keys = Array.from({ length: count }, (_, i) => keyOf(options.prefix, group.group, i));

  log(`heal: stopping ${node}`);
  await target.stopNode(node);
  await waitForNodeStates(target, { down: 1 });
  log(`heal: writing ${count} iot documents (${(options.healBytes / 1024 ** 2).toFixed(0)} MiB) with ${node} down`);
  const w0 = performance.now();
  await preloadGroup(target.url, group, options.prefix);
  const writeSeconds = (performance.now() - w0) / 1000;
  const bytesWritten = count * docBytes;

  const before = await payloadBytesByNode(target);
  log(`heal: bringing ${node} back empty`);
  const t0 = performance.now();
  await target.startNode(node, { empty: true });
  let remaining = Number.POSITIVE_INFINITY;
  let healed = false;
  while (performance.now() - t0 < HEAL_LIMITS.healTimeoutMs) {
    remaining = await unprotectedKeys(target, client, keys);
    if (remaining === 0) {
      healed = true;
      break;
    }
    await new Promise((r) => setTimeout(r, HEAL_LIMITS.pollIntervalMs));
  }
  const healSeconds = (performance.now() - t0) / 1000;
  const after = await payloadBytesByNode(target);
  let bytesRebuilt = 0;
  for (const [id, bytes] of after) bytesRebuilt += Math.max(0, bytes - (before.get(id) ?? 0));
  log(`heal: ${healed ? 'fully protected' : `${remaining} keys still unprotected`} after ${healSeconds.toFixed(1)} s, ${(bytesRebuilt / 1e6).toFixed(1)} MB rebuilt`);
  return {
    node,
    keys: count,
    bytesWritten,
    writeSeconds,
    writesPerSec: count / writeSeconds,
    writeMbPerSec: bytesWritten / writeSeconds / 1e6,
    healed,
    healSeconds,
    bytesRebuilt,
    repairMbPerSec: bytesRebuilt / healSeconds / 1e6,
    unprotectedKeys: healed ? 0 : remaining,
  };
}
