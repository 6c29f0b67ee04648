/**
 * The document routes of api.md: /write, /read, /patch, /delete, /stat, /list.
 */
import type { Context, Hono } from 'hono';
import { StrataError } from '../core/errors.js';
import { LIMITS } from '../core/limits.js';
import { parseJson } from '../json/parse.js';
import { HOT_FIELD_LIST, PROJECTION_FIELD_LIST, formatFieldPath, parseFieldList } from '../json/pointer.js';
import { isJsonObject } from '../json/value.js';
import { STRATEGIES, type Manifest, type Strategy } from '../manifest/manifest.js';
import type { CommittedWrite } from '../writeservice/write-service.js';
import type { PatchKind } from '../writeservice/document-ops.js';
import type { GatewayDeps } from './gateway-deps.js';
import { withIdempotency } from './idempotency.js';
import {
  ifMatchVersion,
  ifNoneMatchForRead,
  ifNoneMatchStar,
  keyFromPath,
  queryValue,
  rawQuery,
  readBody,
  requireMediaType,
  validateKey,
} from './request.js';
import { displayPath, statBody, verifiedStatBody } from './views.js';
import { checkPlacement } from '../readservice/placement-check.js';

const JSON_TYPE = 'application/json';
const JSON_PATCH_TYPE = 'application/json-patch+json';
const MERGE_PATCH_TYPE = 'application/merge-patch+json';

export function registerDocumentRoutes(app: Hono, deps: GatewayDeps): void {
  const { config } = deps;
  const parseLimits = { depthMax: config.depthMax, membersMax: config.membersMax };

  app.post('/write', async (c) => {
    const started = performance.now();
    const query = rawQuery(c);
    const key = validateKey(queryValue(query, 'key'));
    const strategy = parseStrategy(queryValue(query, 'strategy'));
    const hotRaw = query.get('hot_fields');
    const hotFields = hotRaw === undefined
      ? undefined
      : parseFieldList(hotRaw, 'INVALID_HOT_FIELDS', HOT_FIELD_LIST);
    requireMediaType(c, [JSON_TYPE]);
    const preconditions = { ifMatch: ifMatchVersion(c), ifNoneMatch: ifNoneMatchStar(c) };
    const body = await readBody(c, config.bodyBytesMax);
    return withIdempotency(c, deps, { method: 'write', key, body, extra: `${strategy ?? ''}\n${hotRaw ?? ''}` }, async () => {
      const doc = parseJson(body, parseLimits);
      if (!isJsonObject(doc)) throw notAnObject(doc);
      const result = await deps.ops.write({
        key,
        doc,
        ...(strategy ? { strategy } : {}),
        ...(hotFields ? { hotFields: hotFields.map(formatFieldPath) } : {}),
        preconditions,
      });
      return writeResponse(key, result, started);
    });
  });

  app.patch('/patch/*', async (c) => {
    const started = performance.now();
    const key = keyFromPath(c, '/patch/');
    const type = requireMediaType(c, [JSON_TYPE, JSON_PATCH_TYPE, MERGE_PATCH_TYPE]);
    const preconditions = { ifMatch: ifMatchVersion(c) };
    const body = await readBody(c, config.bodyBytesMax);
    return withIdempotency(c, deps, { method: 'patch', key, body, extra: type }, async () => {
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
      const result = await deps.ops.patch({ key, kind, patch, preconditions });
      return writeResponse(key, result, started);
    });
  });

  app.delete('/delete/*', async (c) => {
    const key = keyFromPath(c, '/delete/');
    const preconditions = { ifMatch: ifMatchVersion(c) };
    return withIdempotency(c, deps, { method: 'delete', key, body: Buffer.alloc(0), extra: '' }, async () => {
      const result = await deps.ops.delete(key, preconditions);
      return { status: 200, body: { status: 'ok', key, version: result.manifest.version }, headers: {} };
    });
  });

  app.get('/read/*', async (c) => {
    const key = keyFromPath(c, '/read/');
    const query = rawQuery(c);
    const fieldsRaw = query.get('fields');
    const fields = fieldsRaw === undefined
      ? undefined
      : parseFieldList(fieldsRaw, 'INVALID_FIELDS', PROJECTION_FIELD_LIST);
    const ifNoneMatch = ifNoneMatchForRead(c);
    const result = await deps.reads.read(key, {
      ...(fields ? { fields } : {}),
    });
    const etag = fields ? `W/"${result.manifest.version}"` : `"${result.manifest.version}"`;
    c.header('ETag', etag);
    c.header('X-Strata-Version', result.manifest.version);
    c.header('X-Strata-Strategy', result.manifest.strategy);
    if (ifNoneMatch === '*' || ifNoneMatch?.has(result.manifest.version)) return c.body(null, 304);
    c.header('X-Strata-Cold-Read', result.coldRead ? '1' : '0');
    c.header('Content-Type', 'application/json');
    return c.body(result.body! as Uint8Array<ArrayBuffer>, 200);
  });

  app.get('/stat/*', async (c) => {
    const key = keyFromPath(c, '/stat/');
    const stored = await deps.reads.liveManifest(key);
    c.header('ETag', `"${stored.manifest.version}"`);
    c.header('X-Strata-Version', stored.manifest.version);
    const verify = parseVerifyFlag(queryValue(rawQuery(c), 'verify'));
    if (!verify) return c.json(statBody(stored.manifest));
    return c.json(verifiedStatBody(stored.manifest, await checkPlacement(stored.manifest, deps.pool)));
  });

  app.get('/list', async (c) => {
    const query = rawQuery(c);
    const prefix = queryValue(query, 'prefix') ?? '';
    const limit = parseLimit(queryValue(query, 'limit'));
    const cursor = parseCursor(queryValue(query, 'cursor'));
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
