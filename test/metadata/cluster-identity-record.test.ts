/**
 * The cluster identity record's envelope (internal/metadata/cluster-identity-record.ts), for what the contract's
 * tamper cannot write: a value without the envelope, another record's envelope, a record of a newer format, a
 * content that is sealed but not a cluster identity.
 */
import { describe, expect, it } from 'vitest';
import { DATA_FORMAT_MAX } from '../../internal/core/data-format.js';
import { isStrataError } from '../../internal/core/errors.js';
import {
  changeable,
  checkedForWrite,
  dataFormatOf,
  newerThanThisRelease,
  openClusterIdentity,
  sealClusterIdentity,
  withDataFormat,
} from '../../internal/metadata/cluster-identity-record.js';
import type { ClusterIdentityRecord } from '../../internal/metadata/metadata-store.js';
import { sealText } from '../../internal/metadata/record-envelope.js';

/** A data format this release does not know. */
const NEWER = DATA_FORMAT_MAX + 1;

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
    const newer = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', formatVersion: 3, clusterId: 'c2', more: true }));
    const opened = openClusterIdentity(newer, 'test');
    expect(opened.formatVersion).toBe(3);
    expect(codeOf(() => changeable(opened, 'test'))).toBe('METADATA_UNAVAILABLE');
    expect(newerThanThisRelease(opened)).toMatch(/record format 3; this release knows up to 2\): run a release that knows record format 3/);
    expect(changeable(record, 'test')).toBe(record);
  });

  it('writes a record at data format 1 in record format 1, byte for byte as the previous release sealed it', () => {
    // The previous release's seal, field for field in its order.
    const { formatVersion, clusterId, createdAtMs, nodes, acceptedEmpty } = record;
    const content = JSON.stringify({ format: 'strata-cluster-identity', formatVersion, clusterId, createdAtMs, nodes, acceptedEmpty });
    const previous = sealText('cluster-identity', 'cluster', content);
    expect(sealClusterIdentity(checkedForWrite({ ...record, formatVersion: 2 }))).toBe(previous);
    expect(dataFormatOf(openClusterIdentity(previous, 'test'))).toBe(1);
  });

  it('carries the data format in record format 2, and reads it back', () => {
    const raised = withDataFormat(record, 2);
    expect(raised).toEqual({ ...record, formatVersion: 2, dataFormat: 2 });
    const text = sealClusterIdentity(raised!);
    expect(text).toContain('"dataFormat":2');
    expect(openClusterIdentity(text, 'test')).toEqual(raised);
    expect(withDataFormat(raised!, 2)).toBeNull();
    expect(withDataFormat(raised!, 1)).toBeNull();
  });

  it('a data format newer than this release reads is returned as read, and named as needing a newer release', () => {
    const text = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', ...record, formatVersion: 2, dataFormat: NEWER }));
    const opened = openClusterIdentity(text, 'test');
    expect(dataFormatOf(opened)).toBe(NEWER);
    expect(newerThanThisRelease(opened)).toMatch(new RegExp(`data format is ${NEWER}, newer than this release reads \\(up to ${DATA_FORMAT_MAX}\\).*run a release that reads data format ${NEWER}`));
    expect(codeOf(() => changeable(opened, 'test'))).toBe('METADATA_UNAVAILABLE');
  });

  it('refuses a format-2 record without a valid data format, and a format-1 record that claims one', () => {
    const missing = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', ...record, formatVersion: 2 }));
    expect(codeOf(() => openClusterIdentity(missing, 'test'))).toBe('METADATA_CORRUPT');
    const zero = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', ...record, formatVersion: 2, dataFormat: 0 }));
    expect(codeOf(() => openClusterIdentity(zero, 'test'))).toBe('METADATA_CORRUPT');
    // Format 1 has no data format field: one there is ignored as the previous release ignores it.
    const extra = sealText('cluster-identity', 'cluster', JSON.stringify({ format: 'strata-cluster-identity', ...record, dataFormat: 2 }));
    expect(dataFormatOf(openClusterIdentity(extra, 'test'))).toBe(1);
  });
});
