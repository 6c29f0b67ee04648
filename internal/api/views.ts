/** JSON views of internal records, in the shapes api.md documents. */
import { formatFieldPath, parseJsonPointer } from '../json/pointer.js';
import { extraReplicaRefs, type BlobRef, type Manifest } from '../manifest/manifest.js';
import { coldLayoutView } from './cold-layout-view.js';
import type { PlacementCheck } from '../readservice/placement-check.js';

/** Manifests keep hot paths as JSON Pointers; clients see a top-level member by its plain name. */
export function displayPath(pointer: string): string {
  return formatFieldPath(parseJsonPointer(pointer, 'INVALID_HOT_FIELDS'));
}

export function statBody(m: Manifest) {
  return {
    key: m.key,
    version: m.version,
    strategy: m.strategy,
    hot_fields: m.hotPaths.map(displayPath),
    configured_hot_fields: m.hotFields,
    bytes: m.bytes,
    cold_hash: m.coldHash,
    dirty: m.dirty,
    created_at: m.createdAt,
    updated_at: m.updatedAt,
    write_id: m.writeId,
    hot: m.hot.map((r: BlobRef) => ({ part: r.part, node: r.node, blob: r.blob, size: r.size, state: r.state })),
    cold: m.cold.map((r: BlobRef, index: number) => ({ index, node: r.node, blob: r.blob, size: r.size, state: r.state })),
    cold_layout: coldLayoutView(m),
    // Tiering: the last `extra_replicas` entries of `hot` are temporary copies for a read-heavy document, not
    // counted in bytes.physical; where hot fields and strategy came from; the time to live.
    extra_replicas: m.extraReplicas ?? 0,
    extra_replica_bytes: extraReplicaRefs(m).reduce((sum, r) => sum + r.size, 0),
    hot_fields_source: m.hotFieldsSource ?? 'policy',
    strategy_source: m.strategySource ?? 'policy',
    expires_at: m.expiresAtMs === undefined ? null : new Date(m.expiresAtMs).toISOString(),
  };
}

/** statBody with each replica's and shard's state as its node reported it just now, and the protection summary. */
export function verifiedStatBody(m: Manifest, check: PlacementCheck) {
  const body = statBody(m);
  return {
    ...body,
    hot: body.hot.map((r, i) => ({ ...r, state: check.hot[i]!.state })),
    cold: body.cold.map((r, i) => ({ ...r, state: check.cold[i]!.state })),
    protection: check.protection,
  };
}
