/** The JSON result of `npm run bench` (written to bench-results/) and its table. */
import type { LoadResult } from '../../internal/loadgen/node-loadgen.js';
import type { AimResult, BarResult } from './bars.js';
import type { HealResult } from './heal.js';
import type { SlowClientsResult } from './slow-clients.js';
import type { MachineInfo } from './machine.js';
import type { BenchSettings } from './settings.js';
import type { BenchMode } from './target.js';

export const RESULT_FORMAT_VERSION = 1;

export interface ScenarioResult extends Omit<LoadResult, 'tool'> {
  /** Stable id, e.g. `write/field_hybrid/small`, `degraded/read/ec`, `heal`. */
  id: string;
  /** Scenario number of benchmarks.md (1..6). */
  group: number;
  scenario: string;
  strategy: string | null;
  doc: string | null;
  vus: number;
  nodesDown: number;
  tool: LoadResult['tool'];
  /** Peak RSS of each process of the deployment (and the load generator) during the scenario. */
  peakRssBytes: Record<string, number>;
  /** Pure hot updates: bytes of new erasure-coded shards found on the nodes afterwards. */
  coldBytesWritten?: number;
  /** Share of document parts the gateway served from its read cache during the scenario (all-in-one only). */
  readCacheHitRate?: number;
  /** The all-in-one's V8 heap in use and external (Buffer) memory when the scenario ended. */
  memoryAtEnd?: { heapUsedBytes: number; externalBytes: number };
  heal?: HealResult;
  slowClients?: Omit<SlowClientsResult, 'load'>;
}

export interface BenchResult {
  format: number;
  startedAt: string;
  finishedAt: string;
  command: string;
  machine: MachineInfo;
  mode: BenchMode;
  deployment: string;
  backends: { metadata: string; wal: string };
  loadGenerator: { tool: 'k6' | 'node'; version: string | null };
  settings: BenchSettings;
  scenarios: ScenarioResult[];
  bars: BarResult[];
  aims: AimResult[];
}

const MB = 1e6;

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function pad(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function peakRss(r: ScenarioResult): string {
  const entries = Object.entries(r.peakRssBytes).filter(([name]) => name !== 'k6' && name !== 'load-generator');
  if (entries.length === 0) return '-';
  if (entries.length === 1) return `${fmt(entries[0]![1] / 1024 ** 2)} MiB`;
  const max = entries.reduce((a, b) => (b[1] > a[1] ? b : a));
  return `${max[0]} ${fmt(max[1] / 1024 ** 2)} MiB`;
}

/** One line per scenario: ops/s, MB/s, p50/p95/p99, errors, peak RSS (the largest process in the cluster mode). */
export function scenarioTable(results: ScenarioResult[]): string {
  const rows = [['scenario', 'ops/s', 'MB/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'peak RSS', 'note']];
  for (const r of results) {
    let note = '';
    if (r.coldBytesWritten !== undefined) note = `cold bytes written: ${fmt(r.coldBytesWritten)}`;
    if (r.readCacheHitRate !== undefined) note = `read cache hit rate ${(r.readCacheHitRate * 100).toFixed(1)}%`;
    if (r.heal) note = `${fmt(r.heal.bytesWritten / MB)} MB written with ${r.heal.node} down; ${r.heal.healed ? 'healed' : 'NOT healed'} in ${fmt(r.heal.healSeconds, 1)} s, ${fmt(r.heal.bytesRebuilt / MB)} MB rebuilt`;
    if (r.slowClients) note = slowClientsNote(r.slowClients);
    rows.push([
      `${r.group}. ${r.id}`,
      fmt(r.opsPerSec),
      fmt(r.mbPerSec, 1),
      fmt(r.latencyMs.p50, 2),
      fmt(r.latencyMs.p95, 2),
      fmt(r.latencyMs.p99, 2),
      fmt(r.errors),
      peakRss(r),
      note,
    ]);
  }
  return `${pad(rows)}\n`;
}

function slowClientsNote(c: Omit<SlowClientsResult, 'load'>): string {
  const mib = (bytes: number): string => `${fmt(bytes / 1024 ** 2)} MiB`;
  const parts = [`${c.stalledClients} clients stalled on ${mib(c.documentBytes)} reads: ${c.served} served, ${c.refused} refused (503)`];
  if (c.unanswered > 0) parts.push(`${c.unanswered} unanswered`);
  if (c.heldBytes !== null && c.budgetBytes !== null) parts.push(`gateway held ${mib(c.heldBytes)} of ${mib(c.budgetBytes)}`);
  if (c.releasedAfterSeconds !== null) parts.push(`released ${fmt(c.releasedAfterSeconds, 1)} s after the clients stopped reading`);
  return parts.join('; ');
}

export function barsTable(bars: BarResult[], aims: AimResult[]): string {
  const verdict = (v: boolean | null, yes: string, no: string): string => (v === null ? '-' : v ? yes : no);
  const barRows = [['bar (ratio in one run)', 'bar', 'measured', 'detail', 'result']];
  for (const b of bars) {
    const measured = b.measured === null ? '-' : b.figure.startsWith('cold bytes') ? fmt(b.measured) : fmt(b.measured, 2);
    barRows.push([b.figure, b.bar, measured, b.detail, verdict(b.pass, 'PASS', 'FAIL')]);
  }
  const aimRows = [['aim (absolute)', 'aim', 'measured', 'result']];
  for (const a of aims) aimRows.push([a.figure, a.aim, a.measured, verdict(a.met, 'met', 'not met')]);
  return `${pad(barRows)}\n\n${pad(aimRows)}\n`;
}
