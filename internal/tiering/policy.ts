/**
 * The learned hot-field policy: pure functions of a prefix's tiering record, so that every gateway and the healer
 * reach the same answer from the same record.
 *
 * Score. A field's score is its decayed count of projection reads naming it plus patches and writes that changed
 * it, per half-life (STRATA_TIERING_HALF_LIFE_MS).
 *
 * Cost model (bytes per half-life). Keeping a field hot stores its value 3 times instead of 1.5 times (RS 4+2),
 * and rewrites those 3 copies whenever its document changes (every write and patch stores a new hot blob):
 *   cost    = 1.5 * V * N * storedByteWeight + 3 * V * changes
 * where V is the field's average value size, N the documents of the prefix seen (at least 1), changes the
 * prefix's decayed writes and patches, and storedByteWeight the worth of keeping one byte for one half-life, in
 * bytes of I/O (1 by default). What it saves:
 *   benefit = proj * C + chg * 1.5 * C
 * where C is the prefix's average cold part: a projection that stays in the hot tier avoids reading four data
 * shards (about C bytes) and a change that stays a pure hot update avoids re-encoding and writing 1.5 * C bytes.
 *
 * Moves pay for themselves. Moving a field (either way) rewrites every document of the prefix, the healer's
 * re-tiering or the document's next client write alike: its cold part re-encoded as shards and its hot replicas
 * rewritten:
 *   move    = N * (1.5 * C + 3 * H)
 * where H is the prefix's average hot part. A field is moved only when what the move gains over one half-life
 * exceeds that: benefit - cost > move to promote, cost - benefit > move to demote. A small value that nobody uses
 * any more therefore stays hot beside large cold parts (keeping it costs a few bytes, moving it would re-encode
 * every cold part), while a large value rewritten three times on every update of its document moves out.
 *
 * Hysteresis. A cold field is promoted when score >= promote threshold AND benefit >= 2 * cost AND the move pays;
 * a hot one is demoted when (score < demote threshold (lower than the promote threshold) OR benefit < cost) AND
 * the move pays. Either decision stands for at least the dwell time (STRATA_TIERING_DWELL_MS); the configured
 * default fields of a new prefix are observed for one dwell time before any is demoted. The gaps between the
 * thresholds (and the move cost on both sides) are what stop a field whose use hovers around one of them from
 * flapping; the dwell time bounds flapping to once per dwell time even for a workload built to defeat the
 * thresholds.
 *
 * Precedence (docs/api.md): the request's hot_fields; else pins (PUT /policy pins, and
 * STRATA_HOT_FIELDS_BY_PREFIX for the key's longest matching prefix) plus the learned set, which is the promoted
 * fields plus the configured defaults (STRATA_HOT_FIELDS) the policy has not demoted. As before the policy
 * learned, a prefix pinned by STRATA_HOT_FIELDS_BY_PREFIX does not use the defaults.
 */
import { HOT_FIELD_LIST, formatFieldPath, parseFieldPaths } from '../json/pointer.js';
import { LIMITS } from '../core/limits.js';
import { TIERING_LIMITS } from './limits.js';
import { decayRecord, type TieringRecord } from './record.js';

export interface PolicySettings {
  halfLifeMs: number;
  promoteScore: number;
  demoteScore: number;
  dwellMs: number;
}

export const COST_MODEL = {
  /** Copies of a hot value (3 replicas) minus what it costs cold (RS 4+2: 1.5). */
  hotExtraCopies: 1.5,
  /** Bytes written per cold change: the cold part re-encoded into 6 shards of a quarter each. */
  coldWriteCopies: 1.5,
  /** Copies of the hot part every write of a document stores (3 replicas): what keeping a value hot rewrites. */
  hotWriteCopies: 3,
  /** Worth of storing one byte for one half-life, in bytes of I/O saved. */
  storedByteWeight: 1,
  /** A promotion needs benefit >= margin * cost; a demotion happens below benefit < cost (both: and the move paying). */
  promoteMargin: 2,
  /** Assumed value size of a field never seen with a value. */
  defaultValueBytes: 64,
} as const;

export interface FieldAssessment {
  field: string;
  score: number;
  projectionReads: number;
  changes: number;
  valueBytes: number;
  benefitBytes: number;
  costBytes: number;
  /** Bytes moving the field (either way) writes: every document's cold part re-encoded, its hot replicas rewritten. */
  moveBytes: number;
}

/** Normalizes paths to the form responses show (plain names, pointers for nested ones) and drops covered descendants. */
export function normalizeFields(paths: readonly string[]): string[] {
  return parseFieldPaths(paths, 'INVALID_HOT_FIELDS', { ...HOT_FIELD_LIST, countMax: Number.MAX_SAFE_INTEGER }).map(formatFieldPath);
}

export function assess(record: TieringRecord, field: string): FieldAssessment {
  const c = record.fields[field];
  const proj = c?.proj ?? 0;
  const chg = c?.chg ?? 0;
  const valueBytes = c && c.valueBytes > 0 ? c.valueBytes : COST_MODEL.defaultValueBytes;
  const docs = Math.max(1, Object.keys(record.keys).length);
  const cold = record.coldBytes;
  const m = COST_MODEL;
  return {
    field,
    score: proj + chg,
    projectionReads: proj,
    changes: chg,
    valueBytes,
    benefitBytes: proj * cold + chg * m.coldWriteCopies * cold,
    costBytes: m.hotExtraCopies * valueBytes * docs * m.storedByteWeight + m.hotWriteCopies * valueBytes * record.changes,
    moveBytes: docs * (m.coldWriteCopies * cold + m.hotWriteCopies * record.hotBytes),
  };
}

/**
 * Re-evaluates every field the record knows at `nowMs` (counters decayed first) and returns the new record; its
 * `epoch` moves when the learned hot set changed. `base` is the prefix's default list (empty when the prefix is
 * pinned by configuration); `pinned` are fields no decision may touch.
 */
export function evaluate(
  input: TieringRecord,
  nowMs: number,
  settings: PolicySettings,
  base: readonly string[],
  pinned: readonly string[],
): TieringRecord {
  const record = decayRecord(input, nowMs, settings.halfLifeMs);
  const pins = new Set([...pinned, ...(record.pins ?? [])]);
  const defaults = new Set(base);
  const createdMs = record.createdMs;
  const candidates = new Set([...Object.keys(record.fields), ...Object.keys(record.decisions)]);
  let hotCount = effectiveFields(record, base, pinned).length;
  let changed = false;
  for (const field of [...candidates].sort()) {
    if (pins.has(field)) continue;
    const decision = record.decisions[field];
    const hot = decision ? decision.hot : defaults.has(field);
    // Without a decision: a default field has been hot since the record began; any other may be promoted at once.
    const sinceMs = decision ? decision.sinceMs : defaults.has(field) ? createdMs : Number.NEGATIVE_INFINITY;
    if (nowMs - sinceMs < settings.dwellMs) continue;
    const a = assess(record, field);
    const figures =
      `score ${round(a.score)}, benefit ${Math.round(a.benefitBytes)} B vs cost ${Math.round(a.costBytes)} B per half-life, ` +
      `move ${Math.round(a.moveBytes)} B`;
    // What the move gains over one half-life must exceed what it writes once (see "Moves pay for themselves").
    if (!hot && a.score >= settings.promoteScore && a.benefitBytes >= COST_MODEL.promoteMargin * a.costBytes && a.benefitBytes - a.costBytes > a.moveBytes) {
      if (hotCount >= LIMITS.hotFieldsMax) continue;
      record.decisions[field] = { hot: true, sinceMs: nowMs, reason: `promoted: ${figures} (promote at ${settings.promoteScore})` };
      hotCount++;
      changed = true;
    } else if (hot && (a.score < settings.demoteScore || a.benefitBytes < a.costBytes) && a.costBytes - a.benefitBytes > a.moveBytes) {
      const why = a.score < settings.demoteScore ? `below ${settings.demoteScore}` : 'benefit below cost';
      record.decisions[field] = { hot: false, sinceMs: nowMs, reason: `demoted: ${figures} (${why})` };
      hotCount--;
      changed = true;
    }
  }
  pruneDecisions(record, defaults, settings.dwellMs, nowMs);
  if (changed) {
    record.epoch++;
    record.changedAtMs = nowMs;
  }
  return record;
}

/** A cold decision about a field that is not a default is the same as no decision: drop it once it has dwelt. */
function pruneDecisions(record: TieringRecord, defaults: ReadonlySet<string>, dwellMs: number, nowMs: number): void {
  for (const [field, d] of Object.entries(record.decisions)) {
    if (!d.hot && !defaults.has(field) && nowMs - d.sinceMs >= dwellMs && record.fields[field] === undefined) {
      delete record.decisions[field];
    }
  }
  const entries = Object.entries(record.decisions);
  if (entries.length > TIERING_LIMITS.decisionsPerPrefixMax) {
    // Keep hot decisions first, then the newest cold ones.
    entries.sort((a, b) => Number(b[1].hot) - Number(a[1].hot) || b[1].sinceMs - a[1].sinceMs);
    record.decisions = Object.fromEntries(entries.slice(0, TIERING_LIMITS.decisionsPerPrefixMax));
  }
}

/**
 * The hot fields the policy gives a key of this prefix (without a request's own list): pins, then the defaults
 * not demoted, then the promoted fields in name order; descendants of a listed path dropped; at most
 * LIMITS.hotFieldsMax.
 */
export function effectiveFields(record: TieringRecord | null, base: readonly string[], pinned: readonly string[]): string[] {
  const decisions = record?.decisions ?? {};
  const pins = [...(record?.pins ?? []), ...pinned];
  const defaults = base.filter((f) => decisions[f]?.hot !== false);
  const promoted = Object.entries(decisions)
    .filter(([, d]) => d.hot)
    .map(([f]) => f)
    .sort();
  return normalizeFields([...new Set([...pins, ...defaults, ...promoted])]).slice(0, LIMITS.hotFieldsMax);
}

/** Same fields, in any order. */
export function sameFieldSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((f) => set.has(f));
}

export interface ReadHeavySettings {
  halfLifeMs: number;
  readsMin: number;
  factor: number;
  extraMax: number;
}

/**
 * Extra hot replicas `key` deserves: its decayed reads must reach `readsMin` and `factor` times the average of
 * the other documents the record lists; one extra at that, two at twice `readsMin`. A document that has extras
 * keeps them while it stays above half of both thresholds (hysteresis), so they are not added and removed on
 * every round.
 */
export function extraReplicasFor(record: TieringRecord | null, key: string, current: number, nowMs: number, s: ReadHeavySettings): number {
  if (record === null || s.extraMax === 0) return 0;
  const own = record.keys[key];
  if (!own) return 0;
  const keep = current > 0 ? 0.5 : 1;
  const elapsed = nowMs - record.atMs;
  const f = elapsed > 0 ? Math.pow(2, -elapsed / s.halfLifeMs) : 1;
  const reads = own.reads * f;
  const entries = Object.values(record.keys);
  const othersTotal = entries.reduce((sum, k) => sum + k.reads, 0) * f - reads;
  const othersMean = entries.length > 1 ? othersTotal / (entries.length - 1) : 0;
  if (reads < s.readsMin * keep || reads < s.factor * keep * othersMean) return 0;
  const wanted = reads >= 2 * s.readsMin ? 2 : 1;
  return Math.min(s.extraMax, current > 0 ? Math.max(current, wanted) : wanted);
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
