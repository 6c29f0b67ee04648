import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { EtcdMetadataStore, type EtcdMetadataStoreOptions } from '../../internal/metadata/etcd-metadata-store.js';
import type { CommitResult } from '../../internal/metadata/metadata-store.js';
import { startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import { runMetadataStoreContract, type ContractClock, type MetadataStoreFixture } from '../contracts/metadata-store.contract.js';
import { makeManifest } from '../helpers/manifest-fixture.js';
import { untilStopped } from '../../scripts/infra/process-utils.js';
import { systemClock } from '../../internal/core/clock.js';
import { ETCD_RPC_LIMITS } from '../../internal/metadata/etcd-rpc.js';
import { outlastRealTimer } from '../helpers/wait.js';
import { DATA_FORMAT_V1, DATA_FORMAT_V2, fixedDataFormat } from '../../internal/core/data-format.js';
import { MANIFEST_BINARY_FORMAT } from '../../internal/manifest/manifest-codec.js';

/**
 * EtcdMetadataStore against a real etcd started by scripts/infra/etcd.ts (installed with apt when missing). Each
 * test works under its own key prefix, so they share one etcd; the outage tests start their own.
 */

let etcd: RunningEtcd;
/** The store's default call deadline; tests configure a shorter one and show that it, not this, acts. */
const DEFAULT_DEADLINE_MS = ETCD_RPC_LIMITS.requestTimeoutMs;
/** Used only to remove a test's keys afterwards; the store under test never sees it. */
let admin: Etcd3;

beforeAll(async () => {
  etcd = await startEtcd();
  admin = new Etcd3({ hosts: [etcd.endpoints] });
});
afterAll(async () => {
  admin?.close();
  await etcd?.stop();
});

function freshPrefix(): string {
  return `test/${randomUUID()}/`;
}

/** Real time: etcd expires leases by its own clock (no clock can be injected into it), so `advance` really waits. */
const realClock: ContractClock & { sleep(ms: number): Promise<void> } = {
  nowMs: () => systemClock.nowMs(),
  advance: (ms) => outlastRealTimer(ms),
  sleep: (ms) => systemClock.sleep(ms),
};

function open(prefix: string, overrides: Partial<EtcdMetadataStoreOptions> = {}): Promise<EtcdMetadataStore> {
  return EtcdMetadataStore.open({ endpoints: [etcd.endpoints], prefix, clock: realClock, ...overrides });
}

function openAt(prefix: string, format: number, overrides: Partial<EtcdMetadataStoreOptions> = {}): Promise<EtcdMetadataStore> {
  return open(prefix, { dataFormat: fixedDataFormat(format), ...overrides });
}

/**
 * The contract at both data formats: at 1 the store writes what the previous release wrote (JSON records); at 2,
 * binary manifest values with dictionary numbers (internal/metadata/etcd-manifest-value.ts).
 */
for (const format of [DATA_FORMAT_V1, DATA_FORMAT_V2]) runMetadataStoreContract(`EtcdMetadataStore, data format ${format}`, async () => {
  const prefix = freshPrefix();
  const others: EtcdMetadataStore[] = [];
  const open = (prefix: string) => openAt(prefix, format);
  const fx: MetadataStoreFixture = {
    store: await open(prefix),
    clock: realClock,
    async reopen() {
      await fx.store.close();
      fx.store = await open(prefix);
      return fx.store;
    },
    async openAnother() {
      const another = await open(prefix);
      others.push(another);
      return another;
    },
    async cleanup() {
      for (const other of others) await other.close();
      await fx.store.close();
      await admin.delete().prefix(prefix);
    },
    // Compacts the whole shared etcd: harmless to the other tests, which never watch from older revisions.
    async compactHistory(revision) {
      await admin.kv.compact({ revision: String(revision), physical: true });
    },
    // A space appended to the record's content (after the envelope's header line): still JSON, checksum broken.
    // A binary manifest value: its version flag flipped (the manifest itself still decodes, as the JSON does).
    async tamper(kind, name) {
      const key =
        kind === 'cluster-identity'
          ? `${prefix}cluster-identity`
          : `${prefix}${kind === 'manifest' ? 'manifest' : kind === 'abort' ? 'abort' : 'idempotency'}/${name}`;
      if (kind === 'manifest' && format >= DATA_FORMAT_V2) {
        const bytes = await admin.get(key).buffer();
        expect(bytes?.[0]).toBe(MANIFEST_BINARY_FORMAT);
        bytes![bytes!.length - 9]! ^= 0x01;
        await admin.put(key).value(bytes!);
        return;
      }
      const value = await admin.get(key).string();
      expect(value?.startsWith('sr1 ')).toBe(true);
      await admin.put(key).value(`${value} `);
    },
  };
  return fx;
});

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => null,
    (err: unknown) => err,
  );
}

function codeOf(err: unknown): unknown {
  return isStrataError(err) ? err.code : err;
}

function create(store: EtcdMetadataStore, key: string, writeId: string, expectedModRevision = 0): Promise<CommitResult> {
  return store.commit({ key, expectedModRevision, writeId, manifest: makeManifest(key, writeId), assignVersion: true });
}


function okRevision(result: CommitResult): number {
  if (!result.ok) throw new Error(`expected a successful commit, got ${JSON.stringify(result)}`);
  return result.modRevision;
}

describe('EtcdMetadataStore', () => {
  const opened: EtcdMetadataStore[] = [];
  const track = async (store: Promise<EtcdMetadataStore>) => {
    const s = await store;
    opened.push(s);
    return s;
  };
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });

  it('lists unicode keys in UTF-8 byte order across pages', async () => {
    const store = await track(open(freshPrefix()));
    // ASCII, 2-, 3- and 4-byte sequences, a private-use character just below the surrogates' UTF-16 range, and
    // characters above it, where UTF-16 order and UTF-8 order disagree.
    const keys = ['~', 'a/b', 'a\u007f', 'ß', 'é', 'ÿ', 'Ā', '中', '\uD7FF', '\uE000', '\uFF21', '\uFFFD', '\u{10000}', '\u{1F600}', '\u{10FFFF}'];
    for (const [i, key] of [...keys].reverse().entries()) okRevision(await create(store, key, `w${i}`));
    const expected = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')));
    const paged: string[] = [];
    let after: string | null = null;
    for (;;) {
      const page = await store.listKeys('', after, 4);
      if (page.length === 0) break;
      paged.push(...page);
      after = page[page.length - 1] ?? null;
    }
    expect(paged).toEqual(expected);
    expect((await store.scan(null, 100)).map((m) => m.manifest.key)).toEqual(expected);
    expect(await store.listKeys('\u{1F600}', null, 10)).toEqual(['\u{1F600}']);
    expect(await store.listKeys('', '\uFFFD', 10)).toEqual(['\u{10000}', '\u{1F600}', '\u{10FFFF}']);
  });

  it('two gateways on one etcd see each other\'s commits at once and race fairly', async () => {
    const prefix = freshPrefix();
    const a = await track(open(prefix));
    const b = await track(open(prefix));

    const first = okRevision(await create(a, 'doc', 'w1'));
    // Read-your-writes across instances: etcd reads are linearizable, so B sees A's acknowledged commit.
    expect(await b.get('doc')).toMatchObject({ modRevision: first, manifest: { writeId: 'w1', version: String(first) } });
    const second = okRevision(await create(b, 'doc', 'w2', first));
    expect((await a.get('doc'))?.manifest.writeId).toBe('w2');
    expect(await a.listKeys('', null, 10)).toEqual(['doc']);
    expect(await a.currentRevision()).toBeGreaterThanOrEqual(second);

    // Both plan on the same revision; exactly one commit wins and the loser is shown the winner's manifest.
    const [ra, rb] = await Promise.all([create(a, 'doc', 'wa', second), create(b, 'doc', 'wb', second)]);
    const results = [ra, rb];
    const winners = results.filter((r) => r.ok);
    expect(winners).toHaveLength(1);
    const loser = results.find((r) => !r.ok);
    const winner = winners[0];
    if (winner?.ok !== true) throw new Error('one commit should win');
    expect(loser).toEqual({ ok: false, reason: 'conflict', current: { manifest: winner.manifest, modRevision: winner.modRevision } });

    // An abort record written through one gateway blocks the commit through the other.
    expect(await a.abort({ key: 'doc', writeId: 'late', expectedModRevision: winner.modRevision, nowMs: Date.now() })).toBe(true);
    expect(await create(b, 'doc', 'late', winner.modRevision)).toEqual({ ok: false, reason: 'aborted' });

    // Leadership is shared too: one leader, and a fence taken through one instance holds in the other.
    const term = await a.acquireLeadership('healer', 'A', 5_000);
    expect(term).not.toBeNull();
    expect(await b.acquireLeadership('healer', 'B', 5_000)).toBeNull();
    expect(await b.currentLeader('healer')).toBe('A');
    const fenced = await b.commit({
      key: 'doc',
      expectedModRevision: winner.modRevision,
      writeId: 'repair',
      manifest: { ...winner.manifest, dirty: false },
      assignVersion: false,
      fence: term ?? undefined,
    });
    expect(fenced).toMatchObject({ ok: true, manifest: { version: winner.manifest.version } });
    if (term !== null) await a.releaseLeadership(term);
    expect(await b.currentLeader('healer')).toBeNull();
  });

  it('a healer write keeps the version of the commit that created it while mod revisions move on', async () => {
    const store = await track(open(freshPrefix()));
    const created = await create(store, 'k', 'w1');
    if (!created.ok) throw new Error('create failed');
    let modRevision = created.modRevision;
    for (let i = 0; i < 3; i++) {
      const current = await store.get('k');
      const repaired = await store.commit({
        key: 'k',
        expectedModRevision: modRevision,
        writeId: `repair-${i}`,
        manifest: { ...(current?.manifest ?? created.manifest), dirty: i % 2 === 0 },
        assignVersion: false,
      });
      modRevision = okRevision(repaired);
    }
    const stored = await store.get('k');
    expect(stored?.modRevision).toBe(modRevision);
    expect(stored?.modRevision).toBeGreaterThan(created.modRevision);
    expect(stored?.manifest.version).toBe(String(created.modRevision));
  });

  it('reads and replays an idempotency record the previous release wrote (plain JSON), and seals what it writes', async () => {
    const prefix = freshPrefix();
    const store = await track(open(prefix));
    const response = { status: 200, body: { version: '3' }, headers: {} };
    const expiresMs = Date.now() + 600_000;
    await admin.put(`${prefix}idempotency/old-token`).value(JSON.stringify({ fingerprint: 'fp', state: 'done', response, expiresMs }));
    const claim = { token: 'old-token', fingerprint: 'fp', attemptId: 'a1', leaseUntilMs: Date.now() + 60_000, expiresAtMs: expiresMs };
    expect(await store.reserveIdempotency(claim)).toEqual({ state: 'done', fingerprint: 'fp', response, version: null });
    // An unsealed record must at least look like one.
    await admin.put(`${prefix}idempotency/junk`).value(JSON.stringify({ state: 'done' }));
    expect(codeOf(await errorOf(store.reserveIdempotency({ ...claim, token: 'junk' })))).toBe('METADATA_CORRUPT');
    expect(await store.reserveIdempotency({ ...claim, token: 'new-token' })).toBeNull();
    expect((await admin.get(`${prefix}idempotency/new-token`).string())?.startsWith('sr1 ')).toBe(true);
    await admin.delete().prefix(prefix);
  });

  it('open fails with METADATA_UNAVAILABLE naming the endpoint when nothing listens there', async () => {
    const dead = await startEtcd();
    await dead.stop();
    const started = Date.now();
    const err = await errorOf(open(freshPrefix(), { endpoints: [dead.endpoints], requestTimeoutMs: 1_000 }));
    expect(codeOf(err)).toBe('METADATA_UNAVAILABLE');
    expect((err as Error).message).toContain(dead.endpoints);
    // The configured deadline acted, not the default one (see DEFAULT_DEADLINE_MS).
    expect(Date.now() - started).toBeLessThan(DEFAULT_DEADLINE_MS);
  });

  describe('when etcd goes away', () => {
    let own: RunningEtcd | null = null;
    let dataDir = '';
    afterEach(async () => {
      await own?.stop();
      own = null;
      if (dataDir !== '') await rm(dataDir, { recursive: true, force: true });
    });

    const TIMEOUT_MS = 1_000;
    /**
     * gRPC deadlines are wall-clock time (internal/metadata/etcd-rpc.ts), so no clock can be injected here. What
     * these tests show is that the configured deadline acts and not the default one: a call must end before the
     * default deadline would have, which leaves a busy machine four seconds of slack beyond the configured one.
     */
    const WITHIN_MS = DEFAULT_DEADLINE_MS;

    it('fails with METADATA_UNAVAILABLE within the deadline while stopped and recovers without reopening', async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'strata-etcd-outage-'));
      own = await startEtcd({ dataDir });
      const { clientPort, peerPort, endpoints } = own;
      const store = await track(EtcdMetadataStore.open({ endpoints: [endpoints], prefix: 'outage/', requestTimeoutMs: TIMEOUT_MS }));
      const before = okRevision(await create(store, 'k', 'w1'));

      await own.stop();
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['get', () => store.get('k')],
        ['commit', () => create(store, 'k', 'w2', before)],
        ['listKeys', () => store.listKeys('', null, 10)],
        ['currentRevision', () => store.currentRevision()],
        ['acquireLeadership', () => store.acquireLeadership('healer', 'A', 2_000)],
      ];
      for (const [name, call] of calls) {
        const started = Date.now();
        const err = await errorOf(call());
        expect({ name, code: codeOf(err) }).toEqual({ name, code: 'METADATA_UNAVAILABLE' });
        expect((err as Error).message).toContain(endpoints);
        expect(Date.now() - started).toBeLessThan(WITHIN_MS);
      }

      own = await startEtcd({ dataDir, clientPort, peerPort });
      expect((await store.get('k'))?.modRevision).toBe(before);
      const after = okRevision(await create(store, 'k', 'w2', before));
      expect(after).toBeGreaterThan(before);
    });

    it('a commit etcd received but never answered is COMMIT_UNKNOWN, not a failure', async () => {
      own = await startEtcd();
      const store = await track(EtcdMetadataStore.open({ endpoints: [own.endpoints], prefix: 'hung/', requestTimeoutMs: TIMEOUT_MS }));
      // The connection is up, so the next request is written to etcd's socket before it freezes.
      const base = okRevision(await create(store, 'k', 'w1'));
      process.kill(own.pid, 'SIGSTOP');
      try {
        await untilStopped(own.pid);
        const started = Date.now();
        const err = await errorOf(create(store, 'k', 'w2', base));
        expect(codeOf(err)).toBe('COMMIT_UNKNOWN');
        expect(Date.now() - started).toBeLessThan(WITHIN_MS);
        // A read has nothing to be unsure about: it is simply unavailable.
        expect(codeOf(await errorOf(store.get('k')))).toBe('METADATA_UNAVAILABLE');
      } finally {
        process.kill(own.pid, 'SIGCONT');
      }
      // Whether w2 landed is exactly what was unknown; either way the store answers again.
      const now = await store.get('k');
      expect(['w1', 'w2']).toContain(now?.manifest.writeId);
    });
  });
});
