import { describe, expect, it } from 'vitest';
import { DATA_FORMAT_V1, DATA_FORMAT_V2 } from '../../internal/core/data-format.js';
import { ReedSolomonCode } from '../../internal/ec/reed-solomon.js';
import {
  COLD_STORAGE_DEFAULTS,
  FORMAT_1_WITH_REPLICAS_BYTES_MAX,
  coldCopiesCheaper,
  coldLayoutCosts,
  storeColdText,
} from '../../internal/coldpart/cold-layout.js';

const ec = new ReedSolomonCode();
const incompressible = (n: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => 33 + ((i * 7919 + (i >> 3) * 104729) % 90)));

describe('copies or shards by cost', () => {
  it('keeps the measured 1 KiB threshold for format-1 blobs', () => {
    expect(coldCopiesCheaper(FORMAT_1_WITH_REPLICAS_BYTES_MAX, 14, DATA_FORMAT_V1)).toBe(true);
    expect(coldCopiesCheaper(FORMAT_1_WITH_REPLICAS_BYTES_MAX + 1, 14, DATA_FORMAT_V1)).toBe(false);
  });

  it('picks the cheaper of the two for format-2 blobs: copies for tiny parts, shards from a few hundred bytes', () => {
    for (let bytes = 0; bytes <= 64 * 1024; bytes++) {
      const copies = coldCopiesCheaper(bytes, 14, DATA_FORMAT_V2);
      const cost = coldLayoutCosts(bytes, 14);
      expect(copies, `${bytes} bytes`).toBe(cost.copies <= cost.shards);
      // Near the crossover shards' 8-byte alignment makes the two alternate; far from it one always wins.
      if (bytes <= 64) expect(copies, `${bytes} bytes`).toBe(true);
      if (bytes >= 512) expect(copies, `${bytes} bytes`).toBe(false);
    }
    // A longer key costs three copies more than six quarter-fragments, so copies stop paying earlier.
    expect(coldCopiesCheaper(120, 14, DATA_FORMAT_V2)).toBe(true);
    expect(coldCopiesCheaper(120, 400, DATA_FORMAT_V2)).toBe(false);
  });

  it('stores a cold part by cost unless STRATA_INLINE_COLD_BYTES_MAX says otherwise', async () => {
    const text = incompressible(600);
    const byCost = await storeColdText(ec, text, COLD_STORAGE_DEFAULTS, { keyBytes: 14, format: DATA_FORMAT_V2 });
    expect(byCost.layout.placement).toBeUndefined();
    expect(byCost.payloads).toHaveLength(6);
    const v1 = await storeColdText(ec, text, COLD_STORAGE_DEFAULTS, { keyBytes: 14, format: DATA_FORMAT_V1 });
    expect(v1.layout.placement).toBe('with_replicas');
    const forced = await storeColdText(ec, text, { ...COLD_STORAGE_DEFAULTS, withReplicasBytesMax: 1024 }, { keyBytes: 14, format: DATA_FORMAT_V2 });
    expect(forced.layout.placement).toBe('with_replicas');
    expect(forced.payloads).toHaveLength(3);
  });
});
