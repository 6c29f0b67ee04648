/**
 * The text tables `npm run verify:storage` prints for the file-size measurement (./file-size-measurement.ts) and
 * the goals (./storage-goals.ts). Lines only; the script writes them.
 */
import type { FileSizeResult } from './file-size-measurement.js';
import { GOAL_DOCUMENTS_PER_ROW_MIN, sizeName, type GoalResult } from './storage-goals.js';

export function fileSizeTable(result: FileSizeResult): string[] {
  const lines = [
    `file sizes: ${result.docs} incompressible documents per row (keys of 14 B), a fresh all-in-one per row with the ` +
      `healer running; counted: volumes, index.ckpt, strata.db + -wal, wal.db + -wal after a TRUNCATE checkpoint, ` +
      `less an empty cluster's ${result.baseline_bytes} B. Per document, bytes:`,
    '',
    'row                  layout  blobs  payload  needles  idx.ckpt  strata.db  wal.db   fixed  disk/logical  index B/blob  WAL settled  writes/s',
  ];
  for (const r of result.rows) {
    const f = r.files_per_doc;
    lines.push(
      `${`${r.strategy} ${sizeName(r.document_bytes)}`.padEnd(20)} ${(r.layout ?? '?').padEnd(6)} ${num(r.blobs_per_doc, 6)} ` +
        `${num(r.payload_bytes_per_doc, 8)} ${num(r.needle_overhead_bytes_per_doc, 8)} ${num(f.index_checkpoints, 9)} ` +
        `${num(f.metadata_db + f.metadata_wal, 10)} ${num(f.wal_db + f.wal_wal, 7)} ${num(r.fixed_overhead_bytes_per_doc, 7)} ` +
        `${`${r.disk_per_logical.toFixed(3)}x`.padStart(13)} ${num(r.index_memory_bytes_per_blob, 13)} ` +
        `${(r.wal_consumed ? 'yes' : 'NO').padStart(12)} ${num(r.writes_per_sec, 9)}`,
    );
  }
  lines.push('', 'SQLite pages per document, by table and index (less an empty cluster\'s):');
  for (const r of result.rows) {
    const objects = Object.entries(r.sqlite_objects_per_doc).map(([name, bytes]) => `${name} ${bytes}`).join(', ');
    lines.push(`  ${`${r.strategy} ${sizeName(r.document_bytes)}`.padEnd(20)} ${objects || '(none)'}`);
  }
  if (result.rows.some((r) => !r.wal_consumed)) {
    lines.push('', 'WAL settled NO: the intent resolver had not settled every WAL entry when the row ended; its wal.db holds more than in a running cluster.');
  }
  return lines;
}

export function goalTable(goals: readonly GoalResult[], docs: number): string[] {
  const lines = ['', `${'goal'.padEnd(50)}     limit   measured  status`];
  for (const g of goals) {
    lines.push(
      `${g.goal.padEnd(50)} ${num(g.max, 9)} ${g.measured === null ? '-'.padStart(10) : num(g.measured, 10)}  ${g.status}` +
        `${g.note ? `  (${g.note})` : ''}`,
    );
  }
  if (docs < GOAL_DOCUMENTS_PER_ROW_MIN) {
    lines.push(`note: ${docs} documents per row; the goals are stated over at least ${GOAL_DOCUMENTS_PER_ROW_MIN}, below which page granularity can decide a figure`);
  }
  return lines;
}

function num(n: number, width: number): string {
  return (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toLocaleString('en-US', { maximumFractionDigits: 3 })).padStart(width);
}
