/**
 * Histories no correct store can produce, one per failure mode: the checker must reject each with the violation
 * that names it, and with the operations that prove it.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatCheckResult, type HistoryCheckResult } from '../../internal/history-check/check-history.js';
import type { Operation } from '../../internal/history-check/history.js';
import type { ViolationKind } from '../../internal/history-check/violations.js';
import { absent, del, found, ifMatch, notApplied, ok, patch, read, refused, unknown, write } from './history-ops.js';

function kindsOf(result: HistoryCheckResult): ViolationKind[] {
  return [...new Set(result.violations.map((violation) => violation.kind))].sort();
}

function expectViolations(history: Operation[], kinds: ViolationKind[]): HistoryCheckResult {
  const result = checkHistory(history);
  expect(result.verdict, formatCheckResult(result)).toBe('invalid');
  expect(kindsOf(result), formatCheckResult(result)).toEqual([...kinds].sort());
  return result;
}

function idsOf(result: HistoryCheckResult, kind: ViolationKind): string[] {
  return result.violations.find((violation) => violation.kind === kind)!.operations.map((op) => op.id);
}

describe('history checker: invalid histories fail with the right violation', () => {
  it('a stale read after an acknowledged write completed', () => {
    const result = expectViolations(
      [
        write('w1', { v: 'a' }, [0, 1], ok(1)),
        write('w2', { v: 'b' }, [2, 3], ok(2)),
        read('r1', [4, 5], found({ v: 'a' }, 1)),
      ],
      ['stale-read', 'not-linearizable'],
    );
    expect(idsOf(result, 'stale-read')).toEqual(['w2', 'r1']);
    const stale = result.violations.find((violation) => violation.kind === 'stale-read')!;
    expect(stale.message).toBe('read r1 returned version 1, older than version 2 of write w2, which completed before r1 began');
    expect(stale.operations[0]).toMatchObject({ id: 'w2', key: 'k', kind: 'write', invokedAt: 2, completedAt: 3, status: 'ok' });
  });

  it('a lost acknowledged write: the key reads as absent with no delete anywhere', () => {
    const result = expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(1)), read('r1', [5, 6], absent)],
      ['lost-write', 'not-linearizable'],
    );
    expect(idsOf(result, 'lost-write')).toEqual(['w1', 'r1']);
  });

  it('a lost acknowledged write: the final read shows the write it replaced, under a newer version', () => {
    const result = expectViolations(
      [
        write('w1', { v: 'a' }, [0, 1], ok(1)),
        write('w2', { v: 'b' }, [2, 3], ok(2)),
        read('final', [10, 11], found({ v: 'a' }, 4)),
      ],
      ['lost-write', 'not-linearizable'],
    );
    expect(idsOf(result, 'lost-write')).toEqual(['w2', 'w1', 'final']);
  });

  it('a lost update: two concurrent patches both acknowledged, the final read has only one', () => {
    const result = expectViolations(
      [
        write('w1', { v: 'a' }, [0, 1], ok(1)),
        patch('p1', { x: 'p1' }, [2, 10], ok(2)),
        patch('p2', { y: 'p2' }, [3, 9], ok(3)),
        read('final', [20, 21], found({ v: 'a', y: 'p2' }, 3)),
      ],
      ['lost-write', 'not-linearizable'],
    );
    expect(idsOf(result, 'lost-write')).toEqual(['p1', 'final']);
  });

  it('a lost update even when the versions look right: patches re-applied to a stale document', () => {
    expectViolations(
      [
        write('w1', { v: 'a' }, [0, 1], ok(1)),
        patch('p1', { x: 'p1' }, [2, 10], ok(2)),
        patch('p2', { y: 'p2' }, [3, 9], ok(3)),
        read('r1', [4, 5], found({ v: 'a', x: 'p1' }, 2)),
        read('final', [20, 21], found({ v: 'a', y: 'p2' }, 5)),
      ],
      ['lost-write', 'not-linearizable'],
    );
  });

  it('a read of a value never written', () => {
    const result = expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(1)), read('r1', [2, 3], found({ v: 'zzz' }, 1))],
      ['read-of-unwritten', 'not-linearizable'],
    );
    expect(result.violations.find((violation) => violation.kind === 'read-of-unwritten')!.message).toBe(
      'read r1 returned v=zzz, which no operation on key k wrote',
    );
  });

  it('a read of a write that definitely failed (refused by its precondition, or not applied)', () => {
    const refusedResult = expectViolations(
      [
        write('w1', { v: 'a' }, [0, 1], ok(1)),
        write('w2', { v: 'b' }, [2, 3], refused, { precondition: ifMatch(99) }),
        read('r1', [4, 5], found({ v: 'b' }, 2)),
      ],
      ['read-of-failed-write', 'not-linearizable'],
    );
    expect(idsOf(refusedResult, 'read-of-failed-write')).toEqual(['r1', 'w2']);
    expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(1)), write('w2', { v: 'b' }, [2, 3], notApplied), read('r1', [4, 5], found({ v: 'b' }, 2))],
      ['read-of-failed-write', 'not-linearizable'],
    );
  });

  it('a torn read: a document that mixes two writes', () => {
    expectViolations(
      [
        write('w1', { hot: 'h1', cold: 'c1' }, [0, 1], ok(1)),
        write('w2', { hot: 'h2', cold: 'c2' }, [2, 3], ok(2)),
        read('r1', [4, 5], found({ hot: 'h2', cold: 'c1' }, 2)),
      ],
      ['torn-read', 'not-linearizable'],
    );
  });

  it('a resurrected delete: the deleted document read back after the delete was acknowledged', () => {
    const result = expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(1)), del('d1', [2, 3], ok(2)), read('r1', [4, 5], found({ v: 'a' }, 1))],
      ['resurrected-delete', 'not-linearizable'],
    );
    expect(idsOf(result, 'resurrected-delete')).toEqual(['d1', 'r1']);
  });

  it('a resurrected delete: an old write committed again after the tombstone, with a new version', () => {
    expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(1)), del('d1', [2, 3], ok(2)), read('r1', [4, 5], found({ v: 'a' }, 3))],
      ['resurrected-delete', 'not-linearizable'],
    );
  });

  it('non-monotonic versions: an acknowledged write gets a version below one acknowledged before it', () => {
    const result = expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(5)), write('w2', { v: 'b' }, [2, 3], ok(3))],
      ['version-order', 'not-linearizable'],
    );
    expect(idsOf(result, 'version-order')).toEqual(['w1', 'w2']);
  });

  it('a version reused by two acknowledged writes', () => {
    expectViolations([write('w1', { v: 'a' }, [0, 10], ok(5)), write('w2', { v: 'b' }, [1, 11], ok(5))], ['version-reused', 'not-linearizable']);
  });

  it('the classic: two reads concurrent with a write see new, then old (the search and the read-to-read stale rule)', () => {
    const result = expectViolations(
      [
        write('w1', { v: 'old' }, [0, 1], ok(1)),
        write('w2', { v: 'new' }, [10, 100], ok(2)),
        read('r1', [20, 30], found({ v: 'new' }, 2)),
        read('r2', [40, 50], found({ v: 'old' }, 1)),
      ],
      ['not-linearizable', 'stale-read'],
    );
    const violation = result.violations.find((candidate) => candidate.kind === 'not-linearizable')!;
    expect(violation.operations.map((op) => op.id)).toContain('r2');
  });

  it('the classic when the old value comes back under a new version: only the search sees it', () => {
    expectViolations(
      [
        write('w1', { v: 'old' }, [0, 1], ok(1)),
        write('w2', { v: 'new' }, [10, 100], ok(2)),
        read('r1', [20, 30], found({ v: 'new' }, 2)),
        read('r2', [40, 50], found({ v: 'old' }, 3)),
      ],
      ['not-linearizable'],
    );
  });

  it('a read from the future: a value read before its write was invoked (the search, and the version order)', () => {
    expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(1)), read('r1', [2, 3], found({ v: 'b' }, 2)), write('w2', { v: 'b' }, [4, 5], ok(2))],
      ['not-linearizable', 'version-order'],
    );
  });

  it('an If-Match refused while the key was at exactly that version (only the search sees it)', () => {
    expectViolations(
      [
        write('w1', { v: 'a' }, [0, 1], ok(1)),
        write('cas', { v: 'b' }, [2, 3], refused, { precondition: ifMatch(1) }),
        read('r1', [4, 5], found({ v: 'a' }, 1)),
      ],
      ['not-linearizable'],
    );
  });

  it('an unknown write cannot explain a read that ended before the write was invoked', () => {
    expectViolations(
      [write('w1', { v: 'a' }, [0, 1], ok(1)), read('r1', [2, 3], found({ v: 'b' }, 4)), write('u1', { v: 'b' }, [5, 6], unknown)],
      ['not-linearizable'],
    );
  });

  it('explains a linearizability violation with the furthest the search got', () => {
    const result = checkHistory([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      write('w2', { v: 'b' }, [2, 3], ok(2)),
      read('r1', [4, 5], found({ v: 'a' }, 1)),
    ]);
    const violation = result.violations.find((candidate) => candidate.kind === 'not-linearizable')!;
    expect(violation.message).toBe(
      'key k is not linearizable: at best 2 of 3 completed operations take effect in order (2 operations, ending w1, w2); ' +
        'the state is then {v=b} at v2, and no order of what may come next lets r1 read -> {v=a} v1 [4, 5] take effect before it completes',
    );
    expect(violation.operations.map((op) => op.id)).toEqual(['r1', 'w1', 'w2']);
  });

  it('reports a search that runs out of budget as inconclusive, not as valid or invalid', () => {
    // Twelve overlapping unknown writes, then twelve overlapping unknown patches, and a read of the fifth write
    // with every patch merged: a valid history, but with a budget of 30 configurations the search cannot finish.
    const history: Operation[] = [write('w0', { v: 'w0' }, [0, 1], ok(1))];
    for (let i = 1; i <= 12; i++) history.push(write(`u${i}`, { v: `u${i}` }, [2, 3], unknown));
    for (let i = 1; i <= 12; i++) history.push(patch(`p${i}`, { [`f${i}`]: `p${i}` }, [4, 50], unknown));
    history.push(read('r1', [60, 61], found({ v: 'u5', f1: 'p1', f2: 'p2', f3: 'p3', f4: 'p4', f5: 'p5', f6: 'p6', f7: 'p7', f8: 'p8', f9: 'p9', f10: 'p10', f11: 'p11', f12: 'p12' }, 40)));
    history.push(read('r2', [62, 63], found({ v: 'w0' }, 1)));
    const tight = checkHistory(history.slice(0, -1), { statesMaxPerKey: 30 });
    expect(tight.verdict, formatCheckResult(tight)).toBe('inconclusive');
    expect(tight.inconclusiveKeys).toEqual(['k']);
    expect(tight.keys[0]).toMatchObject({ linearizability: 'inconclusive', statesExplored: 30 });
    expect(formatCheckResult(tight)).toContain('key k: linearizability inconclusive (search budget reached)');
    expect(checkHistory(history.slice(0, -1)).verdict).toBe('valid');
    // The same with a stale last read: the simple invariants still convict it, whatever the search's budget.
    const stale = checkHistory(history, { statesMaxPerKey: 30 });
    expect(stale.verdict).toBe('invalid');
    expect(kindsOf(stale)).toEqual(['stale-read']);
    expect(stale.inconclusiveKeys).toEqual(['k']);
  });

  it('keeps at most violationsPerKindMax of each kind and counts the rest', () => {
    const history: Operation[] = [write('w1', { v: 'a' }, [0, 1], ok(1)), write('w2', { v: 'b' }, [2, 3], ok(2))];
    for (let i = 0; i < 5; i++) history.push(read(`r${i}`, [10 + i, 10 + i], found({ v: 'a' }, 1)));
    const result = checkHistory(history, { violationsPerKindMax: 2 });
    expect(result.violations.filter((violation) => violation.kind === 'stale-read')).toHaveLength(2);
    expect(result.violationsOmitted).toEqual({ 'stale-read': 3 });
    expect(formatCheckResult(result)).toContain('(3 more stale-read not listed)');
  });

  it('asserts that a history is well formed (a malformed history is a bug in the test that recorded it)', () => {
    expect(() => checkHistory([write('w1', { v: 'a' }, [5, 1], ok(1))])).toThrow('completedAt >= invokedAt');
    expect(() => checkHistory([write('w1', { v: 'a' }, [0, 1], ok(1)), read('w1', [2, 3], absent)])).toThrow('ids are unique');
    expect(() => checkHistory([write('w1', {}, [0, 1], ok(1))])).toThrow('at least one field');
  });
});
