/**
 * Power loss with needle format 2: the power-loss suite's workload (volume-power-loss.test.ts) with every other put
 * a format-2 one, under derived (ULID) ids, so that format-3 volumes hold both needle versions and puts without a
 * stored sequence number go through every crash point of rotations, compactions and checkpoints. An acknowledged
 * put lost, a delete undone or a torn needle served fails the test.
 */
import { describe, expect, it } from 'vitest';
import { VolumeBlobStore, type VolumeBlobStoreOptions } from '../../internal/blobstore/volume/volume-blob-store.js';
import { PowerLossFs, prng } from './volume-harness/power-loss-fs.js';
import { checkAfterCrash, mixedHeaderFor, newLedger, runWorkload, ulidPrefix } from './volume-harness/workload.js';

const DIR = '/strata/node-1';
const SEEDS = 24;
const ROUNDS = 3;
/** CPU-bound: on a busy 2-core machine this takes minutes, not the default minute. */
const TIMEOUT_MS = 600_000;

function options(fs: PowerLossFs): VolumeBlobStoreOptions {
  return {
    dir: DIR,
    fs,
    volumeBytesMax: 48 * 1024,
    compactGarbageRatioMin: 0.2,
    compactGarbageBytesMin: 1,
    checkpointEveryOps: 40,
    onMaintenanceError: () => undefined,
  };
}

describe('VolumeBlobStore with format-2 puts after a power loss', () => {
  it('keeps every acknowledged put and delete of either format when the power goes at a random operation', async () => {
    const crashes: Array<{ op: string; files: string[] }> = [];
    let acked = 0;
    let v2Acked = 0;
    for (let seed = 1; seed <= SEEDS; seed++) {
      const random = prng(seed + 7000);
      let fs = new PowerLossFs(seed + 7000);
      const ledger = newLedger();
      for (let round = 0; round < ROUNDS; round++) {
        fs.crashAtOp = fs.ops + 1 + Math.floor(random() * 2500);
        try {
          const store = await VolumeBlobStore.open(options(fs));
          await runWorkload(store, ledger, {
            random,
            // Half the rounds use ULID ids (derived in format 2), half text ids.
            prefix: round % 2 === 0 ? ulidPrefix(seed, round) : `s${seed}r${round}x`,
            workers: 8,
            opsMax: 100_000,
            deleteShare: 0.35,
            compactEvery: 40,
            headerOf: mixedHeaderFor,
          });
        } catch (err) {
          if ((err as { code?: unknown }).code !== 'EIO') throw err;
        }
        fs.powerLoss();
        if (fs.crashNote !== null) crashes.push(fs.crashNote);
        fs = fs.afterPowerLoss(seed * 1000 + round);
        const recovered = await VolumeBlobStore.open({ ...options(fs), autoCompact: false });
        try {
          await checkAfterCrash(recovered, ledger, mixedHeaderFor);
        } catch (err) {
          throw new Error(`seed ${seed} round ${round}: ${(err as Error).message}`);
        } finally {
          await recovered.close();
        }
      }
      acked += ledger.put.size;
      v2Acked += [...ledger.put].filter((id) => mixedHeaderFor(id).format === 2).length;
    }
    expect(acked).toBeGreaterThan(SEEDS * 50);
    expect(v2Acked).toBeGreaterThan(acked / 4);
    const during = (suffix: string): number => crashes.filter((c) => c.files.some((f) => f.endsWith(suffix))).length;
    expect(during('.compact')).toBeGreaterThan(0);
    expect(during('index.ckpt.tmp')).toBeGreaterThan(0);
    expect(crashes.filter((c) => c.op === 'write').length).toBeGreaterThan(0);
    expect(crashes.filter((c) => c.op === 'fsync').length).toBeGreaterThan(0);
  }, TIMEOUT_MS);
});
