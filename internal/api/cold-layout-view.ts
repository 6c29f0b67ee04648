/** The `cold_layout` member of GET /stat: how the cold part is stored (internal/coldpart/README.md). */
import { coldCodecOf, coldPlacementOf, coldTextBytesOf } from '../coldpart/cold-layout.js';
import type { Manifest } from '../manifest/manifest.js';
import { z } from './route-definition.js';

export const ColdLayoutSchema = z
  .strictObject({
    layout: z.enum(['shards', 'with_replicas']).openapi({ description: 'six Reed-Solomon shards, or three whole copies beside the hot replicas' }),
    codec: z.enum(['identity', 'brotli', 'deflate']).openapi({ description: 'compression of the stored bytes; identity = stored as written' }),
    compression_tried: z.boolean().openapi({ description: 'compression ran and was kept only if it saved enough' }),
    text_bytes: z.number().int().openapi({ description: 'canonical cold text' }),
    stored_bytes: z.number().int().openapi({ description: 'the stored form before sharding or copying' }),
    blob_bytes: z.number().int().openapi({ description: 'bytes of each shard or copy' }),
  })
  .nullable()
  .openapi('ColdLayout');

export function coldLayoutView(m: Manifest) {
  const layout = m.cold_layout;
  if (!layout || m.cold.length === 0) return null;
  return {
    layout: coldPlacementOf(layout),
    codec: coldCodecOf(layout),
    compression_tried: layout.codec !== undefined,
    text_bytes: coldTextBytesOf(layout),
    stored_bytes: layout.dataBytes,
    blob_bytes: layout.shardBytes,
  };
}
