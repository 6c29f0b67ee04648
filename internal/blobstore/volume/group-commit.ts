/**
 * Group commit: appends from concurrent callers are gathered into batches, and each batch is written and made
 * durable by one flush (one write, one fsync) before any of its callers is answered. A flush may make a prefix of
 * its batch durable and fail the rest (a volume filled up between two writes); nothing is acknowledged that a
 * completed fsync did not cover.
 *
 * There is no timer: while one batch is being flushed the next one fills up, so batches grow exactly as large as
 * the load needs, and a lone append waits for one fsync, not for a timeout. One flush runs at a time, which also
 * makes the flush function the volume's only writer.
 */
import { assert } from '../../core/assert.js';

/** Appends gathered into one batch, at most. Bounds the work one fsync covers and the memory one batch pins. */
export const COMMIT_BATCH_ENTRIES_MAX = 4096;
/** Bytes gathered into one batch, at most (a single larger append still forms a batch of its own). */
export const COMMIT_BATCH_BYTES_MAX = 16 * 1024 * 1024;

/** The first `done` items of the batch are durable; the others failed with `error`. */
export interface FlushOutcome {
  done: number;
  error?: unknown;
}

export interface GroupCommitOptions<T> {
  /** Writes and fsyncs the batch, in order. Called for one batch at a time. */
  flush: (batch: T[]) => Promise<FlushOutcome>;
  bytesOf: (item: T) => number;
  batchEntriesMax?: number;
  batchBytesMax?: number;
}

interface Pending<T> {
  item: T;
  bytes: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class GroupCommit<T> {
  private readonly queue: Array<Pending<T>> = [];
  private head = 0;
  private flushing: Promise<void> | null = null;
  private readonly batchEntriesMax: number;
  private readonly batchBytesMax: number;
  /** Batches flushed and items they carried: the benchmark reports appends per fsync. */
  batches = 0;
  items = 0;

  constructor(private readonly options: GroupCommitOptions<T>) {
    this.batchEntriesMax = options.batchEntriesMax ?? COMMIT_BATCH_ENTRIES_MAX;
    this.batchBytesMax = options.batchBytesMax ?? COMMIT_BATCH_BYTES_MAX;
    assert(Number.isInteger(this.batchEntriesMax) && this.batchEntriesMax >= 1, 'batchEntriesMax >= 1');
    assert(this.batchBytesMax >= 1, 'batchBytesMax >= 1');
  }

  /** Resolves once `item` is durable; rejects with the flush's error otherwise. */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, bytes: this.options.bytesOf(item), resolve, reject });
      this.flushing ??= this.drain();
    });
  }

  /** Resolves once every append submitted so far has been flushed (or has failed). */
  async idle(): Promise<void> {
    while (this.flushing !== null) await this.flushing;
  }

  private async drain(): Promise<void> {
    // Let the callers of this tick join the first batch too.
    await Promise.resolve();
    try {
      while (this.head < this.queue.length) {
        const batch = this.takeBatch();
        let outcome: FlushOutcome;
        try {
          outcome = await this.options.flush(batch.map((p) => p.item));
        } catch (err) {
          outcome = { done: 0, error: err };
        }
        assert(outcome.done >= 0 && outcome.done <= batch.length, 'a flush reports a prefix of its batch');
        this.batches += 1;
        this.items += outcome.done;
        batch.forEach((p, i) => (i < outcome.done ? p.resolve() : p.reject(outcome.error)));
      }
    } finally {
      this.queue.length = 0;
      this.head = 0;
      this.flushing = null;
    }
  }

  private takeBatch(): Array<Pending<T>> {
    const batch: Array<Pending<T>> = [];
    let bytes = 0;
    while (this.head < this.queue.length && batch.length < this.batchEntriesMax) {
      const next = this.queue[this.head] as Pending<T>;
      if (batch.length > 0 && bytes + next.bytes > this.batchBytesMax) break;
      batch.push(next);
      bytes += next.bytes;
      this.head += 1;
    }
    // Drop the taken prefix now and then, so that a queue that never empties does not grow forever.
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return batch;
  }
}
