/**
 * Compression of cold parts (internal/coldpart/cold-codec.ts): kept only when it saves the configured share,
 * incompressible data recognised from a sample without compressing it whole, and decompression bounded by the
 * recorded size so that a hostile blob is BLOB_CORRUPT rather than a memory blow-up.
 */
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { compressCold, decompressCold } from '../../internal/coldpart/cold-codec.js';
import { isStrataError } from '../../internal/core/errors.js';

const BROTLI = { codec: 'brotli', minSavingShare: 0.3 } as const;

function jsonText(bytes: number): Buffer {
  const items: string[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const item = `{"i":${i},"n":12345678901234567890,"f":1.0,"z":-0,"e":1E400,"t":"héllo wörld 😀 ${i % 17}"}`;
    items.push(item);
    size += item.length + 1;
  }
  return Buffer.from(`{"items":[${items.join(',')}]}`, 'utf8');
}

/** What the iot documents carry: random bytes as base64, which entropy coding alone shrinks by a quarter. */
function base64Noise(bytes: number): Buffer {
  return Buffer.from(randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes));
}

async function expectCorrupt(promise: Promise<unknown>): Promise<void> {
  const error = await promise.then(() => null, (e: unknown) => e);
  expect(isStrataError(error, 'BLOB_CORRUPT'), String(error)).toBe(true);
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('cold part compression', () => {
  for (const codec of ['brotli', 'deflate'] as const) {
    for (const bytes of [2_000, 300_000]) {
      it(`round-trips ${bytes} bytes of JSON text with ${codec}, byte for byte (numbers and unicode as written)`, async () => {
        const text = jsonText(bytes);
        const stored = await compressCold(text, { codec, minSavingShare: 0.1 });
        expect(stored.codec).toBe(codec);
        expect(stored.data.length).toBeLessThan(text.length / 2);
        const back = await decompressCold(stored.data, codec, text.length);
        expect(back.equals(text)).toBe(true);
        expect(back.toString('utf8')).toContain('"n":12345678901234567890,"f":1.0,"z":-0,"e":1E400,"t":"héllo wörld 😀');
      });
    }
  }

  it('stores base64 noise as written under the default 30 % minimum saving', async () => {
    const text = base64Noise(20_000);
    const stored = await compressCold(text, BROTLI);
    expect(stored).toMatchObject({ codec: 'identity', tried: true });
    expect(stored.data).toBe(text);
  });

  it('compresses the same noise when the minimum saving is set below what entropy coding saves', async () => {
    const stored = await compressCold(base64Noise(20_000), { codec: 'brotli', minSavingShare: 0.1 });
    expect(stored.codec).toBe('brotli');
  });

  it('judges a large incompressible part from a sample, without compressing it whole', async () => {
    const whole = vi.spyOn(zlib, 'brotliCompress');
    const text = base64Noise(2 * 1024 * 1024);
    const stored = await compressCold(text, BROTLI);
    expect(stored).toMatchObject({ codec: 'identity', tried: true });
    expect(whole).not.toHaveBeenCalled();
  });

  it('compresses a large compressible part on the thread pool', async () => {
    const whole = vi.spyOn(zlib, 'brotliCompress');
    const text = jsonText(1024 * 1024);
    const stored = await compressCold(text, BROTLI);
    expect(stored.codec).toBe('brotli');
    expect(whole).toHaveBeenCalledTimes(1);
    expect((await decompressCold(stored.data, 'brotli', text.length)).equals(text)).toBe(true);
  });

  it('leaves tiny parts and a disabled codec alone without trying', async () => {
    expect(await compressCold(Buffer.from('{"a":"aaaaaaaaaaaaaaaaaaaa"}'), BROTLI)).toMatchObject({ codec: 'identity', tried: false });
    expect(await compressCold(jsonText(10_000), { codec: 'off', minSavingShare: 0.3 })).toMatchObject({ codec: 'identity', tried: false });
  });
});

describe('bounded decompression', () => {
  it('refuses a small blob that would expand far past the recorded size (a decompression bomb)', async () => {
    const bomb = zlib.brotliCompressSync(Buffer.alloc(64 * 1024 * 1024), { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } });
    expect(bomb.length).toBeLessThan(256 * 1024);
    await expectCorrupt(decompressCold(bomb, 'brotli', 4096));
    const deflateBomb = zlib.deflateRawSync(Buffer.alloc(16 * 1024 * 1024));
    await expectCorrupt(decompressCold(deflateBomb, 'deflate', 100_000));
  });

  it('refuses bytes that are not a compressed stream, and a stream shorter than recorded', async () => {
    await expectCorrupt(decompressCold(randomBytes(5000), 'brotli', 10_000));
    await expectCorrupt(decompressCold(randomBytes(5000), 'deflate', 10_000));
    const text = jsonText(5000);
    await expectCorrupt(decompressCold(zlib.brotliCompressSync(text), 'brotli', text.length + 1));
    await expectCorrupt(decompressCold(zlib.brotliCompressSync(text), 'brotli', 0));
  });
});
