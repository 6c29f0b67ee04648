/**
 * The storage node's two walls: nothing without the cluster token (401), and no request, however its path is
 * spelled, reads or writes a file outside the node's data directory. Paths are sent byte for byte with node:http
 * (fetch would resolve dot segments before sending).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStorageNode, type StorageNode } from '../../internal/storagenode/server.js';

const TOKEN = 'node-access-test-token-0123';
const SECRET = 'the-secret-outside-the-data-dir';

/** Ids and routes that try to name something outside the node's directory, in every spelling we know of. */
const HOSTILE_PATHS = [
  '/v1/blobs/../../secret.txt',
  '/v1/blobs/..%2F..%2Fsecret.txt',
  '/v1/blobs/%2E%2E%2F%2E%2E%2Fsecret.txt',
  '/v1/blobs/%2e%2e/%2e%2e/secret.txt',
  '/v1/blobs/%252E%252E%252Fsecret.txt',
  '/v1/blobs/..%5C..%5Csecret.txt',
  '/v1/blobs//etc/passwd',
  '/v1/blobs/%2Fetc%2Fpasswd',
  '/v1/blobs/%2F..%2Fsecret.txt',
  '/v1/blobs/C:%5Cwindows%5Cwin.ini',
  '/v1/blobs/secret.txt%00.hot-0',
  '/v1/blobs/.%2E/secret.txt',
  '/v1/blobs/x/../../../secret.txt/info',
  '/v1/blobs/..',
  '/v1/blobs/.',
  '/../secret.txt',
  '//secret.txt',
];

interface Answer {
  status: number;
  body: string;
}

function send(node: StorageNode, method: string, rawPath: string, headers: Record<string, string>, body?: Buffer): Promise<Answer> {
  const url = new URL(node.address);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path: rawPath, method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  }
  return out.sort();
}

describe('storage node access', () => {
  let root: string;
  let dataDir: string;
  let node: StorageNode;

  beforeAll(async () => {
    // root/secret.txt beside root/data/node: what a traversal would be after.
    root = await mkdtemp(path.join(os.tmpdir(), 'strata-node-access-'));
    dataDir = path.join(root, 'data', 'node');
    await mkdir(dataDir, { recursive: true });
    await writeFile(path.join(root, 'secret.txt'), SECRET);
    await writeFile(path.join(root, 'data', 'secret.txt'), SECRET);
    node = await startStorageNode({ nodeId: 'node-1', dataDir, host: '127.0.0.1', port: 0, token: TOKEN });
  });
  afterAll(async () => {
    await node?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const auth = { authorization: `Bearer ${TOKEN}` };
  const putHeaders = { ...auth, 'x-strata-key': 'k', 'x-strata-write-id': 'W1', 'x-strata-part': 'hot-0', 'content-type': 'application/octet-stream' };

  it('refuses every route and method without the token, or with a wrong one, before looking at the path', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-token-wrong-token' }, { authorization: TOKEN }];
    for (const headers of attempts) {
      for (const [method, p] of [['GET', '/v1/health'], ['GET', '/v1/blobs'], ['PUT', '/v1/blobs/W1.hot-0'], ['DELETE', '/v1/blobs/W1.hot-0'], ['GET', '/v1/blobs/../../secret.txt'], ['GET', '/nope']] as const) {
        const answer = await send(node, method, p, headers, method === 'PUT' ? Buffer.from('x') : undefined);
        expect(answer.status, `${method} ${p} ${JSON.stringify(headers)}`).toBe(401);
        expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'UNAUTHORIZED' } });
      }
    }
  });

  it('answers a 4xx, never a file, to ids and paths that climb out of the data directory', async () => {
    const before = await filesUnder(root);
    for (const p of HOSTILE_PATHS) {
      for (const [method, body] of [['GET', undefined], ['HEAD', undefined], ['PUT', Buffer.from('overwrite?')], ['DELETE', undefined], ['POST', undefined]] as const) {
        const target = method === 'POST' ? `${p}/verify` : p;
        const answer = await send(node, method, target, method === 'PUT' ? putHeaders : auth, body);
        expect(answer.status, `${method} ${target}: ${answer.body}`).toBeGreaterThanOrEqual(400);
        expect(answer.status, `${method} ${target}: ${answer.body}`).toBeLessThan(500);
        expect(answer.body).not.toContain(SECRET);
      }
    }
    // Nothing created, removed or changed outside the node's directory.
    const after = await filesUnder(root);
    expect(after.filter((f) => !f.startsWith(dataDir + path.sep))).toEqual(before.filter((f) => !f.startsWith(dataDir + path.sep)));
    expect(await readFile(path.join(root, 'secret.txt'), 'utf8')).toBe(SECRET);
    expect(await readFile(path.join(root, 'data', 'secret.txt'), 'utf8')).toBe(SECRET);
    expect((await node.store.usage()).blobs).toBe(0);
  });

  it('treats an inventory cursor as an opaque id, not a path', async () => {
    const answer = await send(node, 'GET', '/v1/blobs?after=..%2F..%2Fsecret.txt&limit=5', auth);
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ blobs: [], next: null });
  });

  it('still stores and serves a well-formed id (the checks above refuse for the right reason)', async () => {
    const put = await send(node, 'PUT', '/v1/blobs/W1.hot-0', putHeaders, Buffer.from('payload'));
    expect(put.status).toBe(201);
    const get = await send(node, 'GET', '/v1/blobs/W1.hot-0', auth);
    expect(get.status).toBe(200);
    expect(get.body).toBe('payload');
    const files = await filesUnder(root);
    expect(files.filter((f) => !f.startsWith(dataDir + path.sep)).map((f) => path.relative(root, f)).sort()).toEqual(['data/secret.txt', 'secret.txt']);
  });
});
