/**
 * SIGKILL during paced background merges (internal/blobstore/volume/merge.ts): a child process writing and deleting
 * without pause on small volumes, so that merges run all the time, is killed as a merge starts its copy, as it
 * commits (the rename of its copy over its last source) and as it removes its sources, round after round on the
 * same directory. After each kill nothing acknowledged is lost, no acknowledged delete comes back, no temp file is
 * left, and a full compaction leaves exactly the live needles and one superblock per volume. Power loss at every
 * step of a merge: volume-merge.test.ts.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VolumeBlobStore } from '../../internal/blobstore/volume/volume-blob-store.js';
import { makeTempDir } from '../contracts/blob-fixtures.js';
import { checkAfterCrash, newLedger, type Ledger } from './volume-harness/workload.js';

const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'volume-harness', 'merge-child.ts');
/** Where each round's kill lands: the event the child reports, and which occurrence of it. */
const KILLS: Array<{ event: 'm' | 'r' | 'u'; nth: number }> = [
  { event: 'm', nth: 2 },
  { event: 'r', nth: 1 },
  { event: 'u', nth: 1 },
  { event: 'm', nth: 3 },
  { event: 'r', nth: 2 },
  { event: 'u', nth: 2 },
];

describe('VolumeBlobStore merges killed with SIGKILL', () => {
  let dir: string;
  let remove: () => Promise<void>;
  beforeAll(async () => {
    ({ dir, remove } = await makeTempDir('vbs-merge-kill'));
  });
  afterAll(async () => {
    await remove();
  });

  it('reopens with every acknowledged blob, no deleted one back, no leftover file and all garbage reclaimable, kill after kill', async () => {
    const ledger = newLedger();
    for (const [round, kill] of KILLS.entries()) {
      await runChildUntilKilled(dir, round + 1, `k${round}x`, ledger, kill.event, kill.nth);
      const store = await VolumeBlobStore.open({ dir, autoCompact: false });
      try {
        await checkAfterCrash(store, ledger);
        const leftovers = (await readdir(path.join(dir, 'volumes'))).filter((name) => /\.(compact|new|merge)$/.test(name));
        expect(leftovers).toEqual([]);
        await store.compact({ sealActive: true });
        const usage = await store.usage();
        expect(usage.reclaimableBytes).toBe(0);
        expect(usage.fileBytes).toBe(usage.bytesUsed + 64 * usage.volumes);
        await checkAfterCrash(store, ledger);
        // The next round starts from few volumes, as a store whose merges kept up would.
        await store.merge();
        await checkAfterCrash(store, ledger);
      } catch (err) {
        throw new Error(`round ${round} (killed at ${kill.event} #${kill.nth}): ${(err as Error).message}`);
      } finally {
        await store.close();
      }
    }
    expect(ledger.deleted.size).toBeGreaterThan(20);
  }, 300_000);
});

/**
 * Runs the child until it is killed, recording its acknowledgements; the kill is placed by what the child reports
 * (the `nth` occurrence of `event`), never by elapsed time.
 */
function runChildUntilKilled(dir: string, seed: number, prefix: string, ledger: Ledger, event: string, nth: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(seed), prefix], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    let stderr = '';
    let seen = 0;
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        const [code, id] = line.split(' ');
        if (code === 'P') ledger.put.add(id as string);
        else if (code === 'd') ledger.deleting.add(id as string);
        else if (code === 'D') ledger.deleted.add(id as string);
        else if (code === event && ++seen === nth) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (codeOrNull, signal) => {
      if (signal === 'SIGKILL') resolve();
      else reject(new Error(`child exited by itself (${String(codeOrNull)}): ${stderr}`));
    });
  });
}
