/**
 * Outages, seen from a client of nginx. etcd stopped: requests answer 503 METADATA_UNAVAILABLE with Retry-After;
 * Kafka stopped: writes answer 503 WAL_UNAVAILABLE with Retry-After while reads keep working. Either backend
 * started again on its data and port: the cluster answers again by itself, no Strata process restarted (their
 * pids are the same before and after). And any one Strata process SIGKILLed (a gateway, a storage node, the
 * leading healer) leaves the service answering.
 */
import { describe, expect, it } from 'vitest';
import type { Proc } from '../../scripts/local-cluster.js';
import {
  docOf,
  healerLeader,
  healerProcOf,
  mergePatch,
  readDoc,
  request,
  useLocalCluster,
  waitFor,
  writeDoc,
  type Answer,
} from './cluster-support.js';

/** From a backend being started again until the cluster must answer normally (Kafka's JVM alone takes a few s). */
const RECOVERY_MS_MAX = 60_000;

describe('backend outages and process crashes', () => {
  const cluster = useLocalCluster('backend-outage');

  /** Pids of every Strata process: the same before and after an outage means none was restarted. */
  function strataPids(): Record<string, number | null> {
    const { nodes, gateways, healers } = cluster();
    return Object.fromEntries([...nodes, ...gateways, ...healers].map((p) => [p.name, p.pid]));
  }

  function expect503(answer: Answer, code: string, what: string): void {
    expect({ status: answer.status, code: answer.json?.error?.code }, `${what}: ${answer.text}`).toEqual({ status: 503, code });
    expect(answer.headers.get('retry-after'), `${what}: Retry-After`).toMatch(/^\d+$/);
    expect(answer.json.error.message.length).toBeGreaterThan(0);
  }

  it('answers 503 METADATA_UNAVAILABLE with Retry-After while etcd is stopped, and recovers when it is back', async () => {
    const { url, etcd } = cluster();
    const written = await writeDoc(url, 'outage/etcd', docOf(1));
    expect(written.status, written.text).toBe(200);
    const pids = strataPids();

    await etcd.stop();
    // Several rounds, so that every gateway behind nginx answers at least once.
    for (let i = 0; i < 3; i++) {
      expect503(await readDoc(url, 'outage/etcd'), 'METADATA_UNAVAILABLE', 'read');
      expect503(await writeDoc(url, `outage/etcd-new/${i}`, docOf(2)), 'METADATA_UNAVAILABLE', 'write');
      expect503(await mergePatch(url, 'outage/etcd', { like_count: 99 }), 'METADATA_UNAVAILABLE', 'patch');
      expect503(await request(url, '/delete/outage%2Fetcd', { method: 'DELETE' }), 'METADATA_UNAVAILABLE', 'delete');
    }
    const ready = await request(url, '/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toMatch(/^\d+$/);

    await etcd.start();
    await waitFor('reads to work again after etcd is back', async () => (await readDoc(url, 'outage/etcd')).status === 200, RECOVERY_MS_MAX);
    for (let i = 0; i < 3; i++) {
      const read = await readDoc(url, 'outage/etcd');
      expect(read.status, read.text).toBe(200);
      expect(read.headers.get('x-strata-version')).toBe(written.json.version);
      expect(read.json).toEqual(docOf(1));
      const again = await writeDoc(url, `outage/etcd-after/${i}`, docOf(3));
      expect(again.status, again.text).toBe(200);
    }
    // Nothing the refused requests carried became visible.
    expect((await readDoc(url, 'outage/etcd-new/0')).status).toBe(404);
    expect(strataPids()).toEqual(pids);
  });

  it('answers writes 503 WAL_UNAVAILABLE with Retry-After while Kafka is stopped, keeps serving reads, and recovers when it is back', async () => {
    const { url, kafka } = cluster();
    const written = await writeDoc(url, 'outage/kafka', docOf(4));
    expect(written.status, written.text).toBe(200);
    const pids = strataPids();

    await kafka.stop();
    for (let i = 0; i < 3; i++) {
      expect503(await writeDoc(url, `outage/kafka-new/${i}`, docOf(5)), 'WAL_UNAVAILABLE', 'write');
      expect503(await mergePatch(url, 'outage/kafka', { like_count: 99 }), 'WAL_UNAVAILABLE', 'patch');
      const read = await readDoc(url, 'outage/kafka');
      expect(read.status, read.text).toBe(200);
      expect(read.json).toEqual(docOf(4));
    }

    await kafka.start();
    await waitFor(
      'writes to work again after Kafka is back',
      async () => (await writeDoc(url, 'outage/kafka-after', docOf(6))).status === 200,
      RECOVERY_MS_MAX,
      500,
    );
    for (let i = 0; i < 3; i++) {
      const again = await writeDoc(url, `outage/kafka-after/${i}`, docOf(i));
      expect(again.status, again.text).toBe(200);
    }
    const read = await readDoc(url, 'outage/kafka');
    expect(read.headers.get('x-strata-version')).toBe(written.json.version);
    expect((await readDoc(url, 'outage/kafka-new/0')).status).toBe(404);
    expect(strataPids()).toEqual(pids);
  });

  it('keeps answering reads and writes through nginx when a gateway, a storage node or the leading healer is SIGKILLed', async () => {
    const { url } = cluster();
    const leader = healerProcOf(cluster(), await waitFor('a healer to lead', () => healerLeader(url), 30_000));
    expect(leader).toBeDefined();
    const victims: Proc[] = [cluster().gateways[0]!, cluster().nodes[1]!, leader!];
    const seed = await writeDoc(url, 'crashes/seed', docOf(8));
    expect(seed.status, seed.text).toBe(200);

    for (const victim of victims) {
      await cluster().kill(victim);
      // Nine requests of each kind: every gateway behind nginx, the dead one included, comes up several times.
      for (let i = 0; i < 9; i++) {
        const read = await readDoc(url, 'crashes/seed');
        expect(read.status, `${victim.name} dead, read ${i}: ${read.text}`).toBe(200);
        expect(read.json).toEqual(docOf(8));
        const key = `crashes/${victim.name}/${i}`;
        const written = await writeDoc(url, key, docOf(i));
        expect(written.status, `${victim.name} dead, write ${i}: ${written.text}`).toBe(200);
        expect((await readDoc(url, key)).json).toEqual(docOf(i));
      }
      await cluster().restart(victim);
    }
  });
});
