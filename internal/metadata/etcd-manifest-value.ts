import { StrataError } from '../core/errors.js';
import {
  BINARY_MANIFEST_FORMATS_TEXT,
  MANIFEST_BINARY_FORMAT,
  ManifestDecodeError,
  isBinaryManifestFormat,
  decodeManifestBinary,
  encodeManifestBinary,
  type ManifestDictionary,
} from '../manifest/manifest-codec.js';
import type { Manifest } from '../manifest/manifest.js';
import { RECORD_CHECKSUM_BYTES, checksumBytesMatch, corruptRecord, recordChecksumBytes } from './record-envelope.js';

/**
 * The value stored under an etcd manifest key, in the two forms a reader meets (./README.md, "Manifest values"):
 *
 * - **v1, text** (data format 1, and everything the previous release wrote): the JSON record
 *   `{"format":1,"version":<string|null>,"manifest":{...}}`, sealed in the envelope's text form (`sr1 ...`), or
 *   unsealed when the previous release wrote it. First byte `s` or `{`.
 * - **v2, binary** (data format 2): `manifest ‖ flags ‖ checksum`
 *   - `manifest`: the binary manifest (internal/manifest/manifest-codec.ts), first byte 0x02, or 0x03 for one with a
 *     128-bit cold hash (data format 3);
 *   - `flags` (1 byte): bit 0 = the version is this key-value's mod_revision (a commit that assigns the version,
 *     which cannot know its revision before etcd applies it; v1's `"version": null`); other bits 0;
 *   - `checksum` (8 bytes): the record envelope, version 2 (record-envelope.ts `recordChecksumBytes`), of kind
 *     `manifest`, the key, and the fields [manifest bytes, flags]: a value moved under another key, a flipped bit
 *     anywhere but the first byte, or a truncation fails it.
 *
 * The first byte tells the forms apart. A value starting with a control byte (0x00..0x1f) other than 0x02, 0x03 is a
 * binary format this release does not know: FORMAT_UNSUPPORTED (503), never METADATA_CORRUPT, so the healer never
 * rebuilds over a record a newer release wrote. No JSON text starts with a control byte.
 */

/** Value flags (the byte after the manifest). */
const VERSION_FROM_REVISION = 0x01;
const KNOWN_FLAGS = VERSION_FROM_REVISION;
/** Bytes after the manifest: flags and checksum. */
const TRAILER_BYTES = 1 + RECORD_CHECKSUM_BYTES;
/** Control bytes start no JSON text: such a first byte names a binary format. */
const CONTROL_BYTE_END = 0x20;

export type ManifestValueForm = 'text' | 'binary';

/** Which form a stored value is in; throws FORMAT_UNSUPPORTED for a binary format this release does not know. */
export function manifestValueForm(value: Uint8Array, key: string): ManifestValueForm {
  const first = value[0];
  if (first === undefined || first >= CONTROL_BYTE_END) return 'text';
  if (isBinaryManifestFormat(first)) return 'binary';
  throw formatUnsupported(key, first);
}

/**
 * The binary value of `manifest` under `key`. `versionFromRevision`: the version is the revision of the commit that
 * stores it (v1's `version: null`); otherwise `manifest.version` is kept as it is. Every node and hot-field set of
 * the manifest should have a dictionary number already (what has none is stored in the codec's longer forms).
 */
export function encodeBinaryManifestValue(key: string, manifest: Manifest, versionFromRevision: boolean, dict: ManifestDictionary): Buffer {
  // The codec leaves the version out when it equals the revision it is given: give it the same placeholder for
  // both when the version is the commit's revision (the flag then says so, for the codec's escape form too), and a
  // revision that differs from the version otherwise.
  const body = versionFromRevision
    ? encodeManifestBinary({ ...manifest, version: '1' }, 1, dict)
    : encodeManifestBinary(manifest, manifest.version === '0' ? 1 : 0, dict);
  const flags = versionFromRevision ? VERSION_FROM_REVISION : 0;
  const checksum = recordChecksumBytes('manifest', key, [body, flags]);
  return Buffer.concat([body, Buffer.from([flags]), checksum]);
}

/** Why a binary value did not decode, for the caller to note (METADATA_CORRUPT) or to retry after a reload. */
export class BinaryManifestUnreadable extends Error {
  constructor(
    readonly error: StrataError,
    /** The codec met a node number or hot-field set id the dictionary given did not have. */
    readonly dictionaryMiss: boolean,
  ) {
    super(error.message);
  }
}

/**
 * The manifest of a binary value read under `key` at `modRevision`. Throws BinaryManifestUnreadable (holding a
 * METADATA_CORRUPT error) when the value fails verification or does not decode, and FORMAT_UNSUPPORTED for flags
 * this release does not know in a value whose checksum verifies.
 */
export function decodeBinaryManifestValue(value: Uint8Array, key: string, modRevision: number, dict: ManifestDictionary, where: string): Manifest {
  const corrupt = (why: string, dictionaryMiss = false) => new BinaryManifestUnreadable(corruptRecord('manifest', key, where, why), dictionaryMiss);
  if (value.length < 1 + TRAILER_BYTES) throw corrupt('it is shorter than a binary manifest value');
  const body = value.subarray(0, value.length - TRAILER_BYTES);
  const flags = value[value.length - TRAILER_BYTES]!;
  const checksum = value.subarray(value.length - RECORD_CHECKSUM_BYTES);
  if (!checksumBytesMatch('manifest', key, [body, flags], checksum)) {
    throw corrupt('its checksum does not match its content and key (damaged, or the record of another key)');
  }
  if ((flags & ~KNOWN_FLAGS) !== 0) throw formatUnsupported(key, MANIFEST_BINARY_FORMAT, `flags 0x${flags.toString(16)}`);
  const probe = missProbe(dict);
  let manifest: Manifest;
  try {
    manifest = decodeManifestBinary(body, key, modRevision, probe);
  } catch (error) {
    if (error instanceof ManifestDecodeError) throw corrupt(`its manifest does not decode: ${error.why}`, probe.missed);
    throw error;
  }
  if (typeof manifest !== 'object' || manifest === null || manifest.key !== key) throw corrupt('its content is not a manifest of this key');
  return (flags & VERSION_FROM_REVISION) !== 0 ? { ...manifest, version: String(modRevision) } : manifest;
}

/**
 * What a binary value that failed verification still seems to hold (for refusing a repair only: never served), or
 * null when it does not decode.
 */
export function damagedBinaryManifest(value: Uint8Array, key: string, modRevision: number, dict: ManifestDictionary): Manifest | null {
  if (value.length < 1 + TRAILER_BYTES) return null;
  try {
    return decodeManifestBinary(value.subarray(0, value.length - TRAILER_BYTES), key, modRevision, dict);
  } catch {
    return null;
  }
}

/** The dictionary, noting whether a decode looked up a number it does not hold. */
function missProbe(dict: ManifestDictionary): ManifestDictionary & { missed: boolean } {
  const probe = {
    missed: false,
    nodeNumber: (name: string) => dict.nodeNumber(name),
    nodeName: (n: number) => {
      const name = dict.nodeName(n);
      if (name === undefined) probe.missed = true;
      return name;
    },
    hotFieldSetId: (fields: readonly string[]) => dict.hotFieldSetId(fields),
    hotFieldSet: (id: number) => {
      const set = dict.hotFieldSet(id);
      if (set === undefined) probe.missed = true;
      return set;
    },
  };
  return probe;
}

function formatUnsupported(key: string, first: number, detail?: string): StrataError {
  const what = detail === undefined ? `format 0x${first.toString(16).padStart(2, '0')}` : `format 0x${first.toString(16).padStart(2, '0')} with ${detail}`;
  return new StrataError(
    'FORMAT_UNSUPPORTED',
    `the etcd manifest record of ${JSON.stringify(key)} is in ${what}, which this release cannot read (it reads the JSON ` +
      `records and binary formats ${BINARY_MANIFEST_FORMATS_TEXT}): a newer release wrote it; upgrade this process. Nothing acts on the record meanwhile`,
    { key },
  );
}
