// Baseline for bench/micro/caches.bench.ts: internal/tiering/access-recorder.ts as it was before its LRU moved to lru-cache, kept
// unchanged (imports aside) so that the comparison can be run again. Not used by the product.
/**
 * A gateway's access statistics: what its reads, patches and writes touched, counted per prefix (./prefix.ts)
 * and field path with exponential decay, kept bounded in memory (TIERING_LIMITS), and merged every
 * STRATA_TIERING_FLUSH_INTERVAL_MS into the prefix's shared record in the metadata store, where the policy is
 * re-evaluated (./policy.ts). It also caches every prefix's record, which is what the gateway's hot-field policy
 * (internal/policy/learned-hot-fields.ts) and GET /policy read.
 *
 * Called from the read path (internal/readservice) and the write path (internal/writeservice/document-ops.ts)
 * after an operation succeeded; recording never throws and never waits.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../../internal/core/clock.js';
import { formatFieldPath } from '../../../internal/json/pointer.js';
import { serializeJson } from '../../../internal/json/serialize.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../../internal/json/value.js';
import type { Logger } from '../../../internal/log/logger.js';
import type { Manifest } from '../../../internal/manifest/manifest.js';
import type { MetadataStore } from '../../../internal/metadata/metadata-store.js';
import { TIERING_LIMITS } from '../../../internal/tiering/limits.js';
import { evaluate, normalizeFields, type PolicySettings } from '../../../internal/tiering/policy.js';
import { prefixOf } from '../../../internal/tiering/prefix.js';
import { asTieringRecord, decayDelta, emptyDelta, emptyRecord, mergeDelta, type AccessDelta, type TieringRecord } from '../../../internal/tiering/record.js';

/** What the read and write paths report; implemented by AccessRecorder, absent when tiering is not wired. */
export interface AccessObserver {
  /** A successful read: `fields` are the projected paths (segments), null for a whole document. */
  read(manifest: Manifest, fields: readonly (readonly string[])[] | null, bodyBytes: number): void;
  /** A committed patch that touched these paths (segments). */
  patched(manifest: Manifest, paths: readonly (readonly string[])[]): void;
  /** A committed write of `doc`: the fields that changed are found by comparing with the previous write's digests. */
  wrote(manifest: Manifest, doc: JsonObject): void;
}

/** Where a prefix's defaults and configuration pins come from (the static policy). */
export interface PrefixBase {
  /** Fields pinned by configuration for keys starting with `keyOrPrefix` (longest match), or null. */
  pinnedFor(keyOrPrefix: string): readonly string[] | null;
  defaults: readonly string[];
}

export interface AccessRecorderOptions {
  halfLifeMs: number;
  flushIntervalMs: number;
  policy: PolicySettings;
}

export class AccessRecorder implements AccessObserver {
  private deltas = new Map<string, AccessDelta>();
  private readonly records = new Map<string, TieringRecord>();
  /** Per document: digest of each top-level member as last written through this gateway (insertion order = LRU). */
  private readonly digests = new Map<string, Map<string, string>>();
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly deps: { metadata: MetadataStore; clock: Clock; log: Logger; base: PrefixBase },
    private readonly options: AccessRecorderOptions,
  ) {}

  start(): void {
    if (this.options.flushIntervalMs <= 0 || this.timer) return;
    this.timer = setInterval(() => void this.flush().catch(() => undefined), this.options.flushIntervalMs);
    this.timer.unref();
    void this.refresh().catch(() => undefined);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flush().catch(() => undefined);
  }

  /** The cached record of `prefix` (as of the last flush or refresh), or null. */
  record(prefix: string): TieringRecord | null {
    return this.records.get(prefix) ?? null;
  }

  remember(record: TieringRecord): void {
    this.records.set(record.prefix, record);
    if (this.records.size > TIERING_LIMITS.prefixesMax) {
      // The oldest-updated record goes; it is read again from the store at the next refresh if still needed.
      let oldest: TieringRecord | null = null;
      for (const r of this.records.values()) if (oldest === null || r.atMs < oldest.atMs) oldest = r;
      if (oldest) this.records.delete(oldest.prefix);
    }
  }

  // ---- recording -----------------------------------------------------------------------------------------

  read(manifest: Manifest, fields: readonly (readonly string[])[] | null, bodyBytes: number): void {
    const now = this.deps.clock.nowMs();
    const delta = this.delta(prefixOf(manifest.key), now);
    delta.reads++;
    sampleSizes(delta, manifest);
    const key = this.keyCounters(delta, manifest.key);
    key.reads++;
    key.lastReadMs = now;
    if (fields === null) return;
    delta.projections++;
    const each = fields.length > 0 ? bodyBytes / fields.length : 0;
    for (const segments of fields) this.countField(delta, formatFieldPath(segments), 'proj', each);
  }

  patched(manifest: Manifest, paths: readonly (readonly string[])[]): void {
    const now = this.deps.clock.nowMs();
    const delta = this.delta(prefixOf(manifest.key), now);
    delta.changes++;
    sampleSizes(delta, manifest);
    this.keyCounters(delta, manifest.key);
    // The remembered digests no longer describe the document.
    this.digests.delete(manifest.key);
    const seen = new Set<string>();
    for (const segments of paths) {
      if (segments.length === 0) continue;
      const field = formatFieldPath(segments);
      if (seen.has(field)) continue;
      seen.add(field);
      this.countField(delta, field, 'chg', 0);
    }
  }

  wrote(manifest: Manifest, doc: JsonObject): void {
    const now = this.deps.clock.nowMs();
    const delta = this.delta(prefixOf(manifest.key), now);
    delta.changes++;
    sampleSizes(delta, manifest);
    this.keyCounters(delta, manifest.key);
    const previous = this.digests.get(manifest.key);
    const next = new Map<string, string>();
    for (const [name, value] of doc) {
      const field = formatFieldPath([name]);
      // A long string is never a hot candidate (the cost model would not replicate it), so it is neither
      // serialized nor hashed again here: that was most of this method's cost for large documents.
      if (typeof value === 'string' && value.length > ACCESS_DIGEST_VALUE_CHARS_MAX) {
        this.countField(delta, field, null, value.length);
        continue;
      }
      const text = serializeJson(value);
      const digest = createHash('sha1').update(text).digest('base64');
      // A member name parsed out of the request body may be a slice of the whole body's string: kept as a map key
      // it would keep the body alive (V8 shares the parent of a sliced string). A copy keeps only the name.
      next.set(detachedString(name), digest);
      // Without the previous write's digests, nothing is known to have changed; only the value size is learned.
      const changed = previous !== undefined && previous.get(name) !== digest;
      this.countField(delta, field, changed ? 'chg' : null, Buffer.byteLength(text));
    }
    if (previous) for (const name of previous.keys()) if (!doc.has(name)) this.countField(delta, formatFieldPath([name]), 'chg', 0);
    this.digests.delete(manifest.key);
    this.digests.set(detachedString(manifest.key), next);
    if (this.digests.size > TIERING_LIMITS.digestKeysMax) this.digests.delete(this.digests.keys().next().value!);
  }

  private delta(prefix: string, now: number): AccessDelta {
    let delta = this.deltas.get(prefix);
    if (!delta) {
      if (this.deltas.size >= TIERING_LIMITS.prefixesMax) this.evictLeastUsedPrefix();
      delta = emptyDelta(now);
      this.deltas.set(prefix, delta);
    }
    decayDelta(delta, now, this.options.halfLifeMs);
    return delta;
  }

  private evictLeastUsedPrefix(): void {
    let victim: string | null = null;
    let least = Number.POSITIVE_INFINITY;
    for (const [prefix, d] of this.deltas) {
      const used = d.reads + d.changes;
      if (used < least) {
        least = used;
        victim = prefix;
      }
    }
    if (victim !== null) this.deltas.delete(victim);
  }

  private keyCounters(delta: AccessDelta, key: string): { reads: number; lastReadMs: number } {
    let counters = delta.keys.get(key);
    if (!counters) {
      if (delta.keys.size >= TIERING_LIMITS.keysPerPrefixMax) {
        let victim: string | null = null;
        let least = Number.POSITIVE_INFINITY;
        for (const [k, c] of delta.keys) if (c.reads < least) [least, victim] = [c.reads, k];
        if (victim !== null) {
          delta.unlistedReadAtMs = Math.max(delta.unlistedReadAtMs, delta.keys.get(victim)!.lastReadMs);
          delta.keys.delete(victim);
        }
      }
      counters = { reads: 0, lastReadMs: 0 };
      delta.keys.set(key, counters);
    }
    return counters;
  }

  private countField(delta: AccessDelta, field: string, counter: 'proj' | 'chg' | null, valueBytes: number): void {
    if (Buffer.byteLength(field) > TIERING_LIMITS.fieldPathBytesMax) return;
    let c = delta.fields.get(field);
    if (!c) {
      if (delta.fields.size >= TIERING_LIMITS.fieldsPerPrefixMax * 2) {
        // Twice the record's limit: the record keeps the most used after merging, so a delta needs some slack.
        let victim: string | null = null;
        let least = Number.POSITIVE_INFINITY;
        for (const [f, v] of delta.fields) if (v.proj + v.chg < least) [least, victim] = [v.proj + v.chg, f];
        if (victim !== null) delta.fields.delete(victim);
      }
      c = { proj: 0, chg: 0, valueBytesSum: 0, valueSamples: 0 };
      delta.fields.set(field, c);
    }
    if (counter !== null) c[counter]++;
    if (valueBytes > 0) {
      c.valueBytesSum += valueBytes;
      c.valueSamples++;
    }
  }

  // ---- sharing -------------------------------------------------------------------------------------------

  /** Merges every prefix's counters into its shared record (re-evaluating the policy), then refreshes the cache. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = null;
    });
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    const deltas = this.deltas;
    this.deltas = new Map();
    for (const [prefix, delta] of deltas) {
      try {
        const stored = await this.deps.metadata.updateTieringRecord(prefix, (current) =>
          this.evaluate(mergeDelta(asTieringRecord(current, prefix) ?? emptyRecord(prefix, delta.atMs), delta, this.options.halfLifeMs)),
        );
        const record = asTieringRecord(stored, prefix);
        if (record) this.remember(record);
      } catch (error) {
        this.deps.log.warn({ err: error, prefix }, 'could not merge access statistics into the shared record; they are dropped');
      }
    }
    await this.refresh();
  }

  /** Re-reads every prefix's record (at most TIERING_LIMITS.prefixesMax) into the cache. */
  async refresh(): Promise<void> {
    let after: string | null = null;
    let seen = 0;
    try {
      while (seen < TIERING_LIMITS.prefixesMax) {
        const page = await this.deps.metadata.listTieringRecords(after, TIERING_LIMITS.recordsPageMax);
        for (const { prefix, record } of page) {
          const parsed = asTieringRecord(record, prefix);
          if (parsed) this.remember(parsed);
        }
        seen += page.length;
        if (page.length < TIERING_LIMITS.recordsPageMax) break;
        after = page[page.length - 1]!.prefix;
      }
    } catch (error) {
      this.deps.log.warn({ err: error }, 'could not refresh the tiering records; using the cached ones');
    }
  }

  /** The policy step every update of a record runs (also used by the healer and PUT /policy). */
  evaluate(record: TieringRecord): TieringRecord {
    return evaluateFor(record, this.deps.clock.nowMs(), this.options.policy, this.deps.base);
  }
}

/** Evaluates `record` with the prefix's defaults and configuration pins. */
export function evaluateFor(record: TieringRecord, nowMs: number, policy: PolicySettings, base: PrefixBase): TieringRecord {
  const pinned = base.pinnedFor(record.prefix);
  return evaluate(record, Math.max(nowMs, record.atMs), policy, pinned ? [] : normalizeFields(base.defaults), normalizeFields(pinned ?? []));
}

/** The paths a patch changes, as segments: a JSON Patch's paths, or a merge patch's leaves (objects recursed). */
export function mergePatchLeaves(patch: JsonValue, depthMax = 8): string[][] {
  const out: string[][] = [];
  const walk = (value: JsonValue, prefix: string[]): void => {
    if (!isJsonObject(value) || prefix.length >= depthMax || value.size === 0) {
      if (prefix.length > 0) out.push(prefix);
      return;
    }
    for (const [name, v] of value) walk(v, [...prefix, name]);
  };
  walk(patch, []);
  return out;
}

/**
 * Learns the sizes of a field_hybrid document's parts: the cost model prices cold reads and changes, and moves
 * (every document's cold part re-encoded and hot replicas rewritten), with these averages. Writes count as well as
 * reads, so that a prefix that is only written still knows what re-tiering it would cost.
 */
function sampleSizes(delta: AccessDelta, manifest: Manifest): void {
  if (manifest.strategy !== 'field_hybrid') return;
  delta.coldBytesSum += manifest.bytes.cold;
  delta.hotBytesSum += manifest.bytes.hot;
  delta.coldSamples++;
}

/** Top-level string members longer than this are not digested (see wrote()). */
const ACCESS_DIGEST_VALUE_CHARS_MAX = 4096;

/** A flat copy of `text`, sharing no memory with the string it may have been sliced from. */
function detachedString(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8');
}
