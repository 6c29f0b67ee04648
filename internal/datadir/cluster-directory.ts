/**
 * The all-in-one's data directory as one cluster: its identity (cluster id, format version, the nodes whose
 * directories were initialised), read or created at start-up under the directory's lock, and the operator's
 * action that accepts an emptied node directory (a replaced disk) as a new empty node.
 */
import path from 'node:path';
import { StrataError } from '../core/errors.js';
import { DirLock } from './dir-lock.js';
import {
  IDENTITY_FORMAT_VERSION,
  clusterIdentity,
  newClusterId,
  nodeIdentity,
  readClusterIdentity,
  readNodeIdentity,
  writeClusterIdentity,
  writeNodeIdentity,
  type ClusterIdentity,
} from './identity.js';
import { dataEntries } from './node-directory.js';

/** Where the all-in-one keeps node `nodeId`'s directory. */
export function nodeDirectory(dataDir: string, nodeId: string): string {
  return path.join(dataDir, 'nodes', nodeId);
}

/**
 * The cluster identity of `dataDir` (the caller holds its lock). When there is none yet (a first start, or a
 * directory of the release before identity files) one is written: with the cluster id that the nodes' identity
 * files agree on when they name one (the file was lost, the nodes were not), otherwise a new id. Its node list
 * starts empty and grows as nodes open (`recordNodeInitialised`), so that a crash in between never makes a node
 * that was never initialised look emptied. A file of a newer format, or one that cannot be read, stops the start.
 */
export async function openClusterIdentity(dataDir: string, nodeIds: readonly string[], nowMs: number): Promise<ClusterIdentity> {
  const read = await readClusterIdentity(dataDir);
  if (read.kind === 'unreadable') {
    throw new StrataError('DATA_DIR_UNUSABLE', `data directory ${dataDir}: ${read.reason}; restore the file or move the data directory aside`, { dir: dataDir });
  }
  if (read.kind === 'ok') {
    if (read.identity.formatVersion > IDENTITY_FORMAT_VERSION) {
      throw new StrataError(
        'DATA_DIR_UNUSABLE',
        `data directory ${dataDir} was written by a newer Strata (cluster identity format ${read.identity.formatVersion}; this release knows up to ${IDENTITY_FORMAT_VERSION}): start the newer release`,
        { dir: dataDir },
      );
    }
    return read.identity;
  }
  const named = new Set<string>();
  for (const id of nodeIds) {
    const node = await readNodeIdentity(nodeDirectory(dataDir, id)).catch(() => ({ kind: 'missing' }) as const);
    if (node.kind === 'ok' && node.identity.clusterId !== null) named.add(node.identity.clusterId);
  }
  const identity = clusterIdentity(named.size === 1 ? [...named][0]! : newClusterId(), [], nowMs);
  await writeClusterIdentity(dataDir, identity);
  return identity;
}

/** Records that `nodeId`'s directory now holds this cluster's node; returns the identity as written. */
export async function recordNodeInitialised(dataDir: string, identity: ClusterIdentity, nodeId: string): Promise<ClusterIdentity> {
  if (identity.nodes.includes(nodeId)) return identity;
  const next = { ...identity, nodes: [...identity.nodes, nodeId].sort() };
  await writeClusterIdentity(dataDir, next);
  return next;
}

/**
 * The operator's action for a replaced or wiped node disk (`npm run node:accept-empty`): with the all-in-one
 * stopped (this takes the data directory's lock and the node's), writes a fresh identity into the node's empty
 * directory, so that the next start opens it as a new empty node and the healer refills it. Refuses a directory
 * that holds data or an identity: nothing there is changed.
 */
export async function acceptEmptyNode(dataDir: string, nodeId: string, nowMs: number): Promise<string> {
  const lock = DirLock.acquire(dataDir);
  try {
    const cluster = await readClusterIdentity(dataDir);
    if (cluster.kind !== 'ok') {
      throw new StrataError('DATA_DIR_UNUSABLE', `data directory ${dataDir} has no usable cluster identity: start Strata once first`, { dir: dataDir });
    }
    const dir = nodeDirectory(dataDir, nodeId);
    const nodeLock = DirLock.acquire(dir);
    try {
      const existing = await readNodeIdentity(dir);
      if (existing.kind !== 'missing') {
        throw new StrataError('DATA_DIR_UNUSABLE', `${dir} already has an identity file: it is not an empty directory to accept; nothing was changed`, { dir });
      }
      const data = await dataEntries(dir);
      if (data === null || data.length > 0) {
        throw new StrataError('DATA_DIR_UNUSABLE', `${dir} is not empty (${(data ?? ['not a directory']).slice(0, 5).join(', ')}): nothing was changed`, { dir });
      }
      await writeNodeIdentity(dir, nodeIdentity(nodeId, cluster.identity.clusterId, nowMs));
      await recordNodeInitialised(dataDir, cluster.identity, nodeId);
      return dir;
    } finally {
      nodeLock.release();
    }
  } finally {
    lock.release();
  }
}
