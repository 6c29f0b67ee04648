import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, rawRequest, startApi, type ApiClient, type StatBody, type WriteBody } from './support.js';

/** Keys that must survive URL-encoding in a query (?key=) and in a path (/read/<key>) unchanged. */
const SPECIAL_KEYS = [
  'héllo wörld',
  '中文/键',
  '😀 emoji 🎉',
  'with space',
  '  leading and trailing spaces  ',
  'a/b/c',
  '/leading-slash',
  'trailing-slash/',
  '//double//slash',
  '100%',
  '%41%42',
  '%2F',
  '%',
  'a/../b',
  '../up',
  './here',
  '..a..',
  'q?x=1&y=2',
  'hash#frag',
  'plus+sign',
  '+',
  'a+b c',
  '&=;,',
  'quote\'"',
  'back\\slash',
  'nbsp\u00a0zero\u200bwidth',
  '\ufeffbom',
  'user:1001',
];

describe('keys', () => {
  let api: ApiClient;
  beforeAll(async () => {
    api = await startApi();
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  /**
   * The code a key sent in the path is refused with. nginx refuses a path holding %00 or a malformed %-escape
   * itself, with its own 400 INVALID_REQUEST (nginx.conf), before any gateway sees it; so against an external
   * target, which is behind nginx (support.ts), those forms answer that. Every other form, and every key sent in a
   * query (?key=), reaches the gateway and its INVALID_KEY.
   */
  function pathRefusalCode(encodedKey: string): string {
    const proxyRefuses = /%00|%(?![0-9A-Fa-f]{2})/.test(encodedKey);
    return api.cluster.internals === null && proxyRefuses ? 'INVALID_REQUEST' : 'INVALID_KEY';
  }

  async function allKeys(): Promise<string[]> {
    const body = (await (await api.list('limit=1000')).json()) as { keys: string[] };
    return body.keys;
  }

  for (const key of SPECIAL_KEYS) {
    it(`round-trips the key ${JSON.stringify(key)} through write, read, stat, patch, list and delete`, async () => {
      const written = await api.put(key, { k: key, n: 1 });
      expect(written.key).toBe(key);
      const read = await api.read(key);
      expect(read.status).toBe(200);
      expect(await read.json()).toEqual({ k: key, n: 1 });
      const stat = await api.stat(key);
      expect(stat.status).toBe(200);
      expect(((await stat.json()) as StatBody).key).toBe(key);
      const patched = await api.patch(key, { n: 2 });
      expect(patched.status).toBe(200);
      expect(((await patched.json()) as WriteBody).key).toBe(key);
      expect(await (await api.read(key)).json()).toEqual({ k: key, n: 2 });
      const listed = (await (await api.list(`prefix=${encodeURIComponent(key)}`)).json()) as { keys: string[] };
      expect(listed.keys).toContain(key);
      const del = await api.delete(key);
      expect(del.status).toBe(200);
      expect(((await del.json()) as { key: string }).key).toBe(key);
      expect((await api.read(key)).status).toBe(404);
    });
  }

  it('keeps keys that differ only in encoding-sensitive characters apart', async () => {
    const keys = ['a b', 'a+b', 'a%20b', 'a%2Bb', 'a/b', 'a%2Fb'];
    for (const key of keys) await api.put(key, { key });
    for (const key of keys) expect(await (await api.read(key)).json()).toEqual({ key });
    for (const key of keys) expect((await api.delete(key)).status).toBe(200);
  });

  it('never cuts a key out of a route name spelled with percent-encoding (/%72ead/x is not the key "d/x")', async () => {
    await api.put('d/x', { wrong: true });
    await api.put('x', { right: true });
    const base = api.cluster.url;
    for (const path of ['/%72ead/x', '/st%61t/x', '/%72%65%61%64/x']) {
      const res = await rawRequest(base, { path });
      expect(res.status, `${path}: ${res.body}`).toBe(404);
      expect(JSON.parse(res.body).error.code).toBe('ROUTE_NOT_FOUND');
    }
  });

  it('reads a key sent in the path with its dots percent-encoded, exactly ".."', async () => {
    // fetch (WHATWG URL) normalises a path segment ".." or "%2E%2E" away before sending, so this goes through
    // node:http, which sends the request target as given, as curl and most HTTP libraries do.
    for (const [key, encoded] of [['..', '%2E%2E'], ['.', '%2E'], ['..', '..'], ['.', '.']] as const) {
      await api.put(key, { key });
      const base = api.cluster.url;
      const read = await rawRequest(base, { path: `/read/${encoded}` });
      expect(read.status, read.body).toBe(200);
      expect(JSON.parse(read.body)).toEqual({ key });
      const stat = await rawRequest(base, { path: `/stat/${encoded}` });
      expect(stat.status, stat.body).toBe(200);
      expect(JSON.parse(stat.body).key).toBe(key);
      const patch = await rawRequest(base, {
        method: 'PATCH',
        path: `/patch/${encoded}`,
        headers: { 'content-type': 'application/merge-patch+json' },
        body: '{"patched":true}',
      });
      expect(patch.status, patch.body).toBe(200);
      const del = await rawRequest(base, { method: 'DELETE', path: `/delete/${encoded}` });
      expect(del.status, del.body).toBe(200);
      expect(JSON.parse(del.body).key).toBe(key);
      const gone = await rawRequest(base, { path: `/read/${encoded}` });
      expect(gone.status, gone.body).toBe(404);
      expect(JSON.parse(gone.body).error.code).toBe('NOT_FOUND');
    }
  });

  it('accepts a key of exactly 1024 bytes of UTF-8', async () => {
    for (const key of ['k'.repeat(1024), 'é'.repeat(512), `${'x'.repeat(1020)}😀`]) {
      expect(Buffer.byteLength(key)).toBe(1024);
      const written = await api.put(key, { long: true });
      expect(written.key).toBe(key);
      expect((await api.read(key)).status).toBe(200);
      expect((await api.stat(key)).status).toBe(200);
      expect((await api.patch(key, { more: 1 })).status).toBe(200);
      expect((await api.delete(key)).status).toBe(200);
    }
  });

  describe('400 INVALID_KEY, changing nothing', () => {
    const tooLong = ['k'.repeat(1025), `${'é'.repeat(512)}k`, `${'x'.repeat(1021)}😀`];
    const controls = ['\u0000', 'a\u0000b', '\u001f', 'tab\there', 'new\nline', 'cr\r', '\u007f', 'del\u007fete', '\u0001start'];

    it('refuses a key over 1024 bytes on every route', async () => {
      const before = await allKeys();
      for (const key of tooLong) {
        expect(Buffer.byteLength(key)).toBe(1025);
        const error = await expectError(await api.write(key, { a: 1 }), 400, 'INVALID_KEY');
        expect(error.message).toMatch(/1025.*1024/);
        await expectError(await api.read(key), 400, 'INVALID_KEY');
        await expectError(await api.stat(key), 400, 'INVALID_KEY');
        await expectError(await api.patch(key, { a: 1 }), 400, 'INVALID_KEY');
        await expectError(await api.delete(key), 400, 'INVALID_KEY');
      }
      expect(await allKeys()).toEqual(before);
    });

    it('refuses control characters U+0000-U+001F and U+007F on every route', async () => {
      const before = await allKeys();
      for (const key of controls) {
        const error = await expectError(await api.write(key, { a: 1 }), 400, 'INVALID_KEY');
        expect(error.message).toMatch(/control character U\+00[01][0-9A-F]|U\+007F/);
        const code = pathRefusalCode(encodeURIComponent(key));
        await expectError(await api.read(key), 400, code);
        await expectError(await api.stat(key), 400, code);
        await expectError(await api.patch(key, { a: 1 }), 400, code);
        await expectError(await api.delete(key), 400, code);
      }
      expect(await allKeys()).toEqual(before);
    });

    it('refuses a missing or empty key on /write', async () => {
      const before = await allKeys();
      for (const path of ['/write', '/write?key=', '/write?key', '/write?strategy=ec']) {
        const res = await api.fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
        await expectError(res, 400, 'INVALID_KEY');
      }
      // Parameter names are case-sensitive: `Key` is not `key`, and an unknown parameter is refused by name.
      const misspelt = await api.fetch('/write?Key=a', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
      await expectError(misspelt, 400, 'UNKNOWN_PARAMETER');
      expect(await allKeys()).toEqual(before);
    });

    it('refuses an empty key in the path of read, stat, patch and delete', async () => {
      await expectError(await api.fetch('/read/'), 400, 'INVALID_KEY');
      await expectError(await api.fetch('/stat/'), 400, 'INVALID_KEY');
      await expectError(await api.fetch('/patch/', { method: 'PATCH', headers: { 'content-type': 'application/json' }, body: '{}' }), 400, 'INVALID_KEY');
      await expectError(await api.fetch('/delete/', { method: 'DELETE' }), 400, 'INVALID_KEY');
    });

    it('refuses a key that is not valid percent-encoded UTF-8', async () => {
      const before = await allKeys();
      for (const raw of ['%FF', '%E4%B8', '%ED%A0%80', '%G1', 'abc%']) {
        await expectError(
          await api.fetch(`/write?key=${raw}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' }),
          400,
          'INVALID_KEY',
        );
        await expectError(await api.fetch(`/read/${raw}`), 400, pathRefusalCode(raw));
        await expectError(await api.fetch(`/delete/${raw}`, { method: 'DELETE' }), 400, pathRefusalCode(raw));
      }
      expect(await allKeys()).toEqual(before);
    });
  });
});
