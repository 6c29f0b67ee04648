/**
 * Index checkpoint size and load time: fills a NeedleIndex with derived ids in id order (as a node that took its
 * writes in time order holds them), writes a checkpoint, and loads it back the way a restart does (read the file,
 * decode it, build the index, check every entry against what the checkpoint covers, sum the volumes' live bytes).
 *
 *   npx tsx bench/index-checkpoint-bench.ts [entries] [source root]
 *
 * Wall-clock times move with the machine's load; the CPU time of the load is reported beside them.
 * The source root (default: this tree) lets the same run measure another release's code, e.g. one extracted with
 * `git archive <rev> internal | tar -x -C /tmp/old` (symlink node_modules into it).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const entries = Number(process.argv[2] ?? 1_000_000);
const root = path.resolve(process.argv[3] ?? path.join(import.meta.dirname, '..'));
const RUNS = 5;
/** A 1 KiB payload in a needle with a v1-sized head (id, key, write id, part, meta): about what a node holds today. */
const SIZE = 1024;
const NEEDLE_BYTES = 1368;
const VOLUME_BYTES = 64 * 1024 * 1024;
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

function ulid(ms: number, n: number): string {
  let time = '';
  let t = ms;
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  let random = '';
  let x = (n * 2654435761) >>> 0;
  for (let i = 0; i < 16; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    random += CROCKFORD[x >>> 27];
  }
  return time + random;
}

async function main(): Promise<void> {
  const volumeDir = path.join(root, 'internal/blobstore/volume');
  const { NeedleIndex } = await import(pathToFileURL(path.join(volumeDir, 'needle-index.ts')).href);
  const ckpt = await import(pathToFileURL(path.join(volumeDir, 'index-checkpoint.ts')).href);
  const { nodeVolumeFs } = await import(pathToFileURL(path.join(volumeDir, 'volume-fs.ts')).href);
  const index = new NeedleIndex();
  let volume = 1;
  let offset = 64;
  for (let i = 0; i < entries; i++) {
    if (offset + NEEDLE_BYTES > VOLUME_BYTES) {
      volume += 1;
      offset = 64;
    }
    index.set(`${ulid(1_790_000_000_000 + 3 * i, i)}.shard-${i % 6}`, { volume, offset, needleBytes: NEEDLE_BYTES, size: SIZE, corrupt: false });
    offset += NEEDLE_BYTES;
  }
  const run = index.exportRun();
  const memory = index.memoryBytes();
  const dir = await mkdtemp(path.join(os.tmpdir(), 'index-ckpt-bench-'));
  try {
    const volumes = Array.from({ length: volume }, (_, v) => ({ volume: v + 1, revision: 0, coveredBytes: VOLUME_BYTES }));
    const encodeStart = performance.now();
    const encodeCpuStart = process.cpuUsage();
    const encoded = ckpt.encodeCheckpoint({ nextSeq: entries + 1, createdAtMs: 0, volumes, run });
    const encodeCpu = process.cpuUsage(encodeCpuStart);
    const encodeMs = performance.now() - encodeStart;
    await ckpt.sealCheckpoint(encoded);
    await ckpt.writeCheckpointFile(nodeVolumeFs, dir, encoded);
    const fileBytes = (await stat(path.join(dir, ckpt.CHECKPOINT_FILE))).size;
    const loads: number[] = [];
    const loadsCpu: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const start = performance.now();
      const cpuStart = process.cpuUsage();
      const loaded = await ckpt.readCheckpointFile(nodeVolumeFs, dir);
      if (typeof loaded === 'string' || loaded === null) throw new Error(`checkpoint did not load: ${loaded}`);
      const reopened = new NeedleIndex({ run: loaded.run });
      // recovery.ts checks every entry against what the checkpoint covers.
      const lr = loaded.run;
      let furthest = 0;
      for (let i = 0; i < lr.count; i++) furthest = Math.max(furthest, lr.offset8[i] * 8 + lr.needleBytes[i]);
      const totals = reopened.volumeTotals();
      loads.push(performance.now() - start);
      const cpu = process.cpuUsage(cpuStart);
      loadsCpu.push((cpu.user + cpu.system) / 1000);
      if (reopened.size !== entries || totals.size !== volume || furthest > VOLUME_BYTES) throw new Error('reload disagrees');
    }
    loads.sort((a, b) => a - b);
    loadsCpu.sort((a, b) => a - b);
    console.log(
      JSON.stringify({
        root,
        entries,
        indexBytesPerEntry: +(memory / entries).toFixed(2),
        checkpointBytes: fileBytes,
        checkpointBytesPerEntry: +(fileBytes / entries).toFixed(2),
        encodeMs: +encodeMs.toFixed(1),
        encodeCpuMs: +((encodeCpu.user + encodeCpu.system) / 1000).toFixed(1),
        loadMsMedian: +(loads[Math.floor(RUNS / 2)] as number).toFixed(1),
        loadMsAll: loads.map((ms) => +ms.toFixed(1)),
        loadCpuMsMedian: +(loadsCpu[Math.floor(RUNS / 2)] as number).toFixed(1),
      }),
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
