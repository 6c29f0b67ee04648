/**
 * The goal checker of `npm run verify:storage` (internal/efficiency/storage-goals.ts), fed rows rather than a
 * cluster: rows that meet every goal pass; a row that breaks any one goal fails exactly that goal; a fixed-overhead
 * figure from a row stored in the other layout does not count; a goal whose row was not measured breaks nothing.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_HOT_FIELDS } from '../../internal/config/config.js';
import { hotPartOf } from '../../internal/efficiency/file-size-measurement.js';
import {
  DISK_PER_LOGICAL_MAX,
  FIXED_OVERHEAD_COPIES_BYTES_MAX,
  FIXED_OVERHEAD_EC_SHARDED_BYTES_MAX,
  FIXED_OVERHEAD_FIELD_HYBRID_SHARDED_BYTES_MAX,
  GOAL_ROWS,
  HOT_PART_BYTES_MAX,
  INDEX_GOAL_NAME,
  INDEX_MEMORY_BYTES_PER_BLOB_MAX,
  SMALL_DOCUMENT_BYTES,
  STORAGE_GOALS,
  checkGoals,
  goalProblems,
  layoutOf,
  type GoalRow,
} from '../../internal/efficiency/storage-goals.js';
import { sizedDocument } from '../../internal/efficiency/verify-storage.js';

/** Every goal row, each exactly at its limits (a goal holds at equality). */
function rowsAtLimits(): GoalRow[] {
  return GOAL_ROWS.map(({ strategy, document_bytes }) => {
    const goals = STORAGE_GOALS.filter((g) => g.strategy === strategy && g.document_bytes === document_bytes);
    const fixed = goals.find((g) => g.metric === 'fixed_overhead_bytes_per_doc');
    const ratio = goals.find((g) => g.metric === 'disk_per_logical');
    const layout = fixed?.layout ?? (document_bytes >= 4096 ? 'shards' : 'copies');
    const blobs = { replication: 3, ec: layout === 'copies' ? 3 : 6, field_hybrid: layout === 'copies' ? 6 : 9 }[strategy];
    return {
      strategy,
      document_bytes,
      documents: 10_000,
      layout,
      blobs_per_doc: blobs,
      fixed_overhead_bytes_per_doc: fixed?.max ?? 100,
      disk_per_logical: ratio?.max ?? 1,
      index_memory_bytes_per_blob: INDEX_MEMORY_BYTES_PER_BLOB_MAX,
    };
  });
}

describe('storage goals', () => {
  it('states the goals of "small documents cost what they weigh"', () => {
    expect(FIXED_OVERHEAD_COPIES_BYTES_MAX).toBe(384);
    expect(FIXED_OVERHEAD_EC_SHARDED_BYTES_MAX).toBe(640);
    expect(FIXED_OVERHEAD_FIELD_HYBRID_SHARDED_BYTES_MAX).toBe(896);
    expect(INDEX_MEMORY_BYTES_PER_BLOB_MAX).toBe(32);
    expect(DISK_PER_LOGICAL_MAX).toEqual({
      replication: { 1024: 3.4 },
      ec: { 1024: 2.2, 4096: 1.7, 65536: 1.52 },
      field_hybrid: { 1024: 2.5, 4096: 1.75, 65536: 1.52 },
    });
    const fixed = STORAGE_GOALS.filter((g) => g.metric === 'fixed_overhead_bytes_per_doc').map((g) => `${g.strategy} ${g.layout} ${g.max}`);
    expect(fixed.sort()).toEqual(['ec copies 384', 'ec shards 640', 'field_hybrid copies 384', 'field_hybrid shards 896', 'replication copies 384']);
    expect(GOAL_ROWS.map((r) => `${r.strategy}:${r.document_bytes}`)).toEqual([
      'replication:1024', 'ec:100', 'ec:1024', 'ec:4096', 'ec:65536', 'field_hybrid:100', 'field_hybrid:1024', 'field_hybrid:4096', 'field_hybrid:65536',
    ]);
  });

  it('passes every goal when each row is at its limits', () => {
    const results = checkGoals(rowsAtLimits());
    expect(results.map((r) => r.status)).toEqual(results.map(() => 'PASS'));
    expect(results).toHaveLength(STORAGE_GOALS.length + 1);
    expect(goalProblems(results)).toEqual([]);
  });

  it('fails exactly the goal whose figure is over its limit, for each goal', () => {
    for (const goal of STORAGE_GOALS) {
      const rows = rowsAtLimits().map((r) =>
        r.strategy === goal.strategy && r.document_bytes === goal.document_bytes
          ? { ...r, [goal.metric]: goal.metric === 'disk_per_logical' ? goal.max + 0.001 : goal.max + 1 }
          : r,
      );
      const results = checkGoals(rows);
      expect(results.filter((r) => r.status === 'FAIL').map((r) => r.goal), goal.name).toEqual([goal.name]);
      expect(goalProblems(results), goal.name).toHaveLength(1);
    }
  });

  it('fails the index goal when any row holds more than 32 bytes of index per blob', () => {
    const rows = rowsAtLimits();
    rows[3] = { ...rows[3]!, index_memory_bytes_per_blob: INDEX_MEMORY_BYTES_PER_BLOB_MAX + 0.1 };
    const results = checkGoals(rows);
    expect(results.filter((r) => r.status === 'FAIL').map((r) => r.goal)).toEqual([INDEX_GOAL_NAME]);
  });

  it('fails a fixed-overhead goal whose row was stored in the other layout, however small its figure', () => {
    const rows = rowsAtLimits().map((r) => (r.strategy === 'ec' && r.document_bytes === SMALL_DOCUMENT_BYTES ? { ...r, layout: 'shards' as const, blobs_per_doc: 6, fixed_overhead_bytes_per_doc: 1 } : r));
    const failed = checkGoals(rows).filter((r) => r.status === 'FAIL');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.goal).toContain('ec small');
    expect(failed[0]!.note).toContain('stored as shards');
  });

  it('reports goals whose rows were not measured as NOT MEASURED, which breaks nothing', () => {
    const rows = rowsAtLimits().filter((r) => r.strategy === 'replication');
    const results = checkGoals(rows);
    expect(results.filter((r) => r.status === 'PASS').map((r) => r.goal).sort()).toEqual(
      ['disk/logical, replication 1 KiB', 'fixed overhead, replication 1 KiB (copies)', INDEX_GOAL_NAME].sort(),
    );
    expect(results.filter((r) => r.status === 'NOT MEASURED')).toHaveLength(STORAGE_GOALS.length - 2);
    expect(goalProblems(results)).toEqual([]);
    expect(checkGoals([]).every((r) => r.status === 'NOT MEASURED')).toBe(true);
  });

  it('tells the layout from the blobs per document', () => {
    expect(layoutOf('replication', 3)).toBe('copies');
    expect(layoutOf('ec', 3)).toBe('copies');
    expect(layoutOf('ec', 6)).toBe('shards');
    expect(layoutOf('field_hybrid', 6)).toBe('copies');
    expect(layoutOf('field_hybrid', 9)).toBe('shards');
    expect(layoutOf('ec', 4.5)).toBeNull();
    // A few blobs the healer wrote during the row (not yet collected) do not change the layout.
    expect(layoutOf('field_hybrid', 6.04)).toBe('copies');
    expect(layoutOf('field_hybrid', 7.5)).toBeNull();
  });

  it('measures documents whose hot part is at most 64 B, as the ratio goals assume', () => {
    for (const { document_bytes } of GOAL_ROWS) {
      expect(hotPartOf(sizedDocument(document_bytes, 'incompressible', 9_999_999), DEFAULT_HOT_FIELDS)).toBeLessThanOrEqual(HOT_PART_BYTES_MAX);
    }
  });
});
