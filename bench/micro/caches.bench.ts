/**
 * Microbenchmark of the four LRU caches, hand-written against lru-cache. Where lru-cache was taken, the hand-written
 * side is the module as it was (bench/micro/baseline/) and the lru-cache side is internal/; where it was not (the
 * rate limiter), the hand-written side is internal/ and the lru-cache side the candidate that was measured
 * (bench/micro/candidates/). Each case drives the module's own entry point the way the product calls it: a hit, a
 * miss followed by an insert, and churn where every insert evicts.
 *
 *   sh scripts/node.sh node_modules/tsx/dist/cli.mjs bench/micro/caches.bench.ts [--rounds 15] [--round-ms 200]
 *     [--quick] [--only <case id prefix>] [--control] [--out <result.json>]
 *
 * The machines are shared and busy (2 cores): each case runs in a fresh process, where both implementations run
 * interleaved round by round (which one goes first alternates). The table gives the median ops/s over the rounds,
 * and the ratio of the two per round (median and interquartile range) by wall time and by the process's CPU time,
 * which other load on the machine disturbs less: a difference inside the range reads as noise. `--control` runs the
 * hand-written implementation on both sides, which shows how far from 1 the ratios stray when there is no
 * difference. `--out` writes the figures, the settings and the machine as JSON.
 */
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { TokenBucketLimiter } from '../../internal/api/rate-limiter.js';
import type { Clock } from '../../internal/core/clock.js';
import { JsonNumber, type JsonObject, type JsonValue } from '../../internal/json/value.js';
import { silentLogger } from '../../internal/log/logger.js';
import type { BlobRef, Manifest, StoredManifest } from '../../internal/manifest/manifest.js';
import type { ManifestWatchListener, MetadataStore } from '../../internal/metadata/metadata-store.js';
import { ManifestCache } from '../../internal/readservice/manifest-cache.js';
import { PartCache } from '../../internal/readservice/part-cache.js';
import { AccessRecorder } from '../../internal/tiering/access-recorder.js';
import { machineInfo } from '../harness/machine.js';
import { AccessRecorder as BaselineAccessRecorder } from './baseline/access-recorder.js';
import { ManifestCache as BaselineManifestCache } from './baseline/manifest-cache.js';
import { PartCache as BaselinePartCache } from './baseline/part-cache.js';
import { TokenBucketLimiter as LruCacheTokenBucketLimiter } from './candidates/rate-limiter-lru-cache.js';

const SETTINGS = {
  rounds: 15,
  roundMs: 200,
  roundsQuick: 5,
  roundMsQuick: 100,
  /** Operations per timed batch: the clock is read between batches only. */
  batchOps: 256,
  /** Untimed operations per implementation and case before the first round (JIT, steady state of the cache). */
  warmupOps: 50_000,
} as const;

type Impl = 'hand-written' | 'lru-cache';
const IMPLS: readonly Impl[] = ['hand-written', 'lru-cache'];
/** Runs `ops` operations of a case on one instance. */
type Batch = (ops: number) => void | Promise<void>;

interface Case {
  id: string;
  what: string;
  make(impl: Impl): Promise<Batch>;
}

// ---- fixtures ---------------------------------------------------------------------------------------------

/** Deterministic pseudo-random indexes (xorshift32), the same sequence for both implementations. */
function indexes(count: number, below: number, seed = 0x9e3779b9): Uint32Array {
  const out = new Uint32Array(count);
  let x = seed >>> 0;
  for (let i = 0; i < count; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x % below;
  }
  return out;
}

function blobRefs(writeId: string): BlobRef[] {
  return [0, 1, 2].map((i) => ({
    part: `hot-${i}`,
    node: `node-${i}`,
    blob: `${writeId}.hot-${i}`,
    writeId,
    size: 4096,
    checksum: '44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a',
    state: 'ok' as const,
  }));
}

function manifest(key: string, writeId: string): Manifest {
  const at = '2026-01-01T00:00:00.000Z';
  return {
    formatVersion: 1,
    key,
    version: '1',
    writeId,
    deleted: false,
    strategy: 'field_hybrid',
    hotFields: ['like_count'],
    hotPaths: [],
    coldEmptyOffsets: [],
    bytes: { logical: 9000, hot: 900, cold: 8100, physical: 15000 },
    coldHash: null,
    cold_layout: null,
    hot: blobRefs(writeId),
    cold: [],
    dirty: false,
    createdAt: at,
    updatedAt: at,
  };
}

/** A write id as the product makes them (unique, ~36 characters). */
function writeIdOf(i: number): string {
  return `w-${i.toString(16).padStart(8, '0')}-4c1e-9a7b-${(i * 2654435761 >>> 0).toString(16).padStart(12, '0')}`;
}

class BenchClock implements Clock {
  private timeMs = 1_000_000;
  nowMs(): number {
    return this.timeMs;
  }
  advance(ms: number): void {
    this.timeMs += ms;
  }
  sleep(): Promise<void> {
    return Promise.resolve();
  }
}

// ---- part cache ---------------------------------------------------------------------------------------------

type PartCacheLike = Pick<PartCache, 'get' | 'stats'>;
function partCache(impl: Impl, bytesMax: number): PartCacheLike {
  return impl === 'hand-written' ? new BaselinePartCache(bytesMax) : new PartCache(bytesMax);
}

const PART_BYTES = 4096;
const part = Buffer.alloc(PART_BYTES, 7);
const loadPart = (): Promise<Buffer> => Promise.resolve(part);

const partCases: Case[] = [
  {
    id: 'part-cache/hit',
    what: 'get, hit: 10,000 parts of 4 KiB cached (64 MiB bound), random part',
    async make(impl) {
      const cache = partCache(impl, 64 * 1024 * 1024);
      const refs = Array.from({ length: 10_000 }, (_, i) => blobRefs(writeIdOf(i)));
      for (const r of refs) await cache.get('hot', r, loadPart);
      const order = indexes(1 << 16, refs.length);
      let at = 0;
      return async (ops) => {
        for (let i = 0; i < ops; i++) await cache.get('hot', refs[order[at++ & 0xffff]!]!, loadPart);
      };
    },
  },
  {
    id: 'part-cache/miss-evict',
    what: 'get, miss + insert, every insert evicts (1 MiB bound, ~250 parts of 4 KiB)',
    async make(impl) {
      const cache = partCache(impl, 1024 * 1024);
      // New parts all the time: refs built ahead in a ring much larger than the cache holds.
      const refs = Array.from({ length: 1 << 14 }, (_, i) => blobRefs(writeIdOf(i)));
      let at = 0;
      return async (ops) => {
        for (let i = 0; i < ops; i++) await cache.get('cold', refs[at++ & 0x3fff]!, loadPart);
      };
    },
  },
  {
    id: 'part-cache/mixed',
    what: 'get, 90% hits on 1,000 hot parts, 10% misses that evict (8 MiB bound)',
    async make(impl) {
      const cache = partCache(impl, 8 * 1024 * 1024);
      const hot = Array.from({ length: 1_000 }, (_, i) => blobRefs(writeIdOf(i)));
      const cold = Array.from({ length: 1 << 14 }, (_, i) => blobRefs(writeIdOf(1_000_000 + i)));
      const order = indexes(1 << 16, 1_000);
      let at = 0;
      let coldAt = 0;
      return async (ops) => {
        for (let i = 0; i < ops; i++) {
          const n = at++ & 0xffff;
          const refs = n % 10 === 9 ? cold[coldAt++ & 0x3fff]! : hot[order[n]!]!;
          await cache.get('hot', refs, loadPart);
        }
      };
    },
  },
];

// ---- manifest cache ---------------------------------------------------------------------------------------

/**
 * Just what ManifestCache calls: an answered revision, a get, and a watch the bench drives by hand. A get answers
 * the same object every time for a key: the cache freezes what it inserts, and freezing a new manifest per read
 * would put more allocation and collection than cache work into the figures.
 */
function fakeMetadata(): { store: MetadataStore; listener: () => ManifestWatchListener; revision: { value: number } } {
  const revision = { value: 100 };
  let listener: ManifestWatchListener | null = null;
  const stored = new Map<string, StoredManifest>();
  const read = (key: string): StoredManifest => {
    let answer = stored.get(key);
    if (answer === undefined) {
      answer = { manifest: manifest(key, 'w-read'), modRevision: 50 };
      stored.set(key, answer);
    }
    return answer;
  };
  const store = {
    currentRevision: () => Promise.resolve(revision.value),
    get: (key: string) => Promise.resolve(read(key)),
    watchManifests: (_from: number, l: ManifestWatchListener) => {
      listener = l;
      return Promise.resolve({ close: () => Promise.resolve() });
    },
  } as unknown as MetadataStore;
  return {
    store,
    revision,
    listener: () => {
      if (listener === null) throw new Error('the cache did not start its watch');
      return listener;
    },
  };
}

type ManifestCacheLike = Pick<ManifestCache, 'get' | 'start' | 'watching' | 'size'>;
async function manifestCache(impl: Impl, entriesMax: number): Promise<{ cache: ManifestCacheLike; listener: ManifestWatchListener }> {
  const metadata = fakeMetadata();
  // No revision window: every read asks for the revision at once, so no timer paces the bench.
  const options = { entriesMax, revisionWindowMs: 0, log: silentLogger };
  const cache = impl === 'hand-written' ? new BaselineManifestCache(metadata.store, options) : new ManifestCache(metadata.store, options);
  cache.start();
  for (let i = 0; i < 100 && !cache.watching; i++) await new Promise((resolve) => setImmediate(resolve));
  if (!cache.watching) throw new Error('the manifest cache did not start watching');
  return { cache, listener: metadata.listener() };
}

const manifestCases: Case[] = [
  {
    id: 'manifest-cache/hit',
    what: 'get, hit: 10,000 manifests cached, random key',
    async make(impl) {
      const { cache, listener } = await manifestCache(impl, 100_000);
      const keys = Array.from({ length: 10_000 }, (_, i) => `docs/${i}`);
      keys.forEach((key, i) => listener.onChange(key, { manifest: manifest(key, writeIdOf(i)), modRevision: 10 + i }, 10 + i));
      const order = indexes(1 << 16, keys.length);
      let at = 0;
      return async (ops) => {
        for (let i = 0; i < ops; i++) await cache.get(keys[order[at++ & 0xffff]!]!);
      };
    },
  },
  {
    id: 'manifest-cache/miss-evict',
    what: 'get, miss + read + insert, every insert evicts (1,000 entries)',
    async make(impl) {
      const { cache } = await manifestCache(impl, 1_000);
      const keys = Array.from({ length: 1 << 14 }, (_, i) => `docs/${i}`);
      for (const key of keys) await cache.get(key); // every answer built (and frozen) before the rounds
      let at = 0;
      return async (ops) => {
        for (let i = 0; i < ops; i++) await cache.get(keys[at++ & 0x3fff]!);
      };
    },
  },
  {
    id: 'manifest-cache/watch-evict',
    what: 'watch change applied, every insert evicts (1,000 entries)',
    async make(impl) {
      const { listener } = await manifestCache(impl, 1_000);
      const keys = Array.from({ length: 1 << 14 }, (_, i) => `docs/${i}`);
      const stored = keys.map((key, i) => ({ manifest: manifest(key, writeIdOf(i)), modRevision: 0 }));
      let revision = 1_000;
      let at = 0;
      return (ops) => {
        for (let i = 0; i < ops; i++) {
          const n = at++ & 0x3fff;
          revision++;
          listener.onChange(keys[n]!, stored[n]!, revision);
        }
      };
    },
  },
];

// ---- rate limiter ---------------------------------------------------------------------------------------------

type LimiterLike = Pick<TokenBucketLimiter, 'take' | 'size'>;
function limiter(impl: Impl, clock: Clock, clientsMax: number): LimiterLike {
  return impl === 'hand-written' ? new TokenBucketLimiter({ clock, clientsMax }) : new LruCacheTokenBucketLimiter({ clock, clientsMax });
}

const rateCases: Case[] = [
  {
    id: 'rate-limiter/known',
    what: 'take, 1,000 busy clients (none idle), random client; clientsMax 100,000',
    async make(impl) {
      const clock = new BenchClock();
      const l = limiter(impl, clock, 100_000);
      const limit = { ratePerSec: 1_000, burst: 10_000 };
      const clients = Array.from({ length: 1_000 }, (_, i) => `10.0.${i >> 8}.${i & 255}`);
      const order = indexes(1 << 16, clients.length);
      let at = 0;
      return (ops) => {
        for (let i = 0; i < ops; i++) {
          clock.advance(0.01);
          l.take(clients[order[at++ & 0xffff]!]!, limit);
        }
      };
    },
  },
  {
    id: 'rate-limiter/new-full',
    what: 'take, a new client each time (rotating addresses), table full of busy clients (clientsMax 100,000)',
    async make(impl) {
      const clock = new BenchClock();
      const l = limiter(impl, clock, 100_000);
      const limit = { ratePerSec: 1, burst: 10 };
      const clients = Array.from({ length: 1 << 18 }, (_, i) => `addr-${i}`);
      for (let i = 0; i < 100_000; i++) l.take(`fill-${i}`, limit);
      let at = 0;
      return (ops) => {
        for (let i = 0; i < ops; i++) l.take(clients[at++ & 0x3ffff]!, limit);
      };
    },
  },
  {
    id: 'rate-limiter/idle-drop',
    what: 'take, a new client each time, the previous ones idle and dropped (clientsMax 100,000)',
    async make(impl) {
      const clock = new BenchClock();
      const l = limiter(impl, clock, 100_000);
      const limit = { ratePerSec: 1, burst: 1 };
      const clients = Array.from({ length: 1 << 16 }, (_, i) => `addr-${i}`);
      let at = 0;
      return (ops) => {
        for (let i = 0; i < ops; i++) {
          // Each bucket is full again one second later: the next request drops it.
          clock.advance(1_000);
          l.take(clients[at++ & 0xffff]!, limit);
        }
      };
    },
  },
];

// ---- access recorder ----------------------------------------------------------------------------------------

type RecorderLike = Pick<AccessRecorder, 'wrote' | 'patched'>;
function recorder(impl: Impl): RecorderLike {
  const deps = {
    metadata: {} as MetadataStore, // wrote() and patched() never reach the store; only flush() does
    clock: new BenchClock(),
    log: silentLogger,
    base: { pinnedFor: () => null, defaults: [] },
  };
  const options = { halfLifeMs: 3_600_000, flushIntervalMs: 0, policy: { halfLifeMs: 3_600_000, promoteScore: 1, demoteScore: 0.5, dwellMs: 0 } };
  return impl === 'hand-written' ? new BaselineAccessRecorder(deps, options) : new AccessRecorder(deps, options);
}

/** A small document as a gateway sees it after parsing: a counter that changes and a flag that does not. */
function doc(i: number): JsonObject {
  return new Map<string, JsonValue>([
    ['like_count', new JsonNumber(String(i))],
    ['flag', true],
  ]);
}

const recorderCases: Case[] = [
  {
    id: 'access-recorder/rewrite',
    what: 'wrote, 2-member document, 1,000 documents rewritten at random (digests kept)',
    async make(impl) {
      const r = recorder(impl);
      const manifests = Array.from({ length: 1_000 }, (_, i) => manifest(`docs/${i}`, writeIdOf(i)));
      const docs = Array.from({ length: 64 }, (_, i) => doc(i));
      const order = indexes(1 << 16, manifests.length);
      let at = 0;
      return (ops) => {
        for (let i = 0; i < ops; i++) {
          const n = at++ & 0xffff;
          r.wrote(manifests[order[n]!]!, docs[n & 63]!);
        }
      };
    },
  },
  {
    id: 'access-recorder/new-evict',
    what: 'wrote, 2-member document, a new document each time, every write evicts (10,000 kept)',
    async make(impl) {
      const r = recorder(impl);
      const manifests = Array.from({ length: 1 << 15 }, (_, i) => manifest(`docs/${i}`, writeIdOf(i)));
      const d = doc(1);
      let at = 0;
      return (ops) => {
        for (let i = 0; i < ops; i++) r.wrote(manifests[at++ & 0x7fff]!, d);
      };
    },
  },
  {
    id: 'access-recorder/write-patch',
    what: 'wrote then patched (the patch forgets the digests), 1,000 documents at random',
    async make(impl) {
      const r = recorder(impl);
      const manifests = Array.from({ length: 1_000 }, (_, i) => manifest(`docs/${i}`, writeIdOf(i)));
      const d = doc(1);
      const paths = [['like_count']];
      const order = indexes(1 << 16, manifests.length);
      let at = 0;
      return (ops) => {
        for (let i = 0; i < ops; i += 2) {
          r.wrote(manifests[order[at++ & 0xffff]!]!, d);
          r.patched(manifests[order[at++ & 0xffff]!]!, paths);
        }
      };
    },
  },
  {
    id: 'access-recorder/write-patch-one',
    what: 'wrote then patched, always the same document (the table empties on every patch)',
    async make(impl) {
      const r = recorder(impl);
      const m = manifest('docs/one', writeIdOf(1));
      const d = doc(1);
      const paths = [['like_count']];
      return (ops) => {
        for (let i = 0; i < ops; i += 2) {
          r.wrote(m, d);
          r.patched(m, paths);
        }
      };
    },
  },
];

// ---- the runner -----------------------------------------------------------------------------------------------

const CASES: Case[] = [...partCases, ...manifestCases, ...rateCases, ...recorderCases];

/** Both clocks of one round: wall time (what a caller waits), and this process's CPU time (user + system). */
interface Round {
  opsPerSec: number;
  opsPerCpuSec: number;
}

interface CaseResult {
  id: string;
  what: string;
  rounds: Record<Impl, Round[]>;
  /** Medians over the rounds. */
  opsPerSec: Record<Impl, number>;
  opsPerCpuSec: Record<Impl, number>;
  /**
   * lru-cache / hand-written, per round (the two ran back to back): the median and the interquartile range of
   * those ratios, by wall time and by CPU time. Another process taking the core mid-round shows in wall time only.
   */
  ratio: Spread;
  cpuRatio: Spread;
}

interface Spread {
  median: number;
  q1: number;
  q3: number;
}

async function timed(batch: Batch, roundMs: number): Promise<Round> {
  let ops = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  let elapsedMs = 0;
  while (elapsedMs < roundMs) {
    await batch(SETTINGS.batchOps);
    ops += SETTINGS.batchOps;
    elapsedMs = performance.now() - start;
  }
  const cpu = process.cpuUsage(cpuStart);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return { opsPerSec: (ops / elapsedMs) * 1000, opsPerCpuSec: (ops / Math.max(cpuMs, 0.001)) * 1000 };
}

function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (sorted.length - 1) * q;
  const low = Math.floor(at);
  const high = Math.ceil(at);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (at - low);
}

function spread(values: readonly number[]): Spread {
  return { median: quantile(values, 0.5), q1: quantile(values, 0.25), q3: quantile(values, 0.75) };
}

async function runCase(c: Case, rounds: number, roundMs: number, control: boolean): Promise<CaseResult> {
  const batches: Record<Impl, Batch> = {
    'hand-written': await c.make('hand-written'),
    'lru-cache': await c.make(control ? 'hand-written' : 'lru-cache'),
  };
  for (const impl of IMPLS) await batches[impl](SETTINGS.warmupOps);
  const measured: Record<Impl, Round[]> = { 'hand-written': [], 'lru-cache': [] };
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? IMPLS : [...IMPLS].reverse();
    for (const impl of order) measured[impl].push(await timed(batches[impl], roundMs));
  }
  const of = (impl: Impl, clock: keyof Round): number[] => measured[impl].map((r) => r[clock]);
  const ratios = (clock: keyof Round): number[] => of('lru-cache', clock).map((v, i) => v / of('hand-written', clock)[i]!);
  const medians = (clock: keyof Round): Record<Impl, number> => ({
    'hand-written': quantile(of('hand-written', clock), 0.5),
    'lru-cache': quantile(of('lru-cache', clock), 0.5),
  });
  return {
    id: c.id,
    what: c.what,
    rounds: measured,
    opsPerSec: medians('opsPerSec'),
    opsPerCpuSec: medians('opsPerCpuSec'),
    ratio: spread(ratios('opsPerSec')),
    cpuRatio: spread(ratios('opsPerCpuSec')),
  };
}

interface Args {
  rounds: number;
  roundMs: number;
  control: boolean;
  only: string | null;
  out: string | null;
  /** Set in the child process that runs one case. */
  child: string | null;
}

function parseArgs(argv: string[]): Args {
  const quick = argv.includes('--quick');
  const value = (flag: string): string | null => {
    const i = argv.indexOf(flag);
    return i === -1 ? null : (argv[i + 1] ?? null);
  };
  const positive = (flag: string, fallback: number): number => {
    const text = value(flag);
    if (text === null) return fallback;
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, not "${text}"`);
    return n;
  };
  return {
    rounds: positive('--rounds', quick ? SETTINGS.roundsQuick : SETTINGS.rounds),
    roundMs: positive('--round-ms', quick ? SETTINGS.roundMsQuick : SETTINGS.roundMs),
    control: argv.includes('--control'),
    only: value('--only'),
    out: value('--out'),
    child: value('--child'),
  };
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

async function main(): Promise<void> {
  const args = parsed;
  const machine = await machineInfo();
  const cases = CASES.filter((c) => args.only === null || c.id.startsWith(args.only));
  console.log(`caches: ${machine.cpuModel}, ${machine.cores} cores, Node ${machine.node}; ${args.rounds} rounds of ${args.roundMs} ms each`);
  if (args.control) console.log('control run: the hand-written implementation on both sides (what the ratios show for no difference)');
  const results: CaseResult[] = [];
  for (const c of cases) {
    const r = await inChild(c.id, args);
    results.push(r);
    console.log(`  ${r.id}: ${fmt(r.opsPerSec['hand-written'])} -> ${fmt(r.opsPerSec['lru-cache'])} ops/s (x${r.ratio.median.toFixed(2)})`);
  }
  const ratio = (s: Spread): string => `${s.median.toFixed(2)} (${s.q1.toFixed(2)}-${s.q3.toFixed(2)})`;
  console.log('\nMedians over the rounds; ratios per round, median (interquartile range).\n');
  console.log('| case | hand-written ops/s | lru-cache ops/s | lru-cache / hand-written, wall | same, CPU time |');
  console.log('|---|---:|---:|---:|---:|');
  for (const r of results) {
    console.log(`| ${r.id} | ${fmt(r.opsPerSec['hand-written'])} | ${fmt(r.opsPerSec['lru-cache'])} | ${ratio(r.ratio)} | ${ratio(r.cpuRatio)} |`);
  }
  for (const r of results) console.log(`  ${r.id}: ${r.what}`);
  if (args.out !== null) {
    const result = { startedAt: new Date().toISOString(), command: process.argv.slice(1).join(' '), machine, settings: { ...SETTINGS, ...args }, results };
    await writeFile(args.out, `${JSON.stringify(result, null, 2)}\n`);
  }
}

/**
 * Each case runs in a process of its own (the same Node, with the loader flags this one got), so that no case
 * inherits another's heap or compiled code; its two implementations share that process, interleaved.
 */
function inChild(id: string, args: Args): Promise<CaseResult> {
  const flags = ['--rounds', String(args.rounds), '--round-ms', String(args.roundMs), ...(args.control ? ['--control'] : [])];
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', id, ...flags], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`case ${id} exited with ${code}`));
      else resolve(JSON.parse(stdout) as CaseResult);
    });
  });
}

async function child(id: string, args: Args): Promise<void> {
  const c = CASES.find((candidate) => candidate.id === id);
  if (c === undefined) throw new Error(`no case ${id}`);
  process.stdout.write(JSON.stringify(await runCase(c, args.rounds, args.roundMs, args.control)));
}

const parsed = parseArgs(process.argv.slice(2));
if (parsed.child !== null) await child(parsed.child, parsed);
else await main();
