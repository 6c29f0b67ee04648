/**
 * One figure: the Go load generator (bench/peers/loadgen/) run against a started system, with the servers' CPU
 * sampled from /proc when the load generator says `measuring` (after its preload and warm-up) and again when it
 * has printed its result, and the load average at both moments.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { OutputTail } from '../../scripts/infra/process-utils.js';
import { cpuSecondsBetween, cpuSecondsByPid, loadAverage1m } from './proc-stat.js';
import type { PeerTarget } from './target.js';

/** The load generator's JSON line (main.go's `result`). */
export interface LoadgenResult {
  api: string;
  op: 'write' | 'read';
  sizeBytes: number;
  clients: number;
  ops: number;
  errors: number;
  errorSamples: string[];
  seconds: number;
  opsPerSec: number;
  mbPerSec: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number };
  loadgenCpuSeconds: number;
}

export interface Measurement extends LoadgenResult {
  /** CPU the servers' processes used while measured; null off Linux. */
  serverCpuSeconds: number | null;
  serverCpuMsPerOp: number | null;
  /** /proc/loadavg's 1-minute figure when the measurement started and when it ended. */
  loadAverage1m: { start: number | null; end: number | null };
}

export const LOADGEN_RUN_LIMITS = {
  /** Beyond warm-up and duration: preload of the read keys and the last requests in flight. */
  overheadMsMax: 15 * 60_000,
  outputTailBytes: 8_192,
} as const;

export interface LoadgenRun {
  binary: string;
  args: string[];
  target: PeerTarget;
  /** For the kill-everything path (Ctrl-C): the running load generator. */
  onChild?: (child: ChildProcess | null) => void;
  timeoutMs: number;
}

export async function runLoadgen(run: LoadgenRun): Promise<Measurement> {
  const pids = (): number[] => run.target.processes().map((p) => p.pid);
  const child = spawn(run.binary, run.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  run.onChild?.(child);
  const stdout = new OutputTail(LOADGEN_RUN_LIMITS.outputTailBytes);
  const stderr = new OutputTail(LOADGEN_RUN_LIMITS.outputTailBytes);
  // Set by the stderr handler (a closure, hence the holder: TypeScript would not see the assignment).
  const sampled: { before: Promise<{ cpu: Map<number, number> | null; load: number | null }> | null } = { before: null };
  let stderrLine = '';
  child.stdout.on('data', (c: Buffer) => stdout.push(c));
  child.stderr.on('data', (c: Buffer) => {
    stderr.push(c);
    stderrLine += c.toString('utf8');
    let newline: number;
    while ((newline = stderrLine.indexOf('\n')) >= 0) {
      const line = stderrLine.slice(0, newline).trim();
      stderrLine = stderrLine.slice(newline + 1);
      if (line === 'measuring' && sampled.before === null) sampled.before = (async () => ({ cpu: await cpuSecondsByPid(pids()), load: await loadAverage1m() }))();
    }
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), run.timeoutMs);
    child.once('error', (err) => (clearTimeout(timer), reject(new Error(`could not run the load generator ${run.binary}: ${err.message}`))));
    // 'close', not 'exit': the result line must have been read from the pipe.
    child.once('close', (c, signal) => (clearTimeout(timer), resolve(signal ? null : c)));
  }).finally(() => run.onChild?.(null));
  const afterCpu = await cpuSecondsByPid(pids());
  const afterLoad = await loadAverage1m();
  const shown = `${run.binary} ${run.args.join(' ')}`;
  if (code !== 0) throw new Error(`the load generator failed (${code === null ? 'killed' : `exit ${code}`}): ${shown}\n${stderr.text()}`);
  const lines = stdout.text().trim().split('\n');
  let result: LoadgenResult;
  try {
    result = JSON.parse(lines[lines.length - 1]!) as LoadgenResult;
  } catch {
    throw new Error(`the load generator printed no JSON result: ${shown}\n${stdout.text()}\n${stderr.text()}`);
  }
  const start = sampled.before === null ? null : await sampled.before;
  const serverCpuSeconds = start?.cpu && afterCpu ? cpuSecondsBetween(start.cpu, afterCpu) : null;
  return {
    ...result,
    serverCpuSeconds,
    serverCpuMsPerOp: serverCpuSeconds !== null && result.ops > 0 ? (serverCpuSeconds * 1000) / result.ops : null,
    loadAverage1m: { start: start?.load ?? null, end: afterLoad },
  };
}
