/**
 * Configured limits (STRATA_BODY_BYTES_MAX, STRATA_MEMBERS_MAX), set small in a dedicated cluster so that the
 * boundaries are cheap to reach. The real defaults are covered in bad-input.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectError, startApi, type ApiClient, type KeySnapshot } from './support.js';

const BODY_BYTES_MAX = 1024;
const MEMBERS_MAX = 100;
const EXISTING = 'limits/existing';
const ABSENT = 'limits/absent';

/** A compact JSON object of exactly `bytes` bytes. */
function bodyOfSize(bytes: number): string {
  const text = `{"pad":"${'x'.repeat(bytes - 10)}"}`;
  expect(Buffer.byteLength(text)).toBe(bytes);
  return text;
}

/** A stream of `bytes` bytes of one JSON object, sent in 100-byte chunks, so that no Content-Length is known. */
function chunkedBody(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      controller.enqueue(bytes.slice(offset, offset + 100));
      offset += 100;
    },
  });
}

describe('configured document limits', () => {
  let api: ApiClient;
  let existing: KeySnapshot;

  beforeAll(async () => {
    api = await startApi({ env: { STRATA_BODY_BYTES_MAX: String(BODY_BYTES_MAX), STRATA_MEMBERS_MAX: String(MEMBERS_MAX) } });
    await api.put(EXISTING, { like_count: 1, title: 'keep me' });
    existing = await api.snapshot(EXISTING);
  });
  afterAll(async () => {
    await api.cluster.destroy();
  });

  async function expectNothingChanged(): Promise<void> {
    await api.expectUnchanged(EXISTING, existing);
    await expectError(await api.read(ABSENT), 404, 'NOT_FOUND');
  }

  function chunkedWrite(key: string, text: string): Promise<Response> {
    return api.fetch(`/write?key=${encodeURIComponent(key)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: chunkedBody(text),
      duplex: 'half',
    } as RequestInit);
  }

  describe('413 DOCUMENT_TOO_LARGE', () => {
    it('accepts a body of exactly the limit', async () => {
      const res = await api.write('limits/exact', bodyOfSize(BODY_BYTES_MAX));
      expect(res.status).toBe(200);
      expect((await api.read('limits/exact')).status).toBe(200);
    });

    it('refuses a body one byte over the limit, declared by Content-Length', async () => {
      for (const key of [EXISTING, ABSENT]) {
        const error = await expectError(await api.write(key, bodyOfSize(BODY_BYTES_MAX + 1)), 413, 'DOCUMENT_TOO_LARGE');
        expect(error.message).toMatch(/1025.*1024/);
      }
      await expectNothingChanged();
    });

    it('refuses a body far over the limit, declared by Content-Length', async () => {
      for (const key of [EXISTING, ABSENT]) {
        await expectError(await api.write(key, bodyOfSize(2 * 1024 * 1024)), 413, 'DOCUMENT_TOO_LARGE');
      }
      await expectNothingChanged();
    });

    it('accepts a chunked body (no Content-Length) of exactly the limit', async () => {
      const res = await chunkedWrite('limits/chunked-ok', bodyOfSize(BODY_BYTES_MAX));
      expect(res.status, await res.clone().text()).toBe(200);
      expect(await (await api.read('limits/chunked-ok')).text()).toBe(bodyOfSize(BODY_BYTES_MAX));
    });

    it('refuses a chunked body (no Content-Length) over the limit while reading it', async () => {
      for (const key of [EXISTING, ABSENT]) {
        await expectError(await chunkedWrite(key, bodyOfSize(BODY_BYTES_MAX + 1)), 413, 'DOCUMENT_TOO_LARGE');
        await expectError(await chunkedWrite(key, bodyOfSize(64 * 1024)), 413, 'DOCUMENT_TOO_LARGE');
      }
      await expectNothingChanged();
    });

    it('refuses a patch body over the limit', async () => {
      const res = await api.patch(EXISTING, bodyOfSize(BODY_BYTES_MAX + 1), 'application/merge-patch+json');
      await expectError(res, 413, 'DOCUMENT_TOO_LARGE');
      await expectNothingChanged();
    });

    it('refuses a patch that would make the document larger than the limit', async () => {
      const res = await api.patch(EXISTING, { pad: 'y'.repeat(BODY_BYTES_MAX - 100) }, 'application/merge-patch+json');
      expect(res.status).toBe(200);
      const before = await api.snapshot(EXISTING);
      const grow = await api.patch(EXISTING, [{ op: 'add', path: '/more', value: 'z'.repeat(200) }], 'application/json-patch+json');
      await expectError(grow, 413, 'DOCUMENT_TOO_LARGE');
      await api.expectUnchanged(EXISTING, before);
      // Back to the small document for the other tests.
      expect((await api.write(EXISTING, { like_count: 1, title: 'keep me' })).status).toBe(200);
      existing = await api.snapshot(EXISTING);
    });

    it('refuses a hot-only patch that would make the document larger than the limit', async () => {
      await api.put('limits/hot-grow', { like_count: 1, pad: 'p'.repeat(BODY_BYTES_MAX - 100) }, '&hot_fields=like_count');
      const before = await api.snapshot('limits/hot-grow');
      const grow = await api.patch('limits/hot-grow', { like_count: 'n'.repeat(200) }, 'application/merge-patch+json');
      await expectError(grow, 413, 'DOCUMENT_TOO_LARGE');
      await api.expectUnchanged('limits/hot-grow', before);
    });
  });

  describe(`422 TOO_MANY_FIELDS over STRATA_MEMBERS_MAX=${MEMBERS_MAX}`, () => {
    function members(total: number, shape: 'flat' | 'array' | 'nested'): string {
      if (shape === 'flat') return JSON.stringify(Object.fromEntries(Array.from({ length: total }, (_, i) => [`m${i}`, i])));
      if (shape === 'array') return JSON.stringify({ list: new Array(total - 1).fill(0) });
      // Members at every level count: {"o":{"a":..}} plus elements in nested arrays.
      return JSON.stringify({ o: { arr: new Array(total - 3).fill(0), x: 1 } });
    }

    for (const shape of ['flat', 'array', 'nested'] as const) {
      it(`accepts exactly ${MEMBERS_MAX} members and elements (${shape})`, async () => {
        const res = await api.write(`limits/members-${shape}`, members(MEMBERS_MAX, shape));
        expect(res.status, await res.clone().text()).toBe(200);
      });

      it(`refuses ${MEMBERS_MAX + 1} members and elements (${shape})`, async () => {
        for (const key of [EXISTING, ABSENT]) {
          const error = await expectError(await api.write(key, members(MEMBERS_MAX + 1, shape)), 422, 'TOO_MANY_FIELDS');
          expect(error.message).toContain(String(MEMBERS_MAX));
        }
        await expectNothingChanged();
      });
    }

    it('refuses a patch body over the member limit', async () => {
      const res = await api.patch(EXISTING, { many: new Array(MEMBERS_MAX).fill(1) }, 'application/merge-patch+json');
      await expectError(res, 422, 'TOO_MANY_FIELDS');
      await expectNothingChanged();
    });

    it('refuses a patch whose result would exceed the member limit', async () => {
      const half = new Array(Math.floor(MEMBERS_MAX / 2)).fill(1);
      await api.put('limits/members-patch', { a: 1 });
      expect((await api.patch('limits/members-patch', { first: half }, 'application/merge-patch+json')).status).toBe(200);
      const before = await api.snapshot('limits/members-patch');
      const res = await api.patch('limits/members-patch', [{ op: 'add', path: '/second', value: half }], 'application/json-patch+json');
      await expectError(res, 422, 'TOO_MANY_FIELDS');
      await api.expectUnchanged('limits/members-patch', before);
    });
  });
});
