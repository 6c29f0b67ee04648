/**
 * GET and POST /admin/format-version, and `strata admin format`, against a real gateway over HTTP (an in-process
 * all-in-one): the version it reports, the bump's 200s and 409s, and a 4xx with a stable code for every malformed
 * body. The all-in-one has no cluster identity record of its own; the tests that bump give its store one, as a
 * data directory shared with separate processes would have.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../internal/cli/strata-cli.js';
import { DATA_FORMAT_MAX } from '../../internal/core/data-format.js';
import { ALL_IN_ONE_DATA_FORMAT } from '../../internal/wiring/all-in-one.js';
import { startTestCluster, type TestCluster } from '../helpers/cluster.js';

let cluster: TestCluster;

beforeAll(async () => {
  cluster = await startTestCluster();
});
afterAll(async () => {
  await cluster?.destroy();
});

const TTL_MS = 60_000;

function post(body: string, contentType = 'application/json'): Promise<Response> {
  return cluster.fetch('/admin/format-version', { method: 'POST', headers: { 'content-type': contentType }, body });
}

async function errorCode(res: Response): Promise<[number, string, string]> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return [res.status, body.error.code, body.error.message];
}

async function strata(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { STRATA_URL: cluster.url }, {
    stdout: (t) => (stdout += t),
    stderr: (t) => (stderr += t),
    readStdin: async () => '',
    readFile: async () => '',
  });
  return { code, stdout, stderr };
}

describe('/admin/format-version', () => {
  it('reports the format the all-in-one writes, without a cluster identity record', async () => {
    const res = await cluster.fetch('/admin/format-version');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ data_format: ALL_IN_ONE_DATA_FORMAT, format_max: DATA_FORMAT_MAX, recorded: false, processes: [], blockers: [] });
  });

  it('answers 400 INVALID_REQUEST for a body that is not {"to": <known format>}, and 415/413 for the wrong type or size', async () => {
    for (const body of ['not json', '[]', '{}', '{"to":"2"}', '{"to":2.5}', '{"to":null}', '{"to":2,"extra":1}', `{"to":${DATA_FORMAT_MAX + 1}}`, '{"to":0}']) {
      const [status, code, message] = await errorCode(await post(body));
      expect([body, status, code]).toEqual([body, 400, 'INVALID_REQUEST']);
      expect(message.length).toBeGreaterThan(10);
    }
    expect((await errorCode(await post('{"to":2}', 'text/plain'))).slice(0, 2)).toEqual([415, 'UNSUPPORTED_MEDIA_TYPE']);
    expect((await errorCode(await post(`{"to":2,"pad":"${'x'.repeat(2000)}"}`))).slice(0, 2)).toEqual([413, 'DOCUMENT_TOO_LARGE']);
  });

  it('is idempotent at the current format, refuses to go down, and blocks a bump while a process reads less, naming it', async () => {
    // Already there: success, nothing changed.
    let res = await post(`{"to":${ALL_IN_ONE_DATA_FORMAT}}`);
    expect([res.status, await res.json()]).toEqual([200, { data_format: ALL_IN_ONE_DATA_FORMAT, changed: false }]);
    // A record at format 1 (separate processes shared this store) and an old gateway announced in it.
    await cluster.metadata.createClusterIdentity({ clusterId: 'c-route', formatVersion: 1, createdAtMs: 1, nodes: [], acceptedEmpty: [] });
    await cluster.metadata.registerProcess({ id: 'gateway-old', role: 'gateway', formatMax: 1 }, TTL_MS);
    const view = (await (await cluster.fetch('/admin/format-version')).json()) as { data_format: number; recorded: boolean; blockers: { id: string }[] };
    expect(view).toMatchObject({ data_format: 1, recorded: true, blockers: [{ id: 'gateway-old' }] });

    const [status, code, message] = await errorCode(await post('{"to":2}'));
    expect([status, code]).toEqual([409, 'FORMAT_BUMP_BLOCKED']);
    expect(message).toContain('gateway-old');
    const cli = await strata(['admin', 'format', '--bump', '2']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain('FORMAT_BUMP_BLOCKED');

    await cluster.metadata.deregisterProcess('gateway-old');
    const bumped = await strata(['admin', 'format', '--bump', '2']);
    expect([bumped.code, bumped.stdout]).toEqual([0, "the cluster's data format is now 2\n"]);
    res = await post('{"to":2}');
    expect([res.status, await res.json()]).toEqual([200, { data_format: 2, changed: false }]);
    expect(await errorCode(await post('{"to":1}'))).toEqual([409, 'FORMAT_DOWNGRADE_REFUSED', expect.stringContaining('cannot go back to 1')]);
    expect(await cluster.metadata.getClusterIdentity()).toMatchObject({ formatVersion: 2, dataFormat: 2 });
  });

  it('strata admin format shows the version; a bad --bump or subcommand is a usage error', async () => {
    const shown = await strata(['admin', 'format', '--json']);
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ format_max: DATA_FORMAT_MAX });
    expect((await strata(['admin', 'format', '--bump', 'two'])).code).toBe(2);
    expect((await strata(['admin', 'formats'])).code).toBe(2);
    const help = (await strata(['admin', '--help'])).stdout;
    expect(help).toMatch(/^Usage: strata admin .*admin format \[--bump N\]/m);
    expect(help).toContain('format --bump N');
  });
});
