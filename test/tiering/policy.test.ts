import { describe, expect, it } from 'vitest';
import { assess, evaluate, effectiveFields, extraReplicasFor, type PolicySettings } from '../../internal/tiering/policy.js';
import { prefixOf, validatePolicyPrefix } from '../../internal/tiering/prefix.js';
import { asTieringRecord, emptyDelta, emptyRecord, mergeDelta, lastReadMsOf, type AccessDelta, type TieringRecord } from '../../internal/tiering/record.js';
import { TIERING_LIMITS } from '../../internal/tiering/limits.js';
import { isStrataError } from '../../internal/core/errors.js';

const minute = 60_000;
const settings: PolicySettings = { halfLifeMs: 10 * minute, promoteScore: 20, demoteScore: 4, dwellMs: 5 * minute };
const start = 1_700_000_000_000;

/**
 * One flush interval's worth of events: field -> [projection reads, changes]. Values are 8 bytes unless
 * `valueBytes` says otherwise; the documents' parts are `coldBytes` and `hotBytes`.
 */
function delta(
  atMs: number,
  events: Record<string, [number, number]>,
  coldBytes = 50_000,
  sizes: { hotBytes?: number; valueBytes?: Record<string, number> } = {},
): AccessDelta {
  const d = emptyDelta(atMs);
  for (const [field, [proj, chg]] of Object.entries(events)) {
    d.fields.set(field, { proj, chg, valueBytesSum: sizes.valueBytes?.[field] ?? 8, valueSamples: 1 });
    d.reads += proj;
    d.projections += proj;
    d.changes += chg;
  }
  d.coldBytesSum = coldBytes;
  d.hotBytesSum = sizes.hotBytes ?? 64;
  d.coldSamples = 1;
  d.keys.set('doc:1', { reads: 1, lastReadMs: atMs });
  return d;
}

function run(record: TieringRecord, fromMs: number, steps: number, stepMs: number, events: (i: number) => Record<string, [number, number]>) {
  const flips = new Map<string, number>();
  let r = record;
  for (let i = 0; i < steps; i++) {
    const now = fromMs + i * stepMs;
    const before = effectiveFields(r, [], []);
    r = evaluate(mergeDelta(r, delta(now, events(i)), settings.halfLifeMs), now, settings, [], []);
    const after = effectiveFields(r, [], []);
    for (const f of new Set([...before, ...after])) {
      if (before.includes(f) !== after.includes(f)) flips.set(f, (flips.get(f) ?? 0) + 1);
    }
  }
  return { record: r, flips };
}

describe('learned hot-field policy', () => {
  it('promotes fields read by projection or changed often, and keeps small ones hot once they go quiet', () => {
    // 2 projection reads of a and b and 2 changes of c every 10 s: each reaches the promote score of 20 in 10 steps.
    const busy = run(emptyRecord('doc:', start), start, 12, 10_000, () => ({ a: [2, 0], b: [2, 0], c: [0, 2], rare: [0.1, 0] }));
    expect(effectiveFields(busy.record, [], [])).toEqual(['a', 'b', 'c']);
    expect(busy.record.decisions.a?.reason).toMatch(/promoted: .*move \d+ B/);
    // Quiet for 40 minutes (4 half-lives, 8 dwell times): keeping an 8-byte value hot costs 12 bytes per half-life,
    // demoting it would re-encode the 50 kB cold part. The move does not pay, so nothing moves.
    const quiet = run(busy.record, start + 12 * 10_000, 40, minute, () => ({}));
    expect(effectiveFields(quiet.record, [], [])).toEqual(['a', 'b', 'c']);
    expect(quiet.flips.size).toBe(0);
    const a = assess(quiet.record, 'a');
    expect(a.score).toBeLessThan(settings.demoteScore);
    expect(a.costBytes - a.benefitBytes).toBeLessThan(a.moveBytes);
  });

  it('does not demote quiet default fields when moving them would re-encode cold parts larger than they cost to keep', () => {
    // The iot shape: six small default fields beside an 800 KiB log, 20 documents, only battery_level changing.
    const defaults = ['battery_level', 'device_id', 'firmware_version', 'is_active', 'last_sync_ts', 'status_code'];
    let r = emptyRecord('iot:', start);
    for (let i = 0; i < 60; i++) {
      const now = start + i * minute;
      const d = delta(now, Object.fromEntries(defaults.map((f) => [f, [0, f === 'battery_level' ? 20 : 0]])), 800 * 1024, { hotBytes: 120 });
      for (let k = 0; k < 20; k++) d.keys.set(`iot:${k}`, { reads: 0, lastReadMs: 0 });
      r = evaluate(mergeDelta(r, d, settings.halfLifeMs), now, settings, defaults, []);
    }
    expect(effectiveFields(r, defaults, [])).toEqual(defaults);
    expect(r.epoch).toBe(0);
    const quiet = assess(r, 'device_id');
    expect(quiet.score).toBeLessThan(settings.demoteScore);
    // 20 cold parts of 800 KiB re-encoded as 1.5x shards, plus the hot replicas.
    expect(quiet.moveBytes).toBeGreaterThan(20 * 1.5 * 800 * 1024);
  });

  it('demotes a large hot value once every update of its document rewriting it costs more than the move', () => {
    // A 20 kB default field nobody reads beside a counter updated 10 times a minute: each update rewrites the
    // 20 kB three times in the hot replicas, while moving it out re-encodes only a 1 kB cold part once.
    let r = emptyRecord('feed:', start);
    for (let i = 0; i < 12; i++) {
      const now = start + i * minute;
      r = evaluate(
        mergeDelta(r, delta(now, { preview: [0, 0], likes: [0, 10] }, 1000, { hotBytes: 20_050, valueBytes: { preview: 20_000 } }), settings.halfLifeMs),
        now,
        settings,
        ['preview', 'likes'],
        [],
      );
    }
    expect(effectiveFields(r, ['preview', 'likes'], [])).toEqual(['likes']);
    expect(r.decisions.preview?.reason).toMatch(/demoted: .*move \d+ B/);
  });

  it('does not flap under a steady mixed workload, however its rates hover around the thresholds', () => {
    // Rates per step chosen so that each field's steady score sits near (above, between, below) the thresholds,
    // with +-40 % noise from step to step.
    let seed = 7;
    const noise = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
      return 0.6 + 0.8 * (seed / 2 ** 31);
    };
    const perStep = (score: number) => score / ((settings.halfLifeMs / minute) / Math.LN2);
    const { flips } = run(emptyRecord('doc:', start), start, 600, minute, () => ({
      high: [perStep(60) * noise(), 0],
      atPromote: [0, perStep(20) * noise()],
      between: [perStep(10) * noise(), 0],
      atDemote: [perStep(4) * noise(), 0],
      low: [perStep(1) * noise(), 0],
    }));
    // A field may change once, on its way to its steady state; never back and forth.
    for (const [field, count] of flips) expect(count, field).toBeLessThanOrEqual(1);
  });

  it('never demotes a pinned field and keeps configured defaults for one dwell time before judging them', () => {
    // Both are 20 kB values that the pinned field's frequent changes rewrite: demoting either would pay.
    const r0 = emptyRecord('u:', start);
    const sizes = { hotBytes: 40_000, valueBytes: { summary: 20_000, pinned: 20_000 } };
    const d = delta(start + 1000, { summary: [0, 0], pinned: [0, 30] }, 1000, sizes);
    const r1 = evaluate(mergeDelta(r0, d, settings.halfLifeMs), start + 1000, settings, ['summary'], ['pinned']);
    expect(effectiveFields(r1, ['summary'], ['pinned'])).toEqual(['pinned', 'summary']);
    const later = start + settings.dwellMs + 1000;
    const r2 = evaluate(r1, later, settings, ['summary'], ['pinned']);
    expect(effectiveFields(r2, ['summary'], ['pinned'])).toEqual(['pinned']);
  });

  it('keeps a large field cold when its bytes cost more than the cold reads it would save', () => {
    const d = emptyDelta(start);
    d.fields.set('blob', { proj: 50, chg: 0, valueBytesSum: 1_000_000, valueSamples: 1 });
    d.coldBytesSum = 1_000;
    d.coldSamples = 1;
    for (let i = 0; i < 10; i++) d.keys.set(`k${i}`, { reads: 5, lastReadMs: start });
    const r = evaluate(mergeDelta(emptyRecord('x:', start), d, settings.halfLifeMs), start, settings, [], []);
    expect(effectiveFields(r, [], [])).toEqual([]);
  });

  it('gives a document read far more than the others extra replicas and takes them away when it cools', () => {
    const r = emptyRecord('p:', start);
    r.keys = { hot: { reads: 500, lastReadMs: start }, a: { reads: 5, lastReadMs: start }, b: { reads: 3, lastReadMs: start } };
    const s = { halfLifeMs: settings.halfLifeMs, readsMin: 100, factor: 8, extraMax: 2 };
    expect(extraReplicasFor(r, 'hot', 0, start, s)).toBe(2);
    expect(extraReplicasFor(r, 'a', 0, start, s)).toBe(0);
    // Five half-lives later it has about 16 decayed reads: below half the minimum, so the extras go.
    expect(extraReplicasFor(r, 'hot', 2, start + 5 * settings.halfLifeMs, s)).toBe(0);
  });

  it('prices moves in a record stored before hot bytes were kept from its cold bytes alone, then learns them', () => {
    const stored: Record<string, unknown> = { ...emptyRecord('old:', start), coldBytes: 10_000, fields: { a: { proj: 1, chg: 0, valueBytes: 8 } } };
    delete stored.hotBytes;
    const old = asTieringRecord(JSON.parse(JSON.stringify(stored)), 'old:')!;
    expect(old.hotBytes).toBe(0);
    expect(assess(old, 'a').moveBytes).toBe(1.5 * 10_000);
    const merged = mergeDelta(old, delta(start, { a: [1, 0] }, 10_000, { hotBytes: 200 }), settings.halfLifeMs);
    expect(merged.hotBytes).toBe(200);
    expect(assess(merged, 'a').moveBytes).toBe(1.5 * 10_000 + 3 * 200);
  });

  it('bounds the record: fields and documents beyond the limits are evicted, least used first', () => {
    const d = emptyDelta(start);
    for (let i = 0; i < TIERING_LIMITS.fieldsPerPrefixMax + 10; i++) d.fields.set(`f${i}`, { proj: i, chg: 0, valueBytesSum: 0, valueSamples: 0 });
    for (let i = 0; i < TIERING_LIMITS.keysPerPrefixMax + 10; i++) d.keys.set(`k${i}`, { reads: i + 1, lastReadMs: start + i });
    const r = mergeDelta(emptyRecord('x:', start), d, settings.halfLifeMs);
    expect(Object.keys(r.fields)).toHaveLength(TIERING_LIMITS.fieldsPerPrefixMax);
    expect(r.fields.f0).toBeUndefined();
    expect(Object.keys(r.keys)).toHaveLength(TIERING_LIMITS.keysPerPrefixMax);
    // An evicted document may have been read as late as the latest evicted read: idleness stays conservative.
    expect(lastReadMsOf(r, 'k0')).toBe(start + 9);
  });
});

describe('prefix rule', () => {
  it('takes everything up to and including the first ":" or "/"', () => {
    expect(prefixOf('user:1001')).toBe('user:');
    expect(prefixOf('logs/2026/x:y')).toBe('logs/');
    expect(prefixOf('plain')).toBe('');
    expect(prefixOf(`${'x'.repeat(200)}:1`)).toBe('');
  });

  it('accepts only prefixes the rule produces, with a stable error code', () => {
    expect(validatePolicyPrefix('user:')).toBe('user:');
    expect(validatePolicyPrefix('')).toBe('');
    for (const bad of ['user', 'a:b:', 'x'.repeat(200) + ':']) {
      try {
        validatePolicyPrefix(bad);
        expect.unreachable(bad);
      } catch (error) {
        expect(isStrataError(error, 'INVALID_PREFIX')).toBe(true);
      }
    }
  });
});
