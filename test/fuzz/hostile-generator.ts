/**
 * A seeded generator of hostile gateway requests for the fuzz suite. Everything comes from one PRNG, so a seed
 * replays the same storm. Requests only ever name keys under `fz/` (or no valid key at all), so the seeded
 * documents of the suite (under `seed/`) can only change through a bug.
 */

export interface FuzzRequest {
  kind: string;
  method: string;
  /** Raw request target, sent as is (not normalised). */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** The key the request names, when it names a valid one. */
  key?: string;
}

/** mulberry32: small, fast, good enough to drive a fuzzer. */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rng = () => number;
const int = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[int(rng, xs.length)]!;
const JSON_CT = { 'content-type': 'application/json' };

export const ROUTES = ['/write', '/read/', '/patch/', '/delete/', '/stat/', '/list', '/health', '/health/live', '/health/ready', '/cluster', '/node_status', '/storage_usage', '/metrics', '/openapi.json'];
const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'];
const ALLOWED: Record<string, string> = { '/write': 'POST', '/patch/': 'PATCH', '/delete/': 'DELETE' };

function fzKey(rng: Rng): string {
  return `fz/${int(rng, 40)}`;
}

function writePath(key: string, extra = ''): string {
  return `/write?key=${encodeURIComponent(key)}${extra}`;
}

function nest(depth: number): string {
  let s = '1';
  for (let i = 0; i < depth - 1; i++) s = i % 2 === 0 ? `[${s}]` : `{"a":${s}}`;
  return `{"d":${s}}`;
}

function randomBytes(rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = int(rng, 256);
  return b;
}

function randomJsonValue(rng: Rng, depth = 0): unknown {
  const r = int(rng, depth > 2 ? 5 : 8);
  switch (r) {
    case 0: return null;
    case 1: return int(rng, 1000) - 500;
    case 2: return pick(rng, ['', 'x', 'é', '\u0000', '"', '\ud83d\ude00']);
    case 3: return rng() < 0.5;
    case 4: return rng() * 1e6;
    case 5: return [randomJsonValue(rng, depth + 1), randomJsonValue(rng, depth + 1)];
    default: return { [pick(rng, ['a', 'likes', 'b', '', '~1', '/'])]: randomJsonValue(rng, depth + 1) };
  }
}

const generators: Record<string, (rng: Rng) => FuzzRequest> = {
  invalidUtf8: (rng) => {
    const bad = pick(rng, [[0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf0, 0x9f, 0x98]]);
    const body = Buffer.concat([Buffer.from('{"a":"'), Buffer.from(bad), Buffer.from('"}')]);
    const key = fzKey(rng);
    return rng() < 0.5
      ? { kind: 'invalidUtf8', method: 'POST', path: writePath(key), headers: JSON_CT, body }
      : { kind: 'invalidUtf8', method: 'POST', path: writePath(key), headers: JSON_CT, body: Buffer.concat([Buffer.from('{"'), Buffer.from(bad), Buffer.from('":1}')]) };
  },
  truncatedJson: (rng) => {
    const full = JSON.stringify({ a: 1, b: [1, 2, { c: 'x' }], d: { e: null } });
    return { kind: 'truncatedJson', method: 'POST', path: writePath(fzKey(rng)), headers: JSON_CT, body: Buffer.from(full.slice(0, 1 + int(rng, full.length - 1))) };
  },
  hugeNumbers: (rng) => {
    const n = pick(rng, ['1e999999', '-1e999999', '9'.repeat(400), `0.${'1'.repeat(400)}`, '1E+400', '-0', '1e-999999', '01', '1.', '.5', 'NaN', 'Infinity']);
    return { kind: 'hugeNumbers', method: 'POST', path: writePath(fzKey(rng)), headers: JSON_CT, body: Buffer.from(`{"n":${n}}`) };
  },
  deepNesting: (rng) => {
    const depth = pick(rng, [64, 65, 66, 100, 1000, 5000]);
    return { kind: 'deepNesting', method: 'POST', path: writePath(fzKey(rng)), headers: JSON_CT, body: Buffer.from(nest(depth)) };
  },
  wideObject: (rng) => {
    const n = rng() < 0.05 ? 100_001 : 1000 + int(rng, 5000);
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(`"m${i}":${i}`);
    return { kind: 'wideObject', method: 'POST', path: writePath(fzKey(rng)), headers: JSON_CT, body: Buffer.from(`{${parts.join(',')}}`) };
  },
  duplicateNames: (rng) => {
    const depth = 1 + int(rng, 5);
    let inner = '{"x":1,"y":2,"x":3}';
    for (let i = 0; i < depth; i++) inner = `{"k${i}":${inner}}`;
    return { kind: 'duplicateNames', method: 'POST', path: writePath(fzKey(rng)), headers: JSON_CT, body: Buffer.from(inner) };
  },
  badKeys: (rng) => {
    const key = pick(rng, ['k'.repeat(1025), 'é'.repeat(513), 'a\u0001b', '\u007f', '', 'fz/\u001f', 'x'.repeat(20_000)]);
    const route = pick(rng, ['write', 'read', 'stat', 'delete', 'patch']);
    const enc = encodeURIComponent(key);
    if (route === 'write') return { kind: 'badKeys', method: 'POST', path: `/write?key=${enc}`, headers: JSON_CT, body: Buffer.from('{"a":1}') };
    const method = route === 'delete' ? 'DELETE' : route === 'patch' ? 'PATCH' : 'GET';
    return { kind: 'badKeys', method, path: `/${route}/${enc}`, headers: JSON_CT, ...(method === 'PATCH' ? { body: Buffer.from('{"a":1}') } : {}) };
  },
  controlCharMemberNames: (rng) => {
    const name = pick(rng, ['\\u0000', '\\u001f', 'a'.repeat(100_000), '\\ud800', '\\u00']);
    return { kind: 'controlCharMemberNames', method: 'POST', path: writePath(fzKey(rng)), headers: JSON_CT, body: Buffer.from(`{"${name}":1}`) };
  },
  randomBytes: (rng) => ({ kind: 'randomBytes', method: pick(rng, ['POST', 'PATCH']), path: rng() < 0.5 ? writePath(fzKey(rng)) : `/patch/${encodeURIComponent(fzKey(rng))}`, headers: { 'content-type': pick(rng, ['application/json', 'application/merge-patch+json', 'application/json-patch+json']) }, body: randomBytes(rng, int(rng, 300)) }),
  contentTypes: (rng) => {
    const ct = pick(rng, ['text/plain', 'application/xml', 'application/jsonx', 'json', '', 'application/json; charset=latin1', 'multipart/form-data; boundary=x', 'application/merge-patch+json', '*/*', 'application/json-patch+json']);
    const headers: Record<string, string> = ct === '' ? {} : { 'content-type': ct };
    if (rng() < 0.5) return { kind: 'contentTypes', method: 'POST', path: writePath(fzKey(rng)), headers, body: Buffer.from('{"a":1}') };
    return { kind: 'contentTypes', method: 'PATCH', path: `/patch/${encodeURIComponent(fzKey(rng))}`, headers, body: Buffer.from(pick(rng, ['{"a":1}', '[]', '<x/>'])) };
  },
  wrongMethods: (rng) => {
    const route = pick(rng, ROUTES);
    const allowed = ALLOWED[route] ?? 'GET';
    const method = pick(rng, METHODS.filter((m) => m !== allowed && !(allowed === 'GET' && m === 'HEAD')));
    const path = route.endsWith('/') ? `${route}${encodeURIComponent(fzKey(rng))}` : route === '/write' ? writePath(fzKey(rng)) : route;
    return { kind: 'wrongMethods', method, path, headers: JSON_CT, ...(method === 'GET' || method === 'HEAD' ? {} : { body: Buffer.from('{"a":1}') }) };
  },
  badPercent: (rng) => {
    const bad = pick(rng, ['%', '%G1', '%zz', '%E9', '%C3%28', '%ED%A0%80', '%FF%FE', '%%', '%2', '%00', '%2F..%2F..']);
    const where = int(rng, 4);
    if (where === 0) return { kind: 'badPercent', method: 'POST', path: `/write?key=fz${bad}`, headers: JSON_CT, body: Buffer.from('{"a":1}') };
    if (where === 1) return { kind: 'badPercent', method: 'GET', path: `/read/fz${bad}`, headers: {} };
    if (where === 2) return { kind: 'badPercent', method: 'GET', path: `/list?prefix=${bad}&cursor=${bad}`, headers: {} };
    return { kind: 'badPercent', method: 'GET', path: `/read/${encodeURIComponent(fzKey(rng))}?fields=${bad}`, headers: {} };
  },
  badQuery: (rng) => {
    const key = fzKey(rng);
    const q = pick(rng, [
      `/write?key=${encodeURIComponent(key)}&strategy=${pick(rng, ['raid5', '', 'EC', 'replication,ec', '%00'])}`,
      `/write?key=${encodeURIComponent(key)}&hot_fields=${pick(rng, ['/', '//', '~2', '/a~', ',,,', 'a'.repeat(600), Array.from({ length: 70 }, (_, i) => `f${i}`).join(','), '%2Fa~9'])}`,
      `/write?key=${encodeURIComponent(key)}&key=other`,
      `/read/${encodeURIComponent(key)}?fields=${pick(rng, ['~', '/a~x', ',', Array.from({ length: 300 }, (_, i) => `f${i}`).join(',')])}`,
      `/list?limit=${pick(rng, ['0', '-1', '1001', 'abc', '1e3', '', '99999999999999999999', '1.5'])}`,
      `/list?cursor=${pick(rng, ['garbage', '!!!', 'AAAA', '%FF', 'x'.repeat(5000)])}`,
      `/list?prefix=${encodeURIComponent('\u0001')}`,
    ]);
    const isWrite = q.startsWith('/write');
    return { kind: 'badQuery', method: isWrite ? 'POST' : 'GET', path: q, headers: JSON_CT, ...(isWrite ? { body: Buffer.from('{"a":1,"f1":2}') } : {}) };
  },
  badHeaders: (rng) => {
    const key = fzKey(rng);
    const h = pick(rng, [
      { 'if-match': pick(rng, ['garbage', '"', '""', '"-1"', '"abc"', 'W/"1"', '*', '"1", "2"', '"99999999999999999999999"']) },
      { 'if-none-match': pick(rng, ['"1"', 'garbage', '**', '']) },
      { 'idempotency-key': pick(rng, ['', 'x'.repeat(300), '   ', 'é']) },
      { 'idempotency-key': `fz-reuse-${int(rng, 5)}` },
      { 'x-junk': 'y'.repeat(20_000) },
      Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`x-h${i}`, 'z'.repeat(100)])),
      { 'content-length': 'abc' },
    ]);
    const method = pick(rng, ['POST', 'PATCH', 'DELETE']);
    const path = method === 'POST' ? writePath(key) : method === 'PATCH' ? `/patch/${encodeURIComponent(key)}` : `/delete/${encodeURIComponent(key)}`;
    const body = method === 'DELETE' ? undefined : Buffer.from(JSON.stringify({ v: int(rng, 3) }));
    const headers: Record<string, string> = { ...JSON_CT, ...(h as Record<string, string>) };
    if (headers['content-length'] === 'abc') return { kind: 'badHeaders', method: 'GET', path: `/read/${encodeURIComponent(key)}`, headers: { 'if-none-match': 'x' } };
    return { kind: 'badHeaders', method, path, headers, ...(body ? { body } : {}), key };
  },
  jsonPatch: (rng) => {
    const ops = Array.from({ length: 1 + int(rng, 4) }, () => {
      const op: Record<string, unknown> = { op: pick(rng, ['add', 'remove', 'replace', 'move', 'copy', 'test', 'bogus', 7]) };
      if (rng() < 0.9) op['path'] = pick(rng, ['/a', '/likes', '', '/', '/-', '/b/0', '/n/-', '/~', 'nope', '/a/b/c', '/~1']);
      if (rng() < 0.7) op['value'] = randomJsonValue(rng);
      if (rng() < 0.3) op['from'] = pick(rng, ['/a', '/zz', '', 'bad']);
      return op;
    });
    const key = fzKey(rng);
    const body = rng() < 0.1 ? '{"op":"add"}' : JSON.stringify(rng() < 0.1 ? ops[0] : ops);
    return { kind: 'jsonPatch', method: 'PATCH', path: `/patch/${encodeURIComponent(key)}`, headers: { 'content-type': pick(rng, ['application/json-patch+json', 'application/json']) }, body: Buffer.from(body), key };
  },
  mergePatch: (rng) => {
    const key = fzKey(rng);
    const body = pick(rng, [JSON.stringify({ a: null, b: [1, null], c: { d: null } }), '[1,2]', 'null', '"x"', JSON.stringify({ likes: randomJsonValue(rng) }), '{"a":{"b":{"c":null}}}']);
    return { kind: 'mergePatch', method: 'PATCH', path: `/patch/${encodeURIComponent(key)}`, headers: { 'content-type': 'application/merge-patch+json' }, body: Buffer.from(body), key };
  },
  validWrite: (rng) => {
    const key = fzKey(rng);
    const doc = { a: int(rng, 10), likes: int(rng, 100), b: [1, 2], s: { v: randomJsonValue(rng) } };
    const strategy = pick(rng, ['', '&strategy=ec', '&strategy=replication', '&strategy=field_hybrid']);
    return { kind: 'validWrite', method: 'POST', path: writePath(key, strategy), headers: JSON_CT, body: Buffer.from(JSON.stringify(doc)), key };
  },
  notAnObject: (rng) => ({ kind: 'notAnObject', method: 'POST', path: writePath(fzKey(rng)), headers: JSON_CT, body: Buffer.from(pick(rng, ['[]', 'null', '1', '"s"', 'true', '', ' ', '{}{}', '{"a":1} x'])) }),
  unknownRoutes: (rng) => ({ kind: 'unknownRoutes', method: pick(rng, METHODS), path: pick(rng, ['/', '/writes', '/read', '/read/', '/../etc/passwd', '/read/%2E%2E', '//read//x', '/list/x', '/admin', '/stat', '/delete/', '/%']), headers: {} }),
};

/** Relative frequency of each kind (wide objects are expensive, so rare). */
const WEIGHTS: Record<string, number> = { wideObject: 1, controlCharMemberNames: 3, validWrite: 8, jsonPatch: 10, mergePatch: 6, wrongMethods: 12, badQuery: 10, badHeaders: 8 };
const TABLE: string[] = Object.keys(generators).flatMap((k) => new Array(WEIGHTS[k] ?? 5).fill(k) as string[]);

export function generateRequest(rng: Rng): FuzzRequest {
  const kind = pick(rng, TABLE);
  const req = generators[kind]!(rng);
  if (req.key === undefined) {
    // Requests naming a valid fz/ key may create it when they are valid; remember which key they name.
    const m = /^\/(?:write\?key=|patch\/|delete\/)(fz%2F\d+)(?:&|$)/.exec(req.path);
    if (m) req.key = decodeURIComponent(m[1]!);
  }
  return req;
}
