/**
 * The process the SIGKILL crash test kills: opens a VolumeBlobStore on small volumes and runs the workload
 * (puts, deletes, compactions) until it is killed. It reports on stdout, one line per event, with a synchronous
 * write so that a line the parent has read was written before the kill:
 *   R            ready
 *   P <id>       put acknowledged (its fsync completed)
 *   d <id>       delete issued
 *   D <id>       delete acknowledged
 *   c            a compaction is starting
 *
 * Usage: node --import tsx crash-child.ts <dir> <seed> <id prefix>
 */
import { writeSync } from 'node:fs';
import { VolumeBlobStore } from '../../../internal/blobstore/volume/volume-blob-store.js';
import { prng } from './power-loss-fs.js';
import { newLedger, runWorkload } from './workload.js';

const [dir, seedText, prefix] = process.argv.slice(2);
if (dir === undefined || seedText === undefined || prefix === undefined) {
  throw new Error('usage: crash-child.ts <dir> <seed> <id prefix>');
}
const codes = { put: 'P', deleting: 'd', delete: 'D', compacting: 'c' } as const;
const store = await VolumeBlobStore.open({
  dir,
  volumeBytesMax: 64 * 1024,
  compactGarbageRatioMin: 0.2,
  compactGarbageBytesMin: 1,
  checkpointEveryOps: 60,
  onMaintenanceError: () => undefined,
});
writeSync(1, 'R\n');
await runWorkload(store, newLedger(), {
  random: prng(Number(seedText)),
  prefix,
  workers: 16,
  opsMax: Number.MAX_SAFE_INTEGER,
  deleteShare: 0.35,
  compactEvery: 25,
  onAck: (kind, id) => writeSync(1, `${codes[kind]} ${id}\n`),
});
