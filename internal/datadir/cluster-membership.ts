/**
 * A storage node process (`cmd/storage-node`) and its cluster: at start, after its directory lock and before its
 * volume store opens, the node checks its directory against the cluster identity that the metadata store keeps
 * (MetadataStore.getClusterIdentity: cluster id, format version, the nodes initialised, the emptied nodes an
 * operator accepted). README.md in this folder has the rules; in short:
 *
 * | the directory holds | the cluster identity | outcome |
 * |---|---|---|
 * | this node's identity, this cluster's id (or none yet) | any | opens (a missing id is written in) |
 * | another cluster's or another node's identity, a newer or unreadable one | any | refused, untouched |
 * | data, no identity (the release before identity files) | any | adopted with the cluster's id |
 * | nothing | does not list the node | initialised: a new node joins |
 * | nothing | lists the node, not accepted | refused: emptied (a wiped or replaced disk) |
 * | nothing | lists the node, accepted by the operator | initialised; the acceptance is used up |
 *
 * The node is then recorded as initialised (after its identity file is written, so that a crash in between never
 * makes a node that never held data look emptied). The record does not exist before the first node starts: that
 * node creates it (compare-and-set: of nodes racing, all end with one id), with the id its data directory already
 * names if any (an all-in-one's `cluster-identity.json`, or this node's identity file: the record was lost with
 * the metadata store, the directories were not), otherwise a new one.
 *
 * An unreachable metadata store is waited for, up to CLUSTER_JOIN_LIMITS.metadataWaitMs, then the node refuses to
 * start: a node that cannot check its directory must not take it on trust, and a supervisor restarts it.
 */
import { isStrataError, StrataError } from '../core/errors.js';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../log/logger.js';
import { CLUSTER_IDENTITY_RECORD_VERSION, newerThanThisRelease } from '../metadata/cluster-identity-record.js';
import type { ClusterIdentityRecord, MetadataStore } from '../metadata/metadata-store.js';
import { newClusterId, readClusterIdentity, readNodeIdentity } from './identity.js';
import { admitNodeDirectory, identityRefusal, type NodeDirectoryOutcome } from './node-directory.js';

export const CLUSTER_JOIN_LIMITS = {
  /**
   * How long a starting node waits for an unreachable metadata store before it refuses to start: long enough for
   * etcd to come up beside it (docker compose starts everything at once), short enough that a misconfigured
   * STRATA_ETCD_ENDPOINTS is reported within a minute.
   */
  metadataWaitMs: 60_000,
  retryDelayMsMin: 250,
  retryDelayMsMax: 2_000,
} as const;

/** What to do about an emptied node directory in cluster mode (scripts/accept-empty-node.ts records the acceptance). */
export function clusterAcceptAdvice(nodeId: string): string {
  return (
    `if its disk was replaced, run \`npm run node:accept-empty -- ${nodeId}\` with STRATA_ETCD_ENDPOINTS set to this cluster's etcd ` +
    `(it records the acceptance in the cluster identity), then start ${nodeId} again: it starts as a new empty node and the healer ` +
    'refills it; otherwise mount or restore the right disk'
  );
}

export type ClusterIdentityStore = Pick<MetadataStore, 'getClusterIdentity' | 'createClusterIdentity' | 'updateClusterNodes'>;

export interface ClusterJoin {
  store: ClusterIdentityStore;
  /** What the store is, for messages (`etcd (http://10.0.0.5:2379)`). */
  storeName: string;
  /** STRATA_DATA_DIR: an all-in-one's `cluster-identity.json` there names the cluster when the store has none. */
  dataDir: string;
  nodeDir: string;
  nodeId: string;
  clock: Clock;
  log?: Logger;
  /** Default CLUSTER_JOIN_LIMITS.metadataWaitMs. */
  metadataWaitMs?: number;
}

export interface ClusterJoined {
  clusterId: string;
  directory: NodeDirectoryOutcome;
}

/** Admits `nodeDir` for `nodeId` against the cluster identity (see above); throws the refusal. */
export async function joinCluster(join: ClusterJoin): Promise<ClusterJoined> {
  const { nodeId, nodeDir } = join;
  const own = await readNodeIdentity(nodeDir);
  // A directory that is not this node's is refused before the store is asked anything (or a record created).
  const refusal = identityRefusal(own, nodeId, null);
  if (refusal !== null) throw new StrataError('DATA_DIR_UNUSABLE', `${nodeDir}: ${refusal}; nothing in it was changed`, { dir: nodeDir, nodeId });

  const reach = patiently(join);
  let record = await reach('read the cluster identity', () => join.store.getClusterIdentity());
  if (record === null) {
    const fromDisk = await readClusterIdentity(join.dataDir);
    const named = fromDisk.kind === 'ok' ? fromDisk.identity.clusterId : own.kind === 'ok' ? own.identity.clusterId : null;
    const proposed: ClusterIdentityRecord = {
      clusterId: named ?? newClusterId(),
      formatVersion: CLUSTER_IDENTITY_RECORD_VERSION,
      createdAtMs: join.clock.nowMs(),
      nodes: [],
      acceptedEmpty: [],
    };
    record = await reach('create the cluster identity', () => join.store.createClusterIdentity(proposed));
    if (record.clusterId === proposed.clusterId) join.log?.info({ clusterId: record.clusterId, adopted: named !== null }, 'cluster identity created');
  }
  // A newer record format, or a data format this release cannot read (a newer release bumped the cluster): the
  // node refuses before it touches its directory, so nothing is repaired or deleted by a release that misreads.
  const newer = newerThanThisRelease(record);
  if (newer !== null) {
    throw new StrataError(
      'DATA_DIR_UNUSABLE',
      `${nodeDir}: in ${join.storeName}, ${newer}; nothing in the directory was changed`,
      { dir: nodeDir, nodeId },
    );
  }
  const directory = await admitNodeDirectory(nodeDir, {
    nodeId,
    clusterId: record.clusterId,
    heldData: record.nodes.includes(nodeId),
    acceptEmpty: record.acceptedEmpty.includes(nodeId),
    acceptAdvice: clusterAcceptAdvice(nodeId),
    nowMs: join.clock.nowMs(),
  });
  if (!record.nodes.includes(nodeId) || record.acceptedEmpty.includes(nodeId)) {
    // An acceptance is used up by this start, whatever the directory held: a later wipe needs a new one.
    await reach('record the node in the cluster identity', () =>
      join.store.updateClusterNodes((current) =>
        current.nodes.includes(nodeId) && !current.acceptedEmpty.includes(nodeId)
          ? null
          : { nodes: [...current.nodes, nodeId], acceptedEmpty: current.acceptedEmpty.filter((id) => id !== nodeId) },
      ),
    );
  }
  return { clusterId: record.clusterId, directory };
}

export type EmptyNodeAcceptance = 'accepted' | 'not-needed';

/**
 * The operator's action for an emptied node directory in cluster mode (`npm run node:accept-empty -- node-3` with
 * STRATA_ETCD_ENDPOINTS): records in the cluster identity that node `nodeId`'s next start may initialise an empty
 * directory, so the node comes back as a new empty node and the healer refills it. Run from anywhere that reaches
 * the metadata store: the node's directory need not be at hand (its process keeps refusing to start meanwhile).
 * 'not-needed' when the cluster never initialised the node (it joins as a new node without this). Refused while
 * the node is registered and alive: a running node's directory is not empty.
 */
export async function acceptEmptyClusterNode(
  store: ClusterIdentityStore & Pick<MetadataStore, 'listNodes'>,
  nodeId: string,
): Promise<{ acceptance: EmptyNodeAcceptance; clusterId: string }> {
  const record = await store.getClusterIdentity();
  if (record === null) {
    throw new StrataError('NODE_NOT_FOUND', 'the metadata store holds no cluster identity yet (no storage node has started against it): nothing to accept');
  }
  if (!record.nodes.includes(nodeId)) return { acceptance: 'not-needed', clusterId: record.clusterId };
  const registered = (await store.listNodes()).find((n) => n.id === nodeId);
  if (registered?.alive === true) {
    throw new StrataError(
      'NODE_UNAVAILABLE',
      `${nodeId} is running (registered at ${registered.address} and heartbeating): its directory is in use, not empty; nothing was changed`,
    );
  }
  await store.updateClusterNodes((current) =>
    current.acceptedEmpty.includes(nodeId) ? null : { nodes: current.nodes, acceptedEmpty: [...current.acceptedEmpty, nodeId] },
  );
  return { acceptance: 'accepted', clusterId: record.clusterId };
}

/**
 * Runs a metadata call, retrying while the store is unreachable (METADATA_UNAVAILABLE, COMMIT_UNKNOWN), for at most the join's
 * wait; then refuses with what to check. Any other error (a damaged record, a full etcd) is final at once.
 */
function patiently(join: ClusterJoin): <T>(what: string, call: () => Promise<T>) => Promise<T> {
  const waitMs = join.metadataWaitMs ?? CLUSTER_JOIN_LIMITS.metadataWaitMs;
  const startedMs = join.clock.nowMs();
  let warned = false;
  return async (what, call) => {
    let delayMs: number = CLUSTER_JOIN_LIMITS.retryDelayMsMin;
    for (;;) {
      try {
        return await call();
      } catch (error) {
        // Every call here may be repeated: a read, a create-if-absent, a change to a set (COMMIT_UNKNOWN included).
        if (!isStrataError(error, 'METADATA_UNAVAILABLE') && !isStrataError(error, 'COMMIT_UNKNOWN')) throw cannotCheck(join, what, error);
        const waitedMs = join.clock.nowMs() - startedMs;
        if (waitedMs >= waitMs) {
          throw new StrataError(
            'METADATA_UNAVAILABLE',
            `storage node ${join.nodeId} cannot check its directory ${join.nodeDir} against the cluster identity: ${join.storeName} ` +
              `did not answer within ${waitMs} ms (${error.message}). It does not start on trust: check STRATA_ETCD_ENDPOINTS ` +
              'and that the metadata store is up, then start the node again',
            { dir: join.nodeDir, nodeId: join.nodeId },
          );
        }
        if (!warned) {
          warned = true;
          join.log?.warn({ err: error, waitMs }, `${join.storeName} does not answer; waiting up to ${waitMs} ms to ${what} before this node starts`);
        }
        await join.clock.sleep(Math.min(delayMs, waitMs - waitedMs));
        delayMs = Math.min(delayMs * 2, CLUSTER_JOIN_LIMITS.retryDelayMsMax);
      }
    }
  };
}

function cannotCheck(join: ClusterJoin, what: string, error: unknown): unknown {
  if (!isStrataError(error, 'METADATA_CORRUPT')) return error;
  return new StrataError(
    'METADATA_CORRUPT',
    `storage node ${join.nodeId} cannot ${what}: the record in ${join.storeName} failed verification (${error.message}). ` +
      'It does not start on trust. Restore the metadata store from a backup; or delete the damaged record ' +
      '(etcd: `etcdctl del <STRATA_ETCD_PREFIX>cluster-identity`) and the next node to start recreates it from the cluster id its ' +
      'directory names (the list of initialised nodes starts again empty)',
    { dir: join.nodeDir, nodeId: join.nodeId },
  );
}
