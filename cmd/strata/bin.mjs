#!/usr/bin/env node
// The `strata` bin: runs the compiled CLI (dist/cmd/strata/main.js). In a checkout whose sources changed since the
// last build it builds first; an installed package runs the dist/ it was shipped with.
import { existsSync } from 'node:fs';

const sources = new URL('../../scripts/build.mjs', import.meta.url);
if (existsSync(sources)) {
  const { BuildError, ensureBuilt } = await import(sources.href);
  try {
    ensureBuilt({ ifStale: true, ifPossible: true });
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    process.stderr.write(`strata: ${error.message}\n`);
    process.exit(1);
  }
}
await import('../../dist/cmd/strata/main.js');
