/**
 * The catalogue of bad requests: each answers its documented status and stable code with a message a person
 * can act on, never a 5xx, and changes nothing a reader can see.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, parseRawAnswer, rawSocket, startApi, type ApiClient, type KeySnapshot } from './support.js';

const EXISTING = 'bad/existing';
const ABSENT = 'bad/absent';

describe('bad input', () => {
  let api: ApiClient;
  let existing: KeySnapshot;

  beforeAll(async () => {
    api = await startApi();
    await api.put(EXISTING, { like_count: 1, title: 'keep me', nested: { a: [1, 2] } });
    existing = await api.snapshot(EXISTING);
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  /** Every refused write is tried against an existing key and an absent one; neither may change. */
  async function expectRefusedWrite(
    send: (key: string) => Promise<Response>,
    status: number,
    code: string,
  ): Promise<string> {
    const error = await expectError(await send(EXISTING), status, code);
    await expectError(await send(ABSENT), status, code);
    await api.expectUnchanged(EXISTING, existing);
    await expectError(await api.read(ABSENT), 404, 'NOT_FOUND');
    return error.message;
  }

  function writeRaw(body: string | Uint8Array, contentType: string | null, query = ''): (key: string) => Promise<Response> {
    return (key) =>
      api.fetch(`/write?key=${encodeURIComponent(key)}${query}`, {
        method: 'POST',
        headers: contentType === null ? {} : { 'content-type': contentType },
        body: typeof body === 'string' && contentType === null ? new TextEncoder().encode(body) : body,
      });
  }

  describe('415 UNSUPPORTED_MEDIA_TYPE', () => {
    const wrong = [
      'text/plain',
      'text/json',
      'application/xml',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonx',
      'application/json-patch+json',
      'application/merge-patch+json',
      'application/octet-stream',
      'json',
    ];
    for (const type of wrong) {
      it(`refuses a write with Content-Type ${type}`, async () => {
        const message = await expectRefusedWrite(writeRaw('{"a":1}', type), 415, 'UNSUPPORTED_MEDIA_TYPE');
        expect(message).toMatch(/application\/json/);
      });
    }

    it('refuses a write without Content-Type', async () => {
      const message = await expectRefusedWrite(writeRaw('{"a":1}', null), 415, 'UNSUPPORTED_MEDIA_TYPE');
      expect(message).toMatch(/none/);
    });

    it('refuses a patch without Content-Type', async () => {
      const res = await api.fetch(`/patch/${encodeURIComponent(EXISTING)}`, { method: 'PATCH', body: new TextEncoder().encode('{"a":1}') });
      await expectError(res, 415, 'UNSUPPORTED_MEDIA_TYPE');
      await api.expectUnchanged(EXISTING, existing);
    });

    it('accepts application/json with parameters and in any letter case', async () => {
      for (const type of ['application/json; charset=utf-8', 'application/json;charset=UTF-8', 'APPLICATION/JSON', ' application/json ; foo=bar']) {
        const res = await api.write('bad/charset-ok', { type }, '', { 'content-type': type });
        expect(res.status, type).toBe(200);
      }
    });
  });

  describe('422 INVALID_JSON', () => {
    const cases: [string, string | Uint8Array, RegExp][] = [
      ['a truncated body', '{"a":1,"b":[1,2', /end of input at byte 15/],
      ['a body cut inside a string', '{"a":"abc', /unterminated string.* at byte 5/],
      ['trailing garbage', '{"a":1}}', /unexpected '}' after the value at byte 7/],
      ['a second value', '{"a":1} {"b":2}', /after the value at byte 8/],
      ['a trailing comma', '{"a":1,}', /unexpected '}' at byte 7/],
      ['an unquoted member name', '{a:1}', /at byte 1/],
      ['single quotes', "{'a':1}", /at byte 1/],
      ['a leading zero', '{"a":01}', /at byte 6/],
      ['NaN', '{"a":NaN}', /at byte 5/],
      ['a bare minus', '{"a":-}', /at byte 6/],
      ['an unescaped control character in a string', '{"a":"x\u0001y"}', /U\+0001.* at byte 7/],
      ['an invalid escape', '{"a":"\\x"}', /at byte 6/],
      ['a short \\u escape', '{"a":"\\u12"}', /at byte 6/],
      ['an empty body', '', /end of input at byte 0/],
      ['white space only', '  \n ', /end of input at byte 4/],
      ['a comment', '{"a":1 /* c */}', /at byte 7/],
      ['an offset counted in bytes, not characters', '{"é😀":1,}', /unexpected '}' at byte 12/],
      ['invalid UTF-8 bytes', new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]), /UTF-8.* at byte 6/],
      ['an overlong UTF-8 sequence', new Uint8Array([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]), /UTF-8.* at byte 2/],
      ['a UTF-8 encoded surrogate', new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]), /UTF-8.* at byte 6/],
      ['a truncated UTF-8 sequence at the end', new Uint8Array([0x7b, 0x7d, 0xe4, 0xb8]), /UTF-8.* at byte 2/],
      ['a UTF-16 body', new Uint8Array(Buffer.from('{"a":1}', 'utf16le')), /at byte/],
    ];
    for (const [what, body, message] of cases) {
      it(`refuses ${what}, naming the byte offset`, async () => {
        const text = await expectRefusedWrite(writeRaw(body, 'application/json'), 422, 'INVALID_JSON');
        expect(text).toMatch(/byte \d+/);
        expect(text).toMatch(message);
      });
    }

    it('refuses duplicate member names', async () => {
      for (const body of ['{"a":1,"a":2}', '{"x":{"b":1,"c":2,"b":3}}', '{"a":1,"\\u0061":2}', '{"a":[{"k":1,"k":1}]}']) {
        const text = await expectRefusedWrite(writeRaw(body, 'application/json'), 422, 'INVALID_JSON');
        expect(text).toMatch(/duplicate member name .* at byte \d+/);
      }
    });

    it('refuses duplicate member names inside a patch', async () => {
      await expectError(await api.patch(EXISTING, '{"title":"x","title":"y"}', 'application/merge-patch+json'), 422, 'INVALID_JSON');
      await expectError(await api.patch(EXISTING, '[{"op":"add","op":"remove","path":"/a"}]', 'application/json-patch+json'), 422, 'INVALID_JSON');
      await api.expectUnchanged(EXISTING, existing);
    });
  });

  describe('422 NOT_AN_OBJECT', () => {
    for (const body of ['[]', '[{"a":1}]', '1', '-1.5e3', '"a string"', '""', 'null', 'true', 'false', ' [1] ']) {
      it(`refuses the body ${body.trim() || '""'}`, async () => {
        const message = await expectRefusedWrite(writeRaw(body, 'application/json'), 422, 'NOT_AN_OBJECT');
        expect(message).toMatch(/object/);
      });
    }
  });

  describe('422 INVALID_STRATEGY', () => {
    for (const strategy of ['bogus', 'EC', 'Replication', 'field-hybrid', 'hybrid', '', 'ec%20']) {
      it(`refuses strategy=${JSON.stringify(strategy)}`, async () => {
        const message = await expectRefusedWrite(writeRaw('{"a":1}', 'application/json', `&strategy=${strategy}`), 422, 'INVALID_STRATEGY');
        expect(message).toMatch(/replication, ec, field_hybrid/);
      });
    }
  });

  describe('422 INVALID_HOT_FIELDS', () => {
    const cases: [string, string][] = [
      ['an empty entry', 'a,,b'],
      ['a leading empty entry', ',a'],
      ['a trailing empty entry', 'a,'],
      ['a lone comma', ','],
      ['the pointer "/"', '/'],
      ['the pointer "/" among others', 'a,/'],
      ['a bad pointer escape ~2', '/a~2'],
      ['a pointer ending in ~', '/a~'],
      ['a bad escape in a nested pointer', '/stats/x~y'],
      ['invalid percent-encoding', 'a%ZZ'],
      ['65 entries (the limit is 64)', Array.from({ length: 65 }, (_, i) => `f${i}`).join(',')],
      ['an entry longer than 512 bytes', 'x'.repeat(513)],
    ];
    for (const [what, value] of cases) {
      it(`refuses ${what}`, async () => {
        await expectRefusedWrite(writeRaw('{"a":1}', 'application/json', `&hot_fields=${value}`), 422, 'INVALID_HOT_FIELDS');
      });
    }

    it('accepts 64 entries and an entry of 512 bytes', async () => {
      const many = Array.from({ length: 64 }, (_, i) => `f${i}`).join(',');
      expect((await api.write('bad/hot-ok', { f0: 1 }, `&hot_fields=${many}`)).status).toBe(200);
      expect((await api.write('bad/hot-ok', { f0: 1 }, `&hot_fields=${'x'.repeat(512)}`)).status).toBe(200);
    });
  });

  describe('nesting depth', () => {
    /** A document nesting `depth` containers deep, alternating objects and arrays. */
    function nested(depth: number): string {
      let open = '';
      let close = '';
      for (let d = 2; d <= depth; d++) {
        open += d % 2 === 0 ? '{"k":' : '[';
        close = (d % 2 === 0 ? '}' : ']') + close;
      }
      return `{"like_count":1,"deep":${open}0${close}}`;
    }
    function nestedOnlyObjects(depth: number): string {
      return `${'{"a":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;
    }

    it('accepts a document nesting exactly 64 levels under every strategy and reads it back', async () => {
      for (const strategy of ['replication', 'ec', 'field_hybrid']) {
        for (const text of [nested(64), nestedOnlyObjects(64)]) {
          const res = await api.write('bad/depth-64', text, `&strategy=${strategy}&hot_fields=like_count`);
          expect(res.status, await res.clone().text()).toBe(200);
          expect(await (await api.read('bad/depth-64')).text()).toBe(text);
        }
      }
    });

    it('refuses 65 levels with 422 DOCUMENT_TOO_DEEP', async () => {
      for (const text of [nested(65), nestedOnlyObjects(65), `{"a":${'['.repeat(64)}${']'.repeat(64)}}`]) {
        const message = await expectRefusedWrite(writeRaw(text, 'application/json'), 422, 'DOCUMENT_TOO_DEEP');
        expect(message).toMatch(/64/);
      }
    });

    it('refuses a body of 100,000 open brackets with 422 DOCUMENT_TOO_DEEP, not a crash', async () => {
      await expectRefusedWrite(writeRaw(`{"a":${'['.repeat(100_000)}`, 'application/json'), 422, 'DOCUMENT_TOO_DEEP');
    });

    it('refuses a patch that would nest 65 levels', async () => {
      const deepValue = JSON.parse(nestedOnlyObjects(64));
      await expectError(await api.patch(EXISTING, [{ op: 'add', path: '/nested/deeper', value: deepValue }], 'application/json-patch+json'), 422, 'DOCUMENT_TOO_DEEP');
      await expectError(await api.patch(EXISTING, { x: deepValue }, 'application/merge-patch+json'), 422, 'DOCUMENT_TOO_DEEP');
      await api.expectUnchanged(EXISTING, existing);
    });
  });

  describe('the default member limit of 100,000', () => {
    /** {"list":[0,0,...]}: one member plus `total - 1` elements. */
    function members(total: number): string {
      return `{"list":[${new Array(total - 1).fill('0').join(',')}]}`;
    }

    it('accepts 100,000 members and elements in total', async () => {
      const res = await api.write('bad/members-100000', members(100_000), '&strategy=ec');
      expect(res.status).toBe(200);
      expect((await api.read('bad/members-100000')).status).toBe(200);
    });

    it('refuses 100,001 with 422 TOO_MANY_FIELDS', async () => {
      const message = await expectRefusedWrite(writeRaw(members(100_001), 'application/json', '&strategy=ec'), 422, 'TOO_MANY_FIELDS');
      expect(message).toMatch(/100000/);
    });
  });

  describe('routes and methods', () => {
    for (const [method, path] of [
      ['GET', '/nope'],
      ['GET', '/writes'],
      ['GET', '/v1/read/a'],
      ['GET', '/READ/a'],
      ['POST', '/nope'],
      ['GET', '/read-all'],
      ['GET', '/health/nope'],
    ] as const) {
      it(`answers 404 ROUTE_NOT_FOUND for ${method} ${path}`, async () => {
        const res = await api.fetch(path, { method });
        await expectError(res, 404, 'ROUTE_NOT_FOUND');
      });
    }

    for (const [method, path, allow] of [
      ['GET', '/write?key=a', 'POST'],
      ['PUT', '/write?key=a', 'POST'],
      ['DELETE', '/write?key=a', 'POST'],
      ['POST', '/read/a', 'GET, HEAD'],
      ['PUT', '/read/a', 'GET, HEAD'],
      ['DELETE', '/read/a', 'GET, HEAD'],
      ['GET', '/patch/a', 'PATCH'],
      ['POST', '/patch/a', 'PATCH'],
      ['GET', '/delete/a', 'DELETE'],
      ['POST', '/delete/a', 'DELETE'],
      ['POST', '/stat/a', 'GET, HEAD'],
      ['POST', '/list', 'GET, HEAD'],
      ['DELETE', '/health', 'GET, HEAD'],
      ['POST', '/health/ready', 'GET, HEAD'],
      ['POST', '/cluster', 'GET, HEAD'],
      ['PUT', '/node_status', 'GET, HEAD'],
      ['POST', '/storage_usage', 'GET, HEAD'],
      // The web console owns the root.
      ['DELETE', '/', 'GET, HEAD'],
      ['POST', '/console/app.js', 'GET, HEAD'],
    ] as const) {
      it(`answers 405 METHOD_NOT_ALLOWED with Allow: ${allow} for ${method} ${path.split('?')[0]}`, async () => {
        const res = await api.fetch(path, { method, ...(method === 'GET' || method === 'DELETE' ? {} : { headers: { 'content-type': 'application/json' }, body: '{}' }) });
        const error = await expectError(res, 405, 'METHOD_NOT_ALLOWED');
        expect(res.headers.get('allow')).toBe(allow);
        expect(error.message).toContain(method);
      });
    }

    it('has not written the key "a" through any wrong method', async () => {
      await expectError(await api.read('a'), 404, 'NOT_FOUND');
    });
  });

  describe('headers', () => {
    it('answers 431 HEADERS_TOO_LARGE for headers over 16 KiB, and keeps serving', async () => {
      const big = 'x'.repeat(17 * 1024);
      const request =
        `POST /write?key=${encodeURIComponent(ABSENT)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
        `X-Padding: ${big}\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{"a":1}`;
      const answer = parseRawAnswer(await rawSocket(api.cluster.url, request));
      expect(answer.status).toBe(431);
      const body = JSON.parse(answer.body) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('HEADERS_TOO_LARGE');
      expect(body.error.message.length).toBeGreaterThan(0);
      await expectError(await api.read(ABSENT), 404, 'NOT_FOUND');
      expect((await api.fetch('/health')).status).toBe(200);
    });

    it('answers 431 when many small headers add up to more than 16 KiB', async () => {
      let headers = '';
      for (let i = 0; i < 400; i++) headers += `X-H${i}: ${'v'.repeat(40)}\r\n`;
      const answer = parseRawAnswer(await rawSocket(api.cluster.url, `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers}Connection: close\r\n\r\n`));
      expect(answer.status).toBe(431);
      expect(JSON.parse(answer.body).error.code).toBe('HEADERS_TOO_LARGE');
    });

    it('accepts headers just under 16 KiB', async () => {
      const res = await api.fetch('/health', { headers: { 'x-padding': 'x'.repeat(15 * 1024) } });
      expect(res.status).toBe(200);
    });

    it('answers 400 INVALID_HEADER for a malformed If-Match and writes nothing', async () => {
      for (const header of ['7', '*', '"7', 'W/7', '"7" junk', '"1", "2"', '"99999999999999999999999"']) {
        await expectRefusedWrite((key) => api.write(key, { a: 2 }, '', { 'if-match': header }), 400, 'INVALID_HEADER');
      }
    });

    // These are refused by the HTTP adapter (@hono/node-server) before the app runs; api.md says errors always
    // have the JSON shape.
    for (const [what, request] of [
      ['a backslash in the request path', 'GET /read/a\\b HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'],
      ['a malformed Host header', 'GET /read/a HTTP/1.1\r\nHost: bad host!\r\nConnection: close\r\n\r\n'],
      ['an HTTP/1.0 request without Host', 'GET /health HTTP/1.0\r\n\r\n'],
    ] as const) {
      it(`answers a JSON 400 error for ${what}`, async () => {
        const answer = parseRawAnswer(await rawSocket(api.cluster.url, request));
        expect(answer.status).toBe(400);
        expect(answer.headers).toMatch(/content-type: application\/json/i);
        const body = JSON.parse(answer.body.replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, '')) as { error?: { code: string; message: string } };
        expect(body.error?.code).toBe('INVALID_REQUEST');
        expect(body.error?.message.length).toBeGreaterThan(0);
      });
    }

    it('answers 400 for a request that is not HTTP/1.1', async () => {
      const answer = parseRawAnswer(await rawSocket(api.cluster.url, 'GARBAGE\r\n\r\n'));
      expect(answer.status).toBe(400);
      expect(JSON.parse(answer.body).error.code).toBe('INVALID_REQUEST');
    });
  });

  describe('query parameters', () => {
    it('refuses an invalid fields list on read with 400 INVALID_FIELDS', async () => {
      await expectError(await api.read(EXISTING, '?fields=a,,b'), 400, 'INVALID_FIELDS');
      await expectError(await api.read(EXISTING, '?fields=/'), 400, 'INVALID_FIELDS');
      await expectError(await api.read(EXISTING, '?fields=%2Fa~2'), 400, 'INVALID_FIELDS');
      await expectError(await api.read(EXISTING, `?fields=${Array.from({ length: 257 }, (_, i) => `f${i}`).join(',')}`), 400, 'INVALID_FIELDS');
    });

    it('refuses an invalid percent-encoding in a parameter name or value with 400', async () => {
      const res = await api.fetch(`/write?key=${encodeURIComponent(ABSENT)}&%ZZ=1`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
      await expectError(res, 400, 'INVALID_REQUEST');
      await expectError(await api.list('prefix=%ZZ'), 400, 'INVALID_REQUEST');
      await expectError(await api.read(ABSENT), 404, 'NOT_FOUND');
    });
  });
});
