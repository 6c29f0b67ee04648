/**
 * Compression of cold parts (README.md beside this file). A cold part is compressed before it is erasure coded
 * (or copied beside the replicas) only when that saves at least `minSavingShare` of its bytes. Incompressible
 * data is recognised cheaply: a sample of at most SAMPLE_BYTES is compressed first, and the whole part only when
 * the sample saves enough. Large inputs go through zlib's asynchronous API (the libuv thread pool), so that a
 * megabyte-sized part never stalls the event loop; small ones are compressed in line, where the hop to the
 * thread pool would cost more than the work.
 *
 * Decompression is bounded by the text size the manifest recorded: a corrupt or hostile blob that would expand
 * further is BLOB_CORRUPT, never an allocation the size of its claim.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { StrataError } from '../core/errors.js';
import type { ColdCodec } from '../manifest/manifest.js';

/** What a gateway does with cold parts: `off` stores every cold part as its text. */
export type CompressionSetting = 'brotli' | 'deflate' | 'off';

export interface CompressionSettings {
  codec: CompressionSetting;
  /** Share of the bytes (0 to 1) compression must save for the compressed form to be stored. */
  minSavingShare: number;
}

export const CODEC_LIMITS = {
  /** Cold parts smaller than this are never compressed: the codec's framing eats what it could save. */
  inputBytesMin: 256,
  /** The sample compressed first to decide whether the whole part is worth compressing (three slices). */
  sampleBytes: 48 * 1024,
  /** Inputs (and outputs) larger than this are (de)compressed on the thread pool rather than in line. */
  inlineWorkBytesMax: 64 * 1024,
  /** Brotli quality: the fastest level compresses JSON text 3-5x at 200-300 MB/s on one core (docs/decisions.md 14). */
  brotliQuality: 1,
  /** Deflate level for the `deflate` setting. */
  deflateLevel: 1,
} as const;

export interface CompressedCold {
  /** `identity` when compression was tried and saved too little (or was skipped as too small). */
  codec: ColdCodec;
  /** The bytes to store: the compressed form, or `text` itself. */
  data: Buffer;
  /** True when the codec ran on the input (or its sample) and found it not worth storing compressed. */
  tried: boolean;
}

// Looked up on zlib at each call (not bound once), so that tests can observe which work was done.
const brotliCompressAsync = (input: Buffer, options: zlib.BrotliOptions): Promise<Buffer> => promisify(zlib.brotliCompress)(input, options);
const brotliDecompressAsync = (input: Buffer, options: zlib.BrotliOptions): Promise<Buffer> => promisify(zlib.brotliDecompress)(input, options);
const deflateRawAsync = (input: Buffer, options: zlib.ZlibOptions): Promise<Buffer> => promisify(zlib.deflateRaw)(input, options);
const inflateRawAsync = (input: Buffer, options: zlib.ZlibOptions): Promise<Buffer> => promisify(zlib.inflateRaw)(input, options);

/** Chooses the stored form of a cold text under `settings`. Never throws for any input. */
export async function compressCold(text: Buffer, settings: CompressionSettings): Promise<CompressedCold> {
  if (settings.codec === 'off' || text.length < CODEC_LIMITS.inputBytesMin) return { codec: 'identity', data: text, tried: false };
  const codec = settings.codec;
  const savesEnough = (inputBytes: number, outputBytes: number): boolean =>
    inputBytes - outputBytes >= settings.minSavingShare * inputBytes && outputBytes < inputBytes;
  if (text.length > CODEC_LIMITS.sampleBytes) {
    const sample = sampleOf(text);
    const compressedSample = compressSync(codec, sample);
    if (!savesEnough(sample.length, compressedSample.length)) return { codec: 'identity', data: text, tried: true };
  }
  const compressed = text.length > CODEC_LIMITS.inlineWorkBytesMax ? await compressAsync(codec, text) : compressSync(codec, text);
  if (!savesEnough(text.length, compressed.length)) return { codec: 'identity', data: text, tried: true };
  return { codec, data: compressed, tried: true };
}

/**
 * The cold text back from its stored form. `textBytes` is the size the manifest recorded; the output may not
 * exceed it (zlib's maxOutputLength), and must equal it. Any failure is BLOB_CORRUPT.
 */
export async function decompressCold(data: Buffer, codec: ColdCodec, textBytes: number): Promise<Buffer> {
  if (codec === 'identity') return data;
  if (!Number.isSafeInteger(textBytes) || textBytes < 1) {
    throw new StrataError('BLOB_CORRUPT', `the manifest records ${textBytes} text bytes for a ${codec} cold part`);
  }
  let text: Buffer;
  try {
    const options = { maxOutputLength: textBytes };
    if (textBytes <= CODEC_LIMITS.inlineWorkBytesMax) {
      text = codec === 'brotli' ? zlib.brotliDecompressSync(data, options) : zlib.inflateRawSync(data, options);
    } else {
      text = codec === 'brotli' ? await brotliDecompressAsync(data, options) : await inflateRawAsync(data, options);
    }
  } catch (error) {
    // ERR_BUFFER_TOO_LARGE (it would expand past textBytes) or a zlib format error: the stored bytes are bad.
    throw new StrataError('BLOB_CORRUPT', `the ${codec} cold part does not decompress to its ${textBytes} bytes: ${(error as Error).message}`);
  }
  if (text.length !== textBytes) {
    throw new StrataError('BLOB_CORRUPT', `the ${codec} cold part decompresses to ${text.length} bytes, not the recorded ${textBytes}`);
  }
  return text;
}

/** Start, middle and end: a part whose head is text and whose tail is base64 is not judged by its head alone. */
function sampleOf(text: Buffer): Buffer {
  const slice = Math.floor(CODEC_LIMITS.sampleBytes / 3);
  const middle = Math.floor((text.length - slice) / 2);
  return Buffer.concat([text.subarray(0, slice), text.subarray(middle, middle + slice), text.subarray(text.length - slice)]);
}

function brotliOptions(inputBytes: number): zlib.BrotliOptions {
  return {
    params: {
      [zlib.constants.BROTLI_PARAM_QUALITY]: CODEC_LIMITS.brotliQuality,
      [zlib.constants.BROTLI_PARAM_SIZE_HINT]: inputBytes,
    },
  };
}

function compressSync(codec: 'brotli' | 'deflate', input: Buffer): Buffer {
  return codec === 'brotli'
    ? zlib.brotliCompressSync(input, brotliOptions(input.length))
    : zlib.deflateRawSync(input, { level: CODEC_LIMITS.deflateLevel });
}

function compressAsync(codec: 'brotli' | 'deflate', input: Buffer): Promise<Buffer> {
  return codec === 'brotli'
    ? brotliCompressAsync(input, brotliOptions(input.length))
    : deflateRawAsync(input, { level: CODEC_LIMITS.deflateLevel });
}
