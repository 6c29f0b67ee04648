/**
 * The cluster's data format version: which on-disk and metadata encodings writers may use. Readers always read
 * every version up to DATA_FORMAT_MAX; writers use the newer encodings only once the cluster's version says every
 * process can read them (docs/design/compact-formats.md, "Format versions and the cluster bump"). The all-in-one
 * is one process of one release, so it runs at DATA_FORMAT_MAX; a cluster starts at 1 and is bumped explicitly.
 */

/** JSON manifests, needle v1, sealed-JSON WAL records: what the previous release reads and writes. */
export const DATA_FORMAT_V1 = 1;
/** Binary manifests, needle v2, binary WAL records: compact formats for small documents. */
export const DATA_FORMAT_V2 = 2;
/** As 2, with manifests that keep the first 128 bits of the cold hash (manifest format byte 3). */
export const DATA_FORMAT_V3 = 3;
/**
 * As 3, with blob descriptors of `ec` documents that leave out the cold hash (descriptor kind bit 7): no hot update
 * is ever paired with an ec document's cold part, and each blob's own 64-bit checksum still guards its bytes.
 */
export const DATA_FORMAT_V4 = 4;
/** The newest format this release can read and write. */
export const DATA_FORMAT_MAX = DATA_FORMAT_V4;

/** The cluster's current data format version, as last seen by this process. */
export interface DataFormatSource {
  current(): number;
}

/** A version that never changes: the all-in-one (DATA_FORMAT_MAX), tests, and tools. */
export function fixedDataFormat(version: number): DataFormatSource {
  return { current: () => version };
}
