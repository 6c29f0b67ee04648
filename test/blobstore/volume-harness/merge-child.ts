/**
 * The process the merge SIGKILL test kills: puts and deletes without pause on a VolumeBlobStore with small volumes,
 * so that background merges (paced, so that each lasts long enough for a kill to land inside it) run all the
 * time. It reports on stdout, one line per event, with a synchronous write so that a line the parent has read was
 * written before the kill:
 *   P <id>       put acknowledged (its fsync completed)
 *   d <id>       delete issued
 *   D <id>       delete acknowledged
 *   m            a merge opened its temp file: its copy is starting
 *   r            a merge renamed its copy over its last source (the commit point)
 *   u            the first volume unlinked after that rename (a merge removing its sources)
 *
 * Usage: node --import tsx merge-child.ts <dir> <seed> <id prefix>
 */
import { writeSync } from 'node:fs';
import { VolumeBlobStore } from '../../../internal/blobstore/volume/volume-blob-store.js';
import { nodeVolumeFs, type VolumeFs } from '../../../internal/blobstore/volume/volume-fs.js';
import { prng } from './power-loss-fs.js';
import { blobIdFor, headerFor, payloadFor } from './workload.js';

const [dir, seedText, prefix] = process.argv.slice(2);
if (dir === undefined || seedText === undefined || prefix === undefined) {
  throw new Error('usage: merge-child.ts <dir> <seed> <id prefix>');
}
let renamedMerge = false;
const reportingFs: VolumeFs = {
  ...nodeVolumeFs,
  open: async (file, mode) => {
    const opened = await nodeVolumeFs.open(file, mode);
    if (file.endsWith('.merge') && mode === 'wx') writeSync(1, 'm\n');
    return opened;
  },
  rename: async (from, to) => {
    await nodeVolumeFs.rename(from, to);
    if (from.endsWith('.merge')) {
      renamedMerge = true;
      writeSync(1, 'r\n');
    }
  },
  unlink: async (file) => {
    if (renamedMerge && file.endsWith('.vol')) {
      renamedMerge = false;
      writeSync(1, 'u\n');
    }
    await nodeVolumeFs.unlink(file);
  },
};
const random = prng(Number(seedText));
const store = await VolumeBlobStore.open({
  dir,
  fs: reportingFs,
  volumeBytesMax: 16 * 1024,
  compactGarbageBytesMin: 1,
  mergeAfterSealedVolumes: 2,
  mergeBytesMax: 1024 * 1024,
  compactBytesPerSecMax: 2 * 1024 * 1024,
  onMaintenanceError: () => undefined,
});
const acked: string[] = [];
let next = 0;
await Promise.all(
  Array.from({ length: 2 }, async () => {
    for (;;) {
      if (acked.length > 0 && random() < 0.3) {
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
