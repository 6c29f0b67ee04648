/**
 * The Node that Strata runs and is tested on (scripts/node-runtime.mjs): a maintained LTS line, the same range as
 * `engines` says, and the suite itself runs on it (npm test puts the newest line in place when the machine's is
 * older).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_LINES } from '../../scripts/node-runtime.mjs';
import { REPO_ROOT } from '../helpers/processes.js';

const packageJson = JSON.parse(readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };

describe('the Node runtime', () => {
  it('supports the LTS lines from the oldest tested one up, as engines says', () => {
    expect(packageJson.engines.node).toBe(`>=${NODE_LINES.oldest.major}`);
    expect(NODE_LINES.oldest.major % 2, 'LTS lines are the even majors').toBe(0);
    expect(NODE_LINES.newest.major % 2).toBe(0);
    expect(NODE_LINES.newest.version.startsWith(`${NODE_LINES.newest.major}.`)).toBe(true);
    expect(NODE_LINES.oldest.version.startsWith(`${NODE_LINES.oldest.major}.`)).toBe(true);
  });

  it('runs this suite on a supported line (npm test installs one when the machine has none)', () => {
    const major = Number(process.versions.node.split('.')[0]);
    expect([NODE_LINES.oldest.major, NODE_LINES.newest.major]).toContain(major);
  });
});
