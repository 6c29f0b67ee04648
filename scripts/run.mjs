// Runs a compiled entry point of dist/ in this process, building dist/ first when a source is newer:
//   node scripts/run.mjs cmd/all-in-one/main [args...]     (what `npm start` runs)
//   node scripts/run.mjs scripts/verify-storage [args...]   (and the other operator tools' npm scripts)
// One process, so that Ctrl-C and `docker stop`'s SIGTERM reach the program directly. An install without the
// compiler (production) runs the dist/ it was shipped with.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { BuildError, ensureBuilt } from './build.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const [target, ...rest] = process.argv.slice(2);
if (target === undefined || target.startsWith('-')) {
  console.error('usage: node scripts/run.mjs <entry point under dist/, without .js> [arguments...]');
  process.exit(2);
}
try {
  ensureBuilt({ ifStale: true, ifPossible: true });
} catch (error) {
  if (!(error instanceof BuildError)) throw error;
  console.error(`strata: cannot run ${target}: ${error.message}`);
  process.exit(1);
}
const file = path.join(ROOT, 'dist', `${target}.js`);
// The entry point sees itself as the program, as it would when run directly (some check argv[1] for that).
process.argv = [process.argv[0], file, ...rest];
await import(pathToFileURL(file).href);
