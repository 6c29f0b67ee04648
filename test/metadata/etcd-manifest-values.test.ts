/**
 * The etcd store's manifest values across data formats (internal/metadata/etcd-manifest-value.ts) and its manifest
 * dictionary (internal/metadata/etcd-dictionary.ts), against a real etcd: values written at format 1 and at format
 * 2 read back exactly, through get, scan, listKeys and both watches; gateways assigning dictionary numbers at once
 * agree; a damaged or moved binary value is refused; a format this release does not know is never "corrupt".
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DATA_FORMAT_V1, DATA_FORMAT_V2, fixedDataFormat, type DataFormatSource } from '../../internal/core/data-format.js';
import { isStrataError } from '../../internal/core/errors.js';
import { newWriteId } from '../../internal/core/ids.js';
import { MANIFEST_BINARY_FORMAT, MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH } from '../../internal/manifest/manifest-codec.js';
import type { BlobRef, Manifest, StoredManifest } from '../../internal/manifest/manifest.js';
import { EtcdMetadataStore } from '../../internal/metadata/etcd-metadata-store.js';
import type { CommitResult, ManifestChange, MetadataStore } from '../../internal/metadata/metadata-store.js';
import { startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';
import { makeManifest, makeTombstone } from '../helpers/manifest-fixture.js';
import { waitUntil } from '../helpers/wait.js';

let etcd: RunningEtcd;
/** Reads and damages raw values behind the stores' backs. */
let admin: Etcd3;
const opened: EtcdMetadataStore[] = [];

beforeAll(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: [etcd.endpoints] });
});
afterEach(async () => {
  for (const store of opened.splice(0)) await store.close();
});
afterAll(async () => {
  admin?.close();
  await etcd?.stop();
});

function freshPrefix(): string {
  return `test/${randomUUID()}/`;
}

async function openAt(prefix: string, dataFormat: DataFormatSource | number): Promise<EtcdMetadataStore> {
  const source = typeof dataFormat === 'number' ? fixedDataFormat(dataFormat) : dataFormat;
  const store = await EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix, dataFormat: source });
  opened.push(store);
  return store;
}

type Ok = Extract<CommitResult, { ok: true }>;

function expectOk(result: CommitResult): Ok {
  if (!result.ok) throw new Error(`expected a successful commit, got ${JSON.stringify(result)}`);
  return result;
}

async function put(store: MetadataStore, manifest: Manifest, expected: number, assignVersion = true): Promise<Ok> {
  return expectOk(await store.commit({ key: manifest.key, expectedModRevision: expected, writeId: manifest.writeId, manifest, assignVersion }));
}

async function codeOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (err: unknown) => (isStrataError(err) ? err.code : err),
  );
}

/** A manifest the compact binary form carries (a ULID write id, derived blob ids) on the given nodes. */
function onNodes(key: string, nodes: readonly string[], overrides: Partial<Manifest> = {}): Manifest {
  const writeId = newWriteId();
  const base = makeManifest(key, writeId, overrides);
  const hot: BlobRef[] = nodes.map((node, i) => ({ ...base.hot[0]!, part: `hot-${i}`, node, blob: `${writeId}.hot-${i}` }));
  return { ...base, hot, ...overrides };
}

async function raw(prefix: string, name: string): Promise<Buffer> {
  const value = await admin.get(`${prefix}${name}`).buffer();
  if (value === null) throw new Error(`no value under ${prefix}${name}`);
  return value;
}

const ESCAPE_FLAG = 0x01;

describe('etcd manifest values: written at data format 1, then at 2', () => {
  it('read back exactly through get, scan and listKeys, by a store at either format, and both watches deliver every change', async () => {
    const prefix = freshPrefix();
    let format = DATA_FORMAT_V1;
    const store = await openAt(prefix, { current: () => format });
    const start = await store.currentRevision();
    const seen: { key: string; stored: StoredManifest | null; revision: number }[] = [];
    const changes: ManifestChange[] = [];
    await store.watchManifests(start, {
      onChange: (key, stored, revision) => seen.push({ key, stored, revision }),
      onRevision: () => undefined,
      onReset: (reason) => seen.push({ key: `reset: ${reason}`, stored: null, revision: 0 }),
    });
    await store.watchChanges('', start, { onChange: (change) => changes.push(change), onEnd: (error) => changes.push({ key: `end: ${error.message}`, revision: 0, kind: 'put' }) });

    // Written at format 1: JSON records, as the previous release wrote them.
    const kept = await put(store, onNodes('mix/kept', ['node-1', 'node-2', 'node-3']), 0);
    const rewritten1 = await put(store, onNodes('mix/rewritten', ['node-1', 'node-2', 'node-3']), 0);
    const deleted1 = await put(store, onNodes('mix/deleted', ['node-1', 'node-2', 'node-3']), 0);
    expect((await raw(prefix, 'manifest/mix/kept')).subarray(0, 4).toString()).toBe('sr1 ');
    // A value of the release before the envelope (no `sr1` header) is read as it always was.
    const legacy = onNodes('mix/legacy', ['node-1', 'node-2', 'node-3']);
    const { version: _v, ...legacyRest } = legacy;
    await admin.put(`${prefix}manifest/mix/legacy`).value(JSON.stringify({ format: 1, version: null, manifest: legacyRest }));
    await admin.put(`${prefix}live/mix/legacy`).value('');

    // The cluster's format is raised: what is written from now on is binary.
    format = DATA_FORMAT_V2;
    const rewritten = await put(store, onNodes('mix/rewritten', ['node-4', 'node-5', 'node-6'], { dirty: true }), rewritten1.modRevision);
    const deleted = await put(store, makeTombstone('mix/deleted', newWriteId()), deleted1.modRevision);
    const fresh = await put(store, onNodes('mix/fresh', ['node-2', 'node-4', 'node-6'], { hotFields: ['a', 'b'], hotPaths: ['a'] }), 0);
    // A healer's commit keeps the version of the write it completes: not a change of the document.
    const healed = await put(store, { ...fresh.manifest, dirty: false }, fresh.modRevision, false);
    for (const name of ['mix/rewritten', 'mix/deleted', 'mix/fresh']) expect((await raw(prefix, `manifest/${name}`))[0]).toBe(MANIFEST_BINARY_FORMAT);
    expect((await raw(prefix, 'manifest/mix/fresh'))[1]! & ESCAPE_FLAG).toBe(0);

    const legacyStored = await store.get('mix/legacy');
    expect(legacyStored?.manifest).toEqual({ ...legacy, version: String(legacyStored?.modRevision) });
    const expected: StoredManifest[] = [
      { manifest: deleted.manifest, modRevision: deleted.modRevision },
      { manifest: healed.manifest, modRevision: healed.modRevision },
      { manifest: kept.manifest, modRevision: kept.modRevision },
      legacyStored!,
      { manifest: rewritten.manifest, modRevision: rewritten.modRevision },
    ];
    expect(healed.manifest.version).toBe(fresh.manifest.version);
    // A store at format 1 (the default) reads both forms too: the format decides only what is written.
    const formatOne = await openAt(prefix, DATA_FORMAT_V1);
    for (const reader of [store, formatOne]) {
      for (const e of expected) expect(await reader.get(e.manifest.key)).toEqual(e);
      expect(await reader.scan(null, 100)).toEqual(expected);
      expect(await reader.scan('mix/fresh', 2)).toEqual(expected.slice(2, 4));
      expect(await reader.listKeys('mix/', null, 100)).toEqual(['mix/fresh', 'mix/kept', 'mix/legacy', 'mix/rewritten']);
    }

    await waitUntil('the manifest watch delivered the last commit', () => seen.some((s) => s.revision === healed.modRevision));
    expect(seen.filter((s) => s.key.startsWith('mix/') && s.key !== 'mix/legacy')).toEqual([
      { key: 'mix/kept', stored: { manifest: kept.manifest, modRevision: kept.modRevision }, revision: kept.modRevision },
      { key: 'mix/rewritten', stored: { manifest: rewritten1.manifest, modRevision: rewritten1.modRevision }, revision: rewritten1.modRevision },
      { key: 'mix/deleted', stored: { manifest: deleted1.manifest, modRevision: deleted1.modRevision }, revision: deleted1.modRevision },
      { key: 'mix/rewritten', stored: { manifest: rewritten.manifest, modRevision: rewritten.modRevision }, revision: rewritten.modRevision },
      { key: 'mix/deleted', stored: { manifest: deleted.manifest, modRevision: deleted.modRevision }, revision: deleted.modRevision },
      { key: 'mix/fresh', stored: { manifest: fresh.manifest, modRevision: fresh.modRevision }, revision: fresh.modRevision },
      { key: 'mix/fresh', stored: { manifest: healed.manifest, modRevision: healed.modRevision }, revision: healed.modRevision },
    ]);
    await waitUntil('the change watch delivered the last change', () => changes.some((c) => c.revision === fresh.modRevision));
    expect(changes.filter((c) => c.key !== 'mix/legacy')).toEqual([
      { key: 'mix/kept', revision: kept.modRevision, kind: 'put' },
      { key: 'mix/rewritten', revision: rewritten1.modRevision, kind: 'put' },
      { key: 'mix/deleted', revision: deleted1.modRevision, kind: 'put' },
      { key: 'mix/rewritten', revision: rewritten.modRevision, kind: 'put' },
      { key: 'mix/deleted', revision: deleted.modRevision, kind: 'delete' },
      { key: 'mix/fresh', revision: fresh.modRevision, kind: 'put' },
    ]);
  });
});

describe('etcd manifest dictionary', () => {
  it('two gateways assigning numbers for the same new nodes at once agree, and each reads the other\'s manifests exactly', async () => {
    const prefix = freshPrefix();
    const a = await openAt(prefix, DATA_FORMAT_V2);
    const b = await openAt(prefix, DATA_FORMAT_V2);
    const nodes = Array.from({ length: 12 }, (_, i) => `node-${i + 1}`);
    // Every manifest needs three nodes none of the gateways has a number for yet; both gateways race for all of them.
    const manifests = Array.from({ length: 24 }, (_, i) => onNodes(`race/${String(i).padStart(2, '0')}`, [nodes[i % 12]!, nodes[(i + 5) % 12]!, nodes[(i + 7) % 12]!]));
    const results = await Promise.all(manifests.map((m, i) => put(i % 2 === 0 ? a : b, m, 0)));

    const dict = await admin.getAll().prefix(`${prefix}dict/`).strings();
    const numberOf = new Map<string, number>();
    for (const [k, v] of Object.entries(dict)) {
      const name = k.slice(`${prefix}dict/`.length);
      if (name.startsWith('node/')) numberOf.set(name.slice('node/'.length), (JSON.parse(v) as { number: number }).number);
    }
    expect([...numberOf.keys()].sort()).toEqual([...nodes].sort());
    // One number per node, one node per number, both directions stored.
    expect(new Set(numberOf.values()).size).toBe(nodes.length);
    for (const [name, n] of numberOf) expect(JSON.parse(dict[`${prefix}dict/node-number/${n}`]!)).toEqual({ name });

    const third = await openAt(prefix, DATA_FORMAT_V1);
    for (const [i, result] of results.entries()) {
      const key = manifests[i]!.key;
      expect((await raw(prefix, `manifest/${key}`))[1]! & ESCAPE_FLAG).toBe(0);
      for (const reader of [a, b, third]) expect(await reader.get(key)).toEqual({ manifest: result.manifest, modRevision: result.modRevision });
    }
  });

  it('a gateway reads a manifest naming a node number another gateway assigned after it loaded the dictionary, by get and by its watch', async () => {
    const prefix = freshPrefix();
    const reader = await openAt(prefix, DATA_FORMAT_V2);
    const writer = await openAt(prefix, DATA_FORMAT_V2);
    const seen: (StoredManifest | null)[] = [];
    await reader.watchManifests(await reader.currentRevision(), {
      onChange: (_key, stored) => seen.push(stored),
      onRevision: () => undefined,
      onReset: () => seen.push(null),
    });
    const written = await put(writer, onNodes('late/k', ['node-a', 'node-b', 'node-c'], { hotFields: ['x'], hotPaths: ['x'] }), 0);
    await waitUntil("the reader's watch delivered the commit", () => seen.length > 0);
    expect(seen).toEqual([{ manifest: written.manifest, modRevision: written.modRevision }]);
    const another = await put(writer, onNodes('late/j', ['node-d', 'node-b', 'node-c'], { hotFields: ['y'], hotPaths: [] }), 0);
    expect(await reader.get('late/j')).toEqual({ manifest: another.manifest, modRevision: another.modRevision });
    expect(reader.integrity().corruptRecords).toBe(0);
  });

  it('a commit whose cached numbers etcd no longer holds (restored from a backup) encodes again with what etcd holds', async () => {
    const prefix = freshPrefix();
    const stale = await openAt(prefix, DATA_FORMAT_V2);
    await put(stale, onNodes('restore/first', ['node-y', 'node-z', 'node-w']), 0);
    // etcd goes back to a state without that dictionary, and another gateway gives number 1 to another node.
    await admin.delete().prefix(`${prefix}dict/`);
    const other = await openAt(prefix, DATA_FORMAT_V2);
    await put(other, onNodes('restore/other', ['node-x', 'node-v', 'node-u']), 0);

    const committed = await put(stale, onNodes('restore/second', ['node-y', 'node-z', 'node-w']), 0);
    expect(await other.get('restore/second')).toEqual({ manifest: committed.manifest, modRevision: committed.modRevision });
    expect((await other.get('restore/second'))?.manifest.hot.map((r) => r.node)).toEqual(['node-y', 'node-z', 'node-w']);
  });
  it('a damaged dictionary entry makes the manifests using it METADATA_CORRUPT, never another node, and is never assigned again', async () => {
    const prefix = freshPrefix();
    const cached = await openAt(prefix, DATA_FORMAT_V2);
    await put(cached, onNodes('dmg/k', ['node-p', 'node-q', 'node-r']), 0);
    const numberOfP = (JSON.parse((await raw(prefix, 'dict/node/node-p')).toString()) as { number: number }).number;
    await admin.put(`${prefix}dict/node-number/${numberOfP}`).value(JSON.stringify({ name: 'node-s' }));
    const before = await admin.getAll().prefix(`${prefix}dict/`).strings();

    const fresh = await openAt(prefix, DATA_FORMAT_V2);
    expect(await codeOf(fresh.get('dmg/k'))).toBe('METADATA_CORRUPT');
    expect(fresh.integrity().recent.some((s) => s.kind === 'manifest' && s.key === 'dmg/k')).toBe(true);
    // A write that needs the node: refused by a gateway that read the damage, and by one that had the entry cached.
    for (const store of [fresh, cached]) {
      expect(await codeOf(store.commit({ key: 'dmg/new', expectedModRevision: 0, writeId: 'w', manifest: onNodes('dmg/new', ['node-p', 'node-q', 'node-r']), assignVersion: true }))).toBe('METADATA_CORRUPT');
    }
    expect(await admin.getAll().prefix(`${prefix}dict/`).strings()).toEqual(before);
    expect(await fresh.get('dmg/new')).toBeNull();
    expect(fresh.integrity().recent.some((s) => s.kind === 'dictionary')).toBe(true);
  });

  it('a store opened without reaching etcd reads and writes binary manifests with the dictionary it reads on first need', async () => {
    const prefix = freshPrefix();
    const first = await openAt(prefix, DATA_FORMAT_V2);
    const a = await put(first, onNodes('lazy/a', ['node-1', 'node-2', 'node-3']), 0);
    const lazy = await EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix, dataFormat: fixedDataFormat(DATA_FORMAT_V2), checkReachable: false });
    opened.push(lazy);
    expect(await lazy.get('lazy/a')).toEqual({ manifest: a.manifest, modRevision: a.modRevision });
    const b = await put(lazy, onNodes('lazy/b', ['node-3', 'node-4', 'node-1']), 0);
    expect(await first.get('lazy/b')).toEqual({ manifest: b.manifest, modRevision: b.modRevision });
    expect(JSON.parse((await raw(prefix, 'dict/node/node-1')).toString())).toEqual({ number: 1 });
  });
});

describe('etcd manifest values: damage and unknown formats', () => {
  it('a flipped bit anywhere after the format byte of a binary value is METADATA_CORRUPT, never served', async () => {
    const prefix = freshPrefix();
    const store = await openAt(prefix, DATA_FORMAT_V2);
    await put(store, onNodes('flip/k', ['node-1', 'node-2', 'node-3']), 0);
    const good = await raw(prefix, 'manifest/flip/k');
    for (let i = 1; i < good.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = Buffer.from(good);
        bad[i]! ^= bit;
        await admin.put(`${prefix}manifest/flip/k`).value(bad);
        expect(await codeOf(store.get('flip/k')), `byte ${i}, bit ${bit}`).toBe('METADATA_CORRUPT');
      }
    }
    // Cut short, it fails the same way.
    await admin.put(`${prefix}manifest/flip/k`).value(good.subarray(0, good.length - 1));
    expect(await codeOf(store.get('flip/k'))).toBe('METADATA_CORRUPT');
    expect(await store.scan(null, 10)).toEqual([]);
    expect(store.integrity().recent.some((s) => s.kind === 'manifest' && s.key === 'flip/k')).toBe(true);
  });

  it('a healer whose dictionary cache predates the damaged record still reads its write id, and refuses to roll it back', async () => {
    const prefix = freshPrefix();
    const healer = await openAt(prefix, DATA_FORMAT_V2);
    const gateway = await openAt(prefix, DATA_FORMAT_V2);
    const older = onNodes('heal/k', ['node-7', 'node-8', 'node-9']);
    await put(gateway, onNodes('heal/k', ['node-7', 'node-8', 'node-9']), 0);
    // The version flag flipped: the checksum fails, the manifest bytes still decode (with the nodes' numbers).
    const value = await raw(prefix, 'manifest/heal/k');
    value[value.length - 9]! ^= 0x01;
    await admin.put(`${prefix}manifest/heal/k`).value(value);
    const term = (await healer.acquireLeadership('strata/healer', 'healer-a', 60_000))!;
    const refused = await healer.replaceCorruptManifest({ key: 'heal/k', manifest: older, fence: term });
    expect(refused).toMatchObject({ ok: false, reason: 'newer' });
  });

  it('a binary value moved under another key is refused', async () => {
    const prefix = freshPrefix();
    const store = await openAt(prefix, DATA_FORMAT_V2);
    const a = await put(store, onNodes('move/a', ['node-1', 'node-2', 'node-3']), 0);
    await put(store, onNodes('move/b', ['node-1', 'node-2', 'node-3']), 0);
    await admin.put(`${prefix}manifest/move/b`).value(await raw(prefix, 'manifest/move/a'));
    expect(await codeOf(store.get('move/b'))).toBe('METADATA_CORRUPT');
    expect(await store.get('move/a')).toEqual({ manifest: a.manifest, modRevision: a.modRevision });
  });

  it('a value in a binary format this release does not know is FORMAT_UNSUPPORTED for get, scan and a repair, and is never counted corrupt nor rebuilt over', async () => {
    const prefix = freshPrefix();
    const store = await openAt(prefix, DATA_FORMAT_V2);
    const written = await put(store, onNodes('future/k', ['node-1', 'node-2', 'node-3']), 0);
    const future = await raw(prefix, 'manifest/future/k');
    future[0] = MANIFEST_BINARY_FORMAT_SHORT_COLD_HASH + 1;
    await admin.put(`${prefix}manifest/future/k`).value(future);
    expect(await codeOf(store.get('future/k'))).toBe('FORMAT_UNSUPPORTED');
    expect(await codeOf(store.scan(null, 10))).toBe('FORMAT_UNSUPPORTED');
    const term = (await store.acquireLeadership('strata/healer', 'healer-a', 60_000))!;
    expect(await codeOf(store.replaceCorruptManifest({ key: 'future/k', manifest: written.manifest, fence: term }))).toBe('FORMAT_UNSUPPORTED');
    expect((await raw(prefix, 'manifest/future/k')).equals(future)).toBe(true);
    expect(store.integrity().corruptRecords).toBe(0);
  });
});

describe('etcd manifest values: bytes per manifest', () => {
  let cluster: TestCluster;
  const shapes = new Map<string, Manifest>();

  beforeAll(async () => {
    cluster = await startTestCluster();
    // Incompressible text, as verify:storage's documents.
    const noise = (bytes: number): string => randomBytes(bytes).toString('base64').slice(0, bytes);
    const hot = { like_count: 12, view_count: 3400, status_code: 200 };
    const writes: [string, unknown, string][] = [
      ['replication', { ...hot, body: noise(1000) }, '&strategy=replication'],
      ['ec shards', { ...hot, body: noise(4000) }, '&strategy=ec'],
      ['field_hybrid shards', { ...hot, body: noise(4000) }, '&strategy=field_hybrid&hot_fields=like_count,view_count,status_code'],
    ];
    for (const [name, body, query] of writes) {
      const key = `users/${name.replace(/[^a-z]/g, '-')}`;
      const res = await cluster.write(key, body, query);
      expect(res.status, await res.clone().text()).toBe(200);
      shapes.set(name, (await cluster.metadata.get(key))!.manifest);
    }
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('a binary value is a small fraction of the JSON record of the same manifest', async () => {
    const prefix = freshPrefix();
    const stores = { 1: await openAt(prefix, DATA_FORMAT_V1), 2: await openAt(prefix, DATA_FORMAT_V2) };
    // Blob checksums as each format's write path records them: 64 hex digits (sha256) at format 1, 16 (its first
    // 64 bits) at format 2. Only their length matters to the sizes, so a long one is a short one repeated.
    const withChecksums = (m: Manifest, digits: 16 | 64): Manifest => {
      const set = (r: BlobRef): BlobRef => ({ ...r, checksum: r.checksum.slice(0, 16).repeat(digits / 16) });
      return { ...m, hot: m.hot.map(set), cold: m.cold.map(set) };
    };
    const sizes: Record<string, { json64: number; json16: number; binary64: number; binary16: number }> = {};
    for (const [name, shape] of shapes) {
      const measure = async (format: 1 | 2, digits: 16 | 64): Promise<number> => {
        const key = `size/${name}/${format}/${digits}`;
        const result = await put(stores[format], { ...withChecksums(shape, digits), key }, 0);
        expect(await stores[1].get(key)).toEqual({ manifest: result.manifest, modRevision: result.modRevision });
        return (await raw(prefix, `manifest/${key}`)).length;
      };
      sizes[name] = { json64: await measure(1, 64), json16: await measure(1, 16), binary64: await measure(2, 64), binary16: await measure(2, 16) };
    }
    // `STRATA_PRINT_SIZES=1 npx vitest run test/metadata/etcd-manifest-values.test.ts -t "small fraction"` prints them.
    if (process.env['STRATA_PRINT_SIZES'] === '1') console.log(JSON.stringify(sizes, null, 1));
    // The binary value adds 9 bytes (flags, checksum) to the codec's bytes; the JSON record is the sealed header
    // and the manifest's whole text.
    for (const [name, s] of Object.entries(sizes)) {
      expect(s.binary64, name).toBeLessThan(s.json64 / 3);
      expect(s.binary16, name).toBeLessThan(s.binary64);
    }
    expect(sizes['replication']!.binary16).toBeLessThanOrEqual(80);
    expect(sizes['field_hybrid shards']!.binary16).toBeLessThanOrEqual(180);
  });
});
