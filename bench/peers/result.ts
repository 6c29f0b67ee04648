/**
 * The JSON result of `npm run bench -- peers` (written to bench-results/ beside the harness's) and its tables:
 * issue 15's table of medians over rounds, the Strata / SeaweedFS ratios measured in the same run, and the goals.
 */
import type { MachineInfo } from '../harness/machine.js';
import type { Measurement } from './loadgen-runner.js';
import type { FigureId, PeersSettings, SystemId } from './settings.js';

export const PEERS_RESULT_FORMAT_VERSION = 1;

export interface PeersRun extends Measurement {
  round: number;
  system: SystemId;
  figure: FigureId;
  startedAt: string;
}

/** Medians over rounds of one system's figure (errors are summed: one is too many). */
export interface PeersSummary {
  system: SystemId;
  figure: FigureId;
  rounds: number;
  opsPerSec: number;
  mbPerSec: number;
  latencyMs: { p50: number; p99: number; max: number };
  errors: number;
  serverCpuMsPerOp: number | null;
  loadgenCpuMsPerOp: number;
  /** End-of-run 1-minute load averages, lowest and highest over rounds. */
  loadAverage1m: { min: number | null; max: number | null };
}

export interface PeersGoal {
  figure: string;
  goal: string;
  measured: number | null;
  met: boolean | null;
}

export interface PeersResult {
  format: number;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: MachineInfo;
  settings: PeersSettings;
  loadGenerator: { tool: 'bench/peers/loadgen (Go, net/http)'; binary: string };
  seaweedfs: { module: string; version: string; release: string; binary: string };
  systems: { id: SystemId; label: string; description: string }[];
  runs: PeersRun[];
  summary: PeersSummary[];
  goals: PeersGoal[];
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function medianOrNull(values: readonly (number | null)[]): number | null {
  const known = values.filter((v): v is number => v !== null);
  return known.length === 0 ? null : median(known);
}

export function summarize(runs: readonly PeersRun[], systems: readonly SystemId[], figures: readonly FigureId[]): PeersSummary[] {
  const out: PeersSummary[] = [];
  for (const system of systems) {
    for (const figure of figures) {
      const mine = runs.filter((r) => r.system === system && r.figure === figure);
      if (mine.length === 0) continue;
      const loads = mine.map((r) => r.loadAverage1m.end).filter((v): v is number => v !== null);
      out.push({
        system,
        figure,
        rounds: mine.length,
        opsPerSec: median(mine.map((r) => r.opsPerSec)),
        mbPerSec: median(mine.map((r) => r.mbPerSec)),
        latencyMs: {
          p50: median(mine.map((r) => r.latencyMs.p50)),
          p99: median(mine.map((r) => r.latencyMs.p99)),
          max: median(mine.map((r) => r.latencyMs.max)),
        },
        errors: mine.reduce((sum, r) => sum + r.errors, 0),
        serverCpuMsPerOp: medianOrNull(mine.map((r) => r.serverCpuMsPerOp)),
        loadgenCpuMsPerOp: median(mine.map((r) => (r.ops > 0 ? (r.loadgenCpuSeconds * 1000) / r.ops : 0))),
        loadAverage1m: { min: loads.length ? Math.min(...loads) : null, max: loads.length ? Math.max(...loads) : null },
      });
    }
  }
  return out;
}

function find(summary: readonly PeersSummary[], system: SystemId, figure: FigureId): PeersSummary | undefined {
  return summary.find((s) => s.system === system && s.figure === figure);
}

function ratio(a: number | undefined, b: number | undefined): number | null {
  return a === undefined || b === undefined || !(b > 0) ? null : a / b;
}

/** Issue 15's goals, as ratios of this run's medians; null when a system was left out (--only). */
export function computeGoals(summary: readonly PeersSummary[]): PeersGoal[] {
  const hybrid = (f: FigureId): PeersSummary | undefined => find(summary, 'strata-field_hybrid', f);
  const one = (f: FigureId): PeersSummary | undefined => find(summary, 'seaweedfs-one-copy', f);
  const three = (f: FigureId): PeersSummary | undefined => find(summary, 'seaweedfs-three-copies', f);
  const goal = (figure: string, bar: string, measured: number | null, atLeast: boolean, limit: number): PeersGoal => ({
    figure,
    goal: bar,
    measured,
    met: measured === null ? null : atLeast ? measured >= limit : measured <= limit,
  });
  return [
    goal('1 KiB field_hybrid writes/s vs SeaweedFS one copy', '>= 1.0', ratio(hybrid('write-1k')?.opsPerSec, one('write-1k')?.opsPerSec), true, 1.0),
    goal('1 KiB field_hybrid write p99 vs SeaweedFS one copy', '<= 1.0', ratio(hybrid('write-1k')?.latencyMs.p99, one('write-1k')?.latencyMs.p99), false, 1.0),
    goal('1 KiB field_hybrid reads/s vs SeaweedFS one copy', '>= 1.0', ratio(hybrid('read-1k')?.opsPerSec, one('read-1k')?.opsPerSec), true, 1.0),
    goal('1 KiB field_hybrid read p99 vs SeaweedFS one copy', '<= 1.0', ratio(hybrid('read-1k')?.latencyMs.p99, one('read-1k')?.latencyMs.p99), false, 1.0),
    goal('100 KiB field_hybrid write MB/s vs SeaweedFS three copies', '>= 1.0', ratio(hybrid('write-100k')?.mbPerSec, three('write-100k')?.mbPerSec), true, 1.0),
    goal('100 KiB field_hybrid read MB/s vs SeaweedFS one copy', '>= 0.8', ratio(hybrid('read-100k')?.mbPerSec, one('read-100k')?.mbPerSec), true, 0.8),
  ];
}

function fmt(n: number | null | undefined, digits = 0): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Two significant digits at most, as the issue writes latencies (16, 2.9, 0.8). */
function ms(n: number | undefined): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n >= 10 ? fmt(n, 0) : n >= 1 ? fmt(n, 1) : fmt(n, 2);
}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function loadRange(...s: (PeersSummary | undefined)[]): string {
  const mins = s.map((x) => x?.loadAverage1m.min).filter((v): v is number => v !== null && v !== undefined);
  const maxs = s.map((x) => x?.loadAverage1m.max).filter((v): v is number => v !== null && v !== undefined);
  if (mins.length === 0) return '-';
  const lo = Math.min(...mins);
  const hi = Math.max(...maxs);
  return lo === hi ? fmt(lo, 1) : `${fmt(lo, 1)} to ${fmt(hi, 1)}`;
}

function errorsNote(...s: (PeersSummary | undefined)[]): string {
  const errors = s.reduce((sum, x) => sum + (x?.errors ?? 0), 0);
  return errors > 0 ? `${fmt(errors)} errors` : '';
}

/** Issue 15's tables: 1 KiB and 100 KiB documents, one row per system, then the ratios and goals. */
export function peersTables(result: Pick<PeersResult, 'summary' | 'systems' | 'goals' | 'settings'>): string {
  const { summary, systems, settings } = result;
  const small = [[
    `1 KiB documents, ${settings.smallClients} clients`, 'writes/s', 'write p50 / p99', 'reads/s', 'read p50 / p99', 'server CPU per write', 'per read', 'load avg', '',
  ]];
  const large = [[
    `100 KiB documents, ${settings.largeClients} clients`, 'write MB/s', 'write p50 / p99', 'read MB/s', 'read p50 / p99', 'server CPU per write', 'per read', 'load avg', '',
  ]];
  for (const sys of systems) {
    const w = find(summary, sys.id, 'write-1k');
    const r = find(summary, sys.id, 'read-1k');
    small.push([
      sys.label,
      fmt(w?.opsPerSec),
      w ? `${ms(w.latencyMs.p50)} / ${ms(w.latencyMs.p99)} ms` : '-',
      fmt(r?.opsPerSec),
      r ? `${ms(r.latencyMs.p50)} / ${ms(r.latencyMs.p99)} ms` : '-',
      w?.serverCpuMsPerOp != null ? `${fmt(w.serverCpuMsPerOp, 2)} ms` : '-',
      r?.serverCpuMsPerOp != null ? `${fmt(r.serverCpuMsPerOp, 2)} ms` : '-',
      loadRange(w, r),
      errorsNote(w, r),
    ]);
    const lw = find(summary, sys.id, 'write-100k');
    const lr = find(summary, sys.id, 'read-100k');
    large.push([
      sys.label,
      fmt(lw?.mbPerSec, 1),
      lw ? `${ms(lw.latencyMs.p50)} / ${ms(lw.latencyMs.p99)} ms` : '-',
      fmt(lr?.mbPerSec, 1),
      lr ? `${ms(lr.latencyMs.p50)} / ${ms(lr.latencyMs.p99)} ms` : '-',
      lw?.serverCpuMsPerOp != null ? `${fmt(lw.serverCpuMsPerOp, 2)} ms` : '-',
      lr?.serverCpuMsPerOp != null ? `${fmt(lr.serverCpuMsPerOp, 2)} ms` : '-',
      loadRange(lw, lr),
      errorsNote(lw, lr),
    ]);
  }
  const ratios = [['Strata / SeaweedFS (same run)', '1 KiB writes/s', 'reads/s', 'write p99', 'read p99', 'CPU per write', '100 KiB write MB/s', 'read MB/s']];
  const stratas = systems.filter((s) => s.id.startsWith('strata-'));
  const weeds = systems.filter((s) => s.id.startsWith('seaweedfs-'));
  for (const a of stratas) {
    for (const b of weeds) {
      const x = (f: FigureId, pick: (s: PeersSummary) => number | null): string => {
        const sa = find(summary, a.id, f);
        const sb = find(summary, b.id, f);
        return fmt(sa && sb ? ratio(pick(sa) ?? undefined, pick(sb) ?? undefined) : null, 2);
      };
      ratios.push([
        `${a.id} / ${b.id}`,
        x('write-1k', (s) => s.opsPerSec),
        x('read-1k', (s) => s.opsPerSec),
        x('write-1k', (s) => s.latencyMs.p99),
        x('read-1k', (s) => s.latencyMs.p99),
        x('write-1k', (s) => s.serverCpuMsPerOp),
        x('write-100k', (s) => s.mbPerSec),
        x('read-100k', (s) => s.mbPerSec),
      ]);
    }
  }
  const goals = [['goal (issue 15, ratio in this run)', 'goal', 'measured', 'result']];
  for (const g of result.goals) goals.push([g.figure, g.goal, fmt(g.measured, 2), g.met === null ? '-' : g.met ? 'met' : 'not met']);
  return `${pad(small)}\n\n${pad(large)}\n\n${ratios.length > 1 ? `${pad(ratios)}\n\n` : ''}${pad(goals)}\n`;
}
