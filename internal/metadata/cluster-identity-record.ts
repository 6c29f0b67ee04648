/**
 * The cluster identity record as both stores keep it (MetadataStore.getClusterIdentity): one value, the JSON below
 * in the record envelope's text form (kind `cluster-identity`, key `cluster`), so that a damaged record is refused
 * (METADATA_CORRUPT) instead of naming the wrong cluster or forgetting which nodes held data.
 *
 *   sr1 <checksum> cluster-identity "cluster"\n{"format":"strata-cluster-identity","formatVersion":1,
 *   "clusterId":"4f…","createdAtMs":…,"nodes":["node-1",…],"acceptedEmpty":[]}
 *
 * etcd: the key `<prefix>cluster-identity`; the embedded store: the one row of `cluster_identity`. A record of a
 * newer format version is returned as read (with its number): the caller refuses to act on it.
 */
import { assert } from '../core/assert.js';
import { StrataError } from '../core/errors.js';
import type { ClusterIdentityRecord, ClusterNodeLists } from './metadata-store.js';
import { NODE_ID_PATTERN } from './metadata-store.js';
import { corruptRecord, openText, sealText } from './record-envelope.js';

/** The envelope key of the one record. */
export const CLUSTER_IDENTITY_RECORD_KEY = 'cluster';
/** The record format this release writes; one with a higher number is from a newer release. */
export const CLUSTER_IDENTITY_RECORD_VERSION = 1;
const FORMAT = 'strata-cluster-identity';

export const CLUSTER_IDENTITY_LIMITS = {
  /** Node ids a record lists; a list beyond it is a bug (the node registry is bounded far below). */
  nodesMax: 4096,
  /** Characters of a cluster id (ours are 24 hex digits). */
  clusterIdLengthMax: 128,
} as const;

export function sealClusterIdentity(record: ClusterIdentityRecord): string {
  const content = JSON.stringify({
    format: FORMAT,
    formatVersion: record.formatVersion,
    clusterId: record.clusterId,
    createdAtMs: record.createdAtMs,
    nodes: record.nodes,
    acceptedEmpty: record.acceptedEmpty,
  });
  return sealText('cluster-identity', CLUSTER_IDENTITY_RECORD_KEY, content);
}

/**
 * The record in `text`, or METADATA_CORRUPT when its envelope or its content fails a check. There is no previous
 * release's plain form to accept: the record is new, so a value without the envelope is damaged too.
 */
export function openClusterIdentity(text: string, where: string): ClusterIdentityRecord {
  const corrupt = (why: string): StrataError => corruptRecord('cluster-identity', CLUSTER_IDENTITY_RECORD_KEY, where, why);
  const opened = openText('cluster-identity', CLUSTER_IDENTITY_RECORD_KEY, text, where);
  if (!opened.sealed) throw corrupt('it has no record envelope');
  let value: unknown;
  try {
    value = JSON.parse(opened.content);
  } catch {
    throw corrupt('its content is not JSON');
  }
  if (typeof value !== 'object' || value === null) throw corrupt('its content is not an object');
  const v = value as Record<string, unknown>;
  if (v['format'] !== FORMAT || typeof v['formatVersion'] !== 'number' || !Number.isInteger(v['formatVersion']) || v['formatVersion'] < 1) {
    throw corrupt('it is not a cluster identity');
  }
  const record = {
    formatVersion: v['formatVersion'],
    clusterId: v['clusterId'],
    createdAtMs: v['createdAtMs'],
    nodes: v['nodes'],
    acceptedEmpty: v['acceptedEmpty'],
  } as ClusterIdentityRecord;
  // A newer format may mean more than this release knows; it is returned for the caller to refuse.
  if (record.formatVersion > CLUSTER_IDENTITY_RECORD_VERSION) return record;
  const problem = problemWith(record);
  if (problem !== null) throw corrupt(problem);
  return record;
}

/** Why `record` is not a valid cluster identity, or null. Also checks what a store is asked to write. */
export function problemWith(record: ClusterIdentityRecord): string | null {
  if (typeof record.clusterId !== 'string' || record.clusterId.length === 0 || record.clusterId.length > CLUSTER_IDENTITY_LIMITS.clusterIdLengthMax) {
    return 'its cluster id is not a non-empty string';
  }
  if (typeof record.createdAtMs !== 'number' || !Number.isSafeInteger(record.createdAtMs)) return 'its creation time is not an integer';
  return nodeListsProblem(record);
}

function nodeListsProblem(lists: ClusterNodeLists): string | null {
  for (const [name, list] of [['nodes', lists.nodes], ['acceptedEmpty', lists.acceptedEmpty]] as const) {
    if (!Array.isArray(list) || list.length > CLUSTER_IDENTITY_LIMITS.nodesMax) return `${name} is not a list of node ids`;
    if (!list.every((id) => typeof id === 'string' && NODE_ID_PATTERN.test(id))) return `${name} holds something that is not a node id`;
  }
  return null;
}

/** The node lists as a store writes them: sorted, without repeats; a bad list is a bug of the caller. */
export function normalisedNodeLists(lists: ClusterNodeLists): ClusterNodeLists {
  const problem = nodeListsProblem(lists);
  assert(problem === null, `cluster identity node lists are valid (${problem})`);
  return { nodes: [...new Set(lists.nodes)].sort(), acceptedEmpty: [...new Set(lists.acceptedEmpty)].sort() };
}

/** Refuses to write a record this release cannot vouch for (a newer format, a bad id). */
export function checkedForWrite(record: ClusterIdentityRecord): ClusterIdentityRecord {
  const problem = record.formatVersion === CLUSTER_IDENTITY_RECORD_VERSION ? problemWith(record) : `format version ${record.formatVersion} is not ${CLUSTER_IDENTITY_RECORD_VERSION}`;
  assert(problem === null, `a cluster identity to write is valid (${problem})`);
  return { ...record, ...normalisedNodeLists(record) };
}

/** A stored record whose node lists this release may change: not one of a newer format (it may mean more). */
export function changeable(current: ClusterIdentityRecord, where: string): ClusterIdentityRecord {
  if (current.formatVersion > CLUSTER_IDENTITY_RECORD_VERSION) {
    throw new StrataError(
      'METADATA_UNAVAILABLE',
      `${where}: the cluster identity was written by a newer Strata (format ${current.formatVersion}; this release knows up to ` +
        `${CLUSTER_IDENTITY_RECORD_VERSION}); run the newer release`,
    );
  }
  return current;
}
