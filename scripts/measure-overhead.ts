/**
 * Measures what a small document costs on disk, from file sizes (docs/design/compact-formats.md, section 1): for
 * each row (a strategy and a document size) it starts a fresh in-process all-in-one in its own temporary
 * directory, writes `--docs` documents of incompressible text through the gateway's HTTP API, stops the cluster,
 * checkpoints SQLite, and then divides the bytes of every file the row wrote (volumes, index checkpoints, the
 * metadata store's strata.db and -wal, the WAL's wal.db and -wal) by the number of documents, less what an empty
 * cluster's files take. It then breaks the bytes down by reading the files themselves: every needle of every
 * volume (head fields, data CRC, padding), the index checkpoints, SQLite's `dbstat` (bytes per table and index),
 * and the in-memory index of each node reopened from its checkpoint.
 *
 * This is the seed of the file-size measurement `verify:storage` is to gain: it prints figures and never fails.
 *
 *   npx tsx scripts/measure-overhead.ts                        # the five layouts of issue 13, 10,000 documents each
 *   npx tsx scripts/measure-overhead.ts --docs 2000 --rows replication:1024,ec:4096 --idempotency --json
 *   options: --docs N, --rows strategy:bytes[,...], --concurrency N (default 16), --idempotency (adds a row whose
 *            writes carry an Idempotency-Key), --keep (leave the directories), --json, --out FILE (the JSON, too)
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { VolumeBlobStore } from '../internal/blobstore/volume/volume-blob-store.js';
import { NEEDLE_FIXED_BYTES, decodeNeedleHead } from '../internal/blobstore/volume/needle.js';
import { SUPERBLOCK_BYTES } from '../internal/blobstore/volume/volume.js';
import { loadConfig } from '../internal/config/config.js';
import { sizedDocument } from '../internal/efficiency/verify-storage.js';
import { silentLogger } from '../internal/log/logger.js';
import { STRATEGIES, type Strategy } from '../internal/manifest/manifest.js';
import { startAllInOne } from '../internal/wiring/all-in-one.js';

interface RowSpec {
  strategy: Strategy;
  bytes: number;
  idempotency: boolean;
}

/** Bytes of each kind of file, summed over the data directory. */
interface FileBytes {
  volumes: number;
  indexCheckpoints: number;
  metadataDb: number;
  metadataWal: number;
  walDb: number;
  walWal: number;
  /** Files not counted (cluster identity, token, locks, the disk reserve's ballast). */
  other: number;
}

interface NeedleBreakdown {
  volumes: number;
  superblocks: number;
  needles: number;
  tombstones: number;
  payload: number;
  fixedHead: number;
  id: number;
  key: number;
  writeId: number;
  part: number;
  meta: number;
  headCrc: number;
  dataCrcAndPadding: number;
  /** Bytes between needles that do not decode (there should be none). */
  unaccounted: number;
}

interface SqliteBreakdown {
  fileBytes: number;
  pageSize: number;
  freePages: number;
  /** Bytes of pages per table or index (dbstat), and the payload bytes they hold. */
  objects: Record<string, { bytes: number; payload: number; rows: number }>;
}

interface RowResult {
  row: string;
  strategy: Strategy;
  documentBytes: number;
  idempotency: boolean;
  documents: number;
  keyBytes: number;
  seconds: number;
  writesPerSec: number;
  blobs: number;
  blobsPerDoc: number;
  /** Sum of blob payload sizes (replicas, shards, copies), per document. */
  payloadPerDoc: number;
  /** All counted file bytes less an empty cluster's, per document. */
  fileBytesPerDoc: number;
  /** fileBytesPerDoc - payloadPerDoc. */
  fixedOverheadPerDoc: number;
  /** fileBytesPerDoc / documentBytes. */
  bytesOnDiskRatio: number;
  perDoc: Record<string, number>;
  files: FileBytes;
  baseline: FileBytes;
  needles: NeedleBreakdown;
  indexCheckpointBytesPerBlob: number;
  inMemoryIndexBytesPerBlob: number;
  metadata: SqliteBreakdown;
  wal: SqliteBreakdown & { entries: number; recordBytes: number; metadataWalBeforeStop: number; walWalBeforeStop: number };
  manifestJsonBytesPerDoc: number;
  manifestChecksumBytesPerDoc: number;
}

const DEFAULT_ROWS: RowSpec[] = [
  { strategy: 'replication', bytes: 1024, idempotency: false },
  { strategy: 'ec', bytes: 1024, idempotency: false },
  { strategy: 'ec', bytes: 4096, idempotency: false },
  { strategy: 'field_hybrid', bytes: 1024, idempotency: false },
  { strategy: 'field_hybrid', bytes: 4096, idempotency: false },
];

function fail(message: string): never {
  process.stderr.write(`measure-overhead: ${message}\n`);
  process.exit(2);
}

function parseRows(text: string): RowSpec[] {
  return text.split(',').map((item) => {
    const [strategy, bytes] = item.split(':');
    if (!(STRATEGIES as readonly string[]).includes(strategy ?? '')) fail(`unknown strategy in --rows: ${item}`);
    const n = Number(bytes);
    if (!Number.isInteger(n) || n < 64 || n > 1024 * 1024) fail(`document bytes in --rows must be 64 to 1 MiB: ${item}`);
    return { strategy: strategy as Strategy, bytes: n, idempotency: false };
  });
}

function walk(dir: string, visit: (file: string, bytes: number) => void): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, visit);
    else if (entry.isFile()) visit(full, statSync(full).size);
  }
}

function fileBytes(dataDir: string): FileBytes {
  const out: FileBytes = { volumes: 0, indexCheckpoints: 0, metadataDb: 0, metadataWal: 0, walDb: 0, walWal: 0, other: 0 };
  walk(dataDir, (file, bytes) => {
    const name = path.basename(file);
    if (name.endsWith('.vol')) out.volumes += bytes;
    else if (name === 'index.ckpt') out.indexCheckpoints += bytes;
    else if (name === 'strata.db') out.metadataDb += bytes;
    else if (name === 'strata.db-wal') out.metadataWal += bytes;
    else if (name === 'wal.db') out.walDb += bytes;
    else if (name === 'wal.db-wal') out.walWal += bytes;
    else out.other += bytes;
  });
  return out;
}

const counted = (f: FileBytes): number => f.volumes + f.indexCheckpoints + f.metadataDb + f.metadataWal + f.walDb + f.walWal;

/** Decodes every needle of every volume under `dataDir`, summing the bytes of each head field. */
function needleBreakdown(dataDir: string): NeedleBreakdown {
  const b: NeedleBreakdown = {
    volumes: 0, superblocks: 0, needles: 0, tombstones: 0, payload: 0, fixedHead: 0, id: 0, key: 0, writeId: 0,
    part: 0, meta: 0, headCrc: 0, dataCrcAndPadding: 0, unaccounted: 0,
  };
  walk(dataDir, (file) => {
    if (!file.endsWith('.vol')) return;
    const buf = readFileSync(file);
    b.volumes += 1;
    b.superblocks += SUPERBLOCK_BYTES;
    let at = SUPERBLOCK_BYTES;
    while (at < buf.length) {
      const decoded = decodeNeedleHead(buf, at, buf.length, true);
      if (decoded.state !== 'ok') {
        b.unaccounted += buf.length - at;
        break;
      }
      const { head, headBytes, needleBytes } = decoded;
      b.needles += 1;
      if (head.tombstone) b.tombstones += 1;
      b.payload += head.size;
      b.fixedHead += NEEDLE_FIXED_BYTES;
      b.id += Buffer.byteLength(head.id, 'latin1');
      b.key += Buffer.byteLength(head.key);
      b.writeId += Buffer.byteLength(head.writeId);
      b.part += Buffer.byteLength(head.part);
      b.meta += Buffer.byteLength(head.meta);
      b.headCrc += 4;
      b.dataCrcAndPadding += needleBytes - headBytes - head.size;
      at += needleBytes;
    }
  });
  return b;
}

/** Checkpoints a SQLite file's WAL into it (TRUNCATE leaves a 0-byte -wal), then measures it with dbstat. */
function sqliteBreakdown(file: string): SqliteBreakdown {
  const db = new Database(file);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const freePages = db.pragma('freelist_count', { simple: true }) as number;
    const rows = db
      .prepare('SELECT name, SUM(pgsize) AS bytes, SUM(payload) AS payload, SUM(ncell) AS cells FROM dbstat GROUP BY name')
      .all() as { name: string; bytes: number; payload: number; cells: number }[];
    const objects: SqliteBreakdown['objects'] = {};
    for (const r of rows) objects[r.name] = { bytes: r.bytes, payload: r.payload, rows: r.cells };
    return { fileBytes: statSync(file).size, pageSize, freePages, objects };
  } finally {
    db.close();
  }
}

function scalar(file: string, sql: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return Number((db.prepare(sql).pluck().get() as number | null) ?? 0);
  } finally {
    db.close();
  }
}

/** Reopens each node's volume store from its checkpoint: the index then holds only its main run (exact bytes). */
async function inMemoryIndex(dataDir: string): Promise<{ bytes: number; blobs: number }> {
  let bytes = 0;
  let blobs = 0;
  const nodesDir = path.join(dataDir, 'nodes');
  for (const node of readdirSync(nodesDir)) {
    const store = await VolumeBlobStore.open({ dir: path.join(nodesDir, node) });
    try {
      bytes += store.stats().indexMemoryBytes;
      blobs += (await store.usage()).blobs;
    } finally {
      await store.close();
    }
  }
  return { bytes, blobs };
}

async function startCluster(dataDir: string) {
  const config = loadConfig({
    STRATA_DATA_DIR: dataDir,
    STRATA_PORT: '0',
    STRATA_NODE_PORT_BASE: '0',
    STRATA_LOG_LEVEL: 'silent',
    STRATA_SCRUB_INTERVAL_MS: '0',
    STRATA_READ_CACHE_BYTES: '0',
    STRATA_NODE_TIMEOUT_MS: '30000',
  });
  return startAllInOne(config, { log: silentLogger, startHealer: false });
}

interface Baseline {
  files: FileBytes;
  metadata: SqliteBreakdown;
  wal: SqliteBreakdown;
}

/** Files of a cluster that was started and stopped with nothing written: subtracted from every row. */
async function measureBaseline(): Promise<Baseline> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-overhead-empty-'));
  try {
    const cluster = await startCluster(dir);
    await cluster.stop();
    const metadata = sqliteBreakdown(path.join(dir, 'metadata', 'strata.db'));
    const wal = sqliteBreakdown(path.join(dir, 'wal', 'wal.db'));
    return { files: fileBytes(dir), metadata, wal };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function measureRow(spec: RowSpec, docs: number, concurrency: number, base: Baseline, keep: boolean): Promise<RowResult> {
  const name = `${spec.strategy} ${spec.bytes} B${spec.idempotency ? ' + Idempotency-Key' : ''}`;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-overhead-'));
  const cluster = await startCluster(dir);
  const runTag = randomBytes(3).toString('hex');
  const keyOf = (i: number): string => `users/${String(i).padStart(8, '0')}`;
  const startedAt = Date.now();
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= docs) return;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (spec.idempotency) headers['idempotency-key'] = `${runTag}-${i}`;
      const res = await fetch(`${cluster.url}/write?key=${encodeURIComponent(keyOf(i))}&strategy=${spec.strategy}`, {
        method: 'POST',
        headers,
        body: sizedDocument(spec.bytes, 'incompressible', i),
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`write ${keyOf(i)}: ${res.status} ${text}`);
      if (++done % 1000 === 0) process.stderr.write(`  ${name}: ${done}/${docs}\n`);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } catch (error) {
    await cluster.stop();
    throw error;
  }
  const seconds = (Date.now() - startedAt) / 1000;
  const baseline = base.files;
  const metadataWalBeforeStop = sizeOr0(path.join(dir, 'metadata', 'strata.db-wal'));
  const walWalBeforeStop = sizeOr0(path.join(dir, 'wal', 'wal.db-wal'));
  await cluster.stop();
  try {
    const metadataFile = path.join(dir, 'metadata', 'strata.db');
    const walFile = path.join(dir, 'wal', 'wal.db');
    const metadata = sqliteBreakdown(metadataFile);
    const wal = sqliteBreakdown(walFile);
    const files = fileBytes(dir);
    const needles = needleBreakdown(dir);
    const memory = await inMemoryIndex(dir);
    const ckpt = fileBytes(dir).indexCheckpoints;
    const manifestJson = scalar(metadataFile, 'SELECT SUM(length(CAST(manifest AS BLOB))) FROM manifests');
    const manifestChecksum = scalar(metadataFile, 'SELECT SUM(length(checksum)) FROM manifests');
    const walEntries = scalar(walFile, 'SELECT COUNT(*) FROM wal_entries');
    const walRecordBytes = scalar(walFile, 'SELECT SUM(length(CAST(record AS BLOB))) FROM wal_entries');
    const per = (n: number): number => Math.round((n / docs) * 10) / 10;
    const fileTotal = counted(files) - counted(baseline);
    const payloadPerDoc = per(needles.payload);
    const perDoc: Record<string, number> = {
      'volumes: superblocks': per(needles.superblocks - baseline.volumes),
      'needle head: fixed 72 B': per(needles.fixedHead),
      'needle head: blob id': per(needles.id),
      'needle head: key': per(needles.key),
      'needle head: writeId': per(needles.writeId),
      'needle head: part': per(needles.part),
      'needle head: meta JSON': per(needles.meta),
      'needle head: head CRC': per(needles.headCrc),
      'needle tail: data CRC + padding': per(needles.dataCrcAndPadding),
      'index checkpoints': per(files.indexCheckpoints - baseline.indexCheckpoints),
      'strata.db (after checkpoint)': per(files.metadataDb - baseline.metadataDb),
      'strata.db-wal (after checkpoint)': per(files.metadataWal),
      'wal.db (after checkpoint)': per(files.walDb - baseline.walDb),
      'wal.db-wal (after checkpoint)': per(files.walWal),
    };
    // Each table and index less its pages in an empty cluster (one page each), so only what the documents added.
    for (const [object, s] of Object.entries(metadata.objects)) perDoc[`strata.db ${object}`] = per(s.bytes - (base.metadata.objects[object]?.bytes ?? 0));
    perDoc['strata.db free pages'] = per((metadata.freePages - base.metadata.freePages) * metadata.pageSize);
    for (const [object, s] of Object.entries(wal.objects)) perDoc[`wal.db ${object}`] = per(s.bytes - (base.wal.objects[object]?.bytes ?? 0));
    perDoc['wal.db free pages'] = per((wal.freePages - base.wal.freePages) * wal.pageSize);
    return {
      row: name,
      strategy: spec.strategy,
      documentBytes: spec.bytes,
      idempotency: spec.idempotency,
      documents: docs,
      keyBytes: Buffer.byteLength(keyOf(0)),
      seconds,
      writesPerSec: Math.round(docs / seconds),
      blobs: needles.needles - needles.tombstones,
      blobsPerDoc: per(needles.needles - needles.tombstones),
      payloadPerDoc,
      fileBytesPerDoc: per(fileTotal),
      fixedOverheadPerDoc: Math.round((fileTotal / docs - needles.payload / docs) * 10) / 10,
      bytesOnDiskRatio: Math.round((fileTotal / docs / spec.bytes) * 1000) / 1000,
      perDoc,
      files,
      baseline,
      needles,
      indexCheckpointBytesPerBlob: Math.round(((ckpt - baseline.indexCheckpoints) / Math.max(1, memory.blobs)) * 10) / 10,
      inMemoryIndexBytesPerBlob: Math.round((memory.bytes / Math.max(1, memory.blobs)) * 10) / 10,
      metadata,
      wal: { ...wal, entries: walEntries, recordBytes: walRecordBytes, metadataWalBeforeStop, walWalBeforeStop },
      manifestJsonBytesPerDoc: per(manifestJson),
      manifestChecksumBytesPerDoc: per(manifestChecksum),
    };
  } finally {
    if (!keep) await rm(dir, { recursive: true, force: true });
    else process.stderr.write(`  kept ${dir}\n`);
  }
}

function sizeOr0(file: string): number {
  return existsSync(file) ? statSync(file).size : 0;
}

function printRow(r: RowResult): void {
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  out(`\n== ${r.row}: ${r.documents} documents, key ${r.keyBytes} B, ${r.blobsPerDoc} blobs/doc, ${r.writesPerSec} writes/s`);
  out(`   file bytes/doc ${r.fileBytesPerDoc}  payload/doc ${r.payloadPerDoc}  fixed overhead/doc ${r.fixedOverheadPerDoc}  ` +
    `bytes on disk / logical ${r.bytesOnDiskRatio}x`);
  out(`   index checkpoint ${r.indexCheckpointBytesPerBlob} B/blob, in-memory index ${r.inMemoryIndexBytesPerBlob} B/blob; ` +
    `manifest JSON ${r.manifestJsonBytesPerDoc} B/doc, envelope checksum ${r.manifestChecksumBytesPerDoc} B/doc`);
  out(`   WAL: ${r.wal.entries} entries (${(r.wal.entries / r.documents).toFixed(2)}/write), record text ` +
    `${Math.round(r.wal.recordBytes / Math.max(1, r.wal.entries))} B/entry; -wal files before stop: strata.db-wal ` +
    `${r.wal.metadataWalBeforeStop} B, wal.db-wal ${r.wal.walWalBeforeStop} B`);
  for (const [label, value] of Object.entries(r.perDoc)) if (value !== 0) out(`   ${label.padEnd(48)} ${String(value).padStart(9)}`);
}

function printSummary(rows: RowResult[]): void {
  const out = (line: string): boolean => process.stdout.write(`${line}\n`);
  out('\n| row | docs | blobs/doc | needle heads+tails | index ckpt | strata.db | wal.db | fixed B/doc | disk/logical |');
  out('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const p = r.perDoc;
    const needle = ['needle head: fixed 72 B', 'needle head: blob id', 'needle head: key', 'needle head: writeId', 'needle head: part',
      'needle head: meta JSON', 'needle head: head CRC', 'needle tail: data CRC + padding', 'volumes: superblocks']
      .reduce((s, k) => s + (p[k] ?? 0), 0);
    out(`| ${r.row} | ${r.documents} | ${r.blobsPerDoc} | ${Math.round(needle)} | ${p['index checkpoints']} | ` +
      `${Math.round((p['strata.db (after checkpoint)'] ?? 0) + (p['strata.db-wal (after checkpoint)'] ?? 0))} | ` +
      `${Math.round((p['wal.db (after checkpoint)'] ?? 0) + (p['wal.db-wal (after checkpoint)'] ?? 0))} | ${r.fixedOverheadPerDoc} | ${r.bytesOnDiskRatio}x |`);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      docs: { type: 'string', default: '10000' },
      rows: { type: 'string' },
      concurrency: { type: 'string', default: '16' },
      idempotency: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
    },
  });
  const docs = Number(values.docs);
  const concurrency = Number(values.concurrency);
  if (!Number.isInteger(docs) || docs < 1 || docs > 1_000_000) fail('--docs must be 1 to 1,000,000');
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) fail('--concurrency must be 1 to 256');
  const specs = values.rows !== undefined ? parseRows(values.rows) : [...DEFAULT_ROWS];
  if (values.idempotency) specs.push({ strategy: 'replication', bytes: 1024, idempotency: true });
  const baseline = await measureBaseline();
  process.stderr.write(`empty cluster: ${counted(baseline.files)} counted bytes (subtracted from every row)\n`);
  const results: RowResult[] = [];
  for (const spec of specs) {
    const result = await measureRow(spec, docs, concurrency, baseline, values.keep);
    results.push(result);
    if (!values.json) printRow(result);
  }
  const json = `${JSON.stringify({ measuredAt: new Date().toISOString(), docs, rows: results }, null, 2)}\n`;
  if (values.out !== undefined) writeFileSync(values.out, json);
  if (values.json) process.stdout.write(json);
  else printSummary(results);
}

main().catch((error) => {
  process.stderr.write(`measure-overhead: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
