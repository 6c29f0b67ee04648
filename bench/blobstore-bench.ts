/**
 * Blob store benchmark (not a test): VolumeBlobStore against FileBlobStore, in the same run, on the same disk.
 *
 *   npx tsx bench/blobstore-bench.ts [--quick] [--dir <scratch dir>] [--out <result.json>]
 *
 * 1. Puts with durable acknowledgement: 1 KiB and 64 KiB blobs, 64 concurrent writers, for a fixed time.
 * 2. Random reads of those blobs, 64 concurrent readers; the volume store's positioned-read counter shows how many
 *    reads each get took.
 * 3. Scale: 1,000,000 blobs of 1 KiB (100,000 with --quick) in a volume store; then, each in a fresh process so
 *    that memory figures are clean, the restart time and the RAM the open store holds, from the index checkpoint
 *    (after a clean stop), after a crash (SIGKILL while writing), and with no checkpoint at all (full rebuild).
 *
 * Prints a table and writes the figures, the machine (CPU model, cores, memory) and the settings as JSON
 * (default bench-results/blobstore-bench[-quick].json).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { BlobStore } from '../internal/blobstore/blob-store.js';
import { FileBlobStore } from '../internal/blobstore/file-blob-store.js';
import { VolumeBlobStore, VOLUME_STORE_CHECKPOINT_FILE } from '../internal/blobstore/volume/volume-blob-store.js';
import { newWriteId } from '../internal/core/ids.js';

const SELF = fileURLToPath(import.meta.url);
const WRITERS = 64;
const READERS = 64;
const SIZES = [1024, 64 * 1024] as const;

interface Settings {
  quick: boolean;
  putPhaseMs: number;
  readPhaseMs: number;
  scaleBlobs: number;
  scaleBlobBytes: number;
  writers: number;
  readers: number;
  dir: string;
}

interface PutResult {
  store: string;
  blobBytes: number;
  puts: number;
  putsPerSec: number;
  mibPerSec: number;
  p50Ms: number;
  p99Ms: number;
  fsyncsPerPut?: number;
}

interface ReadResult {
  store: string;
  blobBytes: number;
  gets: number;
  getsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  positionedReadsPerGet?: number;
}

interface RestartResult {
  scenario: string;
  blobs: number;
  openMs: number;
  checkpoint: string;
  bytesScanned: number;
  rssDeltaBytes: number;
  rssBytesPerBlob: number;
  heapAndBuffersBytesPerBlob: number;
  indexBytesPerBlob: number;
  positionedReadsPerGet: number;
}

function gc(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] as number;
}

function blobId(n: number): string {
  return `${newWriteId(1_700_000_000_000 + n)}.shard-${n % 6}`;
}

function payloadOf(bytes: number, n: number): Buffer {
  const data = Buffer.alloc(bytes);
  data.writeUInt32BE(n >>> 0, 0);
  for (let i = 4; i < bytes; i += 251) data[i] = (n + i) & 0xff;
  return data;
}

async function openStore(kind: 'volume' | 'file', dir: string): Promise<BlobStore & { close(): Promise<void> }> {
  return kind === 'volume' ? VolumeBlobStore.open({ dir }) : FileBlobStore.open({ dir });
}

async function putPhase(kind: 'volume' | 'file', blobBytes: number, settings: Settings): Promise<{ result: PutResult; ids: string[]; dir: string }> {
  const dir = await mkdtemp(path.join(settings.dir, `${kind}-${blobBytes}-`));
  const store = await openStore(kind, dir);
  const ids: string[] = [];
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const deadline = started + settings.putPhaseMs;
  const writer = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const n = next++;
      const id = blobId(n);
      const t0 = performance.now();
      await store.put({ id, key: `bench/${n}`, writeId: id.slice(0, 26), part: id.slice(27), meta: '{"k":4,"m":2}' }, payloadOf(blobBytes, n));
      latencies.push(performance.now() - t0);
      ids.push(id);
    }
  };
  await Promise.all(Array.from({ length: settings.writers }, writer));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const result: PutResult = {
    store: kind,
    blobBytes,
    puts: ids.length,
    putsPerSec: ids.length / seconds,
    mibPerSec: (ids.length * blobBytes) / seconds / 1024 / 1024,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
  if (store instanceof VolumeBlobStore) result.fsyncsPerPut = store.stats().fsyncs / ids.length;
  await store.close();
  return { result, ids, dir };
}

async function readPhase(kind: 'volume' | 'file', blobBytes: number, dir: string, ids: string[], settings: Settings): Promise<ReadResult> {
  const store = await openStore(kind, dir);
  const before = store instanceof VolumeBlobStore ? store.stats() : null;
  const latencies: number[] = [];
  let gets = 0;
  let seed = 12345;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const started = performance.now();
  const deadline = started + settings.readPhaseMs;
  const reader = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const id = ids[Math.floor(random() * ids.length)] as string;
      const t0 = performance.now();
      const { data } = await store.get(id);
      latencies.push(performance.now() - t0);
      if (data.length !== blobBytes) throw new Error(`read ${data.length} bytes of ${id}, expected ${blobBytes}`);
      gets += 1;
    }
  };
  await Promise.all(Array.from({ length: settings.readers }, reader));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const result: ReadResult = {
    store: kind,
    blobBytes,
    gets,
    getsPerSec: gets / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
  };
  if (store instanceof VolumeBlobStore && before !== null) {
    const after = store.stats();
    result.positionedReadsPerGet = (after.getReads - before.getReads) / (after.gets - before.gets);
  }
  await store.close();
  return result;
}

/** Fills a volume store with `count` blobs of `blobBytes`, 64 writers; returns puts per second. */
async function populate(dir: string, count: number, blobBytes: number): Promise<number> {
  const store = await VolumeBlobStore.open({ dir });
  let next = 0;
  const started = performance.now();
  const writer = async (): Promise<void> => {
    for (let n = next++; n < count; n = next++) {
      const id = blobId(n);
      await store.put({ id, key: `bench/${n}`, writeId: id.slice(0, 26), part: id.slice(27), meta: '{"k":4,"m":2}' }, payloadOf(blobBytes, n));
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  const putsPerSec = count / ((performance.now() - started) / 1000);
  await store.close();
  return putsPerSec;
}

/** In a fresh process: how long the store takes to open, and how much RAM it then holds. */
async function restartChild(dir: string, blobs: number): Promise<void> {
  gc();
  const base = process.memoryUsage();
  const t0 = performance.now();
  const store = await VolumeBlobStore.open({ dir, autoCompact: false });
  const openMs = performance.now() - t0;
  // V8 frees ArrayBuffer memory on a background sweeper after a collection: give it a moment, and collect again.
  gc();
  await new Promise((resolve) => setTimeout(resolve, 250));
  gc();
  const after = process.memoryUsage();
  const stats = store.stats();
  const ids = (await store.list(null, 1000)).map((b) => b.id);
  const before = store.stats();
  for (let i = 0; i < 2000; i++) await store.get(ids[i % ids.length] as string);
  const reads = store.stats();
  const result = {
    openMs,
    checkpoint: stats.recovery.checkpoint,
    bytesScanned: stats.recovery.bytesScanned,
    blobs: stats.blobs,
    expectedBlobs: blobs,
    rssDeltaBytes: after.rss - base.rss,
    heapAndBuffersDeltaBytes: after.heapUsed + after.external - (base.heapUsed + base.external),
    indexMemoryBytes: stats.indexMemoryBytes,
    positionedReadsPerGet: (reads.getReads - before.getReads) / (reads.gets - before.gets),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // No close: a clean close may write a checkpoint, and the next scenario wants the directory as it is.
  process.exit(0);
}

function runChild(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', SELF, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`child ${args.join(' ')} exited ${String(code)}`))));
  });
}

async function measureRestart(scenario: string, dir: string, blobs: number): Promise<RestartResult> {
  const r = JSON.parse((await runChild(['--restart-child', dir, String(blobs)])).trim()) as {
    openMs: number;
    checkpoint: string;
    bytesScanned: number;
    blobs: number;
    rssDeltaBytes: number;
    heapAndBuffersDeltaBytes: number;
    indexMemoryBytes: number;
    positionedReadsPerGet: number;
  };
  if (r.blobs !== blobs) throw new Error(`${scenario}: reopened with ${r.blobs} blobs, expected ${blobs}`);
  return {
    scenario,
    blobs,
    openMs: r.openMs,
    checkpoint: r.checkpoint,
    bytesScanned: r.bytesScanned,
    rssDeltaBytes: r.rssDeltaBytes,
    rssBytesPerBlob: r.rssDeltaBytes / blobs,
    heapAndBuffersBytesPerBlob: r.heapAndBuffersDeltaBytes / blobs,
    indexBytesPerBlob: r.indexMemoryBytes / blobs,
    positionedReadsPerGet: r.positionedReadsPerGet,
  };
}

/** Writes `extra` more blobs in a child, which is killed with SIGKILL right after: a crash with a tail to scan. */
async function crashWhileWriting(dir: string, from: number, extra: number): Promise<void> {
  await runChild(['--write-child', dir, String(from), String(extra)]).catch(() => undefined);
}

async function writeChild(dir: string, from: number, extra: number): Promise<void> {
  const store = await VolumeBlobStore.open({ dir, checkpointEveryOps: Number.MAX_SAFE_INTEGER, checkpointEveryBytes: Number.MAX_SAFE_INTEGER });
  let next = from;
  const writer = async (): Promise<void> => {
    for (let n = next++; n < from + extra; n = next++) {
      const id = blobId(n);
      await store.put({ id, key: `bench/${n}`, writeId: id.slice(0, 26), part: id.slice(27), meta: '{"k":4,"m":2}' }, payloadOf(1024, n));
    }
  };
  await Promise.all(Array.from({ length: WRITERS }, writer));
  // Every put is durable; die without a clean close (and its checkpoint), as a crash would.
  process.kill(process.pid, 'SIGKILL');
}

function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => String(r[i]).length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map((r) => line(r.map(String)))].join('\n');
}

function formatNumber(n: number): string {
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(2);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  if (args[0] === '--restart-child') return restartChild(args[1] as string, Number(args[2]));
  if (args[0] === '--write-child') return writeChild(args[1] as string, Number(args[2]), Number(args[3]));

  const quick = args.includes('--quick');
  const scratch = await mkdtemp(path.join(arg('--dir') ?? os.tmpdir(), 'strata-blobstore-bench-'));
  const settings: Settings = {
    quick,
    putPhaseMs: quick ? 2000 : 5000,
    readPhaseMs: quick ? 2000 : 5000,
    scaleBlobs: quick ? 100_000 : 1_000_000,
    scaleBlobBytes: 1024,
    writers: WRITERS,
    readers: READERS,
    dir: scratch,
  };
  const cpus = os.cpus();
  const machine = {
    cpuModel: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.release()}`,
    node: process.version,
    uvThreadpoolSize: Number(process.env['UV_THREADPOOL_SIZE'] ?? 4),
  };
  console.log(`machine: ${machine.cpuModel}, ${machine.cores} cores, ${(machine.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${machine.platform}, node ${machine.node}`);
  console.log(`settings: ${JSON.stringify(settings)}\n`);

  const puts: PutResult[] = [];
  const reads: ReadResult[] = [];
  try {
    for (const blobBytes of SIZES) {
      for (const kind of ['volume', 'file'] as const) {
        const { result, ids, dir } = await putPhase(kind, blobBytes, settings);
        puts.push(result);
        reads.push(await readPhase(kind, blobBytes, dir, ids, settings));
        await rm(dir, { recursive: true, force: true });
      }
    }
    const speedup = SIZES.map((size) => {
      const v = puts.find((p) => p.store === 'volume' && p.blobBytes === size);
      const f = puts.find((p) => p.store === 'file' && p.blobBytes === size);
      return { blobBytes: size, volumeOverFile: v !== undefined && f !== undefined ? v.putsPerSec / f.putsPerSec : 0 };
    });
    console.log('Puts, durable acknowledgement, 64 concurrent writers');
    console.log(
      table(
        ['store', 'blob', 'puts', 'puts/s', 'MiB/s', 'p50 ms', 'p99 ms', 'fsyncs/put'],
        puts.map((p) => [p.store, `${p.blobBytes / 1024} KiB`, p.puts, p.putsPerSec, p.mibPerSec, p.p50Ms, p.p99Ms, p.fsyncsPerPut ?? '-']),
      ),
    );
    console.log(speedup.map((s) => `volume/file puts at ${s.blobBytes / 1024} KiB: ${s.volumeOverFile.toFixed(1)}x`).join('; '));
    console.log('\nRandom reads, 64 concurrent readers');
    console.log(
      table(
        ['store', 'blob', 'gets', 'gets/s', 'p50 ms', 'p99 ms', 'preads/get'],
        reads.map((r) => [r.store, `${r.blobBytes / 1024} KiB`, r.gets, r.getsPerSec, r.p50Ms, r.p99Ms, r.positionedReadsPerGet ?? '-']),
      ),
    );

    const scaleDir = path.join(scratch, 'scale');
    await mkdir(scaleDir);
    console.log(`\nFilling a volume store with ${settings.scaleBlobs.toLocaleString('en-US')} blobs of 1 KiB...`);
    const fillPutsPerSec = await populate(scaleDir, settings.scaleBlobs, settings.scaleBlobBytes);
    const restarts: RestartResult[] = [];
    restarts.push(await measureRestart('after a clean stop (checkpoint)', scaleDir, settings.scaleBlobs));
    const crashExtra = Math.round(settings.scaleBlobs / 20);
    await crashWhileWriting(scaleDir, settings.scaleBlobs, crashExtra);
    restarts.push(await measureRestart(`after SIGKILL (checkpoint + ${crashExtra.toLocaleString('en-US')}-put tail)`, scaleDir, settings.scaleBlobs + crashExtra));
    await rm(path.join(scaleDir, VOLUME_STORE_CHECKPOINT_FILE), { force: true });
    restarts.push(await measureRestart('no checkpoint (full rebuild)', scaleDir, settings.scaleBlobs + crashExtra));
    console.log(`(fill: ${Math.round(fillPutsPerSec).toLocaleString('en-US')} puts/s)`);
    console.log(
      table(
        ['restart', 'blobs', 'open ms', 'scanned MiB', 'RSS MiB', 'RSS B/blob', 'heap+buf B/blob', 'index B/blob', 'preads/get'],
        restarts.map((r) => [
          r.scenario,
          r.blobs,
          r.openMs,
          r.bytesScanned / 2 ** 20,
          r.rssDeltaBytes / 2 ** 20,
          r.rssBytesPerBlob,
          r.heapAndBuffersBytesPerBlob,
          r.indexBytesPerBlob,
          r.positionedReadsPerGet,
        ]),
      ),
    );

    const out = arg('--out') ?? path.join('bench-results', `blobstore-bench${quick ? '-quick' : ''}.json`);
    await mkdir(path.dirname(out), { recursive: true });
    const command = `npx tsx bench/blobstore-bench.ts${quick ? ' --quick' : ''}`;
    await writeFile(out, `${JSON.stringify({ command, date: new Date().toISOString(), machine, settings, puts, speedup, reads, fillPutsPerSec, restarts }, null, 2)}\n`);
    console.log(`\nwrote ${out}`);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

await main();
