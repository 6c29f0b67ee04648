/**
 * Keeps the suite free of timing-dependent tests. A test that sleeps a fixed time hoping something has happened,
 * or asserts an upper bound on real elapsed time, passes on an idle machine and fails on a busy one. Tests wait on
 * conditions instead (test/helpers/wait.ts: `waitUntil`, `waitForValue`, with generous deadlines), move injected
 * clocks (test/helpers/manual-clock.ts, test/helpers/advancing-clock.ts), or show a behaviour that a slow machine
 * cannot fake (a deadline far beyond the test's own timeout, a commit that marks the end of a feed).
 *
 * This scans every .ts file under test/ for the patterns and fails on any not in the allowlist below, which names
 * each file that legitimately needs one and why. Keep it minimal: a new entry needs a reason a reviewer accepts.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const TEST_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const THIS_FILE = path.relative(TEST_ROOT, fileURLToPath(import.meta.url));

const RULES: ReadonlyArray<{ name: string; pattern: RegExp }> = [
  // A global timer: a fixed wait (`new Promise((r) => setTimeout(r, 50))`), a hand-written sleep, or a step of a
  // test scheduled by time. Method calls (`socket.setTimeout(...)`, an idle timeout) are not matched.
  { name: 'timer', pattern: /(?<![.\w])(setTimeout|setInterval)\s*\(/ },
  // A sleep helper awaited as a wait, bare or on the real clock (an injected clock's `clock.sleep` is fine).
  { name: 'sleep', pattern: /\bawait\s+(sleep|systemClock\.sleep)\s*\(/ },
  // An assertion on real elapsed time: `expect(Date.now() - started).toBeLessThan(...)` and the like.
  { name: 'elapsed time', pattern: /expect\(\s*(Date\.now\(\)|performance\.now\(\)|Number\(process\.hrtime)/ },
  // The one sanctioned real-time wait (test/helpers/wait.ts): each use is listed below with its reason.
  { name: 'real-time wait', pattern: /\boutlastRealTimer\(/ },
];
// A further rule, over whole calls rather than lines: 'default condition deadline' (see conditionWaitsWithoutTimeout).

/**
 * Files allowed a match, with the rules they may match and why. Each entry is a component that measures real time
 * with no injected clock, or a fault injected on purpose; the wait or bound is named at its use.
 */
const ALLOWLIST: Record<string, { rules: string[]; why: string }> = {
  'helpers/wait.ts': {
    rules: ['timer', 'real-time wait'],
    why: 'outlastRealTimer: the one helper for letting real time pass past a timer inside a component that takes no clock',
  },
  'api/watch.test.ts': {
    rules: ['real-time wait'],
    why: "the gateway's watch stall timer is a real timer (internal/api/watch-routes.ts takes no clock); the test must outlast it",
  },
  'client/strata-client.test.ts': {
    rules: ['real-time wait'],
    why: "the client's change-feed idle deadline is a real timer (StrataClient takes no clock for it); a caller holding an event must outlast it",
  },
  'metadata/etcd-metadata-store.test.ts': {
    rules: ['real-time wait', 'elapsed time'],
    why: "etcd expires leases by its own clock, so the contract's advance() really waits; gRPC deadlines are wall-clock time, and the bound is the store's default deadline (5 s), showing that the configured 1 s one acted, with 4 s of slack",
  },
  'metadata/cluster-format-etcd.test.ts': {
    rules: ['real-time wait'],
    why: "process registry entries live on etcd leases, which etcd expires by its own clock, so the contract's advance() really waits",
  },
  'cluster/node-registry-etcd.test.ts': {
    rules: ['real-time wait'],
    why: "heartbeats must keep a node alive past its etcd lease, which etcd expires by its own clock",
  },
  'cluster/etcd-nospace.test.ts': {
    rules: ['real-time wait'],
    why: "the storage nodes' registry lease must outlive etcd's own lease timer while etcd refuses puts",
  },
  'cluster/healer-failover.test.ts': {
    rules: ['real-time wait'],
    why: "a restarted follower healer's rounds are not observable from outside (healers serve no HTTP in the local cluster); the wait can only make the check pass vacuously, never fail a correct healer",
  },
  'fuzz/hostile-requests.test.ts': {
    rules: ['timer'],
    why: 'a slow client on purpose: it drips its request 8 bytes at a time (a slow-loris) to prove the gateway copes',
  },
  'tiering/tiering-cluster.test.ts': {
    rules: ['timer'],
    why: 'keeps an injected ManualClock moving while writes race re-tiering, so their backoff sleeps on it can end; no assertion depends on the rate',
  },
  'blobstore/volume-harness/reclaim-child.ts': {
    rules: ['timer'],
    why: 'a child process that is only ever SIGKILLed: it keeps polling its own store in real time until the kill lands',
  },
  'contracts/write-ahead-log.contract.ts': {
    rules: ['elapsed time'],
    why: 'a lower bound only (a poll with nothing to read waits about waitMs): a busy machine can only lengthen it',
  },
};

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await testFiles(full)));
    else if (entry.name.endsWith('.ts')) out.push(path.relative(TEST_ROOT, full));
  }
  return out.sort();
}

const CONDITION_WAIT = /\b(vi\.waitFor|expect\.poll)\(/g;

/**
 * The calls of vi.waitFor / expect.poll in `text` that pass no options (a second argument): their default deadline
 * (1 s) is too short on a busy machine. A call's extent is found by matching brackets, which is enough for test code.
 */
function conditionWaitsWithoutTimeout(text: string): number[] {
  const offsets: number[] = [];
  for (const match of text.matchAll(CONDITION_WAIT)) {
    let depth = 0;
    let options = false;
    for (let i = match.index + match[0].length - 1; i < text.length; i++) {
      const c = text[i];
      if (c === '(' || c === '{' || c === '[') depth++;
      else if ((c === ')' || c === '}' || c === ']') && --depth === 0) break;
      else if (c === ',' && depth === 1 && text.slice(i + 1).trimStart()[0] !== ')') options = true;
    }
    if (!options) offsets.push(match.index);
  }
  return offsets;
}

/** Every `file:line: rule: text` that breaks a rule, ignoring comment lines. */
async function findings(): Promise<Array<{ file: string; rule: string; where: string }>> {
  const out: Array<{ file: string; rule: string; where: string }> = [];
  for (const file of await testFiles(TEST_ROOT)) {
    if (file === THIS_FILE) continue;
    const text = await readFile(path.join(TEST_ROOT, file), 'utf8');
    const lines = text.split('\n');
    const isComment = (line: string): boolean => /^\s*(\/\/|\*|\/\*)/.test(line);
    lines.forEach((line, i) => {
      if (isComment(line)) return;
      for (const { name, pattern } of RULES) {
        if (pattern.test(line)) out.push({ file, rule: name, where: `test/${file}:${i + 1}: ${name}: ${line.trim()}` });
      }
    });
    for (const offset of conditionWaitsWithoutTimeout(text)) {
      const lineIndex = text.slice(0, offset).split('\n').length - 1;
      if (isComment(lines[lineIndex]!)) continue;
      const rule = 'default condition deadline';
      out.push({ file, rule, where: `test/${file}:${lineIndex + 1}: ${rule}: ${lines[lineIndex]!.trim()}` });
    }
  }
  return out;
}

describe('the tests do not depend on how busy the machine is', () => {
  it('no fixed sleeps, timer-driven steps, 1 s condition deadlines or real elapsed-time assertions outside the allowlist', async () => {
    const offending = (await findings()).filter((f) => !(ALLOWLIST[f.file]?.rules.includes(f.rule) ?? false));
    expect(
      offending.map((f) => f.where),
      'wait on a condition (test/helpers/wait.ts) or move an injected clock instead; see this file',
    ).toEqual([]);
  });

  it('every allowlist entry is still needed, so the list stays minimal', async () => {
    const found = await findings();
    const files = new Set(await testFiles(TEST_ROOT));
    // An entry for a file that is gone is harmless (and lets the list run ahead of a file still being written).
    const unused = Object.entries(ALLOWLIST)
      .filter(([file]) => files.has(file))
      .flatMap(([file, { rules }]) =>
        rules.filter((rule) => !found.some((f) => f.file === file && f.rule === rule)).map((rule) => `${file} (${rule})`),
      );
    expect(unused).toEqual([]);
  });

  it('recognises each pattern it forbids', () => {
    const flagged = (line: string): string[] => RULES.filter(({ pattern }) => pattern.test(line)).map(({ name }) => name);
    expect(flagged('await new Promise((r) => setTimeout(r, 50));')).toEqual(['timer']);
    expect(flagged('const t = setInterval(() => tick(), 20);')).toEqual(['timer']);
    expect(flagged('await sleep(GRACE_MS + 20);')).toEqual(['sleep']);
    expect(flagged('await systemClock.sleep(100);')).toEqual(['sleep']);
    expect(flagged('expect(Date.now() - started).toBeLessThan(1000);')).toEqual(['elapsed time']);
    expect(flagged('expect(performance.now() - t0).toBeLessThan(500);')).toEqual(['elapsed time']);
    expect(flagged('await outlastRealTimer(STALL_MS * 3);')).toEqual(['real-time wait']);
    // Not waits: an idle timeout on a socket, a sleep on an injected clock, moving a clock.
    expect(flagged('socket.setTimeout(5000, () => socket.destroy());')).toEqual([]);
    expect(flagged('await clock.sleep(10);')).toEqual([]);
    expect(flagged('clock.advance(GRACE_MS + 1);')).toEqual([]);
    // Condition waits must say how long they wait.
    expect(conditionWaitsWithoutTimeout('await vi.waitFor(() => expect(f()).toBe(1));')).toHaveLength(1);
    expect(conditionWaitsWithoutTimeout('await expect.poll(() => count()).toBe(6);')).toHaveLength(1);
    expect(conditionWaitsWithoutTimeout('await vi.waitFor(\n  () => check(g(1)),\n  { timeout: T, interval: 10 },\n);')).toEqual([]);
    expect(conditionWaitsWithoutTimeout('await expect.poll(() => count(), { timeout: T }).toBe(6);')).toEqual([]);
    expect(conditionWaitsWithoutTimeout('await vi.waitFor(async () => {\n  expect(await f(1, 2)).toBe(true);\n}, WAIT);')).toEqual([]);
    expect(conditionWaitsWithoutTimeout('await vi.waitFor(() => g(a, b),\n);')).toHaveLength(1);
  });
});
