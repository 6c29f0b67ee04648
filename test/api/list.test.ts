import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startApi, type ApiClient } from './support.js';

interface ListBody {
  keys: string[];
  next_cursor: string | null;
}

/** Keys whose UTF-8 byte order differs from UTF-16 code unit order and from locale order. */
const ORDER_KEYS = ['a', 'b', 'Z', 'é', '中', '😀', '\ufb00', 'A', 'a b', 'a/b', 'a%', 'aa', '~', 'z'].map((k) => `order/${k}`);
const BIG_PREFIX = 'many/';
const BIG_COUNT = 120;

function utf8Sorted(keys: readonly string[]): string[] {
  return [...keys].sort((x, y) => Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8')));
}

describe('GET /list', () => {
  let api: ApiClient;
  const bigKeys = Array.from({ length: BIG_COUNT }, (_, i) => `${BIG_PREFIX}${String(i).padStart(4, '0')}`);

  beforeAll(async () => {
    api = await startApi();
    for (const key of ORDER_KEYS) await api.put(key, { k: key }, '&strategy=replication');
    for (let i = 0; i < bigKeys.length; i += 20) {
      await Promise.all(bigKeys.slice(i, i + 20).map((k) => api.put(k, { k }, '&strategy=replication')));
    }
    await api.put('other/1', { a: 1 }, '&strategy=replication');
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  async function list(query: string): Promise<ListBody> {
    const res = await api.list(query);
    const body = (await res.json()) as ListBody;
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(Object.keys(body).sort()).toEqual(['keys', 'next_cursor']);
    return body;
  }

  it('orders keys by their UTF-8 bytes', async () => {
    const body = await list(`prefix=${encodeURIComponent('order/')}&limit=1000`);
    expect(body.keys).toEqual(utf8Sorted(ORDER_KEYS));
    // Spelled out, so the expectation does not rest on the helper alone.
    const tail = body.keys.map((k) => k.slice('order/'.length));
    expect(tail.indexOf('Z')).toBeLessThan(tail.indexOf('a'));
    expect(tail.indexOf('z')).toBeLessThan(tail.indexOf('é'));
    expect(tail.indexOf('é')).toBeLessThan(tail.indexOf('中'));
    expect(tail.indexOf('\ufb00')).toBeLessThan(tail.indexOf('😀')); // UTF-16 order would put the emoji first
    expect(body.next_cursor).toBeNull();
  });

  it('filters by prefix, including a prefix with non-ASCII characters', async () => {
    expect((await list(`prefix=${encodeURIComponent('order/a')}`)).keys).toEqual(utf8Sorted(ORDER_KEYS.filter((k) => k.startsWith('order/a'))));
    expect((await list(`prefix=${encodeURIComponent('order/中')}`)).keys).toEqual(['order/中']);
    expect((await list(`prefix=${encodeURIComponent('nothing-here/')}`)).keys).toEqual([]);
    expect((await list('prefix=other%2F')).keys).toEqual(['other/1']);
  });

  it('lists every key in order without a prefix', async () => {
    const body = await list('limit=1000');
    expect(body.keys).toEqual(utf8Sorted([...ORDER_KEYS, ...bigKeys, 'other/1']));
  });

  it('answers 100 keys by default', async () => {
    const body = await list(`prefix=${BIG_PREFIX}`);
    expect(body.keys).toHaveLength(100);
    expect(body.keys).toEqual(bigKeys.slice(0, 100));
    expect(body.next_cursor).toEqual(expect.any(String));
  });

  it('accepts limit 1 and limit 1000', async () => {
    const one = await list(`prefix=${BIG_PREFIX}&limit=1`);
    expect(one.keys).toEqual([bigKeys[0]]);
    expect(one.next_cursor).not.toBeNull();
    const all = await list(`prefix=${BIG_PREFIX}&limit=1000`);
    expect(all.keys).toEqual(bigKeys);
    expect(all.next_cursor).toBeNull();
  });

  it('pages with next_cursor until null, covering every key exactly once', async () => {
    for (const limit of [1, 7, 60, 119, 120]) {
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const body: ListBody = await list(`prefix=${BIG_PREFIX}&limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        expect(body.keys.length).toBeLessThanOrEqual(limit);
        seen.push(...body.keys);
        cursor = body.next_cursor;
        expect(++pages).toBeLessThanOrEqual(BIG_COUNT + 1);
      } while (cursor !== null);
      expect(seen).toEqual(bigKeys);
    }
  });

  it('pages through keys in UTF-8 order across non-ASCII keys', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const body: ListBody = await list(`prefix=order%2F&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      seen.push(...body.keys);
      cursor = body.next_cursor;
    } while (cursor !== null);
    expect(seen).toEqual(utf8Sorted(ORDER_KEYS));
  });

  it('does not list a key that was deleted between pages', async () => {
    const first = await list(`prefix=${BIG_PREFIX}&limit=10`);
    await api.put(`${BIG_PREFIX}0050`, { k: 'again' }, '&strategy=replication');
    expect((await api.delete(`${BIG_PREFIX}0050`)).status).toBe(200);
    const rest = await list(`prefix=${BIG_PREFIX}&limit=1000&cursor=${first.next_cursor}`);
    expect(rest.keys).not.toContain(`${BIG_PREFIX}0050`);
    expect(rest.keys).toHaveLength(BIG_COUNT - 10 - 1);
    await api.put(`${BIG_PREFIX}0050`, { k: `${BIG_PREFIX}0050` }, '&strategy=replication');
  });

  for (const limit of ['0', '1001', 'x', '-1', '1.5', '', '1e2', '%20']) {
    it(`answers 400 INVALID_LIMIT for limit=${JSON.stringify(limit)}`, async () => {
      const error = await expectError(await api.list(`limit=${limit}`), 400, 'INVALID_LIMIT');
      expect(error.message).toMatch(/1.*1000/);
    });
  }

  for (const cursor of ['!!!', 'a.b', 'AB=', '_w' /* 0xFF: not UTF-8 */, 'x'.repeat(3000)]) {
    it(`answers 400 INVALID_CURSOR for cursor=${JSON.stringify(cursor.slice(0, 20))}`, async () => {
      await expectError(await api.list(`cursor=${encodeURIComponent(cursor)}`), 400, 'INVALID_CURSOR');
    });
  }

  it('answers 400 INVALID_CURSOR for a cursor issued for another prefix', async () => {
    const page = await list('prefix=order%2F&limit=2');
    await expectError(await api.list(`prefix=${BIG_PREFIX}&cursor=${page.next_cursor}`), 400, 'INVALID_CURSOR');
  });
});
