/** Reading the all-in-one's /metrics from the bench harness. */
import type { BenchTarget } from './target.js';

/** Named values of the all-in-one's /metrics (one gateway: behind nginx a scrape reaches one of several). */
export async function allInOneMetrics<K extends string>(t: BenchTarget, names: Record<K, string>): Promise<Record<K, number> | null> {
  if (t.mode !== 'all-in-one') return null;
  try {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const out = {} as Record<K, number>;
    for (const [field, name] of Object.entries(names) as [K, string][]) {
      const value = Number(new RegExp(`^${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
      if (!Number.isFinite(value)) return null;
      out[field] = value;
    }
    return out;
  } catch {
    return null;
  }
}
