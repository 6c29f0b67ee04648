/**
 * The bars of shared/design/benchmarks.md, gated as ratios of figures measured in the same run, and the absolute
 * aims (reported, met or not). A bar whose scenarios did not run is `pass: null`.
 */
import type { ScenarioResult } from './result.js';

export interface BarResult {
  figure: string;
  bar: string;
  /** The ratio (or, for cold bytes, the byte count) measured. */
  measured: number | null;
  detail: string;
  pass: boolean | null;
}

const find = (results: ScenarioResult[], id: string): ScenarioResult | undefined => results.find((r) => r.id === id);

function ratioBar(figure: string, bar: string, num: ScenarioResult | undefined, den: ScenarioResult | undefined, value: (r: ScenarioResult) => number, ok: (x: number) => boolean, unit: string): BarResult {
  if (!num || !den || value(den) === 0) return { figure, bar, measured: null, detail: 'not measured', pass: null };
  const ratio = value(num) / value(den);
  return { figure, bar, measured: ratio, detail: `${value(num).toFixed(unit === 'ms' ? 2 : 0)} / ${value(den).toFixed(unit === 'ms' ? 2 : 0)} ${unit}`, pass: ok(ratio) };
}

export function computeBars(results: ScenarioResult[]): BarResult[] {
  const hot = results.filter((r) => r.scenario === 'hot-patch' || r.scenario === 'hot-post');
  const coldBytes = hot.reduce((sum, r) => sum + (r.coldBytesWritten ?? 0), 0);
  const opsPerSec = (r: ScenarioResult) => r.opsPerSec;
  return [
    hot.length === 0
      ? { figure: 'cold bytes written by pure hot updates (counted by the nodes)', bar: '= 0', measured: null, detail: 'not measured', pass: null }
      : {
          figure: 'cold bytes written by pure hot updates (counted by the nodes)',
          bar: '= 0',
          measured: coldBytes,
          detail: `${hot.reduce((s, r) => s + r.requests - r.errors, 0)} updates in ${hot.length} scenarios`,
          pass: coldBytes === 0,
        },
    ratioBar('hot PATCH of an iot document vs 1 KiB replication write, p50', '<= 1.5', find(results, 'hot-patch/iot'), find(results, 'write/replication/small'), (r) => r.latencyMs.p50, (x) => x <= 1.5, 'ms'),
    ratioBar('field_hybrid vs replication writes/s, small documents', '>= 0.5', find(results, 'write/field_hybrid/small'), find(results, 'write/replication/small'), opsPerSec, (x) => x >= 0.5, 'ops/s'),
    ratioBar('hot projection vs full reads, small field_hybrid, ops/s', '>= 1.5', find(results, 'project/field_hybrid'), find(results, 'read/field_hybrid'), opsPerSec, (x) => x >= 1.5, 'ops/s'),
    ratioBar('degraded (2 nodes down) vs healthy full reads, field_hybrid, ops/s', '>= 0.5', find(results, 'degraded/read/field_hybrid'), find(results, 'read/field_hybrid'), opsPerSec, (x) => x >= 0.5, 'ops/s'),
  ];
}

export interface AimResult {
  figure: string;
  aim: string;
  measured: string;
  met: boolean | null;
}

export function computeAims(results: ScenarioResult[], mode: string): AimResult[] {
  const aim = (figure: string, text: string, r: ScenarioResult | undefined, measure: (r: ScenarioResult) => [string, boolean]): AimResult => {
    if (!r) return { figure, aim: text, measured: 'not measured', met: null };
    const [measured, met] = measure(r);
    return { figure, aim: text, measured, met };
  };
  const heal = results.find((r) => r.scenario === 'heal');
  const aims = [
    aim('hybrid writes/s, small, 32 clients', '>= 5,000/s, p99 <= 15 ms', find(results, 'write/field_hybrid/small'), (r) => [
      `${r.opsPerSec.toFixed(0)}/s, p99 ${r.latencyMs.p99.toFixed(1)} ms`,
      r.opsPerSec >= 5000 && r.latencyMs.p99 <= 15,
    ]),
    aim('full reads/s, small field_hybrid', '>= 10,000/s', find(results, 'read/field_hybrid'), (r) => [`${r.opsPerSec.toFixed(0)}/s`, r.opsPerSec >= 10_000]),
    aim('hot projection reads/s, small field_hybrid', '>= 20,000/s', find(results, 'project/field_hybrid'), (r) => [`${r.opsPerSec.toFixed(0)}/s`, r.opsPerSec >= 20_000]),
    aim('large field_hybrid writes, logical MB/s', '>= 150 MB/s', find(results, 'write/field_hybrid/large'), (r) => [`${r.mbPerSec.toFixed(1)} MB/s`, r.mbPerSec >= 150]),
    aim('repair, MB/s rebuilt', '>= 50 MB/s', heal, (r) => [`${r.mbPerSec.toFixed(1)} MB/s${r.heal?.healed ? '' : ' (not finished)'}`, r.mbPerSec >= 50 && r.heal?.healed === true]),
  ];
  // The throughput aims are the all-in-one mode's; the cluster mode is reported without a verdict until measured once.
  return mode === 'all-in-one' ? aims : aims.map((a) => (a.figure.startsWith('repair') ? a : { ...a, met: null }));
}
