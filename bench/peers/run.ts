/**
 * The peers benchmark: build SeaweedFS and the load generator when the cache has none, then for each round start
 * each system alone (a fresh deployment), measure its four figures with the same load generator, and stop it
 * before the next one starts; medians over rounds, ratios and goals go into the JSON result.
 *
 * Whatever was started is stopped on every path: normal end, failure, and Ctrl-C (main.ts calls stopAll()).
 */
import type { ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ensureLoadgen } from '../../scripts/infra/go-loadgen.js';
import { ensureSeaweedfs, SEAWEEDFS_MODULE, SEAWEEDFS_RELEASE, SEAWEEDFS_VERSION } from '../../scripts/infra/seaweedfs.js';
import { machineInfo } from '../harness/machine.js';
import { LOADGEN_RUN_LIMITS, runLoadgen } from './loadgen-runner.js';
import { computeGoals, PEERS_RESULT_FORMAT_VERSION, summarize, type PeersResult, type PeersRun } from './result.js';
import { FIGURE_IDS, type FigureId, type PeersSettings, type SystemId } from './settings.js';
import { startSystem, systemSpec } from './systems.js';
import type { PeerTarget } from './target.js';

interface Figure {
  id: FigureId;
  op: 'write' | 'read';
  sizeBytes: number;
  clients: number;
}

function figures(s: PeersSettings): Figure[] {
  return FIGURE_IDS.map((id): Figure => {
    const large = id.endsWith('100k');
    return { id, op: id.startsWith('write') ? 'write' : 'read', sizeBytes: large ? s.largeBytes : s.smallBytes, clients: large ? s.largeClients : s.smallClients };
  });
}

/** What is running now, so that an interrupt can stop it. */
export class Running {
  private readonly targets = new Set<PeerTarget>();
  private loadgen: ChildProcess | null = null;

  addTarget(t: PeerTarget): void {
    this.targets.add(t);
  }

  removeTarget(t: PeerTarget): void {
    this.targets.delete(t);
  }

  setLoadgen(child: ChildProcess | null): void {
    this.loadgen = child;
  }

  async stopAll(): Promise<void> {
    this.loadgen?.kill('SIGKILL');
    await Promise.allSettled([...this.targets].map((t) => t.stop()));
    this.targets.clear();
  }
}

export interface PeersIo {
  log(line: string): void;
  running: Running;
}

function fmt(n: number | null, digits: number): string {
  return n === null ? '-' : n.toFixed(digits);
}

export async function runPeers(s: PeersSettings, io: PeersIo, command: string): Promise<{ result: PeersResult; file: string }> {
  const startedAt = new Date();
  const machine = await machineInfo();
  const needsWeed = s.systems.some((id) => id.startsWith('seaweedfs-'));
  const [weed, loadgen] = await Promise.all([needsWeed ? ensureSeaweedfs({ log: io.log }) : Promise.resolve(''), ensureLoadgen({ log: io.log })]);
  const runs: PeersRun[] = [];
  const plan = figures(s);
  const runId = startedAt.toISOString().replace(/[-:.]/g, '').slice(0, 15);

  for (let round = 1; round <= s.rounds; round++) {
    const order: SystemId[] = round % 2 === 1 ? [...s.systems] : [...s.systems].reverse();
    for (const id of order) {
      const spec = systemSpec(id, s.seaweedfsContentType);
      io.log(`round ${round}/${s.rounds}: starting ${spec.label}`);
      const target = await startSystem(id, s, weed, io.log);
      io.running.addTarget(target);
      try {
        for (const f of plan) {
          const startedAtRun = new Date().toISOString();
          const m = await runLoadgen({
            binary: loadgen,
            args: [
              ...spec.loadgenArgs,
              '-url', target.url,
              '-op', f.op,
              '-size', String(f.sizeBytes),
              '-clients', String(f.clients),
              '-duration', `${s.durationMs}ms`,
              '-warmup', `${s.warmupMs}ms`,
              '-keys', String(s.keys),
              '-prefix', `peers-${runId}-${round}-${f.id}-`,
              '-seed', String(s.seed),
            ],
            target,
            onChild: (child) => io.running.setLoadgen(child),
            timeoutMs: s.warmupMs + s.durationMs + LOADGEN_RUN_LIMITS.overheadMsMax,
          });
          runs.push({ ...m, round, system: id, figure: f.id, startedAt: startedAtRun });
          const errors = m.errors > 0 ? `, ${m.errors} errors (${m.errorSamples.join('; ')})` : '';
          io.log(
            `round ${round} ${id} ${f.id}: ${m.opsPerSec.toFixed(0)} ops/s, ${m.mbPerSec.toFixed(1)} MB/s, ` +
              `p50 ${m.latencyMs.p50.toFixed(2)} ms, p99 ${m.latencyMs.p99.toFixed(2)} ms, max ${m.latencyMs.max.toFixed(0)} ms; ` +
              `server CPU ${fmt(m.serverCpuMsPerOp, 3)} ms/op; load generator ${(m.loadgenCpuSeconds / m.seconds).toFixed(2)} cores; ` +
              `load average ${fmt(m.loadAverage1m.start, 2)} -> ${fmt(m.loadAverage1m.end, 2)}${errors}`,
          );
        }
      } finally {
        io.running.removeTarget(target);
        await target.stop();
      }
    }
  }

  const summary = summarize(runs, s.systems, FIGURE_IDS);
  const result: PeersResult = {
    format: PEERS_RESULT_FORMAT_VERSION,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command,
    machine,
    settings: s,
    loadGenerator: { tool: 'bench/peers/loadgen (Go, net/http)', binary: loadgen },
    seaweedfs: { module: SEAWEEDFS_MODULE, version: SEAWEEDFS_VERSION, release: SEAWEEDFS_RELEASE, binary: weed },
    systems: s.systems.map((id) => {
      const { label, description } = systemSpec(id, s.seaweedfsContentType);
      return { id, label, description };
    }),
    runs,
    summary,
    goals: computeGoals(summary),
  };
  const file = path.resolve(s.out ?? path.join('bench-results', `peers-${runId}.json`));
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  return { result, file };
}
