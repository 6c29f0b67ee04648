/**
 * The benchmark workloads of shared/design/benchmarks.md, in plain JavaScript with no imports, so that one
 * definition serves both load generators: k6 (`benchmark.js` imports this file) and the in-repo generator of
 * `npm run bench` (internal/loadgen/node-loadgen.ts). Both therefore send byte-identical documents, choose keys the
 * same way and count the same things as errors. Types are in workloads.d.ts.
 *
 * Nothing here touches a runtime API (no Buffer, no crypto, no k6 module): the randomness is a seeded PRNG, so a
 * document is a pure function of (kind, key), which is what lets a pure hot update by POST resend exactly the cold
 * part the preload stored.
 */

/** Hot fields per document kind (the six hot members each kind has). */
export const HOT_FIELDS = {
  small: ['like_count', 'view_count', 'update_count', 'inventory_count', 'is_active', 'flags'],
  iot: ['device_id', 'battery_level', 'status_code', 'is_active', 'last_sync_ts', 'firmware_version'],
  large: ['like_count', 'view_count', 'update_count', 'inventory_count', 'is_active', 'flags'],
};

export const DOC_KINDS = ['small', 'iot', 'large'];
export const STRATEGIES = ['replication', 'ec', 'field_hybrid'];

/**
 * Scenarios one load run can execute. `degraded` is `read`/`project` with two nodes stopped and `heal-write` is the
 * write phase of the heal scenario: stopping and restarting nodes is the harness's job (bench/harness/).
 */
export const SCENARIOS = ['write', 'hot-patch', 'hot-post', 'read', 'project', 'ycsb-a', 'ycsb-b', 'heal-write'];

/** Target sizes of benchmarks.md, in bytes of compact JSON. */
export const DOC_SIZES = {
  smallHotBytes: 1024,
  smallColdBytes: 8 * 1024,
  iotLogBytes: 800 * 1024,
  largeColdBytes: 8 * 1024 * 1024,
};

/** YCSB's default skew. */
export const ZIPFIAN_THETA = 0.99;

/** mulberry32: small, fast, and the same in every JavaScript engine. Returns floats in [0, 1). */
export function prng(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** 32-bit FNV-1a of a string, for seeds and for scrambling zipfian ranks over the key space. */
export function fnv1a(text) {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
let pairs = null;

/** `chars` characters of random base64 text: incompressible beyond base64's own 6 bits per character. */
export function randomBase64(rand, chars) {
  if (pairs === null) {
    pairs = [];
    for (let i = 0; i < 4096; i++) pairs.push(B64[i >> 6] + B64[i & 63]);
  }
  // Four characters per PRNG call and one join at the end: k6's JavaScript engine is slow at both calls and `+=`.
  const parts = [];
  for (let i = 0; i < chars; i += 4) {
    const v = Math.floor(rand() * 16777216);
    parts.push(pairs[v >> 12] + pairs[v & 4095]);
  }
  const text = parts.join('');
  return text.length > chars ? text.slice(0, chars) : text;
}

/**
 * The random bulk of a document kind (the iot `sensor_raw_log`, the large `payload`), or null for small documents.
 * A pure function of the kind; k6 computes it once per run and shares it between its VUs (SharedArray).
 */
export function bulkText(kind) {
  if (kind === 'iot') return randomBase64(prng(fnv1a('strata-bench-iot')), DOC_SIZES.iotLogBytes);
  if (kind === 'large') return randomBase64(prng(fnv1a('strata-bench-large')), DOC_SIZES.largeColdBytes);
  return null;
}

const WORDS = (
  'strata field level hybrid store replica shard parity cold hot counter flag update read write node zone ' +
  'healer manifest version commit intent quorum latency bytes volume needle index checksum repair audit'
).split(' ');

function words(rand, chars) {
  const out = [];
  let length = 0;
  while (length < chars) {
    const w = WORDS[Math.floor(rand() * WORDS.length)];
    out.push(w);
    length += w.length + 1;
  }
  return out.join(' ').slice(0, chars);
}

function smallHot(n) {
  const flags = [];
  for (let i = 0; i < 56; i++) flags.push(`"flag_${i < 10 ? '0' : ''}${i}":${(n + i) % 3 === 0}`);
  return (
    `{"like_count":${n},"view_count":${n * 7 + 100000},"update_count":${n},"inventory_count":${1000000 - n}` +
    `,"is_active":${n % 2 === 0},"flags":{${flags.join(',')}}`
  );
}

/** The cold members of a small document after its `title` (~8 KiB): text and nested objects, the same for every key. */
function smallColdTail(rand) {
  const profile = {
    address: { street: words(rand, 40), city: words(rand, 16), zip: '10115', country: 'DE' },
    preferences: { theme: 'dark', language: 'en', notifications: { email: true, sms: false, push: true } },
    tags: [words(rand, 12), words(rand, 12), words(rand, 12)],
  };
  const head = `,"bio":${JSON.stringify(words(rand, 3000))},"profile":${JSON.stringify(profile)},"history":[`;
  const events = [];
  let bytes = head.length + 2;
  for (let i = 0; bytes < DOC_SIZES.smallColdBytes - 140; i++) {
    const event = JSON.stringify({ ts: 1700000000000 + i * 60000, kind: i % 3 === 0 ? 'edit' : 'view', note: words(rand, 60), meta: { i, ok: true } });
    events.push(event);
    bytes += event.length + 1;
  }
  return `${head}${events.join(',')}]}`;
}

const factories = {};

/**
 * The document factory of one kind, built once per process (per VU in k6; `bulk` is bulkText(kind) when the caller
 * has it already): `render(id, n)` is the document of key
 * `id` at update number `n` (the cold part depends on `id` only, the hot part on `n` only), `patch(n)` the merge
 * patch setting the hot members to their values at `n`, `fields` the hot projection list.
 */
export function documents(kind, bulk) {
  if (factories[kind]) return factories[kind];
  const rand = prng(fnv1a(`strata-bench-${kind}`));
  let factory;
  if (kind === 'small' || kind === 'large') {
    const tail = kind === 'small' ? smallColdTail(rand) : `,"payload":"${bulk || bulkText('large')}"}`;
    factory = {
      kind,
      hotFields: HOT_FIELDS[kind],
      render: (id, n) => `${smallHot(n)},"title":"item ${id}"${tail}`,
      patch: (n) => `{"like_count":${n},"view_count":${n * 7 + 100000},"update_count":${n}}`,
    };
  } else if (kind === 'iot') {
    const log = bulk || bulkText('iot');
    factory = {
      kind,
      hotFields: HOT_FIELDS.iot,
      render: (id, n) =>
        `{"device_id":"${id}","battery_level":${n % 101},"status_code":${200 + (n % 5)},"is_active":${n % 2 === 0}` +
        `,"last_sync_ts":${1700000000000 + n},"firmware_version":"4.2.${n % 10}","sensor_raw_log":"${id}:${log.slice(id.length + 1)}"}`,
      patch: (n) => `{"battery_level":${n % 101},"last_sync_ts":${1700000000000 + n}}`,
    };
  } else {
    throw new Error(`DOC must be one of ${DOC_KINDS.join(', ')}; got ${JSON.stringify(kind)}`);
  }
  factory.fields = factory.hotFields.join(',');
  factories[kind] = factory;
  return factory;
}

/**
 * YCSB's zipfian generator (Gray et al., "Quickly generating billion-record synthetic databases") over [0, n), with
 * the rank scrambled by a hash so that the popular keys are spread over the key space, as YCSB's
 * ScrambledZipfianGenerator does.
 */
export function zipfian(n, rand, theta = ZIPFIAN_THETA) {
  let zetan = 0;
  for (let i = 1; i <= n; i++) zetan += 1 / Math.pow(i, theta);
  const zeta2 = 1 + 1 / Math.pow(2, theta);
  const alpha = 1 / (1 - theta);
  const eta = (1 - Math.pow(2 / n, 1 - theta)) / (1 - zeta2 / zetan);
  return function next() {
    const u = rand();
    const uz = u * zetan;
    let rank;
    if (uz < 1) rank = 0;
    else if (uz < zeta2) rank = 1;
    else rank = Math.min(n - 1, Math.floor(n * Math.pow(eta * u - eta + 1, alpha)));
    return fnv1a(`rank-${rank}`) % n;
  };
}

/** Keys of one run live under `<prefix>/<group>/...`; groups keep scenarios from reading each other's keys. */
export function keyOf(prefix, group, i) {
  return `${prefix}/${group}/${i}`;
}

/** The preloaded key group a scenario works on, or null when it creates its own keys. */
export function keyGroup(o) {
  switch (o.scenario) {
    case 'read':
      return { group: `r-${o.strategy}`, kind: 'small', strategy: o.strategy, keys: o.keys };
    case 'project':
      return { group: 'r-field_hybrid', kind: 'small', strategy: 'field_hybrid', keys: o.keys };
    case 'hot-patch':
    case 'hot-post':
      return { group: `u-${o.doc}`, kind: o.doc, strategy: 'field_hybrid', keys: o.doc === 'small' ? o.keys : o.iotKeys };
    case 'ycsb-a':
    case 'ycsb-b':
      return { group: 'y', kind: 'small', strategy: 'field_hybrid', keys: o.ycsbKeys };
    default:
      return null;
  }
}

/**
 * A field list as a query value: each name percent-encoded, the separating commas not (api.md "Field paths": an
 * encoded comma, %2C, is part of a name, so encoding the whole list would name one field that does not exist).
 */
export function fieldListQuery(fields) {
  return fields.map(encodeURIComponent).join(',');
}

function writePath(key, strategy, kind) {
  return `/write?key=${encodeURIComponent(key)}&strategy=${strategy}&hot_fields=${fieldListQuery(HOT_FIELDS[kind])}`;
}

const JSON_HEADERS = { 'content-type': 'application/json' };
const MERGE_HEADERS = { 'content-type': 'application/merge-patch+json' };

/** The request that stores key `i` of a preloaded group (update number 0). */
export function preloadRequest(group, prefix, i) {
  const key = keyOf(prefix, group.group, i);
  return { op: 'write', method: 'POST', path: writePath(key, group.strategy, group.kind), body: documents(group.kind).render(key, 0), headers: JSON_HEADERS };
}

/**
 * One virtual user's request stream for scenario `o.scenario`. `o`: { scenario, strategy, doc, keys, iotKeys,
 * ycsbKeys, prefix, vu (1-based), seed }. Returns `next(iter)` giving { op, method, path, body, headers }, where
 * op is what the request counts as: 'write', 'update' or 'read'.
 */
export function requestStream(o) {
  if (SCENARIOS.indexOf(o.scenario) < 0) throw new Error(`SCENARIO must be one of ${SCENARIOS.join(', ')}; got ${JSON.stringify(o.scenario)}`);
  if (STRATEGIES.indexOf(o.strategy) < 0) throw new Error(`STRATEGY must be one of ${STRATEGIES.join(', ')}; got ${JSON.stringify(o.strategy)}`);
  const rand = prng(fnv1a(`${o.seed}-${o.scenario}-${o.vu}`));
  const group = keyGroup(o);
  const docs = documents(group ? group.kind : o.doc);
  const uniform = () => Math.floor(rand() * group.keys);
  // Hot values only need to differ between updates, so the update number is the VU's iteration spread by VU.
  const updateNumber = (iter) => iter * 1000 + o.vu;
  const read = (i, projected) => ({
    op: 'read',
    method: 'GET',
    path: `/read/${encodeURIComponent(keyOf(o.prefix, group.group, i))}${projected ? `?fields=${fieldListQuery(docs.hotFields)}` : ''}`,
    body: null,
    headers: {},
  });
  const patch = (i, iter) => ({
    op: 'update',
    method: 'PATCH',
    path: `/patch/${encodeURIComponent(keyOf(o.prefix, group.group, i))}`,
    body: docs.patch(updateNumber(iter)),
    headers: MERGE_HEADERS,
  });
  switch (o.scenario) {
    case 'write':
    case 'heal-write':
      return (iter) => {
        const key = keyOf(o.prefix, o.scenario === 'write' ? `w-${o.strategy}-${o.doc}` : 'heal', `${o.vu}-${iter}`);
        return { op: 'write', method: 'POST', path: writePath(key, o.strategy, o.doc), body: docs.render(key, iter), headers: JSON_HEADERS };
      };
    case 'hot-patch':
      return (iter) => patch(uniform(), iter);
    case 'hot-post':
      return (iter) => {
        const key = keyOf(o.prefix, group.group, uniform());
        // The same cold part as the preload wrote, new hot values: a pure hot update.
        return { op: 'update', method: 'POST', path: writePath(key, 'field_hybrid', group.kind), body: docs.render(key, updateNumber(iter)), headers: JSON_HEADERS };
      };
    case 'read':
      return () => read(uniform(), false);
    case 'project':
      return () => read(uniform(), true);
    default: {
      const readShare = o.scenario === 'ycsb-a' ? 0.5 : 0.95;
      const pick = zipfian(group.keys, rand);
      return (iter) => (rand() < readShare ? read(pick(), false) : patch(pick(), iter));
    }
  }
}
