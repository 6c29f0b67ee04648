import { defineConfig } from 'vitest/config';

/** `npm run test:peers`: the side-by-side benchmark against SeaweedFS, run short (bench/peers/README.md). */
export default defineConfig({
  test: {
    include: ['test/bench/peers.test.ts'],
    pool: 'forks',
    reporters: ['default'],
  },
});
