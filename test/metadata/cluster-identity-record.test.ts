/**
 * The cluster identity record's envelope (internal/metadata/cluster-identity-record.ts), for what the contract's
 * tamper cannot write: a value without the envelope, another record's envelope, a record of a newer format, a
 * content that is sealed but not a cluster identity.
 */
import { describe, expect, it } from 'vitest';
import { isStrataError } from '../../internal/core/errors.js';
import { changeable, openClusterIdentity, sealClusterIdentity } from '../../internal/metadata/cluster-identity-record.js';
import type { ClusterIdentityRecord } from '../../internal/metadata/metadata-store.js';
import { sealText } from '../../internal/metadata/record-envelope.js';

const record: ClusterIdentityRecord = { clusterId: 'c1', formatVersion: 1, createdAtMs: 1, nodes: ['node-1'], acceptedEmpty: [] };

function codeOf(run: () => unknown): unknown {
  try {
    run();
    return 'returned';
  } catch (error) {
    return isStrataError(error) ? error.code : error;
  }
}

describe('cluster identity record', () => {
  it('reads back exactly what was sealed', () => {
    expect(openClusterIdentity(sealClusterIdentity(record), 'test')).toEqual(record);
  });

  it('refuses a value without the envelope, another record sealed in its place, and sealed content that is not one', () => {
    expect(codeOf(() => openClusterIdentity(JSON.stringify({ format: 'strata-cluster-identity', ...record }), 'test'))).toBe('METADATA_CORRUPT');
    expect(codeOf(() => openClusterIdentity(sealText('cluster-identity', 'other', '{}'), 'test'))).toBe('METADATA_CORRUPT');
    const badNode = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', ...record, nodes: ['../x'] }));
    expect(codeOf(() => openClusterIdentity(badNode, 'test'))).toBe('METADATA_CORRUPT');
    const noId = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', ...record, clusterId: '' }));
    expect(codeOf(() => openClusterIdentity(noId, 'test'))).toBe('METADATA_CORRUPT');
  });

  it('returns a newer format as read, and refuses to change it', () => {
    const newer = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', formatVersion: 2, clusterId: 'c2', more: true }));
    const opened = openClusterIdentity(newer, 'test');
    expect(opened.formatVersion).toBe(2);
    expect(codeOf(() => changeable(opened, 'test'))).toBe('METADATA_UNAVAILABLE');
    expect(changeable(record, 'test')).toBe(record);
  });
});
