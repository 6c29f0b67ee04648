/** STRATA_COLD_COMPRESSION, STRATA_COMPRESSION_MIN_SAVING and STRATA_INLINE_COLD_BYTES_MAX: defaults and refusals. */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../internal/config/config.js';

describe('cold storage configuration', () => {
  it('defaults to brotli, a 30 % minimum saving and copies or shards by cost', () => {
    const c = loadConfig({});
    expect([c.coldCompression, c.compressionMinSaving, c.inlineColdBytesMax]).toEqual(['brotli', 0.3, null]);
  });

  it('takes a share or a percentage, a codec, and a size', () => {
    expect(loadConfig({ STRATA_COMPRESSION_MIN_SAVING: '0.1' }).compressionMinSaving).toBe(0.1);
    expect(loadConfig({ STRATA_COMPRESSION_MIN_SAVING: '25%' }).compressionMinSaving).toBe(0.25);
    expect(loadConfig({ STRATA_COLD_COMPRESSION: 'off' }).coldCompression).toBe('off');
    expect(loadConfig({ STRATA_INLINE_COLD_BYTES_MAX: '0' }).inlineColdBytesMax).toBe(0);
  });

  it('refuses bad values with a message naming the variable', () => {
    const bad: Record<string, string>[] = [
      { STRATA_COLD_COMPRESSION: 'zstd' },
      { STRATA_COMPRESSION_MIN_SAVING: '1' },
      { STRATA_COMPRESSION_MIN_SAVING: '-0.1' },
      { STRATA_COMPRESSION_MIN_SAVING: 'half' },
      { STRATA_COMPRESSION_MIN_SAVING: '120%' },
      { STRATA_INLINE_COLD_BYTES_MAX: '1048577' },
      { STRATA_INLINE_COLD_BYTES_MAX: '1e3' },
    ];
    for (const env of bad) {
      const name = Object.keys(env)[0]!;
      expect(() => loadConfig(env), name).toThrow(ConfigError);
      expect(() => loadConfig(env), name).toThrow(name);
    }
  });
});
