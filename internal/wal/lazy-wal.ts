/**
 * A WriteAheadLog whose real log is opened on first use and again after a failed open, so that a process can
 * start while its log is unreachable: until the log answers, every call fails with WAL_UNAVAILABLE (a 503 with
 * Retry-After at the gateway) and the process recovers without a restart once it does.
 */
import type { Clock } from '../core/clock.js';
import { StrataError } from '../core/errors.js';
import type { WalConsumer, WalRecord, WriteAheadLog } from './write-ahead-log.js';

export class LazyWriteAheadLog implements WriteAheadLog {
  private inner: WriteAheadLog | null = null;
  private opening: Promise<WriteAheadLog> | null = null;
  private lastFailureMs = Number.NEGATIVE_INFINITY;
  private lastError = '';
  private closed = false;

  constructor(
    private readonly open: () => Promise<WriteAheadLog>,
    private readonly clock: Clock,
    /** After a failed open, calls fail fast for this long before the next attempt. */
    private readonly retryAfterMs: number,
    private readonly describe: string,
  ) {}

  /** Opens now; resolves false (never throws) when the log cannot be reached yet. */
  async tryOpen(): Promise<boolean> {
    try {
      await this.ready();
      return true;
    } catch {
      return false;
    }
  }

  get lastOpenError(): string {
    return this.lastError;
  }

  async append(record: WalRecord): Promise<void> {
    return (await this.ready()).append(record);
  }

  async consumer(group: string): Promise<WalConsumer> {
    return (await this.ready()).consumer(group);
  }

  async close(): Promise<void> {
    this.closed = true;
    const inner = this.inner ?? (await this.opening?.catch(() => null)) ?? null;
    await inner?.close();
  }

  private async ready(): Promise<WriteAheadLog> {
    if (this.inner) return this.inner;
    if (this.closed) throw new StrataError('WAL_UNAVAILABLE', `the write-ahead log (${this.describe}) is closed`);
    if (!this.opening) {
      if (this.clock.nowMs() - this.lastFailureMs < this.retryAfterMs) throw this.unavailable();
      this.opening = this.open().then(
        (wal) => {
          this.inner = wal;
          this.opening = null;
          return wal;
        },
        (error: unknown) => {
          this.opening = null;
          this.lastFailureMs = this.clock.nowMs();
          this.lastError = error instanceof Error ? error.message : String(error);
          throw this.unavailable();
        },
      );
    }
    return this.opening;
  }

  private unavailable(): StrataError {
    return new StrataError('WAL_UNAVAILABLE', `the write-ahead log (${this.describe}) cannot be reached: ${this.lastError || 'not open yet'}`);
  }
}
