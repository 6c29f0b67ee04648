/**
 * Peak resident memory of each process while a scenario runs, sampled from /proc/<pid>/status (VmRSS) at a fixed
 * period. A process that exits mid-scenario keeps the peak it had. Linux only; elsewhere the peaks stay empty.
 */
import { readFile } from 'node:fs/promises';
import type { BenchProcess } from './target.js';

export const RSS_SAMPLE_INTERVAL_MS = 250;

export async function rssBytes(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return match ? Number(match[1]) * 1024 : null;
  } catch {
    return null; // exited, or not Linux
  }
}

export class RssSampler {
  private readonly peaks = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private sampling: Promise<void> = Promise.resolve();

  constructor(private readonly processes: () => BenchProcess[]) {}

  start(): void {
    const tick = (): void => {
      this.sampling = this.sample();
      this.timer = setTimeout(tick, RSS_SAMPLE_INTERVAL_MS);
    };
    tick();
  }

  private async sample(): Promise<void> {
    await Promise.all(
      this.processes().map(async ({ name, pid }) => {
        const bytes = await rssBytes(pid);
        if (bytes !== null && bytes > (this.peaks.get(name) ?? 0)) this.peaks.set(name, bytes);
      }),
    );
  }

  /** Stops sampling (after one last sample) and returns the peak per process name. */
  async stop(): Promise<Record<string, number>> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.sampling;
    await this.sample();
    return Object.fromEntries(this.peaks);
  }
}
