/**
 * The cluster identity record as both stores keep it (MetadataStore.getClusterIdentity): one value, the JSON below
 * in the record envelope's text form (kind `cluster-identity`, key `cluster`), so that a damaged record is refused
 * (METADATA_CORRUPT) instead of naming the wrong cluster or forgetting which nodes held data.
 *
 *   sr1 <checksum> cluster-identity "cluster"\n{"format":"strata-cluster-identity","formatVersion":2,
 *   "clusterId":"4f…","createdAtMs":…,"nodes":["node-1",…],"acceptedEmpty":[],"dataFormat":2}
 *
 * etcd: the key `<prefix>cluster-identity`; the embedded store: the one row of `cluster_identity`. A record of a
 * newer format version is returned as read (with its number): the caller refuses to act on it.
 *
 * Record formats: 1 has no `dataFormat` (the cluster's data format is then 1); 2 adds `dataFormat`
 * (internal/core/data-format.ts), the cluster's data format version, raised only by the explicit bump
 * (internal/cluster/format-version.ts). A record is written in format 1 for as long as its data format is 1, byte
 * for byte as the previous release wrote it: that release's storage nodes refuse a format-2 record, so writing 2
 * only with the bump keeps a rollback possible until the bump and impossible after it (the fence the design wants).
 */
import { assert } from '../core/assert.js';
import { DATA_FORMAT_MAX, DATA_FORMAT_V1 } from '../core/data-format.js';
import { StrataError } from '../core/errors.js';
import type { ClusterIdentityRecord, ClusterNodeLists } from './metadata-store.js';
import { NODE_ID_PATTERN } from './metadata-store.js';
import { corruptRecord, openText, sealText } from './record-envelope.js';

/** The envelope key of the one record. */
export const CLUSTER_IDENTITY_RECORD_KEY = 'cluster';
/** The newest record format this release reads and writes; one with a higher number is from a newer release. */
export const CLUSTER_IDENTITY_RECORD_VERSION = 2;
/** The record format that carries `dataFormat`. */
const RECORD_FORMAT_WITH_DATA_FORMAT = 2;
const FORMAT = 'strata-cluster-identity';

export const CLUSTER_IDENTITY_LIMITS = {
  /** Node ids a record lists; a list beyond it is a bug (the node registry is bounded far below). */
  nodesMax: 4096,
  /** Characters of a cluster id (ours are 24 hex digits). */
  clusterIdLengthMax: 128,
} as const;

export function sealClusterIdentity(record: ClusterIdentityRecord): string {
  const fields: Record<string, unknown> = {
    format: FORMAT,
    formatVersion: record.formatVersion,
    clusterId: record.clusterId,
    createdAtMs: record.createdAtMs,
    nodes: record.nodes,
    acceptedEmpty: record.acceptedEmpty,
  };
  if (record.formatVersion >= RECORD_FORMAT_WITH_DATA_FORMAT) fields['dataFormat'] = dataFormatOf(record);
  return sealText('cluster-identity', CLUSTER_IDENTITY_RECORD_KEY, JSON.stringify(fields));
}

/** The cluster's data format version a record names: absent (record format 1) is DATA_FORMAT_V1. */
export function dataFormatOf(record: ClusterIdentityRecord): number {
  return record.dataFormat ?? DATA_FORMAT_V1;
}

/** The record format a record of `dataFormat` is written in: 1 while the data format is 1 (see the header). */
export function recordFormatFor(dataFormat: number): number {
  return dataFormat > DATA_FORMAT_V1 ? RECORD_FORMAT_WITH_DATA_FORMAT : 1;
}

/**
 * Why this release must not run against `record`, or null: a record format or data format newer than it knows.
 * The message names what to run instead; callers fail closed with it (refuse to start, stop writing).
 */
export function newerThanThisRelease(record: ClusterIdentityRecord): string | null {
  if (record.formatVersion > CLUSTER_IDENTITY_RECORD_VERSION) {
    return (
      `the cluster identity was written by a newer Strata (record format ${record.formatVersion}; this release knows up to ` +
      `${CLUSTER_IDENTITY_RECORD_VERSION}): run a release that knows record format ${record.formatVersion}`
    );
  }
  const dataFormat = dataFormatOf(record);
  if (dataFormat > DATA_FORMAT_MAX) {
    return (
      `the cluster's data format is ${dataFormat}, newer than this release reads (up to ${DATA_FORMAT_MAX}): the cluster was ` +
      `bumped by a newer Strata; run a release that reads data format ${dataFormat}`
    );
  }
  return null;
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
  if (record.formatVersion >= RECORD_FORMAT_WITH_DATA_FORMAT) record.dataFormat = v['dataFormat'] as number;
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
  if (record.formatVersion >= RECORD_FORMAT_WITH_DATA_FORMAT) {
    // Any positive integer reads: one above DATA_FORMAT_MAX is a newer release's bump (newerThanThisRelease), not damage.
    if (typeof record.dataFormat !== 'number' || !Number.isSafeInteger(record.dataFormat) || record.dataFormat < 1) {
      return 'its data format is not an integer >= 1';
    }
  } else if (record.dataFormat !== undefined && record.dataFormat !== DATA_FORMAT_V1) {
    return `record format ${record.formatVersion} cannot carry data format ${record.dataFormat}`;
  }
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

/**
 * Refuses to write a record this release cannot vouch for (a newer format, a data format it does not know, a bad
 * id), and writes it in the record format its data format calls for (see the header): a format-1 record carries no
 * `dataFormat`, so it reads back equal to what the previous release wrote.
 */
export function checkedForWrite(record: ClusterIdentityRecord): ClusterIdentityRecord {
  const dataFormat = dataFormatOf(record);
  assert(Number.isSafeInteger(dataFormat) && dataFormat >= DATA_FORMAT_V1 && dataFormat <= DATA_FORMAT_MAX, `a cluster identity to write has a data format this release knows (${dataFormat})`);
  assert(
    Number.isSafeInteger(record.formatVersion) && record.formatVersion >= 1 && record.formatVersion <= CLUSTER_IDENTITY_RECORD_VERSION,
    `a cluster identity to write has a record format this release knows (${record.formatVersion})`,
  );
  const { dataFormat: _dropped, ...rest } = record;
  const normalised: ClusterIdentityRecord = { ...rest, formatVersion: recordFormatFor(dataFormat), ...normalisedNodeLists(record) };
  if (normalised.formatVersion >= RECORD_FORMAT_WITH_DATA_FORMAT) normalised.dataFormat = dataFormat;
  const problem = problemWith(normalised);
  assert(problem === null, `a cluster identity to write is valid (${problem})`);
  return normalised;
}

/**
 * A stored record this release may change: not one of a newer record format or data format (it may mean more than
 * this release knows, and a rewrite by it would drop that).
 */
export function changeable(current: ClusterIdentityRecord, where: string): ClusterIdentityRecord {
  const newer = newerThanThisRelease(current);
  if (newer !== null) throw new StrataError('METADATA_UNAVAILABLE', `${where}: ${newer}`);
  return current;
}

/**
 * The record with its data format raised to `to` (MetadataStore.raiseClusterDataFormat): the same record when it
 * is already at `to` or above (a bump never lowers it; the caller refuses a lower target before asking).
 */
export function withDataFormat(current: ClusterIdentityRecord, to: number): ClusterIdentityRecord | null {
  assert(Number.isSafeInteger(to) && to >= DATA_FORMAT_V1 && to <= DATA_FORMAT_MAX, `a data format to raise to is one this release knows (${to})`);
  if (dataFormatOf(current) >= to) return null;
  return checkedForWrite({ ...current, dataFormat: to, formatVersion: recordFormatFor(to) });
}
