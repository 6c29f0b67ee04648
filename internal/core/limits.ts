/**
 * Named limits. Every size, depth, count, queue and retry in Strata has one, defined here with its unit last.
 * Those a user may tune are also read by internal/config (which validates overrides against these defaults).
 */
export const LIMITS = {
  /** Request body, bytes (api.md: 16 MiB). */
  bodyBytesMax: 16 * 1024 * 1024,
  /** Nesting depth counted in objects and arrays. */
  depthMax: 64,
  /** Members and elements in one document, in total. */
  membersMax: 100_000,
  /** Key length in UTF-8 bytes. */
  keyBytesMax: 1024,
  /** Hot field paths named on one request or in one policy. */
  hotFieldsMax: 64,
  /** Length of one hot field path, bytes. */
  hotFieldBytesMax: 512,
  /** Fields named in one projection (`?fields=`). */
  projectionFieldsMax: 256,
  /** Operations in one JSON Patch. */
  patchOpsMax: 10_000,
  /** Keys in one `/list` page. */
  listLimitMax: 1000,
  listLimitDefault: 100,
  /** Idempotency-Key length and retention. */
  idempotencyKeyBytesMax: 256,
  idempotencyTtlMs: 24 * 60 * 60 * 1000,
  /** Times a write re-plans after losing a compare-and-set race before answering 503 ... */
  commitRetriesMax: 200,
  /** ... or how long it keeps trying, whichever comes first. */
  commitRetryWindowMs: 10_000,
  /** A blob larger than this is refused by a storage node. */
  blobBytesMax: 64 * 1024 * 1024,
  /** The opaque self-describing metadata a blob may carry (bytes of JSON). */
  blobMetaBytesMax: 8 * 1024,
  /** Blobs returned in one inventory page of a storage node. */
  inventoryPageMax: 1000,
  /** Header block of one request, bytes (431 beyond it). */
  headerBytesMax: 16 * 1024,
} as const;

/** Reed-Solomon geometry of the cold tier: 4 data shards + 2 parity shards. */
export const EC_DATA_SHARDS = 4;
export const EC_PARITY_SHARDS = 2;
export const EC_TOTAL_SHARDS = EC_DATA_SHARDS + EC_PARITY_SHARDS;
/** Acknowledge a cold write once this many shards are durable: any one more loss is still survivable. */
export const EC_WRITE_QUORUM = 5;

export const HOT_REPLICAS = 3;
/** Acknowledge a hot write once this many replicas are durable. */
export const HOT_WRITE_QUORUM = 2;
