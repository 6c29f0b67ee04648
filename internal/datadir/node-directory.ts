/**
 * Whether a storage node may open the directory where its data should be (run after its DirLock is taken and
 * before its blob store opens, so a refused directory is never read further, repaired or deleted from).
 *
 * | what the directory holds | outcome |
 * |---|---|
 * | this node's identity (same node id; same cluster id, or either has none) | `verified` |
 * | this node's identity without a cluster id, and the node now knows its cluster | the id written in: `adopted` |
 * | another node's or another cluster's identity | refused: foreign |
 * | an identity of a newer format version, or one that cannot be read | refused, untouched |
 * | no identity, but data (a directory written by the release before identity files) | identity written: `adopted` |
 * | nothing (missing or empty), the node never held data here, or the operator accepted it | identity written: `initialised` |
 * | nothing, and the cluster knows the node held data | refused: emptied (a wiped or replaced disk) |
 */
import { readdir, stat } from 'node:fs/promises';
import { StrataError } from '../core/errors.js';
import { LOCK_FILE_NAME } from './dir-lock.js';
import {
  IDENTITY_FORMAT_VERSION,
  NODE_IDENTITY_FILE,
  NODE_IDENTITY_FORMAT_COMPACT,
  nodeIdentity,
  readNodeIdentity,
  writeNodeIdentity,
  type IdentityRead,
  type NodeIdentity,
} from './identity.js';

/** The operator's command that accepts an emptied node directory (scripts/accept-empty-node.ts). */
export const ACCEPT_EMPTY_NODE_COMMAND = 'npm run node:accept-empty -- --data-dir <data dir> <node id>';

/** Entries that do not make a directory hold data: our own lock and identity files, and a fresh file system's. */
const NOT_DATA = new Set([LOCK_FILE_NAME, `${LOCK_FILE_NAME}-journal`, NODE_IDENTITY_FILE, `${NODE_IDENTITY_FILE}.tmp`, 'lost+found']);

export interface NodeDirectoryExpectation {
  nodeId: string;
  /** What the refusal of an emptied directory tells the operator to do (default: the all-in-one's command). */
  acceptAdvice?: string;
  /** The cluster the node belongs to (the all-in-one's); null when the process does not know one. */
  clusterId: string | null;
  /** The cluster recorded this node's directory as initialised: an empty one was wiped or replaced. */
  heldData: boolean;
  /** Take an empty directory as a new empty node even when `heldData` (an explicit start or operator action). */
  acceptEmpty: boolean;
  nowMs: number;
}

export type NodeDirectoryOutcome = 'verified' | 'adopted' | 'initialised';

/** Throws DATA_DIR_UNUSABLE with the reason when the node must not open `dir`. */
export async function admitNodeDirectory(dir: string, expected: NodeDirectoryExpectation): Promise<NodeDirectoryOutcome> {
  const refuse = (reason: string): never => {
    throw new StrataError('DATA_DIR_UNUSABLE', `${dir}: ${reason}; nothing in it was changed`, { dir, nodeId: expected.nodeId });
  };
  const read = await readNodeIdentity(dir);
  const refusal = identityRefusal(read, expected.nodeId, expected.clusterId);
  if (refusal !== null) refuse(refusal);
  if (read.kind === 'ok') {
    if (read.identity.clusterId === null && expected.clusterId !== null) {
      // First opened by a node process that knew no cluster id: from now on the directory names its cluster, so
      // that it is recognised as foreign wherever else it is mounted.
      await writeNodeIdentity(dir, { ...read.identity, clusterId: expected.clusterId });
      return 'adopted';
    }
    return 'verified';
  }
  const data = await dataEntries(dir);
  if (data === null) refuse('is not a directory');
  if (data!.length > 0) {
    // Written by the release before identity files: the data is this node's, as it always was.
    await writeNodeIdentity(dir, nodeIdentity(expected.nodeId, expected.clusterId, expected.nowMs));
    return 'adopted';
  }
  if (expected.heldData && !expected.acceptEmpty) {
    refuse(
      `is empty but ${expected.nodeId} held data: ${expected.acceptAdvice ?? allInOneAcceptAdvice(expected.nodeId)}`,
    );
  }
  await writeNodeIdentity(dir, nodeIdentity(expected.nodeId, expected.clusterId, expected.nowMs));
  return 'initialised';
}

/**
 * Marks the node's directory as one that may hold format-3 volumes (NODE_IDENTITY_FORMAT_COMPACT), before the
 * volume store creates its first: the release before them then refuses the directory instead of misreading it. A
 * directory without an identity file (a node started without identity checks) gets one.
 */
export async function raiseNodeIdentityFormat(dir: string, nodeId: string, nowMs: number): Promise<void> {
  const read = await readNodeIdentity(dir);
  if (read.kind === 'unreadable') {
    throw new StrataError('DATA_DIR_UNUSABLE', `${dir}: its identity file is unusable (${read.reason}); no format-2 blob was written`, { dir, nodeId });
  }
  const identity = read.kind === 'ok' ? read.identity : nodeIdentity(nodeId, null, nowMs);
  if (identity.formatVersion >= NODE_IDENTITY_FORMAT_COMPACT) return;
  await writeNodeIdentity(dir, { ...identity, formatVersion: NODE_IDENTITY_FORMAT_COMPACT });
}

function allInOneAcceptAdvice(nodeId: string): string {
  return (
    `if its disk was replaced, stop Strata and run \`${ACCEPT_EMPTY_NODE_COMMAND.replace('<node id>', nodeId)}\` to start it as a new ` +
    'empty node (the healer then refills it); otherwise mount or restore the right disk'
  );
}

/**
 * Why an identity file read from a node's directory rules the directory out for `nodeId` of cluster `clusterId`
 * (null: no cluster known yet), or null when it does not (none, or this node's).
 */
export function identityRefusal(read: IdentityRead<NodeIdentity>, nodeId: string, clusterId: string | null): string | null {
  if (read.kind === 'unreadable') return `its identity file is unusable (${read.reason})`;
  if (read.kind === 'missing') return null;
  const { identity } = read;
  if (identity.formatVersion > IDENTITY_FORMAT_VERSION) {
    return `written by a newer Strata (identity format ${identity.formatVersion}; this release knows up to ${IDENTITY_FORMAT_VERSION})`;
  }
  if (identity.nodeId !== nodeId) return `belongs to ${identity.nodeId}, not ${nodeId} (a directory from another node)`;
  if (identity.clusterId !== null && clusterId !== null && identity.clusterId !== clusterId) {
    return (
      `belongs to cluster ${identity.clusterId}, not this cluster ${clusterId} (a directory from another cluster): ` +
      `mount ${nodeId}'s own disk here, or move this directory aside to start ${nodeId} empty`
    );
  }
  return null;
}

/** The entries of `dir` that are data; [] when it is missing or empty; null when it is not a directory. */
export async function dataEntries(dir: string): Promise<string[] | null> {
  try {
    if (!(await stat(dir)).isDirectory()) return null;
    return (await readdir(dir)).filter((name) => !NOT_DATA.has(name));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    if ((error as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw new StrataError('DATA_DIR_UNUSABLE', `${dir} cannot be read: ${(error as Error).message}`, { dir });
  }
}
