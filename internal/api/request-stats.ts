/**
 * A lightweight request counter for the web console's "live request rate" (GET /request_stats): totals by status
 * class and a ring of per-second counts over the last REQUEST_STATS_LIMITS.windowSec seconds. It is a middleware
 * over every route, and it does not depend on the Prometheus metrics (which carry the full picture).
 */
import type { Context, Env, Hono } from 'hono';
import type { Clock } from '../core/clock.js';
import { rawRequestPath } from './request.js';

export const REQUEST_STATS_LIMITS = {
  /** Seconds of per-second counts kept (one number each). */
  windowSec: 60,
} as const;

/** The console's own assets and this route would only count the console watching itself. */
const UNCOUNTED = /^\/(request_stats$|console\/|$)/;

/** `checkRequest` runs before GET /request_stats answers; what it throws is the answer. */
export function installRequestStats<E extends Env>(app: Hono<E>, clock: Clock, checkRequest: (c: Context<E>) => void = () => undefined): void {
  const startedMs = clock.nowMs();
  const byClass = { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 };
  let total = 0;
  const window = REQUEST_STATS_LIMITS.windowSec;
  const perSecond = new Array<number>(window).fill(0);
  let headSec = Math.floor(startedMs / 1000);

  /** Moves the ring forward to `nowSec`, zeroing the seconds that passed without requests. */
  const advance = (nowSec: number): void => {
    const steps = Math.min(window, Math.max(0, nowSec - headSec));
    for (let i = 1; i <= steps; i++) perSecond[(headSec + i) % window] = 0;
    if (nowSec > headSec) headSec = nowSec;
  };

  app.use('*', async (c, next) => {
    await next();
    if (UNCOUNTED.test(rawRequestPath(c.req.url, c.env))) return;
    total++;
    const cls = `${Math.floor(c.res.status / 100)}xx`;
    if (cls in byClass) byClass[cls as keyof typeof byClass]++;
    const nowSec = Math.floor(clock.nowMs() / 1000);
    advance(nowSec);
    perSecond[nowSec % window] = (perSecond[nowSec % window] ?? 0) + 1;
  });

  app.get('/request_stats', (c) => {
    checkRequest(c);
    const nowSec = Math.floor(clock.nowMs() / 1000);
    advance(nowSec);
    // Oldest first, ending with the current (partial) second.
    const recent: number[] = [];
    for (let i = window - 1; i >= 0; i--) recent.push(perSecond[(nowSec - i + window * 2) % window] ?? 0);
    return c.json({
      since: new Date(startedMs).toISOString(),
      total,
      by_class: byClass,
      per_second: recent,
    });
  });
}
