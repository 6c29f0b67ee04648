/**
 * StrataClient: a typed client for the gateway's HTTP API (docs/api.md), used by the CLI, the benchmarks and the
 * tests. It only speaks HTTP; it imports no server code, so it can be lifted into its own package.
 *
 * Retries. A request is repeated after a 503 (or 429) or a network error only when repeating it cannot apply it
 * twice: reads, and writes, patches and deletes that carry `If-Match` or an `Idempotency-Key`. A plain write is
 * sent once: after a network error it may have committed, and a 503 may come from a proxy in front of a gateway
 * that did apply it, so a blind retry could overwrite a newer write by someone else. Delays grow exponentially
 * from `retryBaseMs` with full jitter, and are never shorter than the server's `Retry-After`.
 *
 * Big numbers. Documents keep their number text (`12345678901234567890` reads back as written), but
 * `JSON.parse` turns numbers beyond 2^53 into the nearest double. `read()` therefore returns the body's `text`
 * exactly as the server sent it, and a `json()` helper for when precision does not matter. Write a `string`
 * body to store number text that JavaScript cannot represent.
 */
import type { ErrorCode } from '../core/errors.js';
import { readEventStream } from './event-stream.js';

export type Strategy = 'replication' | 'ec' | 'field_hybrid';
export type JsonValue = null | boolean | number | string | JsonValue[] | { [member: string]: JsonValue };
export type JsonObject = { [member: string]: JsonValue };

/** RFC 6902 operations. */
export type JsonPatchOperation =
  | { op: 'add' | 'replace' | 'test'; path: string; value: JsonValue }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

export type PatchKind = 'json-patch' | 'merge-patch';

/** A code the API documents, or one a newer server (or a proxy, `UNEXPECTED_RESPONSE`) sent. */
export type StrataErrorCode = ErrorCode | 'UNEXPECTED_RESPONSE' | (string & {});

export interface StrataClientOptions {
  /** The gateway, e.g. `http://127.0.0.1:8000` (a trailing slash is ignored). */
  baseUrl: string;
  /** Injected for tests and for runtimes without a global fetch. */
  fetch?: typeof fetch;
  /** Extra attempts after the first, for requests safe to repeat. Default 3. */
  retries?: number;
  /** First backoff step; attempt n waits up to retryBaseMs * 2^n. Default 100. */
  retryBaseMs?: number;
  /** Deadline of one attempt. Default 30 000. */
  timeoutMs?: number;
  /** Sent as `Authorization: Bearer <apiKey>`, for gateways behind an authenticating proxy. */
  apiKey?: string;
  /** Injected so that tests can make jitter deterministic; default Math.random. */
  random?: () => number;
  /** Injected so that tests can skip real waiting; default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

/** Limits on what a caller can ask for, so that a typo cannot make a client wait for hours. */
const RETRIES_MAX = 10;
const RETRY_DELAY_MS_MAX = 30_000;
const DEFAULT_RETRIES = 3;
const DEFAULT_RETRY_BASE_MS = 100;
const DEFAULT_TIMEOUT_MS = 30_000;
/** Keys per page when `listKeys()` walks a prefix; the API allows 1 to 1000. */
const LIST_PAGE_KEYS_DEFAULT = 1000;
/** Four heartbeats of the gateway's default interval (15 s) without a byte: the connection is gone. */
const WATCH_IDLE_TIMEOUT_MS_DEFAULT = 60_000;

/** The API answered with an error (`{"error": {"code", "message"}}`). */
export class StrataApiError extends Error {
  readonly status: number;
  readonly code: StrataErrorCode;
  /** From `Retry-After` (sent with every 503 and 429), in milliseconds; null when absent. */
  readonly retryAfterMs: number | null;
  /** How many times the request was sent. */
  readonly attempts: number;

  constructor(status: number, code: StrataErrorCode, message: string, retryAfterMs: number | null, attempts: number) {
    super(message);
    this.name = 'StrataApiError';
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
    this.attempts = attempts;
  }
}

/** No HTTP answer at all: connection refused or reset, DNS failure, or the attempt's deadline passed. */
export class StrataNetworkError extends Error {
  readonly code: 'UNREACHABLE' | 'TIMEOUT';
  readonly attempts: number;

  constructor(code: 'UNREACHABLE' | 'TIMEOUT', message: string, attempts: number, cause: unknown) {
    super(message, { cause });
    this.name = 'StrataNetworkError';
    this.code = code;
    this.attempts = attempts;
  }
}

export interface ConditionalOptions {
  /** The version the key must have now (sent as `If-Match: "<version>"`); makes the request safe to retry. */
  ifMatch?: string;
  /** Makes a retry return the first attempt's outcome; makes the request safe to retry. */
  idempotencyKey?: string;
}

export interface WriteOptions extends ConditionalOptions {
  strategy?: Strategy;
  /** Plain member names or JSON Pointers. */
  hotFields?: string[];
  /** `'*'`: create only (412 ALREADY_EXISTS when the key exists). Not by itself a reason to retry. */
  ifNoneMatch?: '*';
  /** Time to live in milliseconds: the document reads as absent once it has passed (`ttl_ms`). */
  ttlMs?: number;
}

export interface PatchOptions extends ConditionalOptions {
  /** Default: an array is a JSON Patch, an object a Merge Patch; needed when the patch is given as text. */
  kind?: PatchKind;
  /** A new time to live in milliseconds, counted from this patch (`ttl_ms`); without it the document keeps its own. */
  ttlMs?: number;
}

export interface ReadOptions {
  /** Project to these fields (plain names or JSON Pointers). */
  fields?: string[];
  /** A version the caller holds; when it is current the answer is `{ notModified: true }`. */
  ifNoneMatch?: string;
}

export interface ByteCounts {
  logical: number;
  hot: number;
  cold: number;
}

/** The body of a 200 from /write and /patch. */
export interface WriteResult {
  status: 'ok';
  key: string;
  version: string;
  strategy: Strategy;
  is_pure_hot_update: boolean;
  hot_fields: string[];
  bytes: ByteCounts;
  partial: boolean;
  latency_ms: number;
}

export interface DeleteResult {
  status: 'ok';
  key: string;
  version: string;
}

export interface ReadResult {
  notModified: false;
  /** The body exactly as sent: compact JSON, members in written order, numbers with their original digits. */
  text: string;
  /** `JSON.parse(text)`. Numbers beyond 2^53 lose precision here; use `text` when they matter. */
  json<T = JsonObject>(): T;
  version: string;
  /** True for a projection (`fields`), whose ETag is weak. */
  projection: boolean;
  strategy: Strategy;
  /** Whether the cold tier was read (false when every requested field is hot). */
  coldRead: boolean;
}

export interface NotModified {
  notModified: true;
  version: string;
}

export type BlobState = 'ok' | 'missing' | 'corrupt' | 'unknown';

export interface StatResult {
  key: string;
  version: string;
  strategy: Strategy;
  hot_fields: string[];
  configured_hot_fields: string[];
  bytes: ByteCounts & { physical: number };
  cold_hash: string | null;
  dirty: boolean;
  created_at: string;
  updated_at: string;
  /** When the time to live ends; null when the document never expires; absent from older servers. */
  expires_at?: string | null;
  write_id: string;
  hot: { part: string; node: string; blob: string; size: number; state: BlobState }[];
  cold: { index: number; node: string; blob: string; size: number; state: BlobState }[];
  /** How the cold part is stored (docs/api.md "GET /stat/K"); null without a cold part; absent from older servers. */
  cold_layout?: {
    layout: 'shards' | 'with_replicas';
    codec: 'identity' | 'brotli' | 'deflate';
    compression_tried: boolean;
    text_bytes: number;
    stored_bytes: number;
    blob_bytes: number;
  } | null;
}

/** What a node said about its copy just now (`GET /stat/KEY?verify=true`). */
export type LiveBlobState = 'ok' | 'missing' | 'corrupt' | 'unreachable';

export interface VerifiedStatResult extends Omit<StatResult, 'hot' | 'cold'> {
  hot: { part: string; node: string; blob: string; size: number; state: LiveBlobState }[];
  cold: { index: number; node: string; blob: string; size: number; state: LiveBlobState }[];
  protection: {
    full: boolean;
    readable: boolean;
    hot: { ok: number; total: number };
    cold: { ok: number; total: number; needed: number };
  };
}

export interface ListOptions {
  prefix?: string;
  /** 1 to 1000; default 100 (server side). */
  limit?: number;
  cursor?: string;
}

export interface ListPage {
  keys: string[];
  next_cursor: string | null;
}

export interface HealthResult {
  status: 'healthy';
  service: string;
  nodes_healthy: number;
  nodes_total: number;
  metadata: string;
  wal: string;
}

export interface ReadyResult {
  ready: boolean;
  /** Why the gateway is not ready (empty when it is). */
  problems: string[];
}

export interface ClusterNode {
  id: string;
  address: string;
  zone: string | null;
  state: 'healthy' | 'down';
  draining?: boolean;
  last_seen: string | null;
  last_error: string | null;
  bytes_used: number | null;
  bytes_free: number | null;
  blobs: number | null;
}

/** GET /admin/format-version (api.md "Data format version"). */
export interface FormatVersionResult {
  data_format: number;
  format_max: number;
  recorded: boolean;
  processes: { id: string; role: string; format_max: number; alive: boolean; last_heartbeat: string }[];
  blockers: { id: string; role: string; format_max: number; alive: boolean; why: string }[];
}

export interface FormatBumpResult {
  data_format: number;
  changed: boolean;
}

export interface ClusterResult {
  nodes: ClusterNode[];
  healer_leader: string | null;
  metadata_backend: string;
  wal_backend: string;
  repair_backlog: number | null;
}

export interface StorageUsageResult {
  total_system_size: number;
  logical_bytes: number;
  amplification: number;
  live_keys: number;
  pending_gc_bytes: number;
  reclaimable_bytes: number;
  reclaimed_bytes: number;
  per_node: Record<
    string,
    {
      state: string;
      blobs: number | null;
      stored_bytes: number | null;
      referenced_bytes: number;
      reclaimable_bytes: number | null;
      reclaimed_bytes: number | null;
    }
  >;
}

/** GET /admin/nodes: the node registry as operators change it. */
export interface RegisteredNode {
  id: string;
  address: string;
  zone: string | null;
  /** `draining`: out of placement for new writes while the healer moves its blobs elsewhere. */
  state: 'active' | 'draining';
  /** Its heartbeat lease has not expired. */
  alive: boolean;
  last_heartbeat: string;
}

/** GET /healer: the elected healer and its journal, newest first. */
export interface HealerResult {
  leader: string | null;
  repair_backlog: number | null;
  /** Why garbage collection and rollback keep blobs they would otherwise delete; null when nothing is held. */
  gc_hold: string | null;
  recent: { at: string; kind: 'repaired' | 'unrepairable'; key: string; detail: string }[];
}

/** GET /request_stats: this gateway's request counts since it started. */
export interface RequestStatsResult {
  since: string;
  total: number;
  by_class: { '2xx': number; '3xx': number; '4xx': number; '5xx': number };
  /** The last minute, one count per second, oldest first. */
  per_second: number[];
}

/** One entry of GET /policy. */
export interface PolicySummary {
  prefix: string;
  hot_fields: string[];
  epoch: number;
  changed_at: string | null;
}

/** GET and PUT /policy/{prefix}: a prefix's hot fields in force and why (docs/tiering.md). */
export interface PolicyResult {
  prefix: string;
  hot_fields: string[];
  pins: { api: string[]; config: string[] };
  defaults: string[];
  learned: { field: string; hot: boolean; since: string | null; reason: string }[];
  fields: {
    field: string;
    hot: boolean;
    score: number;
    projection_reads: number;
    changes: number;
    value_bytes: number;
    benefit_bytes: number;
    cost_bytes: number;
    move_bytes: number;
  }[];
  thresholds: { promote_score: number; demote_score: number; dwell_ms: number; half_life_ms: number; promote_margin: number };
  cost_model: { hot_extra_copies: number; cold_write_copies: number; hot_write_copies: number; stored_byte_weight: number };
  stats: {
    at: string | null;
    reads: number;
    projections: number;
    changes: number;
    cold_bytes: number;
    hot_bytes: number;
    documents_tracked: number;
  };
  epoch: number;
  changed_at: string | null;
  retier: { epoch: number; done_epoch: number; cursor: string | null; complete: boolean };
  lifecycle: { idle_to_ec_after_ms: number | null; configured: number | null; override_explicit: boolean };
  read_heavy: { key: string; reads: number; last_read_at: string | null }[];
}

/** PUT /policy/{prefix}: members left out stay as they are. */
export interface PolicyChange {
  /** Field paths to keep hot under the prefix; `[]` or null clears the pins. */
  pins?: string[] | null;
  /** Documents idle this long move to `ec`; 0 never; null: the configured default. */
  idleToEcAfterMs?: number | null;
  /** Also move documents whose writer named a strategy. */
  overrideExplicit?: boolean;
}

/** What `watch()` yields: `ready` once, then one `change` per commit under the prefix, in commit order. */
export type WatchEvent =
  | { type: 'ready'; prefix: string; version: string }
  | { type: 'change'; key: string; version: string; kind: 'put' | 'delete' };

export interface WatchOptions {
  /** Start after this version (a write's version or an earlier event's); default: the cluster's current one. */
  since?: string;
  /** Ends the stream (the iterator returns, nothing is thrown). */
  signal?: AbortSignal;
  /**
   * A connection silent this long is taken for dead and replaced (the gateway sends a heartbeat every 15 s by
   * default). Default 60 000.
   */
  idleTimeoutMs?: number;
}

interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path and query, already encoded. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Whether sending it twice cannot apply it twice (see the module comment). */
  safeToRetry: boolean;
  /** Statuses that are answers rather than errors (304 for conditional reads, 503 for /health/ready). */
  acceptStatuses?: readonly number[];
  /** The caller's cancellation: an aborted request is not retried, and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** The deadline covers the answer's headers only, not its body (a change feed streams for as long as it is read). */
  streaming?: boolean;
}

export class StrataClient {
  readonly baseUrl: string;
  private readonly fetchFn: typeof fetch;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly timeoutMs: number;
  private readonly apiKey: string | undefined;
  private readonly random: () => number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(options: StrataClientOptions) {
    let url: URL;
    try {
      url = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`baseUrl is not a URL: ${JSON.stringify(options.baseUrl)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`baseUrl must be http or https: ${options.baseUrl}`);
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.fetchFn = options.fetch ?? globalThis.fetch;
    this.retries = checkedInt('retries', options.retries ?? DEFAULT_RETRIES, 0, RETRIES_MAX);
    this.retryBaseMs = checkedInt('retryBaseMs', options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS, 0, RETRY_DELAY_MS_MAX);
    this.timeoutMs = checkedInt('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS, 1, 24 * 3600 * 1000);
    this.apiKey = options.apiKey;
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  /**
   * Stores `doc` under `key`, replacing any earlier version. A string is sent as is (use it to keep number text
   * JavaScript cannot hold); an object is serialised with JSON.stringify.
   */
  async write(key: string, doc: JsonObject | string, options: WriteOptions = {}): Promise<WriteResult> {
    // encodeURIComponent, unlike URLSearchParams, keeps the commas that separate hot fields while encoding
    // those inside names (%2C), and sends '+' as %2B so form decoding cannot turn it into a space.
    let search = `key=${encodeURIComponent(key)}`;
    if (options.strategy !== undefined) search += `&strategy=${encodeURIComponent(options.strategy)}`;
    if (options.hotFields !== undefined) search += `&hot_fields=${fieldList(options.hotFields)}`;
    if (options.ttlMs !== undefined) search += `&ttl_ms=${encodeURIComponent(String(options.ttlMs))}`;
    const headers: Record<string, string> = { 'content-type': 'application/json', ...conditionalHeaders(options) };
    if (options.ifNoneMatch !== undefined) headers['if-none-match'] = options.ifNoneMatch;
    const res = await this.request({
      method: 'POST',
      path: `/write?${search}`,
      headers,
      body: typeof doc === 'string' ? doc : JSON.stringify(doc),
      safeToRetry: isConditional(options),
    });
    return (await res.json()) as WriteResult;
  }

  read(key: string, options?: ReadOptions & { ifNoneMatch?: undefined }): Promise<ReadResult>;
  read(key: string, options: ReadOptions): Promise<ReadResult | NotModified>;
  async read(key: string, options: ReadOptions = {}): Promise<ReadResult | NotModified> {
    const headers: Record<string, string> = {};
    if (options.ifNoneMatch !== undefined) headers['if-none-match'] = quoteVersion(options.ifNoneMatch);
    const query = options.fields !== undefined ? `?fields=${fieldList(options.fields)}` : '';
    const res = await this.request({
      method: 'GET',
      path: `/read/${encodeURIComponent(key)}${query}`,
      headers,
      safeToRetry: true,
      acceptStatuses: [304],
    });
    const etag = res.headers.get('etag') ?? '';
    const version = res.headers.get('x-strata-version') ?? etag.replace(/^W\//, '').replace(/"/g, '');
    if (res.status === 304) {
      await res.body?.cancel();
      return { notModified: true, version };
    }
    const text = await res.text();
    return {
      notModified: false,
      text,
      json: <T = JsonObject>() => JSON.parse(text) as T,
      version,
      projection: etag.startsWith('W/'),
      strategy: (res.headers.get('x-strata-strategy') ?? '') as Strategy,
      coldRead: res.headers.get('x-strata-cold-read') !== '0',
    };
  }

  /** JSON Patch (an array of operations) or JSON Merge Patch (an object); text needs `kind`. */
  async patch(key: string, patch: JsonPatchOperation[] | JsonObject | string, options: PatchOptions = {}): Promise<WriteResult> {
    const kind = options.kind ?? (typeof patch === 'string' ? undefined : Array.isArray(patch) ? 'json-patch' : 'merge-patch');
    // Text without a kind goes as application/json, and the gateway decides by its shape (array or object).
    const contentType =
      kind === 'json-patch' ? 'application/json-patch+json' : kind === 'merge-patch' ? 'application/merge-patch+json' : 'application/json';
    const ttl = options.ttlMs !== undefined ? `?ttl_ms=${encodeURIComponent(String(options.ttlMs))}` : '';
    const res = await this.request({
      method: 'PATCH',
      path: `/patch/${encodeURIComponent(key)}${ttl}`,
      headers: { 'content-type': contentType, ...conditionalHeaders(options) },
      body: typeof patch === 'string' ? patch : JSON.stringify(patch),
      safeToRetry: isConditional(options),
    });
    return (await res.json()) as WriteResult;
  }

  async delete(key: string, options: ConditionalOptions = {}): Promise<DeleteResult> {
    const res = await this.request({
      method: 'DELETE',
      path: `/delete/${encodeURIComponent(key)}`,
      headers: conditionalHeaders(options),
      safeToRetry: isConditional(options),
    });
    return (await res.json()) as DeleteResult;
  }

  stat(key: string): Promise<StatResult>;
  /** With verify, every node is asked about its copy now, and the answer says how well the key is protected. */
  stat(key: string, options: { verify: true }): Promise<VerifiedStatResult>;
  async stat(key: string, options: { verify?: boolean } = {}): Promise<StatResult | VerifiedStatResult> {
    const query = options.verify === true ? '?verify=true' : '';
    return this.getJson<StatResult>(`/stat/${encodeURIComponent(key)}${query}`);
  }

  /** One page of keys in UTF-8 byte order. */
  async list(options: ListOptions = {}): Promise<ListPage> {
    const query = new URLSearchParams();
    if (options.prefix !== undefined) query.set('prefix', options.prefix);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.cursor !== undefined) query.set('cursor', options.cursor);
    const search = query.toString();
    return this.getJson<ListPage>(`/list${search ? `?${search}` : ''}`);
  }

  /** Every live key with `prefix`, page after page, in UTF-8 byte order. */
  async *listKeys(prefix = '', options: { pageKeys?: number } = {}): AsyncGenerator<string, void, undefined> {
    const limit = options.pageKeys ?? LIST_PAGE_KEYS_DEFAULT;
    let cursor: string | undefined;
    for (;;) {
      const page = await this.list({ prefix, limit, ...(cursor !== undefined ? { cursor } : {}) });
      yield* page.keys;
      if (page.next_cursor === null || page.keys.length === 0) return;
      cursor = page.next_cursor;
    }
  }

  async health(): Promise<HealthResult> {
    return this.getJson<HealthResult>('/health');
  }

  /** Readiness is an answer either way, so a 503 here is returned (not retried, not thrown). */
  async ready(): Promise<ReadyResult> {
    const res = await this.request({ method: 'GET', path: '/health/ready', safeToRetry: false, acceptStatuses: [503] });
    const body = (await res.json()) as { problems?: string[] };
    return { ready: res.status === 200, problems: body.problems ?? [] };
  }

  async cluster(): Promise<ClusterResult> {
    return this.getJson<ClusterResult>('/cluster');
  }

  async nodeStatus(): Promise<Record<string, 'healthy' | 'down'>> {
    return this.getJson<Record<string, 'healthy' | 'down'>>('/node_status');
  }

  async storageUsage(): Promise<StorageUsageResult> {
    return this.getJson<StorageUsageResult>('/storage_usage');
  }

  async formatVersion(): Promise<FormatVersionResult> {
    return this.getJson<FormatVersionResult>('/admin/format-version');
  }

  /** Raises the cluster's data format; safe to retry (the bump is idempotent, and never lowers the version). */
  async bumpFormatVersion(to: number): Promise<FormatBumpResult> {
    const res = await this.request({
      method: 'POST',
      path: '/admin/format-version',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to }),
      safeToRetry: true,
    });
    return (await res.json()) as FormatBumpResult;
  }

  /** Liveness: resolves while the gateway's process serves requests. */
  async live(): Promise<{ status: 'alive' }> {
    return this.getJson<{ status: 'alive' }>('/health/live');
  }

  /** The elected healer, its backlog and its latest repairs (`limit` journal entries, newest first). */
  async healer(options: { limit?: number } = {}): Promise<HealerResult> {
    return this.getJson<HealerResult>(`/healer${options.limit !== undefined ? `?limit=${encodeURIComponent(String(options.limit))}` : ''}`);
  }

  async requestStats(): Promise<RequestStatsResult> {
    return this.getJson<RequestStatsResult>('/request_stats');
  }

  /** The gateway's Prometheus metrics, as text. */
  async metrics(): Promise<string> {
    const res = await this.request({ method: 'GET', path: '/metrics', headers: { accept: 'text/plain' }, safeToRetry: true });
    return res.text();
  }

  /** The OpenAPI 3 description of every route this gateway serves (what `/docs` renders). */
  async openapi(): Promise<Record<string, unknown>> {
    return this.getJson<Record<string, unknown>>('/openapi.json');
  }

  /** The storage nodes in the registry, with their placement state and heartbeat. */
  async listNodes(): Promise<RegisteredNode[]> {
    return (await this.getJson<{ nodes: RegisteredNode[] }>('/admin/nodes')).nodes;
  }

  /**
   * Takes a node out of placement for new writes; the healer then moves its blobs elsewhere. Idempotent, so
   * retried. Refused with TOO_FEW_ACTIVE_NODES when fewer than six active nodes would remain.
   */
  async drainNode(id: string): Promise<RegisteredNode> {
    return (await this.postJson<{ node: RegisteredNode }>(`/admin/nodes/${encodeURIComponent(id)}/drain`)).node;
  }

  /** Takes a draining node back into placement. Idempotent, so retried. */
  async activateNode(id: string): Promise<RegisteredNode> {
    return (await this.postJson<{ node: RegisteredNode }>(`/admin/nodes/${encodeURIComponent(id)}/activate`)).node;
  }

  /**
   * Removes a drained node that no live document references any more (NODE_NOT_DRAINED, NODE_NOT_EMPTY
   * otherwise). Sent once: a repeat after a lost answer would report NODE_NOT_FOUND for a removal that worked.
   */
  async removeNode(id: string): Promise<{ removed: string }> {
    const res = await this.request({ method: 'DELETE', path: `/admin/nodes/${encodeURIComponent(id)}`, safeToRetry: false });
    return (await res.json()) as { removed: string };
  }

  /** Every key prefix with a policy record, and its hot fields now. */
  async listPolicies(): Promise<PolicySummary[]> {
    return (await this.getJson<{ prefixes: PolicySummary[] }>('/policy')).prefixes;
  }

  /** A prefix's hot fields and why. The prefix is the start of keys (`user:`); '' is the root prefix. */
  async policy(prefix: string): Promise<PolicyResult> {
    return this.getJson<PolicyResult>(`/policy/${encodeURIComponent(prefix)}`);
  }

  /** Pins hot fields by hand and sets the prefix's lifecycle; setting the same values again changes nothing. */
  async setPolicy(prefix: string, change: PolicyChange): Promise<PolicyResult> {
    const body: Record<string, unknown> = {};
    if (change.pins !== undefined) body.pins = change.pins;
    if (change.idleToEcAfterMs !== undefined) body.idle_to_ec_after_ms = change.idleToEcAfterMs;
    if (change.overrideExplicit !== undefined) body.override_explicit = change.overrideExplicit;
    const res = await this.request({
      method: 'PUT',
      path: `/policy/${encodeURIComponent(prefix)}`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      safeToRetry: true,
    });
    return (await res.json()) as PolicyResult;
  }

  /**
   * The change feed of keys under `prefix`: `ready`, then one `change` per commit, until `signal` aborts or the
   * caller stops iterating. A dropped or silent connection, a 503 and a stream the gateway ends with a retryable
   * error are resumed from the last version seen, so nothing is missed and nothing repeats; after `retries`
   * failed attempts in a row the last error is thrown. HISTORY_COMPACTED (410) is thrown at once: the changes
   * since `since` are gone, so list the keys again and watch from a fresh version.
   */
  async *watch(prefix = '', options: WatchOptions = {}): AsyncGenerator<WatchEvent, void, undefined> {
    const idleTimeoutMs = checkedInt('idleTimeoutMs', options.idleTimeoutMs ?? WATCH_IDLE_TIMEOUT_MS_DEFAULT, 1, 24 * 3600 * 1000);
    let last = options.since;
    let announced = false;
    let failures = 0;
    for (;;) {
      if (options.signal?.aborted) return;
      const idle = new AbortController();
      const signal = options.signal ? AbortSignal.any([options.signal, idle.signal]) : idle.signal;
      let failure: StrataApiError | StrataNetworkError;
      try {
        const query = new URLSearchParams();
        if (prefix !== '') query.set('prefix', prefix);
        if (last !== undefined) query.set('since', last);
        const search = query.toString();
        const res = await this.request({
          method: 'GET',
          path: `/watch${search ? `?${search}` : ''}`,
          headers: { accept: 'text/event-stream' },
          // This loop resumes on its own, from the last version seen.
          safeToRetry: false,
          streaming: true,
          signal,
        });
        let timer = setTimeout(() => idle.abort(), idleTimeoutMs);
        const body = res.body!.pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform(chunk, controller) {
              clearTimeout(timer);
              timer = setTimeout(() => idle.abort(), idleTimeoutMs);
              controller.enqueue(chunk);
            },
          }),
          { signal },
        );
        try {
          for await (const message of readEventStream(body)) {
            const data = JSON.parse(message.data) as Record<string, unknown>;
            if (message.event === 'error') {
              const error = (data.error ?? {}) as { code?: string; message?: string };
              throw new StrataApiError(200, error.code ?? 'UNEXPECTED_RESPONSE', error.message ?? 'the change feed ended with an error', null, failures + 1);
            }
            let event: WatchEvent | null = null;
            if (message.event === 'ready') {
              last ??= String(data.version);
              if (!announced) event = { type: 'ready', prefix: String(data.prefix), version: String(data.version) };
              announced = true;
            } else if (message.event === 'change') {
              // Progress: only a change, not a connection that opens and fails again, resets the count of failures.
              failures = 0;
              last = String(data.version);
              event = { type: 'change', key: String(data.key), version: last, kind: data.kind === 'delete' ? 'delete' : 'put' };
            }
            if (event === null) continue;
            // A caller slow to take the next event is not a silent connection: no idle deadline while it holds one.
            clearTimeout(timer);
            yield event;
            timer = setTimeout(() => idle.abort(), idleTimeoutMs);
          }
          failure = new StrataNetworkError('UNREACHABLE', `GET ${this.baseUrl}/watch: the gateway ended the stream`, failures + 1, null);
        } finally {
          clearTimeout(timer);
        }
      } catch (error) {
        if (options.signal?.aborted) return;
        if (idle.signal.aborted) {
          failure = new StrataNetworkError('TIMEOUT', `GET ${this.baseUrl}/watch: nothing arrived for ${idleTimeoutMs} ms`, failures + 1, error);
        } else if (error instanceof StrataApiError || error instanceof StrataNetworkError) {
          failure = error;
        } else if (error instanceof Error) {
          failure = new StrataNetworkError('UNREACHABLE', `GET ${this.baseUrl}/watch: ${error.message}`, failures + 1, error);
        } else throw error;
      }
      if (failure instanceof StrataApiError && !isResumable(failure)) throw failure;
      failures++;
      if (failures > this.retries) throw failure;
      await this.sleep(this.backoffMs(failures, failure instanceof StrataApiError ? failure.retryAfterMs : null));
    }
  }

  private async getJson<T>(path: string): Promise<T> {
    const res = await this.request({ method: 'GET', path, safeToRetry: true });
    return (await res.json()) as T;
  }

  /** A bodiless POST whose repeat cannot apply twice (the admin state changes are idempotent). */
  private async postJson<T>(path: string): Promise<T> {
    const res = await this.request({ method: 'POST', path, safeToRetry: true });
    return (await res.json()) as T;
  }

  /** Sends the request, retrying only when `spec.safeToRetry`; resolves with a 2xx or an accepted status. */
  private async request(spec: RequestSpec): Promise<Response> {
    const headers: Record<string, string> = { accept: 'application/json', ...spec.headers };
    if (this.apiKey !== undefined) headers.authorization = `Bearer ${this.apiKey}`;
    const attemptsMax = spec.safeToRetry ? 1 + this.retries : 1;
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      const deadline = spec.streaming ? headersDeadline(this.timeoutMs) : { signal: AbortSignal.timeout(this.timeoutMs), settle() {} };
      try {
        res = await this.fetchFn(`${this.baseUrl}${spec.path}`, {
          method: spec.method,
          headers,
          ...(spec.body !== undefined ? { body: spec.body } : {}),
          signal: spec.signal ? AbortSignal.any([spec.signal, deadline.signal]) : deadline.signal,
        });
      } catch (cause) {
        deadline.settle();
        if (spec.signal?.aborted) throw spec.signal.reason;
        const timedOut = deadline.signal.aborted;
        if (attempt < attemptsMax) {
          await this.sleep(this.backoffMs(attempt, null));
          continue;
        }
        const detail = cause instanceof Error ? (cause.cause instanceof Error ? cause.cause.message : cause.message) : String(cause);
        throw new StrataNetworkError(
          timedOut ? 'TIMEOUT' : 'UNREACHABLE',
          timedOut
            ? `${spec.method} ${this.baseUrl}${spec.path}: no answer within ${this.timeoutMs} ms (${attempt} attempt(s))`
            : `${spec.method} ${this.baseUrl}${spec.path}: cannot reach the gateway: ${detail} (${attempt} attempt(s))`,
          attempt,
          cause,
        );
      }
      deadline.settle();
      if (res.ok || spec.acceptStatuses?.includes(res.status)) return res;
      const retryAfterMs = parseRetryAfterMs(res.headers.get('retry-after'));
      // 429 RATE_LIMITED is retried like a 503: the gateway did not process the request, and it says when to return.
      if ((res.status === 503 || res.status === 429) && attempt < attemptsMax) {
        await res.body?.cancel();
        await this.sleep(this.backoffMs(attempt, retryAfterMs));
        continue;
      }
      throw await apiError(res, retryAfterMs, attempt);
    }
  }

  /** Full jitter over an exponential step, but never sooner than the server asked. */
  private backoffMs(attempt: number, retryAfterMs: number | null): number {
    const stepMs = Math.min(RETRY_DELAY_MS_MAX, this.retryBaseMs * 2 ** (attempt - 1));
    const jitteredMs = Math.round(stepMs / 2 + this.random() * (stepMs / 2));
    return Math.min(RETRY_DELAY_MS_MAX, Math.max(jitteredMs, retryAfterMs ?? 0));
  }
}

async function apiError(res: Response, retryAfterMs: number | null, attempts: number): Promise<StrataApiError> {
  const text = await res.text().catch(() => '');
  try {
    const body = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
    if (body.error && typeof body.error.code === 'string') {
      const message = typeof body.error.message === 'string' ? body.error.message : body.error.code;
      return new StrataApiError(res.status, body.error.code, message, retryAfterMs, attempts);
    }
  } catch {
    // Not JSON: an answer from something in front of the gateway (a proxy's HTML error page); reported below.
  }
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200);
  return new StrataApiError(res.status, 'UNEXPECTED_RESPONSE', `HTTP ${res.status}${snippet ? `: ${snippet}` : ''}`, retryAfterMs, attempts);
}

/** An attempt's deadline that ends once the answer's headers are in: a stream's body may take as long as it is read. */
function headersDeadline(timeoutMs: number): { signal: AbortSignal; settle(): void } {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException(`no answer within ${timeoutMs} ms`, 'TimeoutError')), timeoutMs);
  return { signal: controller.signal, settle: () => clearTimeout(timer) };
}

/**
 * Whether a change feed that failed this way is worth opening again from the last version seen: the gateway or a
 * proxy was busy or briefly unable, or the stream ended with an error the API says to resume from. Anything else
 * (a bad prefix, HISTORY_COMPACTED, a refused key) would fail the same way again.
 */
function isResumable(error: StrataApiError): boolean {
  if (error.status === 429 || (error.status >= 502 && error.status <= 504)) return true;
  return error.code === 'WATCH_TOO_SLOW' || error.code === 'METADATA_UNAVAILABLE';
}

function conditionalHeaders(options: ConditionalOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  if (options.ifMatch !== undefined) headers['if-match'] = quoteVersion(options.ifMatch);
  if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
  return headers;
}

function isConditional(options: ConditionalOptions): boolean {
  return options.ifMatch !== undefined || options.idempotencyKey !== undefined;
}

/** Accepts `7`, `"7"` or `W/"7"`, so a caller can pass back a version or an ETag it was given. */
function quoteVersion(version: string): string {
  if (version === '*' || version.startsWith('"') || version.startsWith('W/')) return version;
  return `"${version}"`;
}

/** Comma-separated, each entry encoded on its own so that a comma inside a name travels as %2C. */
function fieldList(fields: readonly string[]): string {
  return fields.map((f) => encodeURIComponent(f)).join(',');
}

/** Retry-After is seconds or an HTTP date (RFC 9110); anything else is ignored. */
function parseRetryAfterMs(value: string | null): number | null {
  if (value === null) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - Date.now());
}

function checkedInt(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`);
  return value;
}
