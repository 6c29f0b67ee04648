/**
 * The write/delete workload the crash tests run against a VolumeBlobStore, and the check that follows a crash.
 *
 * Every blob's payload is derived from its id, so after a crash any blob the store still lists can be checked
 * byte for byte, whether or not its put was acknowledged. The ledger records only acknowledgements: a put or
 * delete counts once the store's promise resolved (after its fsync), never before.
 */
import { createHash } from 'node:crypto';
import type { BlobHeader } from '../../../internal/blobstore/blob-store.js';
import type { VolumeBlobStore } from '../../../internal/blobstore/volume/volume-blob-store.js';
import { isStrataError } from '../../../internal/core/errors.js';

export function blobIdFor(prefix: string, n: number): string {
  return `${prefix}${String(n).padStart(7, '0')}.shard-${n % 6}`;
}

export function headerFor(id: string): BlobHeader {
  const dot = id.indexOf('.');
  return { id, key: `doc/${id.slice(0, dot)}`, writeId: id.slice(0, dot), part: id.slice(dot + 1), meta: '{"k":4,"m":2}' };
}

/**
 * For workloads that mix formats: odd-numbered ids get a format-2 header (the key in a whole descriptor), even ones
 * format 1, so that volumes hold both needle versions (and, with ULID prefixes, derived and text ids).
 */
export function mixedHeaderFor(id: string): BlobHeader {
  const v1 = headerFor(id);
  const digits = id.slice(0, id.indexOf('.')).slice(-7);
  if (Number(digits) % 2 === 0) return v1;
  return { id, key: '', writeId: v1.writeId, part: v1.part, meta: '', format: 2, descriptor: { kind: 'whole', bytes: Buffer.from(v1.key) } };
}

/** A 19-character prefix that makes blobIdFor's ids canonical ULIDs (derived ids in needle format 2). */
export function ulidPrefix(seed: number, round: number): string {
  return `0${String(seed).padStart(9, '0')}R${String(round).padStart(2, '0')}X`.padEnd(19, '0');
}

/** Payload bytes derived from the id: mostly small, now and then large enough to span several volume windows. */
export function payloadFor(id: string): Buffer {
  const digest = createHash('sha256').update(id).digest();
  const pick = digest.readUInt32BE(0);
  const size = pick % 16 === 0 ? 20_000 + (pick % 20_000) : pick % 3000;
  const out = Buffer.alloc(size);
  for (let at = 0; at < size; at += digest.length) digest.copy(out, at, 0, Math.min(digest.length, size - at));
  for (let i = 0; i < size; i += 97) out[i] = (i * 31 + pick) & 0xff;
  return out;
}

export interface Ledger {
  /** Puts acknowledged. */
  put: Set<string>;
  /** Deletes acknowledged (returned true). */
  deleted: Set<string>;
  /** Deletes issued: a crash may leave one of these done or not done. */
  deleting: Set<string>;
}

export function newLedger(): Ledger {
  return { put: new Set(), deleted: new Set(), deleting: new Set() };
}

export interface WorkloadOptions {
  random: () => number;
  prefix: string;
  workers: number;
  /** Stop after this many operations in total (or when the store fails). */
  opsMax: number;
  deleteShare: number;
  /** Told before a delete is issued ('deleting'), before a compaction, and after each acknowledgement. */
  onAck?: (kind: 'put' | 'deleting' | 'delete' | 'compacting', id: string) => void;
  /** Called every `compactEvery` operations of worker 0. */
  compactEvery?: number;
  /** The header of each put (default headerFor); checkAfterCrash must be given the same. */
  headerOf?: (id: string) => BlobHeader;
}

/** Runs puts of fresh ids and deletes of acknowledged ones until `opsMax` or the first error (a crash). */
export async function runWorkload(store: VolumeBlobStore, ledger: Ledger, options: WorkloadOptions): Promise<void> {
  let issued = 0;
  let failed = false;
  let next = 0;
  const live: string[] = [...ledger.put].filter((id) => !ledger.deleted.has(id));
  const worker = async (w: number): Promise<void> => {
    let mine = 0;
    while (!failed && issued < options.opsMax) {
      issued += 1;
      mine += 1;
      try {
        if (w === 0 && options.compactEvery !== undefined && mine % options.compactEvery === 0) {
          options.onAck?.('compacting', '');
          await store.compact({ sealActive: true });
        } else if (live.length > 0 && options.random() < options.deleteShare) {
          const index = Math.floor(options.random() * live.length);
          const id = live[index] as string;
          live.splice(index, 1);
          ledger.deleting.add(id);
          options.onAck?.('deleting', id);
          if (await store.delete(id)) {
            ledger.deleted.add(id);
            options.onAck?.('delete', id);
          }
        } else {
          const id = blobIdFor(options.prefix, next++);
          await store.put((options.headerOf ?? headerFor)(id), payloadFor(id));
          ledger.put.add(id);
          live.push(id);
          options.onAck?.('put', id);
        }
      } catch (err) {
        failed = true;
        if (!isCrash(err)) throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: options.workers }, (_, w) => worker(w)));
}

/** An error the crash (power loss or a closed store) explains; anything else is a bug the test must report. */
function isCrash(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'EIO' || code === 'EBADF' || isStrataError(err, 'NODE_UNAVAILABLE');
}

export interface CrashCheck {
  listed: number;
  ackedPutsChecked: number;
  deletesChecked: number;
}

/**
 * After a crash: every acknowledged put that was not deleted is there with its bytes; no acknowledged delete is
 * undone; and every blob the store lists (acknowledged or not) reads back whole and correct, so no torn needle is
 * ever served.
 */
export async function checkAfterCrash(
  store: VolumeBlobStore,
  ledger: Ledger,
  headerOf: (id: string) => BlobHeader = headerFor,
): Promise<CrashCheck> {
  const problems: string[] = [];
  const listed: string[] = [];
  for (let after: string | null = null; ; ) {
    const page = await store.list(after, 1000);
    if (page.length === 0) break;
    for (const info of page) {
      listed.push(info.id);
      if (info.corrupt === true) problems.push(`${info.id} is listed corrupt`);
    }
    after = (page[page.length - 1] as { id: string }).id;
  }
  for (const id of listed) {
    try {
      const { data, info } = await store.get(id);
      if (!data.equals(payloadFor(id))) problems.push(`${id} reads back different bytes`);
      const header = headerOf(id);
      if (info.key !== header.key || info.part !== header.part || info.format !== header.format) {
        problems.push(`${id} has a different header`);
      }
      const descriptor = header.descriptor === undefined ? undefined : Buffer.from(header.descriptor.bytes).toString('hex');
      const stored = info.descriptor === undefined ? undefined : Buffer.from(info.descriptor.bytes).toString('hex');
      if (descriptor !== stored) problems.push(`${id} has a different descriptor`);
    } catch (err) {
      problems.push(`${id} is listed but get fails: ${String(err)}`);
    }
  }
  const present = new Set(listed);
  let ackedPutsChecked = 0;
  for (const id of ledger.put) {
    if (ledger.deleted.has(id) || ledger.deleting.has(id)) continue;
    ackedPutsChecked += 1;
    if (!present.has(id)) problems.push(`acknowledged put ${id} is missing`);
  }
  for (const id of ledger.deleted) {
    if (present.has(id) || (await store.stat(id)) !== null) problems.push(`acknowledged delete ${id} came back`);
  }
  if (problems.length > 0) throw new Error(`after the crash:\n${problems.slice(0, 20).join('\n')}`);
  return { listed: listed.length, ackedPutsChecked, deletesChecked: ledger.deleted.size };
}
