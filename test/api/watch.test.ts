/**
 * GET /watch, the change feed (docs/api.md "Change feed"): server-sent events of committed changes, one per
 * commit, resumable from a version without gaps or repeats, with its error answers and its bounds (streams per
 * gateway, heartbeat, a slow client dropped instead of buffered without bound).
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startNginx } from '../../scripts/infra/nginx.js';
import { makeManifest } from '../helpers/manifest-fixture.js';
import { expectError, internalsOrSkip, startApi, type ApiClient, type WriteBody } from './support.js';
import { CONDITION_TIMEOUT_MS, outlastRealTimer, waitForValue } from '../helpers/wait.js';

const STREAMS_MAX = 3;
const HEARTBEAT_MS = 100;
const BUFFER_BYTES_MAX = 256 * 1024;
const STALL_MS = 500;

let api: ApiClient;
beforeAll(async () => {
  api = await startApi({
    env: {
      STRATA_WATCH_STREAMS_MAX: String(STREAMS_MAX),
      STRATA_WATCH_HEARTBEAT_MS: String(HEARTBEAT_MS),
      STRATA_WATCH_BUFFER_BYTES_MAX: String(BUFFER_BYTES_MAX),
      STRATA_WATCH_STALL_MS: String(STALL_MS),
    },
  });
});
afterAll(async () => {
  await api?.cluster.destroy();
});

interface FeedEvent {
  event: string;
  id: string | null;
  data: unknown;
}

/** A /watch stream read with fetch: its parsed events, its comment lines, and a way to wait for either. */
class Feed {
  readonly events: FeedEvent[] = [];
  readonly comments: string[] = [];
  ended = false;
  private readonly abort = new AbortController();
  private constructor(readonly response: Response) {}

  static async open(query = '', headers: Record<string, string> = {}, baseUrl = api.cluster.url): Promise<Feed> {
    const controller = new AbortController();
    const response = await fetch(`${baseUrl}/watch${query}`, { headers, signal: controller.signal });
    const feed = new Feed(response);
    feed.abort.signal.addEventListener('abort', () => controller.abort());
    if (response.ok) void feed.pump();
    return feed;
  }

  get changes(): Array<{ key: string; version: string; kind: string }> {
    return this.events.filter((e) => e.event === 'change').map((e) => e.data as { key: string; version: string; kind: string });
  }

  async until(what: string, check: () => boolean, timeoutMs = CONDITION_TIMEOUT_MS): Promise<void> {
    await vi.waitFor(
      () => {
        if (!check()) throw new Error(`timed out waiting until ${what}; events: ${JSON.stringify(this.events).slice(0, 2000)}`);
      },
      { timeout: timeoutMs, interval: 10 },
    );
  }

  close(): void {
    this.abort.abort();
  }

  private async pump(): Promise<void> {
    const reader = this.response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffer += value;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          this.parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch {
      // aborted by close()
    }
    this.ended = true;
  }

  private parse(block: string): void {
    let event = 'message';
    let id: string | null = null;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) this.comments.push(line.slice(1).trim());
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) this.events.push({ event, id, data: JSON.parse(data.join('\n')) });
  }
}

/** The body of a raw HTTP/1.1 response with `Transfer-Encoding: chunked`. */
function dechunk(raw: Buffer): string {
  const head = raw.indexOf('\r\n\r\n');
  expect(raw.subarray(0, head).toString('latin1')).toMatch(/^HTTP\/1\.1 200 [^]*transfer-encoding: chunked/i);
  const parts: Buffer[] = [];
  let at = head + 4;
  for (;;) {
    const eol = raw.indexOf('\r\n', at);
    if (eol === -1) break;
    const size = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
    if (!(size > 0)) break;
    parts.push(raw.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
  return Buffer.concat(parts).toString('utf8');
}

async function writeVersion(key: string, body: unknown): Promise<string> {
  return (await api.put(key, body)).version;
}

async function patchVersion(key: string, body: unknown): Promise<string> {
  const res = await api.patch(key, body, 'application/merge-patch+json');
  const json = (await res.json()) as WriteBody;
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json.version;
}

async function deleteVersion(key: string): Promise<string> {
  const res = await api.delete(key);
  const json = (await res.json()) as { version: string };
  expect(res.status, JSON.stringify(json)).toBe(200);
  return json.version;
}

describe('GET /watch', () => {
  it('streams one change event per commit, in order, with key, version and kind, and event ids equal to versions', async () => {
    const feed = await Feed.open('?prefix=order/');
    try {
      expect(feed.response.status).toBe(200);
      expect(feed.response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      // The gateway asks proxies not to buffer the stream; nginx acts on the header and does not pass it on.
      if (api.cluster.internals) expect(feed.response.headers.get('x-accel-buffering')).toBe('no');
      await feed.until('the ready event', () => feed.events.length > 0);
      expect(feed.events[0]?.event).toBe('ready');

      const v1 = await writeVersion('order/1', { like_count: 1, text: 'a' });
      const v2 = await patchVersion('order/1', { like_count: 2 });
      await writeVersion('elsewhere/1', { like_count: 1 });
      const v3 = await writeVersion('order/2', { like_count: 1 });
      const v4 = await deleteVersion('order/1');
      // A last commit marks the end: the feed is in commit order, so once it arrived, anything else (a repeat, a
      // change of another prefix) would have arrived before it.
      const end = await writeVersion('order/end', { like_count: 0 });
      await feed.until('the last change arrived', () => feed.changes.some((c) => c.version === end));

      expect(feed.changes).toEqual([
        { key: 'order/1', version: v1, kind: 'put' },
        { key: 'order/1', version: v2, kind: 'put' },
        { key: 'order/2', version: v3, kind: 'put' },
        { key: 'order/1', version: v4, kind: 'delete' },
        { key: 'order/end', version: end, kind: 'put' },
      ]);
      expect(feed.events.filter((e) => e.event === 'change').map((e) => e.id)).toEqual([v1, v2, v3, v4, end]);
    } finally {
      feed.close();
    }
  });

  it('resumed with ?since or Last-Event-ID, replays exactly the commits after that version: no gap, no repeat', async () => {
    const versions: string[] = [];
    for (let i = 0; i < 8; i++) versions.push(await writeVersion(`resume/${i}`, { like_count: i }));
    const after = versions[2]!;
    const expected = versions.slice(3).map((version, i) => ({ key: `resume/${i + 3}`, version, kind: 'put' }));

    const bySince = await Feed.open(`?prefix=resume/&since=${after}`);
    // Last-Event-ID is what an EventSource sends when it reconnects; it wins over the URL's since.
    const byHeader = await Feed.open(`?prefix=resume/&since=0`, { 'Last-Event-ID': after });
    try {
      await bySince.until('the replay', () => bySince.changes.length >= 5);
      await byHeader.until('the replay', () => byHeader.changes.length >= 5);
      const more = await writeVersion('resume/8', { like_count: 8 });
      expected.push({ key: 'resume/8', version: more, kind: 'put' });
      // The feeds are in commit order: a repeat or a gap would show before the last commit arrives.
      await bySince.until('the new commit', () => bySince.changes.some((c) => c.version === more));
      await byHeader.until('the new commit', () => byHeader.changes.some((c) => c.version === more));
      expect(bySince.changes).toEqual(expected);
      expect(byHeader.changes).toEqual(expected);
    } finally {
      bySince.close();
      byHeader.close();
    }
  });

  it('answers 410 HISTORY_COMPACTED when the version is older than the history the store keeps', async (context) => {
    const internals = internalsOrSkip(api, context, 'compacting the metadata store history');
    const before = await writeVersion('compact/1', { like_count: 1 });
    const later = await writeVersion('compact/2', { like_count: 2 });
    await internals.metadata.compactHistory(Number(later));
    const res = await api.fetch(`/watch?since=${Number(before) - 1}`);
    const error = await expectError(res, 410, 'HISTORY_COMPACTED');
    expect(error.message).toMatch(/list the keys again/);
    // From the compaction point the history is whole again.
    const feed = await Feed.open(`?prefix=compact/&since=${later}`);
    try {
      expect(feed.response.status).toBe(200);
    } finally {
      feed.close();
    }
  });

  it('refuses a version that is not a number, one ahead of the cluster, and a prefix with a control character', async () => {
    await expectError(await api.fetch('/watch?since=abc'), 400, 'INVALID_REQUEST');
    await expectError(await api.fetch('/watch?since=-1'), 400, 'INVALID_REQUEST');
    await expectError(await api.fetch('/watch', { headers: { 'Last-Event-ID': '1e9' } }), 400, 'INVALID_REQUEST');
    await expectError(await api.fetch('/watch?since=99999999999'), 400, 'INVALID_REQUEST');
    await expectError(await api.fetch('/watch?prefix=a%01b'), 400, 'INVALID_REQUEST');
    const wrong = await api.fetch('/watch', { method: 'POST' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
  });

  it('sends heartbeat comments while nothing changes', async () => {
    const feed = await Feed.open('?prefix=quiet/');
    try {
      await feed.until('two heartbeats', () => feed.comments.filter((c) => c === 'heartbeat').length >= 2);
      expect(feed.changes).toEqual([]);
    } finally {
      feed.close();
    }
  });

  it(`answers 503 TOO_MANY_WATCHERS with Retry-After beyond ${STREAMS_MAX} streams, and frees a slot when a client leaves`, async () => {
    const feeds = [];
    for (let i = 0; i < STREAMS_MAX; i++) feeds.push(await Feed.open());
    try {
      for (const f of feeds) expect(f.response.status).toBe(200);
      const refused = await api.fetch('/watch', { allow5xx: true });
      expect(refused.headers.get('retry-after')).toBe('1');
      await expectError(refused, 503, 'TOO_MANY_WATCHERS');
      feeds.pop()!.close();
      // The gateway learns of the closed connection asynchronously.
      const again = await waitForValue('the slot of the closed stream to be freed', async () => {
        const attempt = await Feed.open();
        if (attempt.response.status === 200) return attempt;
        attempt.close();
        return null;
      });
      feeds.push(again);
    } finally {
      for (const f of feeds) f.close();
    }
  });

  it("passes through the project's nginx.conf unbuffered: each change arrives as it is committed", async (context) => {
    internalsOrSkip(api, context, 'an nginx of its own in front of the in-process gateway');
    const nginx = await startNginx({ upstreams: [new URL(api.cluster.url).host] });
    try {
      const feed = await Feed.open('?prefix=proxied/', {}, nginx.url);
      try {
        expect(feed.response.status).toBe(200);
        await feed.until('the ready event through nginx', () => feed.events.length > 0);
        // One commit at a time, each seen before the next is made: a buffering proxy would hold them back.
        for (let i = 0; i < 3; i++) {
          const version = await writeVersion(`proxied/${i}`, { like_count: i });
          await feed.until(`change ${i} through nginx`, () => feed.changes.some((c) => c.version === version));
        }
        await feed.until('a heartbeat through nginx', () => feed.comments.includes('heartbeat'));
      } finally {
        feed.close();
      }
    } finally {
      await nginx.stop();
    }
  });

  it('drops a client that stops reading with a final WATCH_TOO_SLOW event, and it can resume from its last event id', async (context) => {
    // The resumed stream below replays thousands of changes through a 256 KiB buffer: flow control, not a drop.
    const internals = internalsOrSkip(api, context, 'committing many changes quickly through the metadata store');
    const prefix = `slow/${'x'.repeat(900)}/`;
    const from = await internals.metadata.currentRevision();
    // A raw socket that never reads: after its first 16 KiB (Node's read-ahead), the kernel's socket buffers fill
    // (the receive buffer does not grow for an application that reads nothing), then the gateway's bounded queue.
    const target = new URL(api.cluster.url);
    const socket = net.connect(Number(target.port), target.hostname);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write(`GET /watch?prefix=${encodeURIComponent(prefix)}&since=${from} HTTP/1.1\r\nHost: ${target.host}\r\n\r\n`);
    // Enough changes (about 1 KiB each) to overflow the socket buffers and the queue several times over.
    const count = 12_000;
    const commits = [];
    for (let i = 0; i < count; i++) {
      const key = `${prefix}${String(i).padStart(6, '0')}`;
      commits.push(internals.metadata.commit({ key, expectedModRevision: 0, writeId: `w${i}`, manifest: makeManifest(key, `w${i}`), assignVersion: true }));
    }
    const results = await Promise.all(commits);
    // Stalled for longer than STALL_MS with a full buffer. The gateway's stall timer is a real timer (the watch
    // route takes no injected clock), so real time must pass here; a fixed wait is allowed for this one case
    // (test/meta/no-fixed-sleeps.test.ts).
    await outlastRealTimer(STALL_MS * 3);
    const revisions = results.map((r) => (r.ok ? r.modRevision : -1)).sort((a, b) => a - b);
    const events: string[] = [];
    // Now read what was queued: a prefix of the changes, then the error event, then the end of the stream.
    const raw = await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => {
        chunks.push(chunk);
        // The last chunk of a chunked body: the gateway ended the stream.
        if (Buffer.concat(chunks.slice(-2)).includes('\r\n0\r\n\r\n')) {
          socket.destroy();
          resolve(Buffer.concat(chunks));
        }
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(Buffer.concat(chunks)));
    });
    const text = dechunk(raw);
    for (const block of text.split('\n\n')) if (block.includes('event: ')) events.push(block);
    const last = events.at(-1) ?? '';
    expect(last).toContain('event: error');
    expect(last).toContain('"code":"WATCH_TOO_SLOW"');
    const delivered = events.filter((e) => e.startsWith('event: change')).map((e) => Number(/\nid: (\d+)/.exec(e)![1]));
    expect(delivered.length).toBeLessThan(count);
    expect(delivered).toEqual(revisions.slice(0, delivered.length));

    // Resuming from the last delivered id gives the rest, exactly.
    const resumed = await Feed.open(`?prefix=${encodeURIComponent(prefix)}`, { 'Last-Event-ID': String(delivered.at(-1) ?? from) });
    try {
      await resumed.until('the rest of the changes', () => resumed.changes.length >= count - delivered.length, 120_000);
      expect(resumed.changes.map((c) => Number(c.version))).toEqual(revisions.slice(delivered.length));
    } finally {
      resumed.close();
    }
    // 12,000 commits and their replay take a minute and more on a busy 2-core machine: a deadline, not a speed.
  }, 300_000);
});
