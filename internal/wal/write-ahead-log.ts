/**
 * The write-ahead log of write intents and outcomes (architecture.md, "Write" steps 4 and 8).
 * Implementations: embedded (SQLite, this folder) and Kafka/Redpanda (the cluster mode).
 *
 * Records are keyed by object key (Kafka partitions by it). `append` resolves only once the record is durable;
 * implementations group concurrent appends into one durable write. An unreachable log throws
 * StrataError('WAL_UNAVAILABLE').
 */
export interface WriteAheadLog {
  append(record: WalRecord): Promise<void>;
  /**
   * A consumer for `group` that starts after the group's committed position. Only the leading healer uses one, and
   * commits no further than its oldest unresolved intent (./README.md, "Who reads, who commits").
   */
  consumer(group: string): Promise<WalConsumer>;
  close(): Promise<void>;
}

export interface WalConsumer {
  /** Up to `max` entries after the last one returned; waits up to `waitMs` when there are none. */
  poll(max: number, waitMs: number): Promise<WalEntry[]>;
  /**
   * Marks every entry up to and including `position` (within its partition) as processed, durably. After a
   * restart, a consumer of the same group starts after the committed position.
   */
  commit(position: WalPosition): Promise<void>;
  close(): Promise<void>;
}

export interface WalPosition {
  partition: number;
  offset: number;
}

/**
 * One entry read from the log. Every entry is sealed in the record envelope when appended
 * (internal/metadata/record-envelope.ts, ./README.md "Record envelope") and verified when read: an entry that
 * fails verification is delivered with `record: null` and why, never as a record, so that nothing acts on it
 * (the intent resolver reports it and leaves its blobs to garbage collection, which deletes only on a manifest
 * store that vouches for the absence).
 */
export type WalEntry = VerifiedWalEntry | CorruptWalEntry;

export interface VerifiedWalEntry {
  position: WalPosition;
  record: WalRecord;
}

export interface CorruptWalEntry {
  position: WalPosition;
  record: null;
  /** Why it failed verification, and the start of what is stored, for the operator. */
  corrupt: { why: string; storedKey: string | null; excerpt: string };
}

/** A blob a write creates or reuses. */
export interface WalBlob {
  part: string;
  node: string;
  blob: string;
}

export type WalRecord =
  | {
      type: 'intent';
      key: string;
      writeId: string;
      /** What the write is: a write or patch stores a document, a delete stores a tombstone. */
      op: 'write' | 'delete';
      creates: WalBlob[];
      reuses: WalBlob[];
      atMs: number;
    }
  | {
      type: 'outcome';
      key: string;
      writeId: string;
      outcome: 'committed' | 'failed';
      atMs: number;
    };
