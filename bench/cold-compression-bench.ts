/**
 * Cold-part compression benchmark (not a test): the codecs node:zlib offers, at the fastest levels, on the cold
 * parts of the documents of benchmarks.md. It chose the default of STRATA_COLD_COMPRESSION (docs/decisions.md 14).
 *
 *   npx tsx bench/cold-compression-bench.ts [--out <result.json>]
 *
 * Documents (cold parts only): small (8 KiB of text and nested objects), iot (800 KiB base64 of random bytes),
 * large text (8 MiB of JSON records), large noise (8 MiB base64). Each codec compresses and decompresses each one
 * repeatedly in this thread (synchronous API, so the figure is the codec's own speed on one core); prints ratio
 * (compressed / original), compression and decompression MB/s, and writes the figures, machine and settings as JSON
 * (default bench-results/cold-compression-bench.json).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';

/** Bytes each measurement processes at least (several rounds of a small document). */
const BYTES_PER_MEASUREMENT = 32 * 1024 * 1024;

function records(bytes: number): Buffer {
  const words = ['alpha', 'beta', 'gamma', 'sensor', 'reading', 'temperature', 'value', 'device', 'status', 'ok', 'error', 'north', 'south'];
  const random = randomBytes(bytes / 8 + 64);
  const items: string[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const r = (k: number) => random[(i * 4 + k) % random.length]!;
    const item = JSON.stringify({
      id: i,
      name: `${words[r(0) % 13]} ${words[r(1) % 13]}`,
      note: `${words[r(2) % 13]} ${r(3) * 37} ${words[(r(0) + r(1)) % 13]}`,
      tags: [words[r(1) % 13], words[r(2) % 13]],
      score: (r(3) * 1.37).toFixed(2),
      nested: { a: r(0), b: [r(1), r(2)] },
    });
    items.push(item);
    size += item.length + 1;
  }
  return Buffer.from(`{"items":[${items.join(',')}]}`);
}

const noise = (bytes: number): Buffer => Buffer.from(randomBytes(Math.ceil((bytes * 3) / 4)).toString('base64').slice(0, bytes));

const DOCUMENTS: [string, Buffer][] = [
  ['small 8 KiB text', records(8 * 1024)],
  ['iot 800 KiB base64', noise(800 * 1024)],
  ['large 8 MiB text', records(8 * 1024 * 1024)],
  ['large 8 MiB base64', noise(8 * 1024 * 1024)],
];

const brotli = (quality: number) => ({ params: { [zlib.constants.BROTLI_PARAM_QUALITY]: quality } });
const CODECS: [string, (b: Buffer) => Buffer, (b: Buffer) => Buffer][] = [
  ['deflate-1', (b) => zlib.deflateRawSync(b, { level: 1 }), (b) => zlib.inflateRawSync(b)],
  ['deflate-6', (b) => zlib.deflateRawSync(b, { level: 6 }), (b) => zlib.inflateRawSync(b)],
  ['gzip-1', (b) => zlib.gzipSync(b, { level: 1 }), (b) => zlib.gunzipSync(b)],
  ['brotli-1', (b) => zlib.brotliCompressSync(b, brotli(1)), (b) => zlib.brotliDecompressSync(b)],
  ['brotli-3', (b) => zlib.brotliCompressSync(b, brotli(3)), (b) => zlib.brotliDecompressSync(b)],
  ['brotli-5', (b) => zlib.brotliCompressSync(b, brotli(5)), (b) => zlib.brotliDecompressSync(b)],
];

function seconds(work: () => void, rounds: number): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) work();
  return Number(process.hrtime.bigint() - start) / 1e9 / rounds;
}

async function main(): Promise<void> {
  const outIndex = process.argv.indexOf('--out');
  const out = outIndex > 0 ? process.argv[outIndex + 1]! : path.join('bench-results', 'cold-compression-bench.json');
  const results = [];
  console.log('document             codec       ratio  compress MB/s  decompress MB/s');
  for (const [document, data] of DOCUMENTS) {
    const rounds = Math.max(3, Math.ceil(BYTES_PER_MEASUREMENT / data.length));
    for (const [codec, compress, decompress] of CODECS) {
      const compressed = compress(data);
      const c = seconds(() => compress(data), rounds);
      const d = seconds(() => decompress(compressed), rounds);
      const row = { document, codec, ratio: compressed.length / data.length, compressMBps: data.length / c / 1e6, decompressMBps: data.length / d / 1e6 };
      results.push(row);
      console.log(`${document.padEnd(20)} ${codec.padEnd(10)} ${row.ratio.toFixed(3).padStart(6)} ${row.compressMBps.toFixed(0).padStart(14)} ${row.decompressMBps.toFixed(0).padStart(16)}`);
    }
  }
  const machine = { cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length, memoryBytes: os.totalmem(), node: process.version };
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify({ machine, settings: { bytesPerMeasurement: BYTES_PER_MEASUREMENT }, results }, null, 2)}\n`);
  console.log(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}; written to ${out}`);
}

void main();
