/**
 * A full disk under one separate storage-node process (cluster mode): seven storage nodes run as processes of their
 * own (cmd/storage-node, scripts/cluster/proc.ts), node-7's directory on a 32 MiB tmpfs of its own, and a gateway
 * on etcd (scripts/infra/etcd.ts) with the embedded WAL. When something else fills node-7's filesystem, node-7 says
 * `writable: false` in GET /v1/health, the gateway stops placing blobs on it (writes still succeed, whole, on the
 * other six), deletes succeed (node-7's own included), and once the space is freed node-7 takes blobs again, with
 * nothing restarted.
 *
 * Needs root to mount the tmpfs; skips with the reason otherwise.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../internal/config/config.js';
import { silentLogger } from '../../internal/log/logger.js';
import { runGateway, type Running } from '../../internal/wiring/processes.js';
import { StrataProc } from '../../scripts/cluster/proc.js';
import { startEtcd, type RunningEtcd } from '../../scripts/infra/etcd.js';
import { freePort } from '../../scripts/infra/process-utils.js';
import { fillFilesystem, useTmpfs } from '../helpers/tmpfs.js';
import { docOf, request, waitFor, writeDoc } from './cluster-support.js';

const FS_BYTES = 32 * 1024 * 1024;
const NODES = 7;
const FULL_NODE = `node-${NODES}`;
const TOKEN = 'disk-full-node-test-token-0123456789';
/** The gateway probes each node every second; the node measures its disk every second. */
const CONDITION_TIMEOUT_MS = 60_000;
/** Writes while node-7 is full; with 7 nodes and 6 shards per document, each would land on node-7 6 times in 7. */
const WRITES_WHILE_FULL = 12;

let workDir: string | null = null;
let etcd: RunningEtcd | null = null;
const nodes: StrataProc[] = [];
let gateway: Running | null = null;

// The processes go first: node-7 has files open on the tmpfs.
const tmpfs = useTmpfs('strata-node-tmpfs-', FS_BYTES, async () => {
  await gateway?.stop();
  for (const node of nodes) await node.stop();
  await etcd?.stop();
  if (workDir !== null) await rm(workDir, { recursive: true, force: true });
}, 120_000);

interface NodeHealth {
  writable: boolean;
  reason: string | null;
}

async function nodeHealth(node: StrataProc): Promise<NodeHealth> {
  const answer = await request(node.address!, '/v1/health', { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(answer.status, answer.text).toBe(200);
  return answer.json as NodeHealth;
}

/** Keys that have at least one blob on `node` (GET /v1/blobs, paged). */
async function keysOn(node: StrataProc): Promise<Set<string>> {
  const keys = new Set<string>();
  let after: string | null = null;
  for (;;) {
    const query: string = after === null ? 'limit=1000' : `limit=1000&after=${encodeURIComponent(after)}`;
    const answer = await request(node.address!, `/v1/blobs?${query}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(answer.status, answer.text).toBe(200);
    const page = answer.json as { blobs: { key: string }[]; next: string | null };
    for (const blob of page.blobs) keys.add(blob.key);
    if (page.next === null) return keys;
    after = page.next;
  }
}

async function gatewayView(url: string): Promise<Map<string, { writable: boolean; full_reason: string | null }>> {
  const answer = await request(url, '/cluster');
  expect(answer.status, answer.text).toBe(200);
  const view = answer.json as { nodes: { id: string; writable: boolean; full_reason: string | null }[] };
  return new Map(view.nodes.map((n) => [n.id, n]));
}

describe('a separate storage-node process on a full disk', () => {
  it('is left out of placement while full, lets writes and deletes succeed on the others, and takes blobs again once space is freed', async (context) => {
    const mountDir = tmpfs.dirOrSkip(context);
    workDir = await mkdtemp(path.join(os.tmpdir(), 'strata-disk-full-node-'));
    etcd = await startEtcd();
    const addresses: string[] = [];
    for (let i = 1; i <= NODES; i++) {
      const name = `node-${i}`;
      const port = await freePort();
      const node = new StrataProc({
        name,
        kind: 'storage-node',
        port,
        logFile: path.join(workDir, 'logs', `${name}.log`),
        env: {
          STRATA_CLUSTER_TOKEN: TOKEN,
          // node-7's directory (<data dir>/nodes/node-7) is on the small filesystem; the others share the work dir.
          STRATA_DATA_DIR: name === FULL_NODE ? mountDir : path.join(workDir, 'data'),
          STRATA_HOST: '127.0.0.1',
          STRATA_ETCD_ENDPOINTS: etcd.endpoints,
          STRATA_PORT: String(port),
          STRATA_NODE_ID: name,
        },
      });
      nodes.push(node);
      await node.start();
      addresses.push(`${name}=${node.address!}`);
    }
    gateway = await runGateway(
      loadConfig({
        STRATA_DATA_DIR: path.join(workDir, 'gateway'),
        STRATA_HOST: '127.0.0.1',
        STRATA_PORT: '0',
        STRATA_CLUSTER_TOKEN: TOKEN,
        STRATA_ETCD_ENDPOINTS: etcd.endpoints,
        STRATA_NODES: addresses.join(','),
        STRATA_LOG_LEVEL: 'silent',
      }),
      silentLogger,
    );
    const url = /listening on (\S+)/.exec(gateway.describe)![1]!;
    const fullNode = nodes[NODES - 1]!;

    // ---- before: node-7 takes blobs like the others ----
    expect((await nodeHealth(fullNode)).writable).toBe(true);
    for (let i = 0; i < 4; i++) expect((await writeDoc(url, `before/${i}`, docOf(i), '&strategy=ec')).status).toBe(200);
    expect([...(await keysOn(fullNode))].filter((k) => k.startsWith('before/')).length).toBeGreaterThan(0);

    // ---- something else fills node-7's filesystem ----
    const filler = path.join(mountDir, 'filler');
    expect(await fillFilesystem(filler)).toBeGreaterThan(0);
    const full = await waitFor('node-7 to report writable: false', async () => {
      const health = await nodeHealth(fullNode);
      return health.writable ? null : health;
    }, CONDITION_TIMEOUT_MS);
    expect(full.reason).toMatch(/full/);
    await waitFor('the gateway to see node-7 full', async () => (await gatewayView(url)).get(FULL_NODE)?.writable === false, CONDITION_TIMEOUT_MS);
    const view = await gatewayView(url);
    expect(view.get(FULL_NODE)!.full_reason).toMatch(/full/);
    for (const [id, node] of view) if (id !== FULL_NODE) expect(node.writable, id).toBe(true);
    const ready = await request(url, '/health/ready');
    expect(ready.status).toBe(200);
    // Six nodes with room are enough for every write.
    expect((ready.json as { writable: boolean }).writable).toBe(true);

    // ---- writes go to the other six, whole (not partial), and none reaches node-7 ----
    for (let i = 0; i < WRITES_WHILE_FULL; i++) {
      const strategy = i % 2 === 0 ? 'ec' : 'replication';
      const answer = await writeDoc(url, `while-full/${i}`, docOf(100 + i), `&strategy=${strategy}`);
      expect(answer.status, answer.text).toBe(200);
      expect((answer.json as { partial: boolean }).partial, answer.text).toBe(false);
      expect((await request(url, `/read/${encodeURIComponent(`while-full/${i}`)}`)).json).toEqual(docOf(100 + i));
    }
    expect([...(await keysOn(fullNode))].filter((k) => k.startsWith('while-full/'))).toEqual([]);

    // ---- deletes succeed, of documents with blobs on node-7 too ----
    for (let i = 0; i < 4; i++) {
      const answer = await request(url, `/delete/${encodeURIComponent(`before/${i}`)}`, { method: 'DELETE' });
      expect(answer.status, answer.text).toBe(200);
      expect((await request(url, `/read/${encodeURIComponent(`before/${i}`)}`)).status).toBe(404);
    }
    const deleted = await request(url, '/delete/while-full%2F0', { method: 'DELETE' });
    expect(deleted.status, deleted.text).toBe(200);

    // ---- space freed: node-7 takes blobs again, nothing restarted ----
    await rm(filler);
    await waitFor('node-7 to report writable again', async () => (await nodeHealth(fullNode)).writable, CONDITION_TIMEOUT_MS);
    await waitFor('the gateway to see node-7 writable', async () => (await gatewayView(url)).get(FULL_NODE)?.writable === true, CONDITION_TIMEOUT_MS);
    for (let i = 0; i < 4; i++) expect((await writeDoc(url, `after/${i}`, docOf(200 + i), '&strategy=ec')).status).toBe(200);
    expect([...(await keysOn(fullNode))].filter((k) => k.startsWith('after/')).length).toBeGreaterThan(0);
  }, 300_000);
});
