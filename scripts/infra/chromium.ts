/**
 * Headless Chromium for the browser tests (test/e2e/console.test.ts): Debian's `chromium` package, installed with
 * apt-get when missing (never a browser download by Playwright). The tests drive it with `playwright-core`.
 */
import { ensureBinary } from './debian-package.js';

export function ensureChromium(): Promise<string> {
  return ensureBinary({
    binary: 'chromium',
    packages: ['chromium'],
    wellKnownPaths: ['/usr/bin/chromium', '/usr/lib/chromium/chromium'],
    manualFix: 'run `apt-get install -y chromium` as root (Debian), or put a Chromium binary named `chromium` on PATH',
  });
}

/**
 * Flags for Chromium inside a container or VM run as root: no sandbox (it needs user namespaces, and refuses to
 * run as root), and /tmp instead of a small /dev/shm.
 */
export const CHROMIUM_ARGS: readonly string[] = ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu'];
