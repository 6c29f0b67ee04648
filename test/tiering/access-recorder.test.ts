/**
 * What a gateway's AccessRecorder (internal/tiering/access-recorder.ts) counts as a changed field when a document is
 * written whole: a member whose digest differs from the one the previous write through this gateway left. The
 * digests are kept for TIERING_LIMITS.digestKeysMax documents, least recently written out first.
 */
import { describe, expect, it } from 'vitest';
import { JsonNumber, type JsonObject } from '../../internal/json/value.js';
import { silentLogger } from '../../internal/log/logger.js';
import type { MetadataStore } from '../../internal/metadata/metadata-store.js';
import { AccessRecorder } from '../../internal/tiering/access-recorder.js';
import { TIERING_LIMITS } from '../../internal/tiering/limits.js';
import { makeManifest } from '../helpers/manifest-fixture.js';
import { ManualClock } from '../helpers/manual-clock.js';

/** Just the two calls a flush makes: each prefix's record is updated in memory, and no other record is listed. */
function recordsInMemory(): MetadataStore {
  const records = new Map<string, unknown>();
  return {
    updateTieringRecord: async (prefix: string, update: (current: unknown | null) => unknown | null) => {
      const next = update(records.get(prefix) ?? null);
      if (next !== null) records.set(prefix, next);
      return next ?? records.get(prefix) ?? null;
    },
    listTieringRecords: async () => [],
  } as unknown as MetadataStore;
}

function recorder(): AccessRecorder {
  return new AccessRecorder(
    { metadata: recordsInMemory(), clock: new ManualClock(), log: silentLogger, base: { pinnedFor: () => null, defaults: [] } },
    { halfLifeMs: 3_600_000, flushIntervalMs: 0, policy: { halfLifeMs: 3_600_000, promoteScore: 20, demoteScore: 4, dwellMs: 300_000 } },
  );
}

function doc(members: Record<string, number>): JsonObject {
  return new Map(Object.entries(members).map(([name, value]) => [name, new JsonNumber(String(value))]));
}

function write(r: AccessRecorder, key: string, members: Record<string, number>): void {
  r.wrote(makeManifest(key, `w-${key}`), doc(members));
}

/** Changes counted for `field` of the prefix `docs/` so far (flushed into the record first). */
async function changesOf(r: AccessRecorder, field: string): Promise<number> {
  await r.flush();
  return r.record('docs/')?.fields[field]?.chg ?? 0;
}

describe('AccessRecorder: changed fields of whole-document writes', () => {
  it('counts a member as changed only when it differs from the previous write of the document', async () => {
    const r = recorder();
    write(r, 'docs/1', { a: 1, b: 1 });
    write(r, 'docs/1', { a: 2, b: 1 });
    expect(await changesOf(r, 'a')).toBe(1);
    expect(await changesOf(r, 'b')).toBe(0);
  });

  it('counts nothing as changed on the first write of a document, which has no previous digests', async () => {
    const r = recorder();
    write(r, 'docs/1', { a: 1 });
    write(r, 'docs/2', { a: 2 });
    expect(await changesOf(r, 'a')).toBe(0);
  });

  it('forgets the digests when the document is patched: the next write is compared with nothing', async () => {
    const r = recorder();
    write(r, 'docs/1', { a: 1 });
    r.patched(makeManifest('docs/1', 'w-patch'), [['b']]);
    write(r, 'docs/1', { a: 2 });
    expect(await changesOf(r, 'a')).toBe(0);
    expect(await changesOf(r, 'b')).toBe(1);
  });

  it('keeps digests for digestKeysMax documents and forgets the least recently written one beyond', async () => {
    const r = recorder();
    write(r, 'docs/first', { x: 1 });
    write(r, 'docs/second', { y: 1 });
    for (let i = 2; i < TIERING_LIMITS.digestKeysMax; i++) write(r, `docs/${i}`, { z: 1 });
    // The table is full. Rewriting the first document makes it the most recently written, so the next new
    // document pushes out the second one, not the first.
    write(r, 'docs/first', { x: 1 });
    write(r, 'docs/one-too-many', { z: 1 });
    write(r, 'docs/first', { x: 2 });
    write(r, 'docs/second', { y: 2 });
    expect(await changesOf(r, 'x')).toBe(1);
    expect(await changesOf(r, 'y')).toBe(0);
  });
});
