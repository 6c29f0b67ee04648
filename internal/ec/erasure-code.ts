/**
 * Reed-Solomon 4+2 for the cold tier. `encode` splits data into 4 data shards (zero-padded to a common size that
 * is a multiple of 8) and computes 2 parity shards; `reconstruct` returns the original bytes from any 4 of the 6.
 */
export interface ErasureCode {
  readonly dataShards: number;
  readonly parityShards: number;
  /** Shard size for `dataBytes` of data. */
  shardBytesFor(dataBytes: number): number;
  /** Six shards, each `shardBytesFor(data.length)` bytes. */
  encode(data: Buffer): Promise<Buffer[]>;
  /**
   * The original `dataBytes` bytes from `shards` (index = shard number, null = missing). At least
   * `dataShards` must be present and of the right size, otherwise throws INSUFFICIENT_NODES.
   */
  reconstruct(shards: (Buffer | null)[], dataBytes: number): Promise<Buffer>;
  /** All six shards from any four (for repair). */
  rebuildShards(shards: (Buffer | null)[], dataBytes: number): Promise<Buffer[]>;
}
