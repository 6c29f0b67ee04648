/**
 * Concurrency across gateways on the local cluster (separate gateway processes on one etcd): many clients
 * writing, patching and deleting the same few keys through different gateways and through nginx.
 *
 * What api.md and architecture.md promise, and what each test proves:
 * - no lost update: counters incremented with read-then-conditional-write loops (If-Match writes, If-Match merge
 *   patches, JSON Patch `test` ops) end at exactly the number of acknowledged increments;
 * - versions strictly increase per key, and in the order of the commits they name (a counter value acknowledged
 *   later in the key's history has a greater version);
 * - `If-None-Match: *` and `If-Match` decide races exactly: one winner, every other attempt 412 with the right code;
 * - writes and deletes racing end in the state of the acknowledged operation with the greatest version;
 * - a request retried with the same Idempotency-Key through another gateway, even while the first attempt is
 *   still running, is applied once and every attempt learns the same outcome.
 */
import { describe, expect, it } from 'vitest';
import { waitForValue } from '../helpers/wait.js';
import { request, useLocalCluster, type Answer } from './cluster-support.js';

/** Retries of one increment before the test gives up on it (each lost race costs one read and one write). */
const INCREMENT_ATTEMPTS_MAX = 200;

describe('concurrent clients through different gateways', () => {
  const cluster = useLocalCluster('concurrency');

  /** The entry points a client can use: every gateway directly, and nginx in front of them. */
  function entries(): string[] {
    return [...cluster().gateways.map((g) => g.address!), cluster().url];
  }

  function post(base: string, key: string, doc: unknown, headers: Record<string, string> = {}, query = ''): Promise<Answer> {
    return request(base, `/write?key=${encodeURIComponent(key)}${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(doc),
    });
  }

  function patch(base: string, key: string, mediaType: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
    return request(base, `/patch/${encodeURIComponent(key)}`, {
      method: 'PATCH',
      headers: { 'content-type': mediaType, ...headers },
      body: JSON.stringify(body),
    });
  }

  function del(base: string, key: string, headers: Record<string, string> = {}): Promise<Answer> {
    return request(base, `/delete/${encodeURIComponent(key)}`, { method: 'DELETE', headers });
  }

  async function readCount(base: string, key: string): Promise<{ count: number; version: string }> {
    const read = await request(base, `/read/${encodeURIComponent(key)}`);
    expect(read.status, read.text).toBe(200);
    return { count: (read.json as { count: number }).count, version: read.headers.get('x-strata-version')! };
  }

  /** 503s here are the gateway's "changed nothing, retry" (a commit race lost too often, a slow node). */
  function isRetryable(answer: Answer): boolean {
    return answer.status === 503;
  }

  it('loses no increment when clients race If-Match writes, If-Match merge patches and JSON Patch test ops', async () => {
    const keys = ['counter/a', 'counter/b', 'counter/c'];
    const strategies = ['replication', 'ec', 'field_hybrid'];
    for (const [i, key] of keys.entries()) {
      const created = await post(cluster().url, key, { count: 0, body: 'c'.repeat(3000) }, {}, `&strategy=${strategies[i]}&hot_fields=count`);
      expect(created.status, created.text).toBe(200);
    }
    const clients = 6;
    const incrementsPerKey = 5;
    /** Every acknowledged increment: the counter value it wrote and the version the commit got. */
    const acked = new Map<string, { value: number; version: bigint; client: number }[]>(keys.map((k) => [k, []]));
    let lostRaces = 0;

    async function increment(client: number, key: string, op: number): Promise<void> {
      const method = (client + op) % 3;
      for (let attempt = 0; attempt < INCREMENT_ATTEMPTS_MAX; attempt++) {
        const base = entries()[(client + op + attempt) % entries().length]!;
        const { count, version } = await readCount(base, key);
        const other = entries()[(client + op + attempt + 1) % entries().length]!;
        let answer: Answer;
        if (method === 0) {
          answer = await post(other, key, { count: count + 1, body: 'c'.repeat(3000) }, { 'if-match': `"${version}"` });
        } else if (method === 1) {
          answer = await patch(other, key, 'application/merge-patch+json', { count: count + 1 }, { 'if-match': `"${version}"` });
        } else {
          answer = await patch(other, key, 'application/json-patch+json', [
            { op: 'test', path: '/count', value: count },
            { op: 'replace', path: '/count', value: count + 1 },
          ]);
        }
        if (answer.status === 200) {
          acked.get(key)!.push({ value: count + 1, version: BigInt(answer.json.version), client });
          return;
        }
        // The only acceptable ways to lose: the precondition the api.md defines for each method.
        if (method === 2) expect([422, 503], answer.text).toContain(answer.status);
        else expect([412, 503], answer.text).toContain(answer.status);
        if (answer.status === 422) expect(answer.json.error.code).toBe('PATCH_FAILED');
        if (answer.status === 412) expect(answer.json.error.code).toBe('VERSION_MISMATCH');
        if (!isRetryable(answer)) lostRaces++;
      }
      throw new Error(`client ${client}: increment ${op} of ${key} lost ${INCREMENT_ATTEMPTS_MAX} races in a row`);
    }

    await Promise.all(
      Array.from({ length: clients }, async (_, client) => {
        for (let op = 0; op < incrementsPerKey; op++) {
          await Promise.all(keys.map((key) => increment(client, key, op)));
        }
      }),
    );

    for (const key of keys) {
      const history = acked.get(key)!;
      expect(history.length).toBe(clients * incrementsPerKey);
      // Each value was acknowledged exactly once (two winners of one value would be a lost update)...
      expect(history.map((h) => h.value).sort((a, b) => a - b)).toEqual(Array.from({ length: history.length }, (_, i) => i + 1));
      // ...and versions follow the values: the commit that wrote n+1 came after the one that wrote n.
      const byValue = [...history].sort((a, b) => a.value - b.value);
      for (let i = 1; i < byValue.length; i++) expect(byValue[i]!.version > byValue[i - 1]!.version, `${key}: versions follow counter values`).toBe(true);
      // Every gateway reads the final count with the greatest acknowledged version.
      for (const base of entries()) {
        const final = await readCount(base, key);
        expect(final.count).toBe(clients * incrementsPerKey);
        expect(BigInt(final.version)).toBe(byValue[byValue.length - 1]!.version);
      }
    }
    expect(lostRaces, 'the clients really raced').toBeGreaterThan(0);
  }, 180_000);

  it('lets exactly one of many concurrent If-None-Match: * creates win, also after a delete', async () => {
    for (let round = 0; round < 5; round++) {
      const key = `create-race/${round}`;
      for (const phase of ['fresh', 'after delete']) {
        const answers = await Promise.all(
          Array.from({ length: 8 }, (_, i) => post(entries()[i % entries().length]!, key, { by: i, like_count: i }, { 'if-none-match': '*' })),
        );
        const winners = answers.filter((a) => a.status === 200);
        expect(winners.length, `${key} (${phase}): ${answers.map((a) => a.status).join(',')}`).toBe(1);
        for (const loser of answers.filter((a) => a.status !== 200)) {
          expect(loser.status, loser.text).toBe(412);
          expect(loser.json.error.code).toBe('ALREADY_EXISTS');
        }
        const winner = answers.indexOf(winners[0]!);
        for (const base of entries()) {
          const read = await request(base, `/read/${encodeURIComponent(key)}`);
          expect(read.json).toEqual({ by: winner, like_count: winner });
          expect(read.headers.get('x-strata-version')).toBe(winners[0]!.json.version);
        }
        if (phase === 'fresh') expect((await del(cluster().url, key)).status).toBe(200);
      }
    }
  });

  it('lets exactly one of many concurrent If-Match writes, patches or deletes of one version win', async () => {
    const key = 'match-race/doc';
    let version = (await post(cluster().url, key, { like_count: 0, text: 'x'.repeat(2000) })).json.version as string;
    for (let round = 0; round < 4; round++) {
      const ifMatch = { 'if-match': `"${version}"` };
      const answers = await Promise.all(
        Array.from({ length: 8 }, (_, i) => {
          const base = entries()[i % entries().length]!;
          return i % 2 === 0
            ? post(base, key, { like_count: round * 100 + i, text: 'x'.repeat(2000) }, ifMatch)
            : patch(base, key, 'application/merge-patch+json', { like_count: round * 100 + i }, ifMatch);
        }),
      );
      const winners = answers.filter((a) => a.status === 200);
      expect(winners.length, answers.map((a) => a.status).join(',')).toBe(1);
      for (const loser of answers.filter((a) => a.status !== 200)) {
        expect(loser.status, loser.text).toBe(412);
        expect(loser.json.error.code).toBe('VERSION_MISMATCH');
      }
      expect(BigInt(winners[0]!.json.version) > BigInt(version)).toBe(true);
      version = winners[0]!.json.version;
      const read = await request(cluster().url, `/read/${encodeURIComponent(key)}`);
      expect(read.json.like_count).toBe(round * 100 + answers.indexOf(winners[0]!));
    }
    // Deletes of one version: one wins; afterwards every conditional request on the deleted key is 412.
    const deletes = await Promise.all(entries().map((base) => del(base, key, { 'if-match': `"${version}"` })));
    expect(deletes.filter((a) => a.status === 200).length, deletes.map((a) => a.text).join('\n')).toBe(1);
    for (const loser of deletes.filter((a) => a.status !== 200)) expect(loser.json.error.code).toBe('VERSION_MISMATCH');
    const late = await post(entries()[0]!, key, { like_count: -1 }, { 'if-match': `"${version}"` });
    expect(late.status).toBe(412);
    expect(late.json.error.code).toBe('VERSION_MISMATCH');
    expect((await request(cluster().url, `/read/${encodeURIComponent(key)}`)).status).toBe(404);
  });

  it('ends racing writes and deletes in the state of the acknowledged operation with the greatest version', async () => {
    const keys = ['mixed/0', 'mixed/1', 'mixed/2'];
    interface Acked {
      key: string;
      version: bigint;
      doc: unknown | null;
    }
    const acked: Acked[] = [];
    const versionsByClient = new Map<string, bigint[]>();
    await Promise.all(
      Array.from({ length: 6 }, async (_, client) => {
        for (let op = 0; op < 12; op++) {
          const key = keys[(client + op) % keys.length]!;
          const base = entries()[(client * 7 + op) % entries().length]!;
          const doc = { like_count: op, client, text: `client ${client} op ${op} `.repeat(50) };
          const answer = op % 4 === 3 ? await del(base, key) : await post(base, key, doc, {}, `&strategy=${['replication', 'ec', 'field_hybrid'][op % 3]}`);
          if (answer.status === 404) continue; // a delete of a key another client had just deleted
          expect(answer.status, answer.text).toBe(200);
          const version = BigInt(answer.json.version);
          acked.push({ key, version, doc: op % 4 === 3 ? null : doc });
          const seen = versionsByClient.get(`${client}/${key}`) ?? [];
          // One client's operations on a key are sequential: each commits after the previous, so its version is greater.
          if (seen.length > 0) expect(version > seen[seen.length - 1]!).toBe(true);
          versionsByClient.set(`${client}/${key}`, [...seen, version]);
        }
      }),
    );
    for (const key of keys) {
      const ops = acked.filter((a) => a.key === key).sort((a, b) => (a.version < b.version ? -1 : 1));
      expect(new Set(ops.map((o) => o.version)).size, 'no version is given twice').toBe(ops.length);
      const last = ops[ops.length - 1]!;
      for (const base of entries()) {
        const read = await request(base, `/read/${encodeURIComponent(key)}`);
        if (last.doc === null) {
          expect(read.status, `${key}: deleted last`).toBe(404);
        } else {
          expect(read.status, read.text).toBe(200);
          expect(read.json).toEqual(last.doc);
          expect(BigInt(read.headers.get('x-strata-version')!)).toBe(last.version);
        }
      }
    }
  });

  it('applies a request retried with the same Idempotency-Key through another gateway once, even when the retry races the first attempt', async () => {
    const key = 'idem/list';
    expect((await post(cluster().url, key, { items: [], like_count: 0 })).status).toBe(200);
    const append = (base: string, token: string, item: string): Promise<Answer> =>
      patch(base, key, 'application/json-patch+json', [{ op: 'add', path: '/items/-', value: item }], { 'idempotency-key': token });

    // A retry after the first attempt finished, through another gateway: the first outcome is replayed.
    const first = await append(entries()[0]!, 'tok-sequential', 'sequential');
    expect(first.status, first.text).toBe(200);
    const retry = await append(entries()[1]!, 'tok-sequential', 'sequential');
    expect(retry.status).toBe(200);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(retry.json.version).toBe(first.json.version);

    // Retries racing the first attempt: every gateway gets the same request at once, for several tokens at once.
    const tokens = Array.from({ length: 8 }, (_, i) => `tok-race-${i}`);
    const outcomes = await Promise.all(
      tokens.map(async (token) => {
        const answers = await Promise.all(entries().map((base) => settleInProgress(() => append(base, token, token))));
        return { token, answers };
      }),
    );
    for (const { token, answers } of outcomes) {
      for (const a of answers) expect(a.status, `${token}: ${a.text}`).toBe(200);
      expect(new Set(answers.map((a) => a.json.version)).size, `${token}: every attempt learns one outcome`).toBe(1);
      expect(answers.filter((a) => a.headers.get('idempotent-replayed') !== 'true').length, `${token}: applied by one attempt`).toBe(1);
    }
    const read = await request(cluster().url, `/read/${encodeURIComponent(key)}`);
    const items = (read.json as { items: string[] }).items;
    expect([...items].sort()).toEqual(['sequential', ...tokens].sort());

    // A delete retried through another gateway replays its 200, not a 404.
    const deleted = await del(entries()[2]!, key, { 'idempotency-key': 'tok-delete' });
    expect(deleted.status).toBe(200);
    const again = await del(entries()[0]!, key, { 'idempotency-key': 'tok-delete' });
    expect(again.status, again.text).toBe(200);
    expect(again.json.version).toBe(deleted.json.version);
    // The same token on a different request is refused, not replayed.
    const reused = await post(entries()[1]!, key, { items: ['other'] }, { 'idempotency-key': 'tok-delete' });
    expect(reused.status).toBe(422);
    expect(reused.json.error.code).toBe('IDEMPOTENCY_KEY_REUSED');
  });

  /** Repeats a request that answered 409 IDEMPOTENCY_IN_PROGRESS (the first attempt is still running). */
  async function settleInProgress(send: () => Promise<Answer>): Promise<Answer> {
    return waitForValue('the first attempt to finish (no more IDEMPOTENCY_IN_PROGRESS)', async () => {
      const answer = await send();
      if (answer.status !== 409) return answer;
      expect(answer.json.error.code).toBe('IDEMPOTENCY_IN_PROGRESS');
      return null;
    });
  }
});
