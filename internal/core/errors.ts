/**
 * Typed errors with stable codes. Every operating error that can reach a client is a StrataError whose code is a
 * row of ERROR_TABLE below; the HTTP layer takes status, Retry-After and what a gateway client sees from this one
 * table and nowhere else. Programmer errors are not StrataErrors: they are assertion failures (see assert.ts) and
 * surface as 500.
 */

/** What the HTTP layer knows about one error code. */
export interface ErrorSpec {
  /** The HTTP status of an answer with this code. */
  readonly status: number;
  /** The same request may succeed if sent again unchanged: the answer carries Retry-After (as every 503 does). */
  readonly retryable: boolean;
  /**
   * A gateway answers with this code as is. False only for 5xx codes about one storage node or one process's
   * start-up, which a gateway client sees as 503 INSUFFICIENT_NODES ("the cluster could not do it right now").
   */
  readonly clientFacing: boolean;
}

/** Freezes the table and keeps its row names as the type ErrorCode. */
function errorTable<Table extends Record<string, ErrorSpec>>(table: Table): Readonly<Record<keyof Table, ErrorSpec>> {
  return Object.freeze(table);
}

export const ERROR_TABLE = errorTable({
  // 4xx: the request is at fault; nothing was changed.
  INVALID_KEY: { status: 400, retryable: false, clientFacing: true },
  INVALID_REQUEST: { status: 400, retryable: false, clientFacing: true },
  INVALID_LIMIT: { status: 400, retryable: false, clientFacing: true },
  INVALID_CURSOR: { status: 400, retryable: false, clientFacing: true },
  INVALID_FIELDS: { status: 400, retryable: false, clientFacing: true },
  INVALID_HEADER: { status: 400, retryable: false, clientFacing: true },
  // A query parameter the route does not take (a misspelling would otherwise be ignored and the request applied).
  UNKNOWN_PARAMETER: { status: 400, retryable: false, clientFacing: true },
  // /policy/:prefix and ?ttl_ms= (tiering): a prefix the prefix rule cannot produce, a malformed time to live.
  INVALID_PREFIX: { status: 400, retryable: false, clientFacing: true },
  INVALID_TTL: { status: 400, retryable: false, clientFacing: true },
  UNAUTHORIZED: { status: 401, retryable: false, clientFacing: true },
  FORBIDDEN: { status: 403, retryable: false, clientFacing: true },
  NOT_FOUND: { status: 404, retryable: false, clientFacing: true },
  ROUTE_NOT_FOUND: { status: 404, retryable: false, clientFacing: true },
  METHOD_NOT_ALLOWED: { status: 405, retryable: false, clientFacing: true },
  REQUEST_TIMEOUT: { status: 408, retryable: false, clientFacing: true },
  IDEMPOTENCY_IN_PROGRESS: { status: 409, retryable: false, clientFacing: true },
  // GET /watch: the version to resume from is older than the change history the metadata store still keeps;
  // the client must list again (GET /list) and watch from a fresh version.
  HISTORY_COMPACTED: { status: 410, retryable: false, clientFacing: true },
  // Admin routes (node membership): unknown node, and removals or drains that would lose data or block writes.
  NODE_NOT_FOUND: { status: 404, retryable: false, clientFacing: true },
  NODE_NOT_DRAINED: { status: 409, retryable: false, clientFacing: true },
  NODE_NOT_EMPTY: { status: 409, retryable: false, clientFacing: true },
  TOO_FEW_ACTIVE_NODES: { status: 409, retryable: false, clientFacing: true },
  // POST /admin/format-version: a process that cannot read the target data format is registered (or lapsed too
  // recently to rule out), or the target is below the cluster's current format (a bump is never undone).
  FORMAT_BUMP_BLOCKED: { status: 409, retryable: false, clientFacing: true },
  FORMAT_DOWNGRADE_REFUSED: { status: 409, retryable: false, clientFacing: true },
  VERSION_MISMATCH: { status: 412, retryable: false, clientFacing: true },
  ALREADY_EXISTS: { status: 412, retryable: false, clientFacing: true },
  DOCUMENT_TOO_LARGE: { status: 413, retryable: false, clientFacing: true },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, retryable: false, clientFacing: true },
  INVALID_JSON: { status: 422, retryable: false, clientFacing: true },
  NOT_AN_OBJECT: { status: 422, retryable: false, clientFacing: true },
  INVALID_STRATEGY: { status: 422, retryable: false, clientFacing: true },
  INVALID_HOT_FIELDS: { status: 422, retryable: false, clientFacing: true },
  DOCUMENT_TOO_DEEP: { status: 422, retryable: false, clientFacing: true },
  TOO_MANY_FIELDS: { status: 422, retryable: false, clientFacing: true },
  PATCH_FAILED: { status: 422, retryable: false, clientFacing: true },
  // PUT /policy/:prefix: a body that is not a valid policy (unknown member, bad pins, bad lifecycle value).
  INVALID_POLICY: { status: 422, retryable: false, clientFacing: true },
  IDEMPOTENCY_KEY_REUSED: { status: 422, retryable: false, clientFacing: true },
  RATE_LIMITED: { status: 429, retryable: true, clientFacing: true },
  HEADERS_TOO_LARGE: { status: 431, retryable: false, clientFacing: true },
  // 5xx: the cluster could not do it right now; retrying later may succeed.
  INTERNAL: { status: 500, retryable: false, clientFacing: true },
  INSUFFICIENT_NODES: { status: 503, retryable: true, clientFacing: true },
  METADATA_UNAVAILABLE: { status: 503, retryable: true, clientFacing: true },
  // A metadata record failed its checksum or is not the record asked for (a damaged metadata file or store): it is
  // never served. Other keys are unaffected; GET /cluster says what the operator should do. Not a bug, so not 500.
  METADATA_CORRUPT: { status: 503, retryable: false, clientFacing: true },
  WAL_UNAVAILABLE: { status: 503, retryable: true, clientFacing: true },
  WRITE_ABORTED: { status: 503, retryable: true, clientFacing: true },
  // This gateway is already handling STRATA_REQUESTS_IN_FLIGHT_MAX requests; another gateway or a retry may serve it.
  OVERLOADED: { status: 503, retryable: true, clientFacing: true },
  COMMIT_UNKNOWN: { status: 504, retryable: false, clientFacing: true },
  // GET /watch: this gateway already serves its maximum of change-feed streams (STRATA_WATCH_STREAMS_MAX).
  TOO_MANY_WATCHERS: { status: 503, retryable: true, clientFacing: true },
  // GET /watch: the client read the stream too slowly and the gateway dropped it (only ever sent as the stream's
  // final error event, after a 200).
  WATCH_TOO_SLOW: { status: 503, retryable: false, clientFacing: true },
  // Storage-node codes: a node answers a gateway with them, and the gateway's read and write paths act on them
  // rather than pass them on (a 4xx that did reach errorResponse would go out as is, like every 4xx).
  BLOB_NOT_FOUND: { status: 404, retryable: false, clientFacing: true },
  BLOB_EXISTS: { status: 409, retryable: false, clientFacing: true },
  BLOB_CORRUPT: { status: 409, retryable: false, clientFacing: true },
  BLOB_TOO_LARGE: { status: 413, retryable: false, clientFacing: true },
  // Out of space for new data (internal/reserve): the local disk is down to its reserve, or too few storage nodes
  // have room for a write's placement, or etcd's space quota is exhausted. Nothing was written; reads and deletes
  // still work. 507 Insufficient Storage: retrying unchanged does not help until space is freed.
  DISK_FULL: { status: 507, retryable: false, clientFacing: true },
  // One storage node did not answer, or not in the protocol: a gateway client sees 503 INSUFFICIENT_NODES.
  NODE_UNAVAILABLE: { status: 503, retryable: true, clientFacing: false },
  // Start-up of a process or of one storage node (internal/datadir): never sent to a client; the process exits
  // naming the directory, or the all-in-one keeps that one node down with the message as its reason.
  DATA_DIR_LOCKED: { status: 503, retryable: false, clientFacing: false },
  DATA_DIR_UNUSABLE: { status: 503, retryable: false, clientFacing: false },
  // A record (manifest, needle...) in a format newer than this release reads: never served, repaired or deleted.
  FORMAT_UNSUPPORTED: { status: 503, retryable: false, clientFacing: false },
});

export type ErrorCode = keyof typeof ERROR_TABLE;

const statuses = Object.entries(ERROR_TABLE).map(([code, spec]) => [code, spec.status]);
/** Each code's status alone, for the call sites that need nothing else. */
export const ERROR_STATUS = Object.freeze(Object.fromEntries(statuses)) as Readonly<Record<ErrorCode, number>>;

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
    return ERROR_TABLE[this.code].status;
  }
}

export function isStrataError(err: unknown, code?: ErrorCode): err is StrataError {
  return err instanceof StrataError && (code === undefined || err.code === code);
}

export function errorStatus(code: string): number {
  return Object.hasOwn(ERROR_TABLE, code) ? ERROR_TABLE[code as ErrorCode].status : 500;
}
