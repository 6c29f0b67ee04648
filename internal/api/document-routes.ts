/**
 * The document routes of api.md: /write, /read, /patch, /delete, /stat, /list. Each is a route definition
 * (route-definition.ts) that checks its parameters and documents the operation in GET /openapi.json.
 */
import { TTL_HEADER, TTL_MS_MAX, parseTtl, ttlOption } from './ttl.js';
import type { Context } from 'hono';
import { StrataError } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';
import { parseJson } from '../json/parse.js';
import { HOT_FIELD_LIST, PROJECTION_FIELD_LIST, formatFieldPath, parseFieldList } from '../json/pointer.js';
import { isJsonObject } from '../json/value.js';
import { STRATEGIES, type Manifest, type Strategy } from '../manifest/manifest.js';
import type { CommittedWrite } from '../writeservice/write-service.js';
import type { PatchKind } from '../writeservice/document-ops.js';
import type { GatewayDeps } from './gateway-deps.js';
import { parseIdempotencyKey, withIdempotency } from './idempotency.js';
import {
  checked,
  createRoute,
  defineRoute,
  errorResponses,
  jsonResponse,
  versionHeaders,
  z,
  type GatewayApp,
  type JsonSchema,
  type ResponseHeaders,
} from './route-definition.js';
import { parseIfMatch, parseIfNoneMatchForRead, parseIfNoneMatchStar, readBody, validateKey } from './request.js';
import { displayPath, statBody, verifiedStatBody } from './views.js';
import { checkPlacement } from '../readservice/placement-check.js';
import { ColdLayoutSchema } from './cold-layout-view.js';

const JSON_TYPE = 'application/json';
const JSON_PATCH_TYPE = 'application/json-patch+json';
const MERGE_PATCH_TYPE = 'application/merge-patch+json';

// ---- parameters: each one's rule is the validator its transform calls ----

const keyDescription = '1 to 1024 bytes of UTF-8 without control characters, percent-encoded once';
const KeyPath = checked(validateKey).openapi({ description: keyDescription, example: 'user:1001' });
const KeyQuery = checked(validateKey).openapi({ description: `${keyDescription} (form-encoded: \`+\` is a space)`, example: 'user:1001' });

const StrategyQuery = checked(parseStrategy).openapi({
  description: 'storage strategy; without it the key keeps its strategy and a new key gets STRATA_DEFAULT_STRATEGY',
  enum: [...STRATEGIES],
});

const fieldListDescription =
  'comma-separated field paths: plain top-level names or JSON Pointers (`/stats/views`); a comma inside a name is `%2C`';
const HotFieldsQuery = checked((raw) =>
  raw === undefined ? undefined : { raw, paths: parseFieldList(raw, 'INVALID_HOT_FIELDS', HOT_FIELD_LIST) },
).openapi({ description: `hot fields of this document (at most ${LIMITS.hotFieldsMax}); ${fieldListDescription}`, example: 'like_count,/stats/views' });
const FieldsQuery = checked((raw) =>
  raw === undefined ? undefined : parseFieldList(raw, 'INVALID_FIELDS', PROJECTION_FIELD_LIST),
).openapi({ description: `project the document onto these fields (at most ${LIMITS.projectionFieldsMax}); ${fieldListDescription}`, example: 'like_count' });

const PrefixQuery = checked((raw) => raw ?? '').openapi({ description: 'only keys starting with this prefix' });
const LimitQuery = checked(parseLimit).openapi({
  type: 'integer',
  minimum: 1,
  maximum: LIMITS.listLimitMax,
  default: LIMITS.listLimitDefault,
  description: 'keys per page',
});
const CursorQuery = checked(parseCursor).openapi({
  pattern: '^[A-Za-z0-9_-]*$',
  description: "`next_cursor` of the previous page (opaque; for this prefix only)",
});

const IfMatchHeader = checked(parseIfMatch).openapi({
  description: 'change only if the current version is this one (412 VERSION_MISMATCH otherwise): `"<version>"`, as in ETag',
  example: '"7"',
});
const IfNoneMatchWriteHeader = checked(parseIfNoneMatchStar).openapi({
  description: '`*`: create only (412 ALREADY_EXISTS when the key exists)',
  enum: ['*'],
});
const IfNoneMatchReadHeader = checked(parseIfNoneMatchForRead).openapi({
  description: 'ETags (`"7", W/"8"`) or `*`: 304 when one of them is the current version',
  example: '"7"',
});
const IdempotencyKeyHeader = checked(parseIdempotencyKey).openapi({
  description: `a retry with the same token within 24 hours returns the first attempt's outcome; 1 to ${LIMITS.idempotencyKeyBytesMax} visible ASCII characters`,
  pattern: '^[\\x21-\\x7e]+$',
  example: 'c5b1e0a2-retry-token',
});

// ---- bodies (declared for the document only: documents are parsed by internal/json/parse.ts) ----

const documentSchema: JsonSchema = {
  type: 'object',
  description: 'any JSON object; numbers are kept exactly as written, member order is kept',
  example: { name: 'Ada', like_count: 41, stats: { views: 7 } },
};
const jsonPatchSchema: JsonSchema = {
  type: 'array',
  description: 'JSON Patch (RFC 6902) operations',
  items: { type: 'object', required: ['op', 'path'], properties: { op: { type: 'string', enum: ['add', 'remove', 'replace', 'move', 'copy', 'test'] }, path: { type: 'string' }, from: { type: 'string' }, value: {} } },
  example: [{ op: 'replace', path: '/like_count', value: 42 }],
};
const mergePatchSchema: JsonSchema = { type: 'object', description: 'JSON Merge Patch (RFC 7396): members set, `null` removes', example: { like_count: 42 } };

// ---- responses ----

const StrategySchema = z.enum(STRATEGIES as [Strategy, ...Strategy[]]).openapi('Strategy');
const VersionSchema = z.string().openapi({ pattern: '^[1-9][0-9]*$', description: 'decimal version, strictly increasing per key' });

const WriteResultSchema = z
  .strictObject({
    status: z.literal('ok'),
    key: z.string(),
    version: VersionSchema,
    strategy: StrategySchema,
    is_pure_hot_update: z.boolean().openapi({ description: 'only hot fields changed: no erasure coding, no cold I/O' }),
    hot_fields: z.array(z.string()).openapi({ description: 'the hot members the document has' }),
    bytes: z.strictObject({ logical: z.number().int(), hot: z.number().int(), cold: z.number().int() }),
    partial: z.boolean().openapi({ description: 'a replica or shard was missed; the healer completes it' }),
    latency_ms: z.number(),
  })
  .openapi('WriteResult');

const DeleteResultSchema = z.strictObject({ status: z.literal('ok'), key: z.string(), version: VersionSchema }).openapi('DeleteResult');

const BlobStateSchema = z
  .enum(['ok', 'missing', 'corrupt', 'unknown', 'unreachable'])
  .openapi('BlobState', { description: 'as last seen (`unknown`: not checked yet); with `verify=true` as the node answered now (`unreachable`: no answer)' });
const ProtectionSchema = z
  .strictObject({
    full: z.boolean().openapi({ description: 'every replica and shard answered ok' }),
    readable: z.boolean().openapi({ description: 'enough copies answered ok to read the whole document' }),
    hot: z.strictObject({ ok: z.number().int(), total: z.number().int() }),
    cold: z.strictObject({ ok: z.number().int(), total: z.number().int(), needed: z.number().int() }),
  })
  .openapi('Protection');
const VerifyQuery = checked(parseVerifyFlag).openapi({
  type: 'boolean',
  default: false,
  description: 'ask every node about its copy now (each re-reads and checks it) and add `protection`',
});
const StatSchema = z
  .strictObject({
    key: z.string(),
    version: VersionSchema,
    strategy: StrategySchema,
    hot_fields: z.array(z.string()),
    configured_hot_fields: z.array(z.string()),
    bytes: z.strictObject({ logical: z.number().int(), hot: z.number().int(), cold: z.number().int(), physical: z.number().int() }),
    cold_hash: z.string().nullable(),
    dirty: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
    write_id: z.string(),
    hot: z.array(z.strictObject({ part: z.string(), node: z.string(), blob: z.string(), size: z.number().int(), state: BlobStateSchema })),
    cold: z.array(z.strictObject({ index: z.number().int(), node: z.string(), blob: z.string(), size: z.number().int(), state: BlobStateSchema })),
    cold_layout: ColdLayoutSchema,
    extra_replicas: z.number().int().openapi({ description: 'the last this-many entries of `hot` are temporary extra replicas of a read-heavy document' }),
    extra_replica_bytes: z.number().int().openapi({ description: 'bytes of those extra replicas (not in bytes.physical)' }),
    hot_fields_source: z.enum(['request', 'policy']).openapi({ description: 'whether the client named the hot fields or the policy chose them' }),
    strategy_source: z.enum(['request', 'policy']).openapi({ description: 'whether the client named the strategy' }),
    expires_at: z.string().nullable().openapi({ description: 'when the time to live ends (null: never)' }),
    protection: ProtectionSchema.optional().openapi({ description: 'only with `verify=true`' }),
  })
  .openapi('Stat');

const ListSchema = z
  .strictObject({
    keys: z.array(z.string()),
    next_cursor: z.string().nullable().openapi({ description: 'pass as `cursor` for the next page; null on the last' }),
  })
  .openapi('KeyList');

const readHeaders: ResponseHeaders = {
  ...versionHeaders,
  ETag: { description: '`"<version>"`, or `W/"<version>"` for a projection', schema: { type: 'string' } },
  'X-Strata-Strategy': { description: 'the key\'s strategy', schema: { type: 'string', enum: [...STRATEGIES] } },
};

const writeErrors = ['INVALID_KEY', 'INVALID_REQUEST', 'INVALID_HEADER', 'IDEMPOTENCY_IN_PROGRESS', 'VERSION_MISMATCH', 'DOCUMENT_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE', 'INVALID_JSON', 'DOCUMENT_TOO_DEEP', 'TOO_MANY_FIELDS', 'IDEMPOTENCY_KEY_REUSED', 'INSUFFICIENT_NODES',
  'METADATA_UNAVAILABLE', 'WAL_UNAVAILABLE', 'WRITE_ABORTED', 'COMMIT_UNKNOWN', 'OVERLOADED', 'DISK_FULL'] as const;

const TtlQuery = checked(parseTtl).openapi({
  type: 'integer',
  minimum: 1,
  maximum: TTL_MS_MAX,
  description: `time to live in milliseconds: the document reads as absent once it has passed (wins over ${TTL_HEADER})`,
});
const TtlHeader = checked(parseTtl).openapi({ type: 'integer', minimum: 1, maximum: TTL_MS_MAX, description: 'as `ttl_ms`' });

const tags = ['documents'];

export const writeRoute = createRoute({
  method: 'post',
  path: '/write',
  tags,
  summary: 'Store a JSON object under a key',
  request: {
    query: z.object({ key: KeyQuery, strategy: StrategyQuery, hot_fields: HotFieldsQuery, ttl_ms: TtlQuery }),
    headers: z.object({
      'If-Match': IfMatchHeader,
      'If-None-Match': IfNoneMatchWriteHeader,
      'Idempotency-Key': IdempotencyKeyHeader,
      [TTL_HEADER]: TtlHeader,
    }),
    body: { required: true, content: { [JSON_TYPE]: { schema: documentSchema } } },
  },
  responses: {
    200: jsonResponse('Stored: acknowledged once a quorum of replicas and shards is durable and the manifest committed', WriteResultSchema, versionHeaders),
    ...errorResponses(...writeErrors, 'NOT_AN_OBJECT', 'INVALID_STRATEGY', 'INVALID_HOT_FIELDS', 'ALREADY_EXISTS', 'INVALID_TTL'),
  },
});

export const readRoute = createRoute({
  method: 'get',
  path: '/read/{key}',
  tags,
  summary: 'Read a document or a projection of it (HEAD: the headers alone)',
  request: {
    params: z.object({ key: KeyPath }),
    query: z.object({ fields: FieldsQuery }),
    headers: z.object({ 'If-None-Match': IfNoneMatchReadHeader }),
  },
  responses: {
    200: {
      description: 'The document as canonical compact text: members in written order, numbers as written, white space dropped, string escapes rewritten (docs/api.md)',
      headers: { ...readHeaders, 'X-Strata-Cold-Read': { description: '1 when the cold tier was read', schema: { type: 'string', enum: ['0', '1'] } } },
      content: { [JSON_TYPE]: { schema: documentSchema } },
    },
    304: { description: 'Not modified: If-None-Match names the current version', headers: readHeaders },
    ...errorResponses('INVALID_KEY', 'INVALID_REQUEST', 'INVALID_FIELDS', 'NOT_FOUND', 'INSUFFICIENT_NODES', 'METADATA_UNAVAILABLE', 'OVERLOADED'),
  },
});

export const patchRoute = createRoute({
  method: 'patch',
  path: '/patch/{key}',
  tags,
  summary: 'Apply a JSON Patch or a JSON Merge Patch',
  request: {
    params: z.object({ key: KeyPath }),
    query: z.object({ ttl_ms: TtlQuery }),
    headers: z.object({ 'If-Match': IfMatchHeader, 'Idempotency-Key': IdempotencyKeyHeader, [TTL_HEADER]: TtlHeader }),
    body: {
      required: true,
      description: 'application/json takes an array (JSON Patch) or an object (Merge Patch)',
      content: {
        // In this order: the 415 message lists them so.
        [JSON_TYPE]: { schema: { oneOf: [jsonPatchSchema, mergePatchSchema] } as JsonSchema },
        [JSON_PATCH_TYPE]: { schema: jsonPatchSchema },
        [MERGE_PATCH_TYPE]: { schema: mergePatchSchema },
      },
    },
  },
  responses: {
    200: jsonResponse('Patched', WriteResultSchema, versionHeaders),
    ...errorResponses(...writeErrors, 'NOT_FOUND', 'PATCH_FAILED', 'INVALID_TTL'),
  },
});

export const deleteRoute = createRoute({
  method: 'delete',
  path: '/delete/{key}',
  tags,
  summary: 'Delete a key (a tombstone with a new version; the key never comes back by itself)',
  request: {
    params: z.object({ key: KeyPath }),
    headers: z.object({ 'If-Match': IfMatchHeader, 'Idempotency-Key': IdempotencyKeyHeader }),
  },
  responses: {
    200: jsonResponse('Deleted', DeleteResultSchema),
    ...errorResponses('INVALID_KEY', 'INVALID_REQUEST', 'INVALID_HEADER', 'NOT_FOUND', 'IDEMPOTENCY_IN_PROGRESS', 'VERSION_MISMATCH',
      'IDEMPOTENCY_KEY_REUSED', 'INSUFFICIENT_NODES', 'METADATA_UNAVAILABLE', 'WAL_UNAVAILABLE', 'WRITE_ABORTED', 'COMMIT_UNKNOWN', 'OVERLOADED'),
  },
});

export const statRoute = createRoute({
  method: 'get',
  path: '/stat/{key}',
  tags,
  summary: 'The manifest: version, strategy, sizes, every replica and shard with its node and state',
  request: { params: z.object({ key: KeyPath }), query: z.object({ verify: VerifyQuery }) },
  responses: {
    200: jsonResponse('The manifest', StatSchema, versionHeaders),
    ...errorResponses('INVALID_KEY', 'INVALID_REQUEST', 'NOT_FOUND', 'METADATA_UNAVAILABLE'),
  },
});

export const listRoute = createRoute({
  method: 'get',
  path: '/list',
  tags,
  summary: 'Live keys in UTF-8 byte order, paged',
  request: { query: z.object({ prefix: PrefixQuery, limit: LimitQuery, cursor: CursorQuery }) },
  responses: {
    200: jsonResponse('A page of keys', ListSchema),
    ...errorResponses('INVALID_REQUEST', 'INVALID_LIMIT', 'INVALID_CURSOR', 'METADATA_UNAVAILABLE'),
  },
});

export function registerDocumentRoutes(app: GatewayApp, deps: GatewayDeps): void {
  const { config } = deps;
  const parseLimits = { depthMax: config.depthMax, membersMax: config.membersMax };

  defineRoute(app, writeRoute, async (c, { query, headers }) => {
    const started = performance.now();
    const { key, strategy } = query;
    const hotFields = query.hot_fields?.paths;
    const preconditions = { ifMatch: headers['If-Match'], ifNoneMatch: headers['If-None-Match'] };
    const ttl = ttlOption(query.ttl_ms, headers[TTL_HEADER]);
    const body = await readBody(c, config.bodyBytesMax, deps.bodies);
    const identity = { method: 'write', key, body, extra: `${strategy ?? ''}\n${query.hot_fields?.raw ?? ''}` };
    return withIdempotency(c, deps, identity, (result) => writeResponse(key, result, started), async (idempotency) => {
      const doc = parseJson(body, parseLimits);
      if (!isJsonObject(doc)) throw notAnObject(doc);
      return deps.ops.write({
        key,
        doc,
        ...(strategy ? { strategy } : {}),
        ...(hotFields ? { hotFields: hotFields.map(formatFieldPath) } : {}),
        preconditions,
        ...ttl,
        ...(idempotency ? { idempotency } : {}),
      });
    });
  });

  defineRoute(app, patchRoute, async (c, { params, query, headers, mediaType: type }) => {
    const started = performance.now();
    const { key } = params;
    const preconditions = { ifMatch: headers['If-Match'] };
    const ttl = ttlOption(query.ttl_ms, headers[TTL_HEADER]);
    const body = await readBody(c, config.bodyBytesMax, deps.bodies);
    return withIdempotency(c, deps, { method: 'patch', key, body, extra: type ?? '' }, (result) => writeResponse(key, result, started), async (idempotency) => {
      const patch = parseJson(body, { ...parseLimits, what: 'patch' });
      let kind: PatchKind;
      if (type === JSON_PATCH_TYPE) kind = 'json-patch';
      else if (type === MERGE_PATCH_TYPE) kind = 'merge-patch';
      else kind = Array.isArray(patch) ? 'json-patch' : 'merge-patch';
      if (kind === 'json-patch' && !Array.isArray(patch)) {
        throw new StrataError('PATCH_FAILED', 'a JSON Patch (RFC 6902) body must be an array of operations');
      }
      if (type === JSON_TYPE && !Array.isArray(patch) && !isJsonObject(patch)) {
        throw new StrataError('PATCH_FAILED', 'with Content-Type application/json the patch must be an array (JSON Patch) or an object (Merge Patch)');
      }
      return deps.ops.patch({ key, kind, patch, preconditions, ...ttl, ...(idempotency ? { idempotency } : {}) });
    });
  });

  defineRoute(app, deleteRoute, async (c, { params, headers }) => {
    const { key } = params;
    const preconditions = { ifMatch: headers['If-Match'] };
    const respond = (result: CommittedWrite) => ({ status: 200, body: { status: 'ok', key, version: result.manifest.version }, headers: {} });
    return withIdempotency(c, deps, { method: 'delete', key, body: Buffer.alloc(0), extra: '' }, respond, (idempotency) =>
      deps.ops.delete(key, preconditions, idempotency),
    );
  });

  defineRoute(app, readRoute, async (c, { params, query, headers }) => {
    const { key } = params;
    const { fields } = query;
    const ifNoneMatch = headers['If-None-Match'];
    const result = await deps.reads.read(key, {
      ...(fields ? { fields } : {}),
      reserve: (bytes) => deps.bodies.reserve(c, bytes),
      notModified: (version) => ifNoneMatch === '*' || ifNoneMatch?.has(version) === true,
    });
    const etag = fields ? `W/"${result.manifest.version}"` : `"${result.manifest.version}"`;
    c.header('ETag', etag);
    c.header('X-Strata-Version', result.manifest.version);
    c.header('X-Strata-Strategy', result.manifest.strategy);
    if (result.body === null) return c.body(null, 304);
    c.header('X-Strata-Cold-Read', result.coldRead ? '1' : '0');
    c.header('Content-Type', 'application/json');
    deps.bodies.holdAtLeast(c, result.body.length);
    return c.body(result.body as Uint8Array<ArrayBuffer>, 200);
  });

  defineRoute(app, statRoute, async (c, { params, query }) => {
    const stored = await deps.reads.liveManifest(params.key);
    c.header('ETag', `"${stored.manifest.version}"`);
    c.header('X-Strata-Version', stored.manifest.version);
    if (!query.verify) return c.json(statBody(stored.manifest));
    return c.json(verifiedStatBody(stored.manifest, await checkPlacement(stored.manifest, deps.pool)));
  });

  defineRoute(app, listRoute, async (c, { query }) => {
    const { prefix, limit, cursor } = query;
    if (cursor !== null && !cursor.startsWith(prefix)) {
      throw new StrataError('INVALID_CURSOR', 'the cursor does not belong to this prefix; start again without a cursor');
    }
    const keys = await deps.metadata.listKeys(prefix, cursor, limit + 1);
    const page = keys.slice(0, limit);
    const more = keys.length > limit;
    return c.json({ keys: page, next_cursor: more ? encodeCursor(page[page.length - 1]!) : null });
  });
}

function writeResponse(key: string, result: CommittedWrite, startedMs: number) {
  const m: Manifest = result.manifest;
  return {
    status: 200,
    headers: { ETag: `"${m.version}"`, 'X-Strata-Version': m.version },
    body: {
      status: 'ok',
      key,
      version: m.version,
      strategy: m.strategy,
      is_pure_hot_update: result.isPureHotUpdate,
      hot_fields: m.hotPaths.map(displayPath),
      bytes: { logical: m.bytes.logical, hot: m.bytes.hot, cold: m.bytes.cold },
      partial: result.partial,
      latency_ms: Math.round((performance.now() - startedMs) * 100) / 100,
    },
  };
}

function parseStrategy(raw: string | undefined): Strategy | undefined {
  if (raw === undefined) return undefined;
  if (!(STRATEGIES as readonly string[]).includes(raw)) {
    throw new StrataError('INVALID_STRATEGY', `strategy must be one of ${STRATEGIES.join(', ')}; got "${raw.slice(0, 100)}"`);
  }
  return raw as Strategy;
}

function parseLimit(raw: string | undefined): number {
  if (raw === undefined) return LIMITS.listLimitDefault;
  if (!/^\d{1,7}$/.test(raw) || Number(raw) < 1 || Number(raw) > LIMITS.listLimitMax) {
    throw new StrataError('INVALID_LIMIT', `limit must be a whole number from 1 to ${LIMITS.listLimitMax}; got "${raw.slice(0, 50)}"`);
  }
  return Number(raw);
}

/** Cursors are the last key of the previous page, base64url-encoded so they survive any transport. */
function encodeCursor(lastKey: string): string {
  return Buffer.from(lastKey, 'utf8').toString('base64url');
}

function parseCursor(raw: string | undefined): string | null {
  if (raw === undefined || raw === '') return null;
  if (!/^[A-Za-z0-9_-]+$/.test(raw)) throw new StrataError('INVALID_CURSOR', 'the cursor is not one this server issued');
  const key = Buffer.from(raw, 'base64url').toString('utf8');
  if (Buffer.from(key, 'utf8').toString('base64url') !== raw) {
    throw new StrataError('INVALID_CURSOR', 'the cursor is not one this server issued');
  }
  return key;
}

function notAnObject(doc: unknown): StrataError {
  const kind = doc === null ? 'null' : Array.isArray(doc) ? 'an array' : typeof doc === 'object' ? 'a number' : `a ${typeof doc}`;
  return new StrataError('NOT_AN_OBJECT', `the document must be a JSON object ({...}); got ${kind}`);
}

export type { Context };

/** `?verify=true|false` (absent: false). */
function parseVerifyFlag(raw: string | undefined): boolean {
  if (raw === undefined || raw === 'false') return false;
  if (raw === 'true') return true;
  throw new StrataError('INVALID_REQUEST', `verify must be true or false; got ${JSON.stringify(raw.slice(0, 20))}`);
}
