/**
 * The embedded metadata store's file (<data dir>/metadata/strata.db) as bytes on disk, for tests that damage it
 * while Strata is stopped, as a flipped byte on disk would.
 */
import path from 'node:path';
import Database from 'better-sqlite3';

export function metadataDbPath(dataDir: string): string {
  return path.join(dataDir, 'metadata', 'strata.db');
}

export interface MetadataFileLayout {
  pageSize: number;
  /** Root page of the manifests table ('manifests') and of each of its indexes, by name. */
  roots: Map<string, number>;
}

/**
 * Folds the WAL into the main file (wal_checkpoint(TRUNCATE)), so that the bytes to damage are all in strata.db;
 * returns where the manifests' pages start. Call it with the store closed.
 */
export function checkpointMetadataFile(file: string): MetadataFileLayout {
  const db = new Database(file);
  try {
    db.pragma('wal_checkpoint(TRUNCATE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    const rows = db.prepare("SELECT name, rootpage FROM sqlite_master WHERE tbl_name = 'manifests'").all() as { name: string; rootpage: number }[];
    return { pageSize, roots: new Map(rows.map((r) => [r.name, r.rootpage])) };
  } finally {
    db.close();
  }
}
