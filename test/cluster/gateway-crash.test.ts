/**
 * A gateway process SIGKILLed after it appended its write intent (to Kafka) and wrote its blobs (to the storage
 * nodes), before its commit (to etcd): nothing becomes visible, the elected healer rolls the intent back and
 * deletes the blobs (architecture.md, "Abort, rollback and garbage collection"), and nginx keeps the service
 * answering through the other gateways meanwhile.
 *
 * The window is hit deterministically with the gateway's test-only fault hook: gateway-3 runs with
 * STRATA_TEST_PAUSE_BEFORE_COMMIT_MS, so each of its writes stops right before the commit and says so in its log
 * (internal/wiring/processes.ts). The healers run with a short intent timeout; the full audit (and its inventory
 * garbage collection) keeps its default period of a minute, so what removes the blobs within seconds is the
 * resolution of the intent.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { blobsOfKey, docOf, healerLeader, readDoc, request, statDoc, useLocalCluster, waitFor, writeDoc } from './cluster-support.js';

const INTENT_TIMEOUT_MS = 3_000;
/** Far longer than the test: the write must still be paused when the process is killed. */
const PAUSE_BEFORE_COMMIT_MS = 300_000;

describe('a gateway killed between its blobs and its commit', () => {
  const cluster = useLocalCluster('gateway-crash', {
    env: {
      STRATA_INTENT_TIMEOUT_MS: String(INTENT_TIMEOUT_MS),
      STRATA_GC_GRACE_MS: String(2 * INTENT_TIMEOUT_MS),
      STRATA_HEALER_INTERVAL_MS: '500',
    },
    envByProcess: { 'gateway-3': { STRATA_TEST_PAUSE_BEFORE_COMMIT_MS: String(PAUSE_BEFORE_COMMIT_MS) } },
  });

  /** The write id of the first write the gateway's fault hook paused on `key` (its log line names both). */
  async function pausedWriteId(logFile: string, key: string): Promise<string | null> {
    const log = await readFile(logFile, 'utf8').catch(() => '');
    for (const line of log.split('\n')) {
      if (!line.includes('test hook: pausing before commit')) continue;
      const entry = JSON.parse(line) as { writeId: string; key: string };
      if (entry.key === key) return entry.writeId;
    }
    return null;
  }

  it('leaves nothing visible, and the healer rolls the write back and deletes its blobs while nginx keeps answering', async () => {
    const { url, gateways } = cluster();
    const [healthy, , crashing] = gateways;
    await waitFor('a healer to lead', () => healerLeader(url), 30_000);
    // Written through a healthy gateway: until gateway-3 is dead, a write through nginx could land on it and pause.
    const other = await writeDoc(healthy!.address!, 'crash/other', docOf(1));
    expect(other.status, other.text).toBe(200);

    const key = 'crash/victim';
    const pending = writeDoc(crashing!.address!, key, docOf(2), '&strategy=field_hybrid&hot_fields=like_count').catch((err: Error) => err);
    const writeId = await waitFor('gateway-3 to pause before its commit', () => pausedWriteId(crashing!.logFile, key), 30_000);
    // The intent is in the log and every blob is on its node: 3 hot replicas and 6 shards.
    const blobs = [...(await blobsOfKey(cluster(), key)).values()];
    expect(blobs.map((b) => b.writeId)).toEqual(blobs.map(() => writeId));
    expect(blobs.length).toBe(9);
    expect((await readDoc(url, key)).status).toBe(404);

    await cluster().kill(crashing!);
    const outcome = await pending;
    expect(outcome, 'the client of the killed gateway gets no answer').toBeInstanceOf(Error);

    // The service answers through nginx with gateway-3 gone: reads and writes, several rounds of nginx's rotation.
    for (let i = 0; i < 6; i++) {
      const read = await readDoc(url, 'crash/other');
      expect(read.status, read.text).toBe(200);
      const written = await writeDoc(url, `crash/while-dead/${i}`, docOf(i));
      expect(written.status, written.text).toBe(200);
    }

    // The healer resolves the intent (no outcome, no manifest references the write) as aborted and deletes the
    // blobs; the key never becomes visible on the way.
    await waitFor(
      'the healer to delete the blobs of the killed write',
      async () => {
        expect((await readDoc(url, key)).status).toBe(404);
        return (await blobsOfKey(cluster(), key)).size === 0;
      },
      INTENT_TIMEOUT_MS + 30_000,
    );
    expect((await statDoc(url, key)).status).toBe(404);
    const listed = await request(url, `/list?prefix=${encodeURIComponent('crash/victim')}`);
    expect(listed.json.keys).toEqual([]);

    // The key is free: a later write of it commits as usual, and reads back as written.
    const rewritten = await writeDoc(url, key, docOf(3));
    expect(rewritten.status, rewritten.text).toBe(200);
    const read = await readDoc(url, key);
    expect(read.headers.get('x-strata-version')).toBe(rewritten.json.version);
    expect(read.json).toEqual(docOf(3));
  });
});
