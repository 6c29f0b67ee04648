/**
 * Histories a correct store can produce: the checker must accept every one (no false alarm), whatever the
 * concurrency, the unknown outcomes and the conditional operations.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatCheckResult } from '../../internal/history-check/check-history.js';
import type { Operation } from '../../internal/history-check/history.js';
import { absent, del, found, ifMatch, ifNoneMatch, notApplied, ok, patch, read, readFailed, refused, unknown, write } from './history-ops.js';

function expectValid(history: Operation[]): void {
  const result = checkHistory(history);
  expect(result.verdict, formatCheckResult(result)).toBe('valid');
  expect(result.violations).toEqual([]);
}

describe('history checker: valid histories pass', () => {
  it('accepts an empty history and a key that was only read', () => {
    expectValid([]);
    expectValid([read('r1', [0, 1], absent)]);
  });

  it('accepts sequential writes and reads of the latest version', () => {
    expectValid([
      read('r0', [0, 1], absent),
      write('w1', { v: 'a' }, [2, 3], ok(10)),
      read('r1', [4, 5], found({ v: 'a' }, 10)),
      write('w2', { v: 'b' }, [6, 7], ok(14)),
      read('r2', [8, 9], found({ v: 'b' }, 14)),
      read('r3', [10, 11], found({ v: 'b' }, 14)),
    ]);
  });

  it('accepts overlapping writes committed in either order and reads that see either while they overlap', () => {
    expectValid([
      write('w0', { v: 'x' }, [0, 1], ok(1)),
      write('wa', { v: 'a' }, [10, 40], ok(3)),
      write('wb', { v: 'b' }, [12, 30], ok(2)), // invoked after wa, committed before it
      read('r1', [11, 20], found({ v: 'x' }, 1)),
      read('r2', [15, 25], found({ v: 'b' }, 2)),
      read('r3', [26, 45], found({ v: 'a' }, 3)),
      read('r4', [41, 50], found({ v: 'a' }, 3)),
    ]);
  });

  it('treats equal times as concurrent: a read invoked at the instant a write completes may miss it', () => {
    expectValid([write('w1', { v: 'a' }, [0, 10], ok(1)), read('r1', [10, 12], absent)]);
  });

  it('accepts an unknown write that took effect, seen by a later read', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      write('u1', { v: 'b' }, [5, 9], unknown),
      read('r1', [10, 11], found({ v: 'b' }, 2)),
      write('w2', { v: 'c' }, [12, 13], ok(3)),
      read('r2', [14, 15], found({ v: 'c' }, 3)),
    ]);
  });

  it('accepts an unknown write that never took effect', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      write('u1', { v: 'b' }, [5, 9], unknown),
      read('r1', [10, 11], found({ v: 'a' }, 1)),
      read('r2', [100, 101], found({ v: 'a' }, 1)),
    ]);
  });

  it('accepts an unknown write that took effect long after its client gave up', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      write('u1', { v: 'b' }, [5, 9], unknown),
      read('r1', [10, 11], found({ v: 'a' }, 1)),
      write('w2', { v: 'c' }, [20, 21], ok(5)),
      read('r2', [30, 31], found({ v: 'c' }, 5)),
      read('r3', [40, 41], found({ v: 'b' }, 6)), // the paused gateway committed u1 at last
    ]);
  });

  it('accepts an unknown delete that took effect and one that did not', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      del('u1', [2, 3], unknown),
      read('r1', [4, 5], absent),
      write('w2', { v: 'b' }, [6, 7], ok(4)),
      del('u2', [8, 9], unknown),
      read('r2', [10, 11], found({ v: 'b' }, 4)),
    ]);
  });

  it('ignores failed reads and mutations that were definitely not applied', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      write('f1', { v: 'b' }, [2, 3], notApplied),
      read('r1', [4, 5], readFailed),
      read('r2', [6, 7], found({ v: 'a' }, 1)),
    ]);
  });

  it('accepts create-only writes: one wins, the rival is refused, a create after a delete succeeds', () => {
    expectValid([
      write('c1', { v: 'a' }, [0, 10], ok(1), { precondition: ifNoneMatch }),
      write('c2', { v: 'b' }, [2, 12], refused, { precondition: ifNoneMatch }),
      read('r1', [13, 14], found({ v: 'a' }, 1)),
      del('d1', [15, 16], ok(2)),
      write('c3', { v: 'c' }, [17, 18], ok(3), { precondition: ifNoneMatch }),
      read('r2', [19, 20], found({ v: 'c' }, 3)),
    ]);
  });

  it('accepts If-Match writes: a compare-and-set race has one winner, a stale version is refused', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      write('cas1', { v: 'b' }, [2, 10], ok(2), { precondition: ifMatch(1) }),
      write('cas2', { v: 'c' }, [3, 11], refused, { precondition: ifMatch(1) }),
      write('cas3', { v: 'd' }, [12, 13], ok(3), { precondition: ifMatch(2) }),
      write('cas4', { v: 'e' }, [14, 15], refused, { precondition: ifMatch(2) }),
      read('r1', [16, 17], found({ v: 'd' }, 3)),
      write('cas5', { v: 'f' }, [18, 19], refused, { precondition: ifMatch(3) }), // refused as if by a concurrent change...
      write('u1', { v: 'g' }, [17, 18.5], unknown), // ...which this unknown write explains
    ]);
  });

  it('accepts an If-Match on the version of an unknown write, learned from a read', () => {
    expectValid([
      write('u1', { v: 'a' }, [0, 1], unknown),
      read('r1', [2, 3], found({ v: 'a' }, 7)),
      write('cas1', { v: 'b' }, [4, 5], ok(8), { precondition: ifMatch(7) }),
      read('r2', [6, 7], found({ v: 'b' }, 8)),
    ]);
  });

  it('accepts deletes, reads of the tombstone and re-creates with new versions', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      del('d1', [2, 3], ok(2)),
      read('r1', [4, 5], absent),
      del('d2', [6, 7], refused), // 404: nothing to delete
      patch('p1', { q: 'x' }, [8, 9], refused), // 404: nothing to patch
      write('w2', { v: 'b' }, [10, 11], ok(5)),
      read('r2', [12, 13], found({ v: 'b' }, 5)),
      del('d3', [14, 20], ok(6)),
      read('r3', [15, 16], found({ v: 'b' }, 5)), // concurrent with d3: before it
      read('r4', [17, 25], absent), // concurrent with d3: after it
    ]);
  });

  it('accepts concurrent patches of different fields: both kept', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      patch('p1', { x: 'p1' }, [2, 10], ok(3)),
      patch('p2', { y: 'p2' }, [3, 9], ok(2)),
      read('r1', [4, 5], found({ v: 'a', y: 'p2' }, 2)),
      read('r2', [11, 12], found({ v: 'a', x: 'p1', y: 'p2' }, 3)),
      patch('p3', { x: 'p3' }, [13, 14], ok(4)),
      read('r3', [15, 16], found({ v: 'a', x: 'p3', y: 'p2' }, 4)),
      write('w2', { v: 'b' }, [17, 18], ok(5)),
      read('r4', [19, 20], found({ v: 'b' }, 5)),
    ]);
  });

  it('accepts an unknown patch that took effect, seen merged into the document', () => {
    expectValid([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      patch('u1', { x: 'u1' }, [2, 3], unknown),
      patch('p1', { y: 'p1' }, [4, 5], ok(3)),
      read('r1', [6, 7], found({ v: 'a', x: 'u1', y: 'p1' }, 3)),
    ]);
  });

  it('checks keys independently', () => {
    expectValid([
      write('a1', { v: 'a' }, [0, 10], ok(1), { key: 'a' }),
      write('b1', { v: 'b' }, [0, 10], ok(2), { key: 'b' }),
      read('ra', [11, 12], found({ v: 'a' }, 1), { key: 'a' }),
      read('rb', [11, 12], found({ v: 'b' }, 2), { key: 'b' }),
      read('rc', [11, 12], absent, { key: 'c' }),
    ]);
  });

  it('reports how the search went per key', () => {
    const result = checkHistory([
      write('w1', { v: 'a' }, [0, 1], ok(1)),
      write('u1', { v: 'b' }, [2, 3], unknown),
      read('r1', [4, 5], readFailed),
      read('r2', [6, 7], found({ v: 'a' }, 1)),
    ]);
    expect(result.keys).toEqual([
      { key: 'k', operations: 4, searched: 3, unknownOutcomes: 1, linearizability: 'linearizable', statesExplored: expect.any(Number) },
    ]);
  });
});
