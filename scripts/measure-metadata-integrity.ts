/**
 * Measures what SQLite's integrity checks cost on a large embedded metadata file (internal/metadata/README.md,
 * "Integrity checks"): builds a file of about `--mib` MiB (default 1024) with the store's own schema (created by
 * SqliteMetadataStore.open) and sealed manifest rows of a realistic size, then times `PRAGMA quick_check` and
 * `PRAGMA integrity_check` on a read-only connection, as the store's worker thread runs them.
 *
 *   npx tsx scripts/measure-metadata-integrity.ts [--mib 1024] [--dir /tmp/somewhere] [--keep]
 *
 * Prints the file size, rows, each check's time and its cost per GiB. The file is removed unless --keep.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';
import { SqliteMetadataStore } from '../internal/metadata/sqlite-metadata-store.js';
import { manifestChecksum } from '../internal/metadata/sqlite-records.js';

const ROWS_PER_TRANSACTION = 10_000;
/** The store keeps at most this many change-history rows by default (changeHistoryRowsMax). */
const CHANGE_ROWS_MAX = 100_000;

/** A manifest as the store keeps it (JSON of about 1.4 KB: a field-hybrid document's 3 hot replicas and 6 shards). */
function manifestJson(key: string, revision: number): string {
  const writeId = `w${revision.toString(36).padStart(12, '0')}${'a'.repeat(14)}`;
  const ref = (part: string, node: number) => ({ node: `node-${node}`, blob: `${writeId}.${part}`, state: 'ok', size: 12_345 });
  return JSON.stringify({
    formatVersion: 1,
    key,
    version: String(revision),
    strategy: 'field_hybrid',
    deleted: false,
    writeId,
    updatedAt: new Date(1_700_000_000_000 + revision).toISOString(),
    contentType: 'application/json',
    size: 54_321,
    hotFields: ['like_count', 'view_count'],
    hot: [1, 2, 3].map((n) => ({ ...ref(`hot-${n - 1}`, n), part: `hot-${n - 1}` })),
    cold: [1, 2, 3, 4, 5, 6].map((n, i) => ({ ...ref(`cold-${i}`, n), part: `cold-${i}`, index: i, checksum: 'c'.repeat(16) })),
    ec: { dataShards: 4, parityShards: 2, shardBytes: 13_581, dataBytes: 54_321 },
  });
}

function seconds(from: bigint): number {
  return Number(process.hrtime.bigint() - from) / 1e9;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' }, dir: { type: 'string' }, keep: { type: 'boolean', default: false } } });
  const targetBytes = Number(values.mib) * 1024 * 1024;
  if (!(targetBytes > 0)) throw new Error('--mib must be a positive number');
  const dir = values.dir ?? mkdtempSync(path.join(tmpdir(), 'strata-integrity-'));
  const file = path.join(dir, 'strata.db');
  await (await SqliteMetadataStore.open({ path: file })).close();

  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insertManifest = db.prepare('INSERT INTO manifests (key, manifest, mod_revision, deleted, checksum) VALUES (?, ?, ?, 0, ?)');
  const insertChange = db.prepare("INSERT INTO changes (revision, key, kind) VALUES (?, ?, 'put')");
  let rows = 0;
  const built = process.hrtime.bigint();
  while (statSync(file).size + (statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0) < targetBytes) {
    db.transaction(() => {
      for (let i = 0; i < ROWS_PER_TRANSACTION; i++) {
        rows++;
        // Keys in random order, as a real key space fills: the b-tree pages end up partly filled, as in use.
        const key = `tenant-${(rows * 2_654_435_761) % 1_000_003}/doc/${rows.toString(36)}`;
        const json = manifestJson(key, rows);
        insertManifest.run(Buffer.from(key, 'utf8'), json, rows, manifestChecksum(key, json, rows, 0));
        if (rows <= CHANGE_ROWS_MAX) insertChange.run(rows, Buffer.from(key, 'utf8'));
      }
    })();
    db.pragma('wal_checkpoint(TRUNCATE)');
  }
  db.prepare("UPDATE counters SET value = ? WHERE name = 'revision'").run(rows);
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  const buildSeconds = seconds(built);

  const bytes = statSync(file).size;
  const gib = bytes / 1024 ** 3;
  const reader = new Database(file, { readonly: true });
  const timed = (kind: string): number => {
    const started = process.hrtime.bigint();
    const result = reader.pragma(`${kind}(20)`) as Record<string, unknown>[];
    const took = seconds(started);
    const first = String(Object.values(result[0] ?? {})[0]);
    if (first !== 'ok') throw new Error(`${kind} did not pass: ${first}`);
    return took;
  };
  // Once cold-ish (right after the build the file is in the page cache anyway), then again.
  const quick = timed('quick_check');
  const full = timed('integrity_check');
  const fullAgain = timed('integrity_check');
  reader.close();
  const out = {
    file: bytes,
    fileMiB: Math.round(bytes / 1024 ** 2),
    manifests: rows,
    buildSeconds: Number(buildSeconds.toFixed(1)),
    quickCheckSeconds: Number(quick.toFixed(2)),
    integrityCheckSeconds: Number(full.toFixed(2)),
    integrityCheckAgainSeconds: Number(fullAgain.toFixed(2)),
    quickCheckSecondsPerGiB: Number((quick / gib).toFixed(2)),
    integrityCheckSecondsPerGiB: Number((Math.min(full, fullAgain) / gib).toFixed(2)),
  };
  console.log(JSON.stringify(out, null, 2));
  if (!values.keep && values.dir === undefined) rmSync(dir, { recursive: true, force: true });
}

await main();
