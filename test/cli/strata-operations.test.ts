/**
 * The CLI's operator commands against an in-process cluster: health, watch, policy, admin nodes, prefix deletes
 * with their confirmation, time to live on put and patch, and the progress line of long operations. They run
 * through runCli in this process (the same code the bin runs, minus a process start per call), with the terminal's
 * question and the clock injected.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../internal/cli/strata-cli.js';
import { COMMANDS, type CliIo } from '../../internal/cli/commands.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startTestCluster();
});

afterAll(async () => {
  await cluster?.destroy();
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  progress: string[];
  questions: string[];
}

interface Terminal {
  /** The answer to a confirmation; absent: stdin is not a terminal. */
  answer?: string;
  /** Each reading of the clock this much later (default 0: progress never shows). */
  tickMs?: number;
  /** Stands in for a terminal on stderr. */
  progress?: boolean;
  url?: string;
}

async function strata(args: string[], terminal: Terminal = {}): Promise<Run> {
  const run: Run = { code: -1, stdout: '', stderr: '', progress: [], questions: [] };
  let nowMs = 0;
  const io: CliIo = {
    stdout: (t) => void (run.stdout += t),
    stderr: (t) => void (run.stderr += t),
    readStdin: async () => '{"a":1}',
    readFile: async () => '',
    now: () => (nowMs += terminal.tickMs ?? 0),
    ...(terminal.progress ? { progress: (line: string) => void run.progress.push(line) } : {}),
    ...(terminal.answer !== undefined
      ? {
          confirm: async (question: string) => {
            run.questions.push(question);
            return terminal.answer === 'y';
          },
        }
      : {}),
  };
  run.code = await runCli(args, { STRATA_URL: terminal.url ?? cluster.url }, io);
  return run;
}

async function seed(key: string, doc: unknown = { a: 1 }): Promise<string> {
  const res = await cluster.write(key, doc);
  expect(res.status).toBe(200);
  return ((await res.json()) as { version: string }).version;
}

async function exists(key: string): Promise<boolean> {
  const res = await cluster.read(key);
  await res.body?.cancel();
  return res.status === 200;
}

describe('strata health', () => {
  it('says the gateway is ready and exits 0, with JSON for scripts', async () => {
    const human = await strata(['health']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/storage nodes\s+6 of 6 healthy/);
    expect(human.stdout).toMatch(/ready\s+yes/);
    const json = await strata(['health', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ health: { status: 'healthy', nodes_total: 6 }, ready: { ready: true, problems: [] } });
  });

  it('exits 4 with the reasons when the gateway answers but is not ready', async () => {
    const server: Server = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/health/ready') {
        res.statusCode = 503;
        res.end(JSON.stringify({ status: 'not_ready', problems: ['only 3 of 6 storage nodes are up'] }));
      } else res.end(JSON.stringify({ status: 'healthy', service: 'api_gateway', nodes_healthy: 3, nodes_total: 6, metadata: 'ok', wal: 'ok' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const run = await strata(['health'], { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
      expect(run.code).toBe(4);
      expect(run.stdout).toContain('no: only 3 of 6 storage nodes are up');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('strata put and patch --ttl', () => {
  it('gives a document a time to live, and refuses one that is not a number before sending anything', async () => {
    const put = await strata(['put', 'ttl/a', '-', '--ttl', '3600000', '--json']);
    expect(put.code, put.stderr).toBe(0);
    const stat = await strata(['stat', 'ttl/a', '--json']);
    const expires = Date.parse((JSON.parse(stat.stdout) as { expires_at: string }).expires_at);
    expect(expires).toBeGreaterThan(Date.now() + 3_000_000);
    const patched = await strata(['patch', 'ttl/a', '-', '--ttl', '7200000']);
    expect(patched.code, patched.stderr).toBe(0);
    const later = Date.parse((JSON.parse((await strata(['stat', 'ttl/a', '--json'])).stdout) as { expires_at: string }).expires_at);
    expect(later).toBeGreaterThan(expires);
    expect((await strata(['put', 'ttl/b', '-', '--ttl', 'an hour'])).code).toBe(2);
    expect(await exists('ttl/b')).toBe(false);
    const zero = await strata(['put', 'ttl/b', '-', '--ttl', '0']);
    expect(zero.code).toBe(1);
    expect(zero.stderr).toContain('INVALID_TTL');
  });
});

describe('strata rm --prefix', () => {
  const keys = Array.from({ length: 12 }, (_, i) => `rmp/${String(i).padStart(2, '0')}`);

  beforeAll(async () => {
    for (const key of keys) await seed(key);
    await seed('rmq/keep');
    await seed('rmp');
  });

  it('refuses without --yes when nobody can be asked, and deletes nothing', async () => {
    const run = await strata(['rm', '--prefix', 'rmp/']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('12 keys');
    expect(run.stderr).toContain('--yes');
    for (const key of keys) expect(await exists(key)).toBe(true);
  });

  it('asks with the count and a sample, and deletes nothing when the answer is no', async () => {
    const run = await strata(['rm', '--prefix', 'rmp/'], { answer: 'n' });
    expect(run.code).toBe(0);
    expect(run.questions).toHaveLength(1);
    expect(run.questions[0]).toContain('12 keys');
    expect(run.questions[0]).toContain('rmp/00');
    expect(run.questions[0]).toContain('and 7 more');
    expect(run.stderr).toContain('nothing deleted');
    for (const key of keys) expect(await exists(key)).toBe(true);
  });

  it('deletes every key under the prefix and nothing else once confirmed, drawing a bar on a terminal', async () => {
    const run = await strata(['rm', '--prefix', 'rmp/'], { answer: 'y', progress: true, tickMs: 300 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/deleted\s+12 keys under "rmp\/"/);
    for (const key of keys) expect(await exists(key)).toBe(false);
    expect(await exists('rmq/keep')).toBe(true);
    expect(await exists('rmp')).toBe(true);
    expect(run.progress.some((line) => /^deleting \[#*\.*\] \d+% \d+\/12/.test(line))).toBe(true);
    expect(run.progress.at(-1)).toBe('');
  });

  it('runs without a question with --yes and reports JSON; an empty prefix deletes nothing', async () => {
    for (let i = 0; i < 3; i++) await seed(`rmy/${i}`);
    const run = await strata(['rm', '--prefix', 'rmy/', '--yes', '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ prefix: 'rmy/', deleted: 3, already_gone: 0, failed: 0, failures: [] });
    const none = await strata(['rm', '--prefix', 'rmy/', '--json'], { answer: 'y' });
    expect(JSON.parse(none.stdout)).toMatchObject({ deleted: 0 });
    expect(none.questions).toEqual([]);
  });

  it('refuses a key and a prefix together, and --yes without a prefix', async () => {
    expect((await strata(['rm', 'k', '--prefix', 'p/'])).code).toBe(2);
    expect((await strata(['rm', 'k', '--yes'])).code).toBe(2);
    expect((await strata(['rm'])).code).toBe(2);
  });
});

describe('strata watch', () => {
  it('prints the changes under a prefix after a version, as lines or JSON lines, and stops after --count', async () => {
    const first = await seed('w/a');
    await seed('elsewhere/x');
    const second = await seed('w/b');
    const gone = await cluster.fetch('/delete/w%2Fa', { method: 'DELETE' });
    const deleted = ((await gone.json()) as { version: string }).version;

    const human = await strata(['watch', 'w/', '--since', first, '--count', '2']);
    expect(human.code, human.stderr).toBe(0);
    expect(human.stdout).toBe(`${second}  put     w/b\n${deleted}  delete  w/a\n`);
    expect(human.stderr).toContain(`after version ${first}`);

    const json = await strata(['watch', 'w/', '--since', first, '--count', '1', '--json']);
    expect(json.stdout.trim().split('\n').map((l) => JSON.parse(l))).toEqual([{ ready: first }, { version: second, kind: 'put', key: 'w/b' }]);
  });

  it('refuses a bad --since or --count before connecting, and reports the API code for a version ahead', async () => {
    expect((await strata(['watch', '--since', 'yesterday'])).code).toBe(2);
    expect((await strata(['watch', '--count', '0'])).code).toBe(2);
    const ahead = await strata(['watch', '--since', '999999999999']);
    expect(ahead.code).toBe(1);
    expect(ahead.stderr).toContain('INVALID_REQUEST');
  });
});

describe('strata policy', () => {
  it('sets, shows and lists a prefix\'s pinned fields and lifecycle', async () => {
    const set = await strata(['policy', 'set', 'pol:', '--pin', 'like_count,/stats/views', '--idle-to-ec', '86400000']);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/hot fields\s+.*like_count/);
    expect(set.stdout).toContain('like_count (api)');
    expect(set.stdout).toContain('idle documents move to ec after 86400000 ms');

    const got = JSON.parse((await strata(['policy', 'get', 'pol:', '--json'])).stdout) as { pins: { api: string[] }; lifecycle: { idle_to_ec_after_ms: number } };
    expect(got.pins.api).toEqual(['like_count', '/stats/views']);
    expect(got.lifecycle.idle_to_ec_after_ms).toBe(86_400_000);

    const list = await strata(['policy', 'list']);
    expect(list.stdout).toMatch(/^pol:\s+like_count/m);
    expect(JSON.parse((await strata(['policy', 'list', '--json'])).stdout).prefixes.map((p: { prefix: string }) => p.prefix)).toContain('pol:');

    const cleared = await strata(['policy', 'set', 'pol:', '--no-pins', '--idle-to-ec', 'default', '--json']);
    expect(JSON.parse(cleared.stdout)).toMatchObject({ pins: { api: [] } });
  });

  it('refuses what it cannot send, and passes the API code on for what the gateway refuses', async () => {
    for (const args of [
      ['policy'],
      ['policy', 'frob'],
      ['policy', 'get'],
      ['policy', 'set', 'p:'],
      ['policy', 'get', 'p:', '--pin', 'a'],
      ['policy', 'set', 'p:', '--pin', 'a', '--no-pins'],
      ['policy', 'set', 'p:', '--idle-to-ec', 'soon'],
      ['policy', 'set', 'p:', '--override-explicit', 'maybe'],
      ['policy', 'list', 'p:'],
    ]) {
      const run = await strata(args);
      expect(run.code, args.join(' ')).toBe(2);
      expect(run.stdout).toBe('');
    }
    const bad = await strata(['policy', 'set', 'bad\u0001prefix', '--pin', 'a']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/INVALID_PREFIX/);
  });
});

describe('strata admin nodes', () => {
  it('lists the registry, drains, activates and removes a node, and exits 1 with the code when refused', async () => {
    await cluster.metadata.registerNode({ id: 'node-7', address: 'http://127.0.0.1:9' }, 600_000);
    const nodes = await strata(['admin', 'nodes']);
    expect(nodes.stdout).toMatch(/^node-7\s+active\s+yes/m);
    expect(JSON.parse((await strata(['admin', 'nodes', '--json'])).stdout).nodes[0]).toMatchObject({ id: 'node-7', state: 'active' });

    const active = await strata(['admin', 'remove', 'node-7']);
    expect(active.code).toBe(1);
    expect(active.stderr).toContain('NODE_NOT_DRAINED');
    const drain = await strata(['admin', 'drain', 'node-7']);
    expect(drain.code, drain.stderr).toBe(0);
    expect(drain.stdout).toContain('node-7: draining');
    expect(JSON.parse((await strata(['admin', 'activate', 'node-7', '--json'])).stdout)).toMatchObject({ node: { id: 'node-7', state: 'active' } });
    await strata(['admin', 'drain', 'node-7']);
    const removed = await strata(['admin', 'remove', 'node-7', '--json']);
    expect(JSON.parse(removed.stdout)).toEqual({ removed: 'node-7' });
    const missing = await strata(['admin', 'drain', 'node-99']);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('NODE_NOT_FOUND');
    expect((await strata(['admin', 'nodes'])).stdout).toContain('no storage node is registered');
  });

  it('refuses a node command without a node, and --bump outside format', async () => {
    for (const args of [['admin', 'drain'], ['admin', 'nodes', 'x'], ['admin', 'nodes', '--bump', '2'], ['admin', 'reboot']]) {
      expect((await strata(args)).code, args.join(' ')).toBe(2);
    }
  });
});

describe('strata --json and --help everywhere', () => {
  it('every command documents --json and has help', async () => {
    for (const command of COMMANDS) {
      const help = await strata([command.name, '--help']);
      expect(help.code, command.name).toBe(0);
      expect(help.stdout, command.name).toContain(`Usage: strata ${command.name}`);
      expect(command.details, command.name).toMatch(/--json/);
    }
  });
});

describe('a command waiting on a slow answer', () => {
  it('says on a terminal what it waits for once a second has passed, and clears the line before its report', async () => {
    let release: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (release = resolve));
    const server: Server = createServer((_req, res) => {
      void answered.then(() => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ nodes: [], healer_leader: null, metadata_backend: 'sqlite', wal_backend: 'sqlite', repair_backlog: 0 }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const progress: string[] = [];
      let nowMs = 0;
      let stdout = '';
      const done = runCli(['cluster'], { STRATA_URL: url }, {
        stdout: (t) => void (stdout += t),
        stderr: () => undefined,
        readStdin: async () => '',
        readFile: async () => '',
        progress: (line) => void progress.push(line),
        now: () => (nowMs += 400),
      });
      await vi.waitFor(() => expect(progress.some((l) => /^strata cluster: waiting for the gateway, \d+\.\d s$/.test(l))).toBe(true), { timeout: 30_000 });
      release();
      expect(await done).toBe(0);
      expect(progress.at(-1)).toBe('');
      expect(stdout).toContain('healer leader');
    } finally {
      release();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('draws nothing when stderr is not a terminal or the answer comes within a second', async () => {
    const quick = await strata(['cluster'], { progress: true });
    expect(quick.code).toBe(0);
    expect(quick.progress).toEqual([]);
  });
});
