/**
 * The process the idle-reclamation SIGKILL test kills: bursts of puts and deletes on a VolumeBlobStore, each
 * followed by a quiet spell in which the idle pass seals the active volume and compacts it (paced, so that it
 * lasts long enough for the kill to land inside it). It reports on stdout, one line per event, with a synchronous
 * write so that a line the parent has read was written before the kill:
 *   P <id>       put acknowledged (its fsync completed)
 *   d <id>       delete issued
 *   D <id>       delete acknowledged
 *   c            the store went quiet: an idle pass is starting
 *
 * Usage: node --import tsx reclaim-child.ts <dir> <seed> <id prefix>
 */
import { writeSync } from 'node:fs';
import { VolumeBlobStore } from '../../../internal/blobstore/volume/volume-blob-store.js';
import { prng } from './power-loss-fs.js';
import { blobIdFor, headerFor, payloadFor } from './workload.js';

const [dir, seedText, prefix] = process.argv.slice(2);
if (dir === undefined || seedText === undefined || prefix === undefined) {
  throw new Error('usage: reclaim-child.ts <dir> <seed> <id prefix>');
}
const random = prng(Number(seedText));
const store = await VolumeBlobStore.open({
  dir,
  idleCompactAfterMs: 5,
  idleGarbageRatioMin: 0,
  idleGarbageBytesMin: 1,
  compactBytesPerSecMax: 2 * 1024 * 1024,
  onMaintenanceError: () => undefined,
});
const acked: string[] = [];
let next = 0;
for (;;) {
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 8; i++) {
        if (acked.length > 0 && random() < 0.4) {
          const id = acked.splice(Math.floor(random() * acked.length), 1)[0] as string;
          writeSync(1, `d ${id}\n`);
          await store.delete(id);
          writeSync(1, `D ${id}\n`);
        } else {
          const id = blobIdFor(prefix, next++);
          await store.put(headerFor(id), payloadFor(id));
          writeSync(1, `P ${id}\n`);
          acked.push(id);
        }
      }
    }),
  );
  writeSync(1, 'c\n');
  const reclaimedBefore = (await store.usage()).reclaimedBytes;
  // Waits (in real time: this process is only ever killed) for the idle pass to give something back.
  for (let polls = 0; polls < 2000 && (await store.usage()).reclaimedBytes === reclaimedBefore; polls++) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
