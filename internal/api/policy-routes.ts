/**
 * The tiering policy of a key prefix (internal/tiering): `GET /policy` lists the prefixes that have one,
 * `GET /policy/<prefix>` shows the hot fields in force and why (scores, the cost model's figures, thresholds,
 * last change, pins, lifecycle, read-heavy documents), `PUT /policy/<prefix>` pins fields by hand and sets the
 * prefix's lifecycle. The prefix is URL-encoded in the path (`/policy/user%3A`, `/policy/logs%2F`); `/policy/`
 * is the root prefix of keys without a separator.
 */
import type { Context, Hono } from 'hono';
import { StrataError } from '../core/errors.js';
import { HOT_FIELD_LIST, formatFieldPath, parseFieldPaths } from '../json/pointer.js';
import { evaluateFor } from '../tiering/access-recorder.js';
import { TIERING_LIMITS } from '../tiering/limits.js';
import { COST_MODEL, assess, effectiveFields, type PolicySettings } from '../tiering/policy.js';
import { validatePolicyPrefix } from '../tiering/prefix.js';
import { asTieringRecord, decayRecord, emptyRecord, type TieringRecord } from '../tiering/record.js';
import { StaticHotFieldPolicy } from '../policy/hot-fields.js';
import type { GatewayDeps } from './gateway-deps.js';
import { decodeComponent, rawRequestPath, readBody, requireMediaType } from './request.js';

/** `idle_to_ec_after_ms` at most ten years. */
const IDLE_MS_MAX = 10 * 365 * 24 * 60 * 60 * 1000;
/** Read-heavy documents shown per prefix. */
const READ_HEAVY_SHOWN = 10;
const PUT_MEMBERS = new Set(['pins', 'idle_to_ec_after_ms', 'override_explicit']);

export function registerPolicyRoutes(app: Hono, deps: GatewayDeps): void {
  const base = new StaticHotFieldPolicy(deps.config.defaultHotFields, deps.config.hotFieldsByPrefix);
  const settings: PolicySettings = {
    halfLifeMs: deps.config.tieringHalfLifeMs,
    promoteScore: deps.config.tieringPromoteScore,
    demoteScore: deps.config.tieringDemoteScore,
    dwellMs: deps.config.tieringDwellMs,
  };

  app.get('/policy', async (c) => {
    const page = await deps.metadata.listTieringRecords(null, TIERING_LIMITS.prefixesMax);
    const prefixes = page.flatMap(({ prefix, record }) => {
      const r = asTieringRecord(record, prefix);
      if (!r) return [];
      const pinned = base.pinnedFor(prefix);
      return [{ prefix, hot_fields: effectiveFields(r, pinned ? [] : base.defaults, pinned ?? []), epoch: r.epoch, changed_at: iso(r.changedAtMs) }];
    });
    return c.json({ prefixes });
  });

  app.get('/policy/*', async (c) => {
    const prefix = prefixFromPath(c);
    const stored = asTieringRecord(await deps.metadata.getTieringRecord(prefix), prefix);
    return c.json(explain(prefix, stored, deps.clock.nowMs(), settings, base, deps.config));
  });

  app.put('/policy/*', async (c) => {
    const prefix = prefixFromPath(c);
    requireMediaType(c, ['application/json']);
    const change = parsePolicyBody(await readBody(c, TIERING_LIMITS.policyBodyBytesMax));
    const now = deps.clock.nowMs();
    const stored = await deps.metadata.updateTieringRecord(prefix, (current) => {
      const record = structuredClone(asTieringRecord(current, prefix) ?? emptyRecord(prefix, now));
      if (change.pins !== undefined) {
        const before = JSON.stringify(record.pins ?? []);
        record.pins = change.pins.length > 0 ? change.pins : null;
        record.pinnedAtMs = now;
        if (JSON.stringify(record.pins ?? []) !== before) {
          // New pins change the split documents should have: re-tiering works towards this epoch.
          record.epoch++;
          record.changedAtMs = now;
        }
      }
      if (change.idleToEcAfterMs !== undefined) record.lifecycle.idleToEcAfterMs = change.idleToEcAfterMs;
      if (change.overrideExplicit !== undefined) record.lifecycle.overrideExplicit = change.overrideExplicit;
      return evaluateFor(record, now, settings, base);
    });
    const record = asTieringRecord(stored, prefix);
    if (record) deps.tiering?.remember(record);
    return c.json(explain(prefix, record, now, settings, base, deps.config));
  });
}

function prefixFromPath(c: Context): string {
  const raw = rawRequestPath(c.req.url, c.env).slice('/policy/'.length);
  let prefix: string;
  try {
    prefix = decodeComponent(raw, 'prefix', false);
  } catch {
    throw new StrataError('INVALID_PREFIX', `the prefix "${raw.slice(0, 100)}" is not valid percent-encoded UTF-8`);
  }
  return validatePolicyPrefix(prefix);
}

interface PolicyChange {
  pins?: string[];
  idleToEcAfterMs?: number | null;
  overrideExplicit?: boolean;
}

function parsePolicyBody(body: Buffer): PolicyChange {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new StrataError('INVALID_POLICY', `the body is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new StrataError('INVALID_POLICY', 'the body must be a JSON object such as {"pins": ["like_count"], "idle_to_ec_after_ms": 86400000}');
  }
  const v = value as Record<string, unknown>;
  for (const name of Object.keys(v)) {
    if (!PUT_MEMBERS.has(name)) throw new StrataError('INVALID_POLICY', `unknown member "${name.slice(0, 100)}"; allowed: ${[...PUT_MEMBERS].join(', ')}`);
  }
  const change: PolicyChange = {};
  if ('pins' in v) {
    const pins = v.pins === null ? [] : v.pins;
    if (!Array.isArray(pins) || !pins.every((p): p is string => typeof p === 'string')) {
      throw new StrataError('INVALID_POLICY', '"pins" must be an array of field paths (names or JSON Pointers), or null to clear them');
    }
    if (pins.length > TIERING_LIMITS.pinsMax) {
      throw new StrataError('INVALID_POLICY', `${pins.length} pins given; at most ${TIERING_LIMITS.pinsMax} are allowed`);
    }
    change.pins = parseFieldPaths(pins, 'INVALID_POLICY', HOT_FIELD_LIST).map(formatFieldPath);
  }
  if ('idle_to_ec_after_ms' in v) {
    const ms = v.idle_to_ec_after_ms;
    if (ms !== null && !(typeof ms === 'number' && Number.isSafeInteger(ms) && ms >= 0 && ms <= IDLE_MS_MAX)) {
      throw new StrataError('INVALID_POLICY', `"idle_to_ec_after_ms" must be a whole number of ms from 0 (never) to ${IDLE_MS_MAX}, or null for the default`);
    }
    change.idleToEcAfterMs = ms as number | null;
  }
  if ('override_explicit' in v) {
    if (typeof v.override_explicit !== 'boolean') throw new StrataError('INVALID_POLICY', '"override_explicit" must be true or false');
    change.overrideExplicit = v.override_explicit;
  }
  return change;
}

function explain(
  prefix: string,
  stored: TieringRecord | null,
  nowMs: number,
  settings: PolicySettings,
  base: StaticHotFieldPolicy,
  config: GatewayDeps['config'],
): unknown {
  const record = stored ? decayRecord(stored, nowMs, settings.halfLifeMs) : emptyRecord(prefix, nowMs);
  const configPins = base.pinnedFor(prefix);
  const hot = stored ? effectiveFields(record, configPins ? [] : base.defaults, configPins ?? []) : [...base.fieldsFor(prefix)];
  const hotSet = new Set(hot);
  const fields = Object.keys(record.fields)
    .map((field) => assess(record, field))
    .sort((a, b) => b.score - a.score)
    .map((a) => ({
      field: a.field,
      hot: hotSet.has(a.field),
      score: round(a.score),
      projection_reads: round(a.projectionReads),
      changes: round(a.changes),
      value_bytes: Math.round(a.valueBytes),
      benefit_bytes: Math.round(a.benefitBytes),
      cost_bytes: Math.round(a.costBytes),
      move_bytes: Math.round(a.moveBytes),
    }));
  const readHeavy = Object.entries(record.keys)
    .sort((a, b) => b[1].reads - a[1].reads)
    .slice(0, READ_HEAVY_SHOWN)
    .map(([key, k]) => ({ key, reads: round(k.reads), last_read_at: iso(k.lastReadMs) }));
  return {
    prefix,
    hot_fields: hot,
    pins: { api: record.pins ?? [], config: configPins ?? [] },
    defaults: configPins ? [] : base.defaults,
    learned: Object.entries(record.decisions).map(([field, d]) => ({ field, hot: d.hot, since: iso(d.sinceMs), reason: d.reason })),
    fields,
    thresholds: {
      promote_score: settings.promoteScore,
      demote_score: settings.demoteScore,
      dwell_ms: settings.dwellMs,
      half_life_ms: settings.halfLifeMs,
      promote_margin: COST_MODEL.promoteMargin,
    },
    cost_model: {
      hot_extra_copies: COST_MODEL.hotExtraCopies,
      cold_write_copies: COST_MODEL.coldWriteCopies,
      hot_write_copies: COST_MODEL.hotWriteCopies,
      stored_byte_weight: COST_MODEL.storedByteWeight,
    },
    stats: {
      at: iso(record.atMs),
      reads: round(record.reads),
      projections: round(record.projections),
      changes: round(record.changes),
      cold_bytes: Math.round(record.coldBytes),
      hot_bytes: Math.round(record.hotBytes),
      documents_tracked: Object.keys(record.keys).length,
    },
    epoch: record.epoch,
    changed_at: iso(record.changedAtMs),
    retier: { epoch: record.retier.epoch, done_epoch: record.retier.doneEpoch, cursor: record.retier.cursor, complete: record.retier.doneEpoch >= record.epoch },
    lifecycle: {
      idle_to_ec_after_ms: record.lifecycle.idleToEcAfterMs ?? config.idleToEcAfterMs,
      configured: record.lifecycle.idleToEcAfterMs,
      override_explicit: record.lifecycle.overrideExplicit,
    },
    read_heavy: readHeavy,
  };
}

function iso(ms: number | null): string | null {
  return ms === null || ms === 0 ? null : new Date(ms).toISOString();
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
