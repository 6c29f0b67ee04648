import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logicalBytes, startApi, type ApiClient, type StatBody, type WriteBody } from './support.js';

describe('POST /write', () => {
  let api: ApiClient;
  beforeAll(async () => {
    // These tests pin the sharded, uncompressed layout of cold parts (their documents are small and compressible,
    // which by default are compressed and kept with the replicas): test/api/cold-storage.test.ts covers those.
    api = await startApi({ env: { STRATA_INLINE_COLD_BYTES_MAX: '0', STRATA_COLD_COMPRESSION: 'off' } });
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  const doc = {
    id: 'user-1001',
    like_count: 42,
    view_count: 7,
    bio: 'héllo wörld 😀 中文',
    stats: { views: 10, shares: 2, history: [1, 2, 3] },
    tags: ['a', 'b'],
  };

  it('answers exactly the documented response shape', async () => {
    const body = await api.put('shape/1', doc, '&strategy=field_hybrid&hot_fields=like_count,view_count');
    expect(Object.keys(body).sort()).toEqual(
      ['bytes', 'hot_fields', 'is_pure_hot_update', 'key', 'latency_ms', 'partial', 'status', 'strategy', 'version'].sort(),
    );
    expect(body.status).toBe('ok');
    expect(body.key).toBe('shape/1');
    expect(body.version).toMatch(/^[1-9][0-9]*$/);
    expect(body.strategy).toBe('field_hybrid');
    expect(body.is_pure_hot_update).toBe(false);
    expect(body.hot_fields).toEqual(['like_count', 'view_count']);
    expect(Object.keys(body.bytes).sort()).toEqual(['cold', 'hot', 'logical']);
    expect(body.partial).toBe(false);
    expect(typeof body.latency_ms).toBe('number');
    expect(body.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('reports logical bytes as the UTF-8 bytes of the compact JSON, whatever white space was sent', async () => {
    const pretty = JSON.stringify(doc, null, 4);
    for (const strategy of ['replication', 'ec', 'field_hybrid']) {
      const body = await api.put(`logical/${strategy}`, pretty, `&strategy=${strategy}`);
      expect(body.bytes.logical).toBe(logicalBytes(doc));
      expect(body.bytes.logical).not.toBe(Buffer.byteLength(pretty));
    }
  });

  it('stores the whole document as hot bytes under replication', async () => {
    const body = await api.put('strategy/replication', doc, '&strategy=replication');
    expect(body.strategy).toBe('replication');
    expect(body.bytes).toEqual({ logical: logicalBytes(doc), hot: logicalBytes(doc), cold: 0 });
    const stat = (await (await api.stat('strategy/replication')).json()) as StatBody;
    expect(stat.hot).toHaveLength(3);
    expect(stat.cold).toHaveLength(0);
    expect(new Set(stat.hot.map((h) => h.node)).size).toBe(3);
  });

  it('stores the whole document as cold bytes under ec, in six shards on six nodes', async () => {
    const body = await api.put('strategy/ec', doc, '&strategy=ec');
    expect(body.strategy).toBe('ec');
    expect(body.bytes).toEqual({ logical: logicalBytes(doc), hot: 0, cold: logicalBytes(doc) });
    const stat = (await (await api.stat('strategy/ec')).json()) as StatBody;
    expect(stat.hot).toHaveLength(0);
    expect(stat.cold).toHaveLength(6);
    expect(new Set(stat.cold.map((s) => s.node)).size).toBe(6);
  });

  it('splits hot and cold bytes under field_hybrid so that they add up to the logical size', async () => {
    const body = await api.put('strategy/hybrid', doc, '&strategy=field_hybrid&hot_fields=like_count');
    expect(body.strategy).toBe('field_hybrid');
    expect(body.hot_fields).toEqual(['like_count']);
    expect(body.bytes.logical).toBe(logicalBytes(doc));
    expect(body.bytes.hot).toBeGreaterThan(0);
    expect(body.bytes.cold).toBeGreaterThan(0);
    expect(body.bytes.hot + body.bytes.cold).toBe(body.bytes.logical);
    const stat = (await (await api.stat('strategy/hybrid')).json()) as StatBody;
    expect(stat.hot).toHaveLength(3);
    expect(stat.cold).toHaveLength(6);
  });

  it('uses field_hybrid with the configured default hot fields when no strategy is given for a new key', async () => {
    const body = await api.put('default/new', doc);
    expect(body.strategy).toBe('field_hybrid');
    // like_count and view_count are in the configured default list (config.ts DEFAULT_HOT_FIELDS).
    expect(body.hot_fields).toEqual(['like_count', 'view_count']);
    const read = await api.read('default/new');
    expect(read.headers.get('x-strata-strategy')).toBe('field_hybrid');
  });

  it('keeps the key\'s current strategy when a later write gives none', async () => {
    for (const strategy of ['replication', 'ec'] as const) {
      const key = `sticky/${strategy}`;
      await api.put(key, doc, `&strategy=${strategy}`);
      const second = await api.put(key, { ...doc, like_count: 43 });
      expect(second.strategy).toBe(strategy);
      const read = await api.read(key);
      expect(read.headers.get('x-strata-strategy')).toBe(strategy);
      expect(await read.json()).toEqual({ ...doc, like_count: 43 });
    }
  });

  it('changes the strategy of an existing key when a later write names another one', async () => {
    await api.put('switch/1', doc, '&strategy=replication');
    const second = await api.put('switch/1', doc, '&strategy=ec');
    expect(second.strategy).toBe('ec');
    expect(second.bytes.cold).toBe(logicalBytes(doc));
    expect(await (await api.read('switch/1')).json()).toEqual(doc);
  });

  it('takes hot_fields as plain names and JSON Pointers into nested objects', async () => {
    const body = await api.put('hot/pointer', doc, '&hot_fields=like_count,/stats/views');
    expect(body.hot_fields).toEqual(['like_count', '/stats/views']);
    const stat = (await (await api.stat('hot/pointer')).json()) as StatBody;
    expect(stat.hot_fields).toEqual(['like_count', '/stats/views']);
    const hotPart = Buffer.byteLength('"like_count":42,') + Buffer.byteLength('"views":10,');
    expect(body.bytes.hot).toBe(hotPart);
    expect(await (await api.read('hot/pointer')).json()).toEqual(doc);
  });

  it('reads %2C inside a hot field name as part of the name, not as a separator', async () => {
    const withComma = { 'a,b': 1, c: 2, d: 'cold' };
    const body = await api.put('hot/comma', withComma, `&hot_fields=${encodeURIComponent('a,b')},c`);
    expect(body.hot_fields).toEqual(['a,b', 'c']);
    expect(body.bytes.hot).toBe(Buffer.byteLength('"a,b":1,"c":2,'));
    expect(await (await api.read('hot/comma')).text()).toBe(JSON.stringify(withComma));
  });

  it('escapes ~ and / in hot field names given as pointers', async () => {
    const odd = { 'a/b': 1, 'm~n': 2, rest: 'x' };
    const body = await api.put('hot/escaped', odd, `&hot_fields=${encodeURIComponent('/a~1b')},${encodeURIComponent('/m~0n')}`);
    expect(body.bytes.hot).toBe(Buffer.byteLength('"a/b":1,"m~n":2,'));
    expect(body.hot_fields).toEqual(['a/b', 'm~n']);
    expect(await (await api.read('hot/escaped')).text()).toBe(JSON.stringify(odd));
  });

  it('leaves out of hot_fields a requested field the document does not have', async () => {
    const body = await api.put('hot/absent', { like_count: 1, other: 2 }, '&hot_fields=like_count,missing_field');
    expect(body.hot_fields).toEqual(['like_count']);
  });

  it('round-trips a 2 MiB document under every strategy', async () => {
    const big = {
      like_count: 1,
      blob: 'b'.repeat(1024 * 1024),
      rows: Array.from({ length: 20_000 }, (_, i) => ({ i, s: `r${i}` })),
    };
    const text = JSON.stringify(big);
    for (const strategy of ['replication', 'ec', 'field_hybrid']) {
      const body = await api.put(`big/${strategy}`, text, `&strategy=${strategy}&hot_fields=like_count`);
      expect(body.bytes.logical).toBe(Buffer.byteLength(text));
      expect(await (await api.read(`big/${strategy}`)).text()).toBe(text);
    }
  });

  describe('field_hybrid documents whose hot members sit in awkward places', () => {
    const cases: [string, string, string][] = [
      ['only hot members', '{"like_count":1,"view_count":2}', 'like_count,view_count'],
      ['a hot member as the only member of a nested object', '{"a":1,"stats":{"views":5},"z":2}', '/stats/views'],
      ['hot members first, last and between cold ones', '{"h1":1,"c1":2,"h2":3,"c2":4,"h3":5}', 'h1,h2,h3'],
      ['a hot object holding a hot-listed descendant', '{"stats":{"views":{"n":1},"x":[1]},"c":0}', 'stats,/stats/views'],
      ['hot members in several nested objects', '{"a":{"b":{"c":1,"d":2},"e":3},"f":{"g":4}}', '/a/b/c,/a/e,/f/g'],
      ['hot values of every JSON type', '{"s":"str","n":-1.50e+3,"t":true,"f":false,"z":null,"o":{},"a":[],"c":"cold"}', 's,n,t,f,z,o,a'],
      ['member names needing escapes', '{"q\\"uote":1,"new\\nline":2,"é":3,"😀":4,"c":5}', `${encodeURIComponent('q"uote')},${encodeURIComponent('new\nline')},é,😀`],
      ['an empty member name beside a hot one', '{"":1,"like_count":2,"c":{"":3}}', 'like_count'],
    ];
    for (const [what, text, hot] of cases) {
      it(`reads back ${what} exactly, before and after a hot-only patch`, async () => {
        const key = `split/${what}`;
        const body = await api.put(key, text, `&strategy=field_hybrid&hot_fields=${hot}`);
        expect(body.bytes.logical).toBe(Buffer.byteLength(text));
        expect(body.bytes.hot + body.bytes.cold).toBe(body.bytes.logical);
        expect(await (await api.read(key)).text()).toBe(text);
        // Rewriting the same text with other white space is a pure hot update of identical bytes.
        const again = await api.put(key, text.replace(/,/g, ' , '), `&strategy=field_hybrid&hot_fields=${hot}`);
        expect(again.is_pure_hot_update).toBe(true);
        expect(await (await api.read(key)).text()).toBe(text);
      });
    }
  });

  it('stores the empty object', async () => {
    for (const strategy of ['replication', 'ec', 'field_hybrid']) {
      const body = await api.put(`empty/${strategy}`, {}, `&strategy=${strategy}`);
      expect(body.bytes.logical).toBe(2);
      const read = await api.read(`empty/${strategy}`);
      expect(read.status).toBe(200);
      expect(await read.text()).toBe('{}');
    }
  });

  it('accepts Content-Type application/json with a charset parameter', async () => {
    const res = await api.write('ct/charset', doc, '', { 'content-type': 'application/json; charset=utf-8' });
    expect(res.status).toBe(200);
    const res2 = await api.write('ct/charset', doc, '', { 'content-type': 'Application/JSON;charset=UTF-8' });
    expect(res2.status).toBe(200);
  });

  it('is a pure hot update when only hot fields change, keeping the cold shards', async () => {
    const first = await api.put('pure/1', doc, '&hot_fields=like_count');
    const before = (await (await api.stat('pure/1')).json()) as StatBody;
    // Same hot fields as the first write (without them the configured default list would apply).
    const second = await api.put('pure/1', JSON.stringify({ ...doc, like_count: 43 }, null, 2), '&hot_fields=like_count');
    expect(second.is_pure_hot_update).toBe(true);
    expect(BigInt(second.version)).toBeGreaterThan(BigInt(first.version));
    const after = (await (await api.stat('pure/1')).json()) as StatBody;
    expect(after.cold.map((s) => s.blob)).toEqual(before.cold.map((s) => s.blob));
    expect(after.cold_hash).toBe(before.cold_hash);
    const third = await api.put('pure/1', { ...doc, like_count: 44, bio: 'changed' }, '&hot_fields=like_count');
    expect(third.is_pure_hot_update).toBe(false);
    const last = (await (await api.stat('pure/1')).json()) as StatBody;
    expect(last.cold.map((s) => s.blob)).not.toEqual(before.cold.map((s) => s.blob));
  });

  describe('versions', () => {
    it('are decimal strings that strictly increase per key', async () => {
      const versions: bigint[] = [];
      for (let i = 0; i < 5; i++) {
        const body: WriteBody = await api.put('versions/inc', { n: i });
        expect(body.version).toMatch(/^[1-9][0-9]*$/);
        versions.push(BigInt(body.version));
      }
      for (let i = 1; i < versions.length; i++) expect(versions[i]!).toBeGreaterThan(versions[i - 1]!);
    });

    it('come from one cluster-wide counter: no two writes to different keys share a version', async () => {
      const results = await Promise.all(Array.from({ length: 12 }, (_, i) => api.put(`versions/many/${i}`, { i })));
      expect(new Set(results.map((r) => r.version)).size).toBe(12);
    });

    it('never repeat across delete and re-create', async () => {
      const seen: bigint[] = [];
      for (let round = 0; round < 3; round++) {
        const written = await api.put('versions/recreate', { round });
        seen.push(BigInt(written.version));
        const del = await api.delete('versions/recreate');
        expect(del.status).toBe(200);
        seen.push(BigInt(((await del.json()) as { version: string }).version));
      }
      for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeGreaterThan(seen[i - 1]!);
    });

    it('are answered in ETag and X-Strata-Version', async () => {
      const res = await api.write('versions/headers', { a: 1 });
      const body = (await res.json()) as WriteBody;
      expect(res.headers.get('etag')).toBe(`"${body.version}"`);
      expect(res.headers.get('x-strata-version')).toBe(body.version);
    });
  });
});
