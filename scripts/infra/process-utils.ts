/** Small helpers the test-infrastructure modules share: free ports, sleeping, keeping the tail of a process's output. */
import { createServer } from 'node:net';

/** A port the kernel just handed out on loopback. Another process could take it before the server binds it, rarely. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('could not get a free port'))));
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The last `bytesMax` bytes of a process's output, for error messages. */
export class OutputTail {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly bytesMax: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.bytes > this.bytesMax && this.chunks.length > 1) {
      this.bytes -= this.chunks.shift()?.length ?? 0;
    }
  }

  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.bytesMax)).toString('utf8');
  }
}

/**
 * SIGSTOP is delivered asynchronously: a process keeps running for a moment after kill() returns. Waits until the
 * kernel reports it stopped (Linux /proc), so that a test's next request really meets a hung server.
 */
export async function untilStopped(pid: number, timeoutMs = 2_000): Promise<void> {
  const { readFile } = await import('node:fs/promises');
  const deadlineMs = Date.now() + timeoutMs;
  for (;;) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The state is the field after the parenthesised command name.
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return;
    if (Date.now() > deadlineMs) throw new Error(`process ${pid} did not stop: ${stat}`);
    await sleep(5);
  }
}

/** Children to signal when this process exits, so that a crashed test run leaves no server behind. */
const onExit = new Map<import('node:child_process').ChildProcess, NodeJS.Signals>();
let exitHookInstalled = false;

/**
 * Signals `child` with `signal` if this process exits while the child still runs; forgets it once it exits.
 * (nginx wants SIGTERM: a SIGKILLed master would leave its workers running and holding the port.)
 */
export function stopOnExit(child: import('node:child_process').ChildProcess, signal: NodeJS.Signals): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const [c, s] of onExit) c.kill(s);
    });
  }
  onExit.set(child, signal);
  const forget = (): void => void onExit.delete(child);
  child.once('exit', forget);
  child.once('error', forget);
}
