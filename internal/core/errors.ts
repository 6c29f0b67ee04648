/**
 * Typed errors with stable codes. Every operating error that can reach a client is a StrataError whose code
 * appears in ERROR_STATUS below; the HTTP layer maps codes to statuses from this one table and nowhere else.
 * Programmer errors are not StrataErrors: they are assertion failures (see assert.ts) and surface as 500.
 */

export const ERROR_STATUS = {
  // 4xx: the request is at fault; nothing was changed.
  INVALID_KEY: 400,
  INVALID_REQUEST: 400,
  INVALID_LIMIT: 400,
  INVALID_CURSOR: 400,
  INVALID_FIELDS: 400,
  INVALID_HEADER: 400,
  // A query parameter the route does not take (a misspelling would otherwise be ignored and the request applied).
  UNKNOWN_PARAMETER: 400,
  // /policy/:prefix and ?ttl_ms= (tiering): a prefix the prefix rule cannot produce, a malformed time to live.
  INVALID_PREFIX: 400,
  INVALID_TTL: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  IDEMPOTENCY_IN_PROGRESS: 409,
  // GET /watch: the version to resume from is older than the change history the metadata store still keeps;
  // the client must list again (GET /list) and watch from a fresh version.
  HISTORY_COMPACTED: 410,
  // Admin routes (node membership): unknown node, and removals or drains that would lose data or block writes.
  NODE_NOT_FOUND: 404,
  NODE_NOT_DRAINED: 409,
  NODE_NOT_EMPTY: 409,
  TOO_FEW_ACTIVE_NODES: 409,
  // POST /admin/format-version: a process that cannot read the target data format is registered (or lapsed too
  // recently to rule out), or the target is below the cluster's current format (a bump is never undone).
  FORMAT_BUMP_BLOCKED: 409,
  FORMAT_DOWNGRADE_REFUSED: 409,
  VERSION_MISMATCH: 412,
  ALREADY_EXISTS: 412,
  DOCUMENT_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  INVALID_JSON: 422,
  NOT_AN_OBJECT: 422,
  INVALID_STRATEGY: 422,
  INVALID_HOT_FIELDS: 422,
  DOCUMENT_TOO_DEEP: 422,
  TOO_MANY_FIELDS: 422,
  PATCH_FAILED: 422,
  // PUT /policy/:prefix: a body that is not a valid policy (unknown member, bad pins, bad lifecycle value).
  INVALID_POLICY: 422,
  IDEMPOTENCY_KEY_REUSED: 422,
  RATE_LIMITED: 429,
  HEADERS_TOO_LARGE: 431,
  // 5xx: the cluster could not do it right now; retrying later may succeed.
  INTERNAL: 500,
  INSUFFICIENT_NODES: 503,
  METADATA_UNAVAILABLE: 503,
  // A metadata record failed its checksum or is not the record asked for (a damaged metadata file or store): it is
  // never served. Other keys are unaffected; GET /cluster says what the operator should do. Not a bug, so not 500.
  METADATA_CORRUPT: 503,
  WAL_UNAVAILABLE: 503,
  WRITE_ABORTED: 503,
  // This gateway is already handling STRATA_REQUESTS_IN_FLIGHT_MAX requests; another gateway or a retry may serve it.
  OVERLOADED: 503,
  COMMIT_UNKNOWN: 504,
  // GET /watch: this gateway already serves its maximum of change-feed streams (STRATA_WATCH_STREAMS_MAX).
  TOO_MANY_WATCHERS: 503,
  // GET /watch: the client read the stream too slowly and the gateway dropped it (only ever sent as the stream's
  // final error event, after a 200).
  WATCH_TOO_SLOW: 503,
  // Storage-node internal codes (never sent to a gateway client as such).
  BLOB_NOT_FOUND: 404,
  BLOB_EXISTS: 409,
  BLOB_CORRUPT: 409,
  BLOB_TOO_LARGE: 413,
  // Out of space for new data (internal/reserve): the local disk is down to its reserve, or too few storage nodes
  // have room for a write's placement, or etcd's space quota is exhausted. Nothing was written; reads and deletes
  // still work. 507 Insufficient Storage: retrying unchanged does not help until space is freed.
  DISK_FULL: 507,
  NODE_UNAVAILABLE: 503,
  // Start-up of a process or of one storage node (internal/datadir): never sent to a client; the process exits
  // naming the directory, or the all-in-one keeps that one node down with the message as its reason.
  DATA_DIR_LOCKED: 503,
  DATA_DIR_UNUSABLE: 503,
  // A record (manifest, needle...) in a format newer than this release reads: never served, repaired or deleted.
  FORMAT_UNSUPPORTED: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

/** Codes after which the client may retry unchanged; they carry a Retry-After header. */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'INSUFFICIENT_NODES',
  'METADATA_UNAVAILABLE',
  'WAL_UNAVAILABLE',
  'WRITE_ABORTED',
  'RATE_LIMITED',
  'OVERLOADED',
  'NODE_UNAVAILABLE',
  'TOO_MANY_WATCHERS',
]);

export class StrataError extends Error {
  readonly code: ErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'StrataError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }
}

export function isStrataError(err: unknown, code?: ErrorCode): err is StrataError {
  return err instanceof StrataError && (code === undefined || err.code === code);
}

export function errorStatus(code: string): number {
  return (ERROR_STATUS as Record<string, number>)[code] ?? 500;
}
