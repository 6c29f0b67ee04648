/**
 * The three mutations a client can ask for (write, patch, delete), expressed as planners for the protocol in
 * write-service.ts. A patch that touches only hot members present in the document is applied to the hot part
 * alone: the cold text is neither read nor re-encoded, and the stored cold shards are reused.
 */
import { StrataError, isStrataError } from '../core/errors.js';
import { parseJson } from '../json/parse.js';
import { applyJsonPatch, applyMergePatch, patchTouchedPointers } from '../json/patch.js';
import { parseFieldPath } from '../json/pointer.js';
import { serializeJson } from '../json/serialize.js';
import { encodeHotBlob, type DecodedHot } from '../json/split.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../json/value.js';
import type { Manifest, StoredManifest, Strategy } from '../manifest/manifest.js';
import type { HotFieldPolicy } from '../policy/hot-fields.js';
import type { ReadService } from '../readservice/read-service.js';
import { hotBytesOf, planDocument, type DocumentPlan } from './plan.js';
import {
  StalePlanError,
  type CommittedWrite,
  type IdempotentOutcome,
  type ManifestAttributes,
  type Preconditions,
  type WriteService,
} from './write-service.js';
import type { Clock } from '../core/clock.js';
import { isExpired } from '../manifest/manifest.js';
import { mergePatchLeaves, type AccessObserver } from '../tiering/access-recorder.js';
import { getAt, setAt } from '../json/tree.js';

export interface DocumentLimits {
  bodyBytesMax: number;
  depthMax: number;
  membersMax: number;
}

export interface WriteRequest {
  key: string;
  doc: JsonObject;
  strategy?: Strategy;
  /** Field paths as the client gave them (already validated). */
  hotFields?: string[];
  preconditions: Preconditions;
  /** `?ttl_ms=`: the document expires this long after the write (absent: it never expires). */
  ttlMs?: number;
  /** Idempotency-Key: the outcome is recorded by the commit (write-service.ts). */
  idempotency?: IdempotentOutcome;
}

export type PatchKind = 'json-patch' | 'merge-patch';

export interface PatchRequest {
  key: string;
  kind: PatchKind;
  patch: JsonValue;
  preconditions: Preconditions;
  /** `?ttl_ms=`: a new time to live from now (absent: the document keeps its expiry, if any). */
  ttlMs?: number;
  /** Idempotency-Key: the outcome is recorded by the commit (write-service.ts). */
  idempotency?: IdempotentOutcome;
}

/** Tiering hooks of the write path: access statistics and the clock that judges times to live. */
export interface DocumentTiering {
  clock: Clock;
  access?: AccessObserver;
}

export class DocumentOps {
  constructor(
    private readonly writes: WriteService,
    private readonly reads: ReadService,
    private readonly hotPolicy: HotFieldPolicy,
    private readonly defaultStrategy: Strategy,
    private readonly limits: DocumentLimits,
    private readonly tiering?: DocumentTiering,
  ) {}

  private nowMs(): number {
    return this.tiering?.clock.nowMs() ?? Date.now();
  }

  /** The live manifest of `current`: null when absent, deleted, or past its time to live. */
  private liveOf(current: StoredManifest | null): Manifest | null {
    if (!current || current.manifest.deleted || isExpired(current.manifest, this.nowMs())) return null;
    return current.manifest;
  }

  async write(request: WriteRequest): Promise<CommittedWrite> {
    const cache = new Map<string, DocumentPlan>();
    const expiresAtMs = request.ttlMs === undefined ? undefined : this.nowMs() + request.ttlMs;
    const committed = await this.writes.mutate(request.key, request.preconditions, async (current) => {
      const live = this.liveOf(current);
      const strategy = request.strategy ?? live?.strategy ?? this.defaultStrategy;
      const fields = request.hotFields ?? [...this.hotPolicy.fieldsFor(request.key)];
      // Whether the client chose: re-tiering and the lifecycle leave explicit choices alone. A strategy kept from
      // the previous version keeps that version's source.
      const attrs: ManifestAttributes = {
        hotFieldsSource: request.hotFields ? 'request' : 'policy',
        strategySource: request.strategy ? 'request' : live?.strategy === strategy ? (live.strategySource ?? 'policy') : 'policy',
        ...(expiresAtMs === undefined ? {} : { expiresAtMs }),
      };
      const cacheKey = `${strategy}\n${fields.join('\n')}`;
      let plan = cache.get(cacheKey);
      if (!plan) {
        plan = planDocument(request.doc, strategy, fields, fields.map((f) => parseFieldPath(f, 'INVALID_HOT_FIELDS')));
        cache.set(cacheKey, plan);
      }
      return { kind: 'document', plan, attrs };
    }, request.idempotency);
    this.tiering?.access?.wrote(committed.manifest, request.doc);
    return committed;
  }

  async patch(request: PatchRequest): Promise<CommittedWrite> {
    const ttlFrom = this.nowMs();
    const committed = await this.writes.mutate(request.key, request.preconditions, async (current) => {
      const manifest = this.liveOf(current);
      if (!current || !manifest) {
        throw new StrataError('NOT_FOUND', `no document is stored under "${request.key}"; write it before patching`);
      }
      const attrs = keptAttributes(manifest, request.ttlMs === undefined ? manifest.expiresAtMs : ttlFrom + request.ttlMs);
      if (manifest.strategy === 'field_hybrid' && touchesOnlyHot(manifest, request)) {
        return { kind: 'document', plan: await this.planHotPatch(current, request), attrs };
      }
      const bytes = await this.readOrRestart(current, () => this.reads.readDocument(manifest));
      const doc = parseJson(bytes, { depthMax: Number.MAX_SAFE_INTEGER, membersMax: Number.MAX_SAFE_INTEGER, what: 'stored document' });
      const patched = applyPatch(doc, request);
      if (!isJsonObject(patched)) {
        throw new StrataError('PATCH_FAILED', 'the patch would replace the document with a non-object; documents are JSON objects');
      }
      this.checkLimits(patched);
      const segments = manifest.hotFields.map((f) => parseFieldPath(f, 'INVALID_HOT_FIELDS'));
      const plan = planDocument(patched, manifest.strategy, manifest.hotFields, segments);
      this.checkSize(plan.logicalBytes);
      return { kind: 'document', plan, attrs };
    }, request.idempotency);
    if (this.tiering?.access) this.tiering.access.patched(committed.manifest, patchPaths(request));
    return committed;
  }

  async delete(key: string, preconditions: Preconditions, idempotency?: IdempotentOutcome): Promise<CommittedWrite> {
    return this.writes.mutate(key, preconditions, async (current) => {
      if (!this.liveOf(current)) throw new StrataError('NOT_FOUND', `no document is stored under "${key}"`);
      return { kind: 'tombstone' };
    }, idempotency);
  }

  /** Applies the patch to the hot members alone and plans a pure hot update. */
  private async planHotPatch(current: StoredManifest, request: PatchRequest): Promise<DocumentPlan> {
    const manifest = current.manifest;
    const entries = await this.readOrRestart(current, () => this.reads.readHotEntries(manifest));
    const partial: JsonObject = new Map();
    for (const entry of entries) setAt(partial, entry.segments, entry.value);
    const patched = applyPatch(partial, request);
    if (!isJsonObject(patched)) {
      throw new StrataError('PATCH_FAILED', 'the patch would replace the document with a non-object; documents are JSON objects');
    }
    const next: DecodedHot[] = [];
    for (const entry of entries) {
      const value = getAt(patched, entry.segments);
      if (value === undefined) continue;
      const depth = entry.segments.length + depthOf(value);
      if (depth > this.limits.depthMax) {
        throw new StrataError('DOCUMENT_TOO_DEEP', `the patched document would nest ${depth} levels deep; the limit is ${this.limits.depthMax}`);
      }
      next.push({ ...entry, value, valueText: serializeJson(value) });
    }
    const hotBytes = hotBytesOf(next, manifest.coldEmptyOffsets);
    const logicalBytes = manifest.bytes.cold + hotBytes;
    this.checkSize(logicalBytes);
    return {
      strategy: manifest.strategy,
      hotFields: manifest.hotFields,
      hotPaths: next.map((e) => e.pointer),
      emptyOffsets: manifest.coldEmptyOffsets,
      hotPayload: next.length > 0 ? encodeHotBlob(next) : null,
      coldText: null,
      coldHash: manifest.coldHash,
      logicalBytes,
      hotBytes,
      coldBytes: manifest.bytes.cold,
    };
  }

  /**
   * Reads part of the document a patch applies to. When that fails because a newer write released the blobs
   * meanwhile, the patch starts again from the newer manifest instead of failing.
   */
  private async readOrRestart<T>(current: StoredManifest, read: () => Promise<T>): Promise<T> {
    try {
      return await read();
    } catch (error) {
      if (!isStrataError(error, 'INSUFFICIENT_NODES')) throw error;
      const latest = await this.reads.currentManifest(current.manifest.key);
      if (latest?.modRevision !== current.modRevision) throw new StalePlanError(current.manifest.key);
      throw error;
    }
  }

  private checkLimits(doc: JsonObject): void {
    let members = 0;
    const depth = depthOf(doc, () => {
      members++;
      if (members > this.limits.membersMax) {
        throw new StrataError('TOO_MANY_FIELDS', `the patched document would have more than ${this.limits.membersMax} members and elements`);
      }
    });
    if (depth > this.limits.depthMax) {
      throw new StrataError('DOCUMENT_TOO_DEEP', `the patched document would nest ${depth} levels deep; the limit is ${this.limits.depthMax}`);
    }
  }

  private checkSize(logicalBytes: number): void {
    if (logicalBytes > this.limits.bodyBytesMax) {
      throw new StrataError(
        'DOCUMENT_TOO_LARGE',
        `the patched document would be ${logicalBytes} bytes; the limit is ${this.limits.bodyBytesMax}`,
      );
    }
  }
}

/** What a patch carries over from the version it patches (it keeps strategy and hot fields, so their sources too). */
function keptAttributes(manifest: Manifest, expiresAtMs: number | undefined): ManifestAttributes {
  const attrs: ManifestAttributes = {};
  if (manifest.hotFieldsSource !== undefined) attrs.hotFieldsSource = manifest.hotFieldsSource;
  if (manifest.strategySource !== undefined) attrs.strategySource = manifest.strategySource;
  if (expiresAtMs !== undefined) attrs.expiresAtMs = expiresAtMs;
  return attrs;
}

/** The paths a patch changes (for access statistics); a malformed patch never got this far. */
function patchPaths(request: PatchRequest): string[][] {
  if (request.kind === 'merge-patch') return mergePatchLeaves(request.patch);
  try {
    return patchTouchedPointers(request.patch);
  } catch {
    return [];
  }
}

function applyPatch(doc: JsonValue, request: PatchRequest): JsonValue {
  return request.kind === 'json-patch' ? applyJsonPatch(doc, request.patch) : applyMergePatch(doc, request.patch);
}

/**
 * True when every path the patch reads or writes lies inside a hot member the document has (the member itself
 * or something below it), so the cold part cannot change. Anything else (a new member, a cold member, a parent
 * of a hot member) takes the full path.
 */
function touchesOnlyHot(manifest: Manifest, request: PatchRequest): boolean {
  if (manifest.hotPaths.length === 0) return false;
  const hot = manifest.hotPaths.map((p) => parseFieldPath(p, 'INVALID_HOT_FIELDS'));
  const within = (segments: readonly string[]): boolean =>
    hot.some((h) => h.length <= segments.length && h.every((s, i) => s === segments[i]));
  if (request.kind === 'json-patch') {
    let touched: string[][];
    try {
      touched = patchTouchedPointers(request.patch);
    } catch {
      return false; // a malformed patch is reported by the full path, with its precise message
    }
    return touched.length > 0 && touched.every(within);
  }
  if (!isJsonObject(request.patch)) return false;
  const ancestorOfHot = (segments: readonly string[]): boolean =>
    hot.some((h) => h.length > segments.length && segments.every((s, i) => s === h[i]));
  const visit = (patch: JsonObject, prefix: string[]): boolean => {
    for (const [name, value] of patch) {
      const path = [...prefix, name];
      if (within(path)) continue;
      if (ancestorOfHot(path) && isJsonObject(value)) {
        if (!visit(value, path)) return false;
        continue;
      }
      return false;
    }
    return true;
  };
  return visit(request.patch, []);
}



/** Nesting depth counted in objects and arrays (a scalar is 0); `onMember` is called once per member or element. */
function depthOf(value: JsonValue, onMember?: () => void): number {
  // Iterative so that a deep value cannot overflow the stack.
  let max = 0;
  const stack: [JsonValue, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (Array.isArray(v)) {
      max = Math.max(max, d + 1);
      for (const item of v) {
        onMember?.();
        stack.push([item, d + 1]);
      }
    } else if (isJsonObject(v)) {
      max = Math.max(max, d + 1);
      for (const item of v.values()) {
        onMember?.();
        stack.push([item, d + 1]);
      }
    }
  }
  return max;
}
