/**
 * The storage goals of "small documents cost what they weigh" and their check: what `npm run verify:storage`
 * measures from file sizes (./file-size-measurement.ts) against fixed limits. Pure: the checker takes measured
 * rows and says, per goal, PASS, FAIL or NOT MEASURED (its row was not part of the run), so a test can feed it rows
 * that break each goal without running a cluster.
 *
 * The rows: documents of one strategy and one size, incompressible, with a hot part of at most 64 B. Two kinds of
 * figure come out of a row, per document: the fixed overhead (every counted file byte beyond the blobs' payload)
 * and the bytes on disk per logical byte (every counted file byte over the document's size). Fixed overhead
 * depends on the layout (copies or shards), so each fixed-overhead goal names the layout its row must have been
 * stored in; a row stored in the other layout cannot vouch for that goal and fails it with the reason.
 */
import type { Strategy } from '../manifest/manifest.js';

/** Fixed bytes per document when every part is stored as whole copies (replicas, cold copies). */
export const FIXED_OVERHEAD_COPIES_BYTES_MAX = 384;
/** Fixed bytes per document for `ec` stored as 6 shards. */
export const FIXED_OVERHEAD_EC_SHARDED_BYTES_MAX = 640;
/** Fixed bytes per document for `field_hybrid` stored as 3 hot replicas and 6 shards. */
export const FIXED_OVERHEAD_FIELD_HYBRID_SHARDED_BYTES_MAX = 896;
/** Bytes of the storage nodes' in-memory index per blob (`indexMemoryBytes` over the blobs held). */
export const INDEX_MEMORY_BYTES_PER_BLOB_MAX = 32;
/** Bytes on disk per logical byte, per strategy and document size (incompressible documents). */
export const DISK_PER_LOGICAL_MAX = {
  replication: { 1024: 3.4 },
  ec: { 1024: 2.2, 4096: 1.7, 65536: 1.52 },
  field_hybrid: { 1024: 2.5, 4096: 1.75, 65536: 1.52 },
} as const;
/**
 * Documents per row below which page granularity (a 4 KiB SQLite page, a volume's superblock, the -wal files'
 * leftovers) can decide the figures: the goals are stated over at least this many.
 */
export const GOAL_DOCUMENTS_PER_ROW_MIN = 10_000;
/** The hot part of the measured documents stays this small, as the ratio goals assume. */
export const HOT_PART_BYTES_MAX = 64;
/**
 * Size of the "small" rows: a document whose cold part (under 100 B) is under both layouts' crossover to shards,
 * so it is stored as copies. The crossover the compact formats implement (coldpart/cold-layout.ts, LAYOUT_COST_V2)
 * is at a stored cold part of about 130 B with 14 B keys, lower than the design's estimate (about 250 B): measured,
 * 200 B documents went to shards under `ec` and `field_hybrid`.
 */
export const SMALL_DOCUMENT_BYTES = 100;

export type Layout = 'copies' | 'shards';

/** One measured row, per document where it says so (./file-size-measurement.ts fills the rest of the row). */
export interface GoalRow {
  strategy: Strategy;
  document_bytes: number;
  documents: number;
  /** The layout the row's documents were stored in, from the blobs per document; null when it fits neither. */
  layout: Layout | null;
  blobs_per_doc: number;
  fixed_overhead_bytes_per_doc: number;
  disk_per_logical: number;
  index_memory_bytes_per_blob: number;
}

export interface Goal {
  name: string;
  strategy: Strategy;
  document_bytes: number;
  metric: 'fixed_overhead_bytes_per_doc' | 'disk_per_logical';
  max: number;
  /** For fixed-overhead goals: the layout the row must have been stored in. */
  layout?: Layout;
}

const fixedGoal = (name: string, strategy: Strategy, bytes: number, layout: Layout, max: number): Goal => ({
  name: `fixed overhead, ${name}`,
  strategy,
  document_bytes: bytes,
  metric: 'fixed_overhead_bytes_per_doc',
  max,
  layout,
});

const ratioGoals: Goal[] = Object.entries(DISK_PER_LOGICAL_MAX).flatMap(([strategy, bySize]) =>
  Object.entries(bySize).map(([bytes, max]) => ({
    name: `disk/logical, ${strategy} ${sizeName(Number(bytes))}`,
    strategy: strategy as Strategy,
    document_bytes: Number(bytes),
    metric: 'disk_per_logical' as const,
    max,
  })),
);

/** Every goal that reads one row; the index goal reads all of them (checkGoals). */
export const STORAGE_GOALS: readonly Goal[] = [
  fixedGoal('replication 1 KiB (copies)', 'replication', 1024, 'copies', FIXED_OVERHEAD_COPIES_BYTES_MAX),
  fixedGoal(`ec small ${SMALL_DOCUMENT_BYTES} B (copies)`, 'ec', SMALL_DOCUMENT_BYTES, 'copies', FIXED_OVERHEAD_COPIES_BYTES_MAX),
  fixedGoal(`field_hybrid small ${SMALL_DOCUMENT_BYTES} B (copies)`, 'field_hybrid', SMALL_DOCUMENT_BYTES, 'copies', FIXED_OVERHEAD_COPIES_BYTES_MAX),
  fixedGoal('ec 4 KiB (sharded)', 'ec', 4096, 'shards', FIXED_OVERHEAD_EC_SHARDED_BYTES_MAX),
  fixedGoal('field_hybrid 4 KiB (sharded)', 'field_hybrid', 4096, 'shards', FIXED_OVERHEAD_FIELD_HYBRID_SHARDED_BYTES_MAX),
  ...ratioGoals,
];

export const INDEX_GOAL_NAME = 'in-memory index per blob (every row)';

/** The rows a full run measures: each (strategy, size) some goal reads, in a stable order. */
export const GOAL_ROWS: readonly { strategy: Strategy; document_bytes: number }[] = (() => {
  const order: Strategy[] = ['replication', 'ec', 'field_hybrid'];
  const seen = new Map<string, { strategy: Strategy; document_bytes: number }>();
  for (const g of STORAGE_GOALS) seen.set(`${g.strategy}:${g.document_bytes}`, { strategy: g.strategy, document_bytes: g.document_bytes });
  return [...seen.values()].sort((a, b) => order.indexOf(a.strategy) - order.indexOf(b.strategy) || a.document_bytes - b.document_bytes);
})();

/** Blobs per document of each layout: 3 replicas or copies; field_hybrid adds 3 hot replicas; shards are 4 + 2. */
const BLOBS_PER_DOC: Record<Strategy, Partial<Record<Layout, number>>> = {
  replication: { copies: 3 },
  ec: { copies: 3, shards: 6 },
  field_hybrid: { copies: 6, shards: 9 },
};

/**
 * How far the blobs per document may stray from a layout's count and still be that layout: with the healer
 * running, a row of 10,000 documents was seen to end with up to 0.7 % more blobs than its documents made (blobs its
 * rounds wrote and garbage collection had not yet taken). Far below the gap between the layouts (3 vs 6, 6 vs 9).
 */
const LAYOUT_BLOBS_TOLERANCE = 0.02;

/** The layout a row's documents were stored in, judged from its blobs per document (null: neither, or a mix). */
export function layoutOf(strategy: Strategy, blobsPerDoc: number): Layout | null {
  for (const [layout, blobs] of Object.entries(BLOBS_PER_DOC[strategy]) as [Layout, number][]) {
    if (Math.abs(blobsPerDoc - blobs) <= blobs * LAYOUT_BLOBS_TOLERANCE) return layout;
  }
  return null;
}

export type GoalStatus = 'PASS' | 'FAIL' | 'NOT MEASURED';

export interface GoalResult {
  goal: string;
  max: number;
  /** The measured figure, or null when the goal's row was not measured. */
  measured: number | null;
  status: GoalStatus;
  /** Why a goal failed other than by its figure, or what was not measured. */
  note?: string;
}

/** Each goal against the rows measured. A goal whose row is missing is NOT MEASURED, which breaks nothing. */
export function checkGoals(rows: readonly GoalRow[]): GoalResult[] {
  const results: GoalResult[] = [];
  for (const goal of STORAGE_GOALS) {
    const row = rows.find((r) => r.strategy === goal.strategy && r.document_bytes === goal.document_bytes);
    if (!row) {
      results.push({ goal: goal.name, max: goal.max, measured: null, status: 'NOT MEASURED', note: 'row not in this run' });
      continue;
    }
    const measured = row[goal.metric];
    if (goal.layout !== undefined && row.layout !== goal.layout) {
      results.push({
        goal: goal.name,
        max: goal.max,
        measured,
        status: 'FAIL',
        note: `the row was stored as ${row.layout ?? `neither copies nor shards (${row.blobs_per_doc} blobs/doc)`}, ` +
          `so it does not measure the ${goal.layout} layout`,
      });
      continue;
    }
    results.push({ goal: goal.name, max: goal.max, measured, status: measured <= goal.max ? 'PASS' : 'FAIL' });
  }
  if (rows.length === 0) {
    results.push({ goal: INDEX_GOAL_NAME, max: INDEX_MEMORY_BYTES_PER_BLOB_MAX, measured: null, status: 'NOT MEASURED', note: 'no rows' });
  } else {
    const measured = Math.max(...rows.map((r) => r.index_memory_bytes_per_blob));
    results.push({ goal: INDEX_GOAL_NAME, max: INDEX_MEMORY_BYTES_PER_BLOB_MAX, measured, status: measured <= INDEX_MEMORY_BYTES_PER_BLOB_MAX ? 'PASS' : 'FAIL' });
  }
  return results;
}

/** The broken goals as one line each; empty when every measured goal holds. */
export function goalProblems(results: readonly GoalResult[]): string[] {
  return results
    .filter((r) => r.status === 'FAIL')
    .map((r) => `${r.goal}: ${r.measured === null ? 'not measured' : String(r.measured)}, at most ${r.max}${r.note ? ` (${r.note})` : ''}`);
}

/** 1 KiB, 64 KiB, 200 B. */
export function sizeName(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes} B`;
}
