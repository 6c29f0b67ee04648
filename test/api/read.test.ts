import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, quoted, startApi, type ApiClient, type WriteBody } from './support.js';

describe('GET /read/:key', () => {
  let api: ApiClient;
  const doc = {
    id: 12345678901234567890,
    like_count: 42,
    view_count: 7,
    title: 'a title',
    stats: { views: 10, shares: 2, deep: { x: 1, y: [1, 2] } },
    tags: ['t1', 't2'],
  };
  const docText =
    '{"id":12345678901234567890,"like_count":42,"view_count":7,"title":"a title","stats":{"views":10,"shares":2,"deep":{"x":1,"y":[1,2]}},"tags":["t1","t2"]}';
  const versions: Record<string, string> = {};

  beforeAll(async () => {
    api = await startApi();
    for (const strategy of ['replication', 'ec', 'field_hybrid']) {
      const body: WriteBody = await api.put(`doc/${strategy}`, docText, `&strategy=${strategy}&hot_fields=like_count,/stats/views`);
      versions[strategy] = body.version;
    }
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  for (const strategy of ['replication', 'ec', 'field_hybrid']) {
    it(`answers the document itself, unwrapped, with ETag, X-Strata-Version and X-Strata-Strategy (${strategy})`, async () => {
      const res = await api.read(`doc/${strategy}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.text()).toBe(docText);
      expect(res.headers.get('etag')).toBe(`"${versions[strategy]}"`);
      expect(res.headers.get('x-strata-version')).toBe(versions[strategy]);
      expect(res.headers.get('x-strata-strategy')).toBe(strategy);
    });
  }

  it('reads back a document written with white space in its compact form', async () => {
    await api.put('doc/pretty', JSON.stringify(doc, null, 2).replace('12345678901234567000', '12345678901234567890'));
    expect(await (await api.read('doc/pretty')).text()).toBe(docText);
  });

  describe('fields= projection', () => {
    it('answers only the requested fields, in the order requested, with a weak ETag', async () => {
      const res = await api.read('doc/field_hybrid', '?fields=title,like_count');
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('{"title":"a title","like_count":42}');
      expect(res.headers.get('etag')).toBe(`W/"${versions['field_hybrid']}"`);
      expect(res.headers.get('x-strata-version')).toBe(versions['field_hybrid']);
      expect(res.headers.get('x-strata-strategy')).toBe('field_hybrid');
    });

    it('leaves absent fields out', async () => {
      const res = await api.read('doc/ec', '?fields=like_count,nope,/stats/nope,/nope/deeper');
      expect(await res.text()).toBe('{"like_count":42}');
    });

    it('answers {} when no requested field exists', async () => {
      const res = await api.read('doc/replication', '?fields=nope');
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('{}');
    });

    it('rebuilds nested objects for JSON Pointers', async () => {
      for (const strategy of ['replication', 'ec', 'field_hybrid']) {
        const res = await api.read(`doc/${strategy}`, `?fields=${encodeURIComponent('/stats/views')},/stats/deep/y`);
        expect(await res.text()).toBe('{"stats":{"views":10,"deep":{"y":[1,2]}}}');
      }
    });

    it('carries a field below another requested field with its ancestor', async () => {
      const res = await api.read('doc/field_hybrid', '?fields=/stats/views,stats');
      expect(await res.json()).toEqual({ stats: doc.stats });
    });

    it('says X-Strata-Cold-Read: 0 when only hot fields of a field_hybrid document were asked', async () => {
      const res = await api.read('doc/field_hybrid', '?fields=like_count,/stats/views');
      expect(await res.text()).toBe('{"like_count":42,"stats":{"views":10}}');
      expect(res.headers.get('x-strata-cold-read')).toBe('0');
    });

    it('says X-Strata-Cold-Read: 1 when a cold field of a field_hybrid document was asked', async () => {
      const res = await api.read('doc/field_hybrid', '?fields=like_count,title');
      expect(await res.text()).toBe('{"like_count":42,"title":"a title"}');
      expect(res.headers.get('x-strata-cold-read')).toBe('1');
    });

    it('says X-Strata-Cold-Read: 1 for a whole field_hybrid or ec document', async () => {
      expect((await api.read('doc/field_hybrid')).headers.get('x-strata-cold-read')).toBe('1');
      expect((await api.read('doc/ec')).headers.get('x-strata-cold-read')).toBe('1');
      expect((await api.read('doc/ec', '?fields=like_count')).headers.get('x-strata-cold-read')).toBe('1');
    });

    it('says X-Strata-Cold-Read: 0 for a replicated document, which has no cold tier', async () => {
      expect((await api.read('doc/replication')).headers.get('x-strata-cold-read')).toBe('0');
      expect((await api.read('doc/replication', '?fields=title')).headers.get('x-strata-cold-read')).toBe('0');
    });

    it('reads the cold tier for an ancestor of a hot field and answers it whole', async () => {
      const res = await api.read('doc/field_hybrid', '?fields=stats');
      expect(await res.text()).toBe('{"stats":{"views":10,"shares":2,"deep":{"x":1,"y":[1,2]}}}');
      expect(res.headers.get('x-strata-cold-read')).toBe('1');
    });

    it('answers a field below a hot scalar as absent without reading the cold tier', async () => {
      const res = await api.read('doc/field_hybrid', '?fields=/like_count/below');
      expect(await res.text()).toBe('{}');
      expect(res.headers.get('x-strata-cold-read')).toBe('0');
    });

    it('does not descend into arrays: a pointer through an array is absent', async () => {
      const res = await api.read('doc/ec', '?fields=/tags/0');
      expect(await res.text()).toBe('{}');
    });

    it('reads %2C inside a field name as part of the name', async () => {
      await api.put('doc/comma', { 'a,b': 1, a: 2, b: 3 });
      const res = await api.read('doc/comma', `?fields=${encodeURIComponent('a,b')}`);
      expect(await res.text()).toBe('{"a,b":1}');
    });

    it('refuses an invalid field list with 400 INVALID_FIELDS', async () => {
      for (const fields of ['a,,b', '/', '%2Fa~2', 'a,']) {
        await expectError(await api.read('doc/field_hybrid', `?fields=${fields}`), 400, 'INVALID_FIELDS');
      }
    });
  });

  describe('If-None-Match', () => {
    it('answers 304 without a body when the version is current', async () => {
      const res = await api.read('doc/ec', '', { 'if-none-match': quoted(versions['ec']!) });
      expect(res.status).toBe(304);
      expect(await res.text()).toBe('');
      expect(res.headers.get('etag')).toBe(`"${versions['ec']}"`);
    });

    it('answers 200 with the document when the version is another one', async () => {
      const res = await api.read('doc/ec', '', { 'if-none-match': '"1"' });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe(docText);
    });

    it('answers 200 once the document changed since the ETag was taken', async () => {
      const first = await api.put('doc/changing', { v: 1 });
      expect((await api.read('doc/changing', '', { 'if-none-match': quoted(first.version) })).status).toBe(304);
      await api.put('doc/changing', { v: 2 });
      const res = await api.read('doc/changing', '', { 'if-none-match': quoted(first.version) });
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ v: 2 });
    });

    it('answers 304 when the current version is anywhere in an If-None-Match list', async () => {
      const current = versions['ec']!;
      for (const header of [`"999999", "${current}"`, `W/"999999", W/"${current}"`, `"${current}","999999"`, '*']) {
        const res = await api.read('doc/ec', '', { 'if-none-match': header });
        expect(res.status, header).toBe(304);
      }
      expect((await api.read('doc/ec', '', { 'if-none-match': '"999999", "999998"' })).status).toBe(200);
    });

    it('answers 304 for a projection whose weak ETag is current', async () => {
      const res = await api.read('doc/field_hybrid', '?fields=like_count', { 'if-none-match': `W/"${versions['field_hybrid']}"` });
      expect(res.status).toBe(304);
    });
  });

  describe('404 NOT_FOUND', () => {
    it('answers 404 NOT_FOUND for a key never written', async () => {
      await expectError(await api.read('never/written'), 404, 'NOT_FOUND');
      await expectError(await api.read('never/written', '?fields=a'), 404, 'NOT_FOUND');
    });

    it('answers 404 NOT_FOUND for a deleted key, also with If-None-Match of its old version', async () => {
      const written = await api.put('read/deleted', { a: 1 });
      expect((await api.delete('read/deleted')).status).toBe(200);
      await expectError(await api.read('read/deleted'), 404, 'NOT_FOUND');
      await expectError(await api.read('read/deleted', '', { 'if-none-match': quoted(written.version) }), 404, 'NOT_FOUND');
    });
  });

  it('answers HEAD with the headers of a read and no body', async () => {
    const res = await api.fetch(`/read/${encodeURIComponent('doc/ec')}`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(res.headers.get('etag')).toBe(`"${versions['ec']}"`);
    expect(await res.text()).toBe('');
  });
});
