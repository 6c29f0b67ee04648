/**
 * Bytes per document of the embedded metadata file for replication manifests, written through the store itself:
 * `npx tsx scripts/measure-sqlite-manifests.ts [--docs 10000] [--checksum-hex 64|16] [--root <checkout>]`.
 *
 * Each document is the manifest the write path makes for a 1 KiB replication document under a 14-byte key
 * (`users/00001234`): a fresh ULID write id, derived blob ids, three replicas on three of six nodes, the default
 * ten hot fields, one sha256 checksum (64 hex digits, or the 16 of a format-2 write with `--checksum-hex 16`).
 * The documents are committed 512 at a time, the store is closed, the file is checkpointed
 * (`PRAGMA wal_checkpoint(TRUNCATE)`), and its size less an empty store's is divided by the count; `dbstat` gives
 * the share of each table and index. `--root` measures another checkout's store (e.g. a clean clone of an earlier
 * commit) with the same documents.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

const docs = Number(option('docs', '10000'));
const checksumHex = Number(option('checksum-hex', '64'));
const root = path.resolve(option('root', path.join(import.meta.dirname, '..')));
const BATCH = 512;
const HOT_FIELDS = ['like_count', 'view_count', 'inventory_count', 'update_count', 'status_code', 'battery_level', 'device_id', 'is_active', 'last_sync_ts', 'firmware_version'];

const { SqliteMetadataStore } = (await import(path.join(root, 'internal/metadata/sqlite-metadata-store.ts'))) as typeof import('../internal/metadata/sqlite-metadata-store.js');
const { newWriteId } = (await import(path.join(root, 'internal/core/ids.ts'))) as typeof import('../internal/core/ids.js');
type Manifest = import('../internal/manifest/manifest.js').Manifest;

function manifestOf(key: string, i: number, nowMs: number): Manifest {
  const writeId = newWriteId(nowMs);
  const at = new Date(nowMs).toISOString();
  const checksum = randomBytes(32).toString('hex').slice(0, checksumHex);
  const nodes = [0, 1, 2].map((r) => `node-${((i + r * 2) % 6) + 1}`);
  return {
    formatVersion: 1,
    key,
    version: '0',
    writeId,
    deleted: false,
    strategy: 'replication',
    hotFields: HOT_FIELDS,
    hotPaths: [],
    coldEmptyOffsets: [],
    bytes: { logical: 1024, hot: 1024, cold: 0, physical: 3072 },
    coldHash: null,
    cold_layout: null,
    hot: nodes.map((node, r) => ({ part: `hot-${r}`, node, blob: `${writeId}.hot-${r}`, writeId, size: 1024, checksum, state: 'ok' as const })),
    cold: [],
    dirty: false,
    createdAt: at,
    updatedAt: at,
    hotFieldsSource: 'policy',
    strategySource: 'request',
  };
}

async function fileBytes(file: string): Promise<number> {
  const db = new Database(file);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
  let total = 0;
  for (const suffix of ['', '-wal']) total += await stat(`${file}${suffix}`).then((s) => s.size, () => 0);
  return total;
}

function tableBytes(file: string): Record<string, number> {
  const db = new Database(file, { readonly: true });
  try {
    const rows = db.prepare('SELECT name, SUM(pgsize) AS bytes FROM dbstat GROUP BY name ORDER BY bytes DESC').all() as { name: string; bytes: number }[];
    return Object.fromEntries(rows.map((r) => [r.name, r.bytes]));
  } finally {
    db.close();
  }
}

const dir = await mkdtemp(path.join(tmpdir(), 'strata-measure-sqlite-'));
try {
  const empty = path.join(dir, 'empty.db');
  await (await SqliteMetadataStore.open({ path: empty })).close();
  const emptyBytes = await fileBytes(empty);
  const emptyTables = tableBytes(empty);

  const file = path.join(dir, 'strata.db');
  const store = await SqliteMetadataStore.open({ path: file });
  const started = performance.now();
  const baseMs = Date.parse('2026-12-07T00:00:00.000Z');
  for (let from = 0; from < docs; from += BATCH) {
    const commits = [];
    for (let i = from; i < Math.min(docs, from + BATCH); i++) {
      const key = `users/${String(i).padStart(8, '0')}`;
      const manifest = manifestOf(key, i, baseMs + i);
      commits.push(store.commit({ key, expectedModRevision: 0, writeId: manifest.writeId, manifest, assignVersion: true }));
    }
    for (const result of await Promise.all(commits)) if (!result.ok) throw new Error(`commit failed: ${JSON.stringify(result)}`);
  }
  const seconds = (performance.now() - started) / 1000;
  await store.close();
  const bytes = await fileBytes(file);
  const tables = tableBytes(file);
  const perDoc: Record<string, number> = {};
  for (const [name, b] of Object.entries(tables)) perDoc[name] = Math.round(((b - (emptyTables[name] ?? 0)) / docs) * 10) / 10;
  const db = new Database(file, { readonly: true });
  const hasV2 = db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'manifests_v2'").pluck().get() === 1;
  const manifestBytes = db
    .prepare(`SELECT SUM(length(CAST(manifest AS BLOB))) FROM ${hasV2 ? 'manifests_v2' : 'manifests'}`)
    .pluck()
    .get() as number;
  db.close();
  console.log(
    JSON.stringify(
      {
        root,
        docs,
        checksumHex,
        strataDbBytesPerDoc: Math.round(((bytes - emptyBytes) / docs) * 10) / 10,
        emptyBytes,
        manifestColumnBytesPerDoc: Math.round((manifestBytes / docs) * 10) / 10,
        pagesBytesPerDocByTable: perDoc,
        commitsPerSecond: Math.round(docs / seconds),
      },
      null,
      2,
    ),
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
