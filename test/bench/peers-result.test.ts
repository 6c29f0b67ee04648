/**
 * The peers benchmark's arithmetic and options, without starting anything: medians over rounds, the goals as
 * ratios of the same run, the printed table, and the refusal of bad options.
 */
import { describe, expect, it } from 'vitest';
import type { Measurement } from '../../bench/peers/loadgen-runner.js';
import { computeGoals, median, peersTables, summarize, type PeersRun } from '../../bench/peers/result.js';
import { FIGURE_IDS, parsePeersArgs, PeersUsageError, SYSTEM_IDS, type FigureId, type SystemId } from '../../bench/peers/settings.js';
import { systemSpec } from '../../bench/peers/systems.js';

function fakeRun(system: SystemId, figure: FigureId, round: number, opsPerSec: number, p99: number): PeersRun {
  const m: Measurement = {
    api: system.startsWith('strata') ? 'strata' : 'seaweedfs',
    op: figure.startsWith('write') ? 'write' : 'read',
    sizeBytes: figure.endsWith('100k') ? 102_400 : 1024,
    clients: 16,
    ops: opsPerSec * 10,
    errors: 0,
    errorSamples: [],
    seconds: 10,
    opsPerSec,
    mbPerSec: (opsPerSec * (figure.endsWith('100k') ? 102_400 : 1024)) / 1e6,
    latencyMs: { p50: p99 / 2, p90: p99 * 0.8, p99, p999: p99, max: p99 * 2 },
    loadgenCpuSeconds: 1,
    serverCpuSeconds: 5,
    serverCpuMsPerOp: 5000 / (opsPerSec * 10),
    loadAverage1m: { start: 2, end: 2 + round },
  };
  return { ...m, round, system, figure, startedAt: new Date(0).toISOString() };
}

describe('peers result', () => {
  it('takes the median of an odd and of an even number of rounds', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
  });

  it('summarizes each system and figure by medians over rounds, and computes the goals as ratios of them', () => {
    const runs: PeersRun[] = [];
    for (const round of [1, 2, 3]) {
      for (const figure of FIGURE_IDS) {
        runs.push(fakeRun('strata-field_hybrid', figure, round, 1000 * round, 10 * round));
        runs.push(fakeRun('seaweedfs-one-copy', figure, round, 2000 * round, 5 * round));
        runs.push(fakeRun('seaweedfs-three-copies', figure, round, 500 * round, 20 * round));
      }
    }
    const systems: SystemId[] = ['strata-field_hybrid', 'seaweedfs-one-copy', 'seaweedfs-three-copies'];
    const summary = summarize(runs, systems, FIGURE_IDS);
    expect(summary).toHaveLength(systems.length * FIGURE_IDS.length);
    const hybridWrites = summary.find((s) => s.system === 'strata-field_hybrid' && s.figure === 'write-1k')!;
    expect(hybridWrites).toMatchObject({ rounds: 3, opsPerSec: 2000, errors: 0, loadAverage1m: { min: 3, max: 5 } });
    expect(hybridWrites.latencyMs.p99).toBe(20);

    const goals = computeGoals(summary);
    expect(goals.map((g) => [g.measured, g.met])).toEqual([
      [0.5, false], // writes/s vs one copy
      [2, false], // write p99 vs one copy
      [0.5, false], // reads/s vs one copy
      [2, false], // read p99 vs one copy
      [2, true], // 100 KiB write MB/s vs three copies
      [0.5, false], // 100 KiB read MB/s vs one copy, bar 0.8
    ]);

    const table = peersTables({ summary, goals, settings: parsePeersArgs([]), systems: systems.map((id) => systemSpec(id)) });
    for (const id of systems) expect(table).toContain(systemSpec(id).label);
    expect(table).toContain('strata-field_hybrid / seaweedfs-one-copy');
    expect(table).toContain('2,000'); // the hybrid's median writes/s
  });

  it('leaves a goal unmeasured when a system it needs was left out', () => {
    const summary = summarize([fakeRun('strata-field_hybrid', 'write-1k', 1, 100, 1)], ['strata-field_hybrid'], FIGURE_IDS);
    expect(computeGoals(summary).every((g) => g.measured === null && g.met === null)).toBe(true);
  });
});

describe('peers options', () => {
  it('defaults to two rounds of 20 s per figure, 16 and 8 clients, every system', () => {
    expect(parsePeersArgs([])).toMatchObject({
      rounds: 2, durationMs: 20_000, smallClients: 16, largeClients: 8, systems: [...SYSTEM_IDS], readCacheBytes: null,
      seaweedfsContentType: 'application/octet-stream',
    });
  });

  it('keeps the systems in round order whatever order --only names them in', () => {
    expect(parsePeersArgs(['--only', 'seaweedfs-one-copy,strata-field_hybrid']).systems).toEqual(['strata-field_hybrid', 'seaweedfs-one-copy']);
  });

  it.each([
    [['--rounds', '0'], /--rounds must be a number in 1\.\.100/],
    [['--rounds', '1.5'], /--rounds must be a whole number/],
    [['--duration', 'x'], /--duration must be a number/],
    [['--only', 'minio'], /--only takes strata-field_hybrid/],
    [['--bogus'], /Unknown option/],
    [['--seaweedfs-content-type', 'json'], /must be a media type/],
  ])('refuses %j', (argv, message) => {
    expect(() => parsePeersArgs(argv)).toThrow(PeersUsageError);
    expect(() => parsePeersArgs(argv)).toThrow(message);
  });
});
