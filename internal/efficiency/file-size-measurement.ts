/**
 * What documents cost on disk, measured from file sizes (docs/design/compact-formats.md, section 1): for each row
 * (a strategy and a document size) a fresh all-in-one in its own temporary directory takes `docs` documents of
 * incompressible text through `POST /write`, is stopped, and then the bytes of every file the documents can grow
 * are summed, less an empty cluster's: volumes, index checkpoints, the metadata store's `strata.db` and `-wal`
 * (keys, indexes and the change log included) and the WAL's `wal.db` and `-wal`, both SQLite files first
 * checkpointed with `PRAGMA wal_checkpoint(TRUNCATE)`. Divided over the documents, that is bytes on disk per
 * document; less the blobs' payload (the volume stores' own count), it is the fixed overhead per document.
 *
 * The WAL is measured as it runs in production: the healer runs, so its intent resolver reads the WAL, commits
 * its offsets and retention deletes what is committed (design 3.9). `wal.db` then holds the largest backlog seen
 * rather than every write. The measurement waits, after the last write, until the resolver has read and settled
 * every entry, so that rows end in the same state; a row where it did not within `walDrainMsMax` says so.
 *
 * Only file sizes, the volume stores' usage and SQLite's `dbstat` are read, never a needle or a manifest, so the
 * measurement reads any format the release writes. The cluster is started by the caller (`startCluster`), which
 * chooses the settings; this module only writes, waits and measures.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { VolumeBlobStore } from '../blobstore/volume/volume-blob-store.js';
import type { Strategy } from '../manifest/manifest.js';
import { HOT_PART_BYTES_MAX, layoutOf, type GoalRow } from './storage-goals.js';
import { sizedDocument } from './verify-storage.js';

export const FILE_SIZE_LIMITS = {
  /** Documents per row when not told otherwise: the goals are stated over at least this many. */
  docsDefault: 10_000,
  /** Concurrent writers per row. */
  concurrencyDefault: 16,
  /** How long to wait, after the last write, for the intent resolver to settle every WAL entry. */
  walDrainMsMax: 120_000,
  /** How often to look while waiting. */
  walPollMs: 200,
} as const;

/** A running cluster as the measurement needs it. */
export interface MeasuredCluster {
  url: string;
  /** The WAL consumer's progress (the healer's intent resolver), or null when none runs. */
  walConsumer(): { read: number; pending: number; uncommitted: number } | null;
  stop(): Promise<void>;
}

export type StartCluster = (dataDir: string) => Promise<MeasuredCluster>;

export interface FileSizeOptions {
  rows: readonly { strategy: Strategy; document_bytes: number }[];
  docs: number;
  concurrency: number;
  startCluster: StartCluster;
  /** The hot fields of the cluster's policy, to check the documents' hot part stays small. */
  hotFields: readonly string[];
  progress?: (line: string) => void;
}

/** Bytes of each kind of counted file in a data directory; everything else (identity, locks, ballast) is not. */
export interface FileBytes {
  volumes: number;
  index_checkpoints: number;
  metadata_db: number;
  metadata_wal: number;
  wal_db: number;
  wal_wal: number;
}

export interface FileSizeRow extends GoalRow {
  hot_part_bytes: number;
  blobs: number;
  payload_bytes_per_doc: number;
  /** Every counted byte less an empty cluster's, per document. */
  file_bytes_per_doc: number;
  /** Per document, less an empty cluster's: each kind of file. */
  files_per_doc: FileBytes;
  /** Per document: volume bytes beyond the payload (needle heads, checksums, padding, superblocks). */
  needle_overhead_bytes_per_doc: number;
  /** Per document: pages of each SQLite table and index (dbstat), less an empty cluster's, and free pages. */
  sqlite_objects_per_doc: Record<string, number>;
  index_checkpoint_bytes_per_blob: number;
  /** True when the intent resolver had settled every WAL entry before the cluster stopped. */
  wal_consumed: boolean;
  /** Writes per second of this row (informational: the machine is shared). */
  writes_per_sec: number;
}

export interface FileSizeResult {
  docs: number;
  baseline_bytes: number;
  rows: FileSizeRow[];
}

interface DirMeasure {
  files: FileBytes;
  sqlite: Record<string, number>;
}

export async function measureFileSizes(options: FileSizeOptions): Promise<FileSizeResult> {
  const progress = options.progress ?? ((): void => undefined);
  progress('file sizes: an empty cluster');
  const baseline = await measureEmpty(options.startCluster);
  const rows: FileSizeRow[] = [];
  for (const spec of options.rows) rows.push(await measureRow(spec, options, baseline, progress));
  return { docs: options.docs, baseline_bytes: counted(baseline.files), rows };
}

/** What a cluster started and stopped with nothing written leaves: subtracted from every row. */
async function measureEmpty(startCluster: StartCluster): Promise<DirMeasure> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-verify-empty-'));
  try {
    const cluster = await startCluster(dir);
    await cluster.stop();
    return measureDir(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function measureRow(
  spec: { strategy: Strategy; document_bytes: number },
  options: FileSizeOptions,
  baseline: DirMeasure,
  progress: (line: string) => void,
): Promise<FileSizeRow> {
  const { docs } = options;
  const name = `${spec.strategy} ${spec.document_bytes} B`;
  const hotPartBytes = hotPartOf(sizedDocument(spec.document_bytes, 'incompressible', docs), options.hotFields);
  if (hotPartBytes > HOT_PART_BYTES_MAX) throw new Error(`${name}: the documents' hot part is ${hotPartBytes} B, above ${HOT_PART_BYTES_MAX} B`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-verify-'));
  try {
    const cluster = await options.startCluster(dir);
    let seconds: number;
    let walConsumed: boolean;
    try {
      const startedAt = Date.now();
      await writeDocuments(cluster.url, spec, docs, options.concurrency, (done) => progress(`file sizes: ${name}: ${done}/${docs}`));
      seconds = Math.max(0.001, (Date.now() - startedAt) / 1000);
      walConsumed = await waitForWalConsumed(cluster, 2 * docs);
    } finally {
      await cluster.stop();
    }
    const measured = measureDir(dir);
    const stores = await nodeStores(dir);
    const per = (n: number): number => round1(n / docs);
    const files = subtract(measured.files, baseline.files);
    const fileTotal = counted(files);
    const sqlite: Record<string, number> = {};
    for (const [object, bytes] of Object.entries(measured.sqlite)) {
      const added = bytes - (baseline.sqlite[object] ?? 0);
      if (added !== 0) sqlite[object] = per(added);
    }
    const blobsPerDoc = Math.round((stores.blobs / docs) * 1000) / 1000;
    return {
      strategy: spec.strategy,
      document_bytes: spec.document_bytes,
      documents: docs,
      hot_part_bytes: hotPartBytes,
      layout: layoutOf(spec.strategy, stores.blobs / docs),
      blobs: stores.blobs,
      blobs_per_doc: blobsPerDoc,
      payload_bytes_per_doc: per(stores.payloadBytes),
      file_bytes_per_doc: per(fileTotal),
      fixed_overhead_bytes_per_doc: per(fileTotal - stores.payloadBytes),
      disk_per_logical: Math.round((fileTotal / docs / spec.document_bytes) * 1000) / 1000,
      files_per_doc: mapValues(files, per),
      needle_overhead_bytes_per_doc: per(files.volumes - stores.payloadBytes),
      sqlite_objects_per_doc: sqlite,
      index_checkpoint_bytes_per_blob: round1(files.index_checkpoints / Math.max(1, stores.blobs)),
      index_memory_bytes_per_blob: round1(stores.indexMemoryBytes / Math.max(1, stores.blobs)),
      wal_consumed: walConsumed,
      writes_per_sec: Math.round(docs / seconds),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function writeDocuments(
  url: string,
  spec: { strategy: Strategy; document_bytes: number },
  docs: number,
  concurrency: number,
  progress: (done: number) => void,
): Promise<void> {
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const i = next++;
      if (i >= docs) return;
      // Keys of 14 B, as in the design's arithmetic (users/00001234).
      const key = `users/${String(i).padStart(8, '0')}`;
      const res = await fetch(`${url}/write?key=${encodeURIComponent(key)}&strategy=${spec.strategy}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: sizedDocument(spec.document_bytes, 'incompressible', i),
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`write ${key}: ${res.status} ${text}`);
      if (++done % 1000 === 0 || done === docs) progress(done);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, docs) }, worker));
}

/**
 * Waits until the WAL's consumer has read at least `entries` entries and settled and committed all it read. True
 * when it did, false when no consumer runs or it did not within the limit (the row's WAL then holds more).
 */
async function waitForWalConsumed(cluster: MeasuredCluster, entries: number): Promise<boolean> {
  const deadline = Date.now() + FILE_SIZE_LIMITS.walDrainMsMax;
  for (;;) {
    const s = cluster.walConsumer();
    if (s === null) return false;
    if (s.read >= entries && s.pending === 0 && s.uncommitted === 0) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, FILE_SIZE_LIMITS.walPollMs));
  }
}

/** Checkpoints both SQLite files (TRUNCATE leaves 0-byte -wal files), then sizes the counted files. */
function measureDir(dir: string): DirMeasure {
  const sqlite: Record<string, number> = {};
  for (const [label, file] of [['strata.db', path.join(dir, 'metadata', 'strata.db')], ['wal.db', path.join(dir, 'wal', 'wal.db')]] as const) {
    if (!existsSync(file)) continue;
    for (const [object, bytes] of Object.entries(sqliteObjects(file))) sqlite[`${label} ${object}`] = bytes;
  }
  return { files: fileBytes(dir), sqlite };
}

/** Bytes of the pages of each table and index, and of free pages, after a TRUNCATE checkpoint. */
function sqliteObjects(file: string): Record<string, number> {
  const db = new Database(file);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const freePages = db.pragma('freelist_count', { simple: true }) as number;
    const out: Record<string, number> = { 'free pages': freePages * pageSize };
    const rows = db.prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name').all() as { name: string; bytes: number }[];
    for (const r of rows) out[r.name] = r.bytes;
    return out;
  } finally {
    db.close();
  }
}

function fileBytes(dir: string): FileBytes {
  const out: FileBytes = { volumes: 0, index_checkpoints: 0, metadata_db: 0, metadata_wal: 0, wal_db: 0, wal_wal: 0 };
  walk(dir, (file, bytes) => {
    const name = path.basename(file);
    if (name.endsWith('.vol')) out.volumes += bytes;
    else if (name === 'index.ckpt') out.index_checkpoints += bytes;
    else if (name === 'strata.db') out.metadata_db += bytes;
    else if (name === 'strata.db-wal') out.metadata_wal += bytes;
    else if (name === 'wal.db') out.wal_db += bytes;
    else if (name === 'wal.db-wal') out.wal_wal += bytes;
  });
  return out;
}

function walk(dir: string, visit: (file: string, bytes: number) => void): void {
  if (!existsSync(dir)) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full, visit);
    else if (entry.isFile()) visit(full, statSync(full).size);
  }
}

/**
 * Reopens each node's volume store: its count of blobs and payload bytes, and its in-memory index, which after a
 * reopen from the checkpoint holds only its main run, so its size is exact. After the file sizes were taken.
 */
async function nodeStores(dataDir: string): Promise<{ blobs: number; payloadBytes: number; indexMemoryBytes: number }> {
  const out = { blobs: 0, payloadBytes: 0, indexMemoryBytes: 0 };
  const nodesDir = path.join(dataDir, 'nodes');
  for (const node of readdirSync(nodesDir)) {
    const store = await VolumeBlobStore.open({ dir: path.join(nodesDir, node) });
    try {
      const usage = await store.usage();
      if (usage.payloadBytes === undefined) throw new Error(`node ${node}: its volume store did not report payload bytes`);
      out.blobs += usage.blobs;
      out.payloadBytes += usage.payloadBytes;
      out.indexMemoryBytes += store.stats().indexMemoryBytes;
    } finally {
      await store.close();
    }
  }
  return out;
}

/** Bytes of the document's hot fields as a JSON object of their own. */
export function hotPartOf(document: string, hotFields: readonly string[]): number {
  const parsed = JSON.parse(document) as Record<string, unknown>;
  const hot: Record<string, unknown> = {};
  for (const field of hotFields) if (field in parsed) hot[field] = parsed[field];
  return Buffer.byteLength(JSON.stringify(hot));
}

const counted = (f: FileBytes): number => f.volumes + f.index_checkpoints + f.metadata_db + f.metadata_wal + f.wal_db + f.wal_wal;

function subtract(a: FileBytes, b: FileBytes): FileBytes {
  return mapValues(a, (v, k) => v - b[k]);
}

function mapValues(f: FileBytes, fn: (v: number, k: keyof FileBytes) => number): FileBytes {
  const out = { ...f };
  for (const k of Object.keys(f) as (keyof FileBytes)[]) out[k] = fn(f[k], k);
  return out;
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
