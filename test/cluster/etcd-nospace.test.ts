/**
 * etcd's space quota in cluster mode, on a real etcd with a tiny --quota-backend-bytes (scripts/infra/etcd.ts), six
 * storage nodes and a gateway wired as separate processes are (internal/wiring/processes.ts: etcd metadata, the
 * embedded WAL in the gateway's data directory), all in this process:
 *
 * - with the deployments' 5-minute history retention, overwrites fill the quota and etcd raises its NOSPACE alarm:
 *   writes and deletes get 507 DISK_FULL naming etcd's quota and the recovery, never a 503 "retry later"; a refused
 *   write leaves no blob behind; reads keep working (the storage nodes stay registered); /health/ready stays 200
 *   with writable: false and the reason; then the documented recovery (etcdctl compact, defrag, alarm disarm) makes
 *   writes and deletes work again without restarting anything;
 * - with a short retention (2 s), etcd's periodic compaction keeps the same overwrite workload inside the quota
 *   while it writes twice the quota.
 *
 * Manifests are made large (64 hot fields with 500-byte names: about 64 KiB each) so that a few hundred
 * overwrites reach the quota.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../internal/config/config.js';
import { silentLogger } from '../../internal/log/logger.js';
import { runGateway, runStorageNode, type Running } from '../../internal/wiring/processes.js';
import { etcdctl, startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import { outlastRealTimer } from '../helpers/wait.js';
import { request, waitFor, writeDoc, type Answer } from './cluster-support.js';

const TOKEN = 'etcd-nospace-test-token-0123456789';
/** The storage nodes' registry lease; short, so that the test outlasts it while etcd refuses their heartbeats. */
const NODE_TTL_MS = 3_000;
const QUOTA_BYTES = 16 * 1024 * 1024;
const HOT_FIELDS = Array.from({ length: 64 }, (_, i) => `h${String(i).padStart(2, '0')}${'x'.repeat(497)}`);
/** Documents overwritten in turn. */
const KEYS = Array.from({ length: 5 }, (_, i) => `doc/${i}`);
/** Far more overwrites than 16 MiB of ~64 KiB manifests holds, so the fill always reaches the refusal. */
const FILL_WRITES_MAX = 2_000;
/** Waits for conditions that depend on etcd's and the gateway's timers (alarm checks every 2 s, compaction). */
const CONDITION_TIMEOUT_MS = 60_000;

interface Deployment {
  etcd: RunningEtcd;
  admin: Etcd3;
  url: string;
  nodes: string[];
  stop(): Promise<void>;
}

let deployment: Deployment | null = null;
afterEach(async () => {
  await deployment?.stop();
  deployment = null;
});

async function deploy(etcdOptions: { autoCompactionRetention?: string }): Promise<Deployment> {
  const etcd = await startEtcd({ quotaBackendBytes: QUOTA_BYTES, ...etcdOptions });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'strata-etcd-nospace-'));
  const running: Running[] = [];
  const admin = new Etcd3({ hosts: [etcd.endpoints] });
  const stop = async (): Promise<void> => {
    for (const r of running.reverse()) await r.stop();
    admin.close();
    await etcd.stop();
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const config = (extra: Record<string, string>) =>
      loadConfig({
        STRATA_DATA_DIR: dir,
        STRATA_HOST: '127.0.0.1',
        STRATA_PORT: '0',
        STRATA_CLUSTER_TOKEN: TOKEN,
        STRATA_ETCD_ENDPOINTS: etcd.endpoints,
        STRATA_HOT_FIELDS: HOT_FIELDS.join(','),
        STRATA_NODE_TTL_MS: String(NODE_TTL_MS),
        STRATA_LOG_LEVEL: 'silent',
        ...extra,
      });
    const nodes: string[] = [];
    for (let i = 1; i <= 6; i++) {
      const node = await runStorageNode(config({ STRATA_NODE_ID: `node-${i}` }), silentLogger);
      running.push(node);
      nodes.push(/listening on (\S+),/.exec(node.describe)![1]!);
    }
    const gateway = await runGateway(config({}), silentLogger);
    running.push(gateway);
    return { etcd, admin, url: /listening on (\S+)/.exec(gateway.describe)![1]!, nodes, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

function docOf(n: number): Record<string, unknown> {
  const doc: Record<string, unknown> = { n };
  for (const field of HOT_FIELDS) doc[field] = n;
  return doc;
}

function errorOf(answer: Answer): { code: string; message: string } {
  return (answer.json as { error: { code: string; message: string } }).error;
}

async function ready(url: string): Promise<{ httpStatus: number; writable: boolean; writable_reason: string | null }> {
  const answer = await request(url, '/health/ready');
  return { ...(answer.json as { writable: boolean; writable_reason: string | null }), httpStatus: answer.status };
}

/** Ids of the blobs of `key` on every storage node (GET /v1/blobs with the cluster token). */
async function blobsOf(d: Deployment, key: string): Promise<string[]> {
  const out: string[] = [];
  for (const node of d.nodes) {
    const answer = await request(node, '/v1/blobs?limit=1000', { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(answer.status, answer.text).toBe(200);
    for (const blob of (answer.json as { blobs: { id: string; key: string }[] }).blobs) if (blob.key === key) out.push(blob.id);
  }
  return out;
}

const RECOVERY_MESSAGE = [/quota/, /NOSPACE/, /etcdctl compact/, /etcdctl defrag/, /etcdctl alarm disarm/];

describe("etcd's space quota (NOSPACE)", () => {
  it('refuses writes and deletes with 507 DISK_FULL while etcd is out of quota, keeps reads, and writes again after compact, defrag and disarm', async () => {
    const d = (deployment = await deploy({}));
    const latest = new Map<string, Record<string, unknown>>();

    // ---- overwrites fill the quota: the 5-minute retention keeps every revision of the test ----
    let refusal: Answer | null = null;
    for (let n = 0; n < FILL_WRITES_MAX && refusal === null; n++) {
      const key = KEYS[n % KEYS.length]!;
      const doc = docOf(n);
      const answer = await writeDoc(d.url, key, doc);
      if (answer.status === 200) latest.set(key, doc);
      else refusal = answer;
    }
    expect(refusal, `${FILL_WRITES_MAX} overwrites fit in a ${QUOTA_BYTES}-byte quota`).not.toBeNull();
    expect(latest.size).toBe(KEYS.length);
    expect(refusal!.status, refusal!.text).toBe(507);
    expect(errorOf(refusal!).code).toBe('DISK_FULL');
    for (const pattern of RECOVERY_MESSAGE) expect(errorOf(refusal!).message).toMatch(pattern);
    expect(await etcdctl(d.etcd.endpoints, ['alarm', 'list'])).toMatch(/NOSPACE/);

    // ---- the next writes are refused before anything is stored ----
    for (const key of ['new/1', KEYS[0]!]) {
      const answer = await writeDoc(d.url, key, docOf(-1));
      expect(answer.status, answer.text).toBe(507);
      expect(errorOf(answer).code).toBe('DISK_FULL');
    }
    expect(await blobsOf(d, 'new/1')).toEqual([]);
    expect((await request(d.url, '/read/new%2F1')).status).toBe(404);

    // ---- deletes are refused too (a delete stores a tombstone, and etcd refuses every put); nothing changes ----
    const refusedDelete = await request(d.url, `/delete/${encodeURIComponent(KEYS[0]!)}`, { method: 'DELETE' });
    expect(refusedDelete.status, refusedDelete.text).toBe(507);
    expect(errorOf(refusedDelete).code).toBe('DISK_FULL');
    for (const pattern of RECOVERY_MESSAGE) expect(errorOf(refusedDelete).message).toMatch(pattern);

    // ---- reads keep working, and readiness stays 200 saying why writes are refused ----
    for (const [key, doc] of latest) {
      const read = await request(d.url, `/read/${encodeURIComponent(key)}`);
      expect(read.status, read.text).toBe(200);
      expect(read.json).toEqual(doc);
    }
    const full = await ready(d.url);
    expect(full.httpStatus).toBe(200);
    expect(full.writable).toBe(false);
    for (const pattern of RECOVERY_MESSAGE) expect(full.writable_reason).toMatch(pattern);
    expect((await request(d.url, '/metrics')).text).toMatch(/^strata_writable 0$/m);

    // Past the storage nodes' registry lease (etcd's own timer): they stay registered although etcd refuses their
    // heartbeats' puts and any new lease, so reads still find them.
    await outlastRealTimer(NODE_TTL_MS * 2);
    const view = await request(d.url, '/cluster');
    expect((view.json as { nodes: { state: string }[] }).nodes.map((n) => n.state)).toEqual(Array(6).fill('healthy'));
    for (const [key, doc] of latest) expect((await request(d.url, `/read/${encodeURIComponent(key)}`)).json).toEqual(doc);

    // ---- the documented recovery, exactly as docs/disk-full.md gives it ----
    const status = JSON.parse(await etcdctl(d.etcd.endpoints, ['endpoint', 'status', '-w', 'json'])) as { Status: { header: { revision: number }; dbSize: number } }[];
    await etcdctl(d.etcd.endpoints, ['compact', String(status[0]!.Status.header.revision)]);
    await etcdctl(d.etcd.endpoints, ['defrag', '--cluster']);
    await etcdctl(d.etcd.endpoints, ['alarm', 'disarm']);
    expect(await etcdctl(d.etcd.endpoints, ['alarm', 'list'])).not.toMatch(/NOSPACE/);

    // ---- writes and deletes resume, nothing restarted ----
    await waitFor('the gateway to take writes again', async () => (await ready(d.url)).writable, CONDITION_TIMEOUT_MS);
    expect((await request(d.url, '/metrics')).text).toMatch(/^strata_writable 1$/m);
    const again = docOf(100_000);
    const written = await writeDoc(d.url, KEYS[1]!, again);
    expect(written.status, written.text).toBe(200);
    expect((await request(d.url, `/read/${encodeURIComponent(KEYS[1]!)}`)).json).toEqual(again);
    const deleted = await request(d.url, `/delete/${encodeURIComponent(KEYS[0]!)}`, { method: 'DELETE' });
    expect(deleted.status, deleted.text).toBe(200);
    expect((await request(d.url, `/read/${encodeURIComponent(KEYS[0]!)}`)).status).toBe(404);
  }, 600_000);

  it("keeps a steady overwrite workload inside the quota when etcd's periodic compaction runs", async () => {
    const d = (deployment = await deploy({ autoCompactionRetention: '2s' }));
    let manifestBytesWritten = 0;
    let n = 0;
    // Rounds of about 2.5 MiB of manifests (every key overwritten 8 times, the keys in parallel); each waits until
    // etcd has compacted the revisions before it, so the history etcd holds stays within about two rounds however
    // fast or slow this machine writes.
    const stepsPerRound = 8;
    while (manifestBytesWritten < 2 * QUOTA_BYTES) {
      const roundStart = Number((await d.admin.maintenance.status()).header.revision);
      for (let step = 0; step < stepsPerRound; step++, n++) {
        const answers = await Promise.all(KEYS.map((key) => writeDoc(d.url, key, docOf(n))));
        for (const answer of answers) expect(answer.status, answer.text).toBe(200);
      }
      manifestBytesWritten += stepsPerRound * KEYS.length * (await d.admin.get(`strata/manifest/${KEYS[0]!}`).buffer())!.length;
      await waitFor(
        `etcd to compact its history past revision ${roundStart}`,
        async () => {
          try {
            await d.admin.get(`strata/manifest/${KEYS[0]!}`).revision(roundStart).buffer();
            return false;
          } catch (err) {
            return /compacted/.test((err as Error).message);
          }
        },
        CONDITION_TIMEOUT_MS,
      );
    }
    const status = await d.admin.maintenance.status();
    process.stdout.write(`steady overwrites: ${manifestBytesWritten} manifest bytes written, etcd db ${status.dbSize} bytes (${status.dbSizeInUse} in use), quota ${QUOTA_BYTES}\n`);
    expect(Number(status.dbSize)).toBeLessThan(QUOTA_BYTES / 2);
    expect(await etcdctl(d.etcd.endpoints, ['alarm', 'list'])).not.toMatch(/NOSPACE/);
    expect((await ready(d.url)).writable).toBe(true);
    expect(manifestBytesWritten).toBeGreaterThan(2 * QUOTA_BYTES);
  }, 600_000);
});
