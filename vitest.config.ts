import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The side-by-side run against SeaweedFS builds SeaweedFS from source the first time (half an hour on 2 cores):
    // it is `npm run test:peers`, not part of `npm test`. Its pure parts (test/bench/peers-result.test.ts) are.
    exclude: ['**/node_modules/**', 'test/bench/peers.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
