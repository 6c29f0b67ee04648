import { monotonicFactory } from 'ulid';

const nextUlid = monotonicFactory();

/** A fresh, unique, time-ordered write id. Every write, patch and delete gets one at the gateway. */
export function newWriteId(nowMs: number = Date.now()): string {
  return nextUlid(nowMs);
}

/** Parts of one write: hot replicas are `hot-<i>`, erasure-coded shards `shard-<i>`. */
export type PartName = `hot-${number}` | `shard-${number}`;

/**
 * A blob id is the write id and the part. It is unique per write, never per version, so two concurrent writers
 * can never collide. The same id may live on a second node after a repair moves it; references are (node, id).
 */
export function blobIdOf(writeId: string, part: string): string {
  return `${writeId}.${part}`;
}

/** Blob ids are restricted to a small alphabet so a node can use them in file names without escaping. */
export const BLOB_ID_PATTERN = /^[0-9A-Za-z][0-9A-Za-z._-]{0,127}$/;

export function isValidBlobId(id: string): boolean {
  return BLOB_ID_PATTERN.test(id) && !id.includes('..');
}
