/**
 * The read path (architecture.md, "Read"): manifest, then the hot part from one healthy replica (a second one is
 * asked when the first is slow or fails) and the cold part from the four data shards, with parity shards
 * standing in for any that are missing, slow or corrupt. A projection of hot fields only never touches the cold
 * tier. Whatever was found bad is reported for repair. A read whose blobs were released by a newer write in the
 * meantime re-reads the manifest and starts again.
 */
import type { NodePool } from '../cluster/node-pool.js';
import type { Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import { EC_DATA_SHARDS } from '../core/limits.js';
import type { ErasureCode } from '../ec/erasure-code.js';
import { parseJson } from '../json/parse.js';
import { projectDocument, projectHot } from '../json/project.js';
import { serializeJson } from '../json/serialize.js';
import { decodeHotBlob, mergeDocument, type DecodedHot } from '../json/split.js';
import { isJsonObject } from '../json/value.js';
import type { Logger } from '../log/logger.js';
import type { Manifest, StoredManifest } from '../manifest/manifest.js';
import type { MetadataStore } from '../metadata/metadata-store.js';
import { fetchReplica, fetchShards, type FetchProblem } from '../blobio/blob-io.js';
import type { ManifestSource } from './manifest-cache.js';
import type { AccessObserver } from '../tiering/access-recorder.js';
import { isExpired } from '../manifest/manifest.js';
import { coldPlacementOf, coldTextFrom } from '../coldpart/cold-layout.js';
import { PartCache } from './part-cache.js';

/** What the read path reports for metrics (internal/metrics); reads work the same without an observer. */
export interface ReadObserver {
  /** A document (or a projection of it) was read; `strategy` is its manifest's. */
  documentRead(strategy: string): void;
  /** A read had to work around a missing, corrupt, slow or down blob: another replica, or parity shards. */
  degradedRead(tier: 'hot' | 'cold'): void;
}

export interface ReadServiceDeps {
  metadata: MetadataStore;
  /**
   * Where manifests are read from: the watch-fed cache (./manifest-cache.ts), which is as linearizable as the
   * store. Without it every read asks the store.
   */
  manifests?: ManifestSource;
  pool: NodePool;
  ec: ErasureCode;
  clock: Clock;
  log: Logger;
  options: { nodeTimeoutMs: number; hedgeAfterMs: number; depthMax: number; membersMax: number };
  observer?: ReadObserver;
  /** Access statistics for the tiering policy (internal/tiering); reads work the same without. */
  access?: AccessObserver;
  /** Parts already fetched and verified (./part-cache.ts); without it every read goes to the nodes. */
  parts?: PartCache;
}

export interface ReadOptions {
  fields?: string[][];
  /** True for a version the client already has (If-None-Match): the read answers with no body and fetches nothing. */
  notModified?: (version: string) => boolean;
  /**
   * Told, before any blob is fetched, how many more bytes the read is about to hold (the document's size, or the hot
   * part's for a projection the hot fields answer); it may throw to refuse the read (the gateway's body budget).
   */
  reserve?: (bytes: number) => void;
}

export interface ReadResult {
  manifest: Manifest;
  /** Null when `ifNoneMatch` matched (304). */
  body: Buffer | null;
  coldRead: boolean;
  projected: boolean;
}

/** A read restarts at most this many times when newer writes keep releasing the blobs it was reading. */
const READ_RESTARTS_MAX = 4;

export class ReadService {
  private replicaCursor = 0;
  private readonly parts: PartCache;

  constructor(private readonly deps: ReadServiceDeps) {
    this.parts = deps.parts ?? new PartCache(0);
  }

  /** The live manifest of `key`, or NOT_FOUND. */
  async liveManifest(key: string): Promise<StoredManifest> {
    const stored = await this.currentManifest(key);
    // A document past its time to live reads as absent at once; the healer deletes it later.
    if (!stored || stored.manifest.deleted || isExpired(stored.manifest, this.deps.clock.nowMs())) {
      throw new StrataError('NOT_FOUND', `no document is stored under "${key}"`);
    }
    return stored;
  }

  /** The stored manifest of `key` (tombstones included), or null. */
  currentManifest(key: string): Promise<StoredManifest | null> {
    return (this.deps.manifests ?? this.deps.metadata).get(key);
  }

  async read(key: string, options: ReadOptions = {}): Promise<ReadResult> {
    let stored = await this.liveManifest(key);
    // What the caller has been told this read will hold in memory, so that a restart only asks for the difference.
    let reserved = 0;
    const reserve = (bytes: number): void => {
      if (bytes <= reserved) return;
      options.reserve?.(bytes - reserved);
      reserved = bytes;
    };
    for (let attempt = 0; ; attempt++) {
      const manifest = stored.manifest;
      this.deps.observer?.documentRead(manifest.strategy);
      if (options.notModified?.(manifest.version) === true) {
        return { manifest, body: null, coldRead: false, projected: options.fields !== undefined };
      }
      try {
        if (options.fields) {
          const projected = await this.project(manifest, options.fields, reserve);
          this.deps.access?.read(manifest, options.fields, projected.body.length);
          return { manifest, ...projected, projected: true };
        }
        reserve(manifest.bytes.logical);
        const body = await this.readDocument(manifest);
        this.deps.access?.read(manifest, null, body.length);
        return { manifest, body, coldRead: manifest.cold.length > 0, projected: false };
      } catch (error) {
        const restarted = await this.restartAfterRelease(key, stored, error, attempt);
        if (!restarted) throw error;
        stored = restarted;
      }
    }
  }

  /** The whole document as compact JSON bytes. */
  async readDocument(manifest: Manifest): Promise<Buffer> {
    switch (manifest.strategy) {
      case 'replication':
        return this.readHotPayload(manifest);
      case 'ec':
        return this.readCold(manifest);
      case 'field_hybrid': {
        const [hot, cold] = await Promise.all([this.readHotEntries(manifest), this.readCold(manifest)]);
        return mergeDocument(cold, hot);
      }
    }
  }

  /** The hot members of a field_hybrid document (empty when it has none). */
  async readHotEntries(manifest: Manifest): Promise<DecodedHot[]> {
    if (manifest.hot.length === 0) return [];
    return decodeHotBlob(await this.readHotPayload(manifest));
  }

  private async project(manifest: Manifest, fields: string[][], reserve: (bytes: number) => void): Promise<{ body: Buffer; coldRead: boolean }> {
    if (manifest.strategy === 'field_hybrid') {
      reserve(manifest.bytes.hot);
      const hot = await this.readHotEntries(manifest);
      const fromHot = projectHot(hot, fields);
      if (fromHot !== null) return { body: Buffer.from(serializeJson(fromHot), 'utf8'), coldRead: false };
    }
    reserve(manifest.bytes.logical);
    const full = await this.readDocument(manifest);
    const doc = parseJson(full, { depthMax: this.deps.options.depthMax + 1, membersMax: Number.MAX_SAFE_INTEGER, what: 'stored document' });
    if (!isJsonObject(doc)) throw new Error(`stored document ${manifest.key} is not an object`);
    return {
      body: Buffer.from(serializeJson(projectDocument(doc, fields)), 'utf8'),
      coldRead: manifest.cold.length > 0,
    };
  }

  private readHotPayload(manifest: Manifest): Promise<Buffer> {
    return this.parts.get('hot', manifest.hot, () => this.fetchHotPayload(manifest));
  }

  private async fetchHotPayload(manifest: Manifest): Promise<Buffer> {
    // Rotate the first replica asked so that reads of one document spread over its replicas.
    const startIndex = this.replicaCursor++ % Math.max(1, manifest.hot.length);
    try {
      const { data, problems } = await fetchReplica(this.deps.pool, manifest.hot, { ...this.timeouts(), startIndex });
      if (problems.length > 0) this.deps.observer?.degradedRead('hot');
      this.report(manifest, problems);
      return data;
    } catch (error) {
      this.report(manifest, problemsOf(error));
      throw error;
    }
  }

  /** The cold text: from one of its copies or from four shards, then decompressed when stored compressed. */
  private readCold(manifest: Manifest): Promise<Buffer> {
    return this.parts.get('cold', manifest.cold, () => this.fetchCold(manifest));
  }

  private async fetchCold(manifest: Manifest): Promise<Buffer> {
    const layout = manifest.cold_layout;
    if (!layout) throw new Error(`manifest of ${manifest.key} has cold shards but no layout`);
    try {
      let stored: Buffer;
      if (coldPlacementOf(layout) === 'with_replicas') {
        const { data, problems } = await fetchReplica(this.deps.pool, manifest.cold, this.timeouts());
        this.report(manifest, problems);
        stored = data;
      } else {
        const { shards, problems } = await fetchShards(this.deps.pool, manifest.cold, { ...this.timeouts(), need: EC_DATA_SHARDS });
        // Parity standing in for a data shard is what makes a cold read degraded (a slow shard counts too).
        if (problems.length > 0 || shards.slice(0, EC_DATA_SHARDS).some((s) => s === null)) this.deps.observer?.degradedRead('cold');
        this.report(manifest, problems);
        stored = await this.deps.ec.reconstruct(shards, layout.dataBytes);
      }
      return await coldTextFrom(manifest, stored);
    } catch (error) {
      this.report(manifest, problemsOf(error));
      throw error;
    }
  }

  /**
   * After a failed read: if the manifest changed meanwhile (a newer write released the blobs), start again
   * from the new manifest; otherwise the failure is real.
   */
  private async restartAfterRelease(
    key: string,
    stored: StoredManifest,
    error: unknown,
    attempt: number,
  ): Promise<StoredManifest | null> {
    if (!(error instanceof StrataError) || error.code !== 'INSUFFICIENT_NODES') return null;
    if (attempt >= READ_RESTARTS_MAX) return null;
    const latest = await this.liveManifest(key);
    return latest.modRevision !== stored.modRevision ? latest : null;
  }

  private timeouts(): { timeoutMs: number; hedgeAfterMs: number } {
    return { timeoutMs: this.deps.options.nodeTimeoutMs, hedgeAfterMs: this.deps.options.hedgeAfterMs };
  }

  /** Missing and corrupt blobs are reported to the healer; a node that is merely down is found by its audit. */
  private report(manifest: Manifest, problems: readonly FetchProblem[]): void {
    if (!problems.some((p) => p.kind === 'missing' || p.kind === 'corrupt')) return;
    this.deps.metadata.addRepairHint(manifest.key).catch((error) => {
      this.deps.log.warn({ err: error, key: manifest.key }, 'could not record a repair hint');
    });
  }
}

function problemsOf(error: unknown): FetchProblem[] {
  const problems = (error as { problems?: FetchProblem[] } | null)?.problems;
  return Array.isArray(problems) ? problems : [];
}
