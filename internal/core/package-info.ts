/**
 * The Strata package this code belongs to: its root directory and version. Found by walking up from this file to
 * the first `package.json` named `strata`, so the answer is the same whether the code runs from its TypeScript
 * sources (internal/core) or compiled (dist/internal/core), and from an install under node_modules.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_NAME = 'strata';

export interface PackageInfo {
  root: string;
  version: string;
}

let cached: PackageInfo | null = null;

export function packageInfo(): PackageInfo {
  if (cached !== null) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const found = readPackageJson(path.join(dir, 'package.json'));
    if (found?.name === PACKAGE_NAME && typeof found.version === 'string') {
      cached = { root: dir, version: found.version };
      return cached;
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json named "${PACKAGE_NAME}" above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

function readPackageJson(file: string): { name?: unknown; version?: unknown } | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
  } catch {
    // Missing or not JSON: not the package's root, keep walking up.
    return null;
  }
}
