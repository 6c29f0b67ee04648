/**
 * The tiering part of the configuration (read by config.ts, which owns process.env): how access statistics decay
 * and are shared, the thresholds of the learned hot-field policy, the rates of the healer's re-tiering and
 * lifecycle work, and when a document counts as read-heavy. What each knob does is explained in internal/tiering/
 * README.md and in the README's "Tiering" section.
 */

type Env = Record<string, string | undefined>;

export interface TieringSettings {
  /** Access counters halve every this many ms (exponential decay). */
  tieringHalfLifeMs: number;
  /** A gateway merges its counters into the shared per-prefix records this often; 0 = it never does (learning off). */
  tieringFlushIntervalMs: number;
  /** A field becomes hot when its score (decayed projection reads + changes) reaches this ... */
  tieringPromoteScore: number;
  /** ... and cold again when it falls below this (less than the promote score: hysteresis). */
  tieringDemoteScore: number;
  /** A learned decision about a field stands at least this long before it may be reversed. */
  tieringDwellMs: number;
  /** Documents the healer rewrites to a prefix's new split per round, at most. */
  retierDocsPerRoundMax: number;
  /** Documents the lifecycle moves to `ec` or expires per round, at most. */
  lifecycleDocsPerRoundMax: number;
  /** Default of every prefix's `idle_to_ec_after_ms`: 0 = the lifecycle moves nothing unless a prefix says so. */
  idleToEcAfterMs: number;
  /** A document needs at least this many decayed reads, and ... */
  readHeavyReadsMin: number;
  /** ... this many times the prefix's average per document, to get extra hot replicas. */
  readHeavyFactor: number;
  /** Extra hot replicas a read-heavy document gets (0 = none; at most 2, so 5 copies in all). */
  extraReplicasMax: number;
}

export const TIERING_DEFAULTS: TieringSettings = {
  tieringHalfLifeMs: 60 * 60 * 1000,
  tieringFlushIntervalMs: 10_000,
  tieringPromoteScore: 20,
  tieringDemoteScore: 4,
  tieringDwellMs: 10 * 60 * 1000,
  retierDocsPerRoundMax: 32,
  lifecycleDocsPerRoundMax: 32,
  idleToEcAfterMs: 0,
  readHeavyReadsMin: 200,
  readHeavyFactor: 8,
  extraReplicasMax: 2,
};

export function tieringSettings(env: Env, fail: (message: string) => Error): TieringSettings {
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^\d+$/.test(raw.trim())) throw fail(`${name} must be a whole number, got "${raw}"`);
    const value = Number(raw.trim());
    if (value < min || value > max) throw fail(`${name} must be between ${min} and ${max}, got ${value}`);
    return value;
  };
  const d = TIERING_DEFAULTS;
  const dayMs = 24 * 60 * 60 * 1000;
  const settings: TieringSettings = {
    tieringHalfLifeMs: int('STRATA_TIERING_HALF_LIFE_MS', d.tieringHalfLifeMs, 1000, 365 * dayMs),
    tieringFlushIntervalMs: int('STRATA_TIERING_FLUSH_INTERVAL_MS', d.tieringFlushIntervalMs, 0, dayMs),
    tieringPromoteScore: int('STRATA_TIERING_PROMOTE_SCORE', d.tieringPromoteScore, 1, 1_000_000_000),
    tieringDemoteScore: int('STRATA_TIERING_DEMOTE_SCORE', d.tieringDemoteScore, 0, 1_000_000_000),
    tieringDwellMs: int('STRATA_TIERING_DWELL_MS', d.tieringDwellMs, 0, 365 * dayMs),
    retierDocsPerRoundMax: int('STRATA_RETIER_DOCS_PER_ROUND_MAX', d.retierDocsPerRoundMax, 1, 10_000),
    lifecycleDocsPerRoundMax: int('STRATA_LIFECYCLE_DOCS_PER_ROUND_MAX', d.lifecycleDocsPerRoundMax, 1, 10_000),
    idleToEcAfterMs: int('STRATA_IDLE_TO_EC_AFTER_MS', d.idleToEcAfterMs, 0, 10 * 365 * dayMs),
    readHeavyReadsMin: int('STRATA_READ_HEAVY_READS_MIN', d.readHeavyReadsMin, 1, 1_000_000_000),
    readHeavyFactor: int('STRATA_READ_HEAVY_FACTOR', d.readHeavyFactor, 1, 1_000_000),
    extraReplicasMax: int('STRATA_EXTRA_REPLICAS_MAX', d.extraReplicasMax, 0, 2),
  };
  if (settings.tieringDemoteScore >= settings.tieringPromoteScore) {
    throw fail(
      `STRATA_TIERING_DEMOTE_SCORE (${settings.tieringDemoteScore}) must be less than STRATA_TIERING_PROMOTE_SCORE ` +
        `(${settings.tieringPromoteScore}): the gap between them is what keeps fields from flapping`,
    );
  }
  return settings;
}
