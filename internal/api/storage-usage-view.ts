/**
 * The storage-efficiency part of GET /storage_usage: its query parameter and response schema. The figures are
 * computed by internal/efficiency (one pass over the manifests the route already scans).
 */
import { StrataError } from '../core/errors.js';
import { EFFICIENCY_LIMITS } from '../efficiency/storage-efficiency.js';
import { checked, z } from './route-definition.js';

export const PrefixDepthQuery = checked((raw): number => {
  if (raw === undefined || raw === '') return EFFICIENCY_LIMITS.prefixDepthDefault;
  const depth = Number(raw);
  if (!/^\d+$/.test(raw) || depth < 1 || depth > EFFICIENCY_LIMITS.prefixDepthMax) {
    throw new StrataError('INVALID_REQUEST', `prefix_depth must be a whole number from 1 to ${EFFICIENCY_LIMITS.prefixDepthMax}, got "${raw}"`);
  }
  return depth;
}).openapi({
  type: 'integer',
  minimum: 1,
  maximum: EFFICIENCY_LIMITS.prefixDepthMax,
  default: EFFICIENCY_LIMITS.prefixDepthDefault,
  description: 'key segments (each ending at `/` or `:`) that name a prefix in `efficiency.per_prefix`',
});

const int = z.number().int();
const GroupSchema = z.strictObject({
  documents: int,
  logical_bytes: int,
  physical_bytes: int.openapi({ description: 'payload bytes of the referenced blobs (the sum of /stat bytes.physical)' }),
  amplification: z.number(),
  saved_vs_replication_bytes: int.openapi({ description: '3 x logical - physical' }),
  overhead_bytes: int.openapi({ description: 'needle heads, index entries and manifests of these documents' }),
});
const ColdSchema = z.strictObject({ documents: int, text_bytes: int, stored_bytes: int });

export const EfficiencySchema = z
  .strictObject({
    prefix_depth: int,
    logical_bytes: int,
    physical_bytes: int,
    replication_3x_bytes: int,
    saved_vs_replication_bytes: int,
    overhead: z.strictObject({ needle_bytes: int, index_bytes: int, manifest_bytes: int, per_document_bytes: int }),
    cold: z.strictObject({
      compressed: ColdSchema.extend({ saved_bytes: int }),
      incompressible: ColdSchema,
      uncompressed: ColdSchema,
      with_replicas: ColdSchema,
      shards: ColdSchema,
    }),
    per_strategy: z.record(z.string(), GroupSchema),
    per_prefix: z.record(z.string(), GroupSchema),
  })
  .openapi('StorageEfficiency');
