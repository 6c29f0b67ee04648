/**
 * Identity files: what a directory belongs to, so that a directory from another node, another cluster or a newer
 * release is never taken for this node's data (README.md in this folder has the formats and the rules).
 *
 * - `node-identity.json` in each storage node's directory: node id, cluster id, format version.
 * - `cluster-identity.json` in the all-in-one's data directory: cluster id, format version, and the nodes whose
 *   directories were initialised (so an emptied one is noticed instead of being taken as a new node).
 *
 * Both are small JSON files written whole through a temporary file, fsync and rename, so a crash leaves the old
 * file or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, unlink } from 'node:fs/promises';
import path from 'node:path';

export const NODE_IDENTITY_FILE = 'node-identity.json';
export const CLUSTER_IDENTITY_FILE = 'cluster-identity.json';
/** The identity formats this release reads; a file with a higher number is from a newer release. */
export const IDENTITY_FORMAT_VERSION = 2;
/** What a new identity file says: format 1, which the release before compact formats reads too. */
export const IDENTITY_FORMAT_INITIAL = 1;
/**
 * A node directory that may hold format-3 volumes (needle format 2, internal/blobstore/volume/README.md). The
 * release before them would take such a volume for a damaged one and cut its tail; it refuses this identity
 * instead, untouched. Written durably before the node's first format-3 volume exists.
 */
export const NODE_IDENTITY_FORMAT_COMPACT = 2;
const NODE_FORMAT = 'strata-node-identity';
const CLUSTER_FORMAT = 'strata-cluster-identity';
/** An identity file is a few hundred bytes; anything much larger is not one. */
const IDENTITY_BYTES_MAX = 64 * 1024;

export interface NodeIdentity {
  format: typeof NODE_FORMAT;
  formatVersion: number;
  nodeId: string;
  /** The all-in-one's cluster id; null for a node started as its own process (it has no cluster id to check). */
  clusterId: string | null;
  createdAt: string;
}

export interface ClusterIdentity {
  format: typeof CLUSTER_FORMAT;
  formatVersion: number;
  clusterId: string;
  /** Nodes whose directories were initialised (or adopted): an empty directory for one of them is suspect. */
  nodes: string[];
  createdAt: string;
}

export type IdentityRead<T> = { kind: 'missing' } | { kind: 'ok'; identity: T } | { kind: 'unreadable'; reason: string };

export function newClusterId(): string {
  return randomBytes(12).toString('hex');
}

export function nodeIdentity(nodeId: string, clusterId: string | null, nowMs: number): NodeIdentity {
  return { format: NODE_FORMAT, formatVersion: IDENTITY_FORMAT_INITIAL, nodeId, clusterId, createdAt: new Date(nowMs).toISOString() };
}

export function clusterIdentity(clusterId: string, nodes: string[], nowMs: number): ClusterIdentity {
  return { format: CLUSTER_FORMAT, formatVersion: IDENTITY_FORMAT_INITIAL, clusterId, nodes, createdAt: new Date(nowMs).toISOString() };
}

export async function readNodeIdentity(dir: string): Promise<IdentityRead<NodeIdentity>> {
  return readIdentity(path.join(dir, NODE_IDENTITY_FILE), NODE_FORMAT, (v) =>
    typeof v['nodeId'] === 'string' && (v['clusterId'] === null || typeof v['clusterId'] === 'string') ? null : 'nodeId or clusterId missing',
  );
}

export async function readClusterIdentity(dir: string): Promise<IdentityRead<ClusterIdentity>> {
  return readIdentity(path.join(dir, CLUSTER_IDENTITY_FILE), CLUSTER_FORMAT, (v) =>
    typeof v['clusterId'] === 'string' && Array.isArray(v['nodes']) && v['nodes'].every((n) => typeof n === 'string')
      ? null
      : 'clusterId or nodes missing',
  );
}

export async function writeNodeIdentity(dir: string, identity: NodeIdentity): Promise<void> {
  await writeFileDurably(path.join(dir, NODE_IDENTITY_FILE), `${JSON.stringify(identity, null, 2)}\n`);
}

export async function writeClusterIdentity(dir: string, identity: ClusterIdentity): Promise<void> {
  await writeFileDurably(path.join(dir, CLUSTER_IDENTITY_FILE), `${JSON.stringify(identity, null, 2)}\n`);
}

/**
 * Reads and checks the shape of an identity file. A newer format version is returned as read (with its number):
 * the caller refuses it, since only a newer release knows what else it means.
 */
async function readIdentity<T>(
  file: string,
  format: string,
  check: (value: Record<string, unknown>) => string | null,
): Promise<IdentityRead<T>> {
  let text: string;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > IDENTITY_BYTES_MAX) return { kind: 'unreadable', reason: `${file} is ${size} bytes, not an identity file` };
      text = await readFile(handle, 'utf8');
    } finally {
      await handle.close();
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    return { kind: 'unreadable', reason: `${file} cannot be read: ${(error as Error).message}` };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: 'unreadable', reason: `${file} is not valid JSON` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { kind: 'unreadable', reason: `${file} is not a JSON object` };
  const record = value as Record<string, unknown>;
  if (record['format'] !== format) return { kind: 'unreadable', reason: `${file} is not a ${format} file` };
  const version = record['formatVersion'];
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 1) {
    return { kind: 'unreadable', reason: `${file} has no valid formatVersion` };
  }
  if (version > IDENTITY_FORMAT_VERSION) return { kind: 'ok', identity: value as T };
  const problem = check(record);
  if (problem !== null) return { kind: 'unreadable', reason: `${file}: ${problem}` };
  return { kind: 'ok', identity: value as T };
}

async function writeFileDurably(file: string, text: string): Promise<void> {
  const temp = `${file}.tmp`;
  const handle = await open(temp, 'w', 0o644);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await rename(temp, file);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    throw error;
  }
  const dir = await open(path.dirname(file), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
