/**
 * Crash safety of the idle pass, which seals the *active* volume and compacts it (reclamation.ts): the power goes
 * at every file-system operation of the pass in turn (volume-harness/power-loss-fs.ts keeps only what fsyncs
 * covered and tears the last write), and a child process running writes, deletes and idle passes is killed with
 * SIGKILL again and again. After each crash nothing acknowledged is lost, no acknowledged delete comes back, and no
 * garbage is left that the next compaction does not give back: afterwards the volume files hold exactly the live
 * needles and one superblock per volume, with no temp file left.
 */
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { VolumeBlobStore, type VolumeBlobStoreOptions } from '../../internal/blobstore/volume/volume-blob-store.js';
import { makeTempDir } from '../contracts/blob-fixtures.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { PowerLossFs } from './volume-harness/power-loss-fs.js';
import { blobIdFor, checkAfterCrash, headerFor, newLedger, payloadFor, type Ledger } from './volume-harness/workload.js';

const DIR = '/strata/node-1';
const IDLE_MS = 30_000;
const CHILD = path.join(path.dirname(fileURLToPath(import.meta.url)), 'volume-harness', 'reclaim-child.ts');

function options(fs: PowerLossFs, clock: ManualClock): VolumeBlobStoreOptions {
  return {
    dir: DIR,
    fs,
    clock,
    // Large volumes: only the idle pass seals the active one. Every scrap of garbage passes the idle thresholds.
    compactBytesPerSecMax: Number.POSITIVE_INFINITY,
    idleCompactAfterMs: IDLE_MS,
    idleGarbageRatioMin: 0,
    idleGarbageBytesMin: 1,
    compactGarbageRatioMin: 1,
    compactGarbageBytesMin: Number.MAX_SAFE_INTEGER,
    onMaintenanceError: () => undefined,
  };
}

/** The same history every time: puts, then deletes and overwrites that leave garbage in the active volume. */
async function writeHistory(store: VolumeBlobStore, ledger: Ledger): Promise<void> {
  for (let n = 0; n < 40; n++) {
    const id = blobIdFor('p', n);
    await store.put(headerFor(id), payloadFor(id));
    ledger.put.add(id);
  }
  for (let n = 0; n < 40; n += 3) {
    const id = blobIdFor('p', n);
    ledger.deleting.add(id);
    await store.delete(id);
    ledger.deleted.add(id);
  }
}

/** After a full compaction nothing is reclaimable and the files hold only live needles and superblocks. */
async function expectNoGarbageLeft(store: VolumeBlobStore): Promise<void> {
  await store.compact({ sealActive: true });
  const usage = await store.usage();
  expect(usage.reclaimableBytes).toBe(0);
  expect(usage.fileBytes).toBe(usage.bytesUsed + 64 * usage.volumes);
}

describe('VolumeBlobStore idle reclamation after a crash', () => {
  it('loses nothing and leaves no unreclaimable garbage when the power goes at any step of an idle pass', async () => {
    // A first run without a crash counts the operations the pass (and the close after it) makes.
    const dry = new PowerLossFs(1);
    const dryClock = new ManualClock();
    const dryStore = await VolumeBlobStore.open(options(dry, dryClock));
    await writeHistory(dryStore, newLedger());
    const passStartOps = dry.ops;
    dryClock.advance(IDLE_MS);
    await vi.waitFor(async () => expect((await dryStore.usage()).reclaimableBytes).toBe(0), { timeout: 30_000, interval: 10 });
    await dryStore.close();
    const passOps = dry.ops - passStartOps;
    expect(passOps).toBeGreaterThan(5);

    const crashedAt: string[] = [];
    for (let step = 1; step <= passOps; step++) {
      const fs = new PowerLossFs(1);
      const clock = new ManualClock();
      const ledger = newLedger();
      const store = await VolumeBlobStore.open(options(fs, clock));
      await writeHistory(store, ledger);
      fs.crashAtOp = fs.ops + step;
      clock.advance(IDLE_MS);
      await vi.waitFor(async () => expect(fs.poweredOff || (await store.usage()).reclaimableBytes === 0).toBe(true), {
        timeout: 30_000,
        interval: 10,
      });
      await store.close().catch(() => undefined);
      fs.powerLoss();
      crashedAt.push(fs.crashNote?.op ?? '?');
      const rebooted = fs.afterPowerLoss(step);
      const recovered = await VolumeBlobStore.open({ ...options(rebooted, new ManualClock()), autoCompact: false });
      try {
        await checkAfterCrash(recovered, ledger);
        expect(await rebooted.readdir(path.join(DIR, 'volumes'))).not.toContainEqual(expect.stringMatching(/\.(compact|new)$/));
        await expectNoGarbageLeft(recovered);
        await checkAfterCrash(recovered, ledger);
      } catch (err) {
        throw new Error(`power lost at step ${step} (${crashedAt[crashedAt.length - 1]}): ${(err as Error).message}`);
      } finally {
        await recovered.close();
      }
    }
    // The crash points covered the seal (a volume created), the copy, the swap and the checkpoint.
    expect(crashedAt.join(' ')).toMatch(/rename/);
    expect(crashedAt.join(' ')).toMatch(/unlink|datasync|fsync/);
  }, 300_000);

  describe('killed with SIGKILL', () => {
    let dir: string;
    let remove: () => Promise<void>;
    beforeAll(async () => {
      ({ dir, remove } = await makeTempDir('vbs-reclaim-kill'));
    });
    afterAll(async () => {
      await remove();
    });

    it('reopens with every acknowledged blob, no deleted one back, and all garbage reclaimable, kill after kill', async () => {
      const ledger = newLedger();
      let compactionsSeen = 0;
      for (let round = 0; round < 6; round++) {
        // Kill as the round's second (or, in odd rounds, third) idle compaction starts.
        compactionsSeen += await runChildUntilKilled(dir, round + 1, `k${round}x`, ledger, 2 + (round % 2));
        const store = await VolumeBlobStore.open({ dir, autoCompact: false });
        try {
          await checkAfterCrash(store, ledger);
          await expectNoGarbageLeft(store);
          const leftovers = (await readdir(path.join(dir, 'volumes'))).filter((name) => /\.(compact|new)$/.test(name));
          expect(leftovers).toEqual([]);
        } catch (err) {
          throw new Error(`round ${round}: ${(err as Error).message}`);
        } finally {
          await store.close();
        }
      }
      expect(compactionsSeen).toBeGreaterThanOrEqual(12);
      expect(ledger.deleted.size).toBeGreaterThan(20);
    }, 180_000);
  });
});

/**
 * Runs the child until it is killed, recording its acknowledgements; the kill is placed by what the child
 * reports (the start of its `killAtCompaction`-th compaction), never by elapsed time. Returns the compactions seen.
 */
function runChildUntilKilled(dir: string, seed: number, prefix: string, ledger: Ledger, killAtCompaction: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, dir, String(seed), prefix], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let buffered = '';
    let stderr = '';
    let compactions = 0;
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
        else if (code === 'c' && ++compactions === killAtCompaction) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', (codeOrNull, signal) => {
      if (signal === 'SIGKILL') resolve(compactions);
      else reject(new Error(`child exited by itself (${String(codeOrNull)}): ${stderr}`));
    });
  });
}
