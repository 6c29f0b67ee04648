/**
 * The per-prefix tiering record, shared by every gateway and the healer through the metadata store
 * (MetadataStore.updateTieringRecord): the prefix's decayed access counters, the policy's learned decisions,
 * hand pins, lifecycle settings, and the healer's re-tiering progress. Gateways merge what they counted since
 * their last flush into it (merge, never overwrite: see mergeDelta); the policy is re-evaluated in the same
 * update, so every reader sees one decision.
 *
 * Counters decay exponentially: a count c recorded at time t is worth c * 2^-((now - t) / halfLife) at `now`.
 * A record keeps every counter decayed to its `atMs`, so merging only multiplies by one factor.
 */
import { TIERING_LIMITS } from './limits.js';

export const TIERING_RECORD_FORMAT = 1;

export interface FieldCounters {
  /** Decayed projection reads naming the field (or a path inside it). */
  proj: number;
  /** Decayed patches and writes that changed the field. */
  chg: number;
  /** Average bytes of the field's value as last seen (an estimate for the cost model). */
  valueBytes: number;
}

export interface KeyCounters {
  /** Decayed reads of this one document. */
  reads: number;
  lastReadMs: number;
}

export interface FieldDecision {
  hot: boolean;
  /** When the policy made this decision (the dwell time counts from here). */
  sinceMs: number;
  /** Why, for GET /policy: the score and the cost model's figures at the time. */
  reason: string;
}

export interface LifecycleSettings {
  /** Documents neither read nor written for this long move from `replication` to `ec`; null = the configured default. */
  idleToEcAfterMs: number | null;
  /** Also move documents whose client chose `replication` explicitly. */
  overrideExplicit: boolean;
}

export interface RetierProgress {
  /** The policy epoch the healer is working towards. */
  epoch: number;
  /** The last key it finished with (the walk resumes after it). */
  cursor: string | null;
  /** The epoch whose walk has completed. */
  doneEpoch: number;
}

export interface TieringRecord {
  format: number;
  prefix: string;
  /** When the record was created: the configured defaults are observed for one dwell time from here. */
  createdMs: number;
  /** Counters below are decayed to this time. */
  atMs: number;
  reads: number;
  projections: number;
  changes: number;
  /**
   * Average cold bytes of the documents read or written (what a cold read costs, and what re-encoding one cold
   * part writes), an estimate for the cost model.
   */
  coldBytes: number;
  /** Average hot bytes of the same documents (what rewriting one document's hot replicas writes); 0 in records from before it was kept. */
  hotBytes: number;
  fields: Record<string, FieldCounters>;
  keys: Record<string, KeyCounters>;
  /** A document not listed in `keys` (its counter was evicted) may have been read as late as this. */
  unlistedReadAtMs: number;
  decisions: Record<string, FieldDecision>;
  /** Fields pinned by PUT /policy (null: none). */
  pins: string[] | null;
  pinnedAtMs: number | null;
  lifecycle: LifecycleSettings;
  /** Bumped whenever the learned hot set or the pins change: the target of re-tiering. */
  epoch: number;
  changedAtMs: number | null;
  retier: RetierProgress;
}

/** What one gateway counted for one prefix since its last flush, decayed to `atMs`. */
export interface AccessDelta {
  atMs: number;
  reads: number;
  projections: number;
  changes: number;
  coldBytesSum: number;
  /** Sampled together with the cold bytes (one per field_hybrid document read or written): coldSamples counts both. */
  hotBytesSum: number;
  coldSamples: number;
  fields: Map<string, { proj: number; chg: number; valueBytesSum: number; valueSamples: number }>;
  keys: Map<string, KeyCounters>;
  unlistedReadAtMs: number;
}

export function emptyRecord(prefix: string, nowMs: number): TieringRecord {
  return {
    format: TIERING_RECORD_FORMAT,
    prefix,
    createdMs: nowMs,
    atMs: nowMs,
    reads: 0,
    projections: 0,
    changes: 0,
    coldBytes: 0,
    hotBytes: 0,
    fields: {},
    keys: {},
    unlistedReadAtMs: 0,
    decisions: {},
    pins: null,
    pinnedAtMs: null,
    lifecycle: { idleToEcAfterMs: null, overrideExplicit: false },
    epoch: 0,
    changedAtMs: null,
    retier: { epoch: 0, cursor: null, doneEpoch: 0 },
  };
}

export function emptyDelta(nowMs: number): AccessDelta {
  return {
    atMs: nowMs,
    reads: 0,
    projections: 0,
    changes: 0,
    coldBytesSum: 0,
    hotBytesSum: 0,
    coldSamples: 0,
    fields: new Map(),
    keys: new Map(),
    unlistedReadAtMs: 0,
  };
}

/** The factor a counter is multiplied by after `elapsedMs` (1 for no or negative elapsed time: clocks differ). */
export function decayFactor(elapsedMs: number, halfLifeMs: number): number {
  return elapsedMs <= 0 ? 1 : Math.pow(2, -elapsedMs / halfLifeMs);
}

/** Brings a delta's counters forward to `nowMs` (a gateway does this before adding each new event). */
export function decayDelta(delta: AccessDelta, nowMs: number, halfLifeMs: number): void {
  const f = decayFactor(nowMs - delta.atMs, halfLifeMs);
  if (nowMs > delta.atMs) delta.atMs = nowMs;
  if (f === 1) return;
  delta.reads *= f;
  delta.projections *= f;
  delta.changes *= f;
  for (const c of delta.fields.values()) {
    c.proj *= f;
    c.chg *= f;
  }
  for (const k of delta.keys.values()) k.reads *= f;
}

/** Decays a record's counters to `nowMs` (a copy; the input is left alone). */
export function decayRecord(record: TieringRecord, nowMs: number, halfLifeMs: number): TieringRecord {
  const next = structuredClone(record);
  const f = decayFactor(nowMs - record.atMs, halfLifeMs);
  if (nowMs > next.atMs) next.atMs = nowMs;
  if (f === 1) return next;
  next.reads *= f;
  next.projections *= f;
  next.changes *= f;
  for (const c of Object.values(next.fields)) {
    c.proj *= f;
    c.chg *= f;
  }
  for (const k of Object.values(next.keys)) k.reads *= f;
  return next;
}

/**
 * Adds one gateway's delta to the shared record: both are decayed to the later of their times, then summed.
 * Every gateway adds only what it counted itself, so no contribution is ever overwritten. Bounded afterwards.
 */
export function mergeDelta(record: TieringRecord, delta: AccessDelta, halfLifeMs: number): TieringRecord {
  const nowMs = Math.max(record.atMs, delta.atMs);
  const next = decayRecord(record, nowMs, halfLifeMs);
  const f = decayFactor(nowMs - delta.atMs, halfLifeMs);
  next.reads += delta.reads * f;
  next.projections += delta.projections * f;
  next.changes += delta.changes * f;
  if (delta.coldSamples > 0) {
    const sample = delta.coldBytesSum / delta.coldSamples;
    // A moving average: new samples weigh a quarter, so one odd document does not swing the estimate.
    next.coldBytes = next.coldBytes === 0 ? sample : 0.75 * next.coldBytes + 0.25 * sample;
    const hotSample = delta.hotBytesSum / delta.coldSamples;
    next.hotBytes = next.hotBytes === 0 ? hotSample : 0.75 * next.hotBytes + 0.25 * hotSample;
  }
  for (const [path, c] of delta.fields) {
    const field = (next.fields[path] ??= { proj: 0, chg: 0, valueBytes: 0 });
    field.proj += c.proj * f;
    field.chg += c.chg * f;
    if (c.valueSamples > 0) {
      const sample = c.valueBytesSum / c.valueSamples;
      field.valueBytes = field.valueBytes === 0 ? sample : 0.75 * field.valueBytes + 0.25 * sample;
    }
  }
  for (const [key, k] of delta.keys) {
    const entry = (next.keys[key] ??= { reads: 0, lastReadMs: 0 });
    entry.reads += k.reads * f;
    entry.lastReadMs = Math.max(entry.lastReadMs, k.lastReadMs);
  }
  next.unlistedReadAtMs = Math.max(next.unlistedReadAtMs, delta.unlistedReadAtMs);
  boundRecord(next);
  return next;
}

/** Evicts the least used fields and documents beyond their limits (an evicted document's last read is remembered). */
export function boundRecord(record: TieringRecord): void {
  const fields = Object.entries(record.fields);
  if (fields.length > TIERING_LIMITS.fieldsPerPrefixMax) {
    fields.sort((a, b) => b[1].proj + b[1].chg - (a[1].proj + a[1].chg));
    record.fields = Object.fromEntries(fields.slice(0, TIERING_LIMITS.fieldsPerPrefixMax));
  }
  const keys = Object.entries(record.keys);
  if (keys.length > TIERING_LIMITS.keysPerPrefixMax) {
    keys.sort((a, b) => b[1].reads - a[1].reads);
    for (const [, k] of keys.slice(TIERING_LIMITS.keysPerPrefixMax)) {
      record.unlistedReadAtMs = Math.max(record.unlistedReadAtMs, k.lastReadMs);
    }
    record.keys = Object.fromEntries(keys.slice(0, TIERING_LIMITS.keysPerPrefixMax));
  }
}

/**
 * The last time `key` may have been read, as far as the record can tell: its own counter, or (when it has none)
 * the latest read of any document whose counter was evicted. Conservative: never earlier than the truth, as long
 * as every gateway flushed.
 */
export function lastReadMsOf(record: TieringRecord | null, key: string): number {
  if (record === null) return 0;
  return record.keys[key]?.lastReadMs ?? record.unlistedReadAtMs;
}

/** Reads a record from the store, filling in what an older format lacks; null for something that is not one. */
export function asTieringRecord(value: unknown, prefix: string): TieringRecord | null {
  if (typeof value !== 'object' || value === null) return null;
  const v = value as Partial<TieringRecord>;
  if (v.format !== TIERING_RECORD_FORMAT || typeof v.atMs !== 'number') return null;
  return { ...emptyRecord(prefix, v.atMs), ...v, prefix } as TieringRecord;
}
