import { LIMITS } from '../core/limits.js';

/**
 * Named limits of the tiering subsystem. They bound a gateway's memory for access statistics and the size of the
 * per-prefix record every gateway and the healer share through the metadata store.
 */
export const TIERING_LIMITS = {
  /** Bytes of a prefix (the prefix rule stops looking for a separator here). */
  prefixBytesMax: 128,
  /** Prefixes a gateway keeps counters for between flushes; the least used is evicted beyond it. */
  prefixesMax: 256,
  /** Field paths with counters per prefix; the least used is evicted beyond it. */
  fieldsPerPrefixMax: 64,
  /** A field path longer than this (UTF-8 bytes) is not counted. */
  fieldPathBytesMax: 256,
  /** Documents with their own read counters per prefix (read-heavy detection, lifecycle idleness). */
  keysPerPrefixMax: 256,
  /** Hand-pinned fields per prefix (PUT /policy). */
  pinsMax: LIMITS.hotFieldsMax,
  /** Learned decisions kept per prefix (hot fields, and demoted default fields). */
  decisionsPerPrefixMax: 96,
  /** Documents whose write digests a gateway remembers (to tell which fields a write changed). */
  digestKeysMax: 10_000,
  /** Records the healer and the policy cache read per listing page. */
  recordsPageMax: 100,
  /** Body of PUT /policy, bytes. */
  policyBodyBytesMax: 64 * 1024,
  /** Manifests the healer's lifecycle scan (expiry, idle -> ec, extra replicas) looks at per round: its pace. */
  lifecycleScanPerRound: 500,
  /** Keys the re-tiering job looks at per round, at most this many times its document rate. */
  retierScanFactor: 4,
} as const;

/** Hot replicas a document may have in all, extra read-heavy ones included. */
export const HOT_COPIES_MAX = 5;
