/**
 * GET /healer: the healer's leader and its recent repairs, read from the healer journal in the metadata store
 * (MetadataStore.recentHealerActions), so that any gateway answers it whichever process the healer runs in.
 */
import type { Env, Hono } from 'hono';
import { StrataError } from '../core/errors.js';
import { HEALER_JOURNAL_LIMITS, type MetadataIntegrity } from '../metadata/metadata-store.js';
import type { GatewayDeps } from './gateway-deps.js';
import { queryValue, rawQuery } from './request.js';

/** Journal entries a /healer answer carries unless `?limit=` says otherwise. */
export const HEALER_ROUTE_LIMITS = { recentDefault: 50 } as const;

export function registerHealerRoutes<E extends Env>(app: Hono<E>, deps: GatewayDeps, extras: { repairBacklog?: () => number | null } = {}): void {
  app.get('/healer', async (c) => {
    const limitText = queryValue(rawQuery(c), 'limit');
    let limit: number = HEALER_ROUTE_LIMITS.recentDefault;
    if (limitText !== undefined) {
      limit = Number(limitText);
      if (!/^\d+$/.test(limitText) || limit < 1 || limit > HEALER_JOURNAL_LIMITS.entriesMax) {
        throw new StrataError('INVALID_LIMIT', `limit must be an integer from 1 to ${HEALER_JOURNAL_LIMITS.entriesMax}, not "${limitText.slice(0, 40)}"`);
      }
    }
    const [leader, actions] = await Promise.all([
      deps.metadata.currentLeader(deps.healerLockName).catch(() => null),
      deps.metadata.recentHealerActions(limit),
    ]);
    return c.json({
      leader,
      repair_backlog: extras.repairBacklog?.() ?? null,
      // Why garbage collection and rollback keep blobs they would otherwise delete (null: nothing held back).
      gc_hold: gcHoldOf(deps.metadata.integrity()),
      recent: actions.map((a) => ({ at: new Date(a.atMs).toISOString(), kind: a.kind, key: a.key, detail: a.detail })),
    });
  });
}

/** The metadata store's reason to hold deletes, or the keys whose damaged manifest records keep their blobs. */
export function gcHoldOf(integrity: MetadataIntegrity): string | null {
  const keys = [...new Set(integrity.recent.filter((s) => s.kind === 'manifest').flatMap((s) => (s.ownKey === undefined ? [s.key] : [s.key, s.ownKey])))];
  const reasons = [
    ...(keys.length > 0 ? [`the blobs of ${keys.map((k) => JSON.stringify(k)).join(', ')} are kept: their manifest records failed verification`] : []),
    ...(integrity.gcHold !== null ? [integrity.gcHold] : []),
  ];
  return reasons.length === 0 ? null : reasons.join('; ');
}
