/**
 * The binary manifest codec (internal/manifest/manifest-codec.ts, layout in internal/manifest/README.md): every
 * manifest comes back exactly, whether the compact form can carry it or the escape form has to; damaged and
 * truncated records are refused with a reason; a format it does not know is FORMAT_UNSUPPORTED; and the shapes the
 * write path makes are as small as the design says.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { checksum64Of, checksumMatches, checksumOf } from '../../internal/blobio/checksum.js';
import { ulidFromBytes } from '../../internal/core/derived-ids.js';
import { isStrataError } from '../../internal/core/errors.js';
import { blobIdOf, newWriteId } from '../../internal/core/ids.js';
import {
  MANIFEST_BINARY_FORMAT,
  MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH,
  ManifestDecodeError,
  decodeManifestBinary,
  dictionaryNeeds,
  encodeManifestBinary,
  type ManifestDictionary,
} from '../../internal/manifest/manifest-codec.js';
import { isoDateOfMs } from '../../internal/manifest/manifest-bytes.js';
import { STRATEGIES, type BlobRef, type BlobState, type Manifest } from '../../internal/manifest/manifest.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { makeManifest, makeTombstone } from '../helpers/manifest-fixture.js';
import { seededRandom } from '../json/helpers.js';

/** A store's dictionary as the stores keep it: append-only, numbers assigned before an encode that needs them. */
class TestDictionary implements ManifestDictionary {
  private readonly nodes = new Map<string, number>();
  private readonly nodeNames = new Map<number, string>();
  private readonly sets = new Map<string, number>();
  private readonly setFields = new Map<number, readonly string[]>();

  learn(m: Manifest): this {
    const needs = dictionaryNeeds(m);
    for (const node of needs.nodes) {
      if (this.nodes.has(node)) continue;
      const n = this.nodes.size + 1;
      this.nodes.set(node, n);
      this.nodeNames.set(n, node);
    }
    for (const fields of needs.hotFieldSets) {
      const text = JSON.stringify(fields);
      if (this.sets.has(text)) continue;
      const id = this.sets.size + 1;
      this.sets.set(text, id);
      this.setFields.set(id, Object.freeze([...fields]));
    }
    return this;
  }
  nodeNumber(name: string): number | undefined {
    return this.nodes.get(name);
  }
  nodeName(n: number): string | undefined {
    return this.nodeNames.get(n);
  }
  hotFieldSetId(fields: readonly string[]): number | undefined {
    return this.sets.get(JSON.stringify(fields));
  }
  hotFieldSet(id: number): readonly string[] | undefined {
    return this.setFields.get(id);
  }
}

const ESCAPE_FLAG = 0x01;

function isEscaped(bytes: Uint8Array): boolean {
  return (bytes[1]! & ESCAPE_FLAG) !== 0;
}

/** JSON with members in sorted order: equal texts mean equal manifests as a store would keep them. */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Encodes with a dictionary that knows what `m` needs, decodes, and checks the manifest came back exactly. */
function roundTrip(m: Manifest, modRevision = 7, dict = new TestDictionary()): Uint8Array {
  dict.learn(m);
  const bytes = encodeManifestBinary(m, modRevision, dict);
  // A 128-bit cold hash (data format 3 on) is format 3; a whole one, as the previous release wrote it, format 2.
  expect(bytes[0]).toBe(m.coldHash?.length === 32 ? MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH : MANIFEST_BINARY_FORMAT);
  const back = decodeManifestBinary(bytes, m.key, modRevision, dict);
  // Compared as the stored JSON would be (nothing more, nothing less); toEqual only to show a difference.
  if (canonicalJson(back) !== canonicalJson(m)) expect(back).toEqual(m);
  expect(canonicalJson(back)).toBe(canonicalJson(m));
  return bytes;
}

function decodeError(bytes: Uint8Array, key: string, modRevision: number, dict: ManifestDictionary): ManifestDecodeError {
  try {
    decodeManifestBinary(bytes, key, modRevision, dict);
  } catch (error) {
    if (error instanceof ManifestDecodeError) return error;
    throw error;
  }
  throw new Error(`decoding ${bytes.length} bytes did not fail`);
}

/** The checksums as a binary-manifest write records them: the first 64 bits of the sha256. */
function withShortChecksums(m: Manifest): Manifest {
  const shorten = (r: BlobRef): BlobRef => ({ ...r, checksum: r.checksum.slice(0, 16) });
  return { ...m, hot: m.hot.map(shorten), cold: m.cold.map(shorten) };
}

/**
 * The checksums and cold hash as a format-1 write records them (whole sha256): a cold hash of 64 digits (a 128-bit
 * one extended: any 64 digits are all a size comparison needs), and for each checksum the cold hash where the short
 * one is its prefix (an uncompressed cold copy), else any 64 digits.
 */
function withLongChecksums(m: Manifest): Manifest {
  const coldHash = m.coldHash === null || m.coldHash.length === 64 ? m.coldHash : m.coldHash.repeat(2);
  const lengthen = (r: BlobRef): BlobRef =>
    r.checksum.length === 64 ? r : { ...r, checksum: coldHash?.startsWith(r.checksum) ? coldHash : r.checksum.repeat(4) };
  return { ...m, coldHash, hot: m.hot.map(lengthen), cold: m.cold.map(lengthen) };
}

const A_WRITE_ID = newWriteId(Date.parse('2026-12-01T10:00:00.000Z'));

describe('manifest codec: the fixture shapes', () => {
  it('stores the fixture manifest compactly and gives it back exactly', () => {
    const m = makeManifest('users/00001234', A_WRITE_ID);
    expect(isEscaped(roundTrip(m))).toBe(false);
  });

  it('stores the fixture tombstone compactly and gives it back exactly', () => {
    const bytes = roundTrip(makeTombstone('users/00001234', A_WRITE_ID));
    expect(isEscaped(bytes)).toBe(false);
    // Its dates are the fixture's (2024) while its write id is of 2026: a 6-byte delta.
    expect(bytes.length).toBeLessThanOrEqual(40);
  });

  it('falls back to the escape form for write ids that are not ULIDs, and still gives the manifest back', () => {
    const bytes = roundTrip(makeManifest('k', 'w1'));
    expect(isEscaped(bytes)).toBe(true);
    expect(new TextDecoder().decode(bytes.subarray(2))).toBe(JSON.stringify(makeManifest('k', 'w1')));
  });

  it('keeps a version that differs from the mod revision, and leaves out one that equals it', () => {
    const m = makeManifest('k', A_WRITE_ID, { version: '41' });
    const kept = roundTrip(m, 52);
    const implied = roundTrip({ ...m, version: '52' }, 52);
    expect(kept.length).toBeGreaterThan(implied.length);
  });

  it('escapes exotic manifests exactly: unknown members, odd dates, odd checksums, odd versions, odd ids', () => {
    const base = makeManifest('k', A_WRITE_ID);
    const exotic: Manifest[] = [
      { ...base, ...({ futureMember: { a: [1, 2] } } as object) } as Manifest,
      { ...base, updatedAt: '2024-01-01T00:00:00Z' },
      { ...base, createdAt: 'yesterday' },
      { ...base, version: '007' },
      { ...base, version: 'v3' },
      { ...base, hot: base.hot.map((r) => ({ ...r, checksum: r.checksum.toUpperCase() })) },
      { ...base, hot: base.hot.map((r, i) => ({ ...r, checksum: i === 0 ? r.checksum.slice(0, 16) : r.checksum })) },
      { ...base, hot: base.hot.map((r) => ({ ...r, checksum: 'abc' })) },
      { ...base, hot: base.hot.map((r) => ({ ...r, node: `http://127.0.0.1:9${r.node.slice(-1)}` })) },
      { ...base, hot: base.hot.map((r) => ({ ...r, ...({ note: 'x' } as object) })) },
      { ...base, coldHash: 'not-a-hash' },
      { ...base, bytes: { ...base.bytes, physical: 1.5 } },
      { ...base, cold_layout: { dataBytes: 10, shardBytes: 8, ...({ future: true } as object) } },
      { ...base, key: 'exotic/\u{1F600}' },
      { ...base, createdAt: '\uFEFFa date with a byte order mark' },
    ];
    const escaped = exotic.map((m) => isEscaped(roundTrip(m)));
    // Dates that are not canonical are kept as text, and other key text is the row's: those stay compact.
    expect(escaped).toEqual([true, false, false, true, true, true, true, true, false, true, true, true, true, false, false]);
  });

  it('spells out blob ids that are neither derived nor a healer form, without escaping the manifest', () => {
    const base = makeManifest('k', A_WRITE_ID);
    const m = { ...base, hot: base.hot.map((r, i) => (i === 1 ? { ...r, blob: 'contract-test-blob-1' } : r)) };
    expect(isEscaped(roundTrip(m))).toBe(false);
  });

  it('escapes a manifest whose node or hot-field set has no number in the dictionary, rather than failing', () => {
    const m = makeManifest('k', A_WRITE_ID, { hotFields: ['like_count'] });
    const empty = new TestDictionary();
    const bytes = encodeManifestBinary(m, 7, empty);
    expect(isEscaped(bytes)).toBe(true);
    expect(decodeManifestBinary(bytes, 'k', 7, empty)).toEqual(m);
  });
});

describe('manifest codec: shapes of real writes', () => {
  let cluster: TestCluster;
  const shapes = new Map<string, { manifest: Manifest; modRevision: number }>();

  async function write(key: string, body: unknown, query: string): Promise<void> {
    const res = await cluster.write(key, body, query);
    expect(res.status, await res.clone().text()).toBe(200);
  }
  async function stored(key: string): Promise<{ manifest: Manifest; modRevision: number }> {
    const s = await cluster.metadata.get(key);
    if (s === null) throw new Error(`no manifest for ${key}`);
    return { manifest: s.manifest, modRevision: s.modRevision };
  }
  /** Incompressible text, as verify:storage's documents. */
  const noise = (bytes: number): string => randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes);
  const hot = { like_count: 12, view_count: 3400, status_code: 200 };
  const HOT_FIELDS = '&hot_fields=like_count,view_count,status_code';

  beforeAll(async () => {
    // Copies up to 1 KiB of stored cold part, so that both cold placements are written whatever the default rule.
    cluster = await startTestCluster({ env: { STRATA_INLINE_COLD_BYTES_MAX: '1024' } });
    await write('users/00000001', { ...hot, body: noise(1000) }, '&strategy=replication');
    await write('users/00000002', { ...hot, body: noise(150) }, '&strategy=ec');
    await write('users/00000003', { ...hot, body: noise(4000) }, '&strategy=ec');
    await write('users/00000004', { ...hot, body: noise(150) }, `&strategy=field_hybrid${HOT_FIELDS}`);
    await write('users/00000005', { ...hot, body: noise(4000) }, `&strategy=field_hybrid${HOT_FIELDS}`);
    await write('users/00000006', { ...hot, body: 'temperature=21.5;'.repeat(400) }, `&strategy=field_hybrid${HOT_FIELDS}`);
    await write('users/00000007', { ...hot, body: noise(500) }, '&strategy=replication&ttl_ms=86400000');
    // A pure hot update: the cold shards of the first write stay, under its write id.
    const cold = noise(4000);
    await write('users/00000008', { ...hot, body: cold }, `&strategy=field_hybrid${HOT_FIELDS}`);
    await write('users/00000008', { ...hot, like_count: 13, body: cold }, `&strategy=field_hybrid${HOT_FIELDS}`);
    // The default hot fields (the configured list of ten), as most writes have them.
    await write('users/00000009', { like_count: 1, status_code: 2, body: noise(4000) }, '&strategy=field_hybrid');
    // A repaired document: two blobs lost, rebuilt by the healer under `.r<rev>` ids.
    await write('users/00000010', { ...hot, body: noise(4000) }, `&strategy=field_hybrid${HOT_FIELDS}`);
    const damaged = await stored('users/00000010');
    for (const ref of [damaged.manifest.hot[0]!, damaged.manifest.cold[2]!]) {
      await cluster.nodes.find((n) => n.id === ref.node)!.server!.store.delete(ref.blob);
    }
    // Rounds until both are rebuilt: a round may leave work for the next (its audit is paced).
    await vi.waitFor(
      async () => {
        await cluster.healer.runOnce({ forceAudit: true });
        const { manifest } = await stored('users/00000010');
        expect(manifest.dirty).toBe(false);
        expect([manifest.hot[0]!.blob, manifest.cold[2]!.blob].every((b) => /\.r[0-9a-z]+$/.test(b))).toBe(true);
      },
      { timeout: 120_000, interval: 50 },
    );
    await write('users/00000011', { ...hot }, '&strategy=replication');
    expect((await cluster.fetch('/delete/users%2F00000011', { method: 'DELETE' })).status).toBe(200);
    const names = ['replication', 'ec copies', 'ec shards', 'field_hybrid copies', 'field_hybrid shards', 'field_hybrid compressed'];
    for (const [i, name] of names.entries()) shapes.set(name, await stored(`users/0000000${i + 1}`));
    shapes.set('replication with ttl', await stored('users/00000007'));
    shapes.set('pure hot update', await stored('users/00000008'));
    shapes.set('default hot fields', await stored('users/00000009'));
    shapes.set('repaired', await stored('users/00000010'));
    shapes.set('tombstone', await stored('users/00000011'));
  }, 300_000);

  afterAll(async () => {
    await cluster?.destroy();
  });

  it('writes the shapes this test means to cover', () => {
    expect(shapes.get('ec copies')!.manifest.cold_layout?.placement).toBe('with_replicas');
    expect(shapes.get('ec shards')!.manifest.cold).toHaveLength(6);
    expect(shapes.get('field_hybrid copies')!.manifest.cold_layout?.placement).toBe('with_replicas');
    expect(shapes.get('field_hybrid compressed')!.manifest.cold_layout?.codec).toBe('brotli');
    expect(shapes.get('replication with ttl')!.manifest.expiresAtMs).toBeTypeOf('number');
    const hotUpdate = shapes.get('pure hot update')!.manifest;
    expect(hotUpdate.cold[0]!.writeId).not.toBe(hotUpdate.writeId);
    const repaired = shapes.get('repaired')!.manifest;
    expect(repaired.hot[0]!.blob).toMatch(/\.hot-0\.r[0-9a-z]+$/);
    expect(repaired.cold[2]!.blob).toMatch(/\.shard-2\.r[0-9a-z]+$/);
    expect(shapes.get('tombstone')!.manifest.deleted).toBe(true);
  });

  it('stores every real shape compactly and gives it back exactly, with 64- and with 16-digit checksums', () => {
    for (const [name, { manifest, modRevision }] of shapes) {
      expect(isEscaped(roundTrip(manifest, modRevision)), name).toBe(false);
      expect(isEscaped(roundTrip(withShortChecksums(manifest), modRevision)), name).toBe(false);
      expect(isEscaped(roundTrip(withLongChecksums(manifest), modRevision)), name).toBe(false);
    }
  });

  it('stores the healer\'s moved and extra-replica blob ids, and dirty mixed states, compactly', () => {
    const { manifest: m, modRevision } = shapes.get('field_hybrid shards')!;
    const writeId = m.hot[0]!.writeId;
    const moved: Manifest = {
      ...m,
      cold: m.cold.map((r, i) => (i === 4 ? { ...r, node: 'node-9', blob: `${blobIdOf(r.writeId, r.part)}.m${(123456).toString(36)}` } : r)),
    };
    const extra: Manifest = {
      ...m,
      extraReplicas: 2,
      hot: [
        ...m.hot,
        ...[3, 4].map((i) => ({ ...m.hot[0]!, part: `hot-${i}`, node: `node-${i}`, blob: `${blobIdOf(writeId, `hot-${i}`)}.x${(99).toString(36)}` })),
      ],
    };
    // After an extra replica was dropped, the next one is numbered past the gap: its part is spelled out.
    const gap: Manifest = { ...extra, extraReplicas: 1, hot: [...m.hot, { ...extra.hot[4]! }] };
    const states: BlobState[] = ['ok', 'missing', 'corrupt', 'unknown'];
    const dirty: Manifest = { ...m, dirty: true, cold: m.cold.map((r, i) => ({ ...r, state: states[i % 4]! })) };
    for (const shape of [moved, extra, gap, dirty]) expect(isEscaped(roundTrip(shape, modRevision))).toBe(false);
    // A healer rewrite keeps the version and write id while its blobs carry the rewrite's own write id.
    const rewrite: Manifest = {
      ...m,
      version: String(modRevision - 3),
      hot: m.hot.map((r) => ({ ...r, writeId: A_WRITE_ID, blob: blobIdOf(A_WRITE_ID, r.part) })),
      cold: m.cold.map((r) => ({ ...r, writeId: A_WRITE_ID, blob: blobIdOf(A_WRITE_ID, r.part) })),
    };
    expect(isEscaped(roundTrip(rewrite, modRevision))).toBe(false);
  });

  it('encodes the typical shapes within the design\'s sizes (key not stored), smaller with 16-digit checksums', () => {
    const sizes: Record<string, { long: number; short: number; v1: number }> = {};
    for (const [name, { manifest, modRevision }] of shapes) {
      const dict = new TestDictionary();
      const long = roundTrip(withLongChecksums(manifest), modRevision, dict).length;
      const short = roundTrip(withShortChecksums(manifest), modRevision, dict).length;
      sizes[name] = { long, short, v1: JSON.stringify(withLongChecksums(manifest)).length };
      // Copies of an uncompressed cold part store no checksum at all (theirs is the cold hash), but a 128-bit cold
      // hash is still 16 bytes shorter than a whole one; a tombstone has neither.
      if (name === 'tombstone') expect(short, name).toBe(long);
      else expect(short, name).toBeLessThan(long);
      if (manifest.coldHash !== null) expect(long - short, name).toBeGreaterThanOrEqual(16);
    }
    // Upper bounds a few bytes over what this layout measured (16-digit checksums and a 128-bit cold hash, as data
    // format 3 writes them; format 2's whole cold hash and 64-digit checksums in brackets): replication 43 (67), ec
    // copies 54 (70), ec shards 105 (265), field_hybrid copies 67 (107), field_hybrid shards 118 (302), compressed 76,
    // with ttl 46, pure hot update 134, the ten default hot fields 119, repaired 125, tombstone 29; v1 JSON: 385 to
    // 2,707 B. The design's figures: ~40 / ~46 / ~99 / ~117 B.
    const bounds: Record<string, number> = {
      replication: 48,
      'ec copies': 58,
      'ec shards': 110,
      'field_hybrid copies': 72,
      'field_hybrid shards': 123,
      'field_hybrid compressed': 81,
      'replication with ttl': 52,
      'pure hot update': 140,
      'default hot fields': 125,
      repaired: 131,
      tombstone: 32,
    };
    for (const [name, bound] of Object.entries(bounds)) expect(sizes[name]!.short, `${name}: ${JSON.stringify(sizes[name])}`).toBeLessThanOrEqual(bound);
  });
});

describe('manifest codec: random manifests', () => {
  const random = seededRandom(20261207);
  const int = (n: number): number => Math.floor(random() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const chance = (p: number): boolean => random() < p;
  const hex = (digits: number): string => Array.from({ length: digits }, () => '0123456789abcdef'[int(16)]).join('');
  const ulid = (): string => {
    const bytes = new Uint8Array(16);
    for (let i = 0; i < 16; i++) bytes[i] = int(256);
    bytes[0] = chance(0.9) ? 0x01 : bytes[0]!; // mostly dates of this era; sometimes anything
    return ulidFromBytes(bytes);
  };
  const nodes = ['node-1', 'node-2', 'node-3', 'node-4', 'node-5', 'node-6', 'node-17', 'n'];
  const fieldPool = ['like_count', 'view_count', '/stats/views', 'a/b', '~tilde', 'status_code', 'x'];
  const number = (): number => pick([0, 1, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 53 - 1, int(100_000)]);
  const date = (): string => {
    if (chance(0.05)) return pick(['2024-01-01T00:00:00Z', 'not a date', '', '+275760-09-13T00:00:00.000Z']);
    return new Date(pick([0, -1, 1_700_000_000_000 + int(1e10), 8.64e15, -8.64e15])).toISOString();
  };
  const checksum = (long: boolean): string => (chance(0.01) ? pick(['', 'ABCDEF0123456789', hex(15)]) : hex(long ? 64 : 16));

  function refs(count: number, prefix: (i: number) => string, writeId: string, long: boolean, same: boolean): BlobRef[] {
    const size = number();
    const sum = checksum(long);
    return Array.from({ length: count }, (_, i) => {
      const part = chance(0.05) ? pick(['hot-10', 'weird part', `${prefix(i + 1)}`]) : prefix(i);
      const own = chance(0.05) ? ulid() : chance(0.01) ? 'not-a-ulid' : writeId;
      const base = blobIdOf(own, part);
      const blob = chance(0.8)
        ? base
        : pick([`${base}.r${int(1e9).toString(36)}`, `${base}.m0`, `${base}.x${int(99).toString(36)}`, 'other-blob', `${base}.r00`, `${base}.q1`]);
      return {
        part,
        node: pick(nodes),
        blob,
        writeId: own,
        size: same ? size : number(),
        checksum: same ? sum : checksum(long),
        state: pick<BlobState>(['ok', 'ok', 'ok', 'missing', 'corrupt', 'unknown']),
      };
    });
  }

  function randomManifest(i: number): Manifest {
    const writeId = chance(0.97) ? ulid() : `w${i}`;
    const strategy = pick(STRATEGIES);
    const hotFields = chance(0.2) ? [] : fieldPool.filter(() => chance(0.5));
    const pointers = hotFields.map((f) => (f.startsWith('/') ? f : '/' + f.replace(/~/g, '~0').replace(/\//g, '~1')));
    const hotPaths = chance(0.3) ? [] : chance(0.7) ? pointers.filter(() => chance(0.6)) : [...pointers].reverse().concat(chance(0.3) ? ['/elsewhere'] : []);
    const placement = pick([undefined, 'shards', 'with_replicas'] as const);
    const hasCold = chance(0.7);
    const long = chance(0.5);
    const coldHash = hasCold ? hex(64) : null;
    const dataBytes = number();
    const coldLayout = hasCold
      ? {
          dataBytes,
          shardBytes: chance(0.8) ? (placement === 'with_replicas' ? dataBytes : Math.max(8, Math.ceil(Math.ceil(dataBytes / 4) / 8) * 8)) : number(),
          ...(placement ? { placement } : {}),
          ...(chance(0.5) ? { codec: pick(['identity', 'brotli', 'deflate'] as const) } : {}),
          ...(chance(0.3) ? { textBytes: number() } : {}),
        }
      : null;
    const coldRefs = hasCold
      ? refs(placement === 'with_replicas' ? 3 : 6, (k) => (placement === 'with_replicas' ? `cold-${k}` : `shard-${k}`), chance(0.2) ? ulid() : writeId, long, chance(0.5))
      : [];
    if (coldHash && chance(0.3)) for (const r of coldRefs) r.checksum = coldHash.slice(0, long ? 64 : 16);
    const extra = chance(0.1) ? int(3) : undefined;
    const hotRefs = refs(int(4) + (extra ?? 0), (k) => `hot-${k}`, writeId, long, chance(0.8));
    const m: Manifest = {
      formatVersion: 1,
      key: `k/${i}`,
      version: chance(0.7) ? '100' : String(int(1000)),
      writeId,
      deleted: chance(0.1),
      strategy,
      hotFields,
      hotPaths,
      coldEmptyOffsets: chance(0.8) ? [] : Array.from({ length: int(4) + 1 }, () => int(5000)),
      bytes: { logical: number(), hot: number(), cold: number(), physical: number() },
      coldHash,
      cold_layout: coldLayout,
      hot: hotRefs,
      cold: coldRefs,
      dirty: chance(0.2),
      createdAt: date(),
      updatedAt: date(),
    };
    if (chance(0.5)) m.bytes.physical = [...(extra ? hotRefs.slice(0, hotRefs.length - extra) : hotRefs), ...coldRefs].reduce((s, r) => s + r.size, 0);
    if (chance(0.5)) m.hotFieldsSource = pick(['request', 'policy'] as const);
    if (chance(0.5)) m.strategySource = pick(['request', 'policy'] as const);
    if (chance(0.2)) m.expiresAtMs = 1_700_000_000_000 + int(1e10);
    if (extra !== undefined) m.extraReplicas = extra;
    if (chance(0.02)) (m as unknown as Record<string, unknown>)['future'] = 1;
    return m;
  }

  it('gives back every one of 3,000 random manifests exactly, mostly in the compact form', () => {
    const dict = new TestDictionary();
    let escaped = 0;
    for (let i = 0; i < 3000; i++) {
      const m = randomManifest(i);
      const bytes = roundTrip(m, 100, dict);
      if (isEscaped(bytes)) escaped++;
      // Every truncation of a few of them is refused as such.
      if (i % 100 === 0) for (let n = 0; n < bytes.length; n++) decodeError(bytes.subarray(0, n), m.key, 100, dict);
    }
    expect(escaped).toBeGreaterThan(0);
    expect(escaped).toBeLessThan(600);
    // Generous: a few seconds on an idle machine, many times that on a loaded one.
  }, 300_000);
});

describe('manifest codec: dates', () => {
  it('formats a date exactly as Date.toISOString does, on any day, in extended years and at the ends of the range', () => {
    const random = seededRandom(11);
    const samples = [0, -1, 1, 999, 1000, 86_399_999, 86_400_000, -86_400_000, -86_400_001, 8.64e15, -8.64e15, 253_402_300_799_999, 253_402_300_800_000];
    for (let i = 0; i < 20_000; i++) samples.push(Math.round((random() * 2 - 1) * 8.64e15));
    // Runs of nearby times, as a scan meets them, so the kept day is reused and also replaced.
    let t = Date.parse('2026-12-31T23:59:58.000Z');
    for (let i = 0; i < 5_000; i++) samples.push((t += Math.floor(random() * 2_000)));
    for (const ms of samples) expect(isoDateOfMs(ms), String(ms)).toBe(new Date(ms).toISOString());
  });
});

describe('manifest codec: damaged records', () => {
  const dict = new TestDictionary();
  const m = makeManifest('k', A_WRITE_ID, { hotFields: ['like_count'], strategySource: 'request', expiresAtMs: Date.parse('2027-01-01T00:00:00.000Z') });
  const compact = roundTrip(m, 7, dict);
  const escaped = roundTrip(makeManifest('k', 'w1'), 7, dict);

  it('refuses every truncation of a compact and of an escaped manifest as a decode error', () => {
    expect(isEscaped(compact)).toBe(false);
    for (const bytes of [compact, escaped]) {
      for (let n = 0; n < bytes.length; n++) {
        const error = decodeError(bytes.subarray(0, n), 'k', 7, dict);
        expect(error.why.length).toBeGreaterThan(10);
      }
    }
    expect(decodeError(compact.subarray(0, 10), 'k', 7, dict).why).toMatch(/write id.*truncated/);
  });

  it('refuses trailing bytes after the last field', () => {
    const longer = new Uint8Array([...compact, 0]);
    expect(decodeError(longer, 'k', 7, dict).why).toMatch(/1 bytes follow the last field/);
  });

  it('refuses a node number or hot-field set the dictionary does not hold', () => {
    const other = new TestDictionary().learn(makeManifest('k', A_WRITE_ID, { hot: [] }));
    expect(decodeError(compact, 'k', 7, other).why).toMatch(/hot-field set 1 is not in this store's dictionary/);
    const noNodes = new TestDictionary().learn({ ...m, hot: [] });
    expect(decodeError(compact, 'k', 7, noNodes).why).toMatch(/node number 1 is not in this store's dictionary/);
  });

  it('refuses an unknown strategy number and varints longer than a safe integer', () => {
    const badStrategy = Uint8Array.from(compact);
    badStrategy[1] = badStrategy[1]! | 0x18;
    expect(decodeError(badStrategy, 'k', 7, dict).why).toMatch(/strategy number 3/);
    const head = compact.subarray(0, 19);
    const longVarint = new Uint8Array([...head, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    expect(decodeError(longVarint, 'k', 7, dict).why).toMatch(/longer than 8 bytes/);
  });

  it('refuses escaped JSON that does not parse, or is not an object', () => {
    const notObject = new Uint8Array([MANIFEST_BINARY_FORMAT, ESCAPE_FLAG, ...new TextEncoder().encode('[1]')]);
    expect(decodeError(notObject, 'k', 7, dict).why).toMatch(/not an object/);
    expect(decodeError(new Uint8Array([MANIFEST_BINARY_FORMAT, ESCAPE_FLAG | 0x02]), 'k', 7, dict).why).toMatch(/escape flag/);
  });

  it('meets damaged bytes anywhere with a decode error or a manifest, never with another exception', () => {
    const random = seededRandom(1312);
    const base = makeManifest('k', A_WRITE_ID, { hotFields: ['like_count', 'view_count'], hotPaths: ['/view_count'], coldEmptyOffsets: [3, 9] });
    const samples = [compact, roundTrip(base, 7, dict), roundTrip(withShortChecksums({ ...base, hot: base.hot.map((r, i) => ({ ...r, blob: `${r.blob}.r${i}` })) }), 7, dict)];
    for (let i = 0; i < 3000; i++) {
      const bytes = Uint8Array.from(samples[i % samples.length]!);
      const flips = 1 + Math.floor(random() * 3);
      // Byte 0 stays: another first byte is FORMAT_UNSUPPORTED, tested below.
      for (let f = 0; f < flips; f++) bytes[1 + Math.floor(random() * (bytes.length - 1))] = Math.floor(random() * 256);
      try {
        decodeManifestBinary(bytes, 'k', 7, dict);
      } catch (error) {
        if (!(error instanceof ManifestDecodeError)) throw error;
      }
    }
  });

  it('answers FORMAT_UNSUPPORTED (503) for a first byte that is neither a known format nor JSON', () => {
    for (const first of [0x00, 0x01, 0x04, 0xff]) {
      let caught: unknown;
      try {
        decodeManifestBinary(new Uint8Array([first, 0, 0]), 'k', 7, dict);
      } catch (error) {
        caught = error;
      }
      expect(isStrataError(caught, 'FORMAT_UNSUPPORTED')).toBe(true);
      expect((caught as { status: number }).status).toBe(503);
    }
  });

  it('reads a v1 JSON manifest as it is', () => {
    const v1 = makeManifest('k', 'w1');
    expect(decodeManifestBinary(new TextEncoder().encode(JSON.stringify(v1)), 'k', 7, dict)).toEqual(v1);
  });
});

describe('64-bit checksums', () => {
  const data = Buffer.from('a payload');
  const full = checksumOf(data);

  it('is the first 16 hex digits of the sha256', () => {
    expect(checksum64Of(data)).toBe(full.slice(0, 16));
  });

  it('matches a recorded checksum of either length against the payload\'s sha256, and nothing else', () => {
    expect(checksumMatches(full, full)).toBe(true);
    expect(checksumMatches(full.slice(0, 16), full)).toBe(true);
    expect(checksumMatches(checksumOf(Buffer.from('another')), full)).toBe(false);
    expect(checksumMatches(checksum64Of(Buffer.from('another')), full)).toBe(false);
    expect(checksumMatches(full.slice(0, 15), full)).toBe(false);
    expect(checksumMatches(full.slice(0, 32), full)).toBe(false);
    expect(checksumMatches('', full)).toBe(false);
    expect(checksumMatches(full.slice(0, 16), full.slice(0, 16))).toBe(false);
  });
});
